//! Object stores for file locations: local disk needs nothing, `s3://` gets an
//! `AmazonS3` store built from the table's `aws.*` options.
//!
//! Stores are registered on the runtime per bucket (`s3://bucket`), which is how
//! DataFusion looks them up; two tables on one bucket share its settings, the
//! latest registration winning. An [`S3StoreSpec`] describes a store without any
//! secret value (credentials are named by environment variable), so it can travel
//! to workers, which register the same store reading their own environment.

use std::sync::Arc;
use std::time::Duration;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use serde::{Deserialize, Serialize};
use url::Url;

use super::options::S3Options;
use crate::{ConnectorError, ConnectorResult};

/// How long to wait for a TCP connection to the S3 endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of a failed request, so a dead endpoint fails a query (or a CREATE)
/// in seconds rather than after object_store's default three minutes.
const MAX_RETRIES: usize = 3;
/// Upper bound on the time spent retrying one request.
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything needed to open one bucket, secrets by reference only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3StoreSpec {
    /// Bucket name.
    pub bucket: String,
    /// Connection settings from the table's `aws.*` options.
    pub settings: S3Options,
}

impl S3StoreSpec {
    /// Build the store (reading credential variables from this process's
    /// environment) and register it on `runtime`.
    pub fn register(&self, runtime: &RuntimeEnv) -> ConnectorResult<()> {
        let s3 = &self.settings;
        let bucket = &self.bucket;
        // Client options first: setting them replaces any earlier `with_allow_http`.
        let mut builder = AmazonS3Builder::from_env()
            .with_client_options(ClientOptions::new().with_connect_timeout(CONNECT_TIMEOUT))
            .with_bucket_name(bucket)
            .with_allow_http(s3.allow_http)
            .with_virtual_hosted_style_request(s3.virtual_hosted_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            });
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = s3.access_key_id()? {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = s3.secret_access_key()? {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = s3.session_token()? {
            builder = builder.with_token(token);
        }
        let store = builder.build().map_err(|e| {
            ConnectorError::invalid_option(format!(
                "cannot configure S3 access to bucket '{bucket}': {e}"
            ))
        })?;
        let store_url = Url::parse(&format!("s3://{bucket}")).map_err(|e| {
            ConnectorError::invalid_option(format!("bad bucket name '{bucket}': {e}"))
        })?;
        let store = super::counted_store::CountedStore::new(Arc::new(store), "s3");
        runtime.register_object_store(&store_url, Arc::new(store));
        Ok(())
    }
}

/// Parse `location` into a listing URL, and describe the object store it needs
/// (`None` for local files).
pub fn locate(
    location: &str,
    s3: &S3Options,
) -> ConnectorResult<(ListingTableUrl, Option<S3StoreSpec>)> {
    let table_url = ListingTableUrl::parse(location).map_err(|e| {
        ConnectorError::invalid_option(format!(
            "LOCATION '{location}' is not a valid path or URL: {e}"
        ))
    })?;
    let spec = match table_url.scheme() {
        "file" => None,
        "s3" => {
            let bucket = table_url
                .get_url()
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| {
                    ConnectorError::invalid_option(format!("LOCATION '{location}' names no bucket"))
                })?;
            Some(S3StoreSpec {
                bucket: bucket.to_string(),
                settings: s3.clone(),
            })
        }
        other => {
            return Err(ConnectorError::invalid_option(format!(
                "LOCATION scheme '{other}://' is not supported; use a local path or s3://bucket/prefix/"
            )));
        }
    };
    Ok((table_url, spec))
}

/// Parse `location` and make sure its object store is registered on `runtime`.
pub fn register(
    location: &str,
    s3: &S3Options,
    runtime: &Arc<RuntimeEnv>,
) -> ConnectorResult<ListingTableUrl> {
    let (table_url, spec) = locate(location, s3)?;
    if let Some(spec) = spec {
        spec.register(runtime)?;
    }
    Ok(table_url)
}

/// What workers must prepare to read `location`: its bucket, if it is on S3
/// (credentials named, never given), described by `connector`.
pub fn bucket_needs(
    connector: &str,
    location: &str,
    s3: &S3Options,
) -> ConnectorResult<Vec<crate::WorkerNeed>> {
    locate(location, s3)?
        .1
        .into_iter()
        .map(|spec| {
            Ok(crate::WorkerNeed {
                connector: connector.to_string(),
                key: spec.bucket.clone(),
                value: serde_json::to_value(&spec).map_err(|e| {
                    ConnectorError::invalid_option(format!("cannot describe a bucket: {e}"))
                })?,
            })
        })
        .collect()
}

/// Register on this worker's `runtime` the bucket a need describes.
pub fn prepare_bucket(need: &crate::WorkerNeed, runtime: &RuntimeEnv) -> ConnectorResult<()> {
    let spec: S3StoreSpec = serde_json::from_value(need.value.clone()).map_err(|e| {
        ConnectorError::invalid_option(format!("bad bucket description from the coordinator: {e}"))
    })?;
    spec.register(runtime)
}

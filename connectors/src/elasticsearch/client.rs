//! A thin HTTP client for Elasticsearch and OpenSearch over `reqwest` (the
//! version object_store already links).
//!
//! Not the `elasticsearch` crate: its typed API follows Elasticsearch alone,
//! and the two flavours differ exactly where Vivace needs them to agree —
//! point-in-time is `POST /<index>/_pit` + `DELETE /_pit` on Elasticsearch but
//! `POST /<index>/_search/point_in_time` + `DELETE /_search/point_in_time` on
//! OpenSearch, with different response fields. Every request here is a JSON
//! body Vivace builds itself, so a small client speaking both is simpler than
//! working around the typed one.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::options::{Credentials, ElasticsearchOptions};
use crate::source_metrics::SourceLabels;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Which server answers, from `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Elasticsearch, with its major version (`None` when the user may not
    /// read `GET /`, so the version is unknown).
    Elasticsearch(Option<u32>),
    /// OpenSearch, with its major version (`None` when the user may not read
    /// `GET /`).
    OpenSearch(Option<u32>),
}

impl Flavor {
    /// How the flavour is named in messages and `EXPLAIN`.
    pub fn describe(&self) -> String {
        match self {
            Flavor::Elasticsearch(Some(v)) => format!("Elasticsearch {v}"),
            Flavor::Elasticsearch(None) => "Elasticsearch".to_string(),
            Flavor::OpenSearch(Some(v)) => format!("OpenSearch {v}"),
            Flavor::OpenSearch(None) => "OpenSearch".to_string(),
        }
    }
}

/// The header Elasticsearch (7.14 and later) names itself in on its answers.
const PRODUCT_HEADER: &str = "x-elastic-product";

/// One server, as one user: a connection pool with the credentials read once.
pub struct EsClient {
    /// The HTTP client, or why it could not be built (no TLS backend).
    http: Result<reqwest::Client, String>,
    base: String,
    authorization: Option<String>,
    flavor: OnceCell<Flavor>,
    what: String,
    labels: SourceLabels,
}

impl std::fmt::Debug for EsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EsClient({})", self.base)
    }
}

/// How long a point in time is kept between two pages.
pub const PIT_KEEP_ALIVE: &str = "2m";

/// What a client is built from, read and checked first (the credentials from
/// their variables, the CA file), so that building the client cannot fail.
pub struct ClientSettings {
    builder: reqwest::ClientBuilder,
    base: String,
    authorization: Option<String>,
    what: String,
    labels: SourceLabels,
}

impl ClientSettings {
    /// Read `options`' credentials and CA file now.
    pub fn read(options: &ElasticsearchOptions) -> ConnectorResult<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ConnectorError::invalid_option(format!(
                    "option 'ca_file': cannot read '{}': {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConnectorError::invalid_option(format!(
                    "option 'ca_file': '{}' holds no PEM certificate: {e}",
                    path.display()
                ))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if !options.verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        use base64::Engine as _;
        let authorization = match options.credentials()? {
            Credentials::None => None,
            Credentials::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Credentials::ApiKey(key) => Some(format!("ApiKey {key}")),
        };
        Ok(Self {
            builder,
            base: options.base.to_string().trim_end_matches('/').to_string(),
            authorization,
            what: options.compute_context(),
            labels: SourceLabels::new(&options.source.connector, &options.compute_context()),
        })
    }
}

impl EsClient {
    /// A client (and its connection pool) from checked settings.
    pub fn new(settings: ClientSettings) -> Self {
        Self {
            http: settings.builder.build().map_err(|e| e.to_string()),
            base: settings.base,
            authorization: settings.authorization,
            flavor: OnceCell::new(),
            what: settings.what,
            labels: settings.labels,
        }
    }

    /// The labels its requests are counted under.
    pub fn labels(&self) -> &SourceLabels {
        &self.labels
    }

    /// Send one request of `operation` (the label it is counted under in
    /// the source metrics); the JSON answer, or the server's error as a
    /// connector error.
    pub async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> ConnectorResult<Value> {
        let answer = self.send(operation, method, path, body).await?;
        if answer.status.is_success() {
            return Ok(answer.body);
        }
        Err(self.status_error(answer.status, &answer.body))
    }

    /// Send one request of `operation`, counted as it is sent; whatever the
    /// server answered (an error only when no answer came).
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> ConnectorResult<Answer> {
        let url = format!("{}{path}", self.base);
        let http = self.http.as_ref().map_err(|e| {
            ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                format!("no HTTP client: {e}"),
            )
        })?;
        let mut request = http.request(method, &url);
        if let Some(auth) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        self.labels.request_sent(operation);
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let from_elasticsearch = response
            .headers()
            .get(PRODUCT_HEADER)
            .is_some_and(|product| product == "Elasticsearch");
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&bytes).chars().take(500).collect())
        });
        Ok(Answer {
            status,
            from_elasticsearch,
            body,
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> ConnectorError {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            text = format!("{text}: {inner}");
            source = inner.source();
        }
        let what = if e.is_timeout() {
            "timed out waiting for"
        } else {
            "cannot reach"
        };
        ConnectorError::new(
            ConnectorErrorKind::Unreachable,
            format!("{what} the search server at {}: {text}", self.what),
        )
    }

    fn status_error(&self, status: StatusCode, body: &Value) -> ConnectorError {
        let error_type = body["error"]["type"].as_str().unwrap_or_default();
        let reason = body["error"]["root_cause"][0]["reason"]
            .as_str()
            .or_else(|| body["error"]["reason"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| match body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let (kind, message) = match status {
            StatusCode::UNAUTHORIZED => (
                ConnectorErrorKind::AuthenticationFailed,
                format!(
                    "the search server at {} refused the credentials: {reason}",
                    self.what
                ),
            ),
            StatusCode::FORBIDDEN => (
                ConnectorErrorKind::AuthenticationFailed,
                format!(
                    "the search server at {} does not allow this user: {reason}",
                    self.what
                ),
            ),
            StatusCode::NOT_FOUND if error_type == "index_not_found_exception" => (
                ConnectorErrorKind::NotFound,
                format!("the search server at {} has {reason}", self.what),
            ),
            _ => (
                ConnectorErrorKind::Rejected,
                format!(
                    "the search server at {} rejected the request ({}{}): {reason}",
                    self.what,
                    status.as_u16(),
                    if error_type.is_empty() {
                        String::new()
                    } else {
                        format!(" {error_type}")
                    }
                ),
            ),
        };
        ConnectorError::new(kind, message)
    }

    /// The server's flavour, asked once per client.
    ///
    /// `GET /` needs the `monitor` cluster privilege on Elasticsearch (and
    /// `cluster:monitor/main` with OpenSearch's security plugin), which a user
    /// or API key allowed only to read some indices lacks (403). Every
    /// authenticated user may ask the server who they are, though: only
    /// Elasticsearch answers `/_security/_authenticate`, naming itself in its
    /// product header, and only OpenSearch `/_plugins/_security/authinfo`;
    /// then the flavour is known, its version is not.
    pub async fn flavor(&self) -> ConnectorResult<Flavor> {
        self.flavor
            .get_or_try_init(|| async {
                let root = self.send("metadata", Method::GET, "/", None).await?;
                if root.status == StatusCode::FORBIDDEN {
                    let whoami = self
                        .send("metadata", Method::GET, "/_security/_authenticate", None)
                        .await?;
                    if whoami.status.is_success() && whoami.from_elasticsearch {
                        return Ok(Flavor::Elasticsearch(None));
                    }
                    // OpenSearch's security plugin answers its own twin of it.
                    let whoami = self
                        .send("metadata", Method::GET, "/_plugins/_security/authinfo", None)
                        .await?;
                    if whoami.status.is_success() && whoami.body.get("user_name").is_some() {
                        return Ok(Flavor::OpenSearch(None));
                    }
                }
                if !root.status.is_success() {
                    return Err(self.status_error(root.status, &root.body));
                }
                let info = root.body;
                let number = info["version"]["number"].as_str().unwrap_or_default();
                let major = number
                    .split('.')
                    .next()
                    .and_then(|m| m.parse::<u32>().ok())
                    .unwrap_or(0);
                let flavor = if info["version"]["distribution"] == "opensearch" {
                    Flavor::OpenSearch(Some(major))
                } else if info["tagline"].as_str().is_some_and(|t| t.contains("for Search")) {
                    Flavor::Elasticsearch(Some(major))
                } else {
                    return Err(ConnectorError::new(
                        ConnectorErrorKind::Unreachable,
                        format!(
                            "{} does not answer as Elasticsearch or OpenSearch (GET / returned {})",
                            self.what,
                            info.to_string().chars().take(200).collect::<String>()
                        ),
                    ));
                };
                let supported = match flavor {
                    Flavor::Elasticsearch(v) => v.is_none_or(|v| v >= 8),
                    Flavor::OpenSearch(v) => v.is_none_or(|v| v >= 2),
                };
                if !supported {
                    return Err(ConnectorError::new(
                        ConnectorErrorKind::UnsupportedType,
                        format!(
                            "{} runs {} ({number}); Vivace reads Elasticsearch 8 and later, OpenSearch 2 and later",
                            self.what,
                            flavor.describe()
                        ),
                    ));
                }
                Ok(flavor)
            })
            .await
            .copied()
    }

    /// `GET /<index>/_mapping`: every matching index's mapping.
    pub async fn mappings(&self, index: &str) -> ConnectorResult<Value> {
        let value = self
            .call(
                "metadata",
                Method::GET,
                &format!("/{}/_mapping", encode(index)),
                None,
            )
            .await?;
        if value.as_object().is_some_and(|m| m.is_empty()) {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "the search server at {} has no index matching [{index}]",
                    self.what
                ),
            ));
        }
        Ok(value)
    }

    /// The indices and aliases a user may read (hidden ones left out), sorted.
    pub async fn index_names(&self) -> ConnectorResult<Vec<String>> {
        let mut names = Vec::new();
        let indices = self
            .call(
                "metadata",
                Method::GET,
                "/_cat/indices?format=json&h=index",
                None,
            )
            .await?;
        let aliases = self
            .call(
                "metadata",
                Method::GET,
                "/_cat/aliases?format=json&h=alias",
                None,
            )
            .await?;
        for (list, key) in [(&indices, "index"), (&aliases, "alias")] {
            for entry in list.as_array().into_iter().flatten() {
                if let Some(name) = entry[key].as_str()
                    && !name.starts_with('.')
                {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// How many documents of `index` match `query`.
    pub async fn count(&self, index: &str, query: &Value) -> ConnectorResult<u64> {
        let answer = self
            .call(
                "count",
                Method::POST,
                &format!("/{}/_count", encode(index)),
                Some(&json!({ "query": query })),
            )
            .await?;
        Ok(answer["count"].as_u64().unwrap_or(0))
    }

    /// Open a point in time over `index`; its id.
    pub async fn open_pit(&self, index: &str) -> ConnectorResult<String> {
        let flavor = self.flavor().await?;
        let (path, field) = match flavor {
            Flavor::Elasticsearch(_) => (
                format!("/{}/_pit?keep_alive={PIT_KEEP_ALIVE}", encode(index)),
                "id",
            ),
            Flavor::OpenSearch(_) => (
                format!(
                    "/{}/_search/point_in_time?keep_alive={PIT_KEEP_ALIVE}",
                    encode(index)
                ),
                "pit_id",
            ),
        };
        let answer = self
            .call("point_in_time", Method::POST, &path, None)
            .await?;
        answer[field].as_str().map(str::to_string).ok_or_else(|| {
            ConnectorError::new(
                ConnectorErrorKind::Rejected,
                format!(
                    "the search server at {} opened no point in time: {answer}",
                    self.what
                ),
            )
        })
    }

    /// Close a point in time (errors ignored: it expires by itself).
    pub async fn close_pit(&self, id: &str) {
        let Ok(flavor) = self.flavor().await else {
            return;
        };
        let (path, body) = match flavor {
            Flavor::Elasticsearch(_) => ("/_pit", json!({ "id": id })),
            Flavor::OpenSearch(_) => ("/_search/point_in_time", json!({ "pit_id": [id] })),
        };
        if let Err(e) = self
            .call("point_in_time", Method::DELETE, path, Some(&body))
            .await
        {
            tracing::debug!(error = %e, "closing a point in time failed; it expires by itself");
        }
    }

    /// `POST /_search` (a point-in-time search names its indices in the body).
    pub async fn search(&self, body: &Value) -> ConnectorResult<Value> {
        self.call("search", Method::POST, "/_search", Some(body))
            .await
    }

    /// `POST /<index>/_search`.
    pub async fn search_index(&self, index: &str, body: &Value) -> ConnectorResult<Value> {
        self.call(
            "search",
            Method::POST,
            &format!("/{}/_search", encode(index)),
            Some(body),
        )
        .await
    }
}

/// What the server answered to one request.
struct Answer {
    status: StatusCode,
    /// Whether the answer names Elasticsearch in its product header.
    from_elasticsearch: bool,
    /// The JSON body (a body that is no JSON as a string, cut to 500 characters).
    body: Value,
}

/// An index expression as a path segment (`*` and `,` kept: they are its syntax).
fn encode(index: &str) -> String {
    url::form_urlencoded::byte_serialize(index.as_bytes())
        .collect::<String>()
        .replace("%2A", "*")
        .replace("%2C", ",")
}

//! `LOCATION` and `OPTIONS (...)` of Elasticsearch / OpenSearch tables, parsed
//! into a typed struct. Secrets are never values: `password_env` and
//! `api_key_env` name environment variables of the Vivace process (each worker
//! reads its own), read when a client is built.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::options::{
    OptionSpec, OptionValues, existing_file, parse_bool, parse_whole, read_env, requires,
};
use crate::remote::SourceDefinition;
use crate::{ConnectorError, ConnectorResult};

/// The `OPTIONS` keys of Elasticsearch and OpenSearch tables.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::key(
        "index",
        "the index, alias or pattern ('logs-*', 'a,b') to read; required for tables",
    ),
    OptionSpec::key("user", "user name for basic authentication"),
    OptionSpec::key(
        "password_env",
        "environment variable of the Vivace process holding the basic-authentication password",
    ),
    OptionSpec::key(
        "api_key_env",
        "environment variable holding an API key (sent as 'Authorization: ApiKey ...')",
    ),
    OptionSpec::key(
        "ca_file",
        "PEM file of the certificate authority that signed the server's certificate (https)",
    ),
    OptionSpec::with_default(
        "verify",
        "on: check the server's TLS certificate; off: accept any (only when asked)",
        "on",
    ),
    OptionSpec::with_default(
        "slices",
        "how many sliced reads a whole-index scan is split into (1 to 64), or auto: one per 100,000 matching documents, up to 16",
        "auto",
    ),
    OptionSpec::with_default(
        "page_size",
        "hits fetched per search request (1 to 10000)",
        "1000",
    ),
    OptionSpec::with_default(
        "timeout",
        "seconds to wait for any one request to the server",
        "30",
    ),
    OptionSpec::with_default(
        "source_column",
        "on: add a _source column holding each document as JSON text",
        "off",
    ),
    OptionSpec::with_default(
        "approximate_distinct",
        "on: count(DISTINCT c) is pushed as the server's approximate cardinality aggregation",
        "off",
    ),
    OptionSpec::secret("password", "password_env"),
    OptionSpec::secret("api_key", "api_key_env"),
];

/// Most sliced reads one scan may be split into.
pub const MAX_SLICES: u32 = 64;

/// How a whole-index scan is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slices {
    /// One slice per 100,000 matching documents, up to 16 (counted per query).
    Auto,
    /// Exactly this many.
    Fixed(u32),
}

/// Typed settings of an Elasticsearch table (no secret value inside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElasticsearchOptions {
    /// `http(s)://host:port`, as written (without a trailing slash).
    pub base: Url,
    /// The `index` option: index, alias, pattern or comma-separated list.
    pub index: Option<String>,
    /// Basic-authentication user.
    pub user: Option<String>,
    /// Variable holding the basic-authentication password.
    pub password_env: Option<String>,
    /// Variable holding an API key.
    pub api_key_env: Option<String>,
    /// CA certificate file for https.
    pub ca_file: Option<PathBuf>,
    /// Whether TLS certificates are checked.
    pub verify: bool,
    /// How scans are split into slices.
    pub slices: Slices,
    /// Hits per search request.
    pub page_size: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Whether the table has a `_source` column.
    pub source_column: bool,
    /// Whether `count(DISTINCT …)` may be pushed as `cardinality`.
    pub approximate_distinct: bool,
    /// The `LOCATION` and `OPTIONS` these were parsed from (what a worker gets).
    pub source: SourceDefinition,
}

/// A secret read from the environment for one client.
pub enum Credentials {
    /// No authentication.
    None,
    /// `Authorization: Basic`.
    Basic { user: String, password: String },
    /// `Authorization: ApiKey`.
    ApiKey(String),
}

impl ElasticsearchOptions {
    /// Parse `LOCATION` and `OPTIONS` of a `STORED AS <connector>` table or schema.
    pub fn parse(
        connector: &str,
        location: &str,
        options: &BTreeMap<String, String>,
    ) -> ConnectorResult<Self> {
        let what = connector.to_ascii_uppercase();
        let values = OptionValues::check(OPTIONS, options, &what)?;
        let url = Url::parse(location).map_err(|e| {
            ConnectorError::invalid_option(format!(
                "LOCATION must be a URL like 'http://host:9200' for {what} tables: {e}"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConnectorError::invalid_option(format!(
                "LOCATION must start with http:// or https:// for {what} tables, not {}://",
                url.scheme()
            )));
        }
        if url.password().is_some() || !url.username().is_empty() {
            return Err(ConnectorError::invalid_option(
                "LOCATION must not contain a user or password, which would be stored in the catalog; use the options 'user' and 'password_env' (or 'api_key_env')",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConnectorError::invalid_option("LOCATION has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConnectorError::invalid_option(
                "LOCATION must be the server's address only, like 'http://host:9200'",
            ));
        }
        let mut base = url.clone();
        base.set_path(url.path().trim_end_matches('/'));
        let get = |k: &str| values.get(k);
        let index = get("index").map(str::to_string);
        if let Some(index) = &index
            && (index.trim().is_empty()
                || index.contains(|c: char| c.is_whitespace() || "\"\\/?#<>|".contains(c)))
        {
            return Err(ConnectorError::invalid_option(format!(
                "option 'index' must name an index, alias or pattern ('logs-*', 'a,b'), not '{index}'"
            )));
        }
        let verify = parse_bool("verify", get("verify"), true)?;
        let source_column = parse_bool("source_column", get("source_column"), false)?;
        let approximate_distinct =
            parse_bool("approximate_distinct", get("approximate_distinct"), false)?;
        let slices = match get("slices").unwrap_or("auto") {
            s if s.eq_ignore_ascii_case("auto") => Slices::Auto,
            s => {
                let n = parse_whole("slices", s)?;
                if !(1..=MAX_SLICES).contains(&n) {
                    return Err(ConnectorError::invalid_option(format!(
                        "option 'slices' must be auto or between 1 and {MAX_SLICES}, not {n}"
                    )));
                }
                Slices::Fixed(n)
            }
        };
        let page_size = parse_whole("page_size", get("page_size").unwrap_or("1000"))?;
        if !(1..=10_000).contains(&page_size) {
            return Err(ConnectorError::invalid_option(format!(
                "option 'page_size' must be between 1 and 10000, not {page_size}"
            )));
        }
        let timeout = parse_whole("timeout", get("timeout").unwrap_or("30"))?;
        if timeout == 0 {
            return Err(ConnectorError::invalid_option(
                "option 'timeout' must be a positive number of seconds",
            ));
        }
        requires(&values, "password_env", "user")?;
        if get("api_key_env").is_some() && get("user").is_some() {
            return Err(ConnectorError::invalid_option(
                "give either 'user' (with 'password_env') or 'api_key_env', not both",
            ));
        }
        let ca_file = existing_file("ca_file", get("ca_file"))?;
        let parsed = Self {
            base,
            index,
            user: get("user").map(str::to_string),
            password_env: get("password_env").map(str::to_string),
            api_key_env: get("api_key_env").map(str::to_string),
            ca_file,
            verify,
            slices,
            page_size,
            timeout: Duration::from_secs(timeout.into()),
            source_column,
            approximate_distinct,
            source: SourceDefinition {
                connector: connector.to_string(),
                location: location.to_string(),
                options: options.clone(),
            },
        };
        // An unset variable fails the CREATE, not the first query.
        parsed.credentials()?;
        Ok(parsed)
    }

    /// The index option, required for a table.
    pub fn index(&self) -> ConnectorResult<&str> {
        self.index.as_deref().ok_or_else(|| {
            ConnectorError::invalid_option(
                "option 'index' is required: the index, alias or pattern to read",
            )
        })
    }

    /// The credentials, read from the named variables now.
    pub fn credentials(&self) -> ConnectorResult<Credentials> {
        let var = read_env;
        Ok(match (&self.user, &self.password_env, &self.api_key_env) {
            (_, _, Some(key)) => Credentials::ApiKey(var("api_key_env", key)?),
            (Some(user), password, None) => Credentials::Basic {
                user: user.clone(),
                password: match password {
                    Some(name) => var("password_env", name)?,
                    None => String::new(),
                },
            },
            (None, _, None) => Credentials::None,
        })
    }

    /// Where requests go and as whom, shown in `EXPLAIN` (no secret).
    pub fn compute_context(&self) -> String {
        match &self.user {
            Some(user) => {
                let mut url = self.base.clone();
                let _ = url.set_username(user);
                url.to_string().trim_end_matches('/').to_string()
            }
            None => self.base.to_string().trim_end_matches('/').to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::options::pairs as opts;

    #[test]
    fn location_options_and_refusals() {
        let o = ElasticsearchOptions::parse(
            "elasticsearch",
            "http://es.internal:9200/",
            &opts(&[("index", "logs-*"), ("user", "reader")]),
        )
        .unwrap();
        assert_eq!(o.index().unwrap(), "logs-*");
        assert_eq!(o.slices, Slices::Auto);
        assert_eq!(o.page_size, 1000);
        assert!(o.verify);
        assert_eq!(o.compute_context(), "http://reader@es.internal:9200");
        for (location, options, needle) in [
            ("es.internal:9200", opts(&[]), "http:// or https://"),
            ("http://u:p@h:9200", opts(&[]), "must not contain a user"),
            ("http://h:9200", opts(&[("password", "x")]), "password_env"),
            ("http://h:9200", opts(&[("api_key", "x")]), "api_key_env"),
            ("http://h:9200", opts(&[("slices", "0")]), "'slices'"),
            (
                "http://h:9200",
                opts(&[("page_size", "20000")]),
                "'page_size'",
            ),
            ("http://h:9200", opts(&[("index", "a b")]), "'index'"),
            ("http://h:9200", opts(&[("verify", "maybe")]), "'verify'"),
            (
                "http://h:9200",
                opts(&[("password_env", "HOME")]),
                "needs option 'user'",
            ),
            (
                "http://h:9200",
                opts(&[("user", "u"), ("password_env", "VIVACE_SURELY_UNSET_VAR")]),
                "is not set",
            ),
        ] {
            let err = ElasticsearchOptions::parse("elasticsearch", location, &options)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{location} {options:?}: {err}");
        }
    }
}

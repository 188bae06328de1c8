//! `LOCATION` and `OPTIONS (...)` of Cassandra tables, parsed into a typed
//! struct. The password is never a value: `password_env` names an environment
//! variable of the Vivace process (each worker reads its own), read when a
//! session is opened.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::options::{
    OptionSpec, OptionValues, existing_file, parse_bool, parse_whole, read_env, requires,
};
use crate::remote::SourceDefinition;
use crate::{ConnectorError, ConnectorResult};

/// The `OPTIONS` keys of Cassandra tables and schemas.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::key("keyspace", "the keyspace; required"),
    OptionSpec::key("table", "the table to read; required for tables"),
    OptionSpec::with_default(
        "consistency",
        "read consistency: ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM or ALL",
        "LOCAL_ONE",
    ),
    OptionSpec::with_default(
        "fetch_size",
        "rows per page the driver fetches (1 to 100000)",
        "5000",
    ),
    OptionSpec::key(
        "splits",
        "token ranges a scan that fixes no partition is split into (1 to 256); default: from system.size_estimates, one per 64 MiB, at least 4",
    ),
    OptionSpec::with_default(
        "max_partitions",
        "most partitions a key filter may expand to (IN lists, small integer ranges) before the scan reads token ranges instead",
        "1000",
    ),
    OptionSpec::with_default(
        "allow_filtering",
        "true: also push comparisons on columns outside the key, with ALLOW FILTERING (Vivace re-checks them)",
        "false",
    ),
    OptionSpec::with_default(
        "tracing",
        "true: ask Cassandra to trace every request (system_traces.sessions holds each statement and its bound values)",
        "false",
    ),
    OptionSpec::key("user", "user name (PasswordAuthenticator)"),
    OptionSpec::key(
        "password_env",
        "environment variable of the Vivace process holding the password",
    ),
    OptionSpec::key(
        "ca_file",
        "PEM file of the certificate authority that signed the nodes' certificates: connect with TLS",
    ),
    OptionSpec::key(
        "local_dc",
        "the data centre to read from (token-aware, DC-aware load balancing)",
    ),
    OptionSpec::with_default(
        "connect_timeout",
        "seconds to wait for a connection to a node",
        "5",
    ),
    OptionSpec::with_default(
        "request_timeout",
        "seconds to wait for any one page of rows",
        "30",
    ),
    OptionSpec::secret("password", "password_env"),
];

/// The read consistency levels a table may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// `ONE`.
    One,
    /// `LOCAL_ONE`.
    LocalOne,
    /// `QUORUM`.
    Quorum,
    /// `LOCAL_QUORUM`.
    LocalQuorum,
    /// `ALL`.
    All,
}

impl Consistency {
    fn parse(value: &str) -> ConnectorResult<Self> {
        Ok(match value.to_ascii_uppercase().as_str() {
            "ONE" => Self::One,
            "LOCAL_ONE" => Self::LocalOne,
            "QUORUM" => Self::Quorum,
            "LOCAL_QUORUM" => Self::LocalQuorum,
            "ALL" => Self::All,
            _ => {
                return Err(ConnectorError::invalid_option(format!(
                    "option 'consistency' must be ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM or ALL, not '{value}'"
                )));
            }
        })
    }

    /// The level as CQL writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::One => "ONE",
            Self::LocalOne => "LOCAL_ONE",
            Self::Quorum => "QUORUM",
            Self::LocalQuorum => "LOCAL_QUORUM",
            Self::All => "ALL",
        }
    }
}

/// Most token ranges one scan may be split into.
pub const MAX_SPLITS: u32 = 256;

/// Typed settings of a Cassandra table (no secret value inside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CassandraOptions {
    /// Contact points, `host:port`.
    pub contact_points: Vec<String>,
    /// The keyspace.
    pub keyspace: String,
    /// The table (absent for an external schema).
    pub table: Option<String>,
    /// Read consistency.
    pub consistency: Consistency,
    /// Rows per page.
    pub fetch_size: u32,
    /// Token ranges per scan, when fixed by the option.
    pub splits: Option<u32>,
    /// Most partitions a key filter expands to.
    pub max_partitions: u32,
    /// Whether non-key filters are pushed with `ALLOW FILTERING`.
    pub allow_filtering: bool,
    /// Whether requests are traced by the server.
    pub tracing: bool,
    /// User name.
    pub user: Option<String>,
    /// Variable holding the password.
    pub password_env: Option<String>,
    /// CA certificate file: connect with TLS.
    pub ca_file: Option<PathBuf>,
    /// Data centre to prefer.
    pub local_dc: Option<String>,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Per-page request timeout.
    pub request_timeout: Duration,
    /// The `LOCATION` and `OPTIONS` these were parsed from (what a worker gets).
    pub source: SourceDefinition,
}

impl CassandraOptions {
    /// Parse `LOCATION` and `OPTIONS` of a `STORED AS CASSANDRA` table or schema.
    pub fn parse(
        connector: &str,
        location: &str,
        options: &BTreeMap<String, String>,
    ) -> ConnectorResult<Self> {
        let values = OptionValues::check(OPTIONS, options, "CASSANDRA")?;
        let get = |k: &str| values.get(k);
        let contact_points = contact_points(location)?;
        let keyspace = get("keyspace")
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                ConnectorError::invalid_option(
                    "option 'keyspace' is required: the keyspace to read",
                )
            })?
            .to_string();
        let consistency = Consistency::parse(get("consistency").unwrap_or("LOCAL_ONE"))?;
        let fetch_size = bounded(
            "fetch_size",
            get("fetch_size").unwrap_or("5000"),
            1,
            100_000,
        )?;
        let splits = get("splits")
            .map(|s| bounded("splits", s, 1, MAX_SPLITS))
            .transpose()?;
        let max_partitions = bounded(
            "max_partitions",
            get("max_partitions").unwrap_or("1000"),
            1,
            100_000,
        )?;
        let allow_filtering = parse_bool("allow_filtering", get("allow_filtering"), false)?;
        let tracing = parse_bool("tracing", get("tracing"), false)?;
        let seconds = |key: &str, default: &str| -> ConnectorResult<Duration> {
            let n = bounded(key, get(key).unwrap_or(default), 1, 3600)?;
            Ok(Duration::from_secs(n.into()))
        };
        requires(&values, "password_env", "user")?;
        let ca_file = existing_file("ca_file", get("ca_file"))?;
        let parsed = Self {
            contact_points,
            keyspace,
            table: get("table").map(str::to_string),
            consistency,
            fetch_size,
            splits,
            max_partitions,
            allow_filtering,
            tracing,
            user: get("user").map(str::to_string),
            password_env: get("password_env").map(str::to_string),
            ca_file,
            local_dc: get("local_dc").map(str::to_string),
            connect_timeout: seconds("connect_timeout", "5")?,
            request_timeout: seconds("request_timeout", "30")?,
            source: SourceDefinition {
                connector: connector.to_string(),
                location: location.to_string(),
                options: options.clone(),
            },
        };
        // An unset variable fails the CREATE, not the first query.
        parsed.password()?;
        Ok(parsed)
    }

    /// The table option, required for a table.
    pub fn table(&self) -> ConnectorResult<&str> {
        self.table.as_deref().ok_or_else(|| {
            ConnectorError::invalid_option("option 'table' is required: the table to read")
        })
    }

    /// The user and password, the password read from its variable now.
    pub fn password(&self) -> ConnectorResult<Option<(String, String)>> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let password = match &self.password_env {
            Some(name) => read_env("password_env", name)?,
            None => String::new(),
        };
        Ok(Some((user.clone(), password)))
    }

    /// Where requests go and as whom, shown in `EXPLAIN` (no secret).
    pub fn compute_context(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        format!(
            "cassandra://{user}{}/{} consistency={}",
            self.contact_points.join(","),
            self.keyspace,
            self.consistency.name()
        )
    }

    /// What makes two tables share one session (same cluster, keyspace, user,
    /// TLS and data centre; never the password itself). Consistency, page
    /// size, timeout and tracing are set per statement.
    pub fn session_key(&self) -> String {
        format!(
            "{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.contact_points.join(","),
            self.keyspace,
            self.user,
            self.password_env,
            self.ca_file,
            self.local_dc,
            self.connect_timeout
        )
    }
}

/// `cassandra://h1:9042,h2:9042` (port 9042 when omitted).
fn contact_points(location: &str) -> ConnectorResult<Vec<String>> {
    let bad = |why: &str| {
        ConnectorError::invalid_option(format!(
            "LOCATION must be like 'cassandra://host1:9042,host2:9042' for CASSANDRA tables: {why}"
        ))
    };
    let rest = location
        .strip_prefix("cassandra://")
        .ok_or_else(|| bad("it does not start with cassandra://"))?;
    let rest = rest.trim_end_matches('/');
    if rest.contains('@') {
        return Err(ConnectorError::invalid_option(
            "LOCATION must not contain a user or password, which would be stored in the catalog; use the options 'user' and 'password_env'",
        ));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(bad("give hosts and ports only"));
    }
    let mut points = Vec::new();
    for host in rest.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(bad("a host is empty"));
        }
        let (name, port) = if let Some(v6) = host.strip_prefix('[') {
            let (name, after) = v6
                .split_once(']')
                .ok_or_else(|| bad(&format!("no ']' in '{host}'")))?;
            (name, after.strip_prefix(':'))
        } else {
            match host.split_once(':') {
                Some((_, port)) if port.contains(':') => {
                    return Err(bad("write an IPv6 address in brackets, like [::1]:9042"));
                }
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            }
        };
        if name.is_empty() {
            return Err(bad("a host is empty"));
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| bad(&format!("bad port in '{host}'")))?,
            None => 9042,
        };
        let with_port = if host.starts_with('[') {
            format!("[{name}]:{port}")
        } else {
            format!("{name}:{port}")
        };
        points.push(with_port);
    }
    Ok(points)
}

fn bounded(key: &str, value: &str, low: u32, high: u32) -> ConnectorResult<u32> {
    let n = parse_whole(key, value)?;
    if !(low..=high).contains(&n) {
        return Err(ConnectorError::invalid_option(format!(
            "option '{key}' must be between {low} and {high}, not {n}"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::options::pairs as opts;

    #[test]
    fn location_options_and_refusals() {
        let o = CassandraOptions::parse(
            "cassandra",
            "cassandra://c1.internal:9042,c2.internal",
            &opts(&[
                ("keyspace", "app"),
                ("table", "sessions"),
                ("user", "reader"),
            ]),
        )
        .unwrap();
        assert_eq!(o.contact_points, ["c1.internal:9042", "c2.internal:9042"]);
        assert_eq!(o.consistency, Consistency::LocalOne);
        assert_eq!(o.fetch_size, 5000);
        assert_eq!(o.table().unwrap(), "sessions");
        assert_eq!(
            o.compute_context(),
            "cassandra://reader@c1.internal:9042,c2.internal:9042/app consistency=LOCAL_ONE"
        );
        for (location, options, needle) in [
            ("c1:9042", opts(&[("keyspace", "a")]), "cassandra://"),
            (
                "cassandra://u:p@c1",
                opts(&[("keyspace", "a")]),
                "must not contain a user",
            ),
            ("cassandra://c1:x", opts(&[("keyspace", "a")]), "bad port"),
            ("cassandra://c1", opts(&[]), "'keyspace' is required"),
            (
                "cassandra://c1",
                opts(&[("keyspace", "a"), ("password", "x")]),
                "password_env",
            ),
            (
                "cassandra://c1",
                opts(&[("keyspace", "a"), ("consistency", "TWO")]),
                "'consistency'",
            ),
            (
                "cassandra://c1",
                opts(&[("keyspace", "a"), ("splits", "0")]),
                "'splits'",
            ),
            (
                "cassandra://c1",
                opts(&[("keyspace", "a"), ("password_env", "HOME")]),
                "needs option 'user'",
            ),
            (
                "cassandra://c1",
                opts(&[
                    ("keyspace", "a"),
                    ("user", "u"),
                    ("password_env", "VIVACE_SURELY_UNSET_VAR"),
                ]),
                "is not set",
            ),
        ] {
            let err = CassandraOptions::parse("cassandra", location, &options)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{location} {options:?}: {err}");
        }
    }
}

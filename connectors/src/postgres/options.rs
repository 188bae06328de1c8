//! `LOCATION` and `OPTIONS (...)` of PostgreSQL tables, parsed into a typed struct.
//!
//! The password is never accepted as a value: `'password_env' 'VARIABLE'` names an
//! environment variable of the Vivace process, read each time a connection opens.
//! A password written in the URL or in a `password` option is refused, like the S3
//! secret keys of file tables.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::common::TableReference;
use url::Url;

use super::flavor::{Flavor, POSTGRES};
use crate::options::{OptionSpec, OptionValues, parse_whole, read_env};
use crate::remote::SourceDefinition;
use crate::{ConnectorError, ConnectorResult};

/// The `OPTIONS` keys of PostgreSQL and Redshift tables.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::key(
        "table",
        "the remote table, 'schema.table' (default schema public); double quotes keep case and dots",
    ),
    OptionSpec::key(
        "password_env",
        "environment variable of the Vivace process holding the password (none: no password)",
    ),
    OptionSpec::with_default(
        "sslmode",
        "disable, prefer, require, verify-ca or verify-full",
        "prefer",
    ),
    OptionSpec::with_default(
        "pool_size",
        "most connections open at once to this server",
        "4",
    ),
    OptionSpec::with_default(
        "connect_timeout",
        "seconds to wait for a TCP connection",
        "5",
    ),
    OptionSpec::key(
        "partition_column",
        "an integer, date or timestamp column: whole-table scans are read as range queries on it",
    ),
    OptionSpec::key(
        "partitions",
        "how many range queries partition_column splits a scan into (2 to 64)",
    ),
    OptionSpec::secret("password", "password_env"),
    OptionSpec::secret("pass", "password_env"),
];
/// Most range queries one scan may be split into.
pub const MAX_PARTITIONS: u32 = 64;
const SSL_MODES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

/// Typed connection settings of a PostgreSQL table. Holds no secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// PostgreSQL or Redshift (from the `STORED AS` name).
    pub flavor: &'static Flavor,
    /// Server host name or address (from the URL).
    pub host: String,
    /// Server port (from the URL; default 5432, or 5439 for Redshift).
    pub port: u16,
    /// Role to connect as (from the URL).
    pub user: String,
    /// Database name (from the URL path).
    pub database: String,
    /// `table`: the remote table, `schema.table` (default schema `public`);
    /// double quotes keep case and dots (`'"Sales"."Q1.orders"'`).
    pub table: TableReference,
    /// `password_env`: environment variable holding the password (none: no password).
    pub password_env: Option<String>,
    /// `sslmode`: `disable`, `prefer` (default), `require`, `verify-ca`, `verify-full`.
    pub sslmode: String,
    /// `pool_size`: most connections open at once to this server (default 4).
    pub pool_size: u32,
    /// `connect_timeout`: seconds to wait for a TCP connection (default 5).
    pub connect_timeout: Duration,
    /// `partition_column` and `partitions`: read whole-table scans as that many
    /// range queries on that column, in parallel (none: one query).
    pub partitioning: Option<RangePartitioning>,
    /// The `LOCATION` and `OPTIONS` these settings were parsed from (no secret
    /// in them): what a worker is sent to open the same source.
    pub source: SourceDefinition,
}

/// How a scan of a table is split into range queries read in parallel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePartitioning {
    /// An integer, date or timestamp column of the table (its exact name).
    pub column: String,
    /// How many range queries (2 to [`MAX_PARTITIONS`]).
    pub partitions: usize,
}

impl PostgresOptions {
    /// Parse and validate a `postgres://user@host:port/database` location and its options.
    pub fn parse(location: &str, options: &BTreeMap<String, String>) -> ConnectorResult<Self> {
        Self::parse_for(&POSTGRES, location, options)
    }

    /// Parse and validate a location of `flavor` (`postgres://…` or
    /// `redshift://user@host:5439/database`) and its options.
    pub fn parse_for(
        flavor: &'static Flavor,
        location: &str,
        options: &BTreeMap<String, String>,
    ) -> ConnectorResult<Self> {
        let values = OptionValues::check(OPTIONS, options, &flavor.name.to_ascii_uppercase())?;
        let scheme = flavor.schemes[0];
        let example = format!("{scheme}://user@host:{}/database", flavor.default_port);
        let url = Url::parse(location).map_err(|e| {
            ConnectorError::invalid_option(format!("LOCATION must be a URL like '{example}': {e}"))
        })?;
        if !flavor.schemes.contains(&url.scheme()) {
            return Err(ConnectorError::invalid_option(format!(
                "LOCATION must start with {scheme}:// for {} tables, not {}://",
                flavor.name.to_ascii_uppercase(),
                url.scheme()
            )));
        }
        if url.password().is_some() {
            return Err(ConnectorError::invalid_option(
                "LOCATION must not contain a password, which would be stored in the catalog; name an environment variable instead: 'password_env' 'VARIABLE_NAME'",
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ConnectorError::invalid_option("LOCATION has no host"))?;
        let user = decode(url.username())?;
        let database = decode(url.path().trim_start_matches('/'))?;
        if user.is_empty() || database.is_empty() {
            return Err(ConnectorError::invalid_option(format!(
                "LOCATION must name a user and a database: '{example}'"
            )));
        }
        for (what, value) in [
            ("host", host),
            ("user", user.as_str()),
            ("database", &database),
        ] {
            if value.contains(|c: char| c.is_whitespace() || matches!(c, '\'' | '\\' | '=')) {
                return Err(ConnectorError::invalid_option(format!(
                    "the {what} in LOCATION must not contain spaces, quotes, backslashes or '='"
                )));
            }
        }
        let get = |k: &str| values.get(k);
        let table = get("table").ok_or_else(|| {
            ConnectorError::invalid_option(
                "option 'table' is required: the remote table as 'schema.table'",
            )
        })?;
        let sslmode = get("sslmode").unwrap_or_default().to_ascii_lowercase();
        if !SSL_MODES.contains(&sslmode.as_str()) {
            return Err(ConnectorError::invalid_option(format!(
                "option 'sslmode' must be one of {}; not '{sslmode}'",
                SSL_MODES.join(", ")
            )));
        }
        let partitioning = match (get("partition_column"), get("partitions")) {
            (None, None) => None,
            (Some(column), Some(n)) if !column.trim().is_empty() => {
                let partitions = parse_positive("partitions", Some(n))?;
                if !(2..=MAX_PARTITIONS).contains(&partitions) {
                    return Err(ConnectorError::invalid_option(format!(
                        "option 'partitions' must be between 2 and {MAX_PARTITIONS}, not {partitions}"
                    )));
                }
                Some(RangePartitioning {
                    column: column.to_string(),
                    partitions: partitions as usize,
                })
            }
            _ => {
                return Err(ConnectorError::invalid_option(
                    "options 'partition_column' and 'partitions' go together: name an integer, date or timestamp column and how many range queries to split scans into",
                ));
            }
        };
        let parsed = Self {
            flavor,
            host: host.trim_matches(['[', ']']).to_string(),
            port: url.port().unwrap_or(flavor.default_port),
            user,
            database,
            table: parse_table(table)?,
            password_env: get("password_env").map(str::to_string),
            sslmode,
            pool_size: parse_positive("pool_size", get("pool_size"))?,
            connect_timeout: Duration::from_secs(
                parse_positive("connect_timeout", get("connect_timeout"))?.into(),
            ),
            partitioning,
            source: SourceDefinition {
                connector: flavor.name.to_string(),
                location: location.to_string(),
                options: options.clone(),
            },
        };
        // Fail at CREATE time, not at the first query, when the variable is unset.
        parsed.password()?;
        Ok(parsed)
    }

    /// The password, read from the variable named by `password_env` now.
    pub fn password(&self) -> ConnectorResult<Option<String>> {
        self.password_env
            .as_ref()
            .map(|var| read_env("password_env", var))
            .transpose()
    }

    /// Identifies the server and role: tables sharing it may be joined remotely.
    pub fn compute_context(&self) -> String {
        format!(
            "{}://{}@{}:{}/{}",
            self.flavor.schemes[0], self.user, self.host, self.port, self.database
        )
    }
}

/// Percent-decode a URL part (`+` is literal in a URL, unlike in a form).
fn decode(part: &str) -> ConnectorResult<String> {
    url::form_urlencoded::parse(format!("x={}", part.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ConnectorError::invalid_option("LOCATION is not valid URL text"))
}

/// `schema.table`, `table` (schema `public`), with PostgreSQL identifier quoting.
fn parse_table(text: &str) -> ConnectorResult<TableReference> {
    let parts = split_identifiers(text).ok_or_else(|| {
        ConnectorError::invalid_option(format!(
            "option 'table' must be 'schema.table' or 'table', not '{text}'"
        ))
    })?;
    match parts.as_slice() {
        [table] => Ok(TableReference::partial("public", table.as_str())),
        [schema, table] => Ok(TableReference::partial(schema.as_str(), table.as_str())),
        _ => Err(ConnectorError::invalid_option(format!(
            "option 'table' must be 'schema.table' or 'table', not '{text}'"
        ))),
    }
}

/// Split a dotted identifier list, folding unquoted parts to lower case and keeping
/// quoted ones exact (`""` inside quotes is one quote), as PostgreSQL does.
fn split_identifiers(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            part = part.trim().to_string();
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

/// A positive whole number; every key read with it has a declared default or
/// is required by the caller.
fn parse_positive(key: &str, value: Option<&str>) -> ConnectorResult<u32> {
    match value {
        None => Err(ConnectorError::invalid_option(format!(
            "option '{key}' needs a value"
        ))),
        Some(v) => parse_whole(key, v).ok().filter(|n| *n > 0).ok_or_else(|| {
            ConnectorError::invalid_option(format!(
                "option '{key}' must be a positive whole number, not '{v}'"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::flavor::REDSHIFT;

    use crate::options::pairs as opts;

    #[test]
    fn location_and_defaults() {
        let o = PostgresOptions::parse(
            "postgres://reporting@db.internal/app",
            &opts(&[("table", "Orders")]),
        )
        .unwrap();
        assert_eq!(o.host, "db.internal");
        assert_eq!(o.port, 5432);
        assert_eq!(o.user, "reporting");
        assert_eq!(o.database, "app");
        assert_eq!(o.table, TableReference::partial("public", "orders"));
        assert_eq!(o.sslmode, "prefer");
        assert_eq!(o.pool_size, 4);
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
        let o = PostgresOptions::parse(
            "postgresql://r@h:6543/d",
            &opts(&[
                ("table", r#""Sales"."Q1.""x""""#),
                ("sslmode", "disable"),
                ("pool_size", "2"),
                ("connect_timeout", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(o.port, 6543);
        assert_eq!(o.table, TableReference::partial("Sales", "Q1.\"x\""));
        assert_eq!(o.pool_size, 2);
        assert_eq!(o.partitioning, None);

        let o = PostgresOptions::parse_for(
            &REDSHIFT,
            "redshift://etl@cluster.example/dw",
            &opts(&[
                ("table", "sales"),
                ("partition_column", "id"),
                ("partitions", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(o.port, 5439);
        assert_eq!(
            o.compute_context(),
            "redshift://etl@cluster.example:5439/dw"
        );
        assert_eq!(
            o.partitioning,
            Some(RangePartitioning {
                column: "id".into(),
                partitions: 8
            })
        );
        let e = PostgresOptions::parse_for(
            &REDSHIFT,
            "postgres://etl@cluster.example/dw",
            &opts(&[("table", "sales")]),
        )
        .unwrap_err();
        assert!(e.message.contains("redshift://"), "{}", e.message);
    }

    #[test]
    fn secrets_and_bad_values_are_refused() {
        let err = |loc: &str, pairs: &[(&str, &str)]| {
            PostgresOptions::parse(loc, &opts(pairs))
                .err()
                .unwrap()
                .message
        };
        let loc = "postgres://u@h/d";
        assert!(err("postgres://u:hunter2@h/d", &[("table", "t")]).contains("password_env"));
        assert!(err(loc, &[("table", "t"), ("password", "hunter2")]).contains("password_env"));
        assert!(err(loc, &[]).contains("'table' is required"));
        assert!(err(loc, &[("table", "a.b.c")]).contains("schema.table"));
        assert!(err(loc, &[("table", "t"), ("sslmode", "maybe")]).contains("sslmode"));
        assert!(err(loc, &[("table", "t"), ("pool_size", "0")]).contains("positive"));
        assert!(err(loc, &[("table", "t"), ("colour", "red")]).contains("unknown option"));
        assert!(err(loc, &[("table", "t"), ("partitions", "4")]).contains("go together"));
        assert!(
            err(
                loc,
                &[
                    ("table", "t"),
                    ("partition_column", "id"),
                    ("partitions", "1000")
                ]
            )
            .contains("between 2 and")
        );
        assert!(err("mysql://u@h/d", &[("table", "t")]).contains("postgres://"));
        assert!(
            err(
                loc,
                &[("table", "t"), ("password_env", "VIVACE_TEST_SURELY_UNSET")]
            )
            .contains("VIVACE_TEST_SURELY_UNSET")
        );
    }
}

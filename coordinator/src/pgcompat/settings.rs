//! Per-session run-time settings (`SET` / `SHOW`), with the values PostgreSQL
//! clients expect to read back. `datafusion.*` keys go to DataFusion's own config.

use std::collections::BTreeMap;

use crate::error::{SqlError, SqlResult, sqlstate};

/// The PostgreSQL version Vivace reports; drivers pick their SQL by it.
pub const SERVER_VERSION: &str = "16.6";

/// Settings every session starts with, as PostgreSQL spells and prints them.
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("lc_messages", "C"),
    ("lc_monetary", "C"),
    ("lc_numeric", "C"),
    ("lc_time", "C"),
    ("lock_timeout", "0"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", SERVER_VERSION),
    ("server_version_num", "160006"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

/// Settings that may be shown but not changed.
const READ_ONLY: &[&str] = &[
    "integer_datetimes",
    "is_superuser",
    "lc_collate",
    "lc_ctype",
    "max_identifier_length",
    "max_index_keys",
    "server_encoding",
    "server_version",
    "server_version_num",
];

/// Prefix of the server's own settings (`vivace.server.listen`, ...), shown
/// read-only in every session.
pub const SERVER_SETTING_PREFIX: &str = "vivace.server.";

/// One session's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// What `RESET` restores: the defaults, with the client's start-up
    /// parameters applied.
    session_defaults: BTreeMap<String, String>,
    /// The user the client logged in as.
    user: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        let values: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            session_defaults: values.clone(),
            values,
            user: None,
        }
    }
}

impl Settings {
    /// The defaults, with the server's settings (by key, without the prefix)
    /// added read-only under [`SERVER_SETTING_PREFIX`].
    pub fn with_server_settings(server: &[(String, String)]) -> Self {
        let mut settings = Self::default();
        for (key, value) in server {
            settings
                .values
                .insert(format!("{SERVER_SETTING_PREFIX}{key}"), value.clone());
        }
        settings.session_defaults = settings.values.clone();
        settings
    }
}

/// Map spellings PostgreSQL accepts to the canonical setting name.
fn canonical(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "transaction isolation level" => "transaction_isolation".into(),
        "time zone" => "timezone".into(),
        "names" => "client_encoding".into(),
        "session authorization" => "session_authorization".into(),
        _ => name,
    }
}

impl Settings {
    /// Change a setting. Unknown names without a dot are refused like PostgreSQL does;
    /// dotted names (`myapp.x`) are custom settings and always accepted.
    pub fn set(&mut self, name: &str, value: &str) -> SqlResult<()> {
        let name = canonical(name);
        if READ_ONLY.contains(&name.as_str()) || name.starts_with(SERVER_SETTING_PREFIX) {
            return Err(SqlError::new(
                "55P02",
                format!("parameter \"{name}\" cannot be changed"),
            ));
        }
        if !self.values.contains_key(&name) && !name.contains('.') {
            return Err(unknown(&name));
        }
        if name == "statement_timeout" && parse_duration_ms(value).is_none() {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"statement_timeout\": \"{value}\""),
            ));
        }
        if name == "client_encoding" {
            // Vivace sends and reads UTF-8 only; claiming another encoding would
            // have the client misread every non-ASCII byte.
            let plain = value.trim().trim_matches('\'').replace(['-', '_'], "");
            if !["utf8", "unicode", "default"].contains(&plain.to_ascii_lowercase().as_str()) {
                return Err(SqlError::not_supported(format!(
                    "client_encoding \"{value}\" is not supported: Vivace speaks UTF8 only"
                )));
            }
            self.values.insert(name, "UTF8".into());
            return Ok(());
        }
        let value = if value.eq_ignore_ascii_case("default") {
            self.session_defaults
                .get(&name)
                .cloned()
                .unwrap_or_default()
        } else {
            value.to_string()
        };
        self.values.insert(name, value);
        Ok(())
    }

    /// The value of a setting, as `SHOW` prints it.
    pub fn get(&self, name: &str) -> SqlResult<String> {
        let name = canonical(name);
        self.values
            .get(&name)
            .cloned()
            .ok_or_else(|| unknown(&name))
    }

    /// `statement_timeout` as a duration (zero: none).
    pub fn statement_timeout(&self) -> std::time::Duration {
        let ms = self
            .values
            .get("statement_timeout")
            .and_then(|v| parse_duration_ms(v))
            .unwrap_or(0);
        std::time::Duration::from_millis(ms)
    }

    /// Take the run-time parameters a client sent in its StartupMessage
    /// (`TimeZone`, `application_name`, `DateStyle`, and `-c name=value` or
    /// `--name=value` in `options`), as PostgreSQL does. Connection keys (`user`,
    /// `database`, `replication`) are not settings; parameters Vivace does not
    /// know or cannot change are ignored, where PostgreSQL would refuse the
    /// connection, so a driver's extra parameters never lock it out.
    pub fn apply_startup_parameters<'a>(
        &mut self,
        parameters: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) {
        for (name, value) in parameters {
            match name.as_str() {
                "user" => self.user = Some(value.clone()),
                "database" | "replication" => {}
                "options" => {
                    for (name, value) in command_line_options(value) {
                        self.set_from_client(&name, &value);
                    }
                }
                _ => self.set_from_client(name, value),
            }
        }
        self.session_defaults = self.values.clone();
    }

    /// The user the client logged in as (its start-up `user`).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// `RESET ALL`: every setting back to its session default.
    pub fn reset_all(&mut self) {
        self.values = self.session_defaults.clone();
    }

    fn set_from_client(&mut self, name: &str, value: &str) {
        let value = if canonical(name) == "datestyle" && !value.contains(',') {
            // PostgreSQL keeps the field order when only the style is given.
            format!("{value}, MDY")
        } else {
            value.to_string()
        };
        if let Err(e) = self.set(name, &value) {
            tracing::debug!(parameter = name, error = %e.message, "start-up parameter ignored");
        }
    }

    /// Every setting, sorted by name (`SHOW ALL`).
    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }
}

/// `-c name=value` and `--name=value` pairs of a start-up `options` string.
fn command_line_options(options: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let pair = if word == "-c" {
            words.next()
        } else {
            word.strip_prefix("-c").or_else(|| word.strip_prefix("--"))
        };
        if let Some((name, value)) = pair.and_then(|p| p.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_string()));
        }
    }
    out
}

/// A PostgreSQL time setting in milliseconds: `500`, `500ms`, `2s`, `1min`, `1h`,
/// `DEFAULT`.
fn parse_duration_ms(value: &str) -> Option<u64> {
    let v = value.trim().to_ascii_lowercase();
    if v == "default" {
        return Some(0);
    }
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((number * scale).round() as u64)
}

/// A setting's name as PostgreSQL heads its `SHOW` column: the canonical
/// name, with the capitals PostgreSQL's own spelling has.
pub fn display_name(name: &str) -> String {
    let name = canonical(name);
    match name.as_str() {
        "datestyle" => "DateStyle".into(),
        "intervalstyle" => "IntervalStyle".into(),
        "timezone" => "TimeZone".into(),
        _ => name,
    }
}

fn unknown(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_parameters_become_settings() {
        let mut s = Settings::default();
        let sent: Vec<(String, String)> = [
            ("user", "alice"),
            ("database", "vivace"),
            ("TimeZone", "Etc/UTC"),
            ("DateStyle", "ISO"),
            ("application_name", "Metabase"),
            ("options", "-c statement_timeout=5s --search-path=public"),
            ("no_such_thing", "1"),
            ("server_version", "9.0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        s.apply_startup_parameters(sent.iter().map(|(k, v)| (k, v)));
        assert_eq!(s.get("timezone").unwrap(), "Etc/UTC");
        assert_eq!(s.get("datestyle").unwrap(), "ISO, MDY");
        assert_eq!(s.get("application_name").unwrap(), "Metabase");
        assert_eq!(s.statement_timeout(), std::time::Duration::from_secs(5));
        assert_eq!(s.get("search_path").unwrap(), "public");
        assert_eq!(s.get("server_version").unwrap(), SERVER_VERSION);
        assert!(s.get("user").is_err());
        s.set("client_encoding", "utf-8").unwrap();
        assert_eq!(s.get("client_encoding").unwrap(), "UTF8");
        assert_eq!(s.set("NAMES", "LATIN1").unwrap_err().code, "0A000");
    }

    #[test]
    fn behaves_like_postgres_settings() {
        let mut s = Settings::default();
        assert_eq!(
            s.get("TRANSACTION ISOLATION LEVEL").unwrap(),
            "read committed"
        );
        assert_eq!(s.get("server_version").unwrap(), "16.6");
        s.set("application_name", "psql").unwrap();
        assert_eq!(s.get("application_name").unwrap(), "psql");
        s.set("myapp.flag", "1").unwrap();
        assert_eq!(s.get("myapp.flag").unwrap(), "1");
        assert_eq!(s.set("no_such_thing", "1").unwrap_err().code, "42704");
        assert_eq!(s.get("no_such_thing").unwrap_err().code, "42704");
        assert_eq!(s.set("server_version", "1").unwrap_err().code, "55P02");
        s.set("extra_float_digits", "3").unwrap();
        s.set("extra_float_digits", "DEFAULT").unwrap();
        assert_eq!(s.get("extra_float_digits").unwrap(), "1");
    }

    #[test]
    fn statement_timeout_takes_postgres_units() {
        let mut s = Settings::default();
        assert!(s.statement_timeout().is_zero());
        for (text, ms) in [
            ("1500", 1500),
            ("250ms", 250),
            ("2s", 2000),
            ("1min", 60_000),
        ] {
            s.set("statement_timeout", text).unwrap();
            assert_eq!(s.statement_timeout().as_millis(), ms, "{text}");
        }
        assert_eq!(
            s.set("statement_timeout", "soon").unwrap_err().code,
            "22023"
        );
    }
}

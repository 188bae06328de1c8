//! Connector `OPTIONS (...)` keys, declared once per connector: each key with
//! its meaning, its default and whether its value would be a secret. The key
//! check at `CREATE`, the defaults the parsers read, the list of valid keys in
//! error messages and the contract tests all come from the declaration.

use std::collections::BTreeMap;

use crate::{ConnectorError, ConnectorResult};

/// One key of a connector's `OPTIONS (...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The key, lower case.
    pub key: &'static str,
    /// What it means, for documentation and `\h`-style listings.
    pub doc: &'static str,
    /// The value used when the key is not given; `None`: not set (or
    /// computed, as `doc` says).
    pub default: Option<&'static str>,
    /// The value would be a secret: the key is refused, so that no secret is
    /// ever stored in the catalog or shown; `instead` names the key to use.
    pub secret: Option<&'static str>,
}

impl OptionSpec {
    /// A key taking a value, with no default.
    pub const fn key(key: &'static str, doc: &'static str) -> Self {
        Self {
            key,
            doc,
            default: None,
            secret: None,
        }
    }

    /// A key with a default value.
    pub const fn with_default(key: &'static str, doc: &'static str, default: &'static str) -> Self {
        Self {
            key,
            doc,
            default: Some(default),
            secret: None,
        }
    }

    /// A key whose value would be a secret: always refused, pointing at
    /// `instead` (a key naming an environment variable).
    pub const fn secret(key: &'static str, instead: &'static str) -> Self {
        Self {
            key,
            doc: "refused: a secret would be stored in the catalog",
            default: None,
            secret: Some(instead),
        }
    }
}

/// The keys of `a` then those of `b`, as one list (`N` = `A + B`): how
/// connectors share groups of keys (the `aws.*` keys of S3 locations).
pub const fn concat<const A: usize, const B: usize, const N: usize>(
    a: [OptionSpec; A],
    b: [OptionSpec; B],
) -> [OptionSpec; N] {
    assert!(A + B == N, "N must be A + B");
    let mut out = [OptionSpec::key("", ""); N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

/// `OPTIONS` of one table, checked against its connector's declaration.
#[derive(Debug, Clone, Copy)]
pub struct OptionValues<'a> {
    specs: &'static [OptionSpec],
    given: &'a BTreeMap<String, String>,
}

impl<'a> OptionValues<'a> {
    /// Check every given key against `specs`: secrets and unknown keys are
    /// refused, the error listing the valid keys (`what` names the kind of
    /// table, e.g. `POSTGRES`).
    pub fn check(
        specs: &'static [OptionSpec],
        given: &'a BTreeMap<String, String>,
        what: &str,
    ) -> ConnectorResult<Self> {
        for key in given.keys() {
            match specs.iter().find(|spec| spec.key == key) {
                Some(OptionSpec {
                    secret: Some(instead),
                    ..
                }) => {
                    return Err(ConnectorError::invalid_option(format!(
                        "option '{key}' would store a secret in the catalog; name an environment variable instead: '{instead}' 'VARIABLE_NAME'"
                    )));
                }
                Some(_) => {}
                None => {
                    return Err(ConnectorError::invalid_option(format!(
                        "unknown option '{key}' for {what} tables; valid options: {}",
                        valid_keys(specs).join(", ")
                    )));
                }
            }
        }
        Ok(Self { specs, given })
    }

    /// The value of `key`: given, else its declared default.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let spec = self.specs.iter().find(|spec| spec.key == key);
        debug_assert!(spec.is_some(), "option '{key}' is not declared");
        self.given
            .get(key)
            .map(String::as_str)
            .or_else(|| spec.and_then(|spec| spec.default))
    }

    /// Whether `key` was given.
    pub fn given(&self, key: &str) -> bool {
        self.given.contains_key(key)
    }
}

/// An on/off option (`true`/`on`/`yes`/`1` or `false`/`off`/`no`/`0`, any
/// case); `default` when not given.
pub fn parse_bool(key: &str, value: Option<&str>, default: bool) -> ConnectorResult<bool> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "on" | "yes" | "1") => Ok(true),
        Some("false" | "off" | "no" | "0") => Ok(false),
        Some(other) => Err(ConnectorError::invalid_option(format!(
            "option '{key}' must be true or false, not '{other}'"
        ))),
    }
}

/// A whole-number option (0 and up).
pub fn parse_whole(key: &str, value: &str) -> ConnectorResult<u32> {
    value.trim().parse::<u32>().map_err(|_| {
        ConnectorError::invalid_option(format!(
            "option '{key}' must be a whole number, not '{value}'"
        ))
    })
}

/// The value of environment variable `variable`, which option `key` names
/// (secrets are read this way, by each process that needs them).
pub fn read_env(key: &str, variable: &str) -> ConnectorResult<String> {
    std::env::var(variable).map_err(|_| {
        ConnectorError::invalid_option(format!(
            "environment variable \"{variable}\" named by option '{key}' is not set for the Vivace process"
        ))
    })
}

/// A path option that must name a readable file (a CA certificate).
pub fn existing_file(
    key: &str,
    value: Option<&str>,
) -> ConnectorResult<Option<std::path::PathBuf>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let path = std::path::PathBuf::from(value);
    if !path.is_file() {
        return Err(ConnectorError::invalid_option(format!(
            "option '{key}': no readable file at '{}'",
            path.display()
        )));
    }
    Ok(Some(path))
}

/// Refuse option `key` given without option `needed` (a password without a user).
pub fn requires(values: &OptionValues<'_>, key: &str, needed: &str) -> ConnectorResult<()> {
    if values.given(key) && !values.given(needed) {
        return Err(ConnectorError::invalid_option(format!(
            "option '{key}' needs option '{needed}'"
        )));
    }
    Ok(())
}

/// `OPTIONS` as the parsers take them, from pairs (for tests).
#[cfg(test)]
pub fn pairs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The keys a table may be given (secrets left out).
pub fn valid_keys(specs: &[OptionSpec]) -> Vec<&'static str> {
    specs
        .iter()
        .filter(|spec| spec.secret.is_none())
        .map(|spec| spec.key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec::with_default("size", "how big", "4"),
        OptionSpec::key("name", "what"),
        OptionSpec::secret("password", "password_env"),
    ];

    #[test]
    fn defaults_unknown_keys_and_secrets() {
        let given = BTreeMap::from([("name".to_string(), "x".to_string())]);
        let values = OptionValues::check(SPECS, &given, "TEST").unwrap();
        assert_eq!(values.get("size"), Some("4"));
        assert_eq!(values.get("name"), Some("x"));
        let given = BTreeMap::from([("colour".to_string(), "x".to_string())]);
        let err = OptionValues::check(SPECS, &given, "TEST").unwrap_err();
        assert!(
            err.to_string().contains("valid options: size, name"),
            "{err}"
        );
        let given = BTreeMap::from([("password".to_string(), "x".to_string())]);
        let err = OptionValues::check(SPECS, &given, "TEST").unwrap_err();
        assert!(err.to_string().contains("'password_env'"), "{err}");
    }
}

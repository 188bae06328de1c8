//! The shared cluster secret.

use std::path::Path;

use anyhow::Context;

/// gRPC metadata key that carries the cluster secret on every cluster call.
pub const SECRET_HEADER: &str = "x-vivace-cluster-secret";

/// A secret shared by the coordinator and its workers. Never printed: `Debug`
/// shows a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(String);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(********)")
    }
}

impl ClusterSecret {
    /// Read the secret from a file (surrounding whitespace ignored). Refuses an
    /// empty secret, so a blank file cannot open the cluster.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read cluster secret file {}", path.display()))?;
        Self::new(text.trim())
    }

    /// Wrap a secret value; it must be printable ASCII (it travels as a header).
    pub fn new(value: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            value.len() >= 16,
            "the cluster secret must be at least 16 characters"
        );
        anyhow::ensure!(
            value.bytes().all(|b| b.is_ascii_graphic()),
            "the cluster secret must be printable ASCII without spaces"
        );
        Ok(Self(value.to_string()))
    }

    /// A random secret for a single-process deployment (embedded workers).
    pub fn random() -> Self {
        Self(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// The value to send.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if presented.len() != expected.len() {
            return false;
        }
        presented
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_and_never_printed() {
        let s = ClusterSecret::new("0123456789abcdef-secret").unwrap();
        assert!(s.matches(b"0123456789abcdef-secret"));
        assert!(!s.matches(b"0123456789abcdef-secreT"));
        assert!(!s.matches(b"short"));
        assert!(!format!("{s:?}").contains("0123"));
        assert!(ClusterSecret::new("too short").is_err());
        assert!(ClusterSecret::new("has a space in it, long enough").is_err());
        assert_ne!(ClusterSecret::random(), ClusterSecret::random());
    }
}

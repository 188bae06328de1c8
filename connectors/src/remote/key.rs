//! A remote table's primary key as its source declares it, for catalog views
//! (`\d` in psql shows it as the table's primary-key index): Cassandra's
//! partition and clustering columns, a PostgreSQL table's primary key.

/// A table's key: the columns that locate its rows (a partition key), then
/// those that order rows inside one location (clustering columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceKey {
    /// How the source stores by this key (`cassandra`), shown where
    /// PostgreSQL shows an index's access method.
    pub method: &'static str,
    /// The partition-key columns, in key order.
    pub partition: Vec<String>,
    /// The clustering columns, in key order.
    pub clustering: Vec<String>,
}

impl SourceKey {
    /// Every key column, partition key first.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.partition
            .iter()
            .chain(&self.clustering)
            .map(String::as_str)
    }

    /// The key as CQL writes a primary key, after the method:
    /// `cassandra ((user_id, day), ts)`; a one-column partition key without
    /// its own parentheses, as CQL prints it.
    pub fn describe(&self) -> String {
        let partition = self.partition.join(", ");
        let partition = if self.partition.len() == 1 {
            partition
        } else {
            format!("({partition})")
        };
        let columns = std::iter::once(partition)
            .chain(self.clustering.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ");
        format!("{} ({columns})", self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: &[&str], clustering: &[&str]) -> SourceKey {
        SourceKey {
            method: "cassandra",
            partition: partition.iter().map(|s| s.to_string()).collect(),
            clustering: clustering.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn describes_like_cql() {
        assert_eq!(key(&["id"], &[]).describe(), "cassandra (id)");
        assert_eq!(
            key(&["user_id", "day"], &["ts", "seq"]).describe(),
            "cassandra ((user_id, day), ts, seq)"
        );
        assert_eq!(key(&["u"], &["ts"]).describe(), "cassandra (u, ts)");
    }
}

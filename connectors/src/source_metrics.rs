//! The metrics connectors record about the sources they read, named once here
//! and described by [`describe`] in each process that exports metrics (the
//! coordinator and workers). Labels are bounded: the connector's name, the
//! source's server as the catalog names it (no user, no secret), the object
//! store's scheme and the operation.

/// Requests sent to a source read by requests, counted as each is sent, by
/// `connector`, `server` and `operation`: `query` (one SQL statement);
/// `search`, `count`, `point_in_time` (opened or closed) and `metadata`
/// (mappings, index lists, the server's version) for a search server; `page`
/// (one CQL page) and `prepare` for Cassandra.
pub const SOURCE_REQUESTS: &str = "vivace_source_requests_total";
/// Rows received from a source read by requests, by `connector` and `server`.
pub const SOURCE_ROWS: &str = "vivace_source_rows_total";
/// Requests sent to an object store, by `store` (`s3`) and `operation`
/// (`get`, `head`, `list`, `put`, `copy`, `rename`, `delete`).
pub const OBJECT_STORE_REQUESTS: &str = "vivace_object_store_requests_total";
/// Bytes of object bodies read from an object store, by `store`.
pub const OBJECT_STORE_READ_BYTES: &str = "vivace_object_store_read_bytes_total";
/// Bytes written to an object store, by `store`.
pub const OBJECT_STORE_WRITTEN_BYTES: &str = "vivace_object_store_written_bytes_total";

/// Describe these metrics to the process's recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter};
    describe_counter!(
        SOURCE_REQUESTS,
        "Requests sent to remote sources, by connector, server and operation"
    );
    describe_counter!(
        SOURCE_ROWS,
        "Rows received from remote sources, by connector and server"
    );
    describe_counter!(
        OBJECT_STORE_REQUESTS,
        "Requests sent to object stores, by store and operation"
    );
    describe_counter!(
        OBJECT_STORE_READ_BYTES,
        Unit::Bytes,
        "Bytes read from object stores"
    );
    describe_counter!(
        OBJECT_STORE_WRITTEN_BYTES,
        Unit::Bytes,
        "Bytes written to object stores"
    );
}

/// The labels of one source's metrics (its connector and server), made once
/// and used for every request and batch.
#[derive(Debug, Clone)]
pub struct SourceLabels {
    connector: String,
    server: String,
}

impl SourceLabels {
    /// The labels of `connector`'s source whose compute context is
    /// `compute_context` (see [`server_label`]).
    pub fn new(connector: &str, compute_context: &str) -> Self {
        Self {
            connector: connector.to_string(),
            server: server_label(compute_context),
        }
    }

    /// Count one request of `operation`, sent now.
    pub fn request_sent(&self, operation: &'static str) {
        metrics::counter!(
            SOURCE_REQUESTS,
            "connector" => self.connector.clone(),
            "server" => self.server.clone(),
            "operation" => operation,
        )
        .increment(1);
    }

    /// The counter of the rows received from this source.
    pub fn rows_received(&self) -> metrics::Counter {
        metrics::counter!(
            SOURCE_ROWS,
            "connector" => self.connector.clone(),
            "server" => self.server.clone(),
        )
    }
}

/// The server a remote source's requests go to, as a label: its compute
/// context (`postgres://user@host:5432/db`) up to its first space, without
/// the user.
pub fn server_label(compute_context: &str) -> String {
    let context = compute_context.split(' ').next().unwrap_or_default();
    match context.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let rest = match rest[..authority_end].rfind('@') {
                Some(at) => &rest[at + 1..],
                None => rest,
            };
            format!("{scheme}://{rest}")
        }
        None => context.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::server_label;

    #[test]
    fn the_server_label_drops_the_user() {
        assert_eq!(
            server_label("postgres://ann@db.local:5432/sales"),
            "postgres://db.local:5432/sales"
        );
        assert_eq!(
            server_label("http://127.0.0.1:9200"),
            "http://127.0.0.1:9200"
        );
        assert_eq!(
            server_label("cassandra://bob@10.0.0.1:9042,10.0.0.2:9042/ks consistency=ONE"),
            "cassandra://10.0.0.1:9042,10.0.0.2:9042/ks"
        );
    }
}

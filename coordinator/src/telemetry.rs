//! The Prometheus metrics Vivace exports, named once here. Recorded through
//! the `metrics` facade; `/metrics` renders them ([`install`]). Labels are
//! bounded sets (states, SQLSTATE classes, configured resource groups,
//! connector names, phases): never query text, user names or table names.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Queries ended, by `state`, `sqlstate_class` and `resource_group`.
pub const QUERIES: &str = "vivace_queries_total";
/// Queries admitted to run, by `resource_group`.
pub const QUERIES_STARTED: &str = "vivace_queries_started_total";
/// Seconds each phase of a query took, by `phase` (queued, planning, execution).
pub const QUERY_SECONDS: &str = "vivace_query_duration_seconds";
/// Rows sent to clients.
pub const ROWS_RETURNED: &str = "vivace_rows_returned_total";
/// Bytes of DataRow messages sent to clients.
pub const BYTES_RETURNED: &str = "vivace_returned_bytes_total";
/// Queries running now, by `resource_group`.
pub const QUERIES_RUNNING: &str = "vivace_queries_running";
/// Queries waiting for their resource group, by `resource_group`.
pub const QUERIES_QUEUED: &str = "vivace_queries_queued";
/// Client sessions open now.
pub const SESSIONS: &str = "vivace_sessions_active";
/// Tables, views and schemas in the catalog.
pub const CATALOG_OBJECTS: &str = "vivace_catalog_objects";
/// Live workers.
pub const WORKERS: &str = "vivace_workers";
/// Bytes of the memory pool in use.
pub const MEMORY_USED: &str = "vivace_memory_pool_used_bytes";
/// The memory pool's limit, when one is configured.
pub const MEMORY_LIMIT: &str = "vivace_memory_pool_limit_bytes";
/// Queries re-run after a worker was lost.
pub const RETRIES: &str = "vivace_query_retries_total";
/// Bytes of the batches distributed queries' stages sent to the stages (or
/// the coordinator) above them, counted once each query ends.
pub const EXCHANGE_BYTES: &str = "vivace_exchange_bytes_total";
/// Times queries' operators spilled to disk (sorts, joins, aggregations past
/// their memory), counted as each query ends.
pub const SPILLS: &str = "vivace_spills_total";
/// Bytes queries' operators spilled to disk.
pub const SPILLED_BYTES: &str = "vivace_spilled_bytes_total";
/// Workers dropped from the cluster because they stopped answering.
pub const WORKERS_LOST: &str = "vivace_workers_lost_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process's recorder (once; later calls return the same handle).
/// None when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0, 900.0,
                ])
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        QUERIES,
        "Queries ended, by state, SQLSTATE class and resource group"
    );
    describe_counter!(
        QUERIES_STARTED,
        "Queries admitted to run, by resource group"
    );
    describe_histogram!(
        QUERY_SECONDS,
        Unit::Seconds,
        "Time queries spent queued, planning and executing, by phase"
    );
    describe_counter!(ROWS_RETURNED, "Rows sent to clients");
    describe_counter!(BYTES_RETURNED, Unit::Bytes, "Bytes of rows sent to clients");
    describe_gauge!(QUERIES_RUNNING, "Queries running, by resource group");
    describe_gauge!(QUERIES_QUEUED, "Queries waiting for their resource group");
    describe_gauge!(SESSIONS, "Client sessions open");
    describe_gauge!(CATALOG_OBJECTS, "Tables, views and schemas in the catalog");
    describe_gauge!(WORKERS, "Live workers");
    describe_gauge!(MEMORY_USED, Unit::Bytes, "Memory pool in use");
    describe_gauge!(MEMORY_LIMIT, Unit::Bytes, "Memory pool limit");
    describe_counter!(RETRIES, "Queries re-run after a worker was lost");
    describe_counter!(
        WORKERS_LOST,
        "Workers dropped because they stopped answering"
    );
    describe_counter!(
        EXCHANGE_BYTES,
        Unit::Bytes,
        "Bytes distributed queries' stages sent to the stages above them"
    );
    describe_counter!(SPILLS, "Times queries' operators spilled to disk");
    describe_counter!(
        SPILLED_BYTES,
        Unit::Bytes,
        "Bytes queries' operators spilled to disk"
    );
    vivace_connectors::source_metrics::describe();
    // Counters without labels exist from the start, at zero.
    for name in [
        ROWS_RETURNED,
        BYTES_RETURNED,
        RETRIES,
        WORKERS_LOST,
        EXCHANGE_BYTES,
        SPILLS,
        SPILLED_BYTES,
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!(SESSIONS).increment(0.0);
}

/// The SQLSTATE class of `code` as a label (`57` for `57014`, `00` for success).
pub fn sqlstate_class(code: Option<&str>) -> &'static str {
    const CLASSES: &[&str] = &[
        "00", "08", "0A", "22", "23", "25", "26", "28", "34", "3F", "40", "42", "53", "54", "55",
        "57", "58", "HV", "XX",
    ];
    let Some(code) = code else { return "00" };
    CLASSES
        .iter()
        .find(|c| code.starts_with(**c))
        .copied()
        .unwrap_or("other")
}

//! The session template: the DataFusion state every session starts from —
//! configuration, planner rules (with cancellation checkpoints), the federation
//! and distributed planners, the connectors' codec and handlers, the `system`
//! tables, and what the SQL dialect adds ([`SqlDialect`]).

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_distributed::{DistributedExt, SessionStateBuilderExt};
use vivace_catalog::{DATABASE, DEFAULT_SCHEMA};
use vivace_connectors::{ConnectorRegistry, Side};

use super::federation::{self, CoordinatorFederation, VivaceOptions};
use super::system_queries::QueriesTable;
use super::system_tasks::TasksTable;
use super::tracker::QueryTracker;
use super::{
    BROADCAST_JOIN_MAX_BYTES, BROADCAST_JOIN_MAX_ROWS, Execution, QUERY_RETRIES, RetryPolicy,
    SYSTEM_SCHEMA, planning,
};
use crate::cluster::{LiveWorkers, Membership, NodesTable};
use crate::error::SqlResult;

/// What a SQL dialect adds to the session template: rules that run before
/// DataFusion's type coercion, and functions and catalog schemas.
#[async_trait]
pub trait SqlDialect: Send + Sync {
    /// Analyzer rules to run before type coercion, in order.
    fn analyzer_rules(&self) -> Vec<Arc<dyn AnalyzerRule + Send + Sync>>;

    /// Register functions and catalog schemas on the template's context.
    async fn install(&self, ctx: &SessionContext) -> anyhow::Result<()>;

    /// Plan a stored view's query (the text `CREATE VIEW` kept) on `state`,
    /// with the column names the dialect gives its results.
    async fn plan_view(&self, state: &SessionState, query: &str) -> SqlResult<LogicalPlan>;
}

/// The template's context, the live worker set (when distributed) and how
/// many times a query lost to a worker may be re-run.
pub(super) struct Template {
    pub ctx: SessionContext,
    pub membership: Option<Arc<Membership>>,
    pub retries: usize,
}

/// Build the session template.
pub(super) async fn template(
    execution: Execution,
    memory_limit: Option<usize>,
    connectors: &ConnectorRegistry,
    tracker: Arc<QueryTracker>,
    dialect: &dyn SqlDialect,
) -> anyhow::Result<Template> {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(DATABASE, DEFAULT_SCHEMA)
        // Vivace registers its own, PostgreSQL-shaped information_schema.
        .with_information_schema(false)
        .with_option_extension(VivaceOptions::default());
    // `timestamptz` / `timestamp with time zone` plan as UTC timestamps with a
    // zone; with DataFusion's default (no zone) they were plain timestamps.
    config.options_mut().execution.time_zone = Some("+00:00".into());
    if matches!(execution, Execution::Distributed { .. }) {
        // Broadcast a join's build side up to 32 MiB / 1M rows (DataFusion's
        // single-process defaults: 1 MiB / 128K rows). Across workers a
        // partitioned join shuffles *both* sides over the network; sending a
        // few MB of build side to every task instead spares shuffling the
        // probe side (TPC-H q5 at SF 1: 137 MB of lineitem). Trino broadcasts
        // up to 100 MB by default (`join-max-broadcast-table-size`). Sessions
        // may SET either back.
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_single_partition_threshold = BROADCAST_JOIN_MAX_BYTES;
        optimizer.hash_join_single_partition_threshold_rows = BROADCAST_JOIN_MAX_ROWS;
    }
    // The federation planner goes in first: the distributed planner wraps
    // whatever planner is installed when it is added.
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(vivace_worker::runtime_env(memory_limit)?)
        .with_default_features()
        .with_analyzer_rules(planning::analyzer_checkpoints(analyzer_rules(dialect)))
        .with_optimizer_rules(planning::optimizer_checkpoints(
            federation::optimizer_rules(),
        ))
        .with_physical_optimizer_rules(planning::physical_checkpoints())
        .with_query_planner(federation::query_planner());
    // Functions only a connector's sources evaluate (full-text search).
    builder
        .scalar_functions()
        .get_or_insert_with(Vec::new)
        .extend(connectors.functions());
    // Table functions: time travel (`table_at`) and the connectors' own
    // (`delta_history`).
    builder
        .table_functions()
        .get_or_insert_with(Default::default)
        .extend(connectors.table_functions().into_iter().map(|(name, f)| {
            let function = datafusion::catalog::TableFunction::new(name.to_string(), f);
            (name.to_string(), Arc::new(function))
        }));
    let ships = connectors.clone();
    let (state, membership, retries) = match execution {
        Execution::Local => (builder.build(), None, 0),
        Execution::Distributed {
            membership,
            secret,
            retry,
            local,
        } => (
            coordinator_side_federation(
                ships,
                builder
                    .with_distributed_worker_resolver(LiveWorkers(membership.clone()))
                    .with_distributed_channel_resolver(
                        vivace_worker::SecretChannelResolver::with_local_workers(&secret, local),
                    )
                    .with_distributed_user_codec_arc(connectors.codec(Side::Coordinator))
                    .with_distributed_desired_task_count_handler(connectors.clone())
                    .with_distributed_scale_up_leaf_node_handler(connectors.clone())
                    // Exchanges are sent uncompressed (the crate's default is
                    // lz4): between embedded workers and on a LAN compressing
                    // costs more CPU than it saves in bytes (TPC-H SF 1 on two
                    // workers: 8-12% faster on the join-heavy queries without
                    // it). `SET distributed.compression = 'lz4'` (or 'zstd')
                    // turns it back on for a slow network.
                    .with_distributed_compression(None)?
                    .with_distributed_planner(),
            )
            .build(),
            Some(membership),
            if retry == RetryPolicy::Query {
                QUERY_RETRIES
            } else {
                0
            },
        ),
    };
    let ctx = SessionContext::new_with_state(state);
    let system = Arc::new(MemorySchemaProvider::new());
    system.register_table(
        "queries".into(),
        Arc::new(QueriesTable::new(Arc::clone(&tracker))),
    )?;
    system.register_table("tasks".into(), Arc::new(TasksTable::new(tracker)))?;
    if let Some(membership) = membership.clone() {
        system.register_table("nodes".into(), Arc::new(NodesTable::new(membership)))?;
    }
    ctx.catalog(DATABASE)
        .context("default catalog missing")?
        .register_schema(SYSTEM_SCHEMA, system)?;
    dialect.install(&ctx).await?;
    Ok(Template {
        ctx,
        membership,
        retries,
    })
}

/// DataFusion's analyzer rules, with the dialect's before type coercion.
fn analyzer_rules(dialect: &dyn SqlDialect) -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Analyzer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "type_coercion")
        .unwrap_or(0);
    for (i, rule) in dialect.analyzer_rules().into_iter().enumerate() {
        rules.insert(at + i, rule);
    }
    rules
}

fn coordinator_side_federation(
    connectors: ConnectorRegistry,
    mut builder: SessionStateBuilder,
) -> SessionStateBuilder {
    match builder.query_planner().take() {
        Some(distributed) => builder.with_query_planner(Arc::new(CoordinatorFederation::new(
            distributed,
            connectors,
        ))),
        None => builder,
    }
}

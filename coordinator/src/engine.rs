//! The engine: the durable catalog, the connectors, and the DataFusion state every
//! session starts from. One per coordinator, shared by all connections.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_distributed::{DistributedExt, SessionStateBuilderExt};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::setup_pg_catalog;
use tokio::sync::Mutex;
use vivace_catalog::{CatalogStore, SchemaDefinition, TableDefinition, TableName};
use vivace_connectors::{
    ConnectorRegistry, SchemaRequest, Side, TableRequest, WORKER_NEEDS_HEADER, WorkerNeed,
};

use crate::cluster::{LiveWorkers, Membership, NodesTable};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::federation::{self, CoordinatorFederation, VivaceOptions};
use crate::planning;
use crate::statement::StatementParser;

/// The database name clients connect to and `current_database()` returns.
pub const DATABASE: &str = "vivace";
/// The schema external tables are registered in.
pub const DEFAULT_SCHEMA: &str = "public";
/// The schema of Vivace's own tables (`system.nodes`).
pub const SYSTEM_SCHEMA: &str = "system";

/// How queries are executed.
pub enum Execution {
    /// In this process only.
    Local,
    /// Cut into stages run by the live workers of `membership`, reached over
    /// channels presenting the cluster secret.
    Distributed {
        /// The live worker set.
        membership: Arc<Membership>,
        /// Secret presented to workers.
        secret: vivace_worker::ClusterSecret,
        /// What to do when a worker is lost during a query.
        retry: RetryPolicy,
        /// The workers running in this process, called without gRPC.
        local: vivace_worker::LocalWorkers,
    },
}

/// What to do when a query fails because a worker was lost (Trino's `retry-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Fail the query.
    None,
    /// Re-run the whole query on the surviving workers, if no row has reached the
    /// client yet (at most [`QUERY_RETRIES`] times).
    Query,
}

/// Largest estimated build side (bytes) a distributed join broadcasts to every task.
pub const BROADCAST_JOIN_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Largest estimated build side (rows) a distributed join broadcasts to every task.
pub const BROADCAST_JOIN_MAX_ROWS: usize = 1024 * 1024;

/// How many times the `query` policy re-runs a query.
pub const QUERY_RETRIES: usize = 2;

impl std::str::FromStr for RetryPolicy {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "query" => Ok(Self::Query),
            other => anyhow::bail!("retry_policy must be 'query' or 'none', not '{other}'"),
        }
    }
}

/// The runtime queries run in: a memory pool bounded by `memory_limit`, or
/// unbounded. Beyond the limit, sorts and aggregations spill to the OS temporary
/// directory and other operators (a hash join's build side) fail the query with
/// "resources exhausted" (SQLSTATE 53200). The pool is greedy, as DataFusion's own
/// CLI uses for `--memory-limit`: with a fair-share pool the final merge of a
/// spilled sort found no memory left while the sorters held their shares.
pub fn query_runtime_env(
    memory_limit: Option<usize>,
) -> anyhow::Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    let mut builder = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
    if let Some(limit) = memory_limit {
        // Tracking names the largest consumers in the error a query gets.
        builder = builder.with_memory_pool(Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(limit),
            std::num::NonZeroUsize::new(3).expect("3 is not zero"),
        )));
    }
    Ok(builder.build_arc()?)
}

/// Shared coordinator state.
pub struct Engine {
    store: CatalogStore,
    connectors: ConnectorRegistry,
    template: SessionState,
    parser: StatementParser,
    tables: Arc<dyn SchemaProvider>,
    membership: Option<Arc<Membership>>,
    retries: usize,
    /// What workers must prepare for the registered tables, by connector and key.
    worker_needs: std::sync::RwLock<std::collections::BTreeMap<(String, String), WorkerNeed>>,
    /// Serialises DDL so "check, validate, persist, register" is atomic per name.
    ddl: Mutex<()>,
}

/// Outcome of a DDL statement that may be a no-op (`IF [NOT] EXISTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlOutcome {
    /// The change was made.
    Done,
    /// Nothing to do; PostgreSQL sends a NOTICE and succeeds.
    Skipped,
}

impl Engine {
    /// Open the catalog in `data_dir` and register every stored table.
    pub async fn open(
        data_dir: &Path,
        execution: Execution,
        memory_limit: Option<usize>,
    ) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let store = CatalogStore::open(&data_dir.join("catalog.db"))
            .context("cannot open the catalog database")?;
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
        let connectors = ConnectorRegistry::default();
        // The federation planner goes in first: the distributed planner wraps
        // whatever planner is installed when it is added.
        let builder = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(query_runtime_env(memory_limit)?)
            .with_default_features()
            .with_analyzer_rules(planning::analyzer_checkpoints(analyzer_rules()))
            .with_optimizer_rules(planning::optimizer_checkpoints(
                federation::optimizer_rules(),
            ))
            .with_physical_optimizer_rules(planning::physical_checkpoints())
            .with_query_planner(federation::query_planner());
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
                            vivace_worker::SecretChannelResolver::with_local_workers(
                                &secret, local,
                            ),
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
        if let Some(membership) = membership.clone() {
            let system = Arc::new(MemorySchemaProvider::new());
            system.register_table("nodes".into(), Arc::new(NodesTable::new(membership)))?;
            ctx.catalog(DATABASE)
                .context("default catalog missing")?
                .register_schema(SYSTEM_SCHEMA, system)?;
        }
        setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| anyhow::anyhow!("cannot set up pg_catalog: {e}"))?;
        let catalog = ctx.catalog(DATABASE).context("default catalog missing")?;
        catalog.register_schema(
            "information_schema",
            Arc::new(crate::information_schema::PgInformationSchema::new(
                ctx.state().catalog_list().clone(),
            )),
        )?;
        let pg_catalog = catalog.schema("pg_catalog").context("pg_catalog missing")?;
        catalog.register_schema(
            "pg_catalog",
            Arc::new(crate::pg_catalog_overlay::PgCatalogOverlay::new(pg_catalog).await?),
        )?;
        for function in crate::functions::catalog_functions(ctx.state().catalog_list().clone())
            .into_iter()
            .chain(crate::sql_rewrite::functions())
            .chain(crate::regclass_casts::functions())
            .chain(crate::privileges::functions())
        {
            ctx.register_udf(function);
        }
        for function in crate::proc_functions::functions(&ctx).await? {
            ctx.register_udf(function);
        }
        ctx.register_udaf(crate::data_subqueries::single_row_aggregate());
        // PostgreSQL's avg, sum and numeric division, in place of DataFusion's;
        // workers register the same (plans name them).
        for function in vivace_functions::aggregate_functions() {
            ctx.register_udaf(function.as_ref().clone());
        }
        for function in vivace_functions::scalar_functions() {
            ctx.register_udf(function.as_ref().clone());
        }
        let tables = ctx
            .catalog(DATABASE)
            .and_then(|c| c.schema(DEFAULT_SCHEMA))
            .context("default schema missing")?;
        let engine = Self {
            store,
            connectors,
            template: ctx.state(),
            parser: StatementParser::default(),
            tables,
            membership,
            retries,
            worker_needs: Default::default(),
            ddl: Mutex::new(()),
        };
        engine.register_stored_tables()?;
        engine.register_stored_schemas()?;
        Ok(Arc::new(engine))
    }

    /// Register every stored definition. A table whose source cannot be opened
    /// (e.g. a credential variable missing) is logged and left out of the session
    /// catalog, but stays stored so it can be fixed or dropped.
    fn register_stored_tables(&self) -> anyhow::Result<()> {
        for def in self
            .store
            .list_tables()
            .context("cannot read the catalog")?
        {
            match self.open_table(&def) {
                Ok(()) => tracing::debug!(table = %def.name, "registered"),
                Err(e) => {
                    tracing::warn!(table = %def.name, error = %e.message, "table not available")
                }
            }
        }
        Ok(())
    }

    /// Register every stored external schema from its cached tables (no I/O).
    /// A schema that cannot be opened is logged and left out, but stays stored.
    fn register_stored_schemas(&self) -> anyhow::Result<()> {
        for def in self
            .store
            .list_schemas()
            .context("cannot read the catalog")?
        {
            let opened = self.schema_provider(&def).and_then(|provider| {
                self.catalog()?
                    .register_schema(&def.name, provider)
                    .map_err(SqlError::from)
            });
            match opened {
                Ok(_) => tracing::debug!(schema = %def.name, "registered"),
                Err(e) => {
                    tracing::warn!(schema = %def.name, error = %e.message, "schema not available")
                }
            }
        }
        Ok(())
    }

    fn catalog(&self) -> SqlResult<Arc<dyn datafusion::catalog::CatalogProvider>> {
        self.template
            .catalog_list()
            .catalog(DATABASE)
            .ok_or_else(|| SqlError::new(sqlstate::INTERNAL_ERROR, "default catalog missing"))
    }

    /// The tables of an external schema, opened from their cached definitions.
    fn schema_provider(&self, def: &SchemaDefinition) -> SqlResult<Arc<dyn SchemaProvider>> {
        let connector = self.connectors.get(&def.connector)?;
        let schema = Arc::new(MemorySchemaProvider::new());
        for table in &def.tables {
            let provider = connector.open(table, &self.template)?;
            schema
                .register_table(table.name.table.clone(), provider)
                .map_err(SqlError::from)?;
        }
        Ok(schema)
    }

    /// Discover the tables of a remote schema, persist them, and make them
    /// queryable as `name.table`.
    pub async fn create_schema(
        &self,
        request: SchemaRequest,
        if_not_exists: bool,
    ) -> SqlResult<DdlOutcome> {
        let _guard = self.ddl.lock().await;
        let taken = self.store.get_schema(&request.name)?.is_some();
        if taken && if_not_exists {
            return Ok(DdlOutcome::Skipped);
        }
        if taken || self.catalog()?.schema(&request.name).is_some() {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_SCHEMA,
                format!("schema \"{}\" already exists", request.name),
            ));
        }
        let def = self.resolve_schema(request).await?;
        let provider = self.schema_provider(&def)?;
        self.store.insert_schema(&def)?;
        self.catalog()?
            .register_schema(&def.name, provider)
            .map_err(SqlError::from)?;
        tracing::info!(schema = %def.name, tables = def.tables.len(), "external schema created");
        Ok(DdlOutcome::Done)
    }

    /// Discover the tables of a stored external schema again and replace them.
    pub async fn refresh_schema(&self, name: &str) -> SqlResult<()> {
        let _guard = self.ddl.lock().await;
        let old = self.stored_schema(name)?;
        let def = self
            .resolve_schema(SchemaRequest {
                name: old.name,
                connector: old.connector,
                location: old.location,
                options: old.options,
            })
            .await?;
        let provider = self.schema_provider(&def)?;
        self.store.replace_schema(&def)?;
        self.catalog()?
            .register_schema(&def.name, provider)
            .map_err(SqlError::from)?;
        tracing::info!(schema = %def.name, tables = def.tables.len(), "external schema refreshed");
        Ok(())
    }

    /// Forget an external schema and its tables.
    pub async fn drop_schema(&self, name: &str, if_exists: bool) -> SqlResult<DdlOutcome> {
        let _guard = self.ddl.lock().await;
        if self.store.get_schema(name)?.is_none() && if_exists {
            return Ok(DdlOutcome::Skipped);
        }
        self.stored_schema(name)?;
        self.store.drop_schema(name)?;
        self.catalog()?
            .deregister_schema(name, true)
            .map_err(SqlError::from)?;
        tracing::info!(schema = %name, "external schema dropped");
        Ok(DdlOutcome::Done)
    }

    fn stored_schema(&self, name: &str) -> SqlResult<SchemaDefinition> {
        self.store.get_schema(name)?.ok_or_else(|| {
            SqlError::new(
                sqlstate::INVALID_SCHEMA_NAME,
                format!("external schema \"{name}\" does not exist"),
            )
        })
    }

    async fn resolve_schema(&self, request: SchemaRequest) -> SqlResult<SchemaDefinition> {
        let connector = self.connectors.get(&request.connector)?;
        let tables = connector
            .resolve_schema(request.clone(), &self.template)
            .await?;
        Ok(SchemaDefinition {
            name: request.name,
            connector: request.connector,
            location: request.location,
            options: request.options,
            tables,
        })
    }

    fn open_table(&self, def: &TableDefinition) -> SqlResult<()> {
        let connector = self.connectors.get(&def.connector)?;
        let provider = connector.open(def, &self.template)?;
        self.remember_worker_needs(def)?;
        self.tables
            .register_table(def.name.table.clone(), provider)
            .map_err(SqlError::from)?;
        Ok(())
    }

    /// The connectors (embedded workers share them).
    pub fn connectors(&self) -> &ConnectorRegistry {
        &self.connectors
    }

    /// The shared statement parser (its rewrite rules are built once).
    pub fn parser(&self) -> &StatementParser {
        &self.parser
    }

    fn remember_worker_needs(&self, def: &TableDefinition) -> SqlResult<()> {
        let needs = self.connectors.worker_needs(def)?;
        let mut known = self.worker_needs.write().unwrap_or_else(|p| p.into_inner());
        for need in needs {
            known.insert((need.connector.clone(), need.key.clone()), need);
        }
        Ok(())
    }

    /// Headers that tell workers what to prepare (object stores; JSON, no secrets).
    pub fn worker_headers(&self) -> http::HeaderMap {
        let needs = self.worker_needs.read().unwrap_or_else(|p| p.into_inner());
        let mut headers = http::HeaderMap::new();
        if needs.is_empty() {
            return headers;
        }
        let json = ConnectorRegistry::encode_needs(needs.values());
        if let Ok(value) = http::HeaderValue::from_str(&json) {
            headers.insert(WORKER_NEEDS_HEADER, value);
        }
        headers
    }

    /// Whether queries are planned for workers.
    pub fn is_distributed(&self) -> bool {
        self.membership.is_some()
    }

    /// How many times a query lost to a worker failure may be re-run.
    pub fn query_retries(&self) -> usize {
        self.retries
    }

    /// Forget workers that no longer answer, before a retry.
    pub async fn prune_workers(&self) {
        if let Some(membership) = &self.membership {
            membership.prune_unreachable().await;
        }
    }

    /// The runtime shared by every session (object stores, memory pool).
    pub fn runtime(&self) -> Arc<datafusion::execution::runtime_env::RuntimeEnv> {
        self.template.runtime_env().clone()
    }

    /// A fresh DataFusion context for one connection: its own settings, the shared
    /// catalog, functions and runtime.
    pub fn new_session_context(
        &self,
        catalogs: Arc<dyn datafusion::catalog::CatalogProviderList>,
    ) -> SessionContext {
        SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(self.template.clone())
                .with_catalog_list(catalogs)
                .build(),
        )
    }

    /// The catalogs every session shares.
    pub fn catalogs(&self) -> Arc<dyn datafusion::catalog::CatalogProviderList> {
        self.template.catalog_list().clone()
    }

    /// Validate a new table against its source, persist it, and make it queryable.
    pub async fn create_table(
        &self,
        request: TableRequest,
        if_not_exists: bool,
    ) -> SqlResult<DdlOutcome> {
        check_schema(&request.name)?;
        let _guard = self.ddl.lock().await;
        if self.store.get_table(&request.name)?.is_some() {
            if if_not_exists {
                return Ok(DdlOutcome::Skipped);
            }
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", request.name.table),
            ));
        }
        let connector = self.connectors.get(&request.connector)?;
        let def = connector.resolve(request, &self.template).await?;
        let provider = connector.open(&def, &self.template)?;
        self.remember_worker_needs(&def)?;
        self.store.insert_table(&def)?;
        self.tables
            .register_table(def.name.table.clone(), provider)
            .map_err(SqlError::from)?;
        tracing::info!(table = %def.name, connector = %def.connector, "external table created");
        Ok(DdlOutcome::Done)
    }

    /// Forget a table: remove it from the store and from every session.
    pub async fn drop_table(&self, name: &TableName, if_exists: bool) -> SqlResult<DdlOutcome> {
        check_schema(name)?;
        let _guard = self.ddl.lock().await;
        if self.store.get_table(name)?.is_none() {
            if if_exists {
                return Ok(DdlOutcome::Skipped);
            }
            return Err(SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!("table \"{}\" does not exist", name.table),
            ));
        }
        self.store.drop_table(name)?;
        self.tables
            .deregister_table(&name.table)
            .map_err(SqlError::from)?;
        tracing::info!(table = %name, "external table dropped");
        Ok(DdlOutcome::Done)
    }

    /// The stored definition of a table.
    pub fn definition(&self, name: &TableName) -> SqlResult<TableDefinition> {
        check_schema(name)?;
        self.store.get_table(name)?.ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist", name.table),
            )
        })
    }

    /// Every stored table definition, those of external schemas included,
    /// ordered by schema then name.
    pub fn definitions(&self) -> SqlResult<Vec<TableDefinition>> {
        let mut defs = self.store.list_tables()?;
        for schema in self.store.list_schemas()? {
            defs.extend(schema.tables);
        }
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(defs)
    }
}

/// DataFusion's analyzer rules, with PostgreSQL's boolean literals typed before
/// type coercion runs.
fn analyzer_rules() -> Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Analyzer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "type_coercion")
        .unwrap_or(0);
    rules.insert(at, Arc::new(crate::unknown_literals::BooleanLiterals));
    rules.insert(at, Arc::new(crate::numeric_division::NumericDivision));
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

fn check_schema(name: &TableName) -> SqlResult<()> {
    if name.schema == DEFAULT_SCHEMA {
        Ok(())
    } else {
        Err(SqlError::new(
            sqlstate::INVALID_SCHEMA_NAME,
            format!("schema \"{}\" does not exist", name.schema),
        ))
    }
}

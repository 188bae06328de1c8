//! The engine: the durable catalog, the connectors, and the DataFusion state every
//! session starts from. One per coordinator, shared by all connections.

pub mod cancel;
pub mod executor;
pub mod federation;
mod group_memory;
pub mod groups;
mod kept_plans;
pub mod nesting;
pub mod planning;
mod query;
mod state;
pub mod system_queries;
pub mod system_tasks;
mod tables;
pub mod tracker;
mod views;
mod writes;
mod yielding;

pub use kept_plans::{CatalogVersion, KeptPlans};
pub use query::QueryState;
pub use writes::WriteAccess;

pub use state::SqlDialect;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use datafusion::catalog::SchemaProvider;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::prelude::SessionContext;
use tokio::sync::Mutex;
use vivace_catalog::{CatalogStore, DATABASE, DEFAULT_SCHEMA};
use vivace_connectors::{ConnectorRegistry, WorkerNeed};

use crate::cluster::Membership;

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

/// How the coordinator keeps, admits and shows queries.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    /// Finished queries kept for `system.queries` (`query_history`).
    pub query_history: usize,
    /// The configured resource groups.
    pub resource_groups: Vec<groups::ResourceGroupSpec>,
    /// With users configured, those who may see and cancel every query;
    /// `None` without users, when every (loopback) client may.
    pub admins: Option<std::collections::BTreeSet<String>>,
}

/// Shared coordinator state.
pub struct Engine {
    store: CatalogStore,
    /// Plans stored views.
    dialect: Arc<dyn SqlDialect>,
    connectors: ConnectorRegistry,
    template: SessionState,
    tables: Arc<dyn SchemaProvider>,
    membership: Option<Arc<Membership>>,
    retries: usize,
    /// What workers must prepare for the registered tables, by connector and key.
    worker_needs: std::sync::RwLock<std::collections::BTreeMap<(String, String), WorkerNeed>>,
    /// Serialises DDL so "check, validate, persist, register" is atomic per name.
    ddl: Mutex<()>,
    /// Bumped by every DDL, so that prepared statements are planned again.
    catalog_version: CatalogVersion,
    /// Serialises the commit and publication of writes.
    publishing: Mutex<()>,
    /// Who may write.
    access: WriteAccess,
    /// The server's configured settings, by key, for `SHOW`.
    server_settings: Vec<(String, String)>,
    /// Every query, running and recently finished.
    tracker: Arc<tracker::QueryTracker>,
    /// Admission of queries.
    groups: groups::ResourceGroups,
    /// Who may see every query.
    admins: Option<std::collections::BTreeSet<String>>,
}

/// The DDL lock, held while one DDL statement changes the catalog
/// ([`Engine::begin_ddl`]).
struct DdlGuard<'a> {
    _lock: tokio::sync::MutexGuard<'a, ()>,
    version: &'a CatalogVersion,
}

impl Drop for DdlGuard<'_> {
    fn drop(&mut self) {
        self.version.bump();
    }
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
    /// Open the catalog in `data_dir` and register every stored table, on a
    /// session template that `dialect` completes.
    pub async fn open(
        data_dir: &Path,
        execution: Execution,
        memory_limit: Option<usize>,
        access: WriteAccess,
        operations: Operations,
        dialect: Arc<dyn SqlDialect>,
        server_settings: Vec<(String, String)>,
    ) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let store = CatalogStore::open(&data_dir.join("catalog.db"))
            .context("cannot open the catalog database")?;
        let connectors = ConnectorRegistry::default();
        let tracker = Arc::new(tracker::QueryTracker::new(operations.query_history));
        let template = state::template(
            execution,
            memory_limit,
            &connectors,
            tracker.clone(),
            dialect.as_ref(),
        )
        .await?;
        let ctx = template.ctx;
        let tables = ctx
            .catalog(DATABASE)
            .and_then(|c| c.schema(DEFAULT_SCHEMA))
            .context("default schema missing")?;
        let engine = Self {
            store,
            dialect,
            connectors,
            template: ctx.state(),
            tables,
            membership: template.membership,
            retries: template.retries,
            worker_needs: Default::default(),
            ddl: Mutex::new(()),
            catalog_version: CatalogVersion::default(),
            publishing: Mutex::new(()),
            access,
            server_settings,
            tracker,
            groups: groups::ResourceGroups::new(
                operations.resource_groups,
                &ctx.runtime_env(),
                memory_limit,
            )?,
            admins: operations.admins,
        };
        engine.register_stored_tables()?;
        engine.recover_writes().await?;
        engine.register_stored_schemas()?;
        engine
            .refresh_views()
            .await
            .map_err(|e| anyhow::anyhow!("cannot register the stored views: {}", e.message))?;
        Ok(Arc::new(engine))
    }

    /// The server's settings as configured, by key (`SHOW
    /// vivace.server.<key>`); never a secret.
    pub fn server_settings(&self) -> &[(String, String)] {
        &self.server_settings
    }

    /// Every query, running and recently finished.
    pub fn tracker(&self) -> &Arc<tracker::QueryTracker> {
        &self.tracker
    }

    /// The resource groups queries are admitted through.
    pub fn groups(&self) -> &groups::ResourceGroups {
        &self.groups
    }

    /// What `user` may see: every query as an admin (or when no users are
    /// configured), else their own.
    pub fn viewer(&self, user: Option<&str>) -> system_queries::Viewer {
        let user = user.unwrap_or_default().to_string();
        let admin = self
            .admins
            .as_ref()
            .is_none_or(|admins| admins.contains(&user));
        system_queries::Viewer { user, admin }
    }

    /// The members of the cluster (none when queries run in this process only).
    pub fn membership(&self) -> Option<&Arc<Membership>> {
        self.membership.as_ref()
    }

    /// Tables, views and schemas in the catalog.
    pub fn catalog_objects(&self) -> usize {
        self.store.list_tables().map_or(0, |d| d.len())
            + self.store.list_views().map_or(0, |v| v.len())
            + self.store.list_schemas().map_or(0, |s| s.len())
    }

    /// Whether the catalog database answers.
    pub fn catalog_ready(&self) -> bool {
        self.store.list_schemas().is_ok()
    }

    /// The connectors (embedded workers share them).
    pub fn connectors(&self) -> &ConnectorRegistry {
        &self.connectors
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

    /// The engine settings (`datafusion.*`, `distributed.*`) a new session
    /// starts with, as `RESET` restores them.
    pub fn default_options(&self) -> datafusion::config::ConfigOptions {
        self.template.config_options().as_ref().clone()
    }

    /// The catalogs every session shares.
    pub fn catalogs(&self) -> Arc<dyn datafusion::catalog::CatalogProviderList> {
        self.template.catalog_list().clone()
    }

    /// The count of DDL statements run, part of the catalog version prepared
    /// statements are planned at.
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version.current()
    }

    /// Hold the DDL lock for one change of the catalog; the catalog version
    /// moves on when it is let go, whether the change succeeded or not.
    async fn begin_ddl(&self) -> DdlGuard<'_> {
        DdlGuard {
            _lock: self.ddl.lock().await,
            version: &self.catalog_version,
        }
    }
}

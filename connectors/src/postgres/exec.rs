//! Running SQL on PostgreSQL: a connection pool opened on first use, the password
//! read from its environment variable at each connection, and the executor
//! datafusion-federation hands whole remote statements to.
//!
//! The pool itself is datafusion-table-providers' `PostgresConnectionPool`
//! (bb8 over tokio-postgres). Two things are written here by hand: [`LazyPool`],
//! because that pool connects when it is built and Vivace must register stored
//! tables at start-up without I/O (a server that is down fails only its queries);
//! and [`PostgresExecutor`], because the crate's own executor (`SqlTable`) turns
//! every error into a string, which would lose the SQLSTATE class a client needs
//! to tell "source unreachable" (08001) from a bad query, and because a remote
//! statement must be cancelled on the server when Vivace's query stops early
//! (CancelRequest, `statement_timeout`): dropping tokio-postgres' row stream alone
//! lets the statement run to its end.
//!
//! A pool lives as long as a table provider of its server does: the connector
//! keeps only weak references, so dropping the last table (or external schema) of
//! a server closes its connections.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue, Statistics};
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, LogicalPlanBuilder, TableScanBuilder,
};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::physical_plan::{PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::{Dialect, PostgreSqlDialect};
use datafusion_federation::schema_cast::SchemaCastScanExec;
use datafusion_federation::sql::LogicalOptimizer;
use datafusion_federation::sql::SQLExecutor;
use datafusion_federation::sql::VirtualExecutionPlan;
use datafusion_federation::{FederatedPlanNode, FederatedTableProviderAdaptor, FederationPlanner};
use datafusion_table_providers::UnsupportedTypeAction;
use datafusion_table_providers::postgres::conn::{PostgresConnection, PostgresVariant};
use datafusion_table_providers::postgres::{DynPostgresConnection, pool::PostgresConnectionPool};
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{
    Error as DbError, get_schema,
};
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, PasswordProvider};
use datafusion_table_providers::util::secrets::to_secret_map;
use futures::{Stream, StreamExt, TryStreamExt};
use secrecy::SecretString;
use tokio::sync::OnceCell;

use super::PostgresOptions;
use super::options::{Engine, RangePartitioning};
use super::provider::PlainScan;
use super::pushdown::{RedshiftDialect, split_for_redshift};
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Reads the password from the variable named by `password_env` each time the pool
/// opens a connection, so a rotated password is picked up without a restart.
struct EnvPassword {
    options: Arc<PostgresOptions>,
}

#[async_trait]
impl PasswordProvider for EnvPassword {
    async fn get_password(&self) -> Result<SecretString, Box<dyn std::error::Error + Send + Sync>> {
        let password = self.options.password()?.unwrap_or_default();
        Ok(SecretString::from(password))
    }
}

/// A connection pool to one server, created on first use and shared by every
/// table on that server and role. Its connections close when the last clone
/// is dropped.
#[derive(Clone)]
pub struct LazyPool {
    inner: Arc<PoolState>,
}

struct PoolState {
    options: Arc<PostgresOptions>,
    pool: OnceCell<Arc<PostgresConnectionPool>>,
}

impl Drop for PoolState {
    fn drop(&mut self) {
        if self.pool.initialized() {
            tracing::info!(server = %self.options.compute_context(), "pool closed");
        }
    }
}

/// A reference to a [`LazyPool`] that does not keep it open.
#[derive(Clone)]
pub struct WeakPool(std::sync::Weak<PoolState>);

impl WeakPool {
    /// The pool, if a table still uses it.
    pub fn upgrade(&self) -> Option<LazyPool> {
        self.0.upgrade().map(|inner| LazyPool { inner })
    }
}

impl LazyPool {
    /// A pool for `options`' server; nothing is opened yet.
    pub fn new(options: PostgresOptions) -> Self {
        Self {
            inner: Arc::new(PoolState {
                options: Arc::new(options),
                pool: OnceCell::new(),
            }),
        }
    }

    /// A weak reference, for the connector's table of pools.
    pub fn downgrade(&self) -> WeakPool {
        WeakPool(Arc::downgrade(&self.inner))
    }

    fn options(&self) -> &Arc<PostgresOptions> {
        &self.inner.options
    }

    /// The open pool, connecting (and checking the password) the first time.
    pub async fn get(&self) -> ConnectorResult<Arc<PostgresConnectionPool>> {
        self.inner
            .pool
            .get_or_try_init(|| open_pool(Arc::clone(self.options())))
            .await
            .cloned()
    }

    /// One connection from the pool. The pool itself would keep retrying a dead
    /// server for 30 seconds (bb8's default, not configurable through the crate);
    /// `connect_timeout` bounds the wait instead.
    pub async fn connection(&self) -> ConnectorResult<Box<DynPostgresConnection>> {
        let pool = self.get().await?;
        let timeout = self.options().connect_timeout;
        match tokio::time::timeout(timeout, pool.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(classify(e.as_ref()).unwrap_or_else(|| unreachable(&*e))),
            Err(_) => Err(ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                format!(
                    "cannot reach the {} source {} within {} s",
                    self.options().engine.display(),
                    self.options().compute_context(),
                    timeout.as_secs()
                ),
            )),
        }
    }

    /// The names of the tables, views, materialized views and foreign tables in a
    /// remote schema, sorted (partitions are left out: their parent lists them).
    pub async fn table_names(&self, schema: &str) -> ConnectorResult<Vec<String>> {
        let conn = self.connection().await?;
        let pg = conn
            .as_any()
            .downcast_ref::<PostgresConnection>()
            .ok_or_else(|| {
                ConnectorError::new(
                    ConnectorErrorKind::Unreachable,
                    "unexpected kind of PostgreSQL connection",
                )
            })?;
        let listing_failed = |e: &dyn std::error::Error| {
            ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!("cannot list the tables of schema \"{schema}\": {e}"),
            )
        };
        let variant = pg
            .get_variant()
            .await
            .map_err(|e| classify(&e).unwrap_or_else(|| listing_failed(&e)))?;
        let mut names = match variant {
            // Redshift: the crate reads svv_all_tables, which lists views too.
            PostgresVariant::Redshift => {
                let conn = conn.as_async().ok_or_else(|| {
                    ConnectorError::new(
                        ConnectorErrorKind::Unreachable,
                        "PostgreSQL connection is not asynchronous",
                    )
                })?;
                conn.tables(schema)
                    .await
                    .map_err(|e| classify(&e).unwrap_or_else(|| listing_failed(&e)))?
            }
            // PostgreSQL: the crate reads pg_tables, which has no views.
            PostgresVariant::Default => pg
                .conn
                .query(RELATIONS_QUERY, &[&schema])
                .await
                .map_err(|e| classify(&e).unwrap_or_else(|| listing_failed(&e)))?
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect(),
        };
        names.sort();
        Ok(names)
    }

    /// The Arrow schema of a remote table, as the crate maps PostgreSQL types
    /// (types it cannot map become text).
    pub async fn table_schema(&self, table: &TableReference) -> ConnectorResult<SchemaRef> {
        let conn = self.connection().await?;
        get_schema(conn, table).await.map_err(|e| match e {
            DbError::UndefinedTable { .. } => ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!("relation \"{table}\" does not exist on the PostgreSQL source"),
            ),
            e => classify(&e).unwrap_or_else(|| {
                ConnectorError::new(
                    ConnectorErrorKind::UnsupportedType,
                    format!("cannot read the columns of {table}: {e}"),
                )
            }),
        })
    }
}

/// The relations of a schema that can be read like tables: ordinary and
/// partitioned tables, views, materialized views, foreign tables.
const RELATIONS_QUERY: &str = "SELECT c.relname FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition";

async fn open_pool(options: Arc<PostgresOptions>) -> ConnectorResult<Arc<PostgresConnectionPool>> {
    // Host, user and database were checked for spaces and quotes when parsed, so
    // this libpq-style string needs no quoting.
    let connection_string = format!(
        "host={} port={} user={} dbname={} connect_timeout={}",
        options.host,
        options.port,
        options.user,
        options.database,
        options.connect_timeout.as_secs()
    );
    let params = to_secret_map(HashMap::from([
        ("connection_string".to_string(), connection_string),
        ("sslmode".to_string(), options.sslmode.clone()),
        (
            "connection_pool_size".to_string(),
            options.pool_size.to_string(),
        ),
        ("application_name".to_string(), "vivace".to_string()),
    ]));
    let password = Arc::new(EnvPassword {
        options: Arc::clone(&options),
    });
    let pool = PostgresConnectionPool::new_with_password_provider(params, password)
        .await
        .map_err(|e| classify(&e).unwrap_or_else(|| unreachable(&e)))?;
    tracing::info!(server = %options.compute_context(), "pool opened");
    Ok(Arc::new(pool.with_unsupported_type_action(
        UnsupportedTypeAction::String,
    )))
}

/// The SQLSTATE class of a PostgreSQL failure, found in the error's source chain:
/// authentication → [`ConnectorErrorKind::AuthenticationFailed`], a missing relation →
/// [`ConnectorErrorKind::NotFound`], a broken or refused connection →
/// [`ConnectorErrorKind::Unreachable`]. `None` when no PostgreSQL error is inside.
fn classify(e: &(dyn std::error::Error + 'static)) -> Option<ConnectorError> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>() {
            let detail = pg
                .as_db_error()
                .map_or_else(|| pg.to_string(), |db| db.message().to_string());
            let kind = match pg.code().map(|c| c.code()) {
                Some(code) if code.starts_with("28") => ConnectorErrorKind::AuthenticationFailed,
                Some("42P01" | "3F000") => ConnectorErrorKind::NotFound,
                Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                    ConnectorErrorKind::Unreachable
                }
                Some("3D000") | None => ConnectorErrorKind::Unreachable,
                Some(_) => return None,
            };
            return Some(ConnectorError::new(
                kind,
                format!("PostgreSQL source: {detail}"),
            ));
        }
        next = err.source();
    }
    None
}

fn unreachable(e: &dyn std::error::Error) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::Unreachable,
        format!("cannot reach the PostgreSQL source: {e}"),
    )
}

/// Map an error raised while rows stream in. The crate reports those as text only
/// (`Failed to fetch batch: ...`), so a lost connection is recognised by its
/// tokio-postgres wording.
fn stream_error(e: DataFusionError) -> DataFusionError {
    let text = e.to_string();
    if text.contains("connection closed")
        || text.contains("terminating connection")
        || text.contains("error communicating with the server")
    {
        ConnectorError::new(
            ConnectorErrorKind::Unreachable,
            format!("lost the connection to the PostgreSQL source: {text}"),
        )
        .into()
    } else {
        e
    }
}

/// How long a cancel request, and the round trip that confirms it, may take.
const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A remote statement in progress. It holds its pooled connection until every
/// row is read; dropped before that (Vivace's query was cancelled, timed out or
/// failed) it cancels the statement on the server, then returns the connection.
struct RunningStatement {
    conn: Option<Box<DynPostgresConnection>>,
    sslmode: String,
    finished: bool,
}

fn client(conn: &DynPostgresConnection) -> Option<&tokio_postgres::Client> {
    conn.as_any()
        .downcast_ref::<PostgresConnection>()
        .map(|c| &*c.conn)
}

impl Drop for RunningStatement {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.finished {
            return;
        }
        let Some(token) = client(conn.as_ref()).map(tokio_postgres::Client::cancel_token) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let sslmode = std::mem::take(&mut self.sslmode);
        runtime.spawn(async move {
            match tokio::time::timeout(CANCEL_TIMEOUT, send_cancel(&token, &sslmode)).await {
                Ok(Ok(())) => tracing::debug!("remote statement cancelled"),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot cancel the remote statement"),
                Err(_) => tracing::warn!("cancelling the remote statement timed out"),
            }
            // The server acts on a cancel request asynchronously: one round trip
            // on the connection makes sure it has, so that the request cannot hit
            // the next statement the pool gives this connection to.
            if let Some(client) = client(conn.as_ref()) {
                let _ = tokio::time::timeout(CANCEL_TIMEOUT, client.simple_query("")).await;
            }
            drop(conn);
        });
    }
}

/// Send a cancel request, over TLS when the table's `sslmode` requires it.
async fn send_cancel(
    token: &tokio_postgres::CancelToken,
    sslmode: &str,
) -> Result<(), tokio_postgres::Error> {
    if matches!(sslmode, "disable" | "prefer") {
        return token.cancel_query(tokio_postgres::NoTls).await;
    }
    let connector = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(sslmode == "require")
        .danger_accept_invalid_hostnames(sslmode != "verify-full")
        .build();
    match connector {
        Ok(connector) => {
            token
                .cancel_query(postgres_native_tls::MakeTlsConnector::new(connector))
                .await
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot build a TLS connector to cancel a statement");
            Ok(())
        }
    }
}

/// Rows of a [`RunningStatement`]; the statement counts as finished when the
/// rows end, and its connection goes back to the pool then.
struct StatementRows {
    rows: SendableRecordBatchStream,
    statement: RunningStatement,
}

impl Stream for StatementRows {
    type Item = DFResult<datafusion::arrow::array::RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = self.rows.poll_next_unpin(cx);
        if let std::task::Poll::Ready(None) = next {
            self.statement.finished = true;
            self.statement.conn = None;
        }
        next.map(|item| item.map(|r| r.map_err(stream_error)))
    }
}

/// Runs the SQL statements datafusion-federation renders for one server.
pub struct PostgresExecutor {
    pool: LazyPool,
}

impl PostgresExecutor {
    /// An executor over `pool`.
    pub fn new(pool: LazyPool) -> Self {
        Self { pool }
    }

    fn engine(&self) -> Engine {
        self.pool.options().engine
    }
}

#[async_trait]
impl SQLExecutor for PostgresExecutor {
    fn name(&self) -> &str {
        self.engine().name()
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.pool.options().compute_context())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        match self.engine() {
            Engine::Postgres => Arc::new(PostgreSqlDialect {}),
            Engine::Redshift => Arc::new(RedshiftDialect),
        }
    }

    fn logical_optimizer(&self) -> Option<LogicalOptimizer> {
        let engine = self.engine();
        Some(Box::new(move |plan: LogicalPlan| {
            let plan = match engine {
                Engine::Postgres => plan,
                Engine::Redshift => split_for_redshift(plan)?,
            };
            partition_federated_scans(plan)
        }))
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> DFResult<SendableRecordBatchStream> {
        tracing::debug!(sql = %query, engine = self.engine().name(), "remote query");
        let pool = self.pool.clone();
        let sql = query.to_string();
        let projected = Arc::clone(&schema);
        let batches = async move {
            let mut statement = RunningStatement {
                conn: Some(pool.connection().await?),
                sslmode: pool.options().sslmode.clone(),
                finished: false,
            };
            // Dropped while this waits for the first rows, `statement` cancels
            // the remote statement.
            let started = match statement.conn.as_deref().and_then(|c| c.as_async()) {
                Some(conn) => conn.query_arrow(&sql, &[], Some(projected)).await,
                None => Err("PostgreSQL connection is not asynchronous".into()),
            };
            let rows = started.map_err(|e| {
                statement.finished = true;
                classify(e.as_ref())
                    .map_or_else(|| DataFusionError::External(e), DataFusionError::from)
            })?;
            Ok::<_, DataFusionError>(StatementRows { rows, statement })
        };
        let stream = futures::stream::once(batches).try_flatten().boxed();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn table_names(&self) -> DFResult<Vec<String>> {
        Err(DataFusionError::NotImplemented(
            "listing the tables of a PostgreSQL source".to_string(),
        ))
    }

    async fn get_table_schema(&self, table_name: &str) -> DFResult<SchemaRef> {
        Ok(self
            .pool
            .table_schema(&TableReference::from(table_name))
            .await?)
    }
}

/// Gives each federated scan of a table with `partition_column` / `partitions`
/// (a sub-plan of projections and filters over that one table) a planner that
/// reads it as range queries in parallel. Other federated sub-plans — sorts,
/// limits, aggregates, joins — are one statement, as their SQL must be.
fn partition_federated_scans(plan: LogicalPlan) -> DFResult<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Extension(Extension { node: ext }) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(federated) = ext.as_any().downcast_ref::<FederatedPlanNode>() else {
            return Ok(Transformed::no(node));
        };
        let Some((executor, partitioning)) = partitioned_scan(&federated.plan) else {
            return Ok(Transformed::no(node));
        };
        let planner = Arc::new(PartitionedPlanner {
            executor,
            partitioning,
        });
        let replaced = FederatedPlanNode::new(federated.plan.clone(), planner);
        Ok(Transformed::yes(LogicalPlan::Extension(Extension {
            node: Arc::new(replaced),
        })))
    })
    .map(|t| t.data)
}

/// The executor and partitioning of the partitioned table `plan` scans, when
/// `plan` is only projections and filters over one scan of it (no limit pushed
/// into the scan).
fn partitioned_scan(plan: &LogicalPlan) -> Option<(Arc<dyn SQLExecutor>, RangePartitioning)> {
    match plan {
        LogicalPlan::Projection(p) => partitioned_scan(&p.input),
        LogicalPlan::Filter(f) => partitioned_scan(&f.input),
        LogicalPlan::SubqueryAlias(a) => partitioned_scan(&a.input),
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            let source = source_as_provider(&scan.source).ok()?;
            let adaptor =
                (source.as_ref() as &dyn Any).downcast_ref::<FederatedTableProviderAdaptor>()?;
            let inner = adaptor.table_provider.as_ref()?;
            let plain = (inner.as_ref() as &dyn Any).downcast_ref::<PlainScan>()?;
            let partitioning = plain.partitioning.clone()?;
            Some((Arc::clone(&plain.executor), partitioning))
        }
        _ => None,
    }
}

/// Plans a partitioned federated scan as a [`PartitionedScanExec`].
#[derive(Debug)]
struct PartitionedPlanner {
    executor: Arc<dyn SQLExecutor>,
    partitioning: RangePartitioning,
}

#[async_trait]
impl FederationPlanner for PartitionedPlanner {
    async fn plan_federation(
        &self,
        node: &FederatedPlanNode,
        _session_state: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let schema = Arc::new(node.plan().schema().as_arrow().clone());
        let scan = PartitionedScanExec::try_new(
            node.plan().clone(),
            Arc::clone(&self.executor),
            &self.partitioning,
        )?;
        Ok(Arc::new(SchemaCastScanExec::new(Arc::new(scan), schema)))
    }
}

/// A scan read as `partitions` range queries on an integer, date or timestamp
/// column, one per output partition, which DataFusion reads in parallel. The
/// column's `min` and `max` are fetched once, by the first partition to start;
/// the first range also takes NULLs and everything below the minimum, the last
/// everything above its start, so rows added meanwhile are not lost.
#[derive(Debug, Clone)]
pub struct PartitionedScanExec {
    plan: LogicalPlan,
    executor: Arc<dyn SQLExecutor>,
    column: Column,
    data_type: DataType,
    partitions: usize,
    bounds: Arc<OnceCell<Option<(i64, i64)>>>,
    props: Arc<PlanProperties>,
}

impl PartitionedScanExec {
    /// Split `plan` (projections and filters over one table scan) on the
    /// partitioning column.
    pub fn try_new(
        plan: LogicalPlan,
        executor: Arc<dyn SQLExecutor>,
        partitioning: &RangePartitioning,
    ) -> DFResult<Self> {
        let mut scan = None;
        plan.apply(|node| {
            if let LogicalPlan::TableScan(s) = node {
                scan = Some(s.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let scan = scan.ok_or_else(|| {
            DataFusionError::Internal("partitioned scan without a table scan".into())
        })?;
        let field = scan
            .source
            .schema()
            .field_with_name(&partitioning.column)
            .map_err(|e| DataFusionError::Plan(format!("partition_column: {e}")))?
            .clone();
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::new(plan.schema().as_arrow().clone())),
            Partitioning::UnknownPartitioning(partitioning.partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            column: Column::new(Some(scan.table_name.clone()), field.name()),
            data_type: field.data_type().clone(),
            plan,
            executor,
            partitions: partitioning.partitions,
            bounds: Arc::default(),
            props,
        })
    }

    /// The scan with `predicate` applied right above its table scan (the
    /// column is added to the scan's projection, and projected away, if needed).
    fn with_predicate(&self, predicate: Expr) -> DFResult<LogicalPlan> {
        self.plan
            .clone()
            .transform_up(|node| {
                let LogicalPlan::TableScan(scan) = &node else {
                    return Ok(Transformed::no(node));
                };
                let index = scan.source.schema().index_of(&self.column.name)?;
                let columns: Vec<Expr> = scan
                    .projected_schema
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                let mut widened = scan.clone();
                let extra = match &scan.projection {
                    Some(p) if !p.contains(&index) => {
                        let mut projection = p.clone();
                        projection.push(index);
                        widened = TableScanBuilder::new(
                            scan.table_name.clone(),
                            Arc::clone(&scan.source),
                        )
                        .with_projection(Some(projection))
                        .with_filters(scan.filters.clone())
                        .with_fetch(scan.fetch)
                        .build()?;
                        true
                    }
                    _ => false,
                };
                let filtered = LogicalPlanBuilder::from(LogicalPlan::TableScan(widened))
                    .filter(predicate.clone())?;
                let filtered = if extra {
                    filtered.project(columns)?
                } else {
                    filtered
                };
                Ok(Transformed::yes(filtered.build()?))
            })
            .map(|t| t.data)
    }

    /// `min` and `max` of the column, as integers (days, timestamp units).
    async fn fetch_bounds(&self, context: Arc<TaskContext>) -> DFResult<Option<(i64, i64)>> {
        let mut scan = None;
        self.plan.apply(|node| {
            if let LogicalPlan::TableScan(s) = node {
                scan = Some(s.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let scan = scan.ok_or_else(|| DataFusionError::Internal("no table scan".into()))?;
        let whole =
            TableScanBuilder::new(scan.table_name.clone(), Arc::clone(&scan.source)).build()?;
        let column = Expr::Column(self.column.clone());
        let plan = LogicalPlanBuilder::from(LogicalPlan::TableScan(whole))
            .aggregate(Vec::<Expr>::new(), vec![min(column.clone()), max(column)])?
            .build()?;
        let statistics = Statistics::new_unknown(plan.schema().as_arrow());
        let exec = VirtualExecutionPlan::new(plan, Arc::clone(&self.executor), statistics);
        let batches: Vec<_> = exec.execute(0, context)?.try_collect().await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let value = |i: usize| -> DFResult<Option<i64>> {
            Ok(scalar_to_i64(&ScalarValue::try_from_array(
                batch.column(i),
                0,
            )?))
        };
        Ok(value(0)?.zip(value(1)?))
    }

    /// The predicate of range `partition` of `[min, max]`.
    fn range(&self, partition: usize, (lo, hi): (i64, i64)) -> DFResult<Expr> {
        let n = self.partitions as i128;
        let span = (hi as i128 - lo as i128 + 1).max(1);
        let step = ((span + n - 1) / n).max(1);
        let start = |i: usize| lo as i128 + step * i as i128;
        let column = Expr::Column(self.column.clone());
        let literal = |v: i128| i64_to_scalar(v, &self.data_type).map(|s| Expr::Literal(s, None));
        let last = partition + 1 == self.partitions;
        Ok(match (partition, last) {
            (0, true) => return Err(DataFusionError::Internal("one partition".into())),
            (0, false) => column.clone().lt(literal(start(1))?).or(column.is_null()),
            (_, true) => column.gt_eq(literal(start(partition))?),
            (_, false) => column
                .clone()
                .gt_eq(literal(start(partition))?)
                .and(column.lt(literal(start(partition + 1))?)),
        })
    }
}

fn scalar_to_i64(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::Int16(v) => v.map(i64::from),
        ScalarValue::Int32(v) | ScalarValue::Date32(v) => v.map(i64::from),
        ScalarValue::Int64(v)
        | ScalarValue::TimestampSecond(v, _)
        | ScalarValue::TimestampMillisecond(v, _)
        | ScalarValue::TimestampMicrosecond(v, _)
        | ScalarValue::TimestampNanosecond(v, _) => *v,
        _ => None,
    }
}

fn i64_to_scalar(value: i128, data_type: &DataType) -> DFResult<ScalarValue> {
    let clamp = |min: i128, max: i128| value.clamp(min, max);
    Ok(match data_type {
        DataType::Int16 => ScalarValue::Int16(Some(clamp(i16::MIN.into(), i16::MAX.into()) as i16)),
        DataType::Int32 => ScalarValue::Int32(Some(clamp(i32::MIN.into(), i32::MAX.into()) as i32)),
        DataType::Date32 => {
            ScalarValue::Date32(Some(clamp(i32::MIN.into(), i32::MAX.into()) as i32))
        }
        DataType::Int64 | DataType::Timestamp(_, _) => {
            let v = clamp(i64::MIN.into(), i64::MAX.into()) as i64;
            match data_type {
                DataType::Timestamp(unit, tz) => match unit {
                    TimeUnit::Second => ScalarValue::TimestampSecond(Some(v), tz.clone()),
                    TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(v), tz.clone()),
                    TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(v), tz.clone()),
                    TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(v), tz.clone()),
                },
                _ => ScalarValue::Int64(Some(v)),
            }
        }
        other => {
            return Err(DataFusionError::Plan(format!(
                "partition_column of type {other} cannot be split into ranges"
            )));
        }
    })
}

impl DisplayAs for PartitionedScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "PartitionedScanExec: partitions={}, partition_column={}, ",
            self.partitions, self.column.name
        )?;
        let statistics = Statistics::new_unknown(self.plan.schema().as_arrow());
        VirtualExecutionPlan::new(self.plan.clone(), Arc::clone(&self.executor), statistics)
            .fmt_as(t, f)
    }
}

impl ExecutionPlan for PartitionedScanExec {
    fn name(&self) -> &str {
        "PartitionedScanExec"
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let this = self.clone();
        let schema = Arc::new(self.plan.schema().as_arrow().clone());
        let rows = async move {
            let bounds = *this
                .bounds
                .get_or_try_init(|| this.fetch_bounds(Arc::clone(&context)))
                .await?;
            let plan = match bounds {
                Some(bounds) => this.with_predicate(this.range(partition, bounds)?)?,
                // An empty table (or a column of NULLs only): the first range reads it whole.
                None if partition == 0 => this.plan.clone(),
                None => {
                    let empty = futures::stream::empty();
                    return Ok::<_, DataFusionError>(Box::pin(RecordBatchStreamAdapter::new(
                        Arc::new(this.plan.schema().as_arrow().clone()),
                        empty,
                    ))
                        as SendableRecordBatchStream);
                }
            };
            let statistics = Statistics::new_unknown(plan.schema().as_arrow());
            VirtualExecutionPlan::new(plan, Arc::clone(&this.executor), statistics)
                .execute(0, context)
        };
        let stream = futures::stream::once(rows).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

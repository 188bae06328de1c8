//! Running SQL on PostgreSQL: a connection pool opened on first use, the password
//! read from its environment variable at each connection, and statements
//! streamed as Arrow batches and cancelled on the server when dropped.
//!
//! The pool itself is datafusion-table-providers' `PostgresConnectionPool`
//! (bb8 over tokio-postgres). Two things are written here by hand: [`LazyPool`],
//! because that pool connects when it is built and Vivace must register stored
//! tables at start-up without I/O (a server that is down fails only its queries);
//! and [`LazyPool::run`], because the crate's own executor (`SqlTable`) turns
//! every error into a string, which would lose the SQLSTATE class a client needs
//! to tell "source unreachable" (08001) from a bad query, and because a remote
//! statement must be cancelled on the server when Vivace's query stops early
//! (CancelRequest, `statement_timeout`): dropping tokio-postgres' row stream alone
//! lets the statement run to its end.
//!
//! The connector keeps its pools in one cache ([`crate::remote::PoolCache`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_table_providers::UnsupportedTypeAction;
use datafusion_table_providers::postgres::arrow_sql_gen::rows_to_arrow;
use datafusion_table_providers::postgres::conn::{PostgresConnection, PostgresVariant};
use datafusion_table_providers::postgres::{DynPostgresConnection, pool::PostgresConnectionPool};
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{
    Error as DbError, get_schema,
};
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, PasswordProvider};
use datafusion_table_providers::util::secrets::to_secret_map;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use secrecy::SecretString;
use tokio::sync::OnceCell;

use super::PostgresOptions;
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
/// table (or shipped scan) on that server and role. Its connections close when
/// the last clone is dropped.
#[derive(Clone)]
pub struct LazyPool {
    inner: Arc<PoolState>,
}

/// What a [`LazyPool`] shares: its settings and, once opened, the pool.
pub struct PoolState {
    options: Arc<PostgresOptions>,
    /// What the server shows in `pg_stat_activity` and its logs.
    application_name: &'static str,
    pool: OnceCell<Arc<PostgresConnectionPool>>,
}

impl PoolState {
    /// A pool for `options`' server whose connections show `application_name`;
    /// nothing is opened yet.
    pub fn new(options: PostgresOptions, application_name: &'static str) -> Self {
        Self {
            options: Arc::new(options),
            application_name,
            pool: OnceCell::new(),
        }
    }
}

impl Drop for PoolState {
    fn drop(&mut self) {
        if self.pool.initialized() {
            tracing::info!(server = %self.options.compute_context(), "pool closed");
        }
    }
}

impl From<Arc<PoolState>> for LazyPool {
    fn from(inner: Arc<PoolState>) -> Self {
        Self { inner }
    }
}

impl LazyPool {
    /// The server's settings.
    pub fn options(&self) -> &Arc<PostgresOptions> {
        &self.inner.options
    }

    /// The open pool, connecting (and checking the password) the first time.
    pub async fn get(&self) -> ConnectorResult<Arc<PostgresConnectionPool>> {
        self.inner
            .pool
            .get_or_try_init(|| open_pool(Arc::clone(self.options()), self.inner.application_name))
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
                    self.options().flavor.display,
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
    /// Start `sql` and stream its rows as batches of `schema`. Dropped before
    /// the last row, the stream cancels the statement on the server.
    pub fn run(&self, sql: &str, schema: SchemaRef) -> DFResult<SendableRecordBatchStream> {
        tracing::debug!(sql = %sql, source = self.options().flavor.name, "remote query");
        let pool = self.clone();
        let sql = sql.to_string();
        let projected = Arc::clone(&schema);
        let batches = async move {
            let mut statement = RunningStatement {
                conn: Some(pool.connection().await?),
                sslmode: pool.options().sslmode.clone(),
                finished: false,
            };
            // Dropped while this waits for the first rows, `statement` cancels
            // the remote statement.
            let started = match statement.conn.as_deref().and_then(client) {
                Some(client) => start_statement(client, &sql, projected).await,
                None => Err(DataFusionError::Internal(
                    "PostgreSQL connection is not a tokio-postgres client".to_string(),
                )),
            };
            let rows = started.inspect_err(|_| statement.finished = true)?;
            Ok::<_, DataFusionError>(StatementRows { rows, statement })
        };
        let stream = futures::stream::once(batches).try_flatten().boxed();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The relations of a schema that can be read like tables: ordinary and
/// partitioned tables, views, materialized views, foreign tables.
const RELATIONS_QUERY: &str = "SELECT c.relname FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition";

/// The `application_name` of the coordinator's connections.
pub const COORDINATOR_APPLICATION: &str = "vivace";
/// The `application_name` of connections a worker opens to run shipped scans.
pub const WORKER_APPLICATION: &str = "vivace-worker";

async fn open_pool(
    options: Arc<PostgresOptions>,
    application_name: &str,
) -> ConnectorResult<Arc<PostgresConnectionPool>> {
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
        ("application_name".to_string(), application_name.to_string()),
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
/// [`ConnectorErrorKind::Unreachable`], anything else the server refused →
/// [`ConnectorErrorKind::Rejected`] with its SQLSTATE in the message. `None`
/// when no PostgreSQL error is inside.
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
                // Anything else the server refused (permissions, a statement
                // it cannot run): its own message and SQLSTATE, as fdw_error.
                Some(code) => {
                    return Some(ConnectorError::new(
                        ConnectorErrorKind::Rejected,
                        format!("PostgreSQL source: {detail} (SQLSTATE {code})"),
                    ));
                }
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

/// A failed remote statement as a DataFusion error: a connector error (so its
/// kind survives the trip back from a worker), else the error as it is.
fn statement_error(e: tokio_postgres::Error) -> DataFusionError {
    match classify(&e) {
        Some(connector) => connector.into(),
        None => DataFusionError::External(Box::new(e)),
    }
}

/// Rows per Arrow batch read from a remote statement (DataFusion's default
/// batch size).
const BATCH_ROWS: usize = 8192;

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
    rows: BoxStream<'static, DFResult<RecordBatch>>,
    statement: RunningStatement,
}

impl Stream for StatementRows {
    type Item = DFResult<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = self.rows.poll_next_unpin(cx);
        if let std::task::Poll::Ready(None) = next {
            self.statement.finished = true;
            self.statement.conn = None;
        }
        next
    }
}

/// Start `sql` on `client` and read its rows as Arrow batches of `schema`.
///
/// Written here rather than using the crate's `query_arrow`, which prepares the
/// statement first (a Parse/Describe round trip, then Bind/Execute): an unnamed
/// statement sent with no parameters does it in one round trip, which is most of
/// a selective query's cost on a nearby server. The rows are converted with the
/// crate's own `rows_to_arrow`, so types map exactly as in schema discovery.
async fn start_statement(
    client: &tokio_postgres::Client,
    sql: &str,
    schema: SchemaRef,
) -> DFResult<BoxStream<'static, DFResult<RecordBatch>>> {
    let no_parameters = std::iter::empty::<(i32, tokio_postgres::types::Type)>();
    let rows = client
        .query_typed_raw(sql, no_parameters)
        .await
        .map_err(statement_error)?;
    let projected = Some(schema);
    Ok(rows
        .chunks(BATCH_ROWS)
        .map(move |chunk| {
            let rows = chunk
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .map_err(statement_error)?;
            rows_to_arrow(&rows, &projected).map_err(|e| DataFusionError::External(Box::new(e)))
        })
        .boxed())
}

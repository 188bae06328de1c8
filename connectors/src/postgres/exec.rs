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
//! to tell "source unreachable" (08001) from a bad query.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::{Dialect, PostgreSqlDialect};
use datafusion_federation::sql::SQLExecutor;
use datafusion_table_providers::UnsupportedTypeAction;
use datafusion_table_providers::postgres::{DynPostgresConnection, pool::PostgresConnectionPool};
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{
    Error as DbError, get_schema, query_arrow,
};
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, PasswordProvider};
use datafusion_table_providers::util::secrets::to_secret_map;
use futures::{StreamExt, TryStreamExt};
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
/// table on that server and role.
#[derive(Clone)]
pub struct LazyPool {
    options: Arc<PostgresOptions>,
    pool: Arc<OnceCell<Arc<PostgresConnectionPool>>>,
}

impl LazyPool {
    /// A pool for `options`' server; nothing is opened yet.
    pub fn new(options: PostgresOptions) -> Self {
        Self {
            options: Arc::new(options),
            pool: Arc::default(),
        }
    }

    /// The open pool, connecting (and checking the password) the first time.
    pub async fn get(&self) -> ConnectorResult<Arc<PostgresConnectionPool>> {
        self.pool
            .get_or_try_init(|| open_pool(Arc::clone(&self.options)))
            .await
            .cloned()
    }

    /// One connection from the pool. The pool itself would keep retrying a dead
    /// server for 30 seconds (bb8's default, not configurable through the crate);
    /// `connect_timeout` bounds the wait instead.
    pub async fn connection(&self) -> ConnectorResult<Box<DynPostgresConnection>> {
        let pool = self.get().await?;
        let timeout = self.options.connect_timeout;
        match tokio::time::timeout(timeout, pool.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(classify(e.as_ref()).unwrap_or_else(|| unreachable(&*e))),
            Err(_) => Err(ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                format!(
                    "cannot reach the PostgreSQL source {} within {} s",
                    self.options.compute_context(),
                    timeout.as_secs()
                ),
            )),
        }
    }

    /// The names of the tables in a remote schema, sorted.
    pub async fn table_names(&self, schema: &str) -> ConnectorResult<Vec<String>> {
        let conn = self.connection().await?;
        let conn = conn.as_async().ok_or_else(|| {
            ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                "PostgreSQL connection is not asynchronous",
            )
        })?;
        let mut names = conn.tables(schema).await.map_err(|e| {
            classify(&e).unwrap_or_else(|| {
                ConnectorError::new(
                    ConnectorErrorKind::NotFound,
                    format!("cannot list the tables of schema \"{schema}\": {e}"),
                )
            })
        })?;
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
    tracing::info!(server = %options.compute_context(), "postgres pool opened");
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

/// Runs the SQL statements datafusion-federation renders for one server.
pub struct PostgresExecutor {
    pool: LazyPool,
}

impl PostgresExecutor {
    /// An executor over `pool`.
    pub fn new(pool: LazyPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SQLExecutor for PostgresExecutor {
    fn name(&self) -> &str {
        "postgres"
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.pool.options.compute_context())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::new(PostgreSqlDialect {})
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> DFResult<SendableRecordBatchStream> {
        tracing::debug!(sql = %query, "postgres query");
        let pool = self.pool.clone();
        let sql = query.to_string();
        let projected = Arc::clone(&schema);
        let batches = async move {
            let conn = pool.connection().await?;
            let stream = query_arrow(conn, sql, Some(projected)).await.map_err(|e| {
                classify(&e).map_or_else(|| DataFusionError::External(Box::new(e)), Into::into)
            })?;
            Ok::<_, DataFusionError>(stream.map_err(stream_error))
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

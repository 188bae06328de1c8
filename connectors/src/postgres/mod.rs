//! PostgreSQL tables (`STORED AS POSTGRES`) and Redshift tables (`STORED AS
//! REDSHIFT`), read through datafusion-table-providers' connection pool and type
//! mapping, with datafusion-federation pushing whole sub-plans (filters,
//! projections, limits, sorts, aggregates, same-server joins) to the server as one
//! SQL statement. Redshift speaks PostgreSQL's protocol; it differs in the SQL
//! dialect and in what it can evaluate (see [`pushdown`]).
//!
//! `resolve` connects, checks the credentials and reads the table's columns;
//! `open` builds the provider from the stored columns without I/O, the pool
//! connecting on the first query. Every read is planned as a [`RemoteScanExec`]
//! (finished SQL, stored source definition, schema) that [`RemoteScanCodec`] ships
//! to workers, which rebuild it over their own pools.

mod codec;
mod dialect;
mod exec;
mod options;
mod provider;
pub mod pushdown;
mod scan;
mod schema;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use vivace_catalog::{TableDefinition, TableName};

pub use codec::RemoteScanCodec;
pub use exec::{COORDINATOR_APPLICATION, LazyPool, PostgresExecutor, WORKER_APPLICATION, WeakPool};
pub use options::{Engine, PostgresOptions};
pub use scan::RemoteScanExec;

use crate::{
    Connector, ConnectorError, ConnectorErrorKind, ConnectorResult, SchemaRequest, TableRequest,
};

/// The `STORED AS POSTGRES` (or `REDSHIFT`) connector. Tables on the same server
/// and role share one connection pool, closed when the last of them is dropped.
pub struct PostgresConnector {
    engine: Engine,
    pools: Mutex<BTreeMap<String, WeakPool>>,
}

impl Default for PostgresConnector {
    fn default() -> Self {
        Self::new(Engine::Postgres)
    }
}

impl PostgresConnector {
    /// The `STORED AS` name of PostgreSQL tables.
    pub const NAME: &'static str = "postgres";
    /// The `STORED AS` name of Redshift tables.
    pub const REDSHIFT: &'static str = "redshift";

    /// The connector of `engine`'s tables.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            pools: Mutex::default(),
        }
    }

    fn parse(
        &self,
        location: &str,
        options: &BTreeMap<String, String>,
    ) -> ConnectorResult<PostgresOptions> {
        PostgresOptions::parse_for(self.engine, location, options)
    }

    fn pool(&self, options: &PostgresOptions) -> LazyPool {
        let key = format!(
            "{}|{:?}|{}|{}|{:?}",
            options.compute_context(),
            options.password_env,
            options.sslmode,
            options.pool_size,
            options.connect_timeout
        );
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.retain(|_, pool| pool.upgrade().is_some());
        if let Some(pool) = pools.get(&key).and_then(WeakPool::upgrade) {
            return pool;
        }
        let pool = LazyPool::new(options.clone());
        pools.insert(key, pool.downgrade());
        pool
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    async fn resolve(
        &self,
        request: TableRequest,
        _state: &SessionState,
    ) -> ConnectorResult<TableDefinition> {
        if !request.partition_columns.is_empty() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::SchemaMismatch,
                format!(
                    "PARTITIONED BY is not valid for {} tables",
                    self.engine.name().to_ascii_uppercase()
                ),
            ));
        }
        let options = self.parse(&request.location, &request.options)?;
        let schema = schema::discover(&self.pool(&options), &options.table).await?;
        if let Some(partitioning) = &options.partitioning {
            schema::check_partition_column(&schema, &partitioning.column)?;
        }
        if let Some(declared) = &request.declared_schema {
            schema::check_declared(declared, &schema)?;
        }
        Ok(TableDefinition {
            name: request.name,
            connector: self.engine.name().to_string(),
            location: request.location,
            columns: schema::to_columns(&schema),
            declared_columns: request.declared_schema.is_some(),
            partition_columns: vec![],
            options: request.options,
        })
    }

    async fn resolve_schema(
        &self,
        request: SchemaRequest,
        _state: &SessionState,
    ) -> ConnectorResult<Vec<TableDefinition>> {
        let mut base = request.options.clone();
        if base.contains_key("table") {
            return Err(ConnectorError::invalid_option(
                "option 'table' is not valid for an external schema; name the remote schema with 'schema'",
            ));
        }
        if let Some(key) = ["partition_column", "partitions"]
            .into_iter()
            .find(|k| base.contains_key(*k))
        {
            return Err(ConnectorError::invalid_option(format!(
                "option '{key}' is not valid for an external schema; give it to a single table (STORED AS {})",
                self.engine.name().to_ascii_uppercase()
            )));
        }
        let remote_schema = base
            .remove("schema")
            .unwrap_or_else(|| "public".to_string());
        let table_options = |table: &str| {
            let mut options = base.clone();
            let reference = format!("{}.{}", quote_ident(&remote_schema), quote_ident(table));
            options.insert("table".to_string(), reference);
            options
        };
        // Validate the options (and reach the server) before listing anything.
        let probe = self.parse(&request.location, &table_options("-"))?;
        let pool = self.pool(&probe);
        let tables = pool.table_names(&remote_schema).await?;
        if tables.is_empty() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "schema \"{remote_schema}\" has no tables or views on the {} source, or does not exist",
                    self.engine.display()
                ),
            ));
        }
        let mut defs = Vec::with_capacity(tables.len());
        for table in tables {
            let options = table_options(&table);
            let parsed = self.parse(&request.location, &options)?;
            let schema = schema::discover(&pool, &parsed.table).await?;
            defs.push(TableDefinition {
                name: TableName::new(request.name.clone(), table),
                connector: self.engine.name().to_string(),
                location: request.location.clone(),
                columns: schema::to_columns(&schema),
                declared_columns: false,
                partition_columns: vec![],
                options,
            });
        }
        Ok(defs)
    }

    fn open(
        &self,
        def: &TableDefinition,
        _state: &SessionState,
    ) -> ConnectorResult<Arc<dyn TableProvider>> {
        let options = self.parse(&def.location, &def.options)?;
        let schema = schema::from_columns(&def.columns)?;
        Ok(provider::table_provider(
            &self.pool(&options),
            &options.table,
            schema,
            options.partitioning.clone(),
        ))
    }
}

/// `"name"`, quotes doubled: how the `table` option keeps a remote name exact.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

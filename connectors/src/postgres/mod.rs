//! PostgreSQL tables (`STORED AS POSTGRES`), read through datafusion-table-providers'
//! connection pool and type mapping, with datafusion-federation pushing whole
//! sub-plans (filters, projections, limits, sorts, aggregates, same-server joins)
//! to the server as one SQL statement.
//!
//! `resolve` connects, checks the credentials and reads the table's columns;
//! `open` builds the provider from the stored columns without I/O, the pool
//! connecting on the first query. Federated scans run on the coordinator: they
//! have no plan codec, so a query that reads a PostgreSQL table is not cut into
//! worker stages.

mod exec;
mod options;
mod provider;
mod pushdown;
mod schema;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use vivace_catalog::{TableDefinition, TableName};

pub use exec::LazyPool;
pub use options::PostgresOptions;

use crate::{
    Connector, ConnectorError, ConnectorErrorKind, ConnectorResult, SchemaRequest, TableRequest,
};

/// The `STORED AS POSTGRES` connector. Tables on the same server and role share
/// one connection pool.
#[derive(Default)]
pub struct PostgresConnector {
    pools: Mutex<BTreeMap<String, LazyPool>>,
}

impl PostgresConnector {
    /// The `STORED AS` name.
    pub const NAME: &'static str = "postgres";

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
        pools
            .entry(key)
            .or_insert_with(|| LazyPool::new(options.clone()))
            .clone()
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
                "PARTITIONED BY is not valid for POSTGRES tables",
            ));
        }
        let options = PostgresOptions::parse(&request.location, &request.options)?;
        let schema = schema::discover(&self.pool(&options), &options.table).await?;
        if let Some(declared) = &request.declared_schema {
            schema::check_declared(declared, &schema)?;
        }
        Ok(TableDefinition {
            name: request.name,
            connector: Self::NAME.to_string(),
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
        let probe = PostgresOptions::parse(&request.location, &table_options("-"))?;
        let pool = self.pool(&probe);
        let tables = pool.table_names(&remote_schema).await?;
        if tables.is_empty() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "schema \"{remote_schema}\" has no tables on the PostgreSQL source, or does not exist"
                ),
            ));
        }
        let mut defs = Vec::with_capacity(tables.len());
        for table in tables {
            let options = table_options(&table);
            let parsed = PostgresOptions::parse(&request.location, &options)?;
            let schema = schema::discover(&pool, &parsed.table).await?;
            defs.push(TableDefinition {
                name: TableName::new(request.name.clone(), table),
                connector: Self::NAME.to_string(),
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
        let options = PostgresOptions::parse(&def.location, &def.options)?;
        let schema = schema::from_columns(&def.columns)?;
        Ok(provider::table_provider(
            &self.pool(&options),
            &options.table,
            schema,
        ))
    }
}

/// `"name"`, quotes doubled: how the `table` option keeps a remote name exact.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

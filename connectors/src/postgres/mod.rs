//! PostgreSQL tables (`STORED AS POSTGRES`) and Redshift tables (`STORED AS
//! REDSHIFT`), read through datafusion-table-providers' connection pool and type
//! mapping, with datafusion-federation pushing whole sub-plans (filters,
//! projections, limits, sorts, aggregates, same-server joins) to the server as one
//! SQL statement. Redshift speaks PostgreSQL's protocol; it differs in the SQL
//! dialect and in what it can evaluate (see [`pushdown`]).
//!
//! `resolve` connects, checks the credentials and reads the table's columns;
//! `open` builds the provider from the stored columns without I/O, the pool
//! connecting on the first query. Every read is planned as a remote scan
//! ([`crate::remote::RemoteScanExec`]) of finished SQL statements on a
//! [`PostgresSource`], which the remote core ships to workers; they rebuild the
//! source from its stored definition over their own pools
//! ([`Connector::remote_source`]).
//!
//! Modules, from the bottom up: `options` and `flavor` (what a location and its
//! options mean; PostgreSQL or Redshift), `dialect` and `redshift` (the SQL each
//! is sent), `schema` (types), `client` (pools and running statements),
//! `source`, `statements` (plans to SQL, range splits) and `provider` (what
//! DataFusion and datafusion-federation see).

mod client;
mod dialect;
mod flavor;
mod options;
mod provider;
mod redshift;
mod schema;
mod source;
mod statements;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use vivace_catalog::{TableDefinition, TableName};

pub use flavor::{Flavor, POSTGRES, REDSHIFT};
pub use options::PostgresOptions;
pub use source::PostgresSource;

use crate::options::OptionSpec;
use crate::remote::{PoolCache, RemoteSource, SourceDefinition};
use crate::{
    Connector, ConnectorError, ConnectorErrorKind, ConnectorResult, SchemaRequest, Side,
    TableRequest,
};
use client::{LazyPool, PoolState};

/// The connectors of this folder, by `STORED AS` name.
pub fn connectors() -> Vec<(&'static str, Arc<dyn Connector>)> {
    [&POSTGRES, &REDSHIFT]
        .into_iter()
        .map(|flavor| {
            (
                flavor.name,
                Arc::new(PostgresConnector::new(flavor)) as Arc<dyn Connector>,
            )
        })
        .collect()
}

/// How long a worker keeps the pool of a shipped scan after its last use.
const WORKER_POOL_IDLE: Duration = Duration::from_secs(300);

/// The `STORED AS POSTGRES` (or `REDSHIFT`) connector. Tables on the same server
/// and role share one connection pool, closed when the last of them is dropped;
/// shipped scans on a worker share one too.
pub struct PostgresConnector {
    flavor: &'static Flavor,
    pools: PoolCache<PoolState>,
}

impl PostgresConnector {
    /// The connector of `flavor`'s tables.
    pub fn new(flavor: &'static Flavor) -> Self {
        Self {
            flavor,
            pools: PoolCache::default(),
        }
    }

    fn parse(
        &self,
        location: &str,
        options: &BTreeMap<String, String>,
    ) -> ConnectorResult<PostgresOptions> {
        PostgresOptions::parse_for(self.flavor, location, options)
    }

    /// The one pool of `options`' server and role on `side` (the key is made
    /// here only).
    fn pool(&self, options: &PostgresOptions, side: Side) -> LazyPool {
        let key = format!(
            "{:?}|{}|{:?}|{}|{}|{:?}",
            side,
            options.compute_context(),
            options.password_env,
            options.sslmode,
            options.pool_size,
            options.connect_timeout
        );
        let (application, keep) = match side {
            Side::Coordinator => (client::COORDINATOR_APPLICATION, None),
            Side::Worker => (client::WORKER_APPLICATION, Some(WORKER_POOL_IDLE)),
        };
        LazyPool::from(
            self.pools
                .get(&key, keep, || PoolState::new(options.clone(), application)),
        )
    }

    fn source(&self, options: &PostgresOptions, side: Side) -> Arc<PostgresSource> {
        Arc::new(PostgresSource::new(self.pool(options, side)))
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    fn options(&self) -> &'static [OptionSpec] {
        options::OPTIONS
    }

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
                    self.flavor.name.to_ascii_uppercase()
                ),
            ));
        }
        let options = self.parse(&request.location, &request.options)?;
        let pool = self.pool(&options, Side::Coordinator);
        let schema = schema::discover(&pool, &options.table).await?;
        if let Some(partitioning) = &options.partitioning {
            schema::check_partition_column(&schema, &partitioning.column)?;
        }
        if let Some(declared) = &request.declared_schema {
            schema::check_declared(declared, &schema)?;
        }
        Ok(TableDefinition {
            name: request.name,
            connector: self.flavor.name.to_string(),
            location: request.location,
            columns: crate::columns::to_columns(&schema),
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
                self.flavor.name.to_ascii_uppercase()
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
        let pool = self.pool(&probe, Side::Coordinator);
        let tables = pool.table_names(&remote_schema).await?;
        if tables.is_empty() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "schema \"{remote_schema}\" has no tables or views on the {} source, or does not exist",
                    self.flavor.display
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
                connector: self.flavor.name.to_string(),
                location: request.location.clone(),
                columns: crate::columns::to_columns(&schema),
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
        let schema = crate::columns::from_columns(&def.columns)?;
        Ok(provider::table_provider(
            &self.source(&options, Side::Coordinator),
            &options.table,
            schema,
            options.partitioning.clone(),
        ))
    }

    fn remote_source(
        &self,
        def: &SourceDefinition,
        side: Side,
    ) -> ConnectorResult<Arc<dyn RemoteSource>> {
        let options = self.parse(&def.location, &def.options)?;
        Ok(self.source(&options, side))
    }

    fn ships(&self, provider: &dyn TableProvider) -> Option<bool> {
        provider::is_postgres_table(provider).then_some(true)
    }
}

/// `"name"`, quotes doubled: how the `table` option keeps a remote name exact.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

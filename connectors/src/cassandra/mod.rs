//! Apache Cassandra tables (`STORED AS CASSANDRA`), through the scylla driver.
//!
//! `resolve` opens a session, checks the credentials and reads the table's
//! columns from the driver's copy of `system_schema`; `open` builds the
//! provider from the stored columns without I/O. Reads are remote scans
//! ([`crate::remote::RemoteScanExec`]) of CQL requests — one per token range,
//! or per group of partitions when the key is fixed — that workers rebuild
//! from the stored definition over their own sessions, reading the password
//! from their own environment.
//!
//! Modules, from the bottom up: `options` (LOCATION and OPTIONS), `session`
//! (opening sessions, the driver's errors), `schema` (columns and their Arrow
//! types), `decode` (rows as Arrow batches), `cql` (which filters Cassandra
//! answers, and the requests of a scan), `source` (the `RemoteSource`:
//! prepared statements, paging, cancel), `provider` (the table DataFusion
//! scans) and `per_partition` (`PER PARTITION LIMIT` for top rows per
//! partition).

mod cql;
mod decode;
mod options;
mod per_partition;
mod provider;
mod schema;
mod session;
mod source;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use vivace_catalog::TableDefinition;

pub use options::CassandraOptions;
pub use source::CassandraSource;

use crate::options::OptionSpec;
use crate::remote::{PoolCache, RemoteSource, SourceDefinition, pushdown};
use crate::{
    Connector, ConnectorError, ConnectorErrorKind, ConnectorResult, SchemaRequest, Side,
    TableRequest,
};
use provider::CassandraTable;
use source::Cluster;

/// The connectors of this folder, by `STORED AS` name.
pub fn connectors() -> Vec<(&'static str, Arc<dyn Connector>)> {
    vec![("cassandra", Arc::new(CassandraConnector::default()))]
}

/// How long a worker keeps the session of a shipped scan after its last use.
const WORKER_SESSION_IDLE: Duration = Duration::from_secs(300);

/// The `STORED AS CASSANDRA` connector. Tables of the same cluster, keyspace
/// and user share one session.
#[derive(Default)]
pub struct CassandraConnector {
    clusters: PoolCache<Cluster>,
}

impl CassandraConnector {
    fn source(&self, options: CassandraOptions, side: Side) -> Arc<CassandraSource> {
        let key = format!("{side:?}|{}", options.session_key());
        let keep = (side == Side::Worker).then_some(WORKER_SESSION_IDLE);
        let cluster = self.clusters.get(&key, keep, Cluster::default);
        Arc::new(CassandraSource::new(options, cluster))
    }

    /// The columns of `table`, read from the cluster's schema now.
    async fn discover(
        &self,
        source: &CassandraSource,
        table: &str,
    ) -> ConnectorResult<Vec<schema::Column>> {
        let keyspace = self.keyspace(source).await?;
        let Some(found) = keyspace.tables.get(table) else {
            let mut names: Vec<&str> = keyspace.tables.keys().map(String::as_str).collect();
            names.sort();
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "Cassandra keyspace \"{}\" has no table \"{table}\" (it has: {})",
                    source.options().keyspace,
                    names.join(", ")
                ),
            ));
        };
        let mut columns =
            schema::columns(&format!("{}.{table}", source.options().keyspace), found)?;
        let descending = self.descending_columns(source).await?;
        mark_descending(&mut columns, table, &descending);
        Ok(columns)
    }

    /// (table, column) of every clustering column of the keyspace stored in
    /// descending order (the driver's schema does not say).
    async fn descending_columns(
        &self,
        source: &CassandraSource,
    ) -> ConnectorResult<HashSet<(String, String)>> {
        let session = source.session().await?;
        let options = source.options();
        let table = "system_schema.columns";
        let rows = session
            .query_unpaged(
                "SELECT table_name, column_name, clustering_order FROM system_schema.columns WHERE keyspace_name = ?",
                (source.options().keyspace.as_str(),),
            )
            .await
            .map_err(|e| session::request_error(options, table, &e))?
            .into_rows_result()
            .map_err(|e| session::request_error(options, table, &e))?;
        let mut descending = HashSet::new();
        for row in rows
            .rows::<(String, String, String)>()
            .map_err(|e| session::request_error(options, table, &e))?
        {
            let (name, column, order) =
                row.map_err(|e| session::request_error(options, table, &e))?;
            if order.eq_ignore_ascii_case("desc") {
                descending.insert((name, column));
            }
        }
        Ok(descending)
    }

    async fn keyspace(
        &self,
        source: &CassandraSource,
    ) -> ConnectorResult<scylla::cluster::metadata::Keyspace> {
        let session = source.session().await?;
        // Tables made since the session opened are not in its copy yet.
        session.refresh_metadata().await.map_err(|e| {
            ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                format!("cannot read Cassandra's schema: {e}"),
            )
        })?;
        let state = session.get_cluster_state();
        let keyspace = &source.options().keyspace;
        state.get_keyspace(keyspace).cloned().ok_or_else(|| {
            ConnectorError::new(
                ConnectorErrorKind::SchemaNotFound,
                format!("Cassandra has no keyspace \"{keyspace}\""),
            )
        })
    }
}

/// Mark the clustering columns of `table` that `descending` lists.
fn mark_descending(
    columns: &mut [schema::Column],
    table: &str,
    descending: &HashSet<(String, String)>,
) {
    for column in columns {
        column.descending = column.role == schema::Role::Clustering
            && descending.contains(&(table.to_string(), column.name.clone()));
    }
}

#[async_trait]
impl Connector for CassandraConnector {
    fn options(&self) -> &'static [OptionSpec] {
        options::OPTIONS
    }

    async fn resolve(
        &self,
        request: TableRequest,
        _state: &SessionState,
    ) -> ConnectorResult<TableDefinition> {
        request.refuse_partitioning()?;
        let options =
            CassandraOptions::parse(&request.connector, &request.location, &request.options)?;
        let table = options.table()?.to_string();
        let source = self.source(options, Side::Coordinator);
        let mut columns = self.discover(&source, &table).await?;
        if let Some(declared) = &request.declared_schema {
            columns = schema::apply_declared(&columns, declared)?;
        }
        Ok(request.into_definition(schema::to_definitions(&columns)))
    }

    async fn resolve_schema(
        &self,
        request: SchemaRequest,
        _state: &SessionState,
    ) -> ConnectorResult<Vec<TableDefinition>> {
        if request.options.contains_key("table") {
            return Err(ConnectorError::invalid_option(
                "option 'table' is not valid for an external schema: it mounts every table of the keyspace",
            ));
        }
        let options =
            CassandraOptions::parse(&request.connector, &request.location, &request.options)?;
        let source = self.source(options, Side::Coordinator);
        let keyspace = self.keyspace(&source).await?;
        let mut names: Vec<&String> = keyspace.tables.keys().collect();
        names.sort();
        let mut defs = Vec::with_capacity(names.len());
        let descending = self.descending_columns(&source).await?;
        for name in names {
            let mut columns = schema::columns(
                &format!("{}.{name}", source.options().keyspace),
                &keyspace.tables[name],
            )?;
            mark_descending(&mut columns, name, &descending);
            defs.push(request.mounted(name, "table", schema::to_definitions(&columns)));
        }
        if defs.is_empty() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::NotFound,
                format!(
                    "Cassandra keyspace \"{}\" has no tables",
                    source.options().keyspace
                ),
            ));
        }
        Ok(defs)
    }

    fn open(
        &self,
        def: &TableDefinition,
        _state: &SessionState,
    ) -> ConnectorResult<Arc<dyn TableProvider>> {
        let options = CassandraOptions::parse(&def.connector, &def.location, &def.options)?;
        let table = options.table()?.to_string();
        let columns = schema::from_definitions(&def.columns)?;
        let context = options.compute_context();
        let source = self.source(options, Side::Coordinator);
        let key = schema::key(&columns);
        let plain = CassandraTable::new(source, &table, columns);
        let pushing = plain.pushing();
        Ok(pushdown::table_provider(
            "cassandra",
            context,
            Arc::new(plain),
            Arc::new(pushing),
            Some(key),
            vec![Arc::new(per_partition::PerPartitionLimit)],
        ))
    }

    fn remote_source(
        &self,
        def: &SourceDefinition,
        side: Side,
    ) -> ConnectorResult<Arc<dyn RemoteSource>> {
        let options = CassandraOptions::parse(&def.connector, &def.location, &def.options)?;
        Ok(self.source(options, side))
    }

    fn ships(&self, provider: &dyn TableProvider) -> Option<bool> {
        provider::is_cassandra_table(provider).then_some(true)
    }
}

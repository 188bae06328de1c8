//! What DataFusion sees of a Cassandra table: [`CassandraTable`], in its
//! plain form (projection only) or its pushing form (key filters, clustering
//! ranges, `LIMIT`, and with `allow_filtering` other comparisons, as
//! [`super::cql`] decides). Which form a query gets is
//! [`crate::remote::pushdown`]'s business.
//!
//! Either way the scan is a [`RemoteScanExec`] of CQL requests — one per token
//! range, or per group of partitions — which the remote core ships to workers.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use scylla::value::CqlValue;

use super::cql;
use super::schema::{self, Column};
use super::source::CassandraSource;
use crate::remote::{RemoteScanExec, RemoteSource};

/// Bytes of table data per token range when `splits` is not given.
const BYTES_PER_SPLIT: u64 = 64 << 20;
/// Fewest token ranges a scan is split into when `splits` is not given.
const MIN_SPLITS: u64 = 4;
/// Most token ranges a scan is split into when `splits` is not given.
const MAX_AUTO_SPLITS: u64 = 64;

/// One table of one cluster.
#[derive(Debug, Clone)]
pub struct CassandraTable {
    source: Arc<CassandraSource>,
    table: String,
    columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    pushdown: bool,
    /// `PER PARTITION LIMIT` to push ([`super::per_partition`]).
    per_partition_limit: Option<u64>,
}

impl CassandraTable {
    /// The plain form of `table` on `source` with the stored `columns`.
    pub fn new(source: Arc<CassandraSource>, table: &str, columns: Vec<Column>) -> Self {
        Self {
            source,
            table: table.to_string(),
            schema: schema::schema(&columns),
            columns: Arc::new(columns),
            pushdown: false,
            per_partition_limit: None,
        }
    }

    /// The table's columns, key first.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Whether this is the pushing form.
    pub fn is_pushing(&self) -> bool {
        self.pushdown
    }

    /// The same table reading at most `n` rows of each partition.
    pub fn with_per_partition_limit(&self, n: u64) -> Self {
        Self {
            per_partition_limit: Some(n),
            ..self.clone()
        }
    }

    /// The same table in its pushing form.
    pub fn pushing(&self) -> Self {
        Self {
            pushdown: true,
            ..self.clone()
        }
    }

    /// The tokens the cluster's nodes own (empty when the session cannot
    /// say: the ring is then cut evenly).
    async fn ring(&self) -> Vec<i64> {
        let Ok(session) = self.source.session().await else {
            return vec![];
        };
        let state = session.get_cluster_state();
        state
            .replica_locator()
            .ring()
            .iter()
            .map(|(token, _)| token.value())
            .collect()
    }

    /// Token ranges for a scan: the `splits` option, else one per 64 MiB of
    /// the table as `system.size_estimates` counts it (at least 4).
    async fn splits(&self) -> u32 {
        let options = self.source.options();
        if let Some(n) = options.splits {
            return n;
        }
        let estimate = async {
            let session = self.source.session().await.ok()?;
            let rows = session
                .query_unpaged(
                    "SELECT partitions_count, mean_partition_size FROM system.size_estimates WHERE keyspace_name = ? AND table_name = ?",
                    (options.keyspace.as_str(), self.table.as_str()),
                )
                .await
                .ok()?
                .into_rows_result()
                .ok()?;
            let mut bytes = 0u64;
            for row in rows.rows::<scylla::value::Row>().ok()? {
                let row = row.ok()?;
                if let [Some(CqlValue::BigInt(count)), Some(CqlValue::BigInt(size))] =
                    row.columns.as_slice()
                {
                    bytes = bytes.saturating_add((*count).max(0) as u64 * (*size).max(0) as u64);
                }
            }
            Some(bytes)
        };
        let bytes = estimate.await.unwrap_or(0);
        (bytes / BYTES_PER_SPLIT).clamp(MIN_SPLITS, MAX_AUTO_SPLITS) as u32
    }
}

#[async_trait]
impl TableProvider for CassandraTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        if !self.pushdown {
            return Ok(vec![
                TableProviderFilterPushDown::Unsupported;
                filters.len()
            ]);
        }
        let options = self.source.options();
        Ok(cql::verdicts(
            filters,
            &self.columns,
            options.max_partitions,
            options.allow_filtering,
        ))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let (filters, limit) = if self.pushdown {
            (filters, limit.map(|l| l as u64))
        } else {
            (&[][..], None)
        };
        let projected: Vec<&Column> = match projection {
            Some(indices) => indices.iter().map(|i| &self.columns[*i]).collect(),
            None => self.columns.iter().collect(),
        };
        let schema = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => Arc::clone(&self.schema),
        };
        let options = self.source.options();
        let pushed: Vec<&Expr> = filters.iter().collect();
        let restrictions = cql::restrict(
            &pushed,
            &self.columns,
            options.max_partitions,
            options.allow_filtering,
        );
        let ranges = if restrictions.fixes_partitions() {
            vec![]
        } else {
            let splits = self.splits().await;
            cql::token_groups(&self.ring().await, splits)
        };
        let plan = cql::plan(
            &options.keyspace,
            &self.table,
            &self.columns,
            &projected,
            &restrictions,
            cql::Limits {
                rows: limit,
                per_partition: self.per_partition_limit.filter(|_| self.pushdown),
            },
            &ranges,
        );
        let requests: Vec<String> = plan
            .requests
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .collect();
        let partitions = requests.len();
        Ok(Arc::new(RemoteScanExec::new(
            Arc::clone(&self.source) as Arc<dyn RemoteSource>,
            requests,
            schema,
            plan.split_on,
            partitions,
        )))
    }
}

/// Whether `provider` is a Cassandra table (either form).
pub fn is_cassandra_table(provider: &dyn TableProvider) -> bool {
    (crate::remote::pushdown::plain_form(provider) as &dyn Any).is::<CassandraTable>()
}

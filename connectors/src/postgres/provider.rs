//! The DataFusion table provider of a PostgreSQL table: datafusion-federation's
//! adaptor, which the federation optimizer replaces by one remote SQL statement,
//! over a plain scan used when pushdown is off (`SET vivace.pushdown = off`).
//! Either way what runs is a [`RemoteScanExec`]: a table with `partition_column` /
//! `partitions` is read as that many range queries whenever what is sent is a
//! scan (columns and filters only).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_federation::sql::SQLExecutor;
use datafusion_federation::{FederatedTableProviderAdaptor, FederatedTableSource};

use super::exec::{LazyPool, PostgresExecutor};
use super::options::RangePartitioning;
use super::pushdown::federated_source;
use super::scan::RemoteScanExec;

/// The provider of `table` on `pool`'s server with the stored `schema` (no I/O).
pub fn table_provider(
    pool: &LazyPool,
    table: &TableReference,
    schema: SchemaRef,
    partitioning: Option<RangePartitioning>,
) -> Arc<dyn TableProvider> {
    let executor = Arc::new(PostgresExecutor::new(pool.clone()));
    let source = federated_source(
        &(Arc::clone(&executor) as Arc<dyn SQLExecutor>),
        table,
        schema,
    );
    let plain = PlainScan {
        table: table.clone(),
        source: Arc::clone(&source),
        executor,
        partitioning,
    };
    Arc::new(FederatedTableProviderAdaptor::new_with_provider(
        source,
        Arc::new(plain),
    ))
}

/// The whole table, columns projected and nothing else: filters and limits stay
/// with DataFusion. Written by hand because the crate's `SqlTable` accepts
/// filters (also at the physical level), and "pushdown off" must mean none. It
/// runs through the same executor as federated statements, so errors map alike.
#[derive(Debug)]
pub(super) struct PlainScan {
    table: TableReference,
    source: Arc<dyn FederatedTableSource>,
    executor: Arc<PostgresExecutor>,
    pub(super) partitioning: Option<RangePartitioning>,
}

#[async_trait]
impl TableProvider for PlainScan {
    fn schema(&self) -> SchemaRef {
        self.source.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        // A scan of the federated source itself, so federation's own rewrite
        // renders the remote table name.
        let adaptor = Arc::new(FederatedTableProviderAdaptor::new(Arc::clone(&self.source)));
        let plan = LogicalPlanBuilder::scan(
            self.table.clone(),
            provider_as_source(adaptor),
            projection.cloned(),
        )?
        .build()?;
        let scan = RemoteScanExec::plan(
            &plan,
            Arc::clone(&self.executor),
            self.partitioning.as_ref(),
        )
        .await?;
        Ok(Arc::new(scan))
    }
}

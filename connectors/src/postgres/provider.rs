//! The DataFusion table provider of a PostgreSQL table: datafusion-federation's
//! adaptor, which the federation optimizer replaces by one remote SQL statement,
//! over a plain scan used when pushdown is off (`SET vivace.pushdown = off`).
//! Either way what runs is a [`RemoteScanExec`]: a table with `partition_column` /
//! `partitions` is read as that many range queries whenever what is sent is a
//! scan (columns and filters only).
//!
//! [`FederationExecutor`] is what datafusion-federation sees of a source: it
//! renders sub-plans in the flavour's dialect, keeps what Redshift cannot run
//! in Vivace ([`super::flavor::Flavor::fit`]) and plans every federated
//! sub-plan as a [`RemoteScanExec`] ([`super::statements`]).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{
    LogicalOptimizer, RemoteTableRef, SQLExecutor, SQLFederationProvider, SQLTableSource,
};
use datafusion_federation::{
    FederatedPlanNode, FederatedTableProviderAdaptor, FederatedTableSource,
};

use super::options::RangePartitioning;
use super::source::PostgresSource;
use super::statements::{RemoteScanPlanner, plan_scan};
use crate::remote::RemoteSource;

/// The provider of `table` on `source` with the stored `schema` (no I/O).
pub fn table_provider(
    source: &Arc<PostgresSource>,
    table: &TableReference,
    schema: SchemaRef,
    partitioning: Option<RangePartitioning>,
) -> Arc<dyn TableProvider> {
    let executor = Arc::new(FederationExecutor {
        source: Arc::clone(source),
    }) as Arc<dyn SQLExecutor>;
    let provider = Arc::new(SQLFederationProvider::new(executor));
    let federated: Arc<dyn FederatedTableSource> = Arc::new(SQLTableSource::new_with_schema(
        provider,
        RemoteTableRef::from(table.clone()),
        schema,
    ));
    let plain = PlainScan {
        table: table.clone(),
        federated: Arc::clone(&federated),
        source: Arc::clone(source),
        partitioning,
    };
    Arc::new(FederatedTableProviderAdaptor::new_with_provider(
        federated,
        Arc::new(plain),
    ))
}

/// Whether `provider` is a table [`table_provider`] made.
pub fn is_postgres_table(provider: &dyn TableProvider) -> bool {
    (provider as &dyn Any)
        .downcast_ref::<FederatedTableProviderAdaptor>()
        .and_then(|adaptor| adaptor.table_provider.as_ref())
        .is_some_and(|inner| (inner.as_ref() as &dyn Any).is::<PlainScan>())
}

/// The whole table, columns projected and nothing else: filters and limits stay
/// with DataFusion. Written by hand because the crate's `SqlTable` accepts
/// filters (also at the physical level), and "pushdown off" must mean none. It
/// runs through the same source as federated statements, so errors map alike.
#[derive(Debug)]
struct PlainScan {
    table: TableReference,
    federated: Arc<dyn FederatedTableSource>,
    source: Arc<PostgresSource>,
    partitioning: Option<RangePartitioning>,
}

#[async_trait]
impl TableProvider for PlainScan {
    fn schema(&self) -> SchemaRef {
        self.federated.schema()
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
        let adaptor = Arc::new(FederatedTableProviderAdaptor::new(Arc::clone(
            &self.federated,
        )));
        let plan = LogicalPlanBuilder::scan(
            self.table.clone(),
            provider_as_source(adaptor),
            projection.cloned(),
        )?
        .build()?;
        let scan = plan_scan(&plan, &self.source, self.partitioning.as_ref()).await?;
        Ok(Arc::new(scan))
    }
}

/// What datafusion-federation runs statements through for one source.
#[derive(Debug)]
struct FederationExecutor {
    source: Arc<PostgresSource>,
}

#[async_trait]
impl SQLExecutor for FederationExecutor {
    fn name(&self) -> &str {
        self.source.flavor().name
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.source.compute_context())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        self.source.dialect()
    }

    fn logical_optimizer(&self) -> Option<LogicalOptimizer> {
        let source = Arc::clone(&self.source);
        Some(Box::new(move |plan: LogicalPlan| {
            plan_as_remote_scans(source.flavor().fit(plan)?, &source)
        }))
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> DFResult<SendableRecordBatchStream> {
        self.source.run(query, schema)
    }

    async fn table_names(&self) -> DFResult<Vec<String>> {
        Err(DataFusionError::NotImplemented(
            "listing the tables of a PostgreSQL source".to_string(),
        ))
    }

    async fn get_table_schema(&self, table_name: &str) -> DFResult<SchemaRef> {
        Ok(self
            .source
            .pool()
            .table_schema(&TableReference::from(table_name))
            .await?)
    }
}

/// Gives every federated sub-plan of `source` a planner that makes a
/// remote scan: split into ranges when the sub-plan is a scan of a table
/// with `partition_column` / `partitions`, one statement otherwise (sorts,
/// limits, aggregates and joins must be one statement to mean what they say).
fn plan_as_remote_scans(plan: LogicalPlan, source: &Arc<PostgresSource>) -> DFResult<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Extension(Extension { node: ext }) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(federated) = ext.as_any().downcast_ref::<FederatedPlanNode>() else {
            return Ok(Transformed::no(node));
        };
        let planner = Arc::new(RemoteScanPlanner {
            source: Arc::clone(source),
            partitioning: partitioned_scan(&federated.plan),
        });
        let replaced = FederatedPlanNode::new(federated.plan.clone(), planner);
        Ok(Transformed::yes(LogicalPlan::Extension(Extension {
            node: Arc::new(replaced),
        })))
    })
    .map(|t| t.data)
}

/// The partitioning of the table `plan` scans, when `plan` is only projections
/// and filters over one scan of a partitioned table (no limit pushed into it).
fn partitioned_scan(plan: &LogicalPlan) -> Option<RangePartitioning> {
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
            plain.partitioning.clone()
        }
        _ => None,
    }
}

//! Remote scans as recipes: every PostgreSQL (or Redshift) read, pushed-down or
//! plain, is planned as a [`RemoteScanExec`] — the source's stored definition,
//! the finished SQL statements (one per output partition) and the Arrow schema.
//! Nothing in it needs the coordinator's memory, so the plan codec
//! ([`super::codec`]) can send it to a worker, which opens its own connection pool
//! to the same server and runs the same statements.
//!
//! A table with `partition_column` / `partitions` is read as that many range
//! queries whenever what is pushed is a scan (columns and filters only). The
//! column's `min` and `max` are read once, when the query is planned, so every
//! range statement is known up front and the ranges of different workers cannot
//! disagree: the first range also takes NULLs and everything below the minimum,
//! the last everything above its start, so rows added meanwhile are not lost.

use std::any::Any;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
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
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::schema_cast::record_convert::try_cast_to;
use datafusion_federation::sql::{AstAnalyzer, SQLExecutor, VirtualExecutionPlan};
use datafusion_federation::{FederatedPlanNode, FederatedTableProviderAdaptor, FederationPlanner};
use futures::{StreamExt, TryStreamExt};

use super::exec::PostgresExecutor;
use super::options::RangePartitioning;
use super::provider::PlainScan;
use crate::ConnectorError;

/// Statements on one source, one per output partition (partitions past the last
/// statement are empty), whose rows are cast to `schema`.
#[derive(Debug, Clone)]
pub struct RemoteScanExec {
    executor: Arc<PostgresExecutor>,
    statements: Vec<String>,
    schema: SchemaRef,
    /// `partition_column`, when the statements are its ranges (for EXPLAIN).
    split_on: Option<String>,
    props: Arc<PlanProperties>,
    /// Rows read and time spent, per partition (for EXPLAIN ANALYZE).
    metrics: ExecutionPlanMetricsSet,
}

impl RemoteScanExec {
    /// Statements on `executor`'s server producing `schema`, in `partitions`
    /// output partitions (at least one per statement).
    pub fn new(
        executor: Arc<PostgresExecutor>,
        statements: Vec<String>,
        schema: SchemaRef,
        split_on: Option<String>,
        partitions: usize,
    ) -> Self {
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions.max(statements.len()).max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            executor,
            statements,
            schema,
            split_on,
            props,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Plan `plan` (a federated sub-plan, or a plain scan) on `executor`'s server:
    /// one statement, or one per range when `partitioning` applies.
    pub async fn plan(
        plan: &LogicalPlan,
        executor: Arc<PostgresExecutor>,
        partitioning: Option<&RangePartitioning>,
    ) -> DFResult<Self> {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let Some(partitioning) = partitioning else {
            let sql = render_sql(plan, &executor)?;
            return Ok(Self::new(executor, vec![sql], schema, None, 1));
        };
        let ranges = RangeSplit::try_new(plan, partitioning)?;
        let statements = match ranges.fetch_bounds(&executor).await? {
            Some(bounds) => (0..ranges.partitions)
                .map(|i| render_sql(&ranges.with_predicate(ranges.range(i, bounds)?)?, &executor))
                .collect::<DFResult<Vec<_>>>()?,
            // An empty table (or a column of NULLs only) is read whole.
            None => vec![render_sql(plan, &executor)?],
        };
        Ok(Self::new(
            executor,
            statements,
            schema,
            Some(partitioning.column.clone()),
            1,
        ))
    }

    /// The source's connection settings.
    pub fn executor(&self) -> &Arc<PostgresExecutor> {
        &self.executor
    }

    /// The SQL statements, in partition order.
    pub fn statements(&self) -> &[String] {
        &self.statements
    }

    /// `partition_column`, when the statements are its ranges.
    pub fn split_on(&self) -> Option<&str> {
        self.split_on.as_deref()
    }

    /// The scan cut into `tasks` scans of every `tasks`-th statement, each with
    /// the same number of partitions (as a distributed stage needs).
    pub fn split(&self, tasks: usize) -> Vec<Self> {
        let tasks = tasks.max(1);
        let per_task = self.statements.len().div_ceil(tasks).max(1);
        (0..tasks)
            .map(|task| {
                let statements = self
                    .statements
                    .iter()
                    .skip(task)
                    .step_by(tasks)
                    .cloned()
                    .collect();
                Self::new(
                    Arc::clone(&self.executor),
                    statements,
                    Arc::clone(&self.schema),
                    self.split_on.clone(),
                    per_task,
                )
            })
            .collect()
    }
}

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let options = self.executor.options();
        write!(
            f,
            "RemoteScanExec: source={} compute_context={}",
            options.engine.name(),
            options.compute_context()
        )?;
        if let Some(column) = &self.split_on {
            write!(
                f,
                " partition_column={column} statements={}",
                self.statements.len()
            )?;
        }
        for sql in &self.statements {
            write!(f, " sql={sql}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for RemoteScanExec {
    fn name(&self) -> &str {
        "RemoteScanExec"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
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
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let schema = Arc::clone(&self.schema);
        let Some(sql) = self.statements.get(partition) else {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let mut rows = self.executor.execute(sql, Arc::clone(&schema), &[])?;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        // Wall time waiting for the source's rows (its query and the transfer);
        // `elapsed_compute` is Vivace's own work on them.
        let fetch_time =
            MetricBuilder::new(&self.metrics).subset_time("remote_fetch_time", partition);
        let cast_to = Arc::clone(&schema);
        let stream = futures::stream::poll_fn(move |cx| {
            let polled = {
                let _waiting = fetch_time.timer();
                rows.poll_next_unpin(cx)
            };
            let polled = polled.map(|batch| {
                batch.map(|batch| {
                    let _working = baseline.elapsed_compute().timer();
                    // The server's types are mapped by the crate; the cast makes
                    // the batches carry exactly the planned schema (as
                    // datafusion-federation's `SchemaCastScanExec` does for its
                    // own scans).
                    try_cast_to(batch.map_err(tag_connector_error)?, Arc::clone(&cast_to))
                        .map_err(|e| DataFusionError::External(Box::new(e)))
                })
            });
            baseline.record_poll(polled)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// A connector error as tagged text, so that its kind (the SQLSTATE the client
/// gets) survives the trip back from a worker.
fn tag_connector_error(e: DataFusionError) -> DataFusionError {
    match e.find_root() {
        DataFusionError::External(inner) => match inner.downcast_ref::<ConnectorError>() {
            Some(c) => DataFusionError::Execution(c.to_tagged_text()),
            None => e,
        },
        _ => e,
    }
}

/// The finished SQL datafusion-federation sends for `plan` on `executor`'s server.
///
/// Written by hand because the crate renders a statement (table names rewritten,
/// analyzers applied, dialect unparsing) only inside `VirtualExecutionPlan::execute`,
/// keeping that function private: the plan is executed once against an executor
/// that records the statement instead of running it.
fn render_sql(plan: &LogicalPlan, executor: &Arc<PostgresExecutor>) -> DFResult<String> {
    let capture = Arc::new(SqlCapture {
        inner: Arc::clone(executor) as Arc<dyn SQLExecutor>,
        sql: Mutex::default(),
    });
    let statistics = Statistics::new_unknown(plan.schema().as_arrow());
    let virtual_plan = VirtualExecutionPlan::new(
        plan.clone(),
        Arc::clone(&capture) as Arc<dyn SQLExecutor>,
        statistics,
    );
    drop(virtual_plan.execute(0, Arc::new(TaskContext::default()))?);
    let sql = capture.sql.lock().unwrap_or_else(|p| p.into_inner()).take();
    sql.ok_or_else(|| DataFusionError::Internal("no SQL was rendered for a remote scan".into()))
}

/// An executor that records the statement it is given and returns no rows.
struct SqlCapture {
    inner: Arc<dyn SQLExecutor>,
    sql: Mutex<Option<String>>,
}

#[async_trait]
impl SQLExecutor for SqlCapture {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn compute_context(&self) -> Option<String> {
        self.inner.compute_context()
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        self.inner.dialect()
    }

    fn ast_analyzer(&self) -> Option<AstAnalyzer> {
        self.inner.ast_analyzer()
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> DFResult<SendableRecordBatchStream> {
        *self.sql.lock().unwrap_or_else(|p| p.into_inner()) = Some(query.to_string());
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::empty(),
        )))
    }

    async fn table_names(&self) -> DFResult<Vec<String>> {
        self.inner.table_names().await
    }

    async fn get_table_schema(&self, table_name: &str) -> DFResult<SchemaRef> {
        self.inner.get_table_schema(table_name).await
    }
}

/// Gives every federated sub-plan of `executor`'s server a planner that makes a
/// [`RemoteScanExec`]: split into ranges when the sub-plan is a scan of a table
/// with `partition_column` / `partitions`, one statement otherwise (sorts,
/// limits, aggregates and joins must be one statement to mean what they say).
pub(super) fn plan_as_remote_scans(
    plan: LogicalPlan,
    executor: &Arc<PostgresExecutor>,
) -> DFResult<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Extension(Extension { node: ext }) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(federated) = ext.as_any().downcast_ref::<FederatedPlanNode>() else {
            return Ok(Transformed::no(node));
        };
        let planner = Arc::new(RemoteScanPlanner {
            executor: Arc::clone(executor),
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

/// Plans a federated sub-plan as a [`RemoteScanExec`].
#[derive(Debug)]
struct RemoteScanPlanner {
    executor: Arc<PostgresExecutor>,
    partitioning: Option<RangePartitioning>,
}

#[async_trait]
impl FederationPlanner for RemoteScanPlanner {
    async fn plan_federation(
        &self,
        node: &FederatedPlanNode,
        _session_state: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let scan = RemoteScanExec::plan(
            node.plan(),
            Arc::clone(&self.executor),
            self.partitioning.as_ref(),
        )
        .await?;
        Ok(Arc::new(scan))
    }
}

/// How a scan (projections and filters over one table scan) is cut into range
/// queries on an integer, date or timestamp column.
struct RangeSplit {
    plan: LogicalPlan,
    column: Column,
    data_type: DataType,
    partitions: usize,
}

impl RangeSplit {
    fn try_new(plan: &LogicalPlan, partitioning: &RangePartitioning) -> DFResult<Self> {
        let scan = table_scan(plan)?;
        let field = scan
            .source
            .schema()
            .field_with_name(&partitioning.column)
            .map_err(|e| DataFusionError::Plan(format!("partition_column: {e}")))?
            .clone();
        Ok(Self {
            column: Column::new(Some(scan.table_name.clone()), field.name()),
            data_type: field.data_type().clone(),
            plan: plan.clone(),
            partitions: partitioning.partitions,
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
    async fn fetch_bounds(&self, executor: &Arc<PostgresExecutor>) -> DFResult<Option<(i64, i64)>> {
        let scan = table_scan(&self.plan)?;
        let whole =
            TableScanBuilder::new(scan.table_name.clone(), Arc::clone(&scan.source)).build()?;
        let column = Expr::Column(self.column.clone());
        let plan = LogicalPlanBuilder::from(LogicalPlan::TableScan(whole))
            .aggregate(Vec::<Expr>::new(), vec![min(column.clone()), max(column)])?
            .build()?;
        let sql = render_sql(&plan, executor)?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let batches: Vec<_> = executor.execute(&sql, schema, &[])?.try_collect().await?;
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

/// The one table scan of a scan plan.
fn table_scan(plan: &LogicalPlan) -> DFResult<datafusion::logical_expr::TableScan> {
    let mut scan = None;
    plan.apply(|node| {
        if let LogicalPlan::TableScan(s) = node {
            scan = Some(s.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    scan.ok_or_else(|| DataFusionError::Internal("partitioned scan without a table scan".into()))
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

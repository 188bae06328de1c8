//! SQL statements for a read: every PostgreSQL (or Redshift) read, pushed-down
//! or plain, is planned as a [`RemoteScanExec`] of finished SQL statements (one
//! per output partition) on a [`PostgresSource`]. Nothing in it needs the
//! coordinator's memory, so the remote core's codec can send it to a worker,
//! which opens its own connection pool to the same server and runs the same
//! statements.
//!
//! A table with `partition_column` / `partitions` is read as that many range
//! queries whenever what is pushed is a scan (columns and filters only). The
//! column's `min` and `max` are read once, when the query is planned, so every
//! range statement is known up front and the ranges of different workers cannot
//! disagree: the first range also takes NULLs and everything below the minimum,
//! the last everything above its start, so rows added meanwhile are not lost.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue, Statistics};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableScanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{SQLExecutor, VirtualExecutionPlan};
use datafusion_federation::{FederatedPlanNode, FederationPlanner};
use futures::TryStreamExt;

use super::options::RangePartitioning;
use super::source::PostgresSource;
use crate::remote::{RemoteScanExec, RemoteSource};

/// Plan `plan` (a federated sub-plan, or a plain scan) on `source`: one
/// statement, or one per range when `partitioning` applies.
pub(super) async fn plan_scan(
    plan: &LogicalPlan,
    source: &Arc<PostgresSource>,
    partitioning: Option<&RangePartitioning>,
) -> DFResult<RemoteScanExec> {
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let remote = Arc::clone(source) as Arc<dyn RemoteSource>;
    // Only a scan of the one table is split: the ranges are of its column.
    let Some(partitioning) = partitioning.filter(|_| table_scans(plan) == 1) else {
        let sql = render_sql(plan, source)?;
        return Ok(RemoteScanExec::new(remote, vec![sql], schema, None, 1));
    };
    let ranges = RangeSplit::try_new(plan, partitioning)?;
    let statements = match ranges.fetch_bounds(source).await? {
        Some(bounds) => (0..ranges.partitions)
            .map(|i| render_sql(&ranges.with_predicate(ranges.range(i, bounds)?)?, source))
            .collect::<DFResult<Vec<_>>>()?,
        // An empty table (or a column of NULLs only) is read whole.
        None => vec![render_sql(plan, source)?],
    };
    Ok(RemoteScanExec::new(
        remote,
        statements,
        schema,
        Some(partitioning.column.clone()),
        1,
    ))
}

/// The finished SQL datafusion-federation sends for `plan` to `source`.
///
/// Written by hand because the crate renders a statement (table names rewritten,
/// analyzers applied, dialect unparsing) only inside `VirtualExecutionPlan::execute`,
/// keeping that function private: the plan is executed once against an executor
/// that records the statement instead of running it.
fn render_sql(plan: &LogicalPlan, source: &PostgresSource) -> DFResult<String> {
    let capture = Arc::new(SqlCapture {
        name: source.flavor().name,
        compute_context: source.compute_context(),
        dialect: source.dialect(),
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
    name: &'static str,
    compute_context: String,
    dialect: Arc<dyn Dialect>,
    sql: Mutex<Option<String>>,
}

#[async_trait]
impl SQLExecutor for SqlCapture {
    fn name(&self) -> &str {
        self.name
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.compute_context.clone())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::clone(&self.dialect)
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
        Err(DataFusionError::NotImplemented(
            "listing tables while rendering a statement".into(),
        ))
    }

    async fn get_table_schema(&self, table_name: &str) -> DFResult<SchemaRef> {
        Err(DataFusionError::NotImplemented(format!(
            "the schema of {table_name} while rendering a statement"
        )))
    }
}

/// Plans a federated sub-plan as a [`RemoteScanExec`].
#[derive(Debug)]
pub(super) struct RemoteScanPlanner {
    pub(super) source: Arc<PostgresSource>,
    pub(super) partitioning: Option<RangePartitioning>,
}

#[async_trait]
impl FederationPlanner for RemoteScanPlanner {
    async fn plan_federation(
        &self,
        node: &FederatedPlanNode,
        _session_state: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let scan = plan_scan(node.plan(), &self.source, self.partitioning.as_ref()).await?;
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
            // Unqualified: the statement may name the table by an alias, and
            // it reads this one table only.
            column: Column::new_unqualified(field.name()),
            data_type: field.data_type().clone(),
            plan: plan.clone(),
            partitions: partitioning.partitions,
        })
    }

    /// The scan with `predicate` added to its table scan's filters, which the
    /// SQL unparser writes in the statement's WHERE clause, under the alias the
    /// query gives the table, if any.
    fn with_predicate(&self, predicate: Expr) -> DFResult<LogicalPlan> {
        self.plan
            .clone()
            .transform_up(|node| {
                let LogicalPlan::TableScan(scan) = &node else {
                    return Ok(Transformed::no(node));
                };
                let mut filters = scan.filters.clone();
                filters.push(predicate.clone());
                let filtered =
                    TableScanBuilder::new(scan.table_name.clone(), Arc::clone(&scan.source))
                        .with_projection(scan.projection.clone())
                        .with_filters(filters)
                        .with_fetch(scan.fetch)
                        .build()?;
                Ok(Transformed::yes(LogicalPlan::TableScan(filtered)))
            })
            .map(|t| t.data)
    }

    /// `min` and `max` of the column, as integers (days, timestamp units).
    async fn fetch_bounds(&self, source: &PostgresSource) -> DFResult<Option<(i64, i64)>> {
        let scan = table_scan(&self.plan)?;
        let whole =
            TableScanBuilder::new(scan.table_name.clone(), Arc::clone(&scan.source)).build()?;
        let column = Expr::Column(self.column.clone());
        let plan = LogicalPlanBuilder::from(LogicalPlan::TableScan(whole))
            .aggregate(Vec::<Expr>::new(), vec![min(column.clone()), max(column)])?
            .build()?;
        let sql = render_sql(&plan, source)?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let batches: Vec<_> = source.run(&sql, schema)?.try_collect().await?;
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

/// How many table scans `plan` has.
fn table_scans(plan: &LogicalPlan) -> usize {
    let mut scans = 0;
    let _ = plan.apply(|node| {
        scans += usize::from(matches!(node, LogicalPlan::TableScan(_)));
        Ok(TreeNodeRecursion::Continue)
    });
    scans
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

//! `system.tasks`: the tasks that workers run for distributed queries, one
//! row per task (Trino's `system.runtime.tasks`). Workers report each task's
//! top operator, its place in its stage and its figures
//! ([`vivace_worker::progress`]); the stage number comes from the
//! coordinator's plan of the query, matched by the stages the task reads
//! and its top operator. A user sees the tasks of their own queries, an
//! admin every query's.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use vivace_worker::progress::{TaskProgress, TaskRow};

use super::system_queries::{Viewer, scan_rows, viewer_of};
use super::tracker::{QueryRecord, QueryTracker, StageShape};

/// Table provider of `system.tasks`.
#[derive(Debug)]
pub struct TasksTable {
    tracker: Arc<QueryTracker>,
    schema: SchemaRef,
}

impl TasksTable {
    /// The tasks of the queries `tracker` knows.
    pub fn new(tracker: Arc<QueryTracker>) -> Self {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let count = |name: &str| Field::new(name, DataType::UInt64, false);
        let schema = Arc::new(Schema::new(vec![
            text("query_id"),
            Field::new("stage", DataType::UInt64, true),
            count("task"),
            count("stage_tasks"),
            text("worker"),
            text("state"),
            count("rows_scanned"),
            count("bytes_scanned"),
            count("output_rows"),
            count("elapsed_ms"),
            text("operator"),
        ]));
        Self { tracker, schema }
    }

    fn batch(&self, viewer: &Viewer) -> Result<RecordBatch> {
        let mut stages: HashMap<String, Vec<StageShape>> = HashMap::new();
        let mut rows: Vec<(TaskRow, Option<u64>)> = Vec::new();
        for row in TaskProgress::global().tasks(None) {
            let record = self.tracker.find(&row.query_id);
            if !record
                .as_ref()
                .map_or(viewer.admin, |r| viewer.may_see(r.user()))
            {
                continue;
            }
            let shapes = stages
                .entry(row.query_id.clone())
                .or_insert_with(|| record.map(|r| r.stages()).unwrap_or_default());
            let stage = stage_of(&row, shapes);
            rows.push((row, stage));
        }
        sort_tasks(&mut rows);
        let text = |f: &dyn Fn(&TaskRow) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(r, _)| f(r)),
            ))
        };
        let count = |f: &dyn Fn(&TaskRow) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|(r, _)| f(r)),
            ))
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|r| &r.query_id),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|(_, s)| *s))),
            count(&|r| r.task),
            count(&|r| r.stage_tasks),
            text(&|r| &r.worker),
            text(&|r| r.state()),
            count(&|r| r.rows_scanned),
            count(&|r| r.bytes_scanned),
            count(&|r| r.output_rows),
            count(&|r| r.elapsed_ms),
            text(&|r| &r.operator),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `record`'s tasks on every worker, each with the number of its stage (see
/// [`stage_of`]), in the order `system.tasks` lists them: what the web page's
/// query detail shows.
pub fn tasks_of(record: &QueryRecord) -> Vec<(TaskRow, Option<u64>)> {
    let shapes = record.stages();
    let mut rows: Vec<(TaskRow, Option<u64>)> = TaskProgress::global()
        .tasks(Some(&record.id))
        .into_iter()
        .map(|row| {
            let stage = stage_of(&row, &shapes);
            (row, stage)
        })
        .collect();
    sort_tasks(&mut rows);
    rows
}

/// By query, stage (unknown ones last), task and worker.
fn sort_tasks(rows: &mut [(TaskRow, Option<u64>)]) {
    rows.sort_by(|(a, sa), (b, sb)| {
        (&a.query_id, sa.is_none(), sa, a.task, &a.worker).cmp(&(
            &b.query_id,
            sb.is_none(),
            sb,
            b.task,
            &b.worker,
        ))
    });
}

/// The number of the stage `task` belongs to: the one stage of the plan that
/// reads the same stages and has the same top operator (unknown once the
/// query ended, or if two stages look alike).
fn stage_of(task: &TaskRow, stages: &[StageShape]) -> Option<u64> {
    let mut alike = stages
        .iter()
        .filter(|s| s.input_stages == task.input_stages && s.operator == task.operator);
    match (alike.next(), alike.next()) {
        (Some(stage), None) => Some(stage.num),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for TasksTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.batch(&viewer_of(state))?;
        scan_rows(batch, state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_belongs_to_the_one_stage_that_looks_like_it() {
        let shape = |num, operator: &str, input_stages: Vec<u64>| StageShape {
            num,
            operator: operator.into(),
            input_stages,
        };
        let stages = vec![
            shape(1, "AggregateExec", vec![2]),
            shape(2, "RepartitionExec: a", vec![]),
            shape(3, "RepartitionExec: b", vec![]),
            shape(4, "RepartitionExec: b", vec![]),
        ];
        let task = |operator: &str, input_stages| TaskRow {
            operator: operator.into(),
            input_stages,
            ..TaskRow::default()
        };
        assert_eq!(stage_of(&task("AggregateExec", vec![2]), &stages), Some(1));
        assert_eq!(
            stage_of(&task("RepartitionExec: a", vec![]), &stages),
            Some(2)
        );
        assert_eq!(stage_of(&task("RepartitionExec: b", vec![]), &stages), None);
        assert_eq!(stage_of(&task("AggregateExec", vec![3]), &stages), None);
    }
}

//! How far each query's tasks have got, while they run. Every worker
//! records the stage plan of each task it is sent (a plan-rewrite hook of
//! datafusion-distributed), under the coordinator's query id carried in the
//! [`QUERY_ID_HEADER`]; the plan's operators count rows and bytes as they go.
//! Embedded workers share this process's [`TaskProgress::global`] with their
//! coordinator; remote workers report theirs in each heartbeat, and the
//! coordinator keeps the latest report of each worker there too.
//!
//! A task is done once only this registry still holds its plan (the worker
//! let it go); its final figures are then kept, without the plan.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion_distributed::NetworkBoundaryExt;
use serde::{Deserialize, Serialize};

/// The header naming, in each task sent to a worker, the coordinator's query id.
pub const QUERY_ID_HEADER: &str = "x-vivace-query-id";

/// How long the figures of a query whose tasks all ended are kept.
const KEEP_ENDED: Duration = Duration::from_secs(60);

/// A query's tasks on workers, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryTasks {
    /// Tasks started.
    pub tasks: u64,
    /// Tasks ended.
    pub tasks_done: u64,
    /// Rows their scans produced (not rows received from other stages).
    pub rows_scanned: u64,
    /// Bytes their file scans read.
    pub bytes_scanned: u64,
}

impl QueryTasks {
    fn add(&mut self, task: &TaskRow) {
        self.tasks += 1;
        self.tasks_done += u64::from(task.done);
        self.rows_scanned += task.rows_scanned;
        self.bytes_scanned += task.bytes_scanned;
    }
}

/// One task of a query on one worker, as `system.tasks` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRow {
    /// The coordinator's query id.
    pub query_id: String,
    /// The worker running it (its address).
    pub worker: String,
    /// The first line of the stage's plan: its top operator.
    pub operator: String,
    /// Numbers of the stages whose output this task reads, which place it
    /// in the coordinator's plan.
    pub input_stages: Vec<u64>,
    /// Its index among its stage's tasks.
    pub task: u64,
    /// Tasks of its stage.
    pub stage_tasks: u64,
    /// Whether the worker is done with it.
    pub done: bool,
    /// Rows its scans produced so far (not rows from other stages).
    pub rows_scanned: u64,
    /// Bytes its file scans read so far.
    pub bytes_scanned: u64,
    /// Rows it sent on so far.
    pub output_rows: u64,
    /// Milliseconds since it started, or that it ran.
    pub elapsed_ms: u64,
}

impl TaskRow {
    /// `running`, or `finished` once the worker is done with it.
    pub fn state(&self) -> &'static str {
        if self.done { "finished" } else { "running" }
    }
}

/// Where a task sits: who runs it and its place in its stage.
#[derive(Debug, Clone, Default)]
pub struct TaskPlace {
    /// The worker running it (its address).
    pub worker: String,
    /// Its index among its stage's tasks.
    pub task: u64,
    /// Tasks of its stage.
    pub stage_tasks: u64,
}

/// A task on this process's workers: its plan while the worker holds it.
struct LocalTask {
    plan: Option<Arc<dyn ExecutionPlan>>,
    row: TaskRow,
    started: Instant,
}

impl LocalTask {
    /// The task's row, refreshed from its plan while it runs; a plan only
    /// this registry holds is one the worker let go, and is dropped.
    fn refresh(&mut self) -> &TaskRow {
        if let Some(plan) = &self.plan {
            let figures = scanned(plan.as_ref());
            self.row.rows_scanned = figures.rows_scanned;
            self.row.bytes_scanned = figures.bytes_scanned;
            self.row.output_rows = output_rows(plan.as_ref());
            self.row.elapsed_ms = self.started.elapsed().as_millis() as u64;
            if Arc::strong_count(plan) == 1 {
                self.row.done = true;
                self.plan = None;
            }
        }
        &self.row
    }
}

/// One query's tasks on this process's workers.
#[derive(Default)]
struct LocalQuery {
    tasks: Vec<LocalTask>,
    touched: Option<Instant>,
}

/// A worker's report: its tasks of the queries it ran lately.
pub type Report = Vec<TaskRow>;

/// The tasks of this process's workers, and the latest reports of remote ones
/// (by node id, with when they came).
#[derive(Default)]
pub struct TaskProgress {
    local: Mutex<HashMap<String, LocalQuery>>,
    remote: Mutex<HashMap<String, (Instant, Report)>>,
}

static GLOBAL: LazyLock<TaskProgress> = LazyLock::new(TaskProgress::default);

impl TaskProgress {
    /// The process's registry.
    pub fn global() -> &'static TaskProgress {
        &GLOBAL
    }

    /// A task of `query`, placed at `place`, runs `plan` on a worker of this process.
    pub fn started(&self, query: &str, place: TaskPlace, plan: Arc<dyn ExecutionPlan>) {
        let row = TaskRow {
            query_id: query.to_string(),
            worker: place.worker,
            operator: operator_line(plan.as_ref()),
            input_stages: input_stages(plan.as_ref()),
            task: place.task,
            stage_tasks: place.stage_tasks,
            ..TaskRow::default()
        };
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let entry = local.entry(query.to_string()).or_default();
        entry.tasks.push(LocalTask {
            plan: Some(plan),
            row,
            started: Instant::now(),
        });
        entry.touched = Some(Instant::now());
    }

    /// The tasks of every query on this process's workers (for a heartbeat),
    /// forgetting queries whose tasks ended a while ago.
    pub fn local_report(&self) -> Report {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.retain(|_, q| {
            q.tasks.iter().any(|t| t.plan.is_some())
                || q.touched.is_some_and(|t| t.elapsed() < KEEP_ENDED)
        });
        local
            .values_mut()
            .flat_map(|q| q.tasks.iter_mut().map(|t| t.refresh().clone()))
            .collect()
    }

    /// Keep `node`'s latest report (on the coordinator).
    pub fn remote_report(&self, node: &str, report: Report) {
        let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        remote.retain(|_, (at, _)| at.elapsed() < KEEP_ENDED);
        remote.insert(node.to_string(), (Instant::now(), report));
    }

    /// The tasks of `query` (of every query, when `None`) on every worker:
    /// this process's and the latest reports of remote ones.
    pub fn tasks(&self, query: Option<&str>) -> Vec<TaskRow> {
        let wanted = |id: &str| query.is_none_or(|q| q == id);
        let mut rows: Vec<TaskRow> = {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            local
                .iter_mut()
                .filter(|(id, _)| wanted(id))
                .flat_map(|(_, q)| q.tasks.iter_mut().map(|t| t.refresh().clone()))
                .collect()
        };
        let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        rows.extend(
            remote
                .values()
                .flat_map(|(_, report)| report.iter())
                .filter(|row| wanted(&row.query_id))
                .cloned(),
        );
        rows
    }

    /// `query`'s tasks on every worker, summed.
    pub fn of(&self, query: &str) -> QueryTasks {
        let mut total = QueryTasks::default();
        for row in self.tasks(Some(query)) {
            total.add(&row);
        }
        total
    }
}

/// The first line of `plan`'s display: its top operator.
pub fn operator_line(plan: &dyn ExecutionPlan) -> String {
    displayable(plan).one_line().to_string().trim().to_string()
}

/// Numbers of the stages `plan` reads from (its network boundaries' inputs).
pub fn input_stages(plan: &dyn ExecutionPlan) -> Vec<u64> {
    let mut stages = Vec::new();
    let mut pending = vec![plan];
    while let Some(node) = pending.pop() {
        match node.as_network_boundary() {
            Some(boundary) => stages.push(boundary.input_stage().num() as u64),
            None => pending.extend(node.children().into_iter().map(|c| c.as_ref())),
        }
    }
    stages.sort_unstable();
    stages
}

/// Rows `plan`'s top operator produced so far.
fn output_rows(plan: &dyn ExecutionPlan) -> u64 {
    plan.metrics()
        .and_then(|m| m.output_rows())
        .unwrap_or_default() as u64
}

/// Rows a plan's scans produced and bytes they read.
#[derive(Debug, Default, Clone, Copy)]
struct Scanned {
    rows_scanned: u64,
    bytes_scanned: u64,
}

/// Rows the scans of `plan` produced and bytes they read so far. Network
/// boundaries, whose rows come from other stages, do not count.
fn scanned(plan: &dyn ExecutionPlan) -> Scanned {
    let mut figures = Scanned::default();
    let children = plan.children();
    if let Some(metrics) = plan.metrics() {
        let leaf = children.is_empty() && !plan.name().starts_with("Network");
        for metric in metrics.iter() {
            match metric.value() {
                MetricValue::OutputRows(count) if leaf => {
                    figures.rows_scanned += count.value() as u64
                }
                MetricValue::Count { name, count } if name == "bytes_scanned" => {
                    figures.bytes_scanned += count.value() as u64
                }
                _ => {}
            }
        }
    }
    for child in children {
        let below = scanned(child.as_ref());
        figures.rows_scanned += below.rows_scanned;
        figures.bytes_scanned += below.bytes_scanned;
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::empty::EmptyExec;

    fn place(worker: &str, task: u64) -> TaskPlace {
        TaskPlace {
            worker: worker.into(),
            task,
            stage_tasks: 2,
        }
    }

    #[test]
    fn tasks_count_as_done_once_the_worker_lets_their_plan_go() {
        let progress = TaskProgress::default();
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let held: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(schema.clone()));
        progress.started("q1", place("w0", 0), Arc::clone(&held));
        progress.started("q1", place("w0", 1), Arc::new(EmptyExec::new(schema)));
        let q1 = progress.of("q1");
        assert_eq!((q1.tasks, q1.tasks_done), (2, 1));
        let rows = progress.tasks(Some("q1"));
        assert_eq!(rows[0].operator, "EmptyExec");
        assert_eq!((rows[0].task, rows[0].done), (0, false));
        assert_eq!((rows[1].task, rows[1].done), (1, true));
        drop(held);
        assert_eq!(progress.of("q1").tasks_done, 2);
        progress.remote_report(
            "w1",
            vec![
                TaskRow {
                    query_id: "q1".into(),
                    worker: "w1".into(),
                    rows_scanned: 10,
                    done: true,
                    ..TaskRow::default()
                },
                TaskRow {
                    query_id: "q1".into(),
                    worker: "w1".into(),
                    ..TaskRow::default()
                },
                TaskRow {
                    query_id: "q2".into(),
                    ..TaskRow::default()
                },
            ],
        );
        let q1 = progress.of("q1");
        assert_eq!((q1.tasks, q1.tasks_done, q1.rows_scanned), (4, 3, 10));
        assert_eq!(progress.of("q3"), QueryTasks::default());
        assert_eq!(progress.tasks(None).len(), 5);
    }
}

//! How far each query's tasks have got, while they run. Every worker
//! records the stage plan of each task it is sent (a plan-rewrite hook of
//! datafusion-distributed), under the coordinator's query id carried in the
//! [`QUERY_ID_HEADER`]; the plan's operators count rows and bytes as they go.
//! Embedded workers share this process's [`TaskProgress::global`] with their
//! coordinator; remote workers report theirs in each heartbeat, and the
//! coordinator keeps the latest report of each worker there too.
//!
//! A task is done once only this registry still holds its plan (the worker
//! let it go); its final figures are then kept as a sum.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use serde::{Deserialize, Serialize};

/// The header naming, in each task sent to a worker, the coordinator's query id.
pub const QUERY_ID_HEADER: &str = "x-vivace-query-id";

/// How long the figures of a query whose tasks all ended are kept.
const KEEP_ENDED: Duration = Duration::from_secs(60);

/// A query's tasks on workers, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    fn add(&mut self, other: QueryTasks) {
        self.tasks += other.tasks;
        self.tasks_done += other.tasks_done;
        self.rows_scanned += other.rows_scanned;
        self.bytes_scanned += other.bytes_scanned;
    }
}

/// One query's tasks on this process's workers.
#[derive(Default)]
struct LocalQuery {
    running: Vec<Arc<dyn ExecutionPlan>>,
    ended: QueryTasks,
    touched: Option<Instant>,
}

/// A worker's report: its tasks of each query, by the coordinator's query id.
pub type Report = Vec<(String, QueryTasks)>;

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

    /// A task of `query` runs `plan` on a worker of this process.
    pub fn started(&self, query: &str, plan: Arc<dyn ExecutionPlan>) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let entry = local.entry(query.to_string()).or_default();
        entry.running.push(plan);
        entry.touched = Some(Instant::now());
    }

    /// The tasks of every query on this process's workers (for a heartbeat),
    /// forgetting queries whose tasks ended a while ago.
    pub fn local_report(&self) -> Report {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.retain(|_, q| {
            !q.running.is_empty() || q.touched.is_some_and(|t| t.elapsed() < KEEP_ENDED)
        });
        local
            .iter_mut()
            .map(|(id, q)| (id.clone(), fold(q)))
            .collect()
    }

    /// Keep `node`'s latest report (on the coordinator).
    pub fn remote_report(&self, node: &str, report: Report) {
        let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        remote.retain(|_, (at, _)| at.elapsed() < KEEP_ENDED);
        remote.insert(node.to_string(), (Instant::now(), report));
    }

    /// `query`'s tasks on every worker: this process's and the latest
    /// reports of remote ones.
    pub fn of(&self, query: &str) -> QueryTasks {
        let mut total = {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            local.get_mut(query).map(fold).unwrap_or_default()
        };
        let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        for (_, report) in remote.values() {
            for (id, tasks) in report {
                if id == query {
                    total.add(*tasks);
                }
            }
        }
        total
    }
}

/// Move `query`'s ended tasks into its sum, and add up the running ones.
fn fold(query: &mut LocalQuery) -> QueryTasks {
    let mut ended = Vec::new();
    query.running.retain(|plan| {
        // Only this registry holds the plan: the worker is done with it.
        let done = Arc::strong_count(plan) == 1;
        if done {
            ended.push(Arc::clone(plan));
        }
        !done
    });
    for plan in ended {
        let figures = scanned(plan.as_ref());
        query.ended.add(QueryTasks {
            tasks: 1,
            tasks_done: 1,
            ..figures
        });
    }
    let mut total = query.ended;
    for plan in &query.running {
        total.add(QueryTasks {
            tasks: 1,
            ..scanned(plan.as_ref())
        });
    }
    total
}

/// Rows the scans of `plan` produced and bytes they read so far. Network
/// boundaries, whose rows come from other stages, do not count.
fn scanned(plan: &dyn ExecutionPlan) -> QueryTasks {
    let mut figures = QueryTasks::default();
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
        figures.add(scanned(child.as_ref()));
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::empty::EmptyExec;

    #[test]
    fn tasks_count_as_done_once_the_worker_lets_their_plan_go() {
        let progress = TaskProgress::default();
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let held: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(schema.clone()));
        progress.started("q1", Arc::clone(&held));
        progress.started("q1", Arc::new(EmptyExec::new(schema)));
        let q1 = progress.of("q1");
        assert_eq!((q1.tasks, q1.tasks_done), (2, 1));
        drop(held);
        assert_eq!(progress.of("q1").tasks_done, 2);
        progress.remote_report(
            "w1",
            vec![(
                "q1".into(),
                QueryTasks {
                    tasks: 3,
                    tasks_done: 1,
                    rows_scanned: 10,
                    bytes_scanned: 0,
                },
            )],
        );
        let q1 = progress.of("q1");
        assert_eq!((q1.tasks, q1.tasks_done, q1.rows_scanned), (5, 3, 10));
        assert_eq!(progress.of("q2"), QueryTasks::default());
    }
}

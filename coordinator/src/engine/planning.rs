//! Parsing and planning run on threads of their own, with large stacks.
//!
//! Planning is CPU work that never yields to tokio. Run on the runtime that
//! serves connections, one slow statement kept a thread from every other
//! client (new clients got no answer for seconds); run on the query runtime, it
//! starved running queries; and neither `statement_timeout` nor a
//! CancelRequest could take effect before it returned. So every parse, logical
//! plan, optimisation and physical plan runs here, on a thread of a blocking
//! pool that the operating system time-slices like any other, while the
//! connection's task waits for it *or* for the statement's cancel switch
//! (CancelRequest, `statement_timeout`, the client going away), whichever
//! comes first. A cancelled planning stops at its next checkpoint: between any
//! two analyzer or optimizer rules ([`optimizer_checkpoints`]).
//!
//! The stacks are large because plans of long flat expressions (`1 + 1 + …`
//! with thousands of terms, long `OR` chains, `UNION ALL` of many SELECTs) are
//! deep trees, and parts of sqlparser and DataFusion walk them recursively
//! without growing the stack on demand. Statements that *nest* deeply are
//! refused before parsing ([`crate::engine::nesting`]).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::{AnalyzerRule, OptimizerConfig, OptimizerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::ExecutionPlan;
use tokio::runtime::{Builder, Handle, Runtime};

use crate::engine::cancel::QueryCancel;
use crate::error::{SqlError, SqlResult, sqlstate};

/// Stack of each planning thread. Memory is reserved, not used, until a deep
/// plan needs it.
pub const PLANNING_STACK_BYTES: usize = 256 << 20;

/// Most planning threads at once; further statements wait for one.
const MAX_PLANNING_THREADS: usize = 64;

tokio::task_local! {
    /// The cancel switch of the statement being planned on this task.
    static CANCEL: QueryCancel;
}

fn planning_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(MAX_PLANNING_THREADS)
            .thread_keep_alive(Duration::from_secs(30))
            .thread_stack_size(PLANNING_STACK_BYTES)
            .thread_name("vivace-plan")
            .enable_all()
            .build()
            .expect("cannot start the planning threads")
    })
}

/// Run `work` on a planning thread and wait for its result, unless `cancel`
/// fires first: then its error (57014, or 08006 for a client gone) comes back
/// at once, and the planning stops at its next checkpoint. The work's own
/// async steps (catalog lookups, connections) run on the caller's runtime.
pub async fn off_thread<T, F>(cancel: QueryCancel, work: F) -> SqlResult<T>
where
    F: Future<Output = SqlResult<T>> + Send + 'static,
    T: Send + 'static,
{
    if let Some(reason) = cancel.reason() {
        return Err(reason.error());
    }
    let handle = Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let scoped = CANCEL.scope(cancel.clone(), work);
    planning_runtime().spawn_blocking(move || {
        let _ = tx.send(handle.block_on(scoped));
    });
    tokio::select! {
        done = rx => done.unwrap_or_else(|_| Err(SqlError::new(
            sqlstate::INTERNAL_ERROR,
            "planning the statement failed unexpectedly",
        ))),
        error = cancel.cancelled() => Err(error),
    }
}

/// The error to stop with if the statement being planned here was cancelled.
pub fn cancelled() -> Option<SqlError> {
    CANCEL
        .try_with(|cancel| cancel.reason())
        .ok()
        .flatten()
        .map(|reason| reason.error())
}

fn check() -> Result<()> {
    match cancelled() {
        Some(error) => Err(DataFusionError::External(Box::new(error))),
        None => Ok(()),
    }
}

/// A rule that changes nothing and fails once the statement is cancelled.
#[derive(Debug)]
struct Checkpoint;

impl AnalyzerRule for Checkpoint {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        check().map(|()| plan)
    }

    fn name(&self) -> &str {
        "vivace_cancel_checkpoint"
    }
}

impl OptimizerRule for Checkpoint {
    fn name(&self) -> &str {
        "vivace_cancel_checkpoint"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        check().map(|()| Transformed::no(plan))
    }
}

impl PhysicalOptimizerRule for Checkpoint {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        check().map(|()| plan)
    }

    fn name(&self) -> &str {
        "vivace_cancel_checkpoint"
    }

    fn schema_check(&self) -> bool {
        false
    }
}

/// DataFusion's physical optimizer rules, then Vivace's yielding joins
/// ([`super::yielding`]), with a cancellation checkpoint after each.
pub fn physical_checkpoints() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let checkpoint: Arc<dyn PhysicalOptimizerRule + Send + Sync> = Arc::new(Checkpoint);
    let yielding: Arc<dyn PhysicalOptimizerRule + Send + Sync> =
        Arc::new(super::yielding::YieldingJoins);
    PhysicalOptimizer::new()
        .rules
        .into_iter()
        .chain([yielding])
        .flat_map(|rule| [rule, checkpoint.clone()])
        .collect()
}

/// Analyzer `rules` with a cancellation checkpoint after each.
pub fn analyzer_checkpoints(
    rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>>,
) -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let checkpoint: Arc<dyn AnalyzerRule + Send + Sync> = Arc::new(Checkpoint);
    rules
        .into_iter()
        .flat_map(|rule| [rule, checkpoint.clone()])
        .collect()
}

/// Optimizer `rules` with a cancellation checkpoint after each.
pub fn optimizer_checkpoints(
    rules: Vec<Arc<dyn OptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let checkpoint: Arc<dyn OptimizerRule + Send + Sync> = Arc::new(Checkpoint);
    rules
        .into_iter()
        .flat_map(|rule| [rule, checkpoint.clone()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cancel::CancelReason;

    #[tokio::test]
    async fn a_cancelled_statement_returns_at_once() {
        let cancel = QueryCancel::default();
        let stuck = cancel.clone();
        let started = std::time::Instant::now();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            canceller.cancel(CancelReason::UserRequest);
        });
        // Busy, like a planner between two checkpoints: it goes on after the
        // cancel, until released, so that only the cancel can answer first.
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let released = Arc::clone(&release);
        let result: SqlResult<()> = off_thread(cancel, async move {
            while !released.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
            drop(stuck);
            Ok(())
        })
        .await;
        release.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(result.unwrap_err().code, sqlstate::QUERY_CANCELED);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn deep_recursion_fits_the_stack() {
        fn depth(n: u64) -> u64 {
            let pad = [n; 64];
            if n == 0 {
                0
            } else {
                1 + depth(std::hint::black_box(pad)[0] - 1)
            }
        }
        // ~600 bytes a frame: 20 MiB, ten times a default thread's stack.
        let got = off_thread(QueryCancel::default(), async { Ok(depth(40_000)) })
            .await
            .unwrap();
        assert_eq!(got, 40_000);
    }
}

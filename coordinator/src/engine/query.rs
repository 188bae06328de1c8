//! The life of a query in the engine: planned physically on a planning thread
//! ([`super::planning`]), started on the query runtime ([`super::executor`]) up
//! to its first batch, and re-planned on the surviving workers when a worker is
//! lost before any row was sent, as the retry policy allows. Rows then cross to
//! the caller through a one-slot channel, so memory stays bounded whatever the
//! result size, and dropping the stream stops the plan.

use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::{Expr, Volatility};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::Engine;
use super::cancel::QueryCancel;
use super::planning;
use super::tracker::QueryRecord;
use crate::error::{SqlError, SqlResult, is_worker_failure, sqlstate};

/// What a session's queries are planned and run with: a snapshot of its
/// state under its resource group's shares, and the task context made from
/// it. Cloning a state copies every function registry, so a session makes
/// one per change of its settings, not one per query.
///
/// Each query marks its start on the state before planning (the time
/// `now()` gives), so the state is behind a lock; a session plans one
/// statement at a time.
#[derive(Clone)]
pub struct QueryState {
    /// The session's state, as its queries are planned.
    pub state: Arc<tokio::sync::Mutex<SessionState>>,
    /// The context its queries run in.
    pub task_ctx: Arc<TaskContext>,
}

impl Engine {
    /// A snapshot of `ctx`'s state, for the queries of resource `group` if
    /// one is given.
    pub fn query_state(&self, ctx: &SessionContext, group: Option<&str>) -> QueryState {
        let state = match group {
            Some(group) => self.groups.session_for(group, ctx.state()),
            None => ctx.state(),
        };
        QueryState {
            task_ctx: Arc::new(TaskContext::from(&state)),
            state: Arc::new(tokio::sync::Mutex::new(state)),
        }
    }

    /// Start `plan` with `query_state` and return its batches once the
    /// first exists (or it failed), unless `cancel` fires first. The
    /// physical plan is shown on `record` as soon as it starts.
    ///
    /// With `reuse`, a plan kept from an earlier execution under the same
    /// snapshot runs again without planning, and a new one is kept.
    pub async fn start(
        &self,
        query_state: &QueryState,
        plan: LogicalPlan,
        reuse: Option<&PlanReuse>,
        cancel: &QueryCancel,
        record: Option<&QueryRecord>,
    ) -> SqlResult<SendableRecordBatchStream> {
        let mut retries_left = self.query_retries();
        let started = loop {
            let kept = reuse.and_then(|r| r.get(&query_state.state));
            let physical = match kept {
                Some(physical) => physical,
                None => {
                    let state = Arc::clone(&query_state.state);
                    let logical = plan.clone();
                    let physical = planning::off_thread(cancel.clone(), async move {
                        let mut state = state.lock().await;
                        state.mark_start_execution();
                        Ok(state.create_physical_plan(&logical).await?)
                    })
                    .await?;
                    if let Some(reuse) = reuse {
                        reuse.keep(&query_state.state, &physical);
                    }
                    physical
                }
            };
            let task_ctx = self.task_ctx_for(query_state, &physical, record)?;
            if let Some(record) = record {
                record.executing(physical.clone());
            }
            match start_on_query_runtime(physical, task_ctx, cancel).await {
                Err(e) if retries_left > 0 && is_worker_failure(&e) => {
                    retries_left -= 1;
                    metrics::counter!(crate::telemetry::RETRIES).increment(1);
                    tracing::warn!(error = %e, "a worker failed before any row was sent; re-running the query");
                    self.prune_workers().await;
                }
                started => break started,
            }
        };
        started.map_err(|e| cancel.reason().map_or_else(|| e.into(), |r| r.error()))
    }

    /// The task context `physical` runs in: the session's, or for a plan with
    /// stages on workers a copy with the headers its tasks carry: the
    /// connectors they need and the query's id, under which workers record
    /// their progress.
    fn task_ctx_for(
        &self,
        query_state: &QueryState,
        physical: &Arc<dyn ExecutionPlan>,
        record: Option<&QueryRecord>,
    ) -> SqlResult<Arc<TaskContext>> {
        use datafusion_distributed::{DistributedExec, DistributedExt};
        if physical.downcast_ref::<DistributedExec>().is_none() {
            return Ok(Arc::clone(&query_state.task_ctx));
        }
        // Workers build the connectors the plan needs from these headers.
        let mut headers = self.worker_headers();
        if let Some(id) = record.and_then(|r| http::HeaderValue::from_str(&r.id).ok()) {
            headers.insert(vivace_worker::progress::QUERY_ID_HEADER, id);
        }
        let mut config = query_state.task_ctx.session_config().clone();
        config.set_distributed_passthrough_headers(headers)?;
        let shared = &query_state.task_ctx;
        Ok(Arc::new(TaskContext::new(
            shared.task_id(),
            shared.session_id(),
            config,
            shared.scalar_functions().clone(),
            shared.higher_order_functions().clone(),
            shared.aggregate_functions().clone(),
            shared.window_functions().clone(),
            shared.runtime_env(),
        )))
    }
}

/// The physical plan of a prepared statement that reads no table, has no
/// parameter and calls only immutable functions (`SELECT 1`, a driver's
/// probe), kept with the session snapshot it was planned under and run
/// again while the session's state is that snapshot: its rows depend on
/// nothing else. Each run gets a copy with the operators' state reset.
#[derive(Default)]
pub struct PlanReuse(Mutex<Option<(SharedState, Arc<dyn ExecutionPlan>)>>);

/// A session's state snapshot, as [`QueryState`] holds it.
type SharedState = Arc<tokio::sync::Mutex<SessionState>>;

impl std::fmt::Debug for PlanReuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanReuse")
    }
}

impl PlanReuse {
    /// A place to keep `plan`'s physical plan, if it is one that may be kept.
    pub fn for_plan(plan: &LogicalPlan) -> Option<Arc<Self>> {
        is_constant(plan).then(Arc::default)
    }

    /// The kept plan, ready to run again, if it was planned under `state`.
    fn get(&self, state: &SharedState) -> Option<Arc<dyn ExecutionPlan>> {
        let kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (planned_under, plan) = kept.as_ref()?;
        if !Arc::ptr_eq(planned_under, state) {
            return None;
        }
        reset_plan_states(Arc::clone(plan)).ok()
    }

    /// Keep `plan`, planned under `state`; a plan with stages on workers is
    /// not kept (its stages are bound to the workers of the moment).
    fn keep(&self, state: &SharedState, plan: &Arc<dyn ExecutionPlan>) {
        if plan
            .downcast_ref::<datafusion_distributed::DistributedExec>()
            .is_none()
        {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((Arc::clone(state), Arc::clone(plan)));
        }
    }
}

/// Whether `plan` reads no table and has no parameter, subquery, aggregate
/// or function that is not immutable: its rows are the same every time.
fn is_constant(plan: &LogicalPlan) -> bool {
    let constant_expr = |expr: &Expr| {
        expr.apply(|e| {
            let constant = match e {
                Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Immutable,
                Expr::Placeholder(_)
                | Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_)
                | Expr::OuterReferenceColumn(..)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_) => false,
                _ => true,
            };
            Ok(if constant {
                TreeNodeRecursion::Continue
            } else {
                TreeNodeRecursion::Stop
            })
        })
    };
    let walked = plan.apply(|node| {
        if !matches!(
            node,
            LogicalPlan::Projection(_)
                | LogicalPlan::EmptyRelation(_)
                | LogicalPlan::Values(_)
                | LogicalPlan::SubqueryAlias(_)
        ) {
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(constant_expr)
    });
    matches!(
        walked,
        Ok(TreeNodeRecursion::Continue | TreeNodeRecursion::Jump)
    )
}

/// Run `physical` on the query runtime up to its first batch; the batches
/// then cross to the caller's stream through a one-slot channel, so memory
/// stays bounded whatever the result size. Dropping the stream stops the plan.
async fn start_on_query_runtime(
    physical: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    cancel: &QueryCancel,
) -> datafusion::error::Result<SendableRecordBatchStream> {
    let schema = physical.schema();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    // One batch in the channel and one being encoded.
    let (batch_tx, batch_rx) = tokio::sync::mpsc::channel(1);
    let task = crate::engine::executor::query_runtime().spawn(async move {
        let mut batches = match execute_stream(physical, task_ctx) {
            Ok(batches) => batches,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        match batches.next().await.transpose() {
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
            Ok(first) => {
                if started_tx.send(Ok(())).is_err() {
                    return;
                }
                if let Some(first) = first
                    && batch_tx.send(Ok(first)).await.is_err()
                {
                    return;
                }
            }
        }
        while let Some(batch) = batches.next().await {
            if batch_tx.send(batch).await.is_err() {
                return; // the client side is gone: stop the plan
            }
        }
    });
    let abort = AbortOnDrop(task);
    tokio::select! {
        started = started_rx => started.map_err(|_| {
            DataFusionError::External(Box::new(SqlError::new(
                sqlstate::INTERNAL_ERROR,
                "the query task ended unexpectedly",
            )))
        })??,
        error = cancel.cancelled() => return Err(DataFusionError::External(Box::new(error))),
    };
    let batches = futures::stream::unfold((batch_rx, abort), |(mut rx, abort)| async move {
        rx.recv().await.map(|batch| (batch, (rx, abort)))
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

/// Aborts the query task when the client side of its stream is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn logical(ctx: &SessionContext, sql: &str) -> LogicalPlan {
        ctx.state().create_logical_plan(sql).await.unwrap()
    }

    #[tokio::test]
    async fn only_plans_whose_rows_never_change_are_kept() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (x INT)").await.unwrap();
        for sql in [
            "SELECT 1 + 1, 'a' || 'b'",
            "SELECT abs(-3) AS three",
            "SELECT x FROM (VALUES (1), (2)) AS v(x)",
        ] {
            assert!(is_constant(&logical(&ctx, sql).await), "{sql}");
        }
        for sql in [
            "SELECT now()",
            "SELECT random()",
            "SELECT $1",
            "SELECT x FROM t",
            "SELECT count(*) FROM (VALUES (1)) AS v(x)",
            "SELECT (SELECT max(x) FROM t)",
        ] {
            assert!(!is_constant(&logical(&ctx, sql).await), "{sql}");
        }
    }

    #[tokio::test]
    async fn a_kept_plan_runs_again_only_under_the_state_it_was_planned_with() {
        let ctx = SessionContext::new();
        let plan = logical(&ctx, "SELECT 1 + 1").await;
        let reuse = PlanReuse::for_plan(&plan).unwrap();
        let planned_under: SharedState = Arc::new(tokio::sync::Mutex::new(ctx.state()));
        let physical = ctx.state().create_physical_plan(&plan).await.unwrap();
        reuse.keep(&planned_under, &physical);
        let again = reuse.get(&planned_under).expect("kept");
        let rows = datafusion::physical_plan::collect(again, ctx.task_ctx())
            .await
            .unwrap();
        assert_eq!(rows[0].num_rows(), 1);
        // A SET makes a new snapshot: the plan is made again.
        let changed: SharedState = Arc::new(tokio::sync::Mutex::new(ctx.state()));
        assert!(reuse.get(&changed).is_none());
    }
}

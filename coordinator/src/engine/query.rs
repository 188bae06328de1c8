//! The life of a query in the engine: planned physically on a planning thread
//! ([`super::planning`]), started on the query runtime ([`super::executor`]) up
//! to its first batch, and re-planned on the surviving workers when a worker is
//! lost before any row was sent, as the retry policy allows. Rows then cross to
//! the caller through a one-slot channel, so memory stays bounded whatever the
//! result size, and dropping the stream stops the plan.

use std::sync::Arc;

use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::Engine;
use super::cancel::QueryCancel;
use super::kept_plans::{self, ForRun, KeptPlans, bind};
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

    /// Start `plan` with `params` bound into it, under `query_state`, and
    /// return its batches once the first exists (or it failed), unless
    /// `cancel` fires first. The physical plan is shown on `record` as soon as
    /// it starts.
    ///
    /// With `kept`, the plans a prepared statement kept from an earlier
    /// execution under the same snapshot are used, and new ones kept
    /// ([`KeptPlans`]; the caller has planned the statement again if the
    /// catalog changed since).
    pub async fn start(
        &self,
        query_state: &QueryState,
        plan: LogicalPlan,
        params: Option<ParamValues>,
        kept: Option<&Arc<KeptPlans>>,
        cancel: &QueryCancel,
        record: Option<&QueryRecord>,
    ) -> SqlResult<SendableRecordBatchStream> {
        let mut retries_left = self.query_retries();
        let plan = Arc::new(plan);
        let params = params.map(Arc::new);
        let started = loop {
            let shared = &query_state.state;
            let found = kept.map_or(ForRun::Nothing, |k| k.for_run(shared));
            let physical = match found {
                ForRun::Physical(physical) => physical,
                found => {
                    let state = Arc::clone(shared);
                    let (plan, params) = (Arc::clone(&plan), params.clone());
                    let keep = matches!(found, ForRun::TryKeeping)
                        .then(|| kept.cloned())
                        .flatten();
                    let physical = planning::off_thread(cancel.clone(), async move {
                        let mut guard = state.lock().await;
                        guard.mark_start_execution();
                        let optimized = match found {
                            ForRun::Optimized(optimized) => bind(optimized, params.as_deref())?,
                            _ => kept_plans::optimize(
                                &guard,
                                &plan,
                                params.as_deref(),
                                keep.as_deref().map(|k| (k, &state)),
                            )?,
                        };
                        let planner = Arc::clone(guard.query_planner());
                        Ok(planner.create_physical_plan(&optimized, &*guard).await?)
                    })
                    .await?;
                    if let Some(kept) = kept {
                        kept.keep_physical(shared, &physical);
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

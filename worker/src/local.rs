//! Workers that run inside this process, reached without gRPC.
//!
//! `vivace serve --workers N` runs N workers in the coordinator's process. Between
//! them (and from the coordinator to them) a plan fragment and its record batches
//! need not be encoded, sent over loopback HTTP/2 and decoded again: the in-process
//! channel hands the batches over as they are (the plan is still encoded, see
//! `coordinator_channel`). datafusion-distributed
//! does the same for a worker calling its own URL (its `InProcessWorkerClient`), but
//! that client is private to the crate and only used for the worker's own URL, so
//! this module holds the small equivalent for every worker of the process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_distributed::{
    CoordinatorToWorkerMsg, ExecuteTaskRequest, GetWorkerInfoRequest, GetWorkerInfoResponse,
    MaybeEncoded, SetPlanRequest, Worker, WorkerChannel, WorkerToCoordinatorMsg,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::HeaderMap;
use url::Url;

/// The workers running in this process, by the URL they are known under.
#[derive(Clone, Default)]
pub struct LocalWorkers {
    workers: Arc<RwLock<HashMap<Url, Worker>>>,
}

impl std::fmt::Debug for LocalWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let workers = self.workers.read().expect("local worker map poisoned");
        f.debug_list().entries(workers.keys()).finish()
    }
}

impl LocalWorkers {
    /// Record that `worker` answers at `url` in this process.
    pub fn add(&self, url: Url, worker: Worker) {
        self.workers
            .write()
            .expect("local worker map poisoned")
            .insert(url, worker);
    }

    /// Forget the worker at `url` (it stopped).
    pub fn remove(&self, url: &Url) {
        self.workers
            .write()
            .expect("local worker map poisoned")
            .remove(url);
    }

    /// An in-process channel to the worker at `url`, if it runs in this process.
    pub(crate) fn channel(&self, url: &Url) -> Option<Box<dyn WorkerChannel>> {
        let workers = self.workers.read().expect("local worker map poisoned");
        let worker = workers.get(url)?.clone();
        Some(Box::new(InProcessChannel { worker }))
    }
}

/// Calls a worker of this process directly: plans and batches are not serialised.
struct InProcessChannel {
    worker: Worker,
}

#[async_trait]
impl WorkerChannel for InProcessChannel {
    async fn coordinator_channel(
        &mut self,
        headers: HeaderMap,
        mut set_plan_request: SetPlanRequest,
        c2w_stream: BoxStream<'static, CoordinatorToWorkerMsg>,
        _metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> Result<BoxStream<'static, Result<WorkerToCoordinatorMsg>>> {
        // The plan still goes through the codec: the tasks of a stage share the
        // coordinator's plan nodes, and nodes hold execution state (exchange
        // connections, repartition buffers), so each task needs its own copy, as
        // it gets one when the plan travels over gRPC. Encoding a fragment costs
        // far less than moving its rows through Arrow IPC.
        set_plan_request.plan = MaybeEncoded::Encoded(set_plan_request.plan.encode(task_ctx)?);
        self.worker
            .coordinator_channel(headers, set_plan_request, c2w_stream.map(Ok).boxed())
            .await
    }

    async fn execute_task(
        &mut self,
        _headers: HeaderMap,
        request: ExecuteTaskRequest,
        _metrics: ExecutionPlanMetricsSet,
        _task_ctx: &Arc<TaskContext>,
    ) -> Result<Vec<BoxStream<'static, Result<RecordBatch>>>> {
        let (streams, _) = self.worker.execute_task(request).await?;
        Ok(streams.into_iter().map(|s| s.boxed()).collect())
    }

    async fn get_worker_info(
        &mut self,
        _request: GetWorkerInfoRequest,
    ) -> Result<GetWorkerInfoResponse> {
        Ok(GetWorkerInfoResponse {
            version: self.worker.version().to_string(),
        })
    }
}

//! How a [`RemoteScanExec`] spreads over workers: one task per request, each
//! task a scan of its share of the requests (datafusion-distributed's task
//! count and scale-up events).

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedLeafExec,
    ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse,
};

use super::RemoteScanExec;

/// A scan of several requests wants one task per request; one of a single
/// request runs as one task. `None` for other nodes.
pub fn desired_task_count(
    event: &DesiredTaskCountEvent,
) -> Option<Result<DesiredTaskCountEventResponse>> {
    let scan = event.plan.downcast_ref::<RemoteScanExec>()?;
    Some(Ok(match scan.requests().len() {
        0 | 1 => DesiredTaskCountEventResponse::maximum(1),
        n => DesiredTaskCountEventResponse::desired(n),
    }))
}

/// The scan cut into one scan per task, each of its share of the requests.
/// `None` for other nodes.
pub fn scale_up(event: &ScaleUpLeafNodeEvent) -> Option<Result<ScaleUpLeafNodeEventResponse>> {
    let scan = event.plan.downcast_ref::<RemoteScanExec>()?;
    let variants = scan
        .split(event.task_count)
        .into_iter()
        .map(|s| Arc::new(s) as Arc<dyn ExecutionPlan>);
    Some(
        DistributedLeafExec::try_new(Arc::clone(event.plan), variants)
            .map(|leaf| ScaleUpLeafNodeEventResponse::new(Arc::new(leaf))),
    )
}

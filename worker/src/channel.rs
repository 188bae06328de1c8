//! Client-side channels to workers that attach the cluster secret to every call.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{
    ChannelResolver, CoordinatorToWorkerMsg, ExecuteTaskRequest, GetWorkerInfoRequest,
    GetWorkerInfoResponse, SetPlanRequest, WorkerChannel, WorkerToCoordinatorMsg,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::HeaderMap;
use http::HeaderValue;
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};
use url::Url;

use crate::{ClusterSecret, LocalWorkers, SECRET_HEADER};

/// A worker could not be reached: the coordinator may retry elsewhere.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to worker {url}: {reason}")]
pub struct WorkerUnreachable {
    /// The worker's URL.
    pub url: String,
    /// What the transport said.
    pub reason: String,
}

/// Resolves worker URLs to clients: in-process ones for the workers of this
/// process, otherwise gRPC clients (one channel per URL, reused).
#[derive(Clone)]
pub struct SecretChannelResolver {
    secret: HeaderValue,
    channels: Arc<Mutex<std::collections::HashMap<Url, BoxCloneSyncChannel>>>,
    local: LocalWorkers,
}

impl SecretChannelResolver {
    /// Channels presenting `secret`.
    pub fn new(secret: &ClusterSecret) -> Self {
        Self::with_local_workers(secret, LocalWorkers::default())
    }

    /// Channels presenting `secret`, except to the workers in `local`, which are
    /// called in-process.
    pub fn with_local_workers(secret: &ClusterSecret, local: LocalWorkers) -> Self {
        Self {
            secret: HeaderValue::from_str(secret.value()).expect("secret is validated ASCII"),
            channels: Default::default(),
            local,
        }
    }

    /// A channel to `url` that adds the secret header to each request.
    pub async fn channel(&self, url: &Url) -> Result<BoxCloneSyncChannel, DataFusionError> {
        let mut channels = self.channels.lock().await;
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let endpoint: Endpoint = Channel::from_shared(url.to_string())
            .map_err(|e| DataFusionError::Configuration(format!("bad worker URL {url}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .max_frame_size(crate::MAX_FRAME_SIZE);
        let channel = endpoint.connect().await.map_err(|e| {
            DataFusionError::External(Box::new(WorkerUnreachable {
                url: url.to_string(),
                reason: e.to_string(),
            }))
        })?;
        let secret = self.secret.clone();
        let with_secret = tower::ServiceBuilder::new()
            .map_request(move |mut req: http::Request<tonic::body::Body>| {
                req.headers_mut().insert(SECRET_HEADER, secret.clone());
                req
            })
            .service(channel);
        let boxed = BoxCloneSyncChannel::new(with_secret);
        channels.insert(url.clone(), boxed.clone());
        Ok(boxed)
    }
}

#[async_trait]
impl ChannelResolver for SecretChannelResolver {
    async fn get_worker_client_for_url(
        &self,
        url: &Url,
    ) -> Result<Box<dyn WorkerChannel>, DataFusionError> {
        if let Some(local) = self.local.channel(url) {
            return Ok(local);
        }
        Ok(Box::new(ControlLossIsNotFatal {
            url: url.clone(),
            inner: create_worker_client(self.channel(url).await?),
        }))
    }
}

/// A gRPC worker client whose control stream ends quietly when the connection
/// to the worker breaks.
///
/// The control stream (worker to coordinator) only carries task metrics and
/// load reports; rows travel on the `execute_task` streams, and a worker lost
/// before its rows were all read fails those streams, and so the query (which
/// the coordinator may then retry). datafusion-distributed waits for every
/// control stream after the last row and fails the query on any error there, so
/// a worker that was killed *after* delivering all its rows turned a complete,
/// correct result into an error after the client had received it. Errors the
/// worker itself reports (decoded DataFusion errors) still fail the query.
struct ControlLossIsNotFatal {
    url: Url,
    inner: Box<dyn WorkerChannel>,
}

#[async_trait]
impl WorkerChannel for ControlLossIsNotFatal {
    async fn coordinator_channel(
        &mut self,
        headers: HeaderMap,
        set_plan_request: SetPlanRequest,
        c2w_stream: BoxStream<'static, CoordinatorToWorkerMsg>,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> Result<BoxStream<'static, Result<WorkerToCoordinatorMsg, DataFusionError>>, DataFusionError>
    {
        let stream = self
            .inner
            .coordinator_channel(headers, set_plan_request, c2w_stream, metrics, task_ctx)
            .await?;
        Ok(end_on_transport_loss(stream, self.url.clone()))
    }

    async fn execute_task(
        &mut self,
        headers: HeaderMap,
        request: ExecuteTaskRequest,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> Result<Vec<BoxStream<'static, Result<RecordBatch, DataFusionError>>>, DataFusionError>
    {
        self.inner
            .execute_task(headers, request, metrics, task_ctx)
            .await
    }

    async fn get_worker_info(
        &mut self,
        request: GetWorkerInfoRequest,
    ) -> Result<GetWorkerInfoResponse, DataFusionError> {
        self.inner.get_worker_info(request).await
    }
}

/// `stream`, ended at its first transport error: a gRPC status saying the
/// connection broke (errors the worker reports arrive decoded as DataFusion
/// errors, and other statuses, e.g. a refused secret, still fail the query).
fn end_on_transport_loss(
    stream: BoxStream<'static, Result<WorkerToCoordinatorMsg, DataFusionError>>,
    url: Url,
) -> BoxStream<'static, Result<WorkerToCoordinatorMsg, DataFusionError>> {
    stream
        .take_while(move |item| {
            let transport_lost = matches!(
                item,
                Err(DataFusionError::External(e)) if e.downcast_ref::<tonic::Status>().is_some_and(|s| {
                    matches!(
                        s.code(),
                        tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Aborted
                    )
                })
            );
            if transport_lost {
                tracing::warn!(%url, "control stream to a worker broke; its rows decide the query");
            }
            futures::future::ready(!transport_lost)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://127.0.0.1:1").unwrap()
    }

    #[tokio::test]
    async fn a_broken_control_stream_ends_quietly() {
        let items = vec![
            Ok(WorkerToCoordinatorMsg::LoadInfoEos),
            Err(DataFusionError::External(Box::new(tonic::Status::unknown(
                "h2 protocol error: error reading a body from connection",
            )))),
            Ok(WorkerToCoordinatorMsg::LoadInfoEos),
        ];
        let out: Vec<_> = end_on_transport_loss(futures::stream::iter(items).boxed(), url())
            .collect()
            .await;
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0], Ok(WorkerToCoordinatorMsg::LoadInfoEos)));
    }

    #[tokio::test]
    async fn errors_the_worker_reports_still_fail_the_query() {
        let items = vec![
            Err(DataFusionError::Plan("cannot decode the plan".into())),
            Err(DataFusionError::External(Box::new(
                tonic::Status::unauthenticated("wrong cluster secret"),
            ))),
        ];
        let out: Vec<_> = end_on_transport_loss(futures::stream::iter(items).boxed(), url())
            .collect()
            .await;
        let errors: Vec<String> = out
            .iter()
            .map(|item| match item {
                Err(e) => e.to_string(),
                Ok(_) => panic!("no message was sent"),
            })
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("cannot decode the plan"), "{errors:?}");
        assert!(errors[1].contains("wrong cluster secret"), "{errors:?}");
    }
}

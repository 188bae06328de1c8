//! Serving plan fragments: datafusion-distributed's `Worker` behind the secret check.

use std::net::SocketAddr;
use std::sync::Arc;

use datafusion::common::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion_distributed::{
    DistributedExt, DistributedTaskContext, Worker, WorkerPlanRewriteEvent,
    WorkerPlanRewriteEventResponse, WorkerQueryContext,
};
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use url::Url;
use vivace_connectors::{ConnectorRegistry, Side, WORKER_NEEDS_HEADER};

use crate::{ClusterSecret, LocalWorkers, SecretChannelResolver, SecretCheck};

/// How to run a worker.
#[derive(Clone)]
pub struct WorkerOptions {
    /// The cluster secret calls must present, and that this worker presents to others.
    pub secret: ClusterSecret,
    /// A runtime to share (embedded workers share the coordinator's object stores);
    /// `None` gives the worker its own.
    pub runtime: Option<Arc<RuntimeEnv>>,
    /// The workers of this process (embedded workers): this worker joins them, and
    /// calls between them skip gRPC. `None` for a worker process of its own.
    pub local: Option<LocalWorkers>,
    /// The connectors whose scans this worker runs (embedded workers share the
    /// coordinator's, and so its connection pools).
    pub connectors: ConnectorRegistry,
}

/// A running worker service.
pub struct WorkerHandle {
    /// Address it listens on.
    pub addr: SocketAddr,
    /// URL peers use to reach it.
    pub url: Url,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    local: Option<LocalWorkers>,
}

impl WorkerHandle {
    /// Stop serving and wait for the server task to end.
    pub async fn stop(mut self) {
        if let Some(local) = &self.local {
            local.remove(&self.url);
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Prepare what the coordinator says this query's tables need (object stores),
/// reading credentials from this worker's own environment.
fn prepare_needs(
    connectors: &ConnectorRegistry,
    ctx: &mut WorkerQueryContext,
) -> Result<(), DataFusionError> {
    let Some(value) = ctx.headers.get(WORKER_NEEDS_HEADER) else {
        return Ok(());
    };
    let runtime = ctx
        .builder
        .runtime_env()
        .get_or_insert_with(|| Arc::new(RuntimeEnv::default()))
        .clone();
    connectors.prepare_worker(value.as_bytes(), &runtime)?;
    Ok(())
}

/// Serve a worker on `listener` until stopped.
pub fn spawn_worker(listener: TcpListener, options: WorkerOptions) -> anyhow::Result<WorkerHandle> {
    let addr = listener.local_addr()?;
    let url = Url::parse(&format!("http://{addr}"))?;
    let peers = SecretChannelResolver::with_local_workers(
        &options.secret,
        options.local.clone().unwrap_or_default(),
    );
    // One codec per worker, so that its connectors' pools outlive queries.
    let connectors = options.connectors.clone();
    let codec: Arc<dyn PhysicalExtensionCodec> = connectors.codec(Side::Worker);
    let worker_name = addr.to_string();
    let mut worker = Worker::from_session_builder(move |mut ctx: WorkerQueryContext| {
        let worker_name = worker_name.clone();
        let peers = peers.clone();
        let codec = Arc::clone(&codec);
        let connectors = connectors.clone();
        async move {
            crate::http::task_received();
            prepare_needs(&connectors, &mut ctx)?;
            // Each task's plan is recorded under the coordinator's query id,
            // so that the query's progress can be read while it runs.
            let query = ctx
                .headers
                .get(crate::progress::QUERY_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if let Some(query) = query {
                ctx.builder = ctx.builder.with_distributed_worker_plan_rewrite_handler(
                    move |event: WorkerPlanRewriteEvent| {
                        let task = event
                            .session_config
                            .get_extension::<DistributedTaskContext>();
                        let place = crate::progress::TaskPlace {
                            worker: worker_name.clone(),
                            task: task.as_ref().map_or(0, |t| t.task_index as u64),
                            stage_tasks: task.as_ref().map_or(1, |t| t.task_count as u64),
                        };
                        crate::progress::TaskProgress::global().started(
                            &query,
                            place,
                            Arc::clone(&event.plan),
                        );
                        Ok(WorkerPlanRewriteEventResponse::new(event.plan))
                    },
                );
            }
            // The coordinator's replacements of DataFusion functions, which
            // plans name: registered after the built-ins, so they win.
            ctx.builder
                .aggregate_functions()
                .get_or_insert_with(Vec::new)
                .extend(vivace_functions::aggregate_functions());
            ctx.builder
                .scalar_functions()
                .get_or_insert_with(Vec::new)
                .extend(
                    vivace_functions::scalar_functions()
                        .into_iter()
                        .chain(connectors.functions()),
                );
            Ok(ctx
                .builder
                .with_distributed_channel_resolver(peers)
                .with_distributed_user_codec_arc(codec)
                .build())
        }
    });
    if let Some(runtime) = options.runtime {
        worker = worker.with_runtime_env(runtime);
    }
    if let Some(local) = &options.local {
        local.add(url.clone(), worker.clone());
    }
    let service = InterceptedService::new(
        worker.into_worker_server(),
        SecretCheck::new(options.secret),
    );
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = Server::builder()
            .max_frame_size(crate::MAX_FRAME_SIZE)
            .add_service(service)
            // tonic leaves Nagle on for accepted sockets: each small plan or
            // status reply would then wait up to 40 ms for the peer's delayed ACK.
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = rx.await;
                },
            )
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "worker service stopped");
        }
    });
    Ok(WorkerHandle {
        addr,
        url,
        shutdown: Some(tx),
        task,
        local: options.local,
    })
}

//! The cluster as the coordinator sees it: which workers are alive (fed by
//! heartbeats, served to datafusion-distributed as its `WorkerResolver`), the
//! embedded workers of a single-process deployment, and `system.nodes`.

mod membership;
mod nodes_table;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use datafusion::execution::runtime_env::RuntimeEnv;
use tokio::net::TcpListener;
use vivace_worker::membership::{Heartbeat, HeartbeatSink, membership_service};
use vivace_worker::{ClusterSecret, LocalWorkers, WorkerHandle, WorkerOptions, spawn_worker};

pub use membership::{LiveWorkers, Membership, NodeRole, NodeRow, NodeState};
pub use nodes_table::NodesTable;

/// How the coordinator takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Workers to run inside this process (the embedded default).
    pub embedded_workers: usize,
    /// Where remote workers send heartbeats; `None` accepts no remote workers.
    pub listen: Option<SocketAddr>,
    /// The shared secret (random when no remote workers are accepted).
    pub secret: ClusterSecret,
    /// Where embedded workers are recorded, so that the coordinator and they call
    /// each other in-process.
    pub local: LocalWorkers,
    /// The coordinator's connectors, which embedded workers share (and so its
    /// connection pools).
    pub connectors: vivace_connectors::ConnectorRegistry,
    /// The runtime plan fragments execute on, away from the connections'.
    pub query_runtime: tokio::runtime::Handle,
}

/// The running cluster services of a coordinator.
pub struct Cluster {
    /// Live workers.
    pub membership: Arc<Membership>,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// Held so the embedded worker services keep running: dropping a handle
    /// closes its shutdown channel and stops that server.
    _embedded: Vec<WorkerHandle>,
}

impl Cluster {
    /// Start embedded workers (sharing `runtime`, so they see the coordinator's
    /// object stores) and the heartbeat endpoint.
    pub async fn start(
        config: ClusterConfig,
        membership: Arc<Membership>,
        runtime: Arc<RuntimeEnv>,
    ) -> anyhow::Result<Self> {
        let mut embedded = Vec::with_capacity(config.embedded_workers);
        for i in 0..config.embedded_workers {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            // Embedded workers execute plan fragments: they belong on the query
            // runtime, away from the connections (see `executor`).
            let _query_runtime = config.query_runtime.enter();
            let handle = spawn_worker(
                listener,
                WorkerOptions {
                    secret: config.secret.clone(),
                    runtime: Some(runtime.clone()),
                    local: Some(config.local.clone()),
                    connectors: config.connectors.clone(),
                },
            )?;
            membership.add_embedded(format!("embedded-{i}"), handle.url.clone());
            embedded.push(handle);
        }
        if let Some(addr) = config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for workers on {addr}"))?;
            let service =
                membership_service(Arc::new(Sink(membership.clone())), config.secret.clone());
            tokio::spawn(async move {
                let served = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(
                        // tonic leaves Nagle on for accepted sockets; small
                        // gRPC replies then wait for the peer's delayed ACK.
                        tonic::transport::server::TcpIncoming::from(listener)
                            .with_nodelay(Some(true)),
                    )
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "cluster endpoint stopped");
                }
            });
            tracing::info!(%addr, "accepting workers");
        }
        Ok(Self {
            membership,
            secret: config.secret,
            _embedded: embedded,
        })
    }
}

struct Sink(Arc<Membership>);

impl HeartbeatSink for Sink {
    fn heartbeat(&self, heartbeat: Heartbeat) {
        self.0.heartbeat(heartbeat);
    }
}

//! The live worker set.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use datafusion::common::DataFusionError;
use datafusion_distributed::WorkerResolver;
use url::Url;
use vivace_worker::membership::{EXPIRY, Heartbeat};

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Plans queries and serves clients.
    Coordinator,
    /// Runs plan fragments.
    Worker,
}

/// Whether a node takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Heard from recently; receives tasks.
    Active,
}

#[derive(Debug, Clone)]
struct Node {
    url: Url,
    embedded: bool,
    last_seen: Instant,
    joined: SystemTime,
}

/// One row of `system.nodes`.
#[derive(Debug, Clone)]
pub struct NodeRow {
    /// Node id.
    pub node_id: String,
    /// Role.
    pub role: NodeRole,
    /// Address (`host:port` for workers, the PostgreSQL listener for the coordinator).
    pub address: String,
    /// State.
    pub state: NodeState,
    /// Whether the worker runs inside the coordinator's process.
    pub embedded: bool,
    /// When the node joined.
    pub joined: SystemTime,
}

/// Workers known to the coordinator. Remote workers expire when their heartbeats
/// stop; embedded workers live as long as the process.
pub struct Membership {
    coordinator_addr: String,
    started: SystemTime,
    nodes: RwLock<BTreeMap<String, Node>>,
}

impl Membership {
    /// An empty set for a coordinator listening on `coordinator_addr`.
    pub fn new(coordinator_addr: String) -> Self {
        Self {
            coordinator_addr,
            started: SystemTime::now(),
            nodes: RwLock::default(),
        }
    }

    /// Register an in-process worker.
    pub fn add_embedded(&self, node_id: String, url: Url) {
        self.insert(node_id, url, true);
    }

    /// Record a heartbeat (the first one registers the worker).
    pub fn heartbeat(&self, heartbeat: Heartbeat) {
        let Ok(url) = Url::parse(&heartbeat.url) else {
            return;
        };
        // Tasks are shown under the worker's address in system.nodes (a
        // worker knows only the address it is bound to).
        let address = node_address(&url);
        let rows = heartbeat
            .task_rows
            .into_iter()
            .map(|row| vivace_worker::progress::TaskRow {
                worker: address.clone(),
                ..row
            })
            .collect();
        vivace_worker::progress::TaskProgress::global().remote_report(&heartbeat.node_id, rows);
        self.insert(heartbeat.node_id, url, false);
    }

    fn insert(&self, node_id: String, url: Url, embedded: bool) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match nodes.get_mut(&node_id) {
            Some(node) if node.url == url => node.last_seen = now,
            _ => {
                tracing::info!(%node_id, %url, "worker joined");
                nodes.insert(
                    node_id,
                    Node {
                        url,
                        embedded,
                        last_seen: now,
                        joined: SystemTime::now(),
                    },
                );
            }
        }
    }

    /// Drop workers whose heartbeats stopped; returns the live ones.
    fn live(&self) -> Vec<(String, Node)> {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        nodes.retain(|id, node| {
            let alive = node.embedded || node.last_seen.elapsed() < EXPIRY;
            if !alive {
                tracing::warn!(node_id = %id, url = %node.url, "worker lost: no heartbeat");
            }
            alive
        });
        nodes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// URLs of the live workers.
    pub fn live_urls(&self) -> Vec<Url> {
        self.live().into_iter().map(|(_, n)| n.url).collect()
    }

    /// Drop remote workers that do not accept a TCP connection within a second:
    /// after a query failed on a lost worker, its heartbeat may not have expired
    /// yet, and the retry must not be routed to it again.
    pub async fn prune_unreachable(&self) {
        let remote: Vec<(String, Url)> = self
            .live()
            .into_iter()
            .filter(|(_, n)| !n.embedded)
            .map(|(id, n)| (id, n.url))
            .collect();
        for (id, url) in remote {
            let Some(addr) = url
                .socket_addrs(|| None)
                .ok()
                .and_then(|a| a.into_iter().next())
            else {
                continue;
            };
            let probe = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            if !matches!(probe, Ok(Ok(_))) {
                tracing::warn!(node_id = %id, %url, "worker unreachable: removed");
                metrics::counter!(crate::telemetry::WORKERS_LOST).increment(1);
                let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
                nodes.remove(&id);
            }
        }
    }

    /// The coordinator and every live worker.
    pub fn rows(&self) -> Vec<NodeRow> {
        let mut rows = vec![NodeRow {
            node_id: "coordinator".into(),
            role: NodeRole::Coordinator,
            address: self.coordinator_addr.clone(),
            state: NodeState::Active,
            embedded: false,
            joined: self.started,
        }];
        rows.extend(self.live().into_iter().map(|(id, n)| NodeRow {
            node_id: id,
            role: NodeRole::Worker,
            address: node_address(&n.url),
            state: NodeState::Active,
            embedded: n.embedded,
            joined: n.joined,
        }));
        rows
    }
}

/// A worker's `host:port`, from its URL.
fn node_address(url: &Url) -> String {
    url.host_str()
        .map(|h| format!("{h}:{}", url.port().unwrap_or(0)))
        .unwrap_or_default()
}

/// datafusion-distributed's view of the membership.
#[derive(Clone)]
pub struct LiveWorkers(pub Arc<Membership>);

impl WorkerResolver for LiveWorkers {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        Ok(self.0.live_urls())
    }
}

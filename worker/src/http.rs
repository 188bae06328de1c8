//! A worker process's HTTP listener (`vivace worker --http-listen`): `/healthz`
//! (the process answers), `/readyz` (the coordinator acknowledged a heartbeat
//! lately) and `/metrics` (Prometheus text: tasks received, heartbeats, the
//! memory pool). No query data and no secret is served, so it asks for no login;
//! bind it where only the scraper and the kubelet reach it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::execution::runtime_env::RuntimeEnv;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::membership::Registration;

/// Plan fragments (tasks) this process was sent to run.
pub const TASKS: &str = "vivace_worker_tasks_total";
/// Heartbeats sent to the coordinator, by `result` (`ok`, `failed`).
pub const HEARTBEATS: &str = crate::membership::HEARTBEATS_METRIC;
/// Bytes of the worker's memory pool in use.
pub const MEMORY_USED: &str = "vivace_memory_pool_used_bytes";
/// The worker's memory pool limit, when one is configured.
pub const MEMORY_LIMIT: &str = "vivace_memory_pool_limit_bytes";

/// What the listener reports on.
#[derive(Clone)]
pub struct WorkerHttp {
    metrics: PrometheusHandle,
    registration: Registration,
    runtime: Arc<RuntimeEnv>,
}

impl WorkerHttp {
    /// Install this process's metrics recorder and report on `runtime`'s
    /// memory and `registration`.
    pub fn new(registration: Registration, runtime: Arc<RuntimeEnv>) -> anyhow::Result<Self> {
        let metrics = PrometheusBuilder::new().install_recorder()?;
        metrics::describe_counter!(TASKS, "Plan fragments this worker was sent to run");
        metrics::describe_counter!(HEARTBEATS, "Heartbeats sent to the coordinator, by result");
        metrics::describe_gauge!(MEMORY_USED, metrics::Unit::Bytes, "Memory pool in use");
        metrics::describe_gauge!(MEMORY_LIMIT, metrics::Unit::Bytes, "Memory pool limit");
        vivace_connectors::source_metrics::describe();
        Ok(Self {
            metrics,
            registration,
            runtime,
        })
    }
}

/// Serve the listener until the process ends.
pub async fn serve(listener: TcpListener, state: WorkerHttp) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render))
        .with_state(state);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ready(State(state): State<WorkerHttp>) -> Response {
    if state.registration.registered() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not registered with the coordinator\n",
        )
            .into_response()
    }
}

async fn render(State(state): State<WorkerHttp>) -> Response {
    let pool = &state.runtime.memory_pool;
    metrics::gauge!(MEMORY_USED).set(pool.reserved() as f64);
    if let MemoryLimit::Finite(limit) = pool.memory_limit() {
        metrics::gauge!(MEMORY_LIMIT).set(limit as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Count a task this process was sent (called once per plan fragment).
pub(crate) fn task_received() {
    metrics::counter!(TASKS).increment(1);
}

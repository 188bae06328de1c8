//! The HTTP listener (`http_listen`): Prometheus `/metrics`, `/healthz`,
//! `/readyz`, the web page of queries and workers (`/`) and the JSON API it
//! reads (`/api/...`). It uses the engine, not the wire protocol. With users
//! configured every path but the health checks asks for a login (HTTP basic,
//! checked against the same SCRAM verifiers as PostgreSQL logins); a user
//! then sees and cancels their own queries, an admin every query.

mod api;
mod auth;
mod tls;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::wire::Users;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The engine whose queries and workers are shown.
    pub engine: Arc<Engine>,
    /// Renders `/metrics`; none when another recorder was installed.
    pub metrics: Option<PrometheusHandle>,
    /// Who may log in; empty: no login asked.
    pub users: Arc<Users>,
}

/// The page: one static file, no build step.
const PAGE: &str = include_str!("page.html");

/// Serve HTTP on `listener` until the process stops: HTTPS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    tls: Option<crate::tls::TlsAcceptor>,
    state: HttpState,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/", get(page))
        .route("/api/cluster", get(api::cluster))
        .route("/api/queries", get(api::queries))
        .route("/api/queries/{id}", get(api::query))
        .route("/api/queries/{id}/cancel", post(api::cancel))
        .with_state(state);
    match tls {
        Some(acceptor) => axum::serve(tls::TlsListener::new(listener, acceptor)?, app).await?,
        None => axum::serve(listener, app).await?,
    }
    Ok(())
}

/// The page, after a login when users are configured.
async fn page(
    axum::extract::State(state): axum::extract::State<HttpState>,
    headers: axum::http::HeaderMap,
) -> Response {
    match auth::viewer(&state, &headers) {
        Ok(_) => Html(PAGE).into_response(),
        Err(refused) => *refused,
    }
}

/// 200 when the catalog answers and, in a cluster, a worker is live; 503 otherwise.
async fn ready(axum::extract::State(state): axum::extract::State<HttpState>) -> Response {
    let catalog = state.engine.catalog_ready();
    let workers = state.engine.membership().map(|m| m.live_urls().len());
    let ready = catalog && workers.is_none_or(|n| n > 0);
    let body = serde_json::json!({ "ready": ready, "catalog": catalog, "workers": workers });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// The Prometheus text format, gauges read now.
async fn metrics(
    axum::extract::State(state): axum::extract::State<HttpState>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(refused) = auth::viewer(&state, &headers) {
        return *refused;
    }
    let Some(handle) = &state.metrics else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded\n",
        )
            .into_response();
    };
    api::set_gauges(&state.engine);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

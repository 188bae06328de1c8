//! The JSON the page reads: the cluster, the queries, one query, cancel.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use datafusion::execution::memory_pool::MemoryLimit;
use serde_json::json;

use super::{HttpState, auth};
use crate::cluster::{NodeRole, NodeRow};
use crate::engine::Engine;
use crate::engine::system_queries::Viewer;
use crate::engine::system_tasks::tasks_of;
use crate::engine::tracker::QueryRecord;
use crate::telemetry as m;

/// Set the gauges read at scrape time (sessions count themselves).
pub fn set_gauges(engine: &Engine) {
    for group in engine.groups().status() {
        metrics::gauge!(m::QUERIES_RUNNING, "resource_group" => group.name.clone())
            .set(group.running as f64);
        metrics::gauge!(m::QUERIES_QUEUED, "resource_group" => group.name).set(group.queued as f64);
    }
    metrics::gauge!(m::CATALOG_OBJECTS).set(engine.catalog_objects() as f64);
    let workers = engine.membership().map_or(0, |m| m.live_urls().len());
    metrics::gauge!(m::WORKERS).set(workers as f64);
    let pool = &engine.runtime().memory_pool;
    metrics::gauge!(m::MEMORY_USED).set(pool.reserved() as f64);
    if let MemoryLimit::Finite(limit) = pool.memory_limit() {
        metrics::gauge!(m::MEMORY_LIMIT).set(limit as f64);
    }
}

fn node(row: &NodeRow) -> serde_json::Value {
    json!({
        "node_id": row.node_id,
        "role": match row.role { NodeRole::Coordinator => "coordinator", NodeRole::Worker => "worker" },
        "address": row.address,
        "state": "active",
        "embedded": row.embedded,
        "joined_ms": row.joined.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
    })
}

/// `GET /api/cluster`: workers, queries running and queued, memory, groups.
pub async fn cluster(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let viewer = match auth::viewer(&state, &headers) {
        Ok(viewer) => viewer,
        Err(refused) => return *refused,
    };
    let engine = &state.engine;
    let nodes: Vec<_> = engine
        .membership()
        .map(|m| m.rows().iter().map(node).collect())
        .unwrap_or_default();
    let groups = engine.groups().status();
    let pool = &engine.runtime().memory_pool;
    let limit = match pool.memory_limit() {
        MemoryLimit::Finite(limit) => Some(limit),
        _ => None,
    };
    Json(json!({
        "user": viewer.user,
        "admin": viewer.admin,
        "nodes": nodes,
        "running": groups.iter().map(|g| g.running).sum::<usize>(),
        "queued": groups.iter().map(|g| g.queued).sum::<usize>(),
        "memory_used_bytes": pool.reserved(),
        "memory_limit_bytes": limit,
        "resource_groups": groups,
    }))
    .into_response()
}

/// `GET /api/queries`: the queries the viewer may see, running first.
pub async fn queries(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let viewer = match auth::viewer(&state, &headers) {
        Ok(viewer) => viewer,
        Err(refused) => return *refused,
    };
    let queries: Vec<_> = state
        .engine
        .tracker()
        .queries()
        .iter()
        .filter(|r| viewer.may_see(r.user()))
        .map(|r| r.info())
        .collect();
    Json(queries).into_response()
}

/// The query `id`, if the one asking may see it: else a 401 or a 404.
fn visible_query(
    state: &HttpState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Viewer, Arc<QueryRecord>), Box<Response>> {
    let viewer = auth::viewer(state, headers)?;
    let record = state
        .engine
        .tracker()
        .find(id)
        .filter(|r| viewer.may_see(r.user()))
        .ok_or_else(|| {
            Box::new(
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({ "error": format!("query \"{id}\" does not exist") })),
                )
                    .into_response(),
            )
        })?;
    Ok((viewer, record))
}

/// `GET /api/queries/{id}`: one query with its plan, each operator's rows
/// and time so far, and its tasks on workers (as `system.tasks` lists them).
pub async fn query(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let record = match visible_query(&state, &headers, &id) {
        Ok((_, record)) => record,
        Err(refused) => return *refused,
    };
    let plan = record.plan_text();
    let tasks: Vec<_> = tasks_of(&record)
        .into_iter()
        .map(|(task, stage)| {
            json!({
                "stage": stage,
                "task": task.task,
                "stage_tasks": task.stage_tasks,
                "worker": task.worker,
                "state": task.state(),
                "rows_scanned": task.rows_scanned,
                "bytes_scanned": task.bytes_scanned,
                "output_rows": task.output_rows,
                "elapsed_ms": task.elapsed_ms,
                "operator": task.operator,
            })
        })
        .collect();
    let mut body = serde_json::to_value(record.info()).unwrap_or_default();
    body["plan"] = json!(plan);
    body["tasks"] = json!(tasks);
    Json(body).into_response()
}

/// `POST /api/queries/{id}/cancel`: stop a running query.
pub async fn cancel(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (viewer, record) = match visible_query(&state, &headers, &id) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let running = record.cancel();
    if running {
        tracing::info!(query_id = %id, by = %viewer.user, "query cancelled over HTTP");
    }
    Json(json!({ "query_id": id, "cancelled": running })).into_response()
}

//! One search server as the remote core sees it: a [`RemoteSource`] whose
//! requests are [`SearchRequest`]s, each read to its end through a point in
//! time and `search_after` (sorted by `_shard_doc`), so no 10,000-hit window
//! applies and no scroll context is left open.
//!
//! The read runs in a task that feeds the stream ([`spawn_batches`]); when the
//! stream is dropped (the query finished early, was cancelled or timed out)
//! the task stops before its next request — an in-flight request is
//! abandoned — and closes the point in time.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::SendableRecordBatchStream;
use serde_json::{Value, json};

use super::buckets;
use super::client::{EsClient, PIT_KEEP_ALIVE};
use super::hits::HitDecoder;
use super::options::ElasticsearchOptions;
use super::request::{Output, SearchRequest};
use crate::remote::{BatchSender, RemoteSource, SourceDefinition, spawn_batches};
use crate::source_metrics::SourceLabels;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// A search server and user, and the client its requests go through.
#[derive(Debug)]
pub struct ElasticsearchSource {
    options: ElasticsearchOptions,
    client: Arc<EsClient>,
}

impl ElasticsearchSource {
    /// The source of `options`, over `client`.
    pub fn new(options: ElasticsearchOptions, client: Arc<EsClient>) -> Self {
        Self { options, client }
    }

    /// The client (schema discovery, counts).
    pub fn client(&self) -> &Arc<EsClient> {
        &self.client
    }

    /// The settings it was opened with.
    pub fn options(&self) -> &ElasticsearchOptions {
        &self.options
    }
}

impl RemoteSource for ElasticsearchSource {
    fn definition(&self) -> &SourceDefinition {
        &self.options.source
    }

    fn compute_context(&self) -> String {
        self.options.compute_context()
    }

    fn request_label(&self) -> &'static str {
        "search"
    }

    fn labels(&self) -> &SourceLabels {
        self.client.labels()
    }

    fn run(&self, request: &str, schema: SchemaRef) -> DFResult<SendableRecordBatchStream> {
        let request: SearchRequest = serde_json::from_str(request).map_err(|e| {
            DataFusionError::Plan(format!("bad search request from the coordinator: {e}"))
        })?;
        let client = Arc::clone(&self.client);
        let batch_schema = Arc::clone(&schema);
        Ok(spawn_batches(schema, move |tx| async move {
            match &request.buckets {
                Some(outputs) => read_buckets(&client, &request, outputs, &batch_schema, &tx).await,
                None => {
                    let decoder = HitDecoder::new(batch_schema, &request.columns);
                    read(&client, &request, &decoder, &tx).await
                }
            }
        }))
    }
}

/// Read a pushed aggregation's answer into `tx`: every page of a composite
/// aggregation (`after_key`), or the one row of an aggregation without groups.
async fn read_buckets(
    client: &EsClient,
    request: &SearchRequest,
    outputs: &[Output],
    schema: &SchemaRef,
    tx: &BatchSender,
) -> ConnectorResult<()> {
    let mut body = request.body.clone();
    loop {
        let answer = tokio::select! {
            _ = tx.closed() => return Ok(()),
            answer = client.search_index(&request.index, &body) => answer?,
        };
        let Some(groups) = answer["aggregations"].get("groups") else {
            // No groups: one row of the top-level metrics.
            let mut row = answer["aggregations"].clone();
            if !row.is_object() {
                row = json!({});
            }
            row["doc_count"] = answer["hits"]["total"]["value"].clone();
            let batch = buckets::decode(&[&row], outputs, schema)?;
            let _ = tx.send(Ok(batch)).await;
            return Ok(());
        };
        let page: Vec<&Value> = groups["buckets"]
            .as_array()
            .map(|b| b.iter().collect())
            .unwrap_or_default();
        if !page.is_empty() {
            let batch = buckets::decode(&page, outputs, schema)?;
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
        match groups.get("after_key") {
            Some(after) if !page.is_empty() => {
                body["aggs"]["groups"]["composite"]["after"] = after.clone();
            }
            _ => return Ok(()),
        }
    }
}

/// Read every hit of `request` into `tx`, then close the point in time.
async fn read(
    client: &EsClient,
    request: &SearchRequest,
    decoder: &HitDecoder,
    tx: &BatchSender,
) -> ConnectorResult<()> {
    if request.limit == Some(0) {
        return Ok(());
    }
    let mut pit = tokio::select! {
        _ = tx.closed() => return Ok(()),
        pit = client.open_pit(&request.index) => pit?,
    };
    let result = pages(client, request, decoder, tx, &mut pit).await;
    client.close_pit(&pit).await;
    result
}

async fn pages(
    client: &EsClient,
    request: &SearchRequest,
    decoder: &HitDecoder,
    tx: &BatchSender,
    pit: &mut String,
) -> ConnectorResult<()> {
    let mut remaining = request.limit;
    let mut after: Option<Value> = None;
    loop {
        let size = remaining.map_or(request.page_size as u64, |r| {
            r.min(request.page_size as u64)
        });
        let mut body = request.body.clone();
        let Some(fields) = body.as_object_mut() else {
            return Err(ConnectorError::new(
                ConnectorErrorKind::Rejected,
                "search body is not an object",
            ));
        };
        fields.insert(
            "pit".into(),
            json!({ "id": pit.as_str(), "keep_alive": PIT_KEEP_ALIVE }),
        );
        // The requested order (a top-n read), the shard order as tiebreak.
        let mut sort = match fields.get("sort") {
            Some(Value::Array(clauses)) => clauses.clone(),
            _ => vec![],
        };
        if !sort.iter().any(|c| c == "_shard_doc") {
            sort.push(json!("_shard_doc"));
        }
        fields.insert("sort".into(), Value::Array(sort));
        fields.insert("size".into(), json!(size));
        if let Some(after) = &after {
            fields.insert("search_after".into(), after.clone());
        }
        let answer = tokio::select! {
            _ = tx.closed() => return Ok(()),
            answer = client.search(&body) => answer?,
        };
        if let Some(id) = answer["pit_id"].as_str() {
            *pit = id.to_string();
        }
        if let Some(failure) = answer["_shards"]["failures"][0]["reason"]["reason"].as_str() {
            return Err(ConnectorError::new(
                ConnectorErrorKind::Rejected,
                format!(
                    "the search server failed on a shard of [{}]: {failure}",
                    request.index
                ),
            ));
        }
        let hits = answer["hits"]["hits"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if hits.is_empty() {
            return Ok(());
        }
        after = hits.last().map(|h| h["sort"].clone());
        let batch = decoder.decode(hits)?;
        if tx.send(Ok(batch)).await.is_err() {
            return Ok(());
        }
        if let Some(r) = remaining.as_mut() {
            *r -= (hits.len() as u64).min(*r);
            if *r == 0 {
                return Ok(());
            }
        }
        if (hits.len() as u64) < size {
            return Ok(());
        }
    }
}

//! One Cassandra cluster as the remote core sees it: a [`RemoteSource`] whose
//! requests are [`CqlRequest`]s, each prepared once per session and run page
//! by page (`fetch_size` rows each); every page becomes one batch.
//!
//! The read runs in a task that feeds the stream ([`spawn_batches`]); when the
//! stream is dropped (the query finished early, was cancelled or timed out)
//! the task stops before its next page and the in-flight page is abandoned.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::SendableRecordBatchStream;
use scylla::client::session::Session;
use scylla::frame::response::result::{ColumnType, NativeType};
use scylla::response::PagingState;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlDate, CqlDecimal, CqlTimestamp, CqlTimeuuid, CqlValue, CqlVarint, Row};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::cql::CqlRequest;
use super::decode;
use super::options::CassandraOptions;
use super::session;
use crate::remote::{BatchSender, RemoteSource, SourceDefinition, spawn_batches};
use crate::source_metrics::SourceLabels;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// A cluster and user: the session (opened on first use) and its prepared
/// statements. Clones share them.
#[derive(Clone)]
pub struct CassandraSource {
    options: CassandraOptions,
    cluster: Arc<Cluster>,
    labels: SourceLabels,
}

/// What tables of one cluster and user share.
#[derive(Default)]
pub struct Cluster {
    session: OnceCell<Arc<Session>>,
    prepared: Mutex<HashMap<String, PreparedStatement>>,
}

impl std::fmt::Debug for CassandraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CassandraSource({})", self.options.compute_context())
    }
}

impl CassandraSource {
    /// The source of `options` over `cluster` (nothing is opened yet).
    pub fn new(options: CassandraOptions, cluster: Arc<Cluster>) -> Self {
        let labels = SourceLabels::new(&options.source.connector, &options.compute_context());
        Self {
            options,
            cluster,
            labels,
        }
    }

    /// The settings it was opened with.
    pub fn options(&self) -> &CassandraOptions {
        &self.options
    }

    /// The session, opened now if it is not yet (a failure is not kept: the
    /// next use tries again).
    pub async fn session(&self) -> ConnectorResult<Arc<Session>> {
        self.cluster
            .session
            .get_or_try_init(|| async { session::open(&self.options).await.map(Arc::new) })
            .await
            .cloned()
    }

    /// `cql` prepared (once per session), with this table's page size,
    /// consistency, timeout and tracing.
    async fn prepare(&self, session: &Session, cql: &str) -> ConnectorResult<PreparedStatement> {
        let cached = self
            .cluster
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cql)
            .cloned();
        let mut prepared = match cached {
            Some(p) => p,
            None => {
                self.labels.request_sent("prepare");
                let p = session
                    .prepare(cql)
                    .await
                    .map_err(|e| self.request_error(&e))?;
                self.cluster
                    .prepared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(cql.to_string(), p.clone());
                p
            }
        };
        prepared.set_page_size(self.options.fetch_size as i32);
        prepared.set_is_idempotent(true);
        prepared.set_tracing(self.options.tracing);
        prepared.set_consistency(session::driver_consistency(self.options.consistency));
        prepared.set_request_timeout(Some(self.options.request_timeout));
        Ok(prepared)
    }

    fn request_error(&self, e: &impl session::DriverError) -> ConnectorError {
        let table = format!(
            "{}.{}",
            self.options.keyspace,
            self.options.table.as_deref().unwrap_or("?")
        );
        session::request_error(&self.options, &table, e)
    }

    /// Run `request`, sending one batch per page into `tx`.
    async fn read(
        &self,
        request: &CqlRequest,
        schema: &SchemaRef,
        tx: &BatchSender,
    ) -> ConnectorResult<()> {
        let session = tokio::select! {
            _ = tx.closed() => return Ok(()),
            s = self.session() => s?,
        };
        let prepared = self.prepare(&session, &request.cql).await?;
        let runs: Vec<Vec<CqlValue>> = if request.values.is_empty() {
            vec![vec![]]
        } else {
            let specs = prepared.get_variable_col_specs();
            let types: Vec<&ColumnType> = specs.iter().map(|s| s.typ()).collect();
            request
                .values
                .iter()
                .map(|set| {
                    set.iter()
                        .zip(&types)
                        .map(|(v, t)| to_cql(v, t))
                        .collect::<ConnectorResult<Vec<_>>>()
                })
                .collect::<ConnectorResult<_>>()?
        };
        for values in runs {
            let mut remaining = request.limit;
            let mut paging = PagingState::start();
            loop {
                self.labels.request_sent("page");
                let page = tokio::select! {
                    _ = tx.closed() => return Ok(()),
                    page = session.execute_single_page(&prepared, &values, paging) => page,
                };
                let (result, next) = page.map_err(|e| self.request_error(&e))?;
                let rows = result
                    .into_rows_result()
                    .map_err(|e| self.request_error(&e))?;
                let mut decoded: Vec<Row> = rows
                    .rows::<Row>()
                    .map_err(|e| self.request_error(&e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.request_error(&e))?;
                if let Some(r) = remaining.as_mut() {
                    decoded.truncate((*r).min(decoded.len() as u64) as usize);
                    *r -= decoded.len() as u64;
                }
                if !decoded.is_empty() {
                    let batch = decode::batch(&decoded, schema)?;
                    if tx.send(Ok(batch)).await.is_err() {
                        return Ok(());
                    }
                }
                if remaining == Some(0) {
                    break;
                }
                match next.into_paging_control_flow() {
                    ControlFlow::Continue(state) => paging = state,
                    ControlFlow::Break(()) => break,
                }
            }
        }
        Ok(())
    }
}

impl RemoteSource for CassandraSource {
    fn definition(&self) -> &SourceDefinition {
        &self.options.source
    }

    fn compute_context(&self) -> String {
        self.options.compute_context()
    }

    fn request_label(&self) -> &'static str {
        "cql"
    }

    fn labels(&self) -> &SourceLabels {
        &self.labels
    }

    fn run(&self, request: &str, schema: SchemaRef) -> DFResult<SendableRecordBatchStream> {
        let request: CqlRequest = serde_json::from_str(request).map_err(|e| {
            DataFusionError::Plan(format!("bad CQL request from the coordinator: {e}"))
        })?;
        let source = self.clone();
        let batch_schema = Arc::clone(&schema);
        Ok(spawn_batches(schema, move |tx| async move {
            source.read(&request, &batch_schema, &tx).await
        }))
    }
}

/// A parameter in its JSON form (what [`super::cql`] writes) as a value of
/// the marker's CQL type.
fn to_cql(value: &Value, typ: &ColumnType) -> ConnectorResult<CqlValue> {
    let bad = || {
        ConnectorError::new(
            ConnectorErrorKind::Rejected,
            format!("cannot bind {value} to a CQL {typ:?} parameter"),
        )
    };
    let ColumnType::Native(native) = typ else {
        return Err(bad());
    };
    let int = || value.as_i64().ok_or_else(bad);
    let text = || value.as_str().ok_or_else(bad);
    Ok(match native {
        NativeType::Ascii => CqlValue::Ascii(text()?.to_string()),
        NativeType::Text => CqlValue::Text(text()?.to_string()),
        NativeType::Boolean => CqlValue::Boolean(value.as_bool().ok_or_else(bad)?),
        NativeType::BigInt => CqlValue::BigInt(int()?),
        NativeType::Int => CqlValue::Int(i32::try_from(int()?).map_err(|_| bad())?),
        NativeType::SmallInt => CqlValue::SmallInt(i16::try_from(int()?).map_err(|_| bad())?),
        NativeType::TinyInt => CqlValue::TinyInt(i8::try_from(int()?).map_err(|_| bad())?),
        NativeType::Double => CqlValue::Double(value.as_f64().ok_or_else(bad)?),
        NativeType::Float => CqlValue::Float(value.as_f64().ok_or_else(bad)? as f32),
        NativeType::Varint => CqlValue::Varint(CqlVarint::from_signed_bytes_be(
            int()?.to_be_bytes().to_vec(),
        )),
        NativeType::Decimal => CqlValue::Decimal(CqlDecimal::from_signed_be_bytes_and_exponent(
            int()?.to_be_bytes().to_vec(),
            0,
        )),
        NativeType::Date => {
            let date = NaiveDate::parse_from_str(text()?, "%Y-%m-%d").map_err(|_| bad())?;
            let days = date.signed_duration_since(NaiveDate::default()).num_days();
            CqlValue::Date(CqlDate(
                u32::try_from(days + (1i64 << 31)).map_err(|_| bad())?,
            ))
        }
        NativeType::Timestamp => {
            let at = DateTime::parse_from_rfc3339(text()?).map_err(|_| bad())?;
            CqlValue::Timestamp(CqlTimestamp(at.timestamp_millis()))
        }
        NativeType::Uuid => CqlValue::Uuid(uuid::Uuid::parse_str(text()?).map_err(|_| bad())?),
        NativeType::Timeuuid => CqlValue::Timeuuid(CqlTimeuuid::from(
            uuid::Uuid::parse_str(text()?).map_err(|_| bad())?,
        )),
        NativeType::Inet => CqlValue::Inet(text()?.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

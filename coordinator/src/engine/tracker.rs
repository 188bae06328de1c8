//! Every query the coordinator runs, from admission to its last row: what
//! `system.queries`, the web page, `vivace.cancel_query`, the metrics and the
//! query-end log line are made of. Running queries are kept until they end;
//! the last `query_history` finished ones after that.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion_distributed::{
    DistributedExec, DistributedMetricsFormat, NetworkBoundaryExt,
    rewrite_distributed_plan_with_metrics,
};
use futures::Stream;
use futures::future::BoxFuture;

use super::cancel::{CancelReason, QueryCancel};
use super::groups::Admission;
use crate::error::{SqlError, sqlstate};
use crate::telemetry as m;

/// Where a query is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryState {
    /// Waiting for a place in its resource group.
    Queued,
    /// Admitted; its physical plan is being made.
    Planning,
    /// Producing rows.
    Running,
    /// Ended without error.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped by a cancel, a timeout or the client going away.
    Cancelled,
}

impl QueryState {
    /// The state as `system.queries` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Planning => "planning",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the query has ended.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Cancelled)
    }
}

/// Who runs a new query, and what.
#[derive(Debug, Clone)]
pub struct NewQuery {
    /// The session's user (empty when none logged in).
    pub user: String,
    /// The client's `application_name`.
    pub application: String,
    /// The statement's text, secrets masked ([`mask_secrets`]).
    pub sql: String,
    /// Its resource group.
    pub group: String,
    /// The switch that stops it.
    pub cancel: QueryCancel,
}

#[derive(Debug, Default)]
struct Timeline {
    state: Option<QueryState>,
    prepared: Option<Instant>,
    admitted: Option<Instant>,
    executing: Option<Instant>,
    ended: Option<Instant>,
    error: Option<(String, String)>,
}

/// One query, live or finished.
pub struct QueryRecord {
    /// `YYYYMMDD_HHMMSS_NNNNN`, as Trino numbers queries.
    pub id: String,
    query: NewQuery,
    created: SystemTime,
    began: Instant,
    timeline: Mutex<Timeline>,
    rows: AtomicU64,
    bytes: AtomicU64,
    plan: Mutex<PlanView>,
}

/// What is known of a query's physical plan.
enum PlanView {
    /// Not made yet (or the statement runs none).
    None,
    /// Running: its metrics are read live.
    Live(Arc<dyn ExecutionPlan>),
    /// Ended: the plan itself is let go (it may hold connections, remote
    /// cursors and buffers), its text and figures kept.
    Ended { text: String, progress: Progress },
}

/// How far a plan has got, from its operators' metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    /// Rows its leaves produced: while a distributed plan runs, those of the
    /// coordinator's own part (its stages on workers report theirs when they
    /// end, see [`QueryRecord::gather_worker_metrics`]).
    rows_scanned: u64,
    /// Bytes its file scans read.
    bytes_scanned: u64,
    /// Bytes of the batches its network boundaries received from the stages
    /// below them (known once a distributed query ended and its workers'
    /// metrics came back).
    exchange_bytes: u64,
    /// Stages run on workers.
    stages: u64,
    /// Tasks of those stages.
    tasks: u64,
    /// Those tasks that ended.
    tasks_done: u64,
    /// Times its operators spilled to disk, and the bytes they wrote.
    spills: u64,
    spilled_bytes: u64,
}

/// A query as `system.queries` and the JSON API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryInfo {
    /// Its id.
    pub query_id: String,
    /// Who ran it.
    pub user_name: String,
    /// The client's application_name.
    pub application_name: String,
    /// Where it is in its life.
    pub state: QueryState,
    /// When it was received, in milliseconds since 1970.
    pub created_ms: i64,
    /// Milliseconds waiting for its resource group.
    pub queued_ms: u64,
    /// Milliseconds making its physical plan and starting it.
    pub planning_ms: u64,
    /// Milliseconds producing rows.
    pub execution_ms: u64,
    /// Milliseconds since it was received, or that it lasted.
    pub elapsed_ms: u64,
    /// Rows sent to the client so far.
    pub rows: u64,
    /// Bytes of rows sent to the client so far.
    pub bytes: u64,
    /// Rows the plan's scans have read so far (those the coordinator sees).
    pub rows_scanned: u64,
    /// Bytes the plan's file scans have read so far (those the coordinator sees).
    pub bytes_scanned: u64,
    /// Stages of the plan run on workers (0: it runs on the coordinator).
    pub stages: u64,
    /// Tasks of those stages.
    pub tasks: u64,
    /// Those tasks that ended.
    pub tasks_done: u64,
    /// Its SQLSTATE, when it failed or was cancelled.
    pub error_code: Option<String>,
    /// Its error message.
    pub error_message: Option<String>,
    /// Its resource group.
    pub resource_group: String,
    /// Its SQL, secrets masked.
    pub query: String,
}

impl QueryRecord {
    /// The query's state now.
    pub fn state(&self) -> QueryState {
        self.lock().state.unwrap_or(QueryState::Planning)
    }

    /// The user who ran it.
    pub fn user(&self) -> &str {
        &self.query.user
    }

    /// Its resource group.
    pub fn group(&self) -> &str {
        &self.query.group
    }

    /// Stop the query (`vivace.cancel_query`, the page's cancel button); says
    /// whether it was still running (an ended query is left as it is).
    pub fn cancel(&self) -> bool {
        if self.state().is_done() {
            return false;
        }
        self.query.cancel.cancel(CancelReason::UserRequest);
        true
    }

    /// The statement is planned (its logical plan made); admission follows.
    pub fn prepared(&self) {
        self.lock().prepared.get_or_insert_with(Instant::now);
    }

    /// The query waits for its resource group.
    pub fn queued(&self) {
        self.lock().state = Some(QueryState::Queued);
    }

    /// The query has its place and is being planned.
    pub fn admitted(&self) {
        metrics::counter!(m::QUERIES_STARTED, "resource_group" => self.query.group.clone())
            .increment(1);
        let mut timeline = self.lock();
        timeline.state = Some(QueryState::Planning);
        timeline.admitted = Some(Instant::now());
    }

    /// The query runs `plan` (again, after a retry).
    pub fn executing(&self, plan: Arc<dyn ExecutionPlan>) {
        {
            let mut view = self.plan.lock().unwrap_or_else(|p| p.into_inner());
            if !matches!(*view, PlanView::Ended { .. }) {
                *view = PlanView::Live(plan);
            }
        }
        let mut timeline = self.lock();
        if !timeline.state.is_some_and(QueryState::is_done) {
            timeline.state = Some(QueryState::Running);
            timeline.executing.get_or_insert_with(Instant::now);
        }
    }

    /// `rows` more rows, of `bytes` on the wire, went to the client.
    pub fn sent(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The physical plan with each operator's rows and time so far, for the
    /// detail page.
    pub fn plan_text(&self) -> Option<String> {
        match &*self.plan.lock().unwrap_or_else(|p| p.into_inner()) {
            PlanView::None => None,
            PlanView::Live(plan) => Some(render(plan.as_ref())),
            PlanView::Ended { text, .. } => Some(text.clone()),
        }
    }

    /// The stages of the running plan on workers: each one's number, top
    /// operator and the stages it reads (none once the query ended).
    pub fn stages(&self) -> Vec<StageShape> {
        let mut stages = Vec::new();
        if let PlanView::Live(plan) = &*self.plan.lock().unwrap_or_else(|p| p.into_inner()) {
            add_stages(plan.as_ref(), &mut stages);
        }
        stages
    }

    /// How far the plan has got: while it runs, with what its tasks on
    /// workers have done so far.
    fn progress(&self) -> Progress {
        match &*self.plan.lock().unwrap_or_else(|p| p.into_inner()) {
            PlanView::None => Progress::default(),
            PlanView::Live(plan) => {
                let mut progress = progress(plan.as_ref());
                if progress.stages > 0 {
                    let workers = vivace_worker::progress::TaskProgress::global().of(&self.id);
                    progress.rows_scanned += workers.rows_scanned;
                    progress.bytes_scanned += workers.bytes_scanned;
                    progress.tasks_done = workers.tasks_done.min(progress.tasks);
                }
                progress
            }
            PlanView::Ended { progress, .. } => *progress,
        }
    }

    /// Once a distributed plan has run to its end, wait (at most
    /// [`WORKER_METRICS_WAIT`]) for the metrics its workers send back, and keep
    /// the plan with them: the ended query then shows each stage's rows and
    /// time, and counts the rows and bytes its stages scanned.
    async fn gather_worker_metrics(self: Arc<Self>) {
        let plan = match &*self.plan.lock().unwrap_or_else(|p| p.into_inner()) {
            PlanView::Live(plan) if plan.downcast_ref::<DistributedExec>().is_some() => {
                Arc::clone(plan)
            }
            _ => return,
        };
        let gathered = tokio::time::timeout(
            WORKER_METRICS_WAIT,
            rewrite_distributed_plan_with_metrics(
                Arc::clone(&plan),
                DistributedMetricsFormat::Aggregated,
            ),
        )
        .await;
        let Ok(Ok(with_metrics)) = gathered else {
            return;
        };
        // The rewritten plan wraps its network boundaries: the stages and
        // tasks are counted on the plan that ran.
        let shape = progress(plan.as_ref());
        let scanned = progress(with_metrics.as_ref());
        let mut view = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*view, PlanView::Live(_)) {
            *view = PlanView::Ended {
                text: render(with_metrics.as_ref()),
                progress: Progress {
                    rows_scanned: scanned.rows_scanned,
                    bytes_scanned: scanned.bytes_scanned,
                    exchange_bytes: scanned.exchange_bytes,
                    spills: scanned.spills,
                    spilled_bytes: scanned.spilled_bytes,
                    tasks_done: shape.tasks,
                    ..shape
                },
            };
        }
        drop(view);
        metrics::counter!(m::EXCHANGE_BYTES).increment(scanned.exchange_bytes);
    }

    /// Keep the plan's text and figures, and let the plan itself go.
    fn let_plan_go(&self) {
        let mut view = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        let ended = match &*view {
            PlanView::Live(plan) => PlanView::Ended {
                text: render(plan.as_ref()),
                progress: progress(plan.as_ref()),
            },
            _ => return,
        };
        *view = ended;
    }

    /// The query as shown now.
    pub fn info(&self) -> QueryInfo {
        let timeline = self.lock();
        let now = Instant::now();
        let end = timeline.ended.unwrap_or(now);
        let ms = |from: Option<Instant>, to: Option<Instant>| -> u64 {
            match (from, to) {
                (Some(from), Some(to)) => to.saturating_duration_since(from).as_millis() as u64,
                _ => 0,
            }
        };
        let progress = self.progress();
        QueryInfo {
            query_id: self.id.clone(),
            user_name: self.query.user.clone(),
            application_name: self.query.application.clone(),
            state: timeline.state.unwrap_or(QueryState::Planning),
            created_ms: self
                .created
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            queued_ms: ms(
                timeline.prepared.or(Some(self.began)),
                timeline.admitted.or(Some(end)),
            ),
            planning_ms: ms(Some(self.began), timeline.prepared)
                + ms(timeline.admitted, timeline.executing.or(Some(end))),
            execution_ms: ms(timeline.executing, Some(end)),
            elapsed_ms: ms(Some(self.began), Some(end)),
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            rows_scanned: progress.rows_scanned,
            bytes_scanned: progress.bytes_scanned,
            stages: progress.stages,
            tasks: progress.tasks,
            tasks_done: progress.tasks_done,
            error_code: timeline.error.as_ref().map(|(code, _)| code.clone()),
            error_message: timeline.error.as_ref().map(|(_, message)| message.clone()),
            resource_group: self.query.group.clone(),
            query: self.query.sql.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `plan` as indented text with each operator's metrics.
fn render(plan: &dyn ExecutionPlan) -> String {
    datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(plan)
        .indent(true)
        .to_string()
}

impl QueryInfo {
    /// One line on how far the query has got, for a progress NOTICE.
    pub fn progress_line(&self) -> String {
        let mut line = format!(
            "query {} {} for {:.1} s: {} rows scanned",
            self.query_id,
            self.state.as_str(),
            self.elapsed_ms as f64 / 1000.0,
            self.rows_scanned
        );
        if self.bytes_scanned > 0 {
            line += &format!(" ({} bytes read)", self.bytes_scanned);
        }
        if self.stages > 0 {
            line += &format!(
                ", {} stages on workers, {} of {} tasks done",
                self.stages, self.tasks_done, self.tasks
            );
        }
        line + &format!(", {} rows sent", self.rows)
    }
}

/// A stage of a distributed plan, as the coordinator planned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageShape {
    /// Its number.
    pub num: u64,
    /// The first line of its plan: its top operator.
    pub operator: String,
    /// Numbers of the stages it reads.
    pub input_stages: Vec<u64>,
}

fn add_stages(plan: &dyn ExecutionPlan, stages: &mut Vec<StageShape>) {
    if let Some(boundary) = plan.as_network_boundary()
        && let Some(stage_plan) = boundary.input_stage().local_plan()
    {
        stages.push(StageShape {
            num: boundary.input_stage().num() as u64,
            operator: vivace_worker::progress::operator_line(stage_plan.as_ref()),
            input_stages: vivace_worker::progress::input_stages(stage_plan.as_ref()),
        });
    }
    for child in plan.children() {
        add_stages(child.as_ref(), stages);
    }
}

/// How far `plan` has got, from its operators' metrics so far.
fn progress(plan: &dyn ExecutionPlan) -> Progress {
    let mut progress = Progress::default();
    add_progress(plan, &mut progress);
    progress
}

fn add_progress(plan: &dyn ExecutionPlan, progress: &mut Progress) {
    let children = plan.children();
    if let Some(boundary) = plan.as_network_boundary() {
        progress.stages += 1;
        progress.tasks += boundary.input_stage().task_count() as u64;
    }
    // Boundaries are matched by name: once rewritten with the workers'
    // metrics they are wrapped, and no longer known as boundaries.
    let exchange = plan.name().starts_with("Network");
    if let Some(metrics) = plan.metrics() {
        for metric in metrics.iter() {
            match metric.value() {
                MetricValue::OutputBytes(count) if exchange => {
                    progress.exchange_bytes += count.value() as u64
                }
                MetricValue::OutputRows(count) if children.is_empty() && !exchange => {
                    progress.rows_scanned += count.value() as u64
                }
                MetricValue::Count { name, count } if name == "bytes_scanned" => {
                    progress.bytes_scanned += count.value() as u64
                }
                MetricValue::SpillCount(count) => progress.spills += count.value() as u64,
                MetricValue::SpilledBytes(count) => progress.spilled_bytes += count.value() as u64,
                _ => {}
            }
        }
    }
    for child in children {
        add_progress(child.as_ref(), progress);
    }
}

/// How long an ended distributed query waits for its workers' metrics before
/// it is recorded without them.
const WORKER_METRICS_WAIT: Duration = Duration::from_secs(2);

/// The coordinator's queries.
pub struct QueryTracker {
    sequence: AtomicU64,
    running: Mutex<BTreeMap<String, Arc<QueryRecord>>>,
    finished: Mutex<VecDeque<Arc<QueryRecord>>>,
    keep: usize,
}

impl std::fmt::Debug for QueryTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryTracker")
    }
}

impl QueryTracker {
    /// A tracker keeping the last `keep` finished queries.
    pub fn new(keep: usize) -> Self {
        Self {
            sequence: AtomicU64::new(0),
            running: Mutex::default(),
            finished: Mutex::default(),
            keep,
        }
    }

    /// Record a query about to be admitted.
    pub fn begin(self: &Arc<Self>, query: NewQuery) -> QueryHandle {
        let created = SystemTime::now();
        let n = self.sequence.fetch_add(1, Ordering::Relaxed) % 100_000;
        let stamp = chrono::DateTime::<chrono::Utc>::from(created).format("%Y%m%d_%H%M%S");
        let record = Arc::new(QueryRecord {
            id: format!("{stamp}_{n:05}"),
            query,
            created,
            began: Instant::now(),
            timeline: Mutex::default(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            plan: Mutex::new(PlanView::None),
        });
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(record.id.clone(), record.clone());
        QueryHandle {
            record,
            tracker: self.clone(),
            done: false,
        }
    }

    /// Running queries, then finished ones, newest first.
    pub fn queries(&self) -> Vec<Arc<QueryRecord>> {
        let mut all: Vec<_> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.reverse();
        all.extend(
            self.finished
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .rev()
                .cloned(),
        );
        all
    }

    /// The query with this id, running or kept.
    pub fn find(&self, id: &str) -> Option<Arc<QueryRecord>> {
        if let Some(record) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Some(record.clone());
        }
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|r| r.id == id)
            .cloned()
    }

    fn end(&self, record: &Arc<QueryRecord>, error: Option<&SqlError>) {
        let state = match error {
            None => QueryState::Finished,
            Some(e) if [sqlstate::QUERY_CANCELED, sqlstate::CONNECTION_LOST].contains(&e.code) => {
                QueryState::Cancelled
            }
            Some(_) => QueryState::Failed,
        };
        record.let_plan_go();
        {
            let mut timeline = record.lock();
            timeline.state = Some(state);
            timeline.ended = Some(Instant::now());
            timeline.error = error.map(|e| (e.code.to_string(), e.message.clone()));
        }
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&record.id);
        {
            let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
            finished.push_back(record.clone());
            while finished.len() > self.keep {
                finished.pop_front();
            }
        }
        let info = record.info();
        let group = info.resource_group.clone();
        metrics::counter!(
            m::QUERIES,
            "state" => state.as_str(),
            "sqlstate_class" => m::sqlstate_class(info.error_code.as_deref()),
            "resource_group" => group,
        )
        .increment(1);
        let spilled = record.progress();
        metrics::counter!(m::SPILLS).increment(spilled.spills);
        metrics::counter!(m::SPILLED_BYTES).increment(spilled.spilled_bytes);
        metrics::counter!(m::ROWS_RETURNED).increment(info.rows);
        metrics::counter!(m::BYTES_RETURNED).increment(info.bytes);
        for (phase, ms) in [
            ("queued", info.queued_ms),
            ("planning", info.planning_ms),
            ("execution", info.execution_ms),
        ] {
            metrics::histogram!(m::QUERY_SECONDS, "phase" => phase)
                .record(Duration::from_millis(ms).as_secs_f64());
        }
        // One line per query: no result values; the SQL's secrets are masked.
        tracing::info!(
            target: "vivace::query",
            query_id = %info.query_id,
            user = %info.user_name,
            application = %info.application_name,
            state = state.as_str(),
            resource_group = %info.resource_group,
            queued_ms = info.queued_ms,
            planning_ms = info.planning_ms,
            execution_ms = info.execution_ms,
            elapsed_ms = info.elapsed_ms,
            rows = info.rows,
            bytes = info.bytes,
            bytes_scanned = info.bytes_scanned,
            sqlstate = info.error_code.as_deref().unwrap_or("00000"),
            query = %info.query,
            "query ended"
        );
    }
}

/// A running query's record, ended exactly once: by [`QueryHandle::end`], or
/// as cancelled when dropped before that (the client went away).
pub struct QueryHandle {
    record: Arc<QueryRecord>,
    tracker: Arc<QueryTracker>,
    done: bool,
}

impl QueryHandle {
    /// The record.
    pub fn record(&self) -> &Arc<QueryRecord> {
        &self.record
    }

    /// The query ended, with `error` if it failed.
    pub fn end(mut self, error: Option<&SqlError>) {
        self.done = true;
        self.tracker.end(&self.record, error);
    }
}

impl Drop for QueryHandle {
    fn drop(&mut self) {
        if !self.done {
            self.tracker
                .end(&self.record, Some(&CancelReason::ClientGone.error()));
        }
    }
}

impl QueryHandle {
    /// `batches`, ending the query when they end (or fail, or are dropped),
    /// holding its place in its resource group until then.
    pub fn watch(
        self,
        batches: SendableRecordBatchStream,
        admission: Option<Arc<Admission>>,
    ) -> SendableRecordBatchStream {
        Box::pin(WatchedBatches {
            schema: batches.schema(),
            inner: batches,
            handle: Some(self),
            finishing: None,
            _admission: admission,
        })
    }
}

struct WatchedBatches {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    /// Until the query is recorded as ended.
    handle: Option<QueryHandle>,
    /// Once the last batch came: gathering the workers' metrics before the
    /// query is recorded as ended.
    finishing: Option<BoxFuture<'static, ()>>,
    _admission: Option<Arc<Admission>>,
}

impl Stream for WatchedBatches {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(finishing) = self.finishing.as_mut() {
            if finishing.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.finishing = None;
            if let Some(handle) = self.handle.take() {
                handle.end(None);
            }
            return Poll::Ready(None);
        }
        if self.handle.is_none() {
            // Ended: the inner stream is not polled again.
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                if let Some(handle) = &self.handle {
                    self.finishing = Some(Box::pin(
                        Arc::clone(handle.record()).gather_worker_metrics(),
                    ));
                }
                self.poll_next(cx)
            }
            Poll::Ready(Some(Err(e))) => {
                let error = SqlError::from(e);
                if let Some(handle) = self.handle.take() {
                    handle.end(Some(&error));
                }
                Poll::Ready(Some(Err(DataFusionError::External(Box::new(error)))))
            }
            other => other,
        }
    }
}

impl RecordBatchStream for WatchedBatches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// `sql` with the values of secret-looking OPTIONS keys (`'password' '…'`,
/// `'api_key' '…'`, `'aws.secret_access_key' '…'`) replaced by `********`
/// (connectors refuse such keys, but the statement's text is still shown
/// in `system.queries`, on the page and in the log). Keys ending in `_env`
/// name a variable and are kept.
pub fn mask_secrets(sql: &str) -> String {
    const SECRET_WORDS: &[&str] = &["password", "secret", "token", "credential", "private"];
    let mut out = String::with_capacity(sql.len());
    let mut previous: Option<String> = None;
    let mut rest = sql;
    while let Some(start) = rest.find('\'') {
        let (before, from_quote) = rest.split_at(start);
        out.push_str(before);
        if !before
            .trim_matches(|c: char| c.is_whitespace() || c == '=')
            .is_empty()
        {
            previous = None;
        }
        // The literal runs to the next quote not doubled.
        let body = &from_quote[1..];
        let mut end = None;
        let mut i = 0;
        let bytes = body.as_bytes();
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                end = Some(i);
                break;
            }
            i += 1;
        }
        let Some(end) = end else {
            out.push_str(from_quote);
            return out;
        };
        let literal = &body[..end];
        // `… PASSWORD '…'` (ALTER ROLE's spelling) is a secret too.
        let after_keyword = before.trim_end().to_ascii_lowercase().ends_with("password");
        let secret = after_keyword
            || previous.as_deref().is_some_and(|key| {
                let key = key.to_ascii_lowercase();
                !key.ends_with("_env")
                    && (SECRET_WORDS.iter().any(|w| key.contains(w))
                        || key.ends_with("key")
                        || key.ends_with("key_id"))
            });
        if secret {
            out.push_str("'********'");
            previous = None;
        } else {
            out.push('\'');
            out.push_str(&mask_url_password(literal));
            out.push('\'');
            previous = Some(literal.to_string());
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `text` with the password of a URL's `user:password@` replaced by `********`.
fn mask_url_password(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = text.find("://") else {
        return text.into();
    };
    let authority_start = scheme_end + 3;
    let authority_end = text[authority_start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| authority_start + i);
    let authority = &text[authority_start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return text.into();
    };
    let Some(colon) = authority[..at].find(':') else {
        return text.into();
    };
    format!(
        "{}********{}",
        &text[..authority_start + colon + 1],
        &text[authority_start + at..]
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_options_are_masked() {
        assert_eq!(
            mask_secrets(
                "CREATE EXTERNAL TABLE t STORED AS POSTGRES LOCATION 'x' OPTIONS ('user' 'bob', 'password' 'hunter2', 'password_env' 'PGPASS')"
            ),
            "CREATE EXTERNAL TABLE t STORED AS POSTGRES LOCATION 'x' OPTIONS ('user' 'bob', 'password' '********', 'password_env' 'PGPASS')"
        );
        assert_eq!(
            mask_secrets("OPTIONS ('aws.secret_access_key' = 'a''b', 'aws.region' 'eu')"),
            "OPTIONS ('aws.secret_access_key' = '********', 'aws.region' 'eu')"
        );
        assert_eq!(
            mask_secrets("SELECT 'password', x, 'hunter2'"),
            "SELECT 'password', x, 'hunter2'"
        );
        assert_eq!(mask_secrets("SELECT 'unterminated"), "SELECT 'unterminated");
        assert_eq!(
            mask_secrets("LOCATION 'postgres://app:s3cr@t@db:5432/x' OPTIONS ('table' 't')"),
            "LOCATION 'postgres://app:********@db:5432/x' OPTIONS ('table' 't')"
        );
        assert_eq!(
            mask_secrets("ALTER ROLE bob PASSWORD 'hunter2'"),
            "ALTER ROLE bob PASSWORD '********'"
        );
        assert_eq!(
            mask_secrets("LOCATION 'postgres://app@db/x', 's3://bucket/a:b@c'"),
            "LOCATION 'postgres://app@db/x', 's3://bucket/a:b@c'"
        );
        assert_eq!(
            mask_secrets("OPTIONS ('index' 'i', 'api_key' 'k3y', 'api_key_env' 'KEY')"),
            "OPTIONS ('index' 'i', 'api_key' '********', 'api_key_env' 'KEY')"
        );
    }

    #[test]
    fn an_ended_query_lets_its_plan_go_and_keeps_its_text() {
        use datafusion::arrow::datatypes::Schema;
        use datafusion::physical_plan::empty::EmptyExec;
        let tracker = Arc::new(QueryTracker::new(10));
        let handle = tracker.begin(NewQuery {
            user: String::new(),
            application: String::new(),
            sql: "SELECT 1".into(),
            group: "global".into(),
            cancel: QueryCancel::default(),
        });
        let plan: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(Arc::new(Schema::empty())));
        handle.record().executing(plan.clone());
        assert_eq!(Arc::strong_count(&plan), 2);
        let record = handle.record().clone();
        handle.end(None);
        // Plans may hold pools, remote cursors and buffers: kept queries do not.
        assert_eq!(Arc::strong_count(&plan), 1);
        assert!(record.plan_text().unwrap().contains("EmptyExec"));
    }

    #[test]
    fn finished_queries_are_kept_newest_first_up_to_the_limit() {
        let tracker = Arc::new(QueryTracker::new(2));
        let new = |sql: &str| NewQuery {
            user: "ann".into(),
            application: "psql".into(),
            sql: sql.into(),
            group: "global".into(),
            cancel: QueryCancel::default(),
        };
        let ids: Vec<String> = ["SELECT 1", "SELECT 2", "SELECT 3"]
            .into_iter()
            .map(|sql| {
                let handle = tracker.begin(new(sql));
                handle.record().admitted();
                let id = handle.record().id.clone();
                handle.end(None);
                id
            })
            .collect();
        let running = tracker.begin(new("SELECT 4"));
        let listed: Vec<String> = tracker.queries().iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            listed,
            vec![running.record().id.clone(), ids[2].clone(), ids[1].clone()]
        );
        assert_eq!(tracker.find(&ids[2]).unwrap().state(), QueryState::Finished);
        assert!(tracker.find(&ids[0]).is_none());
        drop(running);
        assert_eq!(tracker.queries()[0].state(), QueryState::Cancelled);
        assert_eq!(
            tracker.queries()[0].info().error_code.as_deref(),
            Some(sqlstate::CONNECTION_LOST)
        );
    }
}

//! Stopping a running query: PostgreSQL's CancelRequest and `statement_timeout`.
//!
//! pgwire races a CancelRequest only against the handler's `do_query`, which for
//! Vivace returns as soon as the first batch exists; rows after that stream from
//! a future pgwire does not watch. So Vivace keeps its own switch per session:
//! every query gets a fresh [`CancellationToken`], the stream of batches ends with
//! SQLSTATE 57014 once it fires, and dropping the stream stops DataFusion's tasks
//! (and the workers' streams) at once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{FutureExt, Stream};
use tokio_util::sync::CancellationToken;

use crate::error::{SqlError, sqlstate};

/// Why a query was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// A CancelRequest from the client.
    UserRequest,
    /// `statement_timeout` elapsed.
    StatementTimeout,
    /// The client closed its connection.
    ClientGone,
}

impl CancelReason {
    /// The error PostgreSQL sends for this reason.
    pub fn error(self) -> SqlError {
        let message = match self {
            Self::UserRequest => "canceling statement due to user request",
            Self::StatementTimeout => "canceling statement due to statement timeout",
            Self::ClientGone => {
                return SqlError::new(sqlstate::CONNECTION_LOST, "connection to client lost");
            }
        };
        SqlError::new(sqlstate::QUERY_CANCELED, message)
    }
}

/// One query's cancel switch.
#[derive(Debug, Clone, Default)]
pub struct QueryCancel {
    token: CancellationToken,
    finished: CancellationToken,
    reason: Arc<Mutex<Option<CancelReason>>>,
}

impl QueryCancel {
    /// Stop the query for `reason` (the first reason wins).
    pub fn cancel(&self, reason: CancelReason) {
        tracing::debug!(?reason, "stopping the query");
        if let Ok(mut slot) = self.reason.lock() {
            slot.get_or_insert(reason);
        }
        self.token.cancel();
    }

    /// Why the query was stopped, if it was.
    pub fn reason(&self) -> Option<CancelReason> {
        if !self.token.is_cancelled() {
            return None;
        }
        self.reason.lock().ok().and_then(|r| *r)
    }

    /// Resolves when the query is stopped, with the error to report.
    pub async fn cancelled(&self) -> SqlError {
        self.token.cancelled().await;
        self.reason().unwrap_or(CancelReason::UserRequest).error()
    }

    /// Fire with [`CancelReason::StatementTimeout`] after `timeout`, unless the
    /// query is stopped or finished first. A zero timeout means none, as in
    /// PostgreSQL. The clock runs on its own thread: CPU-bound query tasks can
    /// keep every runtime thread busy, and a tokio timer would then fire late.
    pub fn arm_timeout(&self, timeout: Duration) {
        if timeout.is_zero() {
            return;
        }
        let me = self.clone();
        let deadline = std::time::Instant::now() + timeout;
        std::thread::spawn(move || {
            while !me.token.is_cancelled() && !me.finished.is_cancelled() {
                let now = std::time::Instant::now();
                if now >= deadline {
                    me.cancel(CancelReason::StatementTimeout);
                    break;
                }
                std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
            }
        });
    }

    /// `batches`, ending with the cancel error as soon as the switch fires.
    pub fn guard(&self, batches: SendableRecordBatchStream) -> SendableRecordBatchStream {
        Box::pin(CancellableStream {
            schema: batches.schema(),
            inner: Some(batches),
            cancelled: self.token.clone().cancelled_owned().boxed(),
            cancel: self.clone(),
        })
    }

    /// Mark the query finished: a timeout armed for it will not fire any more.
    pub fn finish(&self) {
        self.finished.cancel();
    }
}

/// A session's current switch, replaced by each query message from the client
/// (all statements of one simple-protocol message share it, and the timeout
/// covers them together, as in PostgreSQL).
#[derive(Debug, Default)]
pub struct SessionCancel {
    current: Mutex<QueryCancel>,
    gone: std::sync::atomic::AtomicBool,
}

impl SessionCancel {
    /// A fresh switch for the message about to run; the previous one is finished.
    /// Once the client is gone, every switch is born cancelled.
    pub fn begin(&self) -> QueryCancel {
        let fresh = QueryCancel::default();
        if self.is_client_gone() {
            fresh.cancel(CancelReason::ClientGone);
        }
        if let Ok(mut current) = self.current.lock() {
            let previous = std::mem::replace(&mut *current, fresh.clone());
            previous.finish();
        }
        fresh
    }

    /// The switch of the message running now.
    pub fn current(&self) -> QueryCancel {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The client closed its connection: stop what runs now and anything after.
    pub fn client_gone(&self) {
        self.gone.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(current) = self.current.lock() {
            current.cancel(CancelReason::ClientGone);
        }
    }

    /// Whether the client closed its connection.
    pub fn is_client_gone(&self) -> bool {
        self.gone.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stop the session's current query, if any (a CancelRequest).
    pub fn cancel_current(&self) {
        if let Ok(current) = self.current.lock() {
            current.cancel(CancelReason::UserRequest);
        }
    }
}

/// A connection's backend key: the process id and secret a CancelRequest names.
pub type BackendKey = (i32, Vec<u8>);

/// The backend keys CancelRequests name, mapped to sessions.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<BackendKey, Weak<SessionCancel>>>,
}

impl CancelRegistry {
    /// Register `session` under its backend key; unregistered when the returned
    /// guard drops (when the connection ends).
    pub fn register(
        self: &Arc<Self>,
        key: BackendKey,
        session: &Arc<SessionCancel>,
    ) -> RegistrationGuard {
        if let Ok(mut map) = self.sessions.lock() {
            map.retain(|_, s| s.strong_count() > 0);
            map.insert(key.clone(), Arc::downgrade(session));
        }
        RegistrationGuard {
            registry: self.clone(),
            key,
        }
    }

    /// Cancel the current query of the session with this backend key. Unknown keys
    /// are ignored, as PostgreSQL does (the requester learns nothing).
    pub fn cancel(&self, key: &BackendKey) {
        let session = self
            .sessions
            .lock()
            .ok()
            .and_then(|map| map.get(key).and_then(Weak::upgrade));
        if let Some(session) = session {
            session.cancel_current();
        }
    }
}

/// Removes a session from the [`CancelRegistry`] when dropped.
#[derive(Debug)]
pub struct RegistrationGuard {
    registry: Arc<CancelRegistry>,
    key: BackendKey,
}

impl Drop for RegistrationGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.sessions.lock() {
            map.remove(&self.key);
        }
    }
}

struct CancellableStream {
    schema: SchemaRef,
    inner: Option<SendableRecordBatchStream>,
    cancelled: futures::future::BoxFuture<'static, ()>,
    cancel: QueryCancel,
}

impl Stream for CancellableStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let next = inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.inner = None;
            return Poll::Ready(None);
        }
        if self.cancelled.poll_unpin(cx).is_ready()
            && let Some(reason) = self.cancel.reason()
        {
            // Dropping the plan's stream stops its tasks and remote streams.
            self.inner = None;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                reason.error(),
            )))));
        }
        next
    }
}

impl RecordBatchStream for CancellableStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

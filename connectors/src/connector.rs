//! What every connector answers: the [`Connector`] trait.
//!
//! Two questions make a table: *resolve* (check a new registration against the
//! source and produce its complete definition; may do I/O) and *open* (turn a
//! stored definition into a DataFusion `TableProvider`, without I/O). Three more
//! make its scans run on workers, so that neither the coordinator nor the worker
//! names a connector:
//!
//! - what a worker must prepare before it runs the table's scans (object
//!   stores; credentials only as the names of variables): [`WorkerNeed`]s,
//!   sent with every query and handed back to the same connector on the worker;
//! - how a shipped scan is rebuilt: remote connectors open the source a
//!   [`SourceDefinition`] names ([`Connector::remote_source`]); shipping,
//!   task counts and splits are the remote core's ([`crate::remote`]);
//!   files travel as DataFusion's own file scans;
//! - whether a table's scans can be shipped at all ([`Connector::ships`]):
//!   a table that cannot is read on the coordinator, and `EXPLAIN` says so.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::ScalarUDF;
use vivace_catalog::TableDefinition;

use crate::options::OptionSpec;
use crate::remote::{RemoteSource, SourceDefinition};
use crate::write::{TableWrite, WriteKind};
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult, SchemaRequest, TableRequest};

/// Which side of the cluster opens a source: it names the connections a
/// remote server sees (`vivace`, `vivace-worker`) and how long they live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// The coordinator: its tables hold their sources' connections.
    Coordinator,
    /// A worker, running shipped scans: connections are kept while in use.
    Worker,
}

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum At {
    /// The newest.
    #[default]
    Latest,
    /// `VERSION AS OF n`.
    Version(u64),
    /// `TIMESTAMP AS OF '…'`: the newest version made at or before it.
    Timestamp(DateTime<Utc>),
}

/// Something a worker must prepare before it runs a table's scans, described by
/// the table's connector (no secret inside: credentials are named, and each
/// worker reads them from its own environment).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerNeed {
    /// The connector that described it, and will prepare it on the worker.
    pub connector: String,
    /// What makes two needs the same (a bucket name): one of each is sent.
    pub key: String,
    /// The connector's own description.
    pub value: serde_json::Value,
}

/// One kind of source.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The `OPTIONS (...)` keys its tables take, declared once
    /// ([`crate::options`]).
    fn options(&self) -> &'static [OptionSpec];

    /// Functions only this connector's sources evaluate (full-text search),
    /// registered in every session; calling them elsewhere is an error.
    fn functions(&self) -> Vec<Arc<ScalarUDF>> {
        vec![]
    }

    /// Table functions only this connector's tables answer (a Delta table's
    /// history), by name, registered in every session.
    fn table_functions(&self) -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
        vec![]
    }

    /// `provider`, one of this connector's tables, as it was `at` a version or
    /// a point in time (`VERSION AS OF`, `TIMESTAMP AS OF`): `None` when
    /// `provider` is not one of this connector's tables, or they keep no
    /// versions.
    async fn travel(
        &self,
        _provider: Arc<dyn TableProvider>,
        _at: At,
    ) -> Option<ConnectorResult<Arc<dyn TableProvider>>> {
        None
    }

    /// Check a new registration against the source and resolve its full schema.
    /// Registers whatever the session needs to reach the source (object stores).
    async fn resolve(
        &self,
        request: TableRequest,
        state: &SessionState,
    ) -> ConnectorResult<TableDefinition>;

    /// Discover every table of a remote schema (`CREATE` / `REFRESH EXTERNAL
    /// SCHEMA`), each resolved as `resolve` would; the tables are named
    /// `request.name.<remote table>`.
    async fn resolve_schema(
        &self,
        request: SchemaRequest,
        _state: &SessionState,
    ) -> ConnectorResult<Vec<TableDefinition>> {
        Err(ConnectorError::new(
            ConnectorErrorKind::UnknownConnector,
            format!(
                "CREATE EXTERNAL SCHEMA is not supported for {} sources",
                request.connector.to_ascii_uppercase()
            ),
        ))
    }

    /// Build the table provider for a stored definition, without I/O. Registers
    /// object stores on `state`'s runtime when the location needs one.
    fn open(
        &self,
        def: &TableDefinition,
        state: &SessionState,
    ) -> ConnectorResult<Arc<dyn TableProvider>>;

    /// Begin a write into `def` (a new table for [`WriteKind::Create`]).
    /// Tables of connectors that take no writes are read-only.
    async fn begin_write(
        &self,
        def: &TableDefinition,
        _kind: WriteKind,
        _state: &SessionState,
    ) -> ConnectorResult<Box<dyn TableWrite>> {
        Err(ConnectorError::new(
            ConnectorErrorKind::Unsupported,
            format!(
                "{} tables are read-only",
                def.connector.to_ascii_uppercase()
            ),
        ))
    }

    /// Finish publishing (or discard) a write a stopped coordinator left in
    /// its journal, from what [`TableWrite::journal`] or
    /// [`TableWrite::commit`] recorded.
    async fn recover_write(&self, _journal: &str, _state: &SessionState) -> ConnectorResult<()> {
        Ok(())
    }

    /// What a worker must prepare to scan this table.
    fn worker_needs(&self, _def: &TableDefinition) -> ConnectorResult<Vec<WorkerNeed>> {
        Ok(vec![])
    }

    /// Prepare this worker's `runtime` for a need this connector described.
    fn prepare_worker(&self, _need: &WorkerNeed, _runtime: &RuntimeEnv) -> ConnectorResult<()> {
        Ok(())
    }

    /// Open the source a shipped scan names, on `side` (remote connectors).
    fn remote_source(
        &self,
        def: &SourceDefinition,
        _side: Side,
    ) -> ConnectorResult<Arc<dyn RemoteSource>> {
        Err(ConnectorError::new(
            ConnectorErrorKind::UnknownConnector,
            format!("{} sources are not read by requests", def.connector),
        ))
    }

    /// Whether the scans of `provider` can run on workers: `Some` when
    /// `provider` is one this connector opens, `None` otherwise.
    fn ships(&self, provider: &dyn TableProvider) -> Option<bool>;
}

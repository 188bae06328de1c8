//! The shared core of sources read by *requests*: a request is a finished
//! statement in the source's own language (SQL for PostgreSQL and Redshift;
//! a search body, CQL), planned on the coordinator, shipped as text and run
//! wherever its task runs.
//!
//! - [`RemoteSource`]: one source a connector has opened (a server, a cluster):
//!   it runs requests and describes itself by its stored definition.
//! - [`RemoteScanExec`]: requests on one source, one per output partition; a
//!   scan of several requests asks for one task per request and is cut into
//!   per-task scans ([`distribution`]).
//! - [`RemoteScanCodec`]: how a scan crosses to a worker: its recipe (source
//!   definition, requests, schema), rebuilt there by the connector of the same
//!   name over the worker's own connections.
//! - [`PoolCache`]: a connector's connections (or clients), keyed once.
//! - [`spawn_batches`]: a request's batches produced by a task that reads page
//!   after page (Cassandra, Elasticsearch); dropping the stream stops it.
//!
//! A connector for such a source implements [`RemoteSource`], plans its reads
//! as [`RemoteScanExec`]s and opens sources from definitions
//! ([`crate::Connector::remote_source`]); shipping, splitting and metrics come
//! from here.

mod codec;
pub mod distribution;
mod key;
mod pools;
mod producer;
pub mod pushdown;
mod scan;

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result as DFResult;
use datafusion::physical_plan::SendableRecordBatchStream;

pub use codec::{RemoteScanCodec, SourceOpener};
pub use key::SourceKey;
pub use pools::PoolCache;
pub use producer::{BatchSender, spawn_batches};
pub use pushdown::source_key;
pub use scan::RemoteScanExec;

use crate::source_metrics::SourceLabels;

/// A source as the catalog stores it: the connector's name, `LOCATION` and
/// `OPTIONS` (secrets only as the names of variables), all a worker needs to
/// open the same source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceDefinition {
    /// The connector's `STORED AS` name (`postgres`, `redshift`, ...).
    pub connector: String,
    /// The `LOCATION` as written.
    pub location: String,
    /// The `OPTIONS`, keys lower case.
    pub options: BTreeMap<String, String>,
}

/// One opened source that runs requests.
pub trait RemoteSource: std::fmt::Debug + Send + Sync {
    /// What the source was opened from.
    fn definition(&self) -> &SourceDefinition;

    /// Where requests run, shown in `EXPLAIN` (e.g. `postgres://user@host:5432/db`).
    fn compute_context(&self) -> String;

    /// How requests are labelled in `EXPLAIN` (`sql`, `query`, `cql`).
    fn request_label(&self) -> &'static str;

    /// The labels of this source's metrics: the source counts each request
    /// under them as it sends it, the scan the rows as they arrive.
    fn labels(&self) -> &SourceLabels;

    /// Start `request` and stream its rows as batches of `schema`. Dropping
    /// the stream stops the request on the source where it can.
    fn run(&self, request: &str, schema: SchemaRef) -> DFResult<SendableRecordBatchStream>;
}

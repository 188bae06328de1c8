//! Vivace connectors: one folder per kind of source, all with the same shape
//! (`options` → `schema` → `provider`, and for sources read by requests the
//! shared [`remote`] core), listed by name in [`ConnectorRegistry`] — the one
//! place outside its folder where a source is named. What every connector
//! answers is the [`Connector`] trait.

pub mod cassandra;
pub mod columns;
mod connector;
pub mod delta;
pub mod elasticsearch;
mod error;
pub mod files;
pub mod options;
pub mod postgres;
mod registry;
pub mod remote;
mod request;
pub mod source_metrics;
pub mod time_travel;
pub mod write;

pub use connector::{At, Connector, Side, WorkerNeed};
pub use error::{ConnectorError, ConnectorErrorKind, ConnectorResult};
pub use options::{OptionSpec, OptionValues};
pub use registry::{ConnectorRegistry, WORKER_NEEDS_HEADER};
pub use request::{SchemaRequest, TableRequest};

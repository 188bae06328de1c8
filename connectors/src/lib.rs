//! Vivace connectors: one module per kind of source, all with the same shape
//! (`options` → `schema` → `provider`), registered by name in [`ConnectorRegistry`].
//!
//! A connector answers two questions: *resolve* — given what an admin wrote in
//! `CREATE EXTERNAL TABLE`, check the source and produce a complete
//! [`TableDefinition`](vivace_catalog::TableDefinition) (this may do I/O); and
//! *open* — turn a stored definition into a DataFusion `TableProvider` without I/O.

mod error;
pub mod files;
pub mod postgres;
mod registry;
mod request;

pub use error::{ConnectorError, ConnectorErrorKind, ConnectorResult};
pub use registry::{Connector, ConnectorRegistry};
pub use request::{SchemaRequest, TableRequest};

/// Header that carries a query's object store descriptions (JSON list of
/// [`files::S3StoreSpec`]) from the coordinator to workers.
pub const OBJECT_STORES_HEADER: &str = "x-vivace-object-stores";

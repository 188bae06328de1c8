//! What an admin asked for in `CREATE EXTERNAL TABLE`, before the connector checked it.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;
use vivace_catalog::TableName;

/// A table registration request, already planned by DataFusion's SQL front end
/// (so column types are Arrow types) but not yet validated against the source.
#[derive(Debug, Clone)]
pub struct TableRequest {
    /// Qualified name to register.
    pub name: TableName,
    /// Connector name, lower-case (`parquet`, `csv`, ...).
    pub connector: String,
    /// Location URL or path as written.
    pub location: String,
    /// The declared column list, partition columns included; `None` to infer.
    pub declared_schema: Option<SchemaRef>,
    /// `PARTITIONED BY` columns in folder order.
    pub partition_columns: Vec<String>,
    /// `OPTIONS (...)` with lower-cased keys.
    pub options: BTreeMap<String, String>,
}

/// A `CREATE EXTERNAL SCHEMA name FROM connector LOCATION ... OPTIONS (...)` request:
/// every table of one remote schema, registered under a local schema name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRequest {
    /// Local schema name.
    pub name: String,
    /// Connector name, lower-case (`postgres`).
    pub connector: String,
    /// Location URL as written.
    pub location: String,
    /// `OPTIONS (...)` with lower-cased keys.
    pub options: BTreeMap<String, String>,
}

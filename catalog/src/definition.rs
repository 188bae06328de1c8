//! Typed definitions of what the catalog holds.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A schema-qualified table name, always stored lower-cased unless quoted by the user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    /// Schema (namespace) the table lives in, e.g. `public`.
    pub schema: String,
    /// Table name inside the schema.
    pub table: String,
}

impl TableName {
    /// Build a name from its schema and table parts.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// One column of an external table, with its Arrow type written as Arrow prints it
/// (e.g. `Int64`, `Utf8`, `Timestamp(Microsecond, None)`), so the catalog does not
/// depend on Arrow itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDefinition {
    /// Column name.
    pub name: String,
    /// Arrow data type in its `Display` form; parsed back with `DataType::from_str`.
    pub data_type: String,
    /// Whether the column may hold NULLs.
    pub nullable: bool,
    /// The source's own type of the column where its connector needs it to
    /// read or push down (an Elasticsearch field type: `keyword`, `text`,
    /// `date`); absent otherwise, and in catalogs written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
}

/// Everything needed to rebuild an external table without touching its source:
/// the resolved schema is stored, so start-up and catalog queries do no I/O.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDefinition {
    /// Qualified name.
    pub name: TableName,
    /// Connector that reads it (`parquet`, `csv`, `json`, `avro`, ...).
    pub connector: String,
    /// Where the data lives (`s3://bucket/prefix/`, `/abs/path/`, `file:///...`).
    pub location: String,
    /// The full resolved schema, partition columns included (last).
    pub columns: Vec<ColumnDefinition>,
    /// True when the admin wrote a column list; false when it was inferred.
    pub declared_columns: bool,
    /// Hive-style partition columns, in folder order.
    pub partition_columns: Vec<String>,
    /// Connector options as written (`OPTIONS (...)`). Never holds a secret value:
    /// secrets are referenced by environment variable name (`*_env` keys).
    pub options: BTreeMap<String, String>,
}

/// An external schema: every table of one remote schema, discovered once (at
/// CREATE or REFRESH) and cached here, so listing its tables needs no round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDefinition {
    /// Local schema name (`app` in `app.orders`).
    pub name: String,
    /// Connector that reads it (`postgres`).
    pub connector: String,
    /// Where the source lives, as written in `LOCATION`.
    pub location: String,
    /// Connector options as written; never a secret value (`*_env` keys name variables).
    pub options: BTreeMap<String, String>,
    /// The discovered tables, each complete enough to open without I/O.
    pub tables: Vec<TableDefinition>,
}

/// A view: a query stored by name, planned afresh on every use (so it reads
/// the tables of the moment, and filters on it reach their sources).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDefinition {
    /// Qualified name.
    pub name: TableName,
    /// The query, as Vivace prints it back (`SELECT ...`).
    pub query: String,
    /// Column names given after the view's name (`CREATE VIEW v (a, b) AS`);
    /// empty: the query's own names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// The columns it gave when last planned: what it still shows (and
    /// plans against) while a table it reads is missing.
    #[serde(default)]
    pub output: Vec<ColumnDefinition>,
}

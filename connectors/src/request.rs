//! What an admin asked for in `CREATE EXTERNAL TABLE`, before the connector checked it.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;
use vivace_catalog::{ColumnDefinition, TableDefinition, TableName};

use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

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

impl TableRequest {
    /// Refuse `PARTITIONED BY` for a source whose partitioning is its own.
    pub fn refuse_partitioning(&self) -> ConnectorResult<()> {
        if self.partition_columns.is_empty() {
            return Ok(());
        }
        Err(ConnectorError::new(
            ConnectorErrorKind::SchemaMismatch,
            format!(
                "PARTITIONED BY is not valid for {} tables",
                self.connector.to_ascii_uppercase()
            ),
        ))
    }

    /// The definition to store once the connector resolved `columns`.
    pub fn into_definition(self, columns: Vec<ColumnDefinition>) -> TableDefinition {
        TableDefinition {
            declared_columns: self.declared_schema.is_some(),
            name: self.name,
            connector: self.connector,
            location: self.location,
            columns,
            partition_columns: self.partition_columns,
            options: self.options,
        }
    }
}

impl SchemaRequest {
    /// The definition of remote table `remote` mounted as `<schema>.<remote>`:
    /// the schema's options with `option` set to `remote`.
    pub fn mounted(
        &self,
        remote: &str,
        option: &str,
        columns: Vec<ColumnDefinition>,
    ) -> TableDefinition {
        let mut options = self.options.clone();
        options.insert(option.to_string(), remote.to_string());
        TableDefinition {
            name: TableName::new(self.name.clone(), remote.to_string()),
            connector: self.connector.clone(),
            location: self.location.clone(),
            columns,
            declared_columns: false,
            partition_columns: vec![],
            options,
        }
    }
}

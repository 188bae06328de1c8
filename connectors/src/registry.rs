//! The table of connectors by name. Adding a source touches this table and one folder.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use vivace_catalog::TableDefinition;

use crate::files::{FileConnector, FileFormatKind, S3StoreSpec};
use crate::postgres::{Engine, PostgresConnector};
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult, SchemaRequest, TableRequest};

/// One kind of source.
#[async_trait]
pub trait Connector: Send + Sync {
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

    /// Object stores a worker must register to scan this table (no secrets inside).
    fn object_stores(&self, _def: &TableDefinition) -> ConnectorResult<Vec<S3StoreSpec>> {
        Ok(vec![])
    }
}

/// Connectors by `STORED AS` name.
pub struct ConnectorRegistry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl Default for ConnectorRegistry {
    fn default() -> Self {
        let mut connectors: BTreeMap<&'static str, Arc<dyn Connector>> = BTreeMap::new();
        for kind in FileFormatKind::ALL {
            connectors.insert(kind.name(), Arc::new(FileConnector::new(kind)));
        }
        connectors.insert(
            PostgresConnector::NAME,
            Arc::new(PostgresConnector::new(Engine::Postgres)),
        );
        connectors.insert(
            PostgresConnector::REDSHIFT,
            Arc::new(PostgresConnector::new(Engine::Redshift)),
        );
        Self { connectors }
    }
}

impl ConnectorRegistry {
    /// The connector for a `STORED AS` name (case-insensitive).
    pub fn get(&self, name: &str) -> ConnectorResult<Arc<dyn Connector>> {
        let key = name.to_ascii_lowercase();
        self.connectors.get(key.as_str()).cloned().ok_or_else(|| {
            ConnectorError::new(
                ConnectorErrorKind::UnknownConnector,
                format!(
                    "unknown STORED AS format \"{}\"; supported: {}",
                    name.to_ascii_uppercase(),
                    self.names().join(", ")
                ),
            )
        })
    }

    /// Names of every registered connector, upper-case as written in DDL.
    pub fn names(&self) -> Vec<String> {
        self.connectors
            .keys()
            .map(|k| k.to_ascii_uppercase())
            .collect()
    }
}

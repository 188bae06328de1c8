//! File tables: Parquet, CSV, newline-delimited JSON and Avro, on local disk or any
//! S3-compatible store, with Hive-style partition folders (`dt=2024-01-02/`).
//!
//! Built on DataFusion's `ListingTable`, which already prunes partitions and pushes
//! predicates into Parquet row groups; this module adds option parsing, validation
//! at CREATE time and a stored schema so start-up needs no I/O.

mod options;
mod provider;
pub(crate) mod schema;
mod store;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use vivace_catalog::TableDefinition;

pub use options::{FileFormatKind, FileOptions, S3Options};
pub use store::S3StoreSpec;

use crate::{Connector, ConnectorResult, TableRequest};

/// The connector for one file format.
pub struct FileConnector {
    kind: FileFormatKind,
}

impl FileConnector {
    /// A connector reading files of `kind`.
    pub fn new(kind: FileFormatKind) -> Self {
        Self { kind }
    }
}

#[async_trait]
impl Connector for FileConnector {
    async fn resolve(
        &self,
        request: TableRequest,
        state: &SessionState,
    ) -> ConnectorResult<TableDefinition> {
        let options = FileOptions::parse(self.kind, &request.location, &request.options)?;
        let table_url = store::register(&request.location, &options, state.runtime_env())?;
        let schema = schema::resolve(&request, &options, &table_url, state).await?;
        Ok(TableDefinition {
            name: request.name,
            connector: self.kind.name().to_string(),
            location: request.location,
            columns: schema::to_columns(&schema),
            declared_columns: request.declared_schema.is_some(),
            partition_columns: request.partition_columns,
            options: request.options,
        })
    }

    fn open(
        &self,
        def: &TableDefinition,
        state: &SessionState,
    ) -> ConnectorResult<Arc<dyn TableProvider>> {
        let options = FileOptions::parse(self.kind, &def.location, &def.options)?;
        let table_url = store::register(&def.location, &options, state.runtime_env())?;
        let schema = schema::from_columns(&def.columns)?;
        provider::listing_table(table_url, &options, schema, &def.partition_columns)
    }

    fn object_stores(&self, def: &TableDefinition) -> ConnectorResult<Vec<S3StoreSpec>> {
        let options = FileOptions::parse(self.kind, &def.location, &def.options)?;
        Ok(store::locate(&def.location, &options)?
            .1
            .into_iter()
            .collect())
    }
}

//! File tables: Parquet, CSV, newline-delimited JSON and Avro, on local disk or any
//! S3-compatible store, with Hive-style partition folders (`dt=2024-01-02/`).
//!
//! Built on DataFusion's `ListingTable`, which already prunes partitions and pushes
//! predicates into Parquet row groups; this module adds option parsing, validation
//! at CREATE time and a stored schema so start-up needs no I/O.

mod counted_store;
pub(crate) mod options;
mod provider;
pub(crate) mod schema;
pub(crate) mod store;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::ListingTable;
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use vivace_catalog::TableDefinition;

pub use options::{FileFormatKind, FileOptions, S3Options};
pub(crate) use provider::file_schema;
pub use store::S3StoreSpec;

use crate::options::OptionSpec;
use crate::write::{TableWrite, WriteKind};
use crate::{Connector, ConnectorError, ConnectorResult, TableRequest, WorkerNeed};

/// The connectors of this folder, one per format, by `STORED AS` name.
pub fn connectors() -> Vec<(&'static str, Arc<dyn Connector>)> {
    FileFormatKind::ALL
        .into_iter()
        .map(|kind| {
            (
                kind.name(),
                Arc::new(FileConnector::new(kind)) as Arc<dyn Connector>,
            )
        })
        .collect()
}

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
    fn options(&self) -> &'static [OptionSpec] {
        options::OPTIONS
    }

    async fn resolve(
        &self,
        request: TableRequest,
        state: &SessionState,
    ) -> ConnectorResult<TableDefinition> {
        let options = FileOptions::parse(self.kind, &request.location, &request.options)?;
        let table_url = store::register(&request.location, &options.s3, state.runtime_env())?;
        let schema = schema::resolve(&request, &options, &table_url, state).await?;
        if let Some(missing) = options
            .sorted_by
            .iter()
            .find(|c| schema.field_with_name(c).is_err())
        {
            return Err(ConnectorError::new(
                crate::ConnectorErrorKind::SchemaMismatch,
                format!("option 'sorted_by' names \"{missing}\", which is not a column"),
            ));
        }
        Ok(TableDefinition {
            name: request.name,
            connector: self.kind.name().to_string(),
            location: request.location,
            columns: crate::columns::to_columns(&schema),
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
        let table_url = store::register(&def.location, &options.s3, state.runtime_env())?;
        let schema = crate::columns::from_columns(&def.columns)?;
        provider::listing_table(table_url, &options, schema, &def.partition_columns)
    }

    async fn begin_write(
        &self,
        def: &TableDefinition,
        kind: WriteKind,
        state: &SessionState,
    ) -> ConnectorResult<Box<dyn TableWrite>> {
        Ok(Box::new(
            write::FileTableWrite::begin(def, kind, state).await?,
        ))
    }

    async fn recover_write(&self, journal: &str, state: &SessionState) -> ConnectorResult<()> {
        write::recover(journal, state).await
    }

    /// The table's bucket, if it is on S3: workers open it themselves, with
    /// credentials from their own environment.
    fn worker_needs(&self, def: &TableDefinition) -> ConnectorResult<Vec<WorkerNeed>> {
        let options = FileOptions::parse(self.kind, &def.location, &def.options)?;
        store::bucket_needs(self.kind.name(), &def.location, &options.s3)
    }

    fn prepare_worker(&self, need: &WorkerNeed, runtime: &RuntimeEnv) -> ConnectorResult<()> {
        store::prepare_bucket(need, runtime)
    }

    /// File scans are DataFusion's own, which datafusion-distributed ships.
    fn ships(&self, provider: &dyn TableProvider) -> Option<bool> {
        (provider as &dyn std::any::Any)
            .is::<ListingTable>()
            .then_some(true)
    }
}

//! Delta Lake tables (`STORED AS DELTA`), on local disk or S3: the version's
//! columns and files from the transaction log (deltalake's kernel), scanned
//! as DataFusion Parquet scans that ship to workers; time travel
//! (`VERSION AS OF`, `TIMESTAMP AS OF`) and `delta_history('table')`.

mod compact;
mod functions;
mod log;
mod options;
mod provider;
mod scan;
mod stats;
mod write;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use vivace_catalog::TableDefinition;

pub use options::{DeltaOptions, OPTIONS};
pub use provider::DeltaTableProvider;
pub use scan::{DeltaScanCodec, DeltaScanExec, DeltaScanInfo};

use crate::options::OptionSpec;
use crate::write::{TableWrite, WriteKind};
use crate::{
    At, Connector, ConnectorError, ConnectorErrorKind, ConnectorResult, TableRequest, WorkerNeed,
};

/// The `STORED AS` name.
pub const NAME: &str = "delta";

/// The connectors of this folder.
pub fn connectors() -> Vec<(&'static str, Arc<dyn Connector>)> {
    vec![(NAME, Arc::new(DeltaConnector))]
}

/// The Delta Lake connector.
pub struct DeltaConnector;

#[async_trait]
impl Connector for DeltaConnector {
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn table_functions(&self) -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
        vec![(
            functions::DELTA_HISTORY,
            Arc::new(functions::DeltaHistoryFunction),
        )]
    }

    async fn travel(
        &self,
        provider: Arc<dyn TableProvider>,
        at: At,
    ) -> Option<ConnectorResult<Arc<dyn TableProvider>>> {
        let delta = provider.downcast_ref::<DeltaTableProvider>()?;
        Some(
            delta
                .at(at)
                .await
                .map(|p| Arc::new(p) as Arc<dyn TableProvider>),
        )
    }

    /// The table's columns and partitioning come from the latest version of
    /// its log; nothing is stored when the location is not a readable table.
    async fn resolve(
        &self,
        request: TableRequest,
        state: &SessionState,
    ) -> ConnectorResult<TableDefinition> {
        let options = DeltaOptions::parse(&request.location, &request.options)?;
        let location =
            log::DeltaLocation::open(&request.location, &options.s3, state.runtime_env())?;
        let table = location.load(At::Latest).await?;
        let place = location.url.as_str();
        let snapshot = table.snapshot().map_err(|e| log::delta_error(place, e))?;
        let schema = log::arrow_schema(place, snapshot)?;
        let partition_columns = snapshot.metadata().partition_columns().to_vec();
        // A column list (as SHOW CREATE TABLE prints one) must name the log's
        // columns in order; their types are the log's.
        if let Some(declared) = &request.declared_schema {
            let names = |s: &datafusion::arrow::datatypes::Schema| -> Vec<String> {
                s.fields().iter().map(|f| f.name().clone()).collect()
            };
            if names(declared) != names(&schema) {
                return Err(ConnectorError::new(
                    ConnectorErrorKind::SchemaMismatch,
                    format!(
                        "the Delta table at '{place}' has the columns ({}); leave out the column list or name those",
                        names(&schema).join(", ")
                    ),
                ));
            }
        }
        if !request.partition_columns.is_empty() && request.partition_columns != partition_columns {
            return Err(ConnectorError::new(
                ConnectorErrorKind::SchemaMismatch,
                format!(
                    "the Delta table at '{place}' is partitioned by ({}), not ({})",
                    partition_columns.join(", "),
                    request.partition_columns.join(", ")
                ),
            ));
        }
        Ok(TableDefinition {
            name: request.name,
            connector: NAME.to_string(),
            location: request.location,
            columns: crate::columns::to_columns(&schema),
            declared_columns: false,
            partition_columns,
            options: request.options,
        })
    }

    fn open(
        &self,
        def: &TableDefinition,
        state: &SessionState,
    ) -> ConnectorResult<Arc<dyn TableProvider>> {
        let options = DeltaOptions::parse(&def.location, &def.options)?;
        let location = log::DeltaLocation::open(&def.location, &options.s3, state.runtime_env())?;
        let schema = crate::columns::from_columns(&def.columns)?;
        Ok(Arc::new(DeltaTableProvider::new(
            def.name.to_string(),
            location,
            schema,
            def.partition_columns.clone(),
        )))
    }

    async fn begin_write(
        &self,
        def: &TableDefinition,
        kind: WriteKind,
        state: &SessionState,
    ) -> ConnectorResult<Box<dyn TableWrite>> {
        let options = DeltaOptions::parse(&def.location, &def.options)?;
        let location = log::DeltaLocation::open(&def.location, &options.s3, state.runtime_env())?;
        Ok(Box::new(
            write::DeltaTableWrite::begin(def, kind, location, state).await?,
        ))
    }

    /// A write commits inside [`TableWrite::commit`]; what a stopped
    /// coordinator left is discarded (or, committed, tidied) as for files.
    async fn recover_write(&self, journal: &str, state: &SessionState) -> ConnectorResult<()> {
        crate::files::write::recover(journal, state).await
    }

    /// The table's bucket, if it is on S3, as for file tables.
    fn worker_needs(&self, def: &TableDefinition) -> ConnectorResult<Vec<WorkerNeed>> {
        let options = DeltaOptions::parse(&def.location, &def.options)?;
        crate::files::store::bucket_needs(NAME, &def.location, &options.s3)
    }

    fn prepare_worker(&self, need: &WorkerNeed, runtime: &RuntimeEnv) -> ConnectorResult<()> {
        crate::files::store::prepare_bucket(need, runtime)
    }

    /// Delta scans are DataFusion Parquet scans under a node with a codec.
    fn ships(&self, provider: &dyn TableProvider) -> Option<bool> {
        (provider as &dyn std::any::Any)
            .is::<DeltaTableProvider>()
            .then_some(true)
    }
}

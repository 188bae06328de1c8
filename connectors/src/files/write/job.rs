//! [`FileTableWrite`]: one write into a file table, as the engine drives it.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use object_store::ObjectStore;
use vivace_catalog::TableDefinition;

use super::publish::{self, Publication, WriteJournal};
use super::{WriteSpec, WriteTable, write_failed, written_files};
use crate::ConnectorResult;
use crate::write::{Commit, Replace, TableWrite, WriteKind};

/// One write into a file table: staged by [`super::FileWriteExec`],
/// published by moving the files in.
pub struct FileTableWrite {
    spec: WriteSpec,
    kind: WriteKind,
    store: Arc<dyn ObjectStore>,
    publication: Option<Publication>,
}

impl FileTableWrite {
    /// Begin a write into `def`; a new table's location must hold no file.
    pub async fn begin(
        def: &TableDefinition,
        kind: WriteKind,
        state: &SessionState,
    ) -> ConnectorResult<Self> {
        if let WriteKind::Compact(_) = kind {
            return Err(crate::ConnectorError::new(
                crate::ConnectorErrorKind::Unsupported,
                format!(
                    "OPTIMIZE compacts Delta tables; \"{}\" is a {} table",
                    def.name,
                    def.connector.to_ascii_uppercase()
                ),
            ));
        }
        let spec = WriteSpec::new(def)?;
        let store = publish::store(&spec, state.runtime_env())?;
        if kind == WriteKind::Create {
            publish::check_empty(&spec, store.as_ref()).await?;
        }
        Ok(Self {
            spec,
            kind,
            store,
            publication: None,
        })
    }

    fn journal_text(&self) -> ConnectorResult<String> {
        serde_json::to_string(&WriteJournal {
            spec: self.spec.clone(),
            new_table: self.kind == WriteKind::Create,
            publication: self.publication.clone(),
        })
        .map_err(write_failed)
    }
}

#[async_trait]
impl TableWrite for FileTableWrite {
    fn id(&self) -> &str {
        &self.spec.write_id
    }

    fn journal(&self) -> ConnectorResult<String> {
        self.journal_text()
    }

    fn target(&self) -> ConnectorResult<Arc<dyn TableProvider>> {
        Ok(Arc::new(WriteTable::new(self.spec.clone())?))
    }

    async fn commit(&mut self, output: &[RecordBatch]) -> ConnectorResult<Commit> {
        let files: Vec<_> = output.iter().flat_map(written_files).collect();
        let store = self.store.as_ref();
        let replaced = match &self.kind {
            WriteKind::Create | WriteKind::Insert(Replace::Nothing) | WriteKind::Compact(_) => {
                vec![]
            }
            WriteKind::Insert(Replace::All) => publish::data_files(&self.spec, store, None).await?,
            WriteKind::Insert(Replace::Partition(values)) => {
                let folder =
                    super::partition_folder(values.iter().map(|(c, v)| (c.as_str(), v.as_str())));
                publish::data_files(&self.spec, store, Some(&[folder])).await?
            }
            WriteKind::Insert(Replace::WrittenPartitions) => {
                let folders: Vec<String> = files
                    .iter()
                    .map(|f| f.partition.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                publish::data_files(&self.spec, store, Some(&folders)).await?
            }
        };
        self.publication = Some(publish::publication(&files, replaced));
        Ok(Commit {
            journal: self.journal_text()?,
            rows: files.iter().map(|f| f.rows).sum(),
        })
    }

    async fn publish(&self) -> ConnectorResult<()> {
        match &self.publication {
            Some(publication) => {
                publish::publish(&self.spec, self.store.as_ref(), publication).await
            }
            None => Err(write_failed("a write was published before it committed")),
        }
    }

    async fn abort(&self) -> ConnectorResult<()> {
        publish::discard(
            &self.spec,
            self.store.as_ref(),
            self.kind == WriteKind::Create,
        )
        .await
    }
}

/// Finish or discard a journaled write.
pub async fn recover(journal: &str, state: &SessionState) -> ConnectorResult<()> {
    let journal: WriteJournal = serde_json::from_str(journal)
        .map_err(|e| write_failed(format!("unreadable write journal: {e}")))?;
    let store = publish::store(&journal.spec, state.runtime_env())?;
    match &journal.publication {
        Some(publication) => publish::publish(&journal.spec, store.as_ref(), publication).await,
        None => publish::discard(&journal.spec, store.as_ref(), journal.new_table).await,
    }
}

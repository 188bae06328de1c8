//! Writes into Delta tables — `INSERT INTO`, `INSERT OVERWRITE [PARTITION]`,
//! `CREATE TABLE … STORED AS DELTA AS` — as one Delta commit each.
//!
//! The files are written as for a Parquet table ([`FileWriteExec`]: one writer
//! per partition, rolled at `target_file_size`, on workers), staged, then
//! moved under the table's partition folders, where no reader sees them until
//! the log names them. The commit — `add` actions for the new files, `remove`
//! actions for what an overwrite replaces, and for a new table its protocol
//! and metadata — is written by deltalake's transaction builder as the next
//! `_delta_log/` entry, which the store creates only if absent: of two
//! writers, the second either follows the first (appends commute) or fails
//! with 40001. A write that fails before its commit leaves only files the
//! log never names (deleted here; `VACUUM` removes any a crash left).
//!
//! [`FileWriteExec`]: crate::files::write::FileWriteExec

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionState;
use deltalake_core::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake_core::kernel::transaction::{CommitBuilder, TransactionError};
use deltalake_core::kernel::{Action, Add, Protocol, StructType, new_metadata};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError};
use object_store::{ObjectStore, ObjectStoreExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use vivace_catalog::TableDefinition;

use super::log::{DeltaLocation, delta_error};
use super::provider::DeltaTableProvider;
use crate::files::write::publish::{self, Publication, WriteJournal};
use crate::files::write::{
    WriteSpec, WriteTable, WrittenFile, partition_folder, write_failed, written_files,
};
use crate::write::{Commit, Replace, TableWrite, WriteKind};
use crate::{At, ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Characters a Delta log path keeps as they are; the rest are `%XX`.
const PATH_KEEPS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/')
    .remove(b'=');

/// One write into a Delta table.
pub struct DeltaTableWrite {
    spec: WriteSpec,
    kind: WriteKind,
    location: DeltaLocation,
    /// The version the write read (`None` for a new table).
    table: Option<DeltaTable>,
    /// A compaction: the files it rewrites, and a scan of them.
    compaction: Option<(HashSet<String>, Arc<DeltaTableProvider>)>,
    committed: Option<u64>,
}

impl DeltaTableWrite {
    /// Begin a write into `def`; a new table's location must hold no file,
    /// an existing one is read at its latest version.
    pub async fn begin(
        def: &TableDefinition,
        kind: WriteKind,
        location: DeltaLocation,
        state: &SessionState,
    ) -> ConnectorResult<Self> {
        // The files are Parquet files of the table's columns, written with
        // its options (a Delta table's keys are all Parquet's).
        let spec = WriteSpec::new(&TableDefinition {
            connector: crate::files::FileFormatKind::Parquet.name().to_string(),
            ..def.clone()
        })?;
        let table = match kind {
            WriteKind::Create => {
                // Columns Delta cannot hold are refused before any file is written.
                kernel_schema(spec.schema()?.as_ref())?;
                publish::check_empty(&spec, location.store.as_ref()).await?;
                None
            }
            WriteKind::Insert(_) | WriteKind::Compact(_) => Some(location.load(At::Latest).await?),
        };
        let compaction = match (&kind, &table) {
            (WriteKind::Compact(predicate), Some(table)) => Some(compaction(
                def,
                &spec,
                &location,
                table,
                predicate.as_deref(),
                state,
            )?),
            _ => None,
        };
        Ok(Self {
            spec,
            kind,
            location,
            table,
            compaction,
            committed: None,
        })
    }

    fn store(&self) -> &dyn ObjectStore {
        self.location.store.as_ref()
    }

    /// The actions of the commit: new files, and the files it replaces.
    fn actions(&self, files: &[WrittenFile]) -> ConnectorResult<Vec<Action>> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions = Vec::new();
        if self.kind == WriteKind::Create {
            actions.push(Action::Protocol(new_protocol()?));
            let schema = self.spec.schema()?;
            actions.push(Action::Metadata(
                new_metadata(
                    &kernel_schema(&schema)?,
                    &self.spec.partition_columns,
                    std::iter::empty::<(String, String)>(),
                )
                .map_err(|e| delta_error(self.location.url.as_str(), e.into()))?,
            ));
        }
        let data_change = self.compaction.is_none();
        for file in files {
            actions.push(Action::Add(Add {
                path: utf8_percent_encode(&decoded(&file.relative), PATH_KEEPS).to_string(),
                partition_values: partition_values(&file.partition)
                    .into_iter()
                    .map(|(c, v)| (c, Some(v)))
                    .collect(),
                size: i64::try_from(file.bytes).unwrap_or(i64::MAX),
                modification_time: now,
                data_change,
                stats: Some(
                    file.stats.clone().unwrap_or_else(|| {
                        serde_json::json!({ "numRecords": file.rows }).to_string()
                    }),
                ),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
                clustering_provider: None,
            }));
        }
        if let Some(table) = &self.table {
            let place = self.location.url.as_str();
            let state = table.snapshot().map_err(|e| delta_error(place, e))?;
            let replaced = Replaced::of(&self.kind, files);
            for file in state.log_data().iter() {
                let folder = folder_of(&self.spec.partition_columns, &file.partition_values_map());
                if let Some((rewritten, _)) = &self.compaction {
                    if rewritten.contains(&*file.path()) {
                        actions.push(Action::Remove(file.remove_action(false)));
                    }
                } else if replaced.matches(&folder) {
                    actions.push(Action::Remove(file.remove_action(true)));
                }
            }
        }
        Ok(actions)
    }

    /// The operation the commit records.
    fn operation(&self) -> DeltaOperation {
        let partition_by =
            (!self.spec.partition_columns.is_empty()).then(|| self.spec.partition_columns.clone());
        let (mode, predicate) = match &self.kind {
            WriteKind::Compact(predicate) => {
                return DeltaOperation::Optimize {
                    predicate: predicate.clone(),
                    target_size: self
                        .spec
                        .file_options()
                        .map_or(0, |o| i64::try_from(o.target_file_size).unwrap_or(i64::MAX)),
                };
            }
            WriteKind::Create => (SaveMode::ErrorIfExists, None),
            WriteKind::Insert(Replace::Nothing) => (SaveMode::Append, None),
            WriteKind::Insert(Replace::All) => (SaveMode::Overwrite, None),
            WriteKind::Insert(Replace::Partition(values)) => (
                SaveMode::Overwrite,
                Some(
                    values
                        .iter()
                        .map(|(c, v)| format!("{c} = '{}'", v.replace('\'', "''")))
                        .collect::<Vec<_>>()
                        .join(" AND "),
                ),
            ),
            WriteKind::Insert(Replace::WrittenPartitions) => (
                SaveMode::Overwrite,
                Some("the partitions written".to_string()),
            ),
        };
        DeltaOperation::Write {
            mode,
            partition_by,
            predicate,
        }
    }

    /// Delete files this write moved into the table (it did not commit).
    async fn forget(&self, files: &[WrittenFile]) {
        let root = self.location.root().clone();
        for file in files {
            let path = crate::files::write::join(&root, &file.relative);
            let _ = self.store().delete(&path).await;
        }
    }

    /// The journal entry: before the commit, enough to discard the write;
    /// after it, an empty publication (recovery then only tidies staging).
    fn journal_text(&self) -> ConnectorResult<String> {
        serde_json::to_string(&WriteJournal {
            spec: self.spec.clone(),
            new_table: self.kind == WriteKind::Create,
            publication: self.committed.map(|_| Publication {
                files: vec![],
                replaced: vec![],
            }),
        })
        .map_err(write_failed)
    }
}

/// What a compaction of `table` rewrites: its files, and a scan of them. The
/// table's columns must be those it was registered with.
fn compaction(
    def: &TableDefinition,
    spec: &WriteSpec,
    location: &DeltaLocation,
    table: &DeltaTable,
    predicate: Option<&str>,
    session: &SessionState,
) -> ConnectorResult<(HashSet<String>, Arc<DeltaTableProvider>)> {
    let place = location.url.as_str();
    let state = table.snapshot().map_err(|e| delta_error(place, e))?;
    let schema = crate::columns::from_columns(&def.columns)?;
    let current = super::log::arrow_schema(place, state)?;
    if current.fields().len() != schema.fields().len()
        || current
            .fields()
            .iter()
            .zip(schema.fields())
            .any(|(a, b)| a.name() != b.name())
    {
        return Err(ConnectorError::new(
            ConnectorErrorKind::SchemaMismatch,
            format!(
                "the columns of the Delta table at '{place}' changed since \"{}\" was registered; drop and register it again before OPTIMIZE",
                def.name
            ),
        ));
    }
    let target = spec.file_options()?.target_file_size;
    let files = super::compact::files_to_compact(
        state,
        &schema,
        &def.partition_columns,
        predicate,
        target,
        session,
    )?;
    let scan = DeltaTableProvider::new(
        def.name.to_string(),
        location.clone(),
        schema,
        def.partition_columns.clone(),
    )
    .files_of(table.clone(), files.clone());
    Ok((files, Arc::new(scan)))
}

/// Which of the table's files an overwrite replaces, by partition folder.
enum Replaced {
    Nothing,
    All,
    /// Folders starting with this (`INSERT OVERWRITE … PARTITION (a = 1)`).
    Prefix(String),
    /// The folders written (`PARTITION (a)` with no value).
    Folders(BTreeSet<String>),
}

impl Replaced {
    fn of(kind: &WriteKind, files: &[WrittenFile]) -> Self {
        match kind {
            WriteKind::Create | WriteKind::Insert(Replace::Nothing) | WriteKind::Compact(_) => {
                Self::Nothing
            }
            WriteKind::Insert(Replace::All) => Self::All,
            WriteKind::Insert(Replace::Partition(values)) => Self::Prefix(partition_folder(
                values.iter().map(|(c, v)| (c.as_str(), v.as_str())),
            )),
            WriteKind::Insert(Replace::WrittenPartitions) => {
                Self::Folders(files.iter().map(|f| f.partition.clone()).collect())
            }
        }
    }

    fn matches(&self, folder: &str) -> bool {
        match self {
            Self::Nothing => false,
            Self::All => true,
            Self::Prefix(prefix) => folder.starts_with(prefix.as_str()),
            Self::Folders(folders) => folders.contains(folder),
        }
    }
}

/// Hive's folder name for a NULL partition value.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The partition folder a file of the log belongs in, named as the writer
/// names folders.
fn folder_of(columns: &[String], values: &HashMap<String, Option<String>>) -> String {
    partition_folder(columns.iter().map(|c| {
        let value = values.get(c).and_then(|v| v.as_deref());
        (c.as_str(), value.unwrap_or(NULL_PARTITION))
    }))
}

/// `a=1/b=x%2Fy/` as its columns and values.
fn partition_values(folder: &str) -> Vec<(String, String)> {
    folder
        .split('/')
        .filter(|s| !s.is_empty())
        .filter_map(|segment| {
            let segment = decoded(segment);
            let (column, value) = segment.split_once('=')?;
            Some((column.to_string(), value.to_string()))
        })
        .collect()
}

/// An object-store path (segments `%XX`-encoded) as the text it stands for.
fn decoded(path: &str) -> String {
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

/// The protocol of a new table: readers and writers of version 1 and 2,
/// which every Delta reader reads.
fn new_protocol() -> ConnectorResult<Protocol> {
    serde_json::from_value(serde_json::json!({ "minReaderVersion": 1, "minWriterVersion": 2 }))
        .map_err(write_failed)
}

/// The table's columns as Delta's schema.
fn kernel_schema(schema: &Schema) -> ConnectorResult<StructType> {
    StructType::try_from_arrow(schema).map_err(|e| {
        ConnectorError::new(
            ConnectorErrorKind::UnsupportedType,
            format!("a column's type has no Delta equivalent: {e}"),
        )
    })
}

/// A failed commit as the user should see it: a concurrent writer that got
/// in first is a serialization failure (40001), to retry.
fn commit_error(place: &str, e: DeltaTableError) -> ConnectorError {
    match &e {
        DeltaTableError::VersionAlreadyExists(_)
        | DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_),
        } => ConnectorError::new(
            ConnectorErrorKind::Conflict,
            format!(
                "could not commit to the Delta table at '{place}': a concurrent write committed first ({e}); retry the statement"
            ),
        ),
        _ => delta_error(place, e),
    }
}

#[async_trait]
impl TableWrite for DeltaTableWrite {
    fn id(&self) -> &str {
        &self.spec.write_id
    }

    fn journal(&self) -> ConnectorResult<String> {
        self.journal_text()
    }

    fn target(&self) -> ConnectorResult<Arc<dyn TableProvider>> {
        Ok(Arc::new(WriteTable::new(self.spec.clone())?))
    }

    /// A compaction's files, when it has any to rewrite.
    fn source(&self) -> Option<Arc<dyn TableProvider>> {
        self.compaction
            .as_ref()
            .filter(|(files, _)| !files.is_empty())
            .map(|(_, scan)| Arc::clone(scan) as Arc<dyn TableProvider>)
    }

    /// Move the files under the table, then commit them to its log.
    async fn commit(&mut self, output: &[RecordBatch]) -> ConnectorResult<Commit> {
        let files: Vec<WrittenFile> = output.iter().flat_map(written_files).collect();
        let publication = Publication {
            files: files.iter().map(|f| f.relative.clone()).collect(),
            replaced: vec![],
        };
        publish::publish(&self.spec, self.store(), &publication).await?;
        let place = self.location.url.as_str().to_string();
        let actions = match self.actions(&files) {
            Ok(actions) => actions,
            Err(e) => {
                self.forget(&files).await;
                return Err(e);
            }
        };
        let log_store = self.location.log_store()?;
        let snapshot = match &self.table {
            Some(table) => Some(table.snapshot().map_err(|e| delta_error(&place, e))?),
            None => None,
        };
        let committed = CommitBuilder::default()
            .with_actions(actions)
            .build(
                snapshot.map(|s| s as &dyn deltalake_core::kernel::transaction::TableReference),
                log_store,
                self.operation(),
            )
            .await;
        match committed {
            Ok(done) => self.committed = Some(done.version()),
            Err(e) => {
                self.forget(&files).await;
                return Err(commit_error(&place, e));
            }
        }
        Ok(Commit {
            journal: self.journal_text()?,
            rows: files.iter().map(|f| f.rows).sum(),
        })
    }

    /// The commit made the write visible.
    async fn publish(&self) -> ConnectorResult<()> {
        Ok(())
    }

    async fn abort(&self) -> ConnectorResult<()> {
        publish::discard(&self.spec, self.store(), self.kind == WriteKind::Create).await
    }
}

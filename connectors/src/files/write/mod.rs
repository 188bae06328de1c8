//! Writes into file tables: `CREATE TABLE … AS`, `INSERT INTO` and
//! `INSERT OVERWRITE`.
//!
//! A write has two halves. [`FileWriteExec`] is a plan node (shipped to
//! workers like any other) that writes its input into a *staging* folder
//! inside the table, `_vivace_staging/<write id>/`, which readers never list:
//! one writer per Hive partition per task (its input is hash-partitioned on
//! the partition columns, so every partition value reaches exactly one
//! writer), files rolled at the target size, each optionally sorted. It
//! answers with the files it wrote. The coordinator then *publishes*
//! ([`publish`]): it records the moves in its catalog's journal (the commit
//! point), moves the files into place and deletes what an overwrite replaces.
//! A write that fails before the commit point leaves only staging files,
//! which are deleted; one interrupted after it is finished from the journal
//! when the coordinator starts.

mod codec;
mod exec;
mod hive;
mod job;
pub mod publish;
mod sink;
mod stats;

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::listing::ListingTableUrl;
use object_store::path::{Path, PathPart};
use serde::{Deserialize, Serialize};
use vivace_catalog::{ColumnDefinition, TableDefinition};

pub use codec::FileWriteCodec;
pub use exec::{FileWriteExec, WriteTable, written_files, written_files_schema};
pub use hive::partition_folder;
pub use job::{FileTableWrite, recover};
pub use publish::{Publication, WriteJournal};

use super::{FileFormatKind, FileOptions};
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// The folder inside a table that holds unpublished files.
pub const STAGING_FOLDER: &str = "_vivace_staging";

/// Everything a writer needs, on the coordinator or a worker: no secret
/// (credentials are named by variable, as for reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteSpec {
    /// Unique per statement; names the staging folder and every file.
    pub write_id: String,
    /// The table's format (`parquet`, `csv`, `json`).
    pub connector: String,
    /// The table's `LOCATION`.
    pub location: String,
    /// The table's `OPTIONS`.
    pub options: BTreeMap<String, String>,
    /// The table's columns, partition columns last.
    pub columns: Vec<ColumnDefinition>,
    /// Hive partition columns, in folder order.
    pub partition_columns: Vec<String>,
}

impl WriteSpec {
    /// A new write into the table `def` describes.
    pub fn new(def: &TableDefinition) -> ConnectorResult<Self> {
        let spec = Self {
            write_id: new_write_id(),
            connector: def.connector.clone(),
            location: def.location.clone(),
            options: def.options.clone(),
            columns: def.columns.clone(),
            partition_columns: def.partition_columns.clone(),
        };
        spec.file_options()?.check_writable()?;
        Ok(spec)
    }

    /// The table's format.
    pub fn kind(&self) -> ConnectorResult<FileFormatKind> {
        FileFormatKind::ALL
            .into_iter()
            .find(|k| k.name() == self.connector)
            .ok_or_else(|| {
                ConnectorError::new(
                    ConnectorErrorKind::Unsupported,
                    format!("{} tables cannot be written", self.connector),
                )
            })
    }

    /// The table's parsed options.
    pub fn file_options(&self) -> ConnectorResult<FileOptions> {
        FileOptions::parse(self.kind()?, &self.location, &self.options)
    }

    /// The table's full schema (partition columns last).
    pub fn schema(&self) -> ConnectorResult<SchemaRef> {
        crate::columns::from_columns(&self.columns)
    }

    /// The table's folder as a listing URL.
    pub fn table_url(&self) -> ConnectorResult<ListingTableUrl> {
        Ok(super::store::locate(&self.location, &self.file_options()?.s3)?.0)
    }

    /// The staging folder of this write.
    pub fn staging(&self) -> ConnectorResult<Path> {
        Ok(self
            .table_url()?
            .prefix()
            .clone()
            .join(STAGING_FOLDER)
            .join(self.write_id.as_str()))
    }
}

impl FileOptions {
    /// Refuse options a write cannot honour.
    fn check_writable(&self) -> ConnectorResult<()> {
        if self.kind == FileFormatKind::Avro {
            return Err(ConnectorError::new(
                ConnectorErrorKind::Unsupported,
                "AVRO tables cannot be written; write PARQUET, CSV or JSON",
            ));
        }
        if self.compression
            != datafusion::datasource::file_format::file_compression_type::FileCompressionType::UNCOMPRESSED
        {
            return Err(ConnectorError::new(
                ConnectorErrorKind::Unsupported,
                "compressed CSV and JSON tables cannot be written; write them uncompressed or as PARQUET",
            ));
        }
        Ok(())
    }
}

/// One file a writer left in staging, as its node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// Path below the staging folder (and, once published, below the table):
    /// the partition folders and the file name.
    pub relative: String,
    /// The partition folders alone (`dt=2024-03-05/`), empty when unpartitioned.
    pub partition: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Column statistics of a Parquet file (JSON in the Delta log's `stats`
    /// shape); `None` for other formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

/// `relative` (`a=1/b=x%2Fy/file`, segments already encoded as
/// [`hive::partition_folder`] writes them) below `base`.
pub(crate) fn join(base: &Path, relative: &str) -> Path {
    relative
        .split('/')
        .filter(|part| !part.is_empty())
        .fold(base.clone(), |path, part| {
            // Not an encoded segment (never one of ours): encode it.
            path.join(PathPart::parse(part).unwrap_or_else(|_| PathPart::from(part)))
        })
}

/// A fresh write id: time-ordered, unique across coordinators.
fn new_write_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}-{}",
        now.as_millis(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A write failure, as its SQLSTATE wants it.
pub(crate) fn write_failed(what: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(ConnectorErrorKind::WriteFailed, what.to_string())
}

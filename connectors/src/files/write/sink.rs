//! The writers of one task: one open file per partition it receives, each
//! rolled over to a new file past the target size.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::error::Result as DFResult;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use super::{WrittenFile, hive, write_failed};
use crate::files::{FileFormatKind, FileOptions};
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// How one task's writers are set up.
pub(super) struct SinkSettings {
    /// Where the task's files go (the write's staging folder).
    pub staging: Path,
    /// Names every file of this task: `part-<tag>-<n>.<ext>`.
    pub tag: String,
    /// Format and its options (CSV header and delimiter).
    pub options: FileOptions,
    /// The input's schema: file columns, then partition columns.
    pub input_schema: SchemaRef,
    /// How many trailing input columns are partition columns.
    pub partition_count: usize,
    /// The input arrives sorted by partition: a new partition closes the last.
    pub sorted: bool,
}

/// The files one task writes.
///
/// Buffered row groups count against the query's memory pool (so
/// `memory_limit` bounds them): when the pool refuses more, the largest
/// buffered row group is written out early — a smaller row group in the same
/// file, never an extra file.
pub(super) struct TaskSink {
    store: Arc<dyn ObjectStore>,
    reservation: MemoryReservation,
    settings: SinkSettings,
    file_schema: SchemaRef,
    /// The input columns a file holds (all but the partition columns).
    file_columns: Vec<usize>,
    partition_names: Vec<String>,
    converter: Option<RowConverter>,
    open: HashMap<String, OpenFile>,
    last_partition: Option<String>,
    next_file: usize,
    written: Vec<WrittenFile>,
}

impl TaskSink {
    /// Writers into `store` as `settings` say.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        reservation: MemoryReservation,
        settings: SinkSettings,
    ) -> ConnectorResult<Self> {
        let fields = settings.input_schema.fields();
        let split = fields.len() - settings.partition_count;
        let file_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            fields[..split].to_vec(),
        ));
        let partition_names = fields[split..].iter().map(|f| f.name().clone()).collect();
        let converter = (settings.partition_count > 0)
            .then(|| {
                RowConverter::new(
                    fields[split..]
                        .iter()
                        .map(|f| SortField::new(f.data_type().clone()))
                        .collect(),
                )
            })
            .transpose()
            .map_err(write_failed)?;
        Ok(Self {
            store,
            reservation,
            settings,
            file_schema,
            file_columns: (0..split).collect(),
            partition_names,
            converter,
            open: HashMap::new(),
            last_partition: None,
            next_file: 0,
            written: vec![],
        })
    }

    /// Write one input batch.
    pub async fn write(&mut self, batch: &RecordBatch) -> DFResult<()> {
        self.write_rows(batch).await?;
        self.bound_memory().await
    }

    /// Hold a reservation for the buffered row groups, writing the largest
    /// out while the pool refuses it.
    async fn bound_memory(&mut self) -> DFResult<()> {
        loop {
            let held: usize = self.open.values().map(OpenFile::memory).sum();
            let refused = match self.reservation.try_resize(held) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match self.open.values_mut().max_by_key(|f| f.memory()) {
                Some(largest) if largest.memory() > 0 => largest.flush().await?,
                _ => return Err(refused),
            }
        }
    }

    async fn write_rows(&mut self, batch: &RecordBatch) -> ConnectorResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let split = batch.num_columns() - self.settings.partition_count;
        let Some(converter) = &self.converter else {
            return self.write_to(String::new(), batch).await;
        };
        let rows = converter
            .convert_columns(&batch.columns()[split..])
            .map_err(write_failed)?;
        // Rows of each partition, in order of first appearance.
        let mut groups: Vec<Vec<u32>> = vec![];
        let mut by_key: HashMap<&[u8], usize> = HashMap::new();
        for i in 0..batch.num_rows() {
            let key = rows.row(i);
            let group = *by_key.entry(key.data()).or_insert_with(|| {
                groups.push(vec![]);
                groups.len() - 1
            });
            groups[group].push(i as u32);
        }
        for rows in groups {
            let first = rows[0] as usize;
            let folder = self.folder(batch, split, first)?;
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(rows)).map_err(write_failed)?
            };
            self.write_to(folder, &part).await?;
        }
        Ok(())
    }

    /// The partition folder of row `row`.
    fn folder(&self, batch: &RecordBatch, split: usize, row: usize) -> ConnectorResult<String> {
        let mut values = Vec::with_capacity(self.partition_names.len());
        for (name, column) in self.partition_names.iter().zip(&batch.columns()[split..]) {
            let one = column.slice(row, 1);
            if one.is_null(0) {
                return Err(ConnectorError::new(
                    ConnectorErrorKind::NullValue,
                    format!(
                        "partition column \"{name}\" is NULL in a written row; a Hive partition folder cannot hold NULL"
                    ),
                ));
            }
            let text = cast(&one, &DataType::Utf8).map_err(write_failed)?;
            let text = text
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .map(|a| a.value(0).to_string())
                .unwrap_or_default();
            values.push(text);
        }
        Ok(hive::partition_folder(
            self.partition_names
                .iter()
                .map(String::as_str)
                .zip(values.iter().map(String::as_str)),
        ))
    }

    /// Write the rows of `batch` (all of one partition) to its file.
    async fn write_to(&mut self, folder: String, batch: &RecordBatch) -> ConnectorResult<()> {
        let batch = batch.project(&self.file_columns).map_err(write_failed)?;
        if self.settings.sorted && self.last_partition.as_ref() != Some(&folder) {
            // Sorted input: the last partition is complete.
            if let Some(last) = self.last_partition.replace(folder.clone())
                && let Some(file) = self.open.remove(&last)
            {
                self.written.push(file.finish().await?);
            }
        }
        if !self.open.contains_key(&folder) {
            let file = self.create(&folder)?;
            self.open.insert(folder.clone(), file);
        }
        let file = self.open.get_mut(&folder).expect("just opened");
        file.write(&batch).await?;
        if file.size() >= self.settings.options.target_file_size {
            let file = self.open.remove(&folder).expect("open");
            self.written.push(file.finish().await?);
        }
        Ok(())
    }

    fn create(&mut self, folder: &str) -> ConnectorResult<OpenFile> {
        let options = &self.settings.options;
        let extension = match options.file_extension.as_str() {
            "" => format!(".{}", options.kind.name()),
            ext => ext.to_string(),
        };
        let name = format!(
            "part-{}-{:05}{extension}",
            self.settings.tag, self.next_file
        );
        self.next_file += 1;
        let relative = format!("{folder}{name}");
        let path = super::join(&self.settings.staging, &relative);
        let out = BufWriter::new(self.store.clone(), path);
        let writer = match options.kind {
            FileFormatKind::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build();
                FormatWriter::Parquet(Box::new(
                    AsyncArrowWriter::try_new(out, self.file_schema.clone(), Some(props))
                        .map_err(write_failed)?,
                ))
            }
            FileFormatKind::Csv | FileFormatKind::Json => FormatWriter::Text {
                out: Box::new(out),
                bytes: 0,
                header: options.kind == FileFormatKind::Csv && options.header,
            },
            FileFormatKind::Avro => {
                return Err(write_failed("AVRO tables cannot be written"));
            }
        };
        Ok(OpenFile {
            writer,
            schema: self.file_schema.clone(),
            kind: options.kind,
            delimiter: options.delimiter,
            relative,
            partition: folder.to_string(),
            rows: 0,
            pending: vec![],
            pending_rows: 0,
        })
    }

    /// Close every open file and return what was written.
    pub async fn finish(mut self) -> ConnectorResult<Vec<WrittenFile>> {
        for (_, file) in std::mem::take(&mut self.open) {
            self.written.push(file.finish().await?);
        }
        Ok(self.written)
    }
}

/// One file being written.
struct OpenFile {
    writer: FormatWriter,
    /// The file's columns.
    schema: SchemaRef,
    kind: FileFormatKind,
    delimiter: u8,
    relative: String,
    partition: String,
    rows: u64,
    /// Slices of input batches not encoded yet: a partition's share of one
    /// batch is often a few rows, and encoding pays per call.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

/// Rows per Parquet row group. Smaller than parquet-rs's default (1 Mi
/// rows), as DuckDB's and tpchgen's are: a scan splits a file among its tasks
/// by row group and skips row groups by their statistics, and each open
/// file buffers one row group in memory.
const ROW_GROUP_ROWS: usize = 122_880;

/// Rows gathered before a file encodes them.
const ENCODE_ROWS: usize = 8192;

enum FormatWriter {
    Parquet(Box<AsyncArrowWriter<BufWriter>>),
    /// CSV or JSON lines, encoded batch by batch.
    Text {
        out: Box<BufWriter>,
        bytes: u64,
        /// A CSV header is still to be written.
        header: bool,
    },
}

impl OpenFile {
    async fn write(&mut self, batch: &RecordBatch) -> ConnectorResult<()> {
        self.rows += batch.num_rows() as u64;
        if self.pending.is_empty() && batch.num_rows() >= ENCODE_ROWS {
            return self.encode(batch).await;
        }
        self.pending.push(batch.clone());
        self.pending_rows += batch.num_rows();
        if self.pending_rows >= ENCODE_ROWS {
            self.drain().await?;
        }
        Ok(())
    }

    /// Encode the pending rows.
    async fn drain(&mut self) -> ConnectorResult<()> {
        let Some(first) = self.pending.first() else {
            return Ok(());
        };
        let batch = concat_batches(&first.schema(), &self.pending).map_err(write_failed)?;
        self.pending.clear();
        self.pending_rows = 0;
        self.encode(&batch).await
    }

    async fn encode(&mut self, batch: &RecordBatch) -> ConnectorResult<()> {
        match &mut self.writer {
            FormatWriter::Parquet(w) => w.write(batch).await.map_err(write_failed),
            FormatWriter::Text { out, bytes, header } => {
                let mut buf = Vec::new();
                if self.kind == FileFormatKind::Csv {
                    let mut w = datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(std::mem::take(header))
                        .with_delimiter(self.delimiter)
                        .build(&mut buf);
                    w.write(batch).map_err(write_failed)?;
                } else {
                    let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                    w.write(batch).map_err(write_failed)?;
                    w.finish().map_err(write_failed)?;
                }
                *bytes += buf.len() as u64;
                out.write_all(&buf).await.map_err(write_failed)
            }
        }
    }

    /// Memory the pending rows and the buffered row group hold.
    fn memory(&self) -> usize {
        let pending: usize = self
            .pending
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        pending
            + match &self.writer {
                FormatWriter::Parquet(w) => w.memory_size(),
                FormatWriter::Text { .. } => 0,
            }
    }

    /// Write the buffered rows out as a row group.
    async fn flush(&mut self) -> ConnectorResult<()> {
        self.drain().await?;
        match &mut self.writer {
            FormatWriter::Parquet(w) => w.flush().await.map_err(write_failed),
            FormatWriter::Text { .. } => Ok(()),
        }
    }

    /// Bytes written so far, buffered ones included.
    fn size(&self) -> u64 {
        match &self.writer {
            FormatWriter::Parquet(w) => (w.bytes_written() + w.in_progress_size()) as u64,
            FormatWriter::Text { bytes, .. } => *bytes,
        }
    }

    async fn finish(mut self) -> ConnectorResult<WrittenFile> {
        self.drain().await?;
        let (bytes, stats) = match self.writer {
            FormatWriter::Parquet(mut w) => {
                let metadata = w.finish().await.map_err(write_failed)?;
                let stats = super::stats::file_statistics(&self.schema, &metadata);
                (w.bytes_written() as u64, Some(stats))
            }
            FormatWriter::Text { mut out, bytes, .. } => {
                out.shutdown().await.map_err(write_failed)?;
                (bytes, None)
            }
        };
        Ok(WrittenFile {
            relative: self.relative,
            partition: self.partition,
            rows: self.rows,
            bytes,
            stats,
        })
    }
}

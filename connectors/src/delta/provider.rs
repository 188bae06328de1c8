//! The DataFusion table provider of a Delta table: at scan time it resolves the
//! version's files from the log, skips those the filters rule out by partition
//! values and the log's statistics, and reads the rest as DataFusion's own
//! Parquet scan — which ships to workers like any file scan, each task given
//! its share of the files.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::scalar::ScalarValue;
use deltalake_core::DeltaTable;
use object_store::path::Path;

use super::log::{DeltaLocation, delta_error};
use super::scan::{DeltaScanExec, DeltaScanInfo};
use super::stats::{self, LogStatistics};
use crate::{At, ConnectorError, ConnectorErrorKind, ConnectorResult};

/// A Delta table, at its latest version or pinned to one (time travel).
#[derive(Debug)]
pub struct DeltaTableProvider {
    /// The table's name in the catalog, for `EXPLAIN`.
    name: String,
    location: DeltaLocation,
    /// Columns in the log's order, partition columns included.
    schema: SchemaRef,
    partition_columns: Vec<String>,
    /// The version a time-travel reference loaded when it was planned.
    pinned: Option<Arc<DeltaTable>>,
    /// Only these files of the version (as the log names them): the files a
    /// compaction rewrites.
    only: Option<Arc<HashSet<String>>>,
    /// The latest version as last loaded, brought up to date by each scan
    /// (a listing of the log when nothing changed, instead of a full read).
    latest: Arc<std::sync::Mutex<Option<DeltaTable>>>,
}

impl DeltaTableProvider {
    /// The latest version of the table at `location` with the stored columns.
    pub fn new(
        name: String,
        location: DeltaLocation,
        schema: SchemaRef,
        partition_columns: Vec<String>,
    ) -> Self {
        Self {
            name,
            location,
            schema,
            partition_columns,
            pinned: None,
            only: None,
            latest: Arc::default(),
        }
    }

    /// The files `only` of the version `table` holds, with this table's
    /// columns (a compaction's input).
    pub fn files_of(&self, table: DeltaTable, only: HashSet<String>) -> Self {
        Self {
            name: self.name.clone(),
            location: self.location.clone(),
            schema: Arc::clone(&self.schema),
            partition_columns: self.partition_columns.clone(),
            pinned: Some(Arc::new(table)),
            only: Some(Arc::new(only)),
            latest: Arc::default(),
        }
    }

    /// The table's name in the catalog.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the table lies.
    pub fn location(&self) -> &DeltaLocation {
        &self.location
    }

    /// The same table read at `at`, with that version's columns: loads the
    /// log now, so a version that does not exist fails the planning.
    pub async fn at(&self, at: At) -> ConnectorResult<Self> {
        let table = self.location.load(at).await?;
        let place = self.location.url.as_str();
        let state = table.snapshot().map_err(|e| delta_error(place, e))?;
        Ok(Self {
            name: self.name.clone(),
            location: self.location.clone(),
            schema: super::log::arrow_schema(place, state)?,
            partition_columns: state.metadata().partition_columns().to_vec(),
            pinned: Some(Arc::new(table)),
            only: None,
            latest: Arc::default(),
        })
    }

    /// The version to scan: the pinned one, else the latest, loaded now.
    async fn table(&self) -> ConnectorResult<Arc<DeltaTable>> {
        match &self.pinned {
            Some(table) => Ok(Arc::clone(table)),
            None => {
                let known = self
                    .latest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let table = self.location.latest_from(known.as_ref()).await?;
                *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(table.clone());
                Ok(Arc::new(table))
            }
        }
    }

    /// The files of `table`'s version that `filters` may match, with their
    /// partition values typed as the columns are; and how many there are in all.
    fn files(
        &self,
        table: &DeltaTable,
        filters: &[Expr],
        session: &dyn Session,
    ) -> ConnectorResult<(Vec<PartitionedFile>, usize)> {
        let place = self.location.url.as_str();
        let state = table.snapshot().map_err(|e| delta_error(place, e))?;
        if state.metadata().partition_columns() != self.partition_columns {
            return Err(ConnectorError::new(
                ConnectorErrorKind::SchemaMismatch,
                format!(
                    "the Delta table at '{place}' is now partitioned by ({}), not ({}): drop and create table \"{}\" again",
                    state.metadata().partition_columns().join(", "),
                    self.partition_columns.join(", "),
                    self.name
                ),
            ));
        }
        let log = state.log_data();
        let keep = self
            .pruning(filters, session)
            .and_then(|p| p.prune(&log).ok());
        let partition_fields = self.partition_fields()?;
        let statistics = LogStatistics::new(&log, &self.scan_schema()?);
        let mut files = Vec::new();
        let mut total = 0;
        for (i, file) in log.iter().enumerate() {
            total += 1;
            if keep.as_ref().is_some_and(|keep| !keep[i])
                || self
                    .only
                    .as_ref()
                    .is_some_and(|only| !only.contains(&*file.path()))
            {
                continue;
            }
            if file.deletion_vector_descriptor().is_some() {
                return Err(ConnectorError::new(
                    ConnectorErrorKind::Unsupported,
                    format!(
                        "the Delta table at '{place}' has deleted rows recorded in deletion vectors (table feature 'deletionVectors') at version {}, which Vivace does not read yet; rewrite its files (OPTIMIZE or REORG … APPLY (PURGE) in Spark) to read it",
                        state.version()
                    ),
                ));
            }
            let values = file.partition_values_map();
            let partition_values = partition_fields
                .iter()
                .map(|field| {
                    let raw = values.get(field.name()).cloned().flatten();
                    partition_value(raw, field).map_err(|e| {
                        ConnectorError::new(
                            ConnectorErrorKind::UnreadableFormat,
                            format!(
                                "the Delta table at '{place}': partition value of \"{}\": {e}",
                                field.name()
                            ),
                        )
                    })
                })
                .collect::<ConnectorResult<Vec<_>>>()?;
            let path = object_path(self.location.root(), &file.path());
            let mut partitioned = PartitionedFile::new(path.to_string(), file.size().max(0) as u64)
                .with_partition_values(partition_values);
            if let Some(rows) = file.num_records() {
                partitioned = partitioned.with_statistics(Arc::new(statistics.file(i, rows)));
            }
            files.push(partitioned);
        }
        Ok((files, total))
    }

    /// A pruning predicate of the filters, over the log's statistics and
    /// partition values; `None` when there is nothing to prune with.
    fn pruning(&self, filters: &[Expr], session: &dyn Session) -> Option<Arc<PruningPredicate>> {
        let predicate = conjunction(filters.iter().cloned())?;
        let df_schema = DFSchema::try_from(Arc::clone(&self.schema)).ok()?;
        let physical = session.create_physical_expr(predicate, &df_schema).ok()?;
        PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&self.schema))
            .build(physical)
    }

    /// The scan's table schema: the file columns, then the partition columns.
    fn scan_schema(&self) -> ConnectorResult<Schema> {
        let file_schema = crate::files::file_schema(&self.schema, &self.partition_columns);
        Ok(Schema::new(
            file_schema
                .fields()
                .iter()
                .cloned()
                .chain(self.partition_fields()?)
                .collect::<Vec<_>>(),
        ))
    }

    fn partition_fields(&self) -> ConnectorResult<Vec<FieldRef>> {
        self.partition_columns
            .iter()
            .map(|name| {
                self.schema
                    .field_with_name(name)
                    .map(|f| Arc::new(f.clone()))
                    .map_err(|_| {
                        ConnectorError::new(
                            ConnectorErrorKind::SchemaMismatch,
                            format!("partition column \"{name}\" is not a column of the table"),
                        )
                    })
            })
            .collect()
    }

    /// Where each of the table's columns sits in the scan's output: the file
    /// columns in order, then the partition columns.
    fn scan_index(&self, file_schema: &Schema, column: usize) -> usize {
        let name = self.schema.field(column).name();
        match self.partition_columns.iter().position(|p| p == name) {
            Some(p) => file_schema.fields().len() + p,
            None => file_schema.index_of(name).unwrap_or(column),
        }
    }
}

/// The object-store path of a file the log names relative to the table's
/// root (or, as some writers do, by a full URL).
fn object_path(root: &Path, file: &str) -> Path {
    match url::Url::parse(file) {
        Ok(url) => Path::from_url_path(url.path()).unwrap_or_else(|_| Path::from(url.path())),
        _ => {
            let joined = format!("{}/{}", root.as_ref().trim_end_matches('/'), file);
            Path::parse(&joined).unwrap_or_else(|_| Path::from(joined.as_str()))
        }
    }
}

/// A partition value from the log (text; `None` for NULL) as the column's type.
pub(super) fn partition_value(raw: Option<String>, field: &FieldRef) -> DFResult<ScalarValue> {
    match raw {
        None => ScalarValue::try_from(field.data_type()),
        Some(text) => ScalarValue::try_from_string(text, field.data_type()),
    }
}

/// The statistics of a scan of `groups`: the groups' merged, when every
/// group has them (else only what the files' sizes say).
fn scan_statistics(groups: &[FileGroup], schema: &Schema) -> Statistics {
    stats::merged(groups.iter().map(|g| g.file_statistics(None)), schema).unwrap_or_else(|| {
        let mut unknown = Statistics::new_unknown(schema);
        unknown.total_byte_size = Precision::Inexact(
            groups
                .iter()
                .flat_map(FileGroup::iter)
                .map(|f| f.object_meta.size as usize)
                .sum(),
        );
        unknown
    })
}

/// `files` in at most `count` groups of about equal bytes, each with its
/// files' statistics merged when all have them.
fn groups(mut files: Vec<PartitionedFile>, count: usize, schema: &Schema) -> Vec<FileGroup> {
    let count = count.clamp(1, files.len().max(1));
    files.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); count];
    for file in files {
        let smallest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        smallest.0 += file.object_meta.size;
        smallest.1.push(file);
    }
    groups
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| {
            match stats::merged(files.iter().map(|f| f.statistics.as_deref()), schema) {
                Some(statistics) => FileGroup::new(files).with_statistics(Arc::new(statistics)),
                None => FileGroup::new(files),
            }
        })
        .collect()
}

#[async_trait]
impl TableProvider for DeltaTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters prune files, but are applied again to the rows read.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let table = self.table().await?;
        let version = table.version().unwrap_or_default();
        let (files, total) = self.files(&table, filters, session)?;
        let info = DeltaScanInfo {
            table: self.name.clone(),
            version,
            files: files.len(),
            files_in_version: total,
            bytes: files.iter().map(|f| f.object_meta.size).sum(),
        };
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        if files.is_empty() {
            return Ok(Arc::new(DeltaScanExec::new(
                Arc::new(EmptyExec::new(projected)),
                info,
            )));
        }
        let file_schema = crate::files::file_schema(&self.schema, &self.partition_columns);
        let partition_fields = self.partition_fields()?;
        let indices: Vec<usize> = match projection {
            Some(p) => p
                .iter()
                .map(|&c| self.scan_index(&file_schema, c))
                .collect(),
            None => (0..self.schema.fields().len())
                .map(|c| self.scan_index(&file_schema, c))
                .collect(),
        };
        let scan_schema = self.scan_schema()?;
        let groups = groups(files, session.config().target_partitions(), &scan_schema);
        let statistics = scan_statistics(&groups, &scan_schema);
        let format = ParquetFormat::default().with_options(session.table_options().parquet.clone());
        let source = format.file_source(
            TableSchema::builder(file_schema)
                .with_table_partition_cols(partition_fields)
                .build(),
        );
        let config = FileScanConfigBuilder::new(self.location.url.object_store(), source)
            .with_file_groups(groups)
            .with_statistics(statistics)
            .with_projection_indices(Some(indices))?
            .with_limit(limit)
            .build();
        let scan = format.create_physical_plan(session, config).await?;
        Ok(Arc::new(DeltaScanExec::new(scan, info)))
    }
}

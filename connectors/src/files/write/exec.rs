//! [`FileWriteExec`]: the plan node that writes its input into a table's
//! staging folder, and [`WriteTable`], the table a write plans against.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexRequirement, OrderingRequirements, PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PhysicalExpr,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use super::sink::{SinkSettings, TaskSink};
use super::{WriteSpec, WrittenFile};
use crate::ConnectorError;
use crate::error::tag_connector_error;
use crate::files::FileOptions;

/// The columns a [`FileWriteExec`] answers with: one row per file written.
pub fn written_files_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("relative", DataType::Utf8, false),
        Field::new("partition", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("stats", DataType::Utf8, true),
    ]))
}

/// The files of `batch`, a batch of [`written_files_schema`].
pub fn written_files(batch: &RecordBatch) -> Vec<WrittenFile> {
    let text = |i: usize| batch.column(i).as_any().downcast_ref::<StringArray>();
    let number = |i: usize| batch.column(i).as_any().downcast_ref::<UInt64Array>();
    let (Some(relative), Some(partition), Some(rows), Some(bytes), Some(stats)) =
        (text(0), text(1), number(2), number(3), text(4))
    else {
        return vec![];
    };
    (0..batch.num_rows())
        .map(|i| WrittenFile {
            relative: relative.value(i).to_string(),
            partition: partition.value(i).to_string(),
            rows: rows.value(i),
            bytes: bytes.value(i),
            stats: stats.is_valid(i).then(|| stats.value(i).to_string()),
        })
        .collect()
}

fn files_batch(files: &[WrittenFile]) -> DFResult<RecordBatch> {
    Ok(RecordBatch::try_new(
        written_files_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                files.iter().map(|f| f.relative.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                files.iter().map(|f| f.partition.as_str()),
            )),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.rows))),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.bytes))),
            Arc::new(StringArray::from_iter(
                files.iter().map(|f| f.stats.as_deref()),
            )),
        ],
    )?)
}

/// Writes its input (the table's columns, partition columns last) into the
/// staging folder of `spec`'s write, and answers with the files written.
///
/// Its input is hash-partitioned on the partition columns, so each partition
/// value is written by one task only, in as few files as the target size
/// allows; an unpartitioned table is written by one task. With `sorted_by`,
/// each task's input is sorted by partition then by those columns, and a
/// task keeps one file open at a time.
#[derive(Debug)]
pub struct FileWriteExec {
    input: Arc<dyn ExecutionPlan>,
    spec: WriteSpec,
    /// The table's options, parsed once.
    options: FileOptions,
    /// What the input must be partitioned by: the partition columns.
    distribution: Distribution,
    /// What each input partition must be sorted by, with `sorted_by`.
    ordering: Option<OrderingRequirements>,
    props: Arc<PlanProperties>,
}

impl FileWriteExec {
    /// Write `input` as `spec` says.
    pub fn try_new(input: Arc<dyn ExecutionPlan>, spec: WriteSpec) -> DFResult<Self> {
        let schema = spec.schema()?;
        if input.schema().fields().len() != schema.fields().len() {
            return Err(DataFusionError::Plan(format!(
                "a write into {} needs {} columns, its input has {}",
                spec.location,
                schema.fields().len(),
                input.schema().fields().len()
            )));
        }
        let options = spec.file_options()?;
        let input_schema = input.schema();
        let column = |name: &String| -> DFResult<Arc<dyn PhysicalExpr>> {
            Ok(Arc::new(Column::new(name, input_schema.index_of(name)?)))
        };
        let distribution = if spec.partition_columns.is_empty() {
            Distribution::SinglePartition
        } else {
            Distribution::KeyPartitioned(
                spec.partition_columns
                    .iter()
                    .map(column)
                    .collect::<DFResult<_>>()?,
            )
        };
        let ordering = if options.sorted_by.is_empty() {
            None
        } else {
            let requirement = spec
                .partition_columns
                .iter()
                .chain(&options.sorted_by)
                .map(|c| {
                    Ok(PhysicalSortRequirement::new(
                        column(c)?,
                        Some(Default::default()),
                    ))
                })
                .collect::<DFResult<Vec<_>>>()?;
            LexRequirement::new(requirement).map(OrderingRequirements::new)
        };
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(written_files_schema()),
            Partitioning::UnknownPartitioning(
                input.properties().output_partitioning().partition_count(),
            ),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self {
            input,
            spec,
            options,
            distribution,
            ordering,
            props,
        })
    }

    /// What this node writes.
    pub fn spec(&self) -> &WriteSpec {
        &self.spec
    }
}

impl DisplayAs for FileWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "FileWriteExec: {} {}",
            self.spec.connector, self.spec.location
        )?;
        if !self.spec.partition_columns.is_empty() {
            write!(
                f,
                " partitioned by [{}]",
                self.spec.partition_columns.join(", ")
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for FileWriteExec {
    fn name(&self) -> &str {
        "FileWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("FileWriteExec has one input".into()))?;
        Ok(Arc::new(Self::try_new(input, self.spec.clone())?))
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![self.distribution.clone()]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![self.ordering.clone()]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![!self.spec.partition_columns.is_empty()]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, context.clone())?;
        let spec = &self.spec;
        let table_url = spec.table_url()?;
        let store = context
            .runtime_env()
            .object_store(table_url.object_store())?;
        let settings = SinkSettings {
            staging: spec.staging()?,
            tag: format!(
                "{}-{}",
                spec.write_id,
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            options: self.options.clone(),
            input_schema: self.input.schema(),
            partition_count: spec.partition_columns.len(),
            sorted: self.ordering.is_some(),
        };
        let reservation = MemoryConsumer::new(format!("FileWriteExec[{partition}]"))
            .register(context.memory_pool());
        let written = async move {
            let mut sink = TaskSink::new(store, reservation, settings)?;
            while let Some(batch) = input.next().await {
                sink.write(&batch?).await?;
            }
            let files = sink.finish().await?;
            files_batch(&files)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            written_files_schema(),
            futures::stream::once(written).map(|r| r.map_err(tag_connector_error)),
        )))
    }
}

/// A file table as a write target: its `insert_into` plans a
/// [`FileWriteExec`] for one write (`spec`). Reads go through the table's own
/// provider, not this one.
#[derive(Debug)]
pub struct WriteTable {
    spec: WriteSpec,
    schema: SchemaRef,
}

impl WriteTable {
    /// The target of the write `spec` describes.
    pub fn new(spec: WriteSpec) -> Result<Self, ConnectorError> {
        let schema = spec.schema()?;
        Ok(Self { spec, schema })
    }
}

#[async_trait]
impl TableProvider for WriteTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(
            "a write target is not read; query the table itself".into(),
        ))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    /// Appending and overwriting plan the same node: which files an
    /// overwrite replaces is the publisher's business.
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(FileWriteExec::try_new(input, self.spec.clone())?))
    }
}

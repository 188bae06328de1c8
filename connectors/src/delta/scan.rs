//! `DeltaScanExec`: the Parquet scan of a Delta version, under a node that
//! says in `EXPLAIN` which version was read and how many of its files the
//! log let the scan skip. It passes everything through to its child, which is
//! DataFusion's own file scan (split over workers like any other); the codec
//! ships the node's description beside it.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, Statistics,
    StatisticsArgs,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

/// What a Delta scan reads, for `EXPLAIN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaScanInfo {
    /// The table's name in the catalog.
    pub table: String,
    /// The version read.
    pub version: u64,
    /// Files read.
    pub files: usize,
    /// Files in the version (the rest were skipped).
    pub files_in_version: usize,
    /// Bytes of the files read.
    pub bytes: u64,
}

/// A Delta version's scan: its child reads the files.
#[derive(Debug)]
pub struct DeltaScanExec {
    input: Arc<dyn ExecutionPlan>,
    info: DeltaScanInfo,
    properties: Arc<PlanProperties>,
}

impl DeltaScanExec {
    /// `input` (the file scan), described by `info`.
    pub fn new(input: Arc<dyn ExecutionPlan>, info: DeltaScanInfo) -> Self {
        let properties = Arc::clone(input.properties());
        Self {
            input,
            info,
            properties,
        }
    }

    /// What it reads.
    pub fn info(&self) -> &DeltaScanInfo {
        &self.info
    }
}

impl DisplayAs for DeltaScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let i = &self.info;
        write!(
            f,
            "DeltaScanExec: table={}, version={}, files={} of {} ({} skipped), bytes={}",
            i.table,
            i.version,
            i.files,
            i.files_in_version,
            i.files_in_version - i.files,
            i.bytes
        )
    }
}

impl ExecutionPlan for DeltaScanExec {
    fn name(&self) -> &str {
        "DeltaScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(input, self.info.clone()))),
            _ => Err(DataFusionError::Internal(
                "a Delta scan has exactly one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DFResult<Arc<Statistics>> {
        Ok(Arc::clone(&input_stats[0]))
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> DFResult<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> DFResult<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }
}

/// Encodes and decodes [`DeltaScanExec`] nodes: the description as JSON, the
/// file scan as the node's child.
#[derive(Debug, Default)]
pub struct DeltaScanCodec;

impl PhysicalExtensionCodec for DeltaScanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let info: DeltaScanInfo = serde_json::from_slice(buf)
            .map_err(|e| DataFusionError::Plan(format!("bad Delta scan description: {e}")))?;
        let [input] = inputs else {
            return Err(DataFusionError::Plan(
                "a Delta scan has exactly one input".into(),
            ));
        };
        Ok(Arc::new(DeltaScanExec::new(Arc::clone(input), info)))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<()> {
        let Some(scan) = node.downcast_ref::<DeltaScanExec>() else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} is not a Delta scan",
                node.name()
            )));
        };
        serde_json::to_writer(buf, scan.info())
            .map_err(|e| DataFusionError::Internal(format!("cannot encode a Delta scan: {e}")))
    }
}

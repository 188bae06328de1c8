//! [`RemoteScanExec`]: requests on one source, one per output partition.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion_federation::schema_cast::record_convert::try_cast_to;
use futures::StreamExt;

use super::RemoteSource;
use crate::error::tag_connector_error;

/// Requests on one source, one per output partition (partitions past the last
/// request are empty), whose rows are cast to `schema`.
#[derive(Debug, Clone)]
pub struct RemoteScanExec {
    source: Arc<dyn RemoteSource>,
    requests: Vec<String>,
    schema: SchemaRef,
    /// What the requests are split on (a column, a shard), for EXPLAIN.
    split_on: Option<String>,
    props: Arc<PlanProperties>,
    /// Rows read and time spent, per partition (for EXPLAIN ANALYZE).
    metrics: ExecutionPlanMetricsSet,
}

impl RemoteScanExec {
    /// `requests` on `source` producing `schema`, in `partitions` output
    /// partitions (at least one per request).
    pub fn new(
        source: Arc<dyn RemoteSource>,
        requests: Vec<String>,
        schema: SchemaRef,
        split_on: Option<String>,
        partitions: usize,
    ) -> Self {
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions.max(requests.len()).max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            source,
            requests,
            schema,
            split_on,
            props,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The source the requests run on.
    pub fn source(&self) -> &Arc<dyn RemoteSource> {
        &self.source
    }

    /// The requests, in partition order.
    pub fn requests(&self) -> &[String] {
        &self.requests
    }

    /// What the requests are split on, when they are parts of one read.
    pub fn split_on(&self) -> Option<&str> {
        self.split_on.as_deref()
    }

    /// The scan cut into `tasks` scans of every `tasks`-th request, each with
    /// the same number of partitions (as a distributed stage needs).
    pub fn split(&self, tasks: usize) -> Vec<Self> {
        let tasks = tasks.max(1);
        let per_task = self.requests.len().div_ceil(tasks).max(1);
        (0..tasks)
            .map(|task| {
                let requests = self
                    .requests
                    .iter()
                    .skip(task)
                    .step_by(tasks)
                    .cloned()
                    .collect();
                Self::new(
                    Arc::clone(&self.source),
                    requests,
                    Arc::clone(&self.schema),
                    self.split_on.clone(),
                    per_task,
                )
            })
            .collect()
    }
}

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "RemoteScanExec: source={} compute_context={}",
            self.source.definition().connector,
            self.source.compute_context()
        )?;
        if let Some(split_on) = &self.split_on {
            write!(
                f,
                " partition_column={split_on} statements={}",
                self.requests.len()
            )?;
        }
        let label = self.source.request_label();
        for request in &self.requests {
            write!(f, " {label}={request}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for RemoteScanExec {
    fn name(&self) -> &str {
        "RemoteScanExec"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let schema = Arc::clone(&self.schema);
        let Some(request) = self.requests.get(partition) else {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let mut rows = self.source.run(request, Arc::clone(&schema))?;
        // Requests are counted by the source as it sends them (a scan may
        // take several: pages, points in time); rows here, as they arrive.
        let rows_received = self.source.labels().rows_received();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        // Wall time waiting for the source's rows (its query and the transfer);
        // `elapsed_compute` is Vivace's own work on them.
        let fetch_time =
            MetricBuilder::new(&self.metrics).subset_time("remote_fetch_time", partition);
        let cast_to = Arc::clone(&schema);
        let stream = futures::stream::poll_fn(move |cx| {
            let polled = {
                let _waiting = fetch_time.timer();
                rows.poll_next_unpin(cx)
            };
            let polled = polled.map(|batch| {
                batch.map(|batch| {
                    let _working = baseline.elapsed_compute().timer();
                    if let Ok(batch) = &batch {
                        rows_received.increment(batch.num_rows() as u64);
                    }
                    // The source's types are mapped by its connector; the cast
                    // makes the batches carry exactly the planned schema (as
                    // datafusion-federation's `SchemaCastScanExec` does for its
                    // own scans).
                    try_cast_to(batch.map_err(tag_connector_error)?, Arc::clone(&cast_to))
                        .map_err(|e| DataFusionError::External(Box::new(e)))
                })
            });
            baseline.record_poll(polled)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

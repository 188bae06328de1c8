//! Join filters applied while Parquet is decoded. A hash join hands the keys
//! of its build side to the scan on its probe side (DataFusion's dynamic
//! filters). With DataFusion's defaults a Parquet scan only uses them to skip
//! row groups and pages; every row is still decoded and the join drops most
//! of them. [`ScanJoinFilters`] turns on Parquet filter pushdown (late
//! materialisation) for exactly the scans that receive such a filter, so the
//! reader decodes the key column first and the other columns only for rows a
//! join can match. TPC-H at SF 1 (benches/RESULTS.md): q17 and q18 twice as
//! fast, q7 a third faster.
//!
//! Filter pushdown is not turned on for every scan (DataFusion's
//! `pushdown_filters`): for a scan whose static filters are its only ones, the
//! reader's row selection costs more than decoding the few columns it spares
//! (TPC-H q6 2.5×, q12 and q15 1.4× slower). A static filter on a scan that also
//! gets a join filter is then evaluated by the reader too; DataFusion's
//! `FilterExec` above the scan stays and evaluates it again on the rows left.
//! `SET vivace.scan_join_filters = off` leaves every scan as DataFusion plans it.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

use super::federation::VivaceOptions;

/// The physical optimizer rule that turns on Parquet filter pushdown for the
/// scans that receive a join's (dynamic) filter. It must run after
/// DataFusion's last `FilterPushdown`, which hands those filters to the scans.
#[derive(Debug, Default)]
pub struct ScanJoinFilters;

/// Whether `predicate` holds a filter a join (or a TopK) fills in at run time.
fn has_dynamic_filter(predicate: &Arc<dyn PhysicalExpr>) -> Result<bool> {
    predicate.exists(|e| Ok(e.is::<DynamicFilterPhysicalExpr>()))
}

/// `plan` with filter pushdown on, when it is a Parquet scan whose predicate
/// holds a dynamic filter and does not push filters already.
fn with_join_filters(plan: &DataSourceExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some((config, source)) = plan.downcast_to_file_source::<ParquetSource>() else {
        return Ok(None);
    };
    let Some(predicate) = source.filter() else {
        return Ok(None);
    };
    if source.table_parquet_options().global.pushdown_filters || !has_dynamic_filter(&predicate)? {
        return Ok(None);
    }
    let source = source.clone().with_pushdown_filters(true);
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    Ok(Some(DataSourceExec::from_data_source(config)))
}

impl PhysicalOptimizerRule for ScanJoinFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !config
            .extensions
            .get::<VivaceOptions>()
            .is_none_or(|o| o.scan_join_filters)
        {
            return Ok(plan);
        }
        Ok(plan
            .transform_up(|node| {
                let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
                    return Ok(Transformed::no(node));
                };
                Ok(match with_join_filters(scan)? {
                    Some(scan) => Transformed::yes(scan),
                    None => Transformed::no(node),
                })
            })?
            .data)
    }

    fn name(&self) -> &str {
        "vivace_scan_join_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

//! How an Elasticsearch table meets `vivace.pushdown`.
//!
//! A table is an [`ElasticsearchTable`] in its plain form behind
//! datafusion-federation's adaptor. When pushdown is on, the federation rule
//! hands every sub-plan over such tables to this source's optimizer, whose one
//! rule swaps each scan for the pushing form and replaces an aggregation over
//! a pushing scan by a scan of its result when the server can compute it
//! ([`super::aggregate`]). With pushdown off the rule never runs, and
//! DataFusion evaluates every filter and aggregate over the whole index.

use std::any::Any;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{LogicalPlan, TableScan};
use datafusion::optimizer::optimizer::Optimizer;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion_federation::FederatedTableProviderAdaptor;

use super::mapping::Column;
use super::provider::ElasticsearchTable;
use super::source::ElasticsearchSource;
use crate::remote::RemoteSource;
use crate::remote::pushdown::federate;

/// The provider of `index` on `source` with the stored `columns` (no I/O).
pub fn table_provider(
    source: &Arc<ElasticsearchSource>,
    index: &str,
    columns: Vec<Column>,
) -> Arc<dyn TableProvider> {
    let plain = Arc::new(ElasticsearchTable::new(source, index, columns));
    federate(
        "elasticsearch",
        source.compute_context(),
        Arc::new(Optimizer::with_rules(vec![Arc::new(PushDown)])),
        plain,
    )
}

/// Whether `provider` is a table [`table_provider`] made (either form).
pub fn is_elasticsearch_table(provider: &dyn TableProvider) -> bool {
    let any = provider as &dyn Any;
    any.is::<ElasticsearchTable>()
        || super::aggregate::is_aggregate_table(provider)
        || any
            .downcast_ref::<FederatedTableProviderAdaptor>()
            .and_then(|adaptor| adaptor.table_provider.as_ref())
            .is_some_and(|inner| (inner.as_ref() as &dyn Any).is::<ElasticsearchTable>())
}

/// Swaps every plain scan of an Elasticsearch table for its pushing form.
#[derive(Debug)]
struct PushDown;

impl OptimizerRule for PushDown {
    fn name(&self) -> &str {
        "elasticsearch_pushdown"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DFResult<Transformed<LogicalPlan>> {
        plan.transform_up(|node| {
            if let LogicalPlan::Limit(limit) = &node
                && let Some(pushed) = super::top::push(limit)?
            {
                return Ok(Transformed::yes(pushed));
            }
            if let LogicalPlan::Aggregate(aggregate) = &node {
                return Ok(match super::aggregate::push(aggregate)? {
                    Some(pushed) => Transformed::yes(pushed),
                    None => Transformed::no(node),
                });
            }
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            let Some(pushing) = pushing_form(scan) else {
                return Ok(Transformed::no(node));
            };
            let mut scan = scan.clone();
            scan.source = provider_as_source(Arc::new(pushing));
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })
    }
}

fn pushing_form(scan: &TableScan) -> Option<ElasticsearchTable> {
    let provider = source_as_provider(&scan.source).ok()?;
    let adaptor =
        (provider.as_ref() as &dyn Any).downcast_ref::<FederatedTableProviderAdaptor>()?;
    let inner = adaptor.table_provider.as_ref()?;
    let table = (inner.as_ref() as &dyn Any).downcast_ref::<ElasticsearchTable>()?;
    Some(table.pushing())
}

//! What DataFusion sees of an Elasticsearch table.
//!
//! A table is [`ElasticsearchTable`] behind datafusion-federation's adaptor,
//! first in its *plain* form: projection only, plus the full-text functions
//! (nothing else can evaluate them). When `vivace.pushdown` is on, the
//! federation rule hands every sub-plan over such tables to this source's
//! optimizer, whose one rule swaps each scan for the *pushing* form: filters
//! become query DSL (exact ones leave the plan, inexact ones are re-checked)
//! and a `LIMIT` becomes the most hits read. With pushdown off the rule never
//! runs, and DataFusion evaluates every filter over the whole index.
//!
//! Either way the scan is a [`RemoteScanExec`] of one [`SearchRequest`] per
//! slice, which the remote core ships to workers.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{
    Expr, LogicalPlan, TableProviderFilterPushDown, TableScan, TableSource, TableType,
};
use datafusion::optimizer::optimizer::Optimizer;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_federation::{
    FederatedTableProviderAdaptor, FederatedTableSource, FederationProvider,
};

use super::dsl;
use super::mapping::Column;
use super::options::Slices;
use super::request::SearchRequest;
use super::source::ElasticsearchSource;
use crate::remote::{RemoteScanExec, RemoteSource};

/// Documents per slice when `slices` is `auto`.
const DOCS_PER_SLICE: u64 = 100_000;
/// Most slices `auto` makes.
const MAX_AUTO_SLICES: u64 = 16;

/// The provider of `index` on `source` with the stored `columns` (no I/O).
pub fn table_provider(
    source: &Arc<ElasticsearchSource>,
    index: &str,
    columns: Vec<Column>,
) -> Arc<dyn TableProvider> {
    let schema = super::mapping::schema(&columns);
    let plain = Arc::new(ElasticsearchTable {
        source: Arc::clone(source),
        index: index.to_string(),
        columns: Arc::new(columns),
        schema: Arc::clone(&schema),
        pushdown: false,
    });
    let federated = Arc::new(FederatedSource {
        provider: Arc::new(SearchFederation {
            compute_context: source.compute_context(),
            optimizer: Arc::new(Optimizer::with_rules(vec![Arc::new(PushDown)])),
        }),
        schema,
    });
    Arc::new(FederatedTableProviderAdaptor::new_with_provider(
        federated, plain,
    ))
}

/// Whether `provider` is a table [`table_provider`] made (either form).
pub fn is_elasticsearch_table(provider: &dyn TableProvider) -> bool {
    let any = provider as &dyn Any;
    any.is::<ElasticsearchTable>()
        || any
            .downcast_ref::<FederatedTableProviderAdaptor>()
            .and_then(|adaptor| adaptor.table_provider.as_ref())
            .is_some_and(|inner| (inner.as_ref() as &dyn Any).is::<ElasticsearchTable>())
}

/// One index (or pattern, or alias) of one server.
#[derive(Debug, Clone)]
pub struct ElasticsearchTable {
    source: Arc<ElasticsearchSource>,
    index: String,
    columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    /// The pushing form (filters and limits to the server).
    pushdown: bool,
}

#[async_trait]
impl TableProvider for ElasticsearchTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.pushdown {
                    dsl::pushdown_kind(f, &self.columns)
                } else if dsl::is_full_text(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| self.pushdown || dsl::is_full_text(f))
            .cloned()
            .collect();
        let query = dsl::conjunction(&pushed, &self.columns);
        let limit = limit.filter(|_| self.pushdown).map(|l| l as u64);
        let columns: Vec<Column> = match projection {
            Some(indices) => indices.iter().map(|i| self.columns[*i].clone()).collect(),
            None => self.columns.as_ref().clone(),
        };
        let schema = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => Arc::clone(&self.schema),
        };
        let options = self.source.options();
        let slices = match (limit, options.slices) {
            (Some(_), _) => 1,
            (None, Slices::Fixed(n)) => n,
            (None, Slices::Auto) => {
                let count = self.source.client().count(&self.index, &query).await?;
                count.div_ceil(DOCS_PER_SLICE).clamp(1, MAX_AUTO_SLICES) as u32
            }
        };
        let requests = SearchRequest::plan(
            &self.index,
            &columns,
            query,
            limit,
            options.page_size,
            slices,
        );
        let split_on = (requests.len() > 1).then(|| "slice".to_string());
        let partitions = requests.len();
        Ok(Arc::new(RemoteScanExec::new(
            Arc::clone(&self.source) as Arc<dyn RemoteSource>,
            requests,
            schema,
            split_on,
            partitions,
        )))
    }
}

/// The federation side of a table: names its server, and brings the rule
/// that swaps its scans for the pushing form.
struct SearchFederation {
    compute_context: String,
    optimizer: Arc<Optimizer>,
}

impl FederationProvider for SearchFederation {
    fn name(&self) -> &str {
        "elasticsearch"
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.compute_context.clone())
    }

    fn optimizer(&self) -> Option<Arc<Optimizer>> {
        Some(Arc::clone(&self.optimizer))
    }
}

struct FederatedSource {
    provider: Arc<SearchFederation>,
    schema: SchemaRef,
}

impl TableSource for FederatedSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }
}

impl FederatedTableSource for FederatedSource {
    fn federation_provider(&self) -> Arc<dyn FederationProvider> {
        Arc::clone(&self.provider) as Arc<dyn FederationProvider>
    }
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
    Some(ElasticsearchTable {
        pushdown: true,
        ..table.clone()
    })
}

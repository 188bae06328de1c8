//! How a remote table meets `vivace.pushdown`, for connectors that plan their
//! pushdown in the provider itself (filters, limits, projection): the table is
//! a [`Switchable`] pair — a *plain* form that pushes nothing but projection
//! and a *pushing* form — behind datafusion-federation's adaptor. When
//! pushdown is on, the federation rule hands every sub-plan over such tables
//! to this module's optimizer, whose one rule swaps each scan for the pushing
//! form; with pushdown off the rule never runs, and DataFusion evaluates every
//! filter over the whole table. [`federate`] is the adaptor alone, for a
//! connector whose optimizer has rules of its own.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{
    Expr, LogicalPlan, TableProviderFilterPushDown, TableSource, TableType,
};
use datafusion::optimizer::optimizer::Optimizer;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_federation::{
    FederatedTableProviderAdaptor, FederatedTableSource, FederationProvider,
};

use super::key::SourceKey;

/// A table's plain and pushing forms; DataFusion sees the plain one unless
/// pushdown is on.
#[derive(Debug)]
pub struct Switchable {
    plain: Arc<dyn TableProvider>,
    pushing: Arc<dyn TableProvider>,
    key: Option<SourceKey>,
}

impl Switchable {
    /// The plain form (what [`TableProvider`] answers for).
    pub fn plain(&self) -> &Arc<dyn TableProvider> {
        &self.plain
    }

    /// The table's key, when its source declares one.
    pub fn key(&self) -> Option<&SourceKey> {
        self.key.as_ref()
    }
}

/// The provider of a table with `plain` and `pushing` forms and the source's
/// `key`, federated as `name` at `compute_context` (no I/O). `rules` run
/// after the pushing form is in place (pushdowns over whole sub-plans).
pub fn table_provider(
    name: &'static str,
    compute_context: String,
    plain: Arc<dyn TableProvider>,
    pushing: Arc<dyn TableProvider>,
    key: Option<SourceKey>,
    rules: Vec<Arc<dyn OptimizerRule + Send + Sync>>,
) -> Arc<dyn TableProvider> {
    let switchable: Arc<dyn TableProvider> = Arc::new(Switchable {
        plain,
        pushing,
        key,
    });
    federate(
        name,
        compute_context,
        Arc::new(Optimizer::with_rules(
            std::iter::once(Arc::new(PushDown { name }) as Arc<dyn OptimizerRule + Send + Sync>)
                .chain(rules)
                .collect(),
        )),
        switchable,
    )
}

/// `provider` behind datafusion-federation's adaptor, federated as `name` at
/// `compute_context`: when pushdown is on, sub-plans over it go through
/// `optimizer` (a connector with rules of its own brings them here).
pub fn federate(
    name: &'static str,
    compute_context: String,
    optimizer: Arc<Optimizer>,
    provider: Arc<dyn TableProvider>,
) -> Arc<dyn TableProvider> {
    let federated = Arc::new(FederatedSource {
        provider: Arc::new(Federation {
            name,
            compute_context,
            optimizer,
        }),
        schema: provider.schema(),
    });
    Arc::new(FederatedTableProviderAdaptor::new_with_provider(
        federated, provider,
    ))
}

/// The key of a table a connector opened, when its source declared one.
pub fn source_key(provider: &dyn TableProvider) -> Option<&SourceKey> {
    let any = provider as &dyn Any;
    let switchable = match any.downcast_ref::<Switchable>() {
        Some(switchable) => switchable,
        None => {
            let adaptor = any.downcast_ref::<FederatedTableProviderAdaptor>()?;
            (adaptor.table_provider.as_ref()?.as_ref() as &dyn Any).downcast_ref::<Switchable>()?
        }
    };
    switchable.key()
}

/// The plain form of a table [`table_provider`] made, or `provider` itself.
pub fn plain_form(provider: &dyn TableProvider) -> &dyn TableProvider {
    let any = provider as &dyn Any;
    if let Some(switchable) = any.downcast_ref::<Switchable>() {
        return switchable.plain.as_ref();
    }
    any.downcast_ref::<FederatedTableProviderAdaptor>()
        .and_then(|adaptor| adaptor.table_provider.as_ref())
        .and_then(|inner| (inner.as_ref() as &dyn Any).downcast_ref::<Switchable>())
        .map_or(provider, |switchable| switchable.plain.as_ref())
}

#[async_trait]
impl TableProvider for Switchable {
    fn schema(&self) -> SchemaRef {
        self.plain.schema()
    }

    fn table_type(&self) -> TableType {
        self.plain.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.plain.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.plain.scan(state, projection, filters, limit).await
    }
}

struct Federation {
    name: &'static str,
    compute_context: String,
    optimizer: Arc<Optimizer>,
}

impl FederationProvider for Federation {
    fn name(&self) -> &str {
        self.name
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.compute_context.clone())
    }

    fn optimizer(&self) -> Option<Arc<Optimizer>> {
        Some(Arc::clone(&self.optimizer))
    }
}

struct FederatedSource {
    provider: Arc<Federation>,
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

/// Swaps every scan of a [`Switchable`] table for its pushing form.
#[derive(Debug)]
struct PushDown {
    name: &'static str,
}

impl OptimizerRule for PushDown {
    fn name(&self) -> &str {
        self.name
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
            let Some(pushing) = source_as_provider(&scan.source).ok().and_then(|provider| {
                let adaptor = (provider.as_ref() as &dyn Any)
                    .downcast_ref::<FederatedTableProviderAdaptor>()?;
                let inner = adaptor.table_provider.as_ref()?;
                let switchable = (inner.as_ref() as &dyn Any).downcast_ref::<Switchable>()?;
                Some(Arc::clone(&switchable.pushing))
            }) else {
                return Ok(Transformed::no(node));
            };
            let mut scan = scan.clone();
            scan.source = provider_as_source(pushing);
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })
    }
}

//! What DataFusion sees of an Elasticsearch table: [`ElasticsearchTable`], in
//! its *plain* form (projection only, plus the full-text functions, which
//! nothing else can evaluate) or its *pushing* form (filters as query DSL —
//! exact ones leave the plan, inexact ones are re-checked — and a `LIMIT` as
//! the most hits read). Which form a query gets is [`super::federation`]'s
//! business.
//!
//! Either way the scan is a [`RemoteScanExec`] of one [`SearchRequest`] per
//! slice, which the remote core ships to workers.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableScan, TableType};
use datafusion::physical_plan::ExecutionPlan;

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

/// One index (or pattern, or alias) of one server.
#[derive(Debug, Clone)]
pub struct ElasticsearchTable {
    pub(super) source: Arc<ElasticsearchSource>,
    pub(super) index: String,
    pub(super) columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    /// The pushing form (filters and limits to the server).
    pushdown: bool,
    /// A top-n read: the server's sort clauses and n (`ORDER BY … LIMIT n`
    /// over exact filters; DataFusion still sorts and limits what comes back).
    top: Option<(Vec<serde_json::Value>, u64)>,
}

impl ElasticsearchTable {
    /// The plain form of `index` on `source` with the stored `columns`.
    pub fn new(source: &Arc<ElasticsearchSource>, index: &str, columns: Vec<Column>) -> Self {
        Self {
            source: Arc::clone(source),
            index: index.to_string(),
            schema: super::mapping::schema(&columns),
            columns: Arc::new(columns),
            pushdown: false,
            top: None,
        }
    }

    /// The columns (for planning what can be pushed).
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The same (pushing) table read as the first `n` hits in `sort` order.
    pub fn top(&self, sort: Vec<serde_json::Value>, n: u64) -> Self {
        Self {
            top: Some((sort, n)),
            ..self.clone()
        }
    }

    /// The same table in its pushing form.
    pub fn pushing(&self) -> Self {
        Self {
            pushdown: true,
            ..self.clone()
        }
    }
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
        let limit = match &self.top {
            Some((_, n)) => Some(limit.map_or(*n, |l| (l as u64).min(*n))),
            None => limit.filter(|_| self.pushdown).map(|l| l as u64),
        };
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
        let sort = self
            .top
            .as_ref()
            .map_or(&[][..], |(sort, _)| sort.as_slice());
        let requests = SearchRequest::plan(
            &self.index,
            &columns,
            query,
            sort,
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

/// The pushing form of the table `scan` reads, when it is one.
pub(super) fn pushing_table(scan: &TableScan) -> Option<ElasticsearchTable> {
    let provider = source_as_provider(&scan.source).ok()?;
    let table = (provider.as_ref() as &dyn Any).downcast_ref::<ElasticsearchTable>()?;
    table.pushdown.then(|| table.clone())
}

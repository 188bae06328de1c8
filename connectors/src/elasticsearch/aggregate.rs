//! `GROUP BY` and aggregates pushed to the server as one composite
//! aggregation, paged through every bucket (`after_key`), so a grouping of a
//! million groups is complete.
//!
//! An aggregation over a pushing scan (with or without a filter) is pushed
//! when everything in it has an exact counterpart:
//!
//! - every filter translates exactly ([`super::dsl`]);
//! - every group is a keyword, numeric, boolean or `date` column (a `terms`
//!   source with a bucket for missing values, as SQL groups NULLs) or
//!   `date_trunc('unit', date column)` (a `date_histogram`);
//! - every aggregate is `count(*)` (the bucket's document count),
//!   `count(column)` (`value_count`), `min`/`max` of a numeric or `date`
//!   column, or `sum`/`avg` of a numeric column; `sum` and `avg` of integers
//!   are computed exactly by Vivace from the server's sum and count (the sum is
//!   exact up to 2^53; a larger one is an error, not a rounded answer).
//!   `count(DISTINCT …)` stays with DataFusion unless the table opts into
//!   approximation (`approximate_distinct`): then it is the server's
//!   `cardinality` (HyperLogLog++, exact below 40,000 values in practice).
//!
//! The aggregation becomes a scan of its result ([`AggregateTable`]) under a
//! projection restoring the original column names; otherwise nothing changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Column as ColumnRef, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, Projection, TableScanBuilder, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use serde_json::{Map, Value, json};

use super::dsl;
use super::mapping::Column;
use super::provider::{ElasticsearchTable, pushing_table};
use super::request::{Output, SearchRequest};
use super::source::ElasticsearchSource;
use crate::remote::{RemoteScanExec, RemoteSource};

/// Buckets per composite page.
pub const BUCKETS_PER_PAGE: u32 = 1000;

/// `aggregate` as a scan of its result, when the server can compute it.
pub fn push(aggregate: &Aggregate) -> DFResult<Option<LogicalPlan>> {
    let (predicates, scan) = match aggregate.input.as_ref() {
        LogicalPlan::Filter(filter) => match filter.input.as_ref() {
            LogicalPlan::TableScan(scan) => (split_conjunction(&filter.predicate), scan),
            _ => return Ok(None),
        },
        LogicalPlan::TableScan(scan) => (vec![], scan),
        _ => return Ok(None),
    };
    if !scan.filters.is_empty() || scan.fetch.is_some() {
        return Ok(None);
    }
    let Some(table) = pushing_table(scan) else {
        return Ok(None);
    };
    let Some(plan) = plan(aggregate, &predicates, &table) else {
        return Ok(None);
    };
    let schema = Arc::new(Schema::new(
        aggregate
            .schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let result = AggregateTable {
        source: Arc::clone(&table.source),
        index: table.index.clone(),
        body: plan.body,
        outputs: plan.outputs,
        schema,
    };
    let read = LogicalPlan::TableScan(
        TableScanBuilder::new(
            scan.table_name.clone(),
            provider_as_source(Arc::new(result)),
        )
        .build()?,
    );
    let exprs = aggregate
        .schema
        .iter()
        .map(|(qualifier, field)| {
            Expr::Column(ColumnRef::new(Some(scan.table_name.clone()), field.name()))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(read),
    )?)))
}

struct Planned {
    body: Value,
    outputs: Vec<Output>,
}

fn plan(
    aggregate: &Aggregate,
    predicates: &[&Expr],
    table: &ElasticsearchTable,
) -> Option<Planned> {
    let columns = table.columns.as_ref();
    let mut clauses = Vec::new();
    for predicate in predicates {
        let translated = dsl::translate(predicate, columns)?;
        if !translated.exact {
            return None;
        }
        clauses.push(translated.query);
    }
    let query = match clauses.len() {
        0 => json!({ "match_all": {} }),
        1 => clauses.pop()?,
        _ => json!({ "bool": { "filter": clauses } }),
    };
    let mut sources = Vec::new();
    let mut outputs = Vec::new();
    for (i, group) in aggregate.group_expr.iter().enumerate() {
        let name = format!("g{i}");
        sources.push(json!({ &name: group_source(group, columns)? }));
        outputs.push(Output::Key { source: name });
    }
    let mut metrics = Map::new();
    for (i, expr) in aggregate.aggr_expr.iter().enumerate() {
        let Expr::AggregateFunction(function) = unalias(expr) else {
            return None;
        };
        let approximate = table.source.options().approximate_distinct;
        outputs.push(metric(i, function, columns, approximate, &mut metrics)?);
    }
    let mut body = Map::new();
    body.insert("size".into(), json!(0));
    body.insert("query".into(), query);
    if sources.is_empty() {
        body.insert("track_total_hits".into(), json!(true));
        if !metrics.is_empty() {
            body.insert("aggs".into(), Value::Object(metrics));
        }
    } else {
        body.insert("track_total_hits".into(), json!(false));
        let mut groups = json!({
            "composite": { "size": BUCKETS_PER_PAGE, "sources": sources }
        });
        if !metrics.is_empty() {
            groups["aggs"] = Value::Object(metrics);
        }
        body.insert("aggs".into(), json!({ "groups": groups }));
    }
    Some(Planned {
        body: Value::Object(body),
        outputs,
    })
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        other => other,
    }
}

/// The column `expr` reads, through casts (type coercion wraps aggregate
/// arguments in them).
fn column_of<'a>(expr: &Expr, columns: &'a [Column]) -> Option<&'a Column> {
    match expr {
        Expr::Column(c) => columns.iter().find(|col| col.name == c.name),
        Expr::Cast(cast) => column_of(&cast.expr, columns),
        _ => None,
    }
}

/// Whether the server's buckets of this column hold exactly Vivace's values:
/// an `ip` bucket's key is the address as text, as Vivace reads it, while a
/// `date_nanos` key is cut to milliseconds.
fn aggregatable(column: &Column) -> bool {
    column.doc_values_match() || (!column.is_list() && column.es_type == "ip")
}

fn numeric(column: &Column) -> bool {
    matches!(
        column.es_type.as_str(),
        "long" | "integer" | "short" | "byte" | "double" | "float"
    )
}

fn group_source(expr: &Expr, columns: &[Column]) -> Option<Value> {
    match expr {
        Expr::Column(_) => {
            let column = column_of(expr, columns)?;
            aggregatable(column)
                .then(|| json!({ "terms": { "field": &column.name, "missing_bucket": true } }))
        }
        Expr::ScalarFunction(call) if call.func.name() == "date_trunc" => {
            let [
                Expr::Literal(ScalarValue::Utf8(Some(unit)) | ScalarValue::Utf8View(Some(unit)), _),
                arg,
            ] = call.args.as_slice()
            else {
                return None;
            };
            let Expr::Column(_) = arg else {
                return None;
            };
            let column = column_of(arg, columns)?;
            let unit = unit.to_ascii_lowercase();
            let known = [
                "second", "minute", "hour", "day", "week", "month", "quarter", "year",
            ];
            (column.es_type == "date" && known.contains(&unit.as_str())).then(|| {
                json!({ "date_histogram": {
                    "field": &column.name, "calendar_interval": unit, "missing_bucket": true
                } })
            })
        }
        _ => None,
    }
}

fn metric(
    i: usize,
    function: &AggregateFunction,
    columns: &[Column],
    approximate_distinct: bool,
    metrics: &mut Map<String, Value>,
) -> Option<Output> {
    let params = &function.params;
    if params.filter.is_some() || !params.order_by.is_empty() {
        return None;
    }
    let name = function.func.name().to_ascii_lowercase();
    if params.distinct {
        // `count(DISTINCT c)` as the server's HyperLogLog++ `cardinality`,
        // only when the table opts into approximation.
        let [arg] = params.args.as_slice() else {
            return None;
        };
        let column = column_of(arg, columns)?;
        if name != "count" || !approximate_distinct || !aggregatable(column) {
            return None;
        }
        let agg = format!("d{i}");
        metrics.insert(
            agg.clone(),
            json!({ "cardinality": { "field": &column.name, "precision_threshold": 40000 } }),
        );
        return Some(Output::Count { agg });
    }
    let count_of = |column: &Column, metrics: &mut Map<String, Value>| {
        let agg = format!("c{i}");
        metrics.insert(
            agg.clone(),
            json!({ "value_count": { "field": &column.name } }),
        );
        agg
    };
    match (name.as_str(), params.args.as_slice()) {
        ("count", []) => Some(Output::DocCount),
        ("count", [Expr::Literal(value, _)]) if !value.is_null() => Some(Output::DocCount),
        ("count", [arg]) => {
            let column = column_of(arg, columns)?;
            aggregatable(column).then(|| Output::Count {
                agg: count_of(column, metrics),
            })
        }
        ("min" | "max" | "sum", [arg]) => {
            let column = column_of(arg, columns)?;
            let fits = match name.as_str() {
                "sum" => numeric(column),
                _ => numeric(column) || column.es_type == "date",
            };
            if !fits || !aggregatable(column) {
                return None;
            }
            let agg = format!("m{i}");
            metrics.insert(
                agg.clone(),
                json!({ name.as_str(): { "field": &column.name } }),
            );
            Some(Output::Value {
                agg,
                count: count_of(column, metrics),
            })
        }
        ("avg", [arg]) => {
            let column = column_of(arg, columns)?;
            if !numeric(column) || !aggregatable(column) {
                return None;
            }
            let sum = format!("s{i}");
            metrics.insert(sum.clone(), json!({ "sum": { "field": &column.name } }));
            Some(Output::Avg {
                sum,
                count: count_of(column, metrics),
            })
        }
        _ => None,
    }
}

/// The result of a pushed aggregation, read as a table.
#[derive(Debug)]
struct AggregateTable {
    source: Arc<ElasticsearchSource>,
    index: String,
    body: Value,
    outputs: Vec<Output>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for AggregateTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let (schema, outputs) = match projection {
            Some(indices) => (
                Arc::new(self.schema.project(indices)?),
                indices.iter().map(|i| self.outputs[*i].clone()).collect(),
            ),
            None => (Arc::clone(&self.schema), self.outputs.clone()),
        };
        let request = SearchRequest {
            index: self.index.clone(),
            body: self.body.clone(),
            limit: None,
            page_size: BUCKETS_PER_PAGE,
            columns: BTreeMap::new(),
            buckets: Some(outputs),
        };
        let request = serde_json::to_string(&request)
            .map_err(|e| datafusion::error::DataFusionError::Internal(e.to_string()))?;
        Ok(Arc::new(RemoteScanExec::new(
            Arc::clone(&self.source) as Arc<dyn RemoteSource>,
            vec![request],
            schema,
            None,
            1,
        )))
    }
}

/// Whether `provider` is the result of a pushed aggregation.
pub fn is_aggregate_table(provider: &dyn TableProvider) -> bool {
    (provider as &dyn std::any::Any).is::<AggregateTable>()
}

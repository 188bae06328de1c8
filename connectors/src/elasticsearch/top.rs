//! `ORDER BY … LIMIT n` over one table as a sorted read of n hits: the server
//! sorts (its `sort` clauses, NULLs first or last as SQL asks) and sends only
//! the first n; DataFusion still sorts and limits those n rows, so the answer
//! is its own. Pushed when every sort key is a column the server orders as
//! Vivace does (keyword types by bytes, numbers, booleans, dates), every
//! filter below is exact, and n is at most 10,000.

use std::sync::Arc;

use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, Limit, LogicalPlan};
use serde_json::{Value, json};

use super::dsl;
use super::mapping::Column;
use super::provider::pushing_table;

/// Most hits a top-n read asks for.
const MAX_TOP: u64 = 10_000;

/// `limit` with its scan replaced by a top-n read, when it can be.
pub fn push(limit: &Limit) -> DFResult<Option<LogicalPlan>> {
    let (Ok(SkipType::Literal(skip)), Ok(FetchType::Literal(Some(fetch)))) =
        (limit.get_skip_type(), limit.get_fetch_type())
    else {
        return Ok(None);
    };
    let n = (skip + fetch) as u64;
    if n > MAX_TOP {
        return Ok(None);
    }
    // A projection may sit between the limit and the sort (it drops sort
    // keys the select list does not show).
    let below_limit = match limit.input.as_ref() {
        LogicalPlan::Projection(projection) => projection.input.as_ref(),
        other => other,
    };
    let LogicalPlan::Sort(sort) = below_limit else {
        return Ok(None);
    };
    // Through a projection of plain columns, a filter, to the scan.
    let mut renames: Vec<(String, String)> = Vec::new();
    let mut node = sort.input.as_ref();
    if let LogicalPlan::Projection(projection) = node {
        for (expr, (_, field)) in projection.expr.iter().zip(projection.schema.iter()) {
            let inner = match expr {
                Expr::Alias(alias) => alias.expr.as_ref(),
                other => other,
            };
            if let Expr::Column(c) = inner {
                renames.push((field.name().clone(), c.name.clone()));
            }
        }
        node = projection.input.as_ref();
    }
    let mut predicates = Vec::new();
    if let LogicalPlan::Filter(filter) = node {
        predicates = split_conjunction(&filter.predicate);
        node = filter.input.as_ref();
    }
    let LogicalPlan::TableScan(scan) = node else {
        return Ok(None);
    };
    if !scan.filters.is_empty() {
        return Ok(None);
    }
    let Some(table) = pushing_table(scan) else {
        return Ok(None);
    };
    let columns = table.columns();
    if !predicates
        .iter()
        .all(|p| dsl::translate(p, columns).is_some_and(|t| t.exact))
    {
        return Ok(None);
    }
    let mut clauses = Vec::new();
    for key in &sort.expr {
        let Expr::Column(c) = &key.expr else {
            return Ok(None);
        };
        let name = renames
            .iter()
            .find(|(shown, _)| *shown == c.name)
            .map_or(c.name.as_str(), |(_, source)| source.as_str());
        let Some(column) = columns.iter().find(|col| col.name == name) else {
            return Ok(None);
        };
        let Some(clause) = sort_clause(column, key.asc, key.nulls_first) else {
            return Ok(None);
        };
        clauses.push(clause);
    }
    let top = table.top(clauses, n);
    let mut scan = scan.clone();
    scan.source = provider_as_source(Arc::new(top));
    // Rebuild the chain over the new scan; everything above stays as it was.
    let new_input = rebuild(limit.input.as_ref(), LogicalPlan::TableScan(scan))?;
    Ok(Some(LogicalPlan::Limit(Limit {
        skip: limit.skip.clone(),
        fetch: limit.fetch.clone(),
        input: Arc::new(new_input),
    })))
}

/// `plan` (a chain of single-input nodes ending in a scan) over `scan`.
fn rebuild(plan: &LogicalPlan, scan: LogicalPlan) -> DFResult<LogicalPlan> {
    match plan {
        LogicalPlan::TableScan(_) => Ok(scan),
        other => {
            let input = other.inputs().first().copied().cloned();
            let Some(input) = input else {
                return Ok(other.clone());
            };
            let rebuilt = rebuild(&input, scan)?;
            other.with_new_exprs(other.expressions(), vec![rebuilt])
        }
    }
}

/// The server's sort clause for a column, when it orders as SQL does.
fn sort_clause(column: &Column, asc: bool, nulls_first: bool) -> Option<Value> {
    // `date_nanos` sorts by its full value as Vivace does; `ip` sorts by the
    // address's bytes, not as Vivace orders its text.
    let sortable =
        column.doc_values_match() || (!column.is_list() && column.es_type == "date_nanos");
    if !sortable {
        return None;
    }
    Some(json!({ &column.name: {
        "order": if asc { "asc" } else { "desc" },
        "missing": if nulls_first { "_first" } else { "_last" },
    } }))
}

//! `PER PARTITION LIMIT`: the top rows of every partition, read from Cassandra
//! rather than all rows filtered in Vivace.
//!
//! SQL asks for "the first n rows of each partition" with a row number:
//!
//! ```sql
//! SELECT * FROM (
//!   SELECT *, row_number() OVER (PARTITION BY user_id, day ORDER BY ts) AS rn FROM sessions
//! ) t WHERE rn <= 3;
//! ```
//!
//! When the window's `PARTITION BY` is exactly the partition key, its
//! `ORDER BY` is empty or a prefix of the clustering columns in their stored
//! order (Cassandra returns each partition's rows in that order), the window
//! computes nothing else, and every filter under it is pushed exactly (so
//! Cassandra's rows are the rows the window would number), a partition's
//! rows past the n-th can never pass `rn <= n`: the scan asks for
//! `PER PARTITION LIMIT n`. The window and the filter still run in Vivace, so
//! the answer is the same either way; only fewer rows move.

use std::any::Any;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column as ColumnRef, ScalarValue};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown, TableScan,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::provider::CassandraTable;
use super::schema::Role;

/// The rule; runs after the pushing form replaced the plain one.
#[derive(Debug)]
pub struct PerPartitionLimit;

impl OptimizerRule for PerPartitionLimit {
    fn name(&self) -> &str {
        "cassandra_per_partition_limit"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DFResult<Transformed<LogicalPlan>> {
        plan.transform_down(|node| {
            let LogicalPlan::Filter(filter) = &node else {
                return Ok(Transformed::no(node));
            };
            for (column, n) in split_conjunction(&filter.predicate)
                .into_iter()
                .filter_map(row_bound)
            {
                if let Some(input) = limit_under(&filter.input, &column, n)? {
                    let mut filter = filter.clone();
                    filter.input = Arc::new(input);
                    return Ok(Transformed::yes(LogicalPlan::Filter(filter)));
                }
            }
            Ok(Transformed::no(node))
        })
    }
}

/// `rn <= n`, `rn < n + 1` or `rn = 1` (either way round): the column and n.
fn row_bound(expr: &Expr) -> Option<(ColumnRef, u64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (column, op, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => (c, *op, v),
        (Expr::Literal(v, _), Expr::Column(c)) => (c, op.swap()?, v),
        _ => return None,
    };
    let value = integer(value)?;
    let n = match op {
        Operator::LtEq => value,
        Operator::Lt => value.checked_sub(1)?,
        Operator::Eq if value == 1 => 1,
        _ => return None,
    };
    (n >= 1).then(|| (column.clone(), n as u64))
}

fn integer(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// `plan` with the Cassandra scan under it reading at most `n` rows per
/// partition, when `column` is a qualifying row number ([module docs](self)).
fn limit_under(plan: &LogicalPlan, column: &ColumnRef, n: u64) -> DFResult<Option<LogicalPlan>> {
    match plan {
        // Renames and column lists: follow the column to what it names.
        LogicalPlan::Projection(projection) => {
            let Ok(index) = projection.schema.index_of_column(column) else {
                return Ok(None);
            };
            let Expr::Column(inner) = strip_alias(&projection.expr[index]) else {
                return Ok(None);
            };
            let Some(input) = limit_under(&projection.input, inner, n)? else {
                return Ok(None);
            };
            Ok(Some(plan.with_new_exprs(plan.expressions(), vec![input])?))
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let Ok(index) = alias.schema.index_of_column(column) else {
                return Ok(None);
            };
            let inner = ColumnRef::from(alias.input.schema().qualified_field(index));
            let Some(input) = limit_under(&alias.input, &inner, n)? else {
                return Ok(None);
            };
            Ok(Some(plan.with_new_exprs(vec![], vec![input])?))
        }
        LogicalPlan::Window(window) => {
            let Ok(index) = window.schema.index_of_column(column) else {
                return Ok(None);
            };
            let inputs = window.input.schema().fields().len();
            // The window computes only this row number, straight over the scan.
            if index < inputs || window.window_expr.len() != 1 {
                return Ok(None);
            }
            // Filters between the window and the scan are still nodes here
            // (the plain form took none); all must be pushed exactly.
            let mut below = window.input.as_ref();
            let mut filters: Vec<Expr> = Vec::new();
            while let LogicalPlan::Filter(filter) = below {
                filters.extend(split_conjunction(&filter.predicate).into_iter().cloned());
                below = filter.input.as_ref();
            }
            let LogicalPlan::TableScan(scan) = below else {
                return Ok(None);
            };
            filters.extend(scan.filters.iter().cloned());
            let Some(limited) =
                limited_scan(scan, strip_alias(&window.window_expr[0]), &filters, n)?
            else {
                return Ok(None);
            };
            let input = Arc::unwrap_or_clone(Arc::clone(&window.input))
                .transform_up(|node| match node {
                    LogicalPlan::TableScan(_) => {
                        Ok(Transformed::yes(LogicalPlan::TableScan(limited.clone())))
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data;
            Ok(Some(plan.with_new_exprs(plan.expressions(), vec![input])?))
        }
        _ => Ok(None),
    }
}

fn strip_alias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => strip_alias(&alias.expr),
        other => other,
    }
}

/// `scan` reading at most `n` rows per partition, when it is a Cassandra
/// scan in its pushing form that takes every one of `filters` exactly and
/// `window` numbers its partitions' rows in stored order.
fn limited_scan(
    scan: &TableScan,
    window: &Expr,
    filters: &[Expr],
    n: u64,
) -> DFResult<Option<TableScan>> {
    let Ok(provider) = source_as_provider(&scan.source) else {
        return Ok(None);
    };
    let Some(table) = (provider.as_ref() as &dyn Any).downcast_ref::<CassandraTable>() else {
        return Ok(None);
    };
    if !table.is_pushing() || scan.fetch.is_some() {
        return Ok(None);
    }
    let filters: Vec<&Expr> = filters.iter().collect();
    if table
        .supports_filters_pushdown(&filters)?
        .iter()
        .any(|v| *v != TableProviderFilterPushDown::Exact)
    {
        return Ok(None);
    }
    Ok(numbered_in_stored_order(table, window).map(|()| {
        let mut scan = scan.clone();
        scan.source = provider_as_source(Arc::new(table.with_per_partition_limit(n)));
        scan
    }))
}

/// `Some` when `window` is a row number over `table`'s partitions in the
/// order Cassandra stores their rows (or in no order); `None` at the first
/// check that fails.
fn numbered_in_stored_order(table: &CassandraTable, window: &Expr) -> Option<()> {
    let Expr::WindowFunction(function) = window else {
        return None;
    };
    let WindowFunction { fun, params } = function.as_ref();
    if fun.name() != "row_number" || params.filter.is_some() || !params.args.is_empty() {
        return None;
    }
    let columns = table.columns();
    let named = |expr: &Expr| match expr {
        Expr::Column(c) => columns.iter().find(|col| col.name == c.name),
        _ => None,
    };
    // PARTITION BY exactly the partition key, in any order.
    let key: Vec<&str> = columns
        .iter()
        .filter(|c| c.role == Role::PartitionKey)
        .map(|c| c.name.as_str())
        .collect();
    let mut by: Vec<&str> = params
        .partition_by
        .iter()
        .map(|e| named(e).map(|c| c.name.as_str()))
        .collect::<Option<_>>()?;
    by.sort_unstable();
    by.dedup();
    let mut sorted_key = key.clone();
    sorted_key.sort_unstable();
    if by != sorted_key {
        return None;
    }
    // ORDER BY a prefix of the clustering columns, each in stored order.
    let clustering = columns.iter().filter(|c| c.role == Role::Clustering);
    if params.order_by.len() > clustering.clone().count() {
        return None;
    }
    for (sort, column) in params.order_by.iter().zip(clustering) {
        let named = named(&sort.expr)?;
        if named.name != column.name || sort.asc == column.descending {
            return None;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn row_bounds() {
        assert_eq!(row_bound(&col("rn").lt_eq(lit(3i64))).map(|b| b.1), Some(3));
        assert_eq!(row_bound(&col("rn").lt(lit(3u64))).map(|b| b.1), Some(2));
        assert_eq!(row_bound(&lit(4i32).gt_eq(col("rn"))).map(|b| b.1), Some(4));
        assert_eq!(row_bound(&col("rn").eq(lit(1i64))).map(|b| b.1), Some(1));
        assert_eq!(row_bound(&col("rn").eq(lit(2i64))), None);
        assert_eq!(row_bound(&col("rn").lt(lit(1i64))), None);
        assert_eq!(row_bound(&col("rn").gt(lit(1i64))), None);
    }
}

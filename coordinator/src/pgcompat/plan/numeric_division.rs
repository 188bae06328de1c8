//! `/` on `numeric` as PostgreSQL divides.
//!
//! DataFusion divides decimals at a scale fixed by the types and truncates
//! (`x / 3` on a `numeric(15,2)` gave 0.333333 where PostgreSQL gives
//! 0.33333333333333333333, and 1.00 / 30000000 gave 0.000000). Before type
//! coercion, every division with a decimal on one side and a decimal or an
//! integer on the other becomes [`vivace_functions::numeric_div`], which
//! rounds to PostgreSQL's result scale; the types of everything above it
//! follow from that function's result type. Names of output columns are kept.
//! Pushed down to PostgreSQL, the function is written back as `/`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; it runs before DataFusion's type coercion.
#[derive(Debug)]
pub struct NumericDivision;

impl AnalyzerRule for NumericDivision {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = expression_schema(&node)?;
            let names = NamePreserver::new(&node);
            let rewritten = node.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| divide_as_postgres(e, &schema))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })?;
            if rewritten.transformed {
                rewritten.map_data(|plan| plan.recompute_schema())
            } else {
                Ok(rewritten)
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "vivace_numeric_division"
    }
}

/// The columns a node's expressions can name: its inputs', or a scan's own.
fn expression_schema(node: &LogicalPlan) -> Result<DFSchema> {
    let mut schema = merge_schema(&node.inputs());
    if let LogicalPlan::TableScan(scan) = node {
        schema.merge(&DFSchema::try_from_qualified_schema(
            scan.table_name.clone(),
            &scan.source.schema(),
        )?);
    }
    Ok(schema)
}

fn is_decimal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..)
    )
}

fn divide_as_postgres(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Divide,
        right,
    }) = &expr
    else {
        return Ok(Transformed::no(expr));
    };
    let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
        return Ok(Transformed::no(expr));
    };
    let numeric = (is_decimal(&l) && (is_decimal(&r) || r.is_integer()))
        || (l.is_integer() && is_decimal(&r));
    if !numeric {
        return Ok(Transformed::no(expr));
    }
    let Expr::BinaryExpr(BinaryExpr { left, right, .. }) = expr else {
        unreachable!("matched above")
    };
    Ok(Transformed::yes(
        vivace_functions::numeric_div().call(vec![*left, *right]),
    ))
}

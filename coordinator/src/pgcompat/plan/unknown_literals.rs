//! PostgreSQL's "unknown"-typed string literals, for booleans.
//!
//! In PostgreSQL a quoted literal takes the type of what it is compared with:
//! `ix.indisprimary = 'f'` (SQLAlchemy 1.4's index query) compares booleans.
//! DataFusion types every quoted literal as text and finds no common type for
//! `Boolean = Utf8`. This analyzer rule runs before DataFusion's type coercion
//! and turns a string literal compared with a boolean expression into the
//! boolean PostgreSQL would read from it (`t`, `true`, `yes`, `on`, `1`, ...).
//! Other types already coerce from text in DataFusion.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; insert it before `type_coercion`.
#[derive(Debug, Default)]
pub struct BooleanLiterals;

impl AnalyzerRule for BooleanLiterals {
    fn name(&self) -> &str {
        "postgres_boolean_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let mut schema = DFSchema::empty();
            for input in node.inputs() {
                schema.merge(input.schema());
            }
            node.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) => {
                        let (left, l) = typed(*left, &right, &schema);
                        let (right, r) = typed(*right, &left, &schema);
                        let expr =
                            Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right)));
                        Ok(if l || r {
                            Transformed::yes(expr)
                        } else {
                            Transformed::no(expr)
                        })
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|t| t.data)
    }
}

fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq | Operator::NotEq | Operator::IsDistinctFrom | Operator::IsNotDistinctFrom
    )
}

/// `literal` as a boolean when `other` is boolean-typed and the text reads as one.
fn typed(literal: Expr, other: &Expr, schema: &DFSchema) -> (Expr, bool) {
    let text = match &literal {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => s,
        _ => return (literal, false),
    };
    if !matches!(other.get_type(schema), Ok(DataType::Boolean)) {
        return (literal, false);
    }
    match parse_bool(text) {
        Some(b) => (Expr::Literal(ScalarValue::Boolean(Some(b)), None), true),
        None => (literal, false),
    }
}

/// PostgreSQL's boolin: unique prefixes of true/false/yes/no, on/off, 1/0.
fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim().to_ascii_lowercase();
    let prefix_of = |word: &str| !t.is_empty() && word.starts_with(t.as_str());
    match t.as_str() {
        "1" | "on" => Some(true),
        "0" | "off" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bool;

    #[test]
    fn reads_booleans_as_postgres_does() {
        for t in ["t", "true", "TRUE", "y", "yes", "on", "1", " tr "] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["f", "false", "n", "no", "off", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "o", "maybe", "2"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }
}

//! The SQL dialect pushed-down statements are written in for PostgreSQL:
//! DataFusion's PostgreSQL dialect, plus Vivace's own functions written back
//! as the PostgreSQL they stand for (`numeric_div(a, b)` is `a / b`, which
//! PostgreSQL computes with the same scale and rounding).

use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{
    Dialect, DistinctFromStyle, IntervalStyle, PostgreSqlDialect,
};

/// DataFusion's [`PostgreSqlDialect`] with Vivace's functions rendered.
#[derive(Debug, Default, Clone, Copy)]
pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn use_array_keyword_for_array_literals(&self) -> bool {
        PostgreSqlDialect {}.use_array_keyword_for_array_literals()
    }

    fn supports_qualify(&self) -> bool {
        PostgreSqlDialect {}.supports_qualify()
    }

    fn requires_derived_table_alias(&self) -> bool {
        PostgreSqlDialect {}.requires_derived_table_alias()
    }

    fn supports_empty_select_list(&self) -> bool {
        PostgreSqlDialect {}.supports_empty_select_list()
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        PostgreSqlDialect {}.identifier_quote_style(identifier)
    }

    fn interval_style(&self) -> IntervalStyle {
        PostgreSqlDialect {}.interval_style()
    }

    fn float64_ast_dtype(&self) -> ast::DataType {
        PostgreSqlDialect {}.float64_ast_dtype()
    }

    fn int8_cast_dtype(&self) -> ast::DataType {
        PostgreSqlDialect {}.int8_cast_dtype()
    }

    fn distinct_from_style(&self) -> DistinctFromStyle {
        PostgreSqlDialect {}.distinct_from_style()
    }

    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        if let (vivace_functions::NUMERIC_DIV, [a, b]) = (func_name, args) {
            return Ok(Some(ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
                left: Box::new(unparser.expr_to_sql(a)?),
                op: ast::BinaryOperator::Divide,
                right: Box::new(unparser.expr_to_sql(b)?),
            }))));
        }
        PostgreSqlDialect {}.scalar_function_to_sql_overrides(unparser, func_name, args)
    }
}

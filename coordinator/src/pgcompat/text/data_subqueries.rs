//! Keep select-list subqueries over data tables away from datafusion-pg-catalog's
//! `RemoveSubqueryFromProjection` rule.
//!
//! That rule replaces every correlated scalar subquery that is a whole select
//! item with NULL (and caps the others with `LIMIT 1`), so that psql's and the
//! drivers' catalog queries, whose subqueries DataFusion cannot decorrelate,
//! still plan. Applied to a user's query it silently answers NULL:
//! `SELECT o.id, (SELECT max(l.qty) FROM lines l WHERE l.order_id = o.id) FROM
//! orders o` would return a NULL column. Its correlation test also counts any
//! table named without an alias as an outer reference.
//!
//! The rule only matches a subquery that is the select item itself, so a
//! subquery that reads anything other than `pg_catalog` or
//! `information_schema` is wrapped in parentheses before the text reaches that
//! parser: it then plans as written, and DataFusion either decorrelates it or
//! says it cannot.
//!
//! DataFusion also does not check that a scalar subquery yields at most one
//! row (an uncorrelated one that yields two multiplies the outer rows). So the
//! single output of a plain, unaggregated data subquery is wrapped in the
//! aggregate `vivace_single_row(...)`, which answers the one value (NULL for
//! none) and fails with PostgreSQL's 21000 "more than one row returned by a
//! subquery used as an expression" on a second row.

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Visit, VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `sql` with each select-list subquery that reads data tables parenthesised;
/// borrowed unchanged when there is none or the text is not one statement that
/// parses (the real parser reports the error).
pub fn protect(sql: &str) -> Cow<'_, str> {
    if !sql.to_ascii_lowercase().contains("select") {
        return sql.into();
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return sql.into();
    };
    let [statement] = statements.as_mut_slice() else {
        return sql.into();
    };
    let mut wrapper = Wrapper { changed: false };
    let _ = statement.visit(&mut wrapper);
    if wrapper.changed {
        statement.to_string().into()
    } else {
        sql.into()
    }
}

struct Wrapper {
    changed: bool,
}

impl VisitorMut for Wrapper {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                let expr = match item {
                    SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
                    _ => continue,
                };
                if let Expr::Subquery(subquery) = expr
                    && reads_data(subquery)
                {
                    let mut subquery = subquery.clone();
                    require_single_row(&mut subquery);
                    *expr = Expr::Nested(Box::new(Expr::Subquery(subquery)));
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Wrap the output of a plain one-column subquery (no aggregate, GROUP BY,
/// DISTINCT, ORDER BY or LIMIT) in `vivace_single_row(...)`, keeping the
/// column's PostgreSQL name.
fn require_single_row(query: &mut Query) {
    if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let plain_grouping = match &select.group_by {
        datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(exprs, _) => exprs.is_empty(),
        datafusion::sql::sqlparser::ast::GroupByExpr::All(_) => false,
    };
    if !plain_grouping || select.having.is_some() || select.distinct.is_some() {
        return;
    }
    let [item] = select.projection.as_mut_slice() else {
        return;
    };
    let (expr, alias) = match item {
        SelectItem::UnnamedExpr(expr) => (
            expr.clone(),
            crate::pgcompat::statement::colnames::expr_name(expr),
        ),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.value.clone())),
        _ => return,
    };
    if crate::pgcompat::statement::sql_rewrite::calls_aggregate(&expr) {
        return;
    }
    let wrapped = Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(SINGLE_ROW))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    });
    *item = match alias {
        Some(alias) => SelectItem::ExprWithAlias {
            expr: wrapped,
            alias: Ident::with_quote('"', alias),
        },
        None => SelectItem::UnnamedExpr(wrapped),
    };
}

/// Name of the aggregate that enforces a scalar subquery's single row.
const SINGLE_ROW: &str = "vivace_single_row";

/// The aggregate the rewrite calls, registered on every session.
pub fn single_row_aggregate() -> AggregateUDF {
    AggregateUDF::new_from_impl(SingleRow {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleRow {
    signature: Signature,
}

impl AggregateUDFImpl for SingleRow {
    fn name(&self) -> &str {
        SINGLE_ROW
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleRowAccumulator {
            value: ScalarValue::try_from(args.return_field.data_type())?,
            rows: 0,
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Field::new("value", args.return_field.data_type().clone(), true).into(),
            Field::new("rows", DataType::UInt64, false).into(),
        ])
    }
}

/// The value seen and how many rows carried it.
#[derive(Debug)]
struct SingleRowAccumulator {
    value: ScalarValue,
    rows: u64,
}

impl SingleRowAccumulator {
    fn add(&mut self, value: ScalarValue, rows: u64) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows;
        if self.rows > 1 {
            return Err(DataFusionError::External(Box::new(
                crate::error::SqlError::new(
                    crate::error::sqlstate::CARDINALITY_VIOLATION,
                    "more than one row returned by a subquery used as an expression",
                ),
            )));
        }
        self.value = value;
        Ok(())
    }
}

impl Accumulator for SingleRowAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for row in 0..values[0].len() {
            self.add(ScalarValue::try_from_array(&values[0], row)?, 1)?;
        }
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            let rows = match ScalarValue::try_from_array(&states[1], row)? {
                ScalarValue::UInt64(Some(n)) => n,
                _ => 0,
            };
            self.add(ScalarValue::try_from_array(&states[0], row)?, rows)?;
        }
        Ok(())
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::UInt64(Some(self.rows)),
        ])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }
}

/// Whether `query` names any relation outside the system catalogs.
fn reads_data(query: &Query) -> bool {
    struct Relations(bool);
    impl Visitor for Relations {
        type Break = ();
        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            if !is_catalog(relation) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut relations = Relations(false);
    let _ = query.visit(&mut relations);
    relations.0
}

/// `pg_catalog.*`, `information_schema.*`, or an unqualified `pg_*` name.
fn is_catalog(name: &ObjectName) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|part| part.as_ident().map(|i| i.value.to_ascii_lowercase()))
        .collect();
    match parts.as_slice() {
        [table] => table.starts_with("pg_"),
        [.., schema, _] => schema == "pg_catalog" || schema == "information_schema",
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_subqueries_are_parenthesised_catalog_ones_are_not() {
        let data = "SELECT o.id, (SELECT max(l.qty) FROM lines AS l WHERE l.order_id = o.id) AS most FROM orders AS o";
        assert_eq!(
            protect(data),
            "SELECT o.id, ((SELECT max(l.qty) FROM lines AS l WHERE l.order_id = o.id)) AS most FROM orders AS o"
        );
        assert_eq!(
            protect("SELECT (SELECT i.name FROM items AS i WHERE i.id = o.id) FROM orders AS o"),
            "SELECT ((SELECT vivace_single_row(i.name) AS \"name\" FROM items AS i WHERE i.id = o.id)) FROM orders AS o"
        );
        let limited = "SELECT ((SELECT name FROM items ORDER BY id LIMIT 1))";
        assert_eq!(
            protect("SELECT (SELECT name FROM items ORDER BY id LIMIT 1)"),
            limited
        );
        let catalog = "SELECT a.attname, (SELECT c.collname FROM pg_catalog.pg_collation c WHERE c.oid = a.attcollation) FROM pg_attribute a";
        assert!(matches!(protect(catalog), Cow::Borrowed(_)));
        let nested = "SELECT * FROM (SELECT (SELECT count(*) FROM items) AS n) AS t";
        assert_eq!(
            protect(nested),
            "SELECT * FROM (SELECT ((SELECT count(*) FROM items)) AS n) AS t"
        );
        assert!(matches!(protect("SELEC oops"), Cow::Borrowed(_)));
    }
}

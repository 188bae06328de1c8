//! Scalar subqueries over catalog tables that are always empty in Vivace.
//!
//! External tables have no column defaults (`pg_attrdef`), no sequences
//! (`pg_sequence`), no triggers, constraints or inheritance, so a scalar
//! subquery that reads only such tables, and does not aggregate, is NULL.
//! Drivers put correlations in them that DataFusion cannot decorrelate:
//! SQLAlchemy 2.1's `get_columns` has
//! `CASE WHEN attidentity != '' THEN (SELECT json_build_object(…) FROM
//! pg_sequence WHERE pg_attribute.attidentity != '' AND …) ELSE NULL END`
//! (an outer-only predicate and outer columns in the select list). They are
//! replaced by NULL before planning: the same answer, nothing to decorrelate.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, GroupByExpr, Query, SelectItem, SetExpr, Statement, TableFactor,
    TableWithJoins, Value, Visit, VisitMut, Visitor, VisitorMut,
};

/// Catalog tables that never hold a row in Vivace.
const EMPTY: &[&str] = &[
    "pg_attrdef",
    "pg_sequence",
    "pg_trigger",
    "pg_constraint",
    "pg_inherits",
    "pg_index",
];

/// Aggregates, which answer even over no rows (`count` gives 0).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bool_and",
    "bool_or",
    "every",
    "first_value",
];

/// Replace every such subquery in `statement` by NULL.
pub fn rewrite(statement: &mut Statement) {
    let _ = VisitMut::visit(statement, &mut Nullify);
}

struct Nullify;

impl VisitorMut for Nullify {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(query) = expr
            && always_null(query)
        {
            *expr = Expr::value(Value::Null);
        }
        ControlFlow::Continue(())
    }
}

fn always_null(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    !select.from.is_empty()
        && select.from.iter().all(reads_only_empty_tables)
        && !grouped
        && select.having.is_none()
        && !select.projection.iter().any(aggregates)
}

fn reads_only_empty_tables(from: &TableWithJoins) -> bool {
    std::iter::once(&from.relation)
        .chain(from.joins.iter().map(|j| &j.relation))
        .all(|factor| match factor {
            TableFactor::Table { name, .. } => name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .is_some_and(|ident| EMPTY.contains(&ident.value.to_ascii_lowercase().as_str())),
            _ => false,
        })
}

fn aggregates(item: &SelectItem) -> bool {
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(Function { name, .. }) = expr
                && name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| AGGREGATES.contains(&i.value.to_ascii_lowercase().as_str()))
            {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder(false);
    let _ = Visit::visit(item, &mut finder);
    finder.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn only_non_aggregating_reads_of_empty_tables_become_null() {
        assert_eq!(
            rewritten(
                "SELECT CASE WHEN a.attidentity <> '' THEN (SELECT json_build_object('always', \
                 a.attidentity = 'a') FROM pg_catalog.pg_sequence WHERE a.attidentity <> '') \
                 ELSE NULL END FROM pg_attribute a"
            ),
            "SELECT CASE WHEN a.attidentity <> '' THEN NULL ELSE NULL END FROM pg_attribute a"
        );
        let kept = "SELECT (SELECT count(*) FROM pg_attrdef), (SELECT 1 FROM pg_class)";
        assert_eq!(rewritten(kept), kept);
    }
}

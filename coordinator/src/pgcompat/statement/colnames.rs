//! Result column names as PostgreSQL gives them.
//!
//! DataFusion names an unaliased expression by its text (`count(*)`,
//! `current_setting(Utf8("x"))`); PostgreSQL by its outermost function or type
//! (`count`, `current_setting`, `int4`) or `?column?` (FigureColname in its parser).
//! Clients read these names (`row["count"]` in Python, `rs.getLong("count")` in
//! JDBC), so Vivace renames the outer columns of a query to PostgreSQL's names.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{
    self, Expr, ObjectNamePart, Query, SelectItem, SetExpr, Statement,
};

/// PostgreSQL's name for each select-list item of `stmt`'s outer query, when the
/// list has no wildcard (then positions line up with the plan's columns).
pub fn postgres_names(stmt: &Statement) -> Option<Vec<String>> {
    let Statement::Query(query) = stmt else {
        return None;
    };
    select_names(query)
}

fn select_names(query: &Query) -> Option<Vec<String>> {
    let mut body = query.body.as_ref();
    // A set operation takes its names from its first branch, as in PostgreSQL.
    while let SetExpr::SetOperation { left, .. } = body {
        body = left.as_ref();
    }
    let select = match body {
        SetExpr::Select(select) => select,
        SetExpr::Query(inner) => return select_names(inner),
        _ => return None,
    };
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => Some(expr_name(expr).unwrap_or("?column?".into())),
            SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
            _ => None,
        })
        .collect()
}

fn ident_name(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn last_part(name: &ast::ObjectName) -> Option<String> {
    match name.0.last()? {
        ObjectNamePart::Identifier(ident) => Some(ident_name(ident)),
        ObjectNamePart::Function(_) => None,
    }
}

/// PostgreSQL's internal name of a type, as a cast column is called.
fn type_name(data_type: &ast::DataType) -> String {
    use ast::DataType as T;
    match data_type {
        T::SmallInt(_) | T::Int2(_) => "int2".into(),
        T::Int(_) | T::Integer(_) | T::Int4(_) => "int4".into(),
        T::BigInt(_) | T::Int8(_) => "int8".into(),
        T::Real | T::Float4 => "float4".into(),
        T::DoublePrecision | T::Float8 | T::Double(_) => "float8".into(),
        T::Boolean | T::Bool => "bool".into(),
        T::Varchar(_) | T::CharacterVarying(_) => "varchar".into(),
        T::Char(_) | T::Character(_) => "bpchar".into(),
        T::Numeric(_) | T::Decimal(_) => "numeric".into(),
        T::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            "timestamptz".into()
        }
        T::Timestamp(..) => "timestamp".into(),
        T::Custom(name, _) => last_part(name).unwrap_or_else(|| "?column?".into()),
        other => other.to_string().to_lowercase(),
    }
}

/// FigureColname: `None` where PostgreSQL falls back to `?column?`.
pub(crate) fn expr_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident_name(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
        Expr::Function(f) => last_part(&f.name),
        Expr::Cast {
            expr, data_type, ..
        } => expr_name(expr).or_else(|| Some(type_name(data_type))),
        Expr::TypedString(typed) => Some(type_name(&typed.data_type)),
        Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => expr_name(inner),
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::Interval(_) => Some("interval".into()),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Overlay { .. } => Some("overlay".into()),
        Expr::Trim { .. } => Some("btrim".into()),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        Expr::AtTimeZone { .. } => Some("timezone".into()),
        Expr::Subquery(query) => select_names(query)
            .and_then(|names| names.into_iter().next())
            .filter(|n| n != "?column?"),
        _ => None,
    }
}

/// `schema` with its fields renamed to `names` (when the counts agree). Arrow
/// schemas, unlike DataFusion's plan schemas, may repeat a name, as PostgreSQL
/// results may (`SELECT count(*), count(*)`). The rename is applied to what goes
/// on the wire only, never to the plan, so pushed-down SQL is unaffected.
pub fn rename_schema(schema: &SchemaRef, names: &[String]) -> SchemaRef {
    if schema.fields().len() != names.len()
        || schema
            .fields()
            .iter()
            .zip(names)
            .all(|(f, n)| f.name() == n)
    {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(names)
        .map(|(f, n)| f.as_ref().clone().with_name(n))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Give every unaliased outer select item a unique internal alias. DataFusion
/// refuses two unaliased items that print alike (`SELECT (SELECT 1), (SELECT 2)`);
/// the planner is retried with this, and [`rename_outputs`] then restores
/// PostgreSQL's names.
pub fn alias_unnamed(stmt: &mut Statement) {
    let Statement::Query(query) = stmt else {
        return;
    };
    if let SetExpr::Select(select) = query.body.as_mut() {
        for (i, item) in select.projection.iter_mut().enumerate() {
            if let SelectItem::UnnamedExpr(expr) = item {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: ast::Ident::with_quote('"', format!("__vivace_column_{i}")),
                };
            }
        }
    }
}

/// Whether a planning error is DataFusion's refusal of look-alike select items.
pub fn is_duplicate_name_error(e: &datafusion::error::DataFusionError) -> bool {
    e.to_string()
        .contains("Projections require unique expression names")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str) -> Option<Vec<String>> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        postgres_names(&stmt)
    }

    #[test]
    fn figure_colname_like_postgres() {
        assert_eq!(
            names("SELECT count(*), a, t.b, x AS \"Y\", 1, 1::int, c::text, CASE WHEN a THEN 1 END, COALESCE(a, b), (SELECT max(z) FROM u), EXISTS (SELECT 1), a + 1, CURRENT_DATE, version()").unwrap(),
            [
                "count", "a", "b", "Y", "?column?", "int4", "c", "case", "coalesce", "max",
                "exists", "?column?", "current_date", "version"
            ]
        );
        assert_eq!(names("SELECT * FROM t"), None);
        assert_eq!(
            names("SELECT a FROM t UNION SELECT b FROM u").unwrap(),
            ["a"]
        );
    }
}

//! `CAST(text AS regclass)` of a computed name, which Metabase's field sync sends
//! (`CAST(format('%I.%I', table_schema, table_name) AS regclass)`).
//!
//! datafusion-pg-catalog resolves a reg cast of a literal or a `$n` placeholder
//! to a lookup in `pg_class`, and leaves other reg casts as integer identity
//! casts, since `c.oid::regclass` (an OID shown as a name) is the common case.
//! So a cast whose operand is visibly text (a text function, `||`, a cast to
//! text) is rewritten here to an aggregated lookup correlated on the name:
//!
//! ```sql
//! (SELECT max(r.oid)
//!    FROM (SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name
//!            FROM pg_catalog.pg_class c
//!            JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid) r
//!   WHERE r.name = vivace_regclass_name(<operand>))
//! ```
//!
//! which DataFusion decorrelates into a join (it does not pull a correlated
//! filter up through a join, hence the derived table). `vivace_regclass_name` reads the
//! name as PostgreSQL does (`parse_ident`: unquoted parts fold to lower case, an
//! unqualified name is in `public`) and spells it back in the `%I.%I` form.
//! A name that names no relation yields NULL, where PostgreSQL raises 42P01.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType as SqlType, Expr, Query, Statement, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::pgcompat::functions::text::quote_ident;
use vivace_catalog::DEFAULT_SCHEMA;

/// Name of the function that normalises a relation name for the lookup.
const NAME_FUNCTION: &str = "vivace_regclass_name";

/// Rewrite each `CAST(<text expression> AS regclass)` in `statement` to a
/// `pg_class` lookup.
pub fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut RegclassCasts);
}

/// The functions the rewritten lookups call.
pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(RegclassName {
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
    })]
}

struct RegclassCasts;

impl VisitorMut for RegclassCasts {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast {
            expr: operand,
            data_type,
            ..
        } = expr
            && is_regclass(data_type)
            && is_text(operand)
        {
            *expr = Expr::Subquery(lookup(operand));
        }
        ControlFlow::Continue(())
    }
}

fn is_regclass(t: &SqlType) -> bool {
    let name = t.to_string().to_ascii_lowercase();
    name == "regclass" || name == "pg_catalog.regclass"
}

/// Whether `expr` is plainly text: a call of a text function, a `||`
/// concatenation, or a cast to a text type. Columns and numbers are left alone:
/// `oid::regclass` shows an OID as a name, the other direction.
fn is_text(expr: &Expr) -> bool {
    const TEXT_FUNCTIONS: &[&str] = &[
        "format",
        "concat",
        "concat_ws",
        "quote_ident",
        "lower",
        "upper",
        "btrim",
        "trim",
        "replace",
        "substr",
        "substring",
    ];
    match expr {
        Expr::Nested(inner) => is_text(inner),
        Expr::Function(f) => f.name.0.last().is_some_and(|part| {
            part.as_ident().is_some_and(|ident| {
                TEXT_FUNCTIONS.contains(&ident.value.to_ascii_lowercase().as_str())
            })
        }),
        Expr::BinaryOp {
            op: BinaryOperator::StringConcat,
            ..
        } => true,
        Expr::Cast { data_type, .. } => matches!(
            data_type,
            SqlType::Text | SqlType::Varchar(_) | SqlType::CharacterVarying(_) | SqlType::String(_)
        ),
        _ => false,
    }
}

/// The correlated `pg_class` lookup of `operand`.
fn lookup(operand: &Expr) -> Box<Query> {
    let sql = format!(
        "SELECT max(r.oid) FROM (SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid) r \
         WHERE r.name = {NAME_FUNCTION}(CAST(({operand}) AS TEXT))"
    );
    // The text is built from a parsed expression and fixed SQL, so it parses.
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .expect("the regclass lookup template parses");
    match parsed.pop() {
        Some(Statement::Query(query)) => query,
        _ => unreachable!("the regclass lookup template is a query"),
    }
}

/// `vivace_regclass_name(text)`: a relation name as `parse_ident` reads it,
/// spelled `%I.%I` (schema, relation); NULL when it is not a relation name.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegclassName {
    signature: Signature,
}

impl ScalarUDFImpl for RegclassName {
    fn name(&self) -> &str {
        NAME_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let names = args.args[0].to_array(args.number_rows)?;
        let names = datafusion::common::cast::as_string_array(&names)?;
        let out: StringArray = names
            .iter()
            .map(|name| name.and_then(canonical_name))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `schema.relation` in `%I.%I` form, or None when `name` is not one to three
/// dot-separated identifiers.
fn canonical_name(name: &str) -> Option<String> {
    let parts = parse_ident(name)?;
    let (schema, relation) = match parts.as_slice() {
        [relation] => (DEFAULT_SCHEMA.to_string(), relation.clone()),
        [schema, relation] | [_, schema, relation] => (schema.clone(), relation.clone()),
        _ => return None,
    };
    Some(format!(
        "{}.{}",
        quote_ident(&schema),
        quote_ident(&relation)
    ))
}

/// PostgreSQL's `parse_ident`: dot-separated identifiers, each either
/// double-quoted (`""` for a quote, case kept) or bare (folded to lower case).
fn parse_ident(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut part = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' if chars.next_if_eq(&'"').is_some() => part.push('"'),
                    '"' => break,
                    c => part.push(c),
                }
            }
            if part.is_empty() {
                return None;
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != '.' && !c.is_whitespace()) {
                part.extend(c.to_lowercase());
            }
            if part.is_empty() {
                return None;
            }
        }
        parts.push(part);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn names_read_like_parse_ident() {
        assert_eq!(canonical_name("items").as_deref(), Some("public.items"));
        assert_eq!(
            canonical_name("Public.Items").as_deref(),
            Some("public.items")
        );
        assert_eq!(
            canonical_name(r#""My Schema"."Odd""Name""#).as_deref(),
            Some(r#""My Schema"."Odd""Name""#)
        );
        assert_eq!(canonical_name("db.s.t").as_deref(), Some("s.t"));
        assert_eq!(canonical_name("a..b"), None);
        assert_eq!(canonical_name("a.b.c.d"), None);
        assert_eq!(canonical_name(r#""unterminated"#), None);
    }

    #[test]
    fn only_text_operands_become_lookups() {
        let metabase = rewritten(
            "SELECT CAST(CAST(format('%I.%I', CAST(s AS TEXT), CAST(t AS TEXT)) AS REGCLASS) AS OID) FROM x",
        );
        assert!(
            metabase.contains("vivace_regclass_name(CAST((format('%I.%I'")
                && metabase.contains("SELECT max(r.oid) FROM (SELECT c.oid"),
            "{metabase}"
        );
        assert!(rewritten("SELECT ('a' || t)::regclass FROM x").contains("max(r.oid)"));
        // An OID shown as a name is not a lookup.
        let shown = "SELECT c.oid::REGCLASS FROM pg_class AS c";
        assert_eq!(rewritten(shown), shown);
    }
}

//! `LIKE … ESCAPE 'c'` with any escape character, as PostgreSQL allows.
//!
//! DataFusion 55 runs only the backslash as the escape (any other failed with
//! XX000; SQLAlchemy 2.1's `get_schema_names` sends
//! `nspname NOT LIKE 'pg/_' || '%' ESCAPE '/'`). When the pattern is a string
//! literal, or `||` of string literals, it is rewritten to the same pattern
//! with backslash escapes and no ESCAPE clause; `ESCAPE ''` (no escape at all)
//! becomes a pattern whose backslashes are escaped. Other patterns keep their
//! ESCAPE clause, which DataFusion refuses with 0A000; an escape string of more
//! than one character is 22025, as in PostgreSQL.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};

use crate::error::{SqlError, SqlResult};

/// Rewrite every `LIKE`/`ILIKE … ESCAPE` in `statement` that can be.
pub fn rewrite(statement: &mut Statement) -> SqlResult<()> {
    match VisitMut::visit(statement, &mut EscapeRewriter) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct EscapeRewriter;

impl VisitorMut for EscapeRewriter {
    type Break = SqlError;

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<SqlError> {
        let (Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        }) = expr
        else {
            return ControlFlow::Continue(());
        };
        let Some(escape) = escape_char
            .as_ref()
            .and_then(|v| v.value.clone().into_string())
        else {
            return ControlFlow::Continue(());
        };
        let mut chars = escape.chars();
        let escape = match (chars.next(), chars.next()) {
            (None, _) => None,
            (Some(c), None) => Some(c),
            _ => {
                return ControlFlow::Break(SqlError::new(
                    "22025",
                    "invalid escape string: escape string must be empty or one character",
                ));
            }
        };
        if escape == Some('\\') {
            return ControlFlow::Continue(());
        }
        let Some(text) = literal_text(pattern) else {
            return ControlFlow::Continue(());
        };
        **pattern = Expr::Value(ValueWithSpan::from(Value::SingleQuotedString(
            with_backslash_escapes(&text, escape),
        )));
        *escape_char = None;
        ControlFlow::Continue(())
    }
}

/// The text of a string literal or of `||` between string literals.
fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
            _ => None,
        },
        Expr::Nested(inner) => literal_text(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::StringConcat,
            right,
        } => Some(literal_text(left)? + &literal_text(right)?),
        _ => None,
    }
}

/// `pattern` (escaped with `escape`, or not at all) as a pattern escaped with
/// backslashes.
fn with_backslash_escapes(pattern: &str, escape: Option<char>) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next @ ('%' | '_' | '\\')) => {
                    out.push('\\');
                    out.push(next);
                }
                Some(next) => out.push(next),
                // A trailing escape matches nothing in PostgreSQL; keep it literal.
                None => out.push_str("\\\\"),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_rewritten_to_backslash_escapes() {
        assert_eq!(with_backslash_escapes("pg/_%", Some('/')), "pg\\_%");
        assert_eq!(with_backslash_escapes("a//b", Some('/')), "a/b");
        assert_eq!(with_backslash_escapes("a\\b_", None), "a\\\\b_");
        assert_eq!(with_backslash_escapes("100#%", Some('#')), "100\\%");
    }

    #[test]
    fn statements() {
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let mut stmt = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT n FROM t WHERE n NOT LIKE 'pg/_' || '%' ESCAPE '/'",
        )
        .unwrap()
        .remove(0);
        rewrite(&mut stmt).unwrap();
        assert_eq!(
            stmt.to_string(),
            "SELECT n FROM t WHERE n NOT LIKE 'pg\\_%'"
        );
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT 'a' LIKE 'a' ESCAPE 'ab'")
            .unwrap()
            .remove(0);
        assert_eq!(rewrite(&mut stmt).unwrap_err().code, "22025");
    }
}

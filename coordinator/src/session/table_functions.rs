//! Vivace's table functions in SQL text:
//!
//! - `table VERSION AS OF n` and `table TIMESTAMP AS OF '…'` (Delta's and
//!   Spark's spelling; Trino's `FOR VERSION AS OF` too), which PostgreSQL's
//!   grammar lacks: the text becomes a call of the `table_at` table function,
//!   aliased as the table, before it is parsed ([`rewrite`]);
//! - `FROM vivace.delta_history(…)`, `vivace.cancel_query(…)`: DataFusion
//!   names a function by the first part of its name, so the `vivace.`
//!   qualifier is dropped from the parsed statement ([`unqualify`]).

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Statement, TableFactor, VisitMut, VisitorMut};

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// The table function a time-travel reference becomes.
pub const TABLE_AT: &str = "table_at";

/// `sql` with each time-travel reference rewritten; borrowed unchanged when
/// there is none (or the text does not tokenize, which the parser reports).
pub fn rewrite(sql: &str) -> Cow<'_, str> {
    let upper = sql.to_ascii_uppercase();
    if !upper.contains(" OF") || !(upper.contains("VERSION") || upper.contains("TIMESTAMP")) {
        return sql.into();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return sql.into();
    };
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    // Where, in `out`, each token that is not whitespace starts.
    let mut starts: Vec<(usize, &Token)> = Vec::new();
    let mut changed = false;
    let mut i = 0;
    while i < tokens.len() {
        if let Some((end, at)) = clause_at(&tokens, i)
            && let Some(name_start) = name_before(&starts)
        {
            let name: String = out[name_start..].concat();
            let alias = last_ident(&starts, name_start);
            out.truncate(name_start);
            starts.retain(|(at, _)| *at < name_start);
            let quoted = name.trim().replace('\'', "''");
            out.push(format!("{TABLE_AT}('{quoted}', {at})"));
            if !alias_follows(&tokens, end) {
                out.push(format!(" AS {alias}"));
            }
            changed = true;
            i = end;
            continue;
        }
        if !matches!(tokens[i], Token::Whitespace(_)) {
            starts.push((out.len(), &tokens[i]));
        }
        out.push(tokens[i].to_string());
        i += 1;
    }
    if changed {
        out.concat().into()
    } else {
        sql.into()
    }
}

/// Drop the `vivace.` qualifier of function calls (`vivace.delta_history(…)`,
/// `vivace.cancel_query(…)`) in `stmt`.
pub fn unqualify(stmt: &mut Statement) {
    struct Unqualify;
    impl VisitorMut for Unqualify {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::Function(function) = expr
                && function.name.0.len() == 2
                && function.name.0[0].as_ident().is_some_and(|i| {
                    i.quote_style.is_none()
                        && i.value.eq_ignore_ascii_case(vivace_catalog::DATABASE)
                })
            {
                function.name.0.remove(0);
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                args: Some(_),
                ..
            } = factor
                && name.0.len() == 2
                && name.0[0].as_ident().is_some_and(|i| {
                    i.quote_style.is_none()
                        && i.value.eq_ignore_ascii_case(vivace_catalog::DATABASE)
                })
            {
                name.0.remove(0);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Unqualify);
}

fn significant(tokens: &[Token], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&j| !matches!(tokens[j], Token::Whitespace(_)))
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.keyword == keyword)
}

/// `[FOR] VERSION AS OF <integer>` or `[FOR] TIMESTAMP AS OF [TIMESTAMP] '<text>'`
/// starting at `i`: the index after it, and the argument as SQL text.
fn clause_at(tokens: &[Token], i: usize) -> Option<(usize, String)> {
    let mut k = i;
    if is_keyword(&tokens[k], Keyword::FOR) {
        k = significant(tokens, k + 1)?;
    }
    let version = is_keyword(&tokens[k], Keyword::VERSION);
    if !version && !is_keyword(&tokens[k], Keyword::TIMESTAMP) {
        return None;
    }
    let as_ = significant(tokens, k + 1)?;
    let of = significant(tokens, as_ + 1)?;
    if !is_keyword(&tokens[as_], Keyword::AS) || !is_keyword(&tokens[of], Keyword::OF) {
        return None;
    }
    let mut arg = significant(tokens, of + 1)?;
    if !version && is_keyword(&tokens[arg], Keyword::TIMESTAMP) {
        arg = significant(tokens, arg + 1)?;
    }
    let text = match (&tokens[arg], version) {
        (Token::Number(n, _), true) => n.clone(),
        (Token::SingleQuotedString(s), false) => Token::SingleQuotedString(s.clone()).to_string(),
        _ => return None,
    };
    Some((arg + 1, text))
}

/// Where the table name just written to the output starts: a run of
/// identifiers joined by dots, ending with the last token written.
fn name_before(starts: &[(usize, &Token)]) -> Option<usize> {
    let mut k = starts.len().checked_sub(1)?;
    loop {
        match starts[k].1 {
            Token::Word(w) if w.quote_style.is_some() || !is_reserved(w.keyword) => {}
            _ => return None,
        }
        if k >= 2 && matches!(starts[k - 1].1, Token::Period) {
            k -= 2;
        } else {
            return Some(starts[k].0);
        }
    }
}

/// Keywords that end a FROM item rather than name a table.
fn is_reserved(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::SELECT
            | Keyword::FROM
            | Keyword::JOIN
            | Keyword::ON
            | Keyword::WHERE
            | Keyword::AS
            | Keyword::FOR
            | Keyword::AND
            | Keyword::OR
    )
}

/// The last part of the name starting at `name_start` in the output, as written.
fn last_ident(starts: &[(usize, &Token)], name_start: usize) -> String {
    starts
        .iter()
        .rev()
        .find(|(at, _)| *at >= name_start)
        .map(|(_, t)| t.to_string())
        .unwrap_or_default()
}

/// Whether an alias (`AS x` or a bare name) follows the clause.
fn alias_follows(tokens: &[Token], end: usize) -> bool {
    match significant(tokens, end).map(|j| &tokens[j]) {
        Some(Token::Word(w)) => {
            w.quote_style.is_some() || w.keyword == Keyword::AS || w.keyword == Keyword::NoKeyword
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_timestamps_become_table_at_calls() {
        assert_eq!(
            rewrite("SELECT count(*) FROM orders VERSION AS OF 12"),
            "SELECT count(*) FROM table_at('orders', 12) AS orders"
        );
        assert_eq!(
            rewrite(
                "SELECT * FROM lake.\"Orders\" TIMESTAMP AS OF '2024-03-05 10:00:00' o WHERE o.id = 1"
            ),
            "SELECT * FROM table_at('lake.\"Orders\"', '2024-03-05 10:00:00') o WHERE o.id = 1"
        );
        assert_eq!(
            rewrite(
                "SELECT * FROM a FOR VERSION AS OF 1 JOIN b FOR TIMESTAMP AS OF TIMESTAMP '2024-01-01' ON true"
            ),
            "SELECT * FROM table_at('a', 1) AS a JOIN table_at('b', '2024-01-01') AS b ON true"
        );
    }

    #[test]
    fn other_text_is_left_alone() {
        for sql in [
            "SELECT 1",
            "SELECT ts::timestamp AS of FROM t",
            "SELECT 'VERSION AS OF 3' FROM t",
            "SELECT version FROM t",
        ] {
            assert!(matches!(rewrite(sql), Cow::Borrowed(_)), "{sql}");
        }
    }
}

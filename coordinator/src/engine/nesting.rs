//! How deeply one statement may nest, checked on its tokens before any parser
//! sees it.
//!
//! sqlparser 0.62 gives up at 50 levels of recursion, and where it gives up
//! inside a construct it can read two ways (`ARRAY[`, `CAST(`, any word before
//! a bracket: a function call, or a name then a subscript) it tries the other
//! reading, which parses the same inner text again. Each such level doubles the
//! work: `SELECT ARRAY[ARRAY[…1…]]` nested 50 deep (358 characters) kept a
//! thread busy for hours. A token scan is linear, so statements that would
//! reach those paths are refused here, with PostgreSQL's SQLSTATEs:
//!
//! - more than [`MAX_NESTING`] open parentheses, brackets and `CASE`s at once
//!   (`54001`, as PostgreSQL's `stack depth limit exceeded`);
//! - more than [`MAX_NESTED_CALLS`] of them opened right after a word (calls,
//!   casts, `ARRAY[`), the constructs sqlparser may read twice (`54001`);
//! - more than [`MAX_ARRAY_DIMENSIONS`] nested brackets (`54000`, as
//!   PostgreSQL's limit on array dimensions).
//!
//! Long flat chains nest nothing in the text but make deep trees once parsed,
//! and DataFusion's planning is quadratic in their depth (each level names and
//! types its whole subtree): 2,000 `OR` terms took 5 s in a debug build, a
//! `UNION ALL` of 3,000 SELECTs 56 s. Chains of an associative operator (`AND`,
//! `OR`, `UNION [ALL]`, `INTERSECT [ALL]`) are therefore rebuilt as balanced
//! trees after parsing ([`balance`]), which gives the same result at a depth of
//! log2 of their length, and `CASE … ELSE CASE … END END` is merged into one
//! `CASE` (the shape of generated IF/ELSE IF chains). What stays deeper than
//! [`MAX_EXPRESSION_DEPTH`], or nests more than [`MAX_CASE_NESTING`] `CASE`s,
//! (`1 + 1 + …` with thousands of terms, whose evaluation order matters for
//! overflow and rounding) is refused with `54001`. Planning also runs on large
//! stacks ([`crate::engine::planning`]).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Query, SetExpr, SetOperator, SetQuantifier, Statement, Value, Values,
    Visit, VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{SqlError, SqlResult, sqlstate};

/// Most parentheses, brackets and `CASE` expressions open at once; below
/// sqlparser's recursion limit of 50, which counts other steps too.
pub const MAX_NESTING: usize = 40;

/// Most of those opened right after a word (function calls, casts, `ARRAY[`)
/// open at once; sqlparser's work may double with each.
pub const MAX_NESTED_CALLS: usize = 16;

/// Most nested array brackets, PostgreSQL's `MAXDIM`.
pub const MAX_ARRAY_DIMENSIONS: usize = 6;

/// Deepest expression or chain of set operations planned, after [`balance`].
/// 1,000 levels of `+` plan in about 3 s in a debug build.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// Most `CASE` expressions nested in one another, after `ELSE CASE` chains are
/// merged. DataFusion 55's physical planning of a `CASE` re-plans the `CASE`s
/// inside it, doubling the work at each level when they read different
/// columns (debug build: 12 levels 0.3 s, 16 levels 4.4 s, 20 levels 70 s), in
/// one step that no cancellation can interrupt.
pub const MAX_CASE_NESTING: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Paren { call: bool },
    Bracket { call: bool },
    Case,
}

impl Open {
    fn is_call(self) -> bool {
        matches!(
            self,
            Self::Paren { call: true } | Self::Bracket { call: true }
        )
    }
}

/// Refuse `sql` if it nests beyond the limits above. Text the tokenizer cannot
/// read is left to the parser, which reports it.
pub fn check(sql: &str) -> SqlResult<()> {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return Ok(());
    };
    let mut open: Vec<Open> = Vec::new();
    let (mut calls, mut brackets) = (0usize, 0usize);
    let mut after_word = false;
    for token in tokens {
        let mut word = false;
        match &token {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket => {
                let frame = if token == Token::LParen {
                    Open::Paren { call: after_word }
                } else {
                    brackets += 1;
                    Open::Bracket { call: after_word }
                };
                calls += usize::from(frame.is_call());
                open.push(frame);
            }
            Token::RParen | Token::RBracket => {
                let paren = token == Token::RParen;
                let closed = open.pop_if(|o| match o {
                    Open::Paren { .. } => paren,
                    Open::Bracket { .. } => !paren,
                    Open::Case => false,
                });
                if let Some(frame) = closed {
                    calls -= usize::from(frame.is_call());
                    brackets -= usize::from(!paren);
                }
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => {
                open.push(Open::Case);
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END => {
                open.pop_if(|o| *o == Open::Case);
            }
            Token::Word(_) => word = true,
            _ => {}
        }
        after_word = word;
        if brackets > MAX_ARRAY_DIMENSIONS {
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "number of array dimensions ({brackets}) exceeds the maximum allowed ({MAX_ARRAY_DIMENSIONS})"
                ),
            ));
        }
        if open.len() > MAX_NESTING || calls > MAX_NESTED_CALLS {
            return Err(too_deep());
        }
    }
    Ok(())
}

/// Rebuild chains of `AND`, `OR`, `UNION [ALL]` and `INTERSECT [ALL]` in
/// `statement` as balanced trees and merge `ELSE CASE` chains, then refuse it
/// if an expression or a chain of set operations is still deeper than
/// [`MAX_EXPRESSION_DEPTH`], or `CASE`s nest more than [`MAX_CASE_NESTING`].
pub fn balance(statement: &mut Statement) -> SqlResult<()> {
    let _ = VisitMut::visit(statement, &mut Balancer);
    let mut depth = Depth::default();
    let _ = Visit::visit(&*statement, &mut depth);
    if depth.deepest_case > MAX_CASE_NESTING {
        return Err(SqlError::new(
            sqlstate::STATEMENT_TOO_COMPLEX,
            format!(
                "stack depth limit exceeded: {} CASE expressions nest in one another; at most \
                 {MAX_CASE_NESTING} are planned (a CASE in the ELSE branch of another does not count)",
                depth.deepest_case
            ),
        ));
    }
    if depth.deepest > MAX_EXPRESSION_DEPTH {
        return Err(SqlError::new(
            sqlstate::STATEMENT_TOO_COMPLEX,
            format!(
                "stack depth limit exceeded: an expression nests {} levels deep; at most \
                 {MAX_EXPRESSION_DEPTH} are planned",
                depth.deepest
            ),
        ));
    }
    Ok(())
}

struct Balancer;

impl VisitorMut for Balancer {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        balance_set_operations(&mut query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        balance_logic(expr);
        merge_else_case(expr);
        ControlFlow::Continue(())
    }
}

/// `CASE WHEN a THEN x ELSE CASE WHEN b THEN y ELSE z END END` as
/// `CASE WHEN a THEN x WHEN b THEN y ELSE z END`: the same value, one level.
/// Only searched `CASE`s (no operand) are merged.
fn merge_else_case(expr: &mut Expr) {
    let Expr::Case {
        operand: None,
        conditions,
        else_result,
        ..
    } = expr
    else {
        return;
    };
    loop {
        let mut inner = match else_result.as_deref() {
            Some(Expr::Case { operand: None, .. }) => else_result.take(),
            Some(Expr::Nested(nested)) if matches!(**nested, Expr::Case { operand: None, .. }) => {
                match else_result.take().map(|b| *b) {
                    Some(Expr::Nested(nested)) => Some(nested),
                    _ => unreachable!("matched above"),
                }
            }
            _ => return,
        };
        if let Some(Expr::Case {
            conditions: more,
            else_result: rest,
            ..
        }) = inner.as_deref_mut()
        {
            conditions.append(more);
            *else_result = rest.take();
        }
        inner.take();
    }
}

/// `a OR b OR c OR d` as `(a OR b) OR (c OR d)`; likewise `AND`.
fn balance_logic(expr: &mut Expr) {
    let op = match expr {
        Expr::BinaryOp {
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            ..
        } => op.clone(),
        _ => return,
    };
    let mut operands = Vec::new();
    let mut pending = vec![std::mem::replace(expr, Expr::value(Value::Null))];
    while let Some(e) = pending.pop() {
        match e {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                pending.push(*right);
                pending.push(*left);
            }
            other => operands.push(other),
        }
    }
    *expr = balanced(operands, &mut |left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: op.clone(),
        right: Box::new(right),
    });
}

/// A chain of one associative set operation, balanced.
fn balance_set_operations(body: &mut Box<SetExpr>) {
    let (op, quantifier) = match body.as_ref() {
        SetExpr::SetOperation {
            op: op @ (SetOperator::Union | SetOperator::Intersect),
            set_quantifier:
                quantifier @ (SetQuantifier::All | SetQuantifier::Distinct | SetQuantifier::None),
            ..
        } => (*op, *quantifier),
        _ => return,
    };
    let mut operands = Vec::new();
    let mut pending = vec![std::mem::replace(
        body.as_mut(),
        SetExpr::Values(Values {
            explicit_row: false,
            value_keyword: false,
            rows: Vec::new(),
        }),
    )];
    while let Some(e) = pending.pop() {
        match e {
            SetExpr::SetOperation {
                left,
                op: o,
                set_quantifier: q,
                right,
            } if o == op && q == quantifier => {
                pending.push(*right);
                pending.push(*left);
            }
            other => operands.push(other),
        }
    }
    **body = balanced(operands, &mut |left, right| SetExpr::SetOperation {
        left: Box::new(left),
        op,
        set_quantifier: quantifier,
        right: Box::new(right),
    });
}

/// `items` (at least one), in order, joined pairwise into a tree of depth log2(n).
fn balanced<T>(mut items: Vec<T>, join: &mut impl FnMut(T, T) -> T) -> T {
    if items.len() == 1 {
        return items.pop().expect("one item");
    }
    let right = items.split_off(items.len() / 2);
    let left = balanced(items, join);
    let right = balanced(right, join);
    join(left, right)
}

/// The deepest nesting of expressions, of set operations within a query, and
/// of `CASE`s.
#[derive(Default)]
struct Depth {
    expressions: usize,
    deepest: usize,
    cases: usize,
    deepest_case: usize,
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let mut spine = vec![(query.body.as_ref(), 1)];
        while let Some((set, depth)) = spine.pop() {
            self.deepest = self.deepest.max(depth);
            if let SetExpr::SetOperation { left, right, .. } = set {
                spine.push((left, depth + 1));
                spine.push((right, depth + 1));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.expressions += 1;
        self.deepest = self.deepest.max(self.expressions);
        if matches!(expr, Expr::Case { .. }) {
            self.cases += 1;
            self.deepest_case = self.deepest_case.max(self.cases);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.expressions -= 1;
        self.cases -= usize::from(matches!(expr, Expr::Case { .. }));
        ControlFlow::Continue(())
    }
}

/// A parse error as PostgreSQL reports it (here, beside the nesting limits,
/// because running out of the parser's recursion is one of them).
impl From<ParserError> for SqlError {
    fn from(e: ParserError) -> Self {
        let message = match e {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
            ParserError::RecursionLimitExceeded => return too_deep(),
        };
        Self::new(sqlstate::SYNTAX_ERROR, format!("syntax error: {message}"))
    }
}

/// PostgreSQL's answer to a statement nested beyond what it can plan.
pub fn too_deep() -> SqlError {
    SqlError::new(
        sqlstate::STATEMENT_TOO_COMPLEX,
        format!(
            "stack depth limit exceeded: a statement may nest at most {MAX_NESTING} parentheses, \
             brackets and CASE expressions, {MAX_NESTED_CALLS} of them function calls or casts"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(sql: &str) -> Option<&'static str> {
        check(sql).err().map(|e| e.code)
    }

    fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
        format!("SELECT {}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn ordinary_statements_pass() {
        assert_eq!(code("SELECT 1"), None);
        assert_eq!(code("SELECT a[1][2] FROM t WHERE (a) IN ((1), (2))"), None);
        assert_eq!(code(&nested("(", "1", ")", MAX_NESTING - 1)), None);
        assert_eq!(code(&nested("abs(", "1", ")", MAX_NESTED_CALLS)), None);
        assert_eq!(
            code(&nested("ARRAY[", "1", "]", MAX_ARRAY_DIMENSIONS)),
            None
        );
        let chain = format!("SELECT 1{}", " + 1".repeat(5_000));
        assert_eq!(code(&chain), None);
        // Siblings do not add up.
        let siblings = format!("SELECT {}", vec!["abs(abs(abs(1)))"; 100].join(", "));
        assert_eq!(code(&siblings), None);
        // END of a transaction closes nothing.
        assert_eq!(code("BEGIN; SELECT 1; END"), None);
    }

    #[test]
    fn deep_statements_are_refused() {
        assert_eq!(
            code(&nested("ARRAY[", "1", "]", 50)),
            Some(sqlstate::PROGRAM_LIMIT_EXCEEDED)
        );
        assert_eq!(
            code(&nested("(", "1", ")", MAX_NESTING + 1)),
            Some(sqlstate::STATEMENT_TOO_COMPLEX)
        );
        assert_eq!(
            code(&nested("CAST(", "1", " AS INT)", MAX_NESTED_CALLS + 1)),
            Some(sqlstate::STATEMENT_TOO_COMPLEX)
        );
        assert_eq!(
            code(&nested(
                "CASE WHEN x = 1 THEN ",
                "1",
                " END",
                MAX_NESTING + 1
            )),
            Some(sqlstate::STATEMENT_TOO_COMPLEX)
        );
        // Unbalanced text is left to the parser.
        assert_eq!(code("SELECT ))) ]]"), None);
    }

    fn parsed(sql: &str) -> Statement {
        datafusion::sql::sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap()
    }

    #[test]
    fn chains_are_balanced_in_order() {
        let mut expr = match parsed("SELECT a OR b OR c OR d") {
            Statement::Query(q) => match *q.body {
                SetExpr::Select(s) => s.projection[0].to_string(),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        };
        assert_eq!(expr, "a OR b OR c OR d");
        let mut chain = datafusion::sql::sqlparser::parser::Parser::new(&PostgreSqlDialect {})
            .try_with_sql("a OR b OR c OR d")
            .unwrap()
            .parse_expr()
            .unwrap();
        balance_logic(&mut chain);
        let Expr::BinaryOp { left, right, .. } = &chain else {
            panic!("{chain:?}")
        };
        expr = format!("({left}) OR ({right})");
        assert_eq!(expr, "(a OR b) OR (c OR d)");
        let mut stmt = parsed("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION SELECT 4");
        balance(&mut stmt).unwrap();
        // The UNION ALL run is one operand of the outer UNION, kept in order.
        assert_eq!(
            stmt.to_string(),
            "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION SELECT 4"
        );
        let terms: Vec<String> = (0..4_000).map(|i| format!("a = {i}")).collect();
        let mut stmt = parsed(&format!("SELECT 1 WHERE {}", terms.join(" OR ")));
        balance(&mut stmt).unwrap();
        let mut depth = Depth::default();
        let _ = Visit::visit(&stmt, &mut depth);
        assert!(depth.deepest < 20, "{}", depth.deepest);
        let selects = vec!["SELECT 1"; 3_000].join(" UNION ALL ");
        let mut stmt = parsed(&selects);
        balance(&mut stmt).unwrap();
        assert_eq!(stmt.to_string(), selects);
    }

    #[test]
    fn else_case_chains_merge_and_deep_cases_are_refused() {
        let chain = |n: usize, open: &str, close: &str| {
            let mut sql = String::from("SELECT ");
            for i in 0..n {
                sql += &format!("CASE WHEN c{i} = 1 THEN {i} ELSE {open}");
            }
            sql += "0";
            sql += &format!("{close} END").repeat(n);
            sql
        };
        for (n, open, close) in [(MAX_NESTING, "", ""), (MAX_NESTING / 2, "(", ")")] {
            let mut stmt = parsed(&chain(n, open, close));
            balance(&mut stmt).unwrap();
            let text = stmt.to_string();
            assert_eq!(text.matches("CASE").count(), 1, "{text}");
            let last = n - 1;
            assert!(
                text.contains(&format!(
                    "WHEN c{last} = 1 THEN {last} ELSE {open}0{close} END"
                )),
                "{text}"
            );
        }
        let nested = |n: usize| {
            let mut sql = String::from("SELECT ");
            for i in 0..n {
                sql += &format!("CASE WHEN c{i} = 1 THEN ");
            }
            sql += "0";
            sql += &" ELSE 1 END".repeat(n);
            sql
        };
        assert!(balance(&mut parsed(&nested(MAX_CASE_NESTING))).is_ok());
        assert_eq!(
            balance(&mut parsed(&nested(MAX_CASE_NESTING + 1)))
                .unwrap_err()
                .code,
            sqlstate::STATEMENT_TOO_COMPLEX
        );
    }

    #[test]
    fn deep_arithmetic_is_refused() {
        let mut stmt = parsed(&format!("SELECT 1{}", " + 1".repeat(MAX_EXPRESSION_DEPTH)));
        assert_eq!(
            balance(&mut stmt).unwrap_err().code,
            sqlstate::STATEMENT_TOO_COMPLEX
        );
        let mut stmt = parsed(&format!(
            "SELECT 1{}",
            " + 1".repeat(MAX_EXPRESSION_DEPTH / 2)
        ));
        assert!(balance(&mut stmt).is_ok());
    }
}

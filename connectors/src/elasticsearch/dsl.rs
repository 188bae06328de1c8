//! SQL filters as query DSL.
//!
//! Each rule says whether the DSL selects exactly the rows where the filter is
//! true (then DataFusion drops the filter) or a superset (then Vivace re-checks
//! every row it receives). A filter with no rule stays with DataFusion.
//!
//! | SQL | DSL | exact |
//! |---|---|---|
//! | `c = v`, `c IN (...)` | `term`, `terms` (`ids` on `_id`) | keyword, numbers, boolean, ip; dates (a `range`) when `v` has no finer unit than the field |
//! | `c <> v`, `c NOT IN (...)` | `bool.must_not` + `exists` | as `=` |
//! | `<`, `<=`, `>`, `>=`, `BETWEEN` | `range` (dates with an explicit format) | as `=`; `half_float` and `scaled_float` inexact |
//! | `c IS [NOT] NULL` | `exists` | yes (scalar columns) |
//! | `c LIKE 'abc%'` / other `LIKE` | `prefix` / `wildcard` | keyword types |
//! | `AND`, `OR` | `bool.filter`, `bool.should` | when every part is |
//! | `NOT e` | `bool.must_not` + `exists` | when `e` is exact on one column |
//! | `match(c, 'text')`, `match_phrase(c, 'text')`, `query_string('...')` | the same queries | always (they run only in the search server) |
//!
//! Analysed text fields (`text`, `match_only_text`) take only `IS [NOT] NULL`
//! and the full-text functions; list columns take none.

use chrono::{DateTime, SecondsFormat};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Like, Operator, TableProviderFilterPushDown,
};
use serde_json::{Value, json};

use super::functions::{FullText, full_text_call};
use super::mapping::{Column, ID};
use super::request::DATE_FORMAT;

/// A filter's query and whether it is exact.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The query DSL clause.
    pub query: Value,
    /// Whether it selects exactly the rows where the filter is true.
    pub exact: bool,
}

/// How a filter is pushed: `Exact`, `Inexact` or `Unsupported`.
pub fn pushdown_kind(expr: &Expr, columns: &[Column]) -> TableProviderFilterPushDown {
    match translate(expr, columns) {
        Some(t) if t.exact => TableProviderFilterPushDown::Exact,
        Some(_) => TableProviderFilterPushDown::Inexact,
        None => TableProviderFilterPushDown::Unsupported,
    }
}

/// Whether `expr` is a full-text call (pushed even with pushdown off: nothing
/// else can evaluate it).
pub fn is_full_text(expr: &Expr) -> bool {
    full_text_call(expr).is_some()
}

/// The conjunction of `filters` as one query (`match_all` for none); filters
/// with no rule are left out (DataFusion keeps them).
pub fn conjunction(filters: &[Expr], columns: &[Column]) -> Value {
    let clauses: Vec<Value> = filters
        .iter()
        .filter_map(|f| translate(f, columns).map(|t| t.query))
        .collect();
    match clauses.len() {
        0 => json!({ "match_all": {} }),
        1 => clauses.into_iter().next().unwrap_or_default(),
        _ => json!({ "bool": { "filter": clauses } }),
    }
}

/// The DSL of `expr`, or `None` when there is no rule for it.
pub fn translate(expr: &Expr, columns: &[Column]) -> Option<Translated> {
    if let Some(call) = full_text_call(expr) {
        return full_text(&call, columns);
    }
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => {
                let (l, r) = (translate(left, columns)?, translate(right, columns)?);
                Some(Translated {
                    query: json!({ "bool": { "filter": [l.query, r.query] } }),
                    exact: l.exact && r.exact,
                })
            }
            Operator::Or => {
                let (l, r) = (translate(left, columns)?, translate(right, columns)?);
                Some(Translated {
                    query: json!({ "bool": { "should": [l.query, r.query], "minimum_should_match": 1 } }),
                    exact: l.exact && r.exact,
                })
            }
            _ => comparison(left, *op, right, columns),
        },
        Expr::Not(inner) => {
            let t = translate(inner, columns)?;
            let column = single_column(inner, columns)?;
            // The negation of a superset is not a superset.
            t.exact.then(|| Translated {
                query: json!({ "bool": { "must_not": [t.query], "filter": [exists(column)] } }),
                exact: true,
            })
        }
        Expr::IsNull(inner) => {
            let column = plain_column(inner, columns)?;
            Some(Translated {
                query: json!({ "bool": { "must_not": [exists(column)] } }),
                exact: true,
            })
        }
        Expr::IsNotNull(inner) => {
            let column = plain_column(inner, columns)?;
            Some(Translated {
                query: exists(column),
                exact: true,
            })
        }
        Expr::InList(in_list) => {
            let column = filterable(&in_list.expr, columns)?;
            let mut values = Vec::with_capacity(in_list.list.len());
            for item in &in_list.list {
                values.push(literal(item, column)?);
            }
            if values.iter().any(|v| v.1.is_null()) {
                return None;
            }
            let exact = values.iter().all(|v| v.0);
            let values: Vec<Value> = values.into_iter().map(|v| v.1).collect();
            let positive = terms(column, values);
            Some(Translated {
                query: if in_list.negated {
                    if !exact {
                        return None;
                    }
                    json!({ "bool": { "must_not": [positive], "filter": [exists(column)] } })
                } else {
                    positive
                },
                exact,
            })
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let column = filterable(expr, columns)?;
            // Ranges of `_id` stay with Vivace, as `<` and `>` on it do.
            if column.name == ID {
                return None;
            }
            let (low_exact, low) = literal(low, column)?;
            let (high_exact, high) = literal(high, column)?;
            let range = range_query(column, &[("gte", low), ("lte", high)]);
            let exact = low_exact && high_exact && range_exact(column);
            if *negated {
                return exact.then(|| Translated {
                    query: json!({ "bool": { "must_not": [range], "filter": [exists(column)] } }),
                    exact: true,
                });
            }
            Some(Translated {
                query: range,
                exact,
            })
        }
        Expr::Like(like) => like_query(like, columns),
        Expr::Column(_) => {
            let column = filterable(expr, columns)?;
            (column.data_type == DataType::Boolean).then(|| Translated {
                query: json!({ "term": { &column.name: true } }),
                exact: true,
            })
        }
        _ => None,
    }
}

fn exists(column: &Column) -> Value {
    if column.name == ID {
        return json!({ "match_all": {} });
    }
    json!({ "exists": { "field": &column.name } })
}

fn terms(column: &Column, values: Vec<Value>) -> Value {
    if column.name == ID {
        return json!({ "ids": { "values": values } });
    }
    if column.es_type.starts_with("date") {
        let should: Vec<Value> = values
            .into_iter()
            .map(|v| range_query(column, &[("gte", v.clone()), ("lte", v)]))
            .collect();
        return json!({ "bool": { "should": should, "minimum_should_match": 1 } });
    }
    json!({ "terms": { &column.name: values } })
}

fn comparison(left: &Expr, op: Operator, right: &Expr, columns: &[Column]) -> Option<Translated> {
    let (column_expr, op, value_expr) = if as_column(left, columns).is_some() {
        (left, op, right)
    } else {
        (right, op.swap()?, left)
    };
    let column = filterable(column_expr, columns)?;
    let (value_exact, value) = literal(value_expr, column)?;
    if value.is_null() {
        return None;
    }
    let eq = || {
        if column.es_type.starts_with("date") {
            range_query(column, &[("gte", value.clone()), ("lte", value.clone())])
        } else if column.name == ID {
            json!({ "ids": { "values": [value.clone()] } })
        } else {
            json!({ "term": { &column.name: value.clone() } })
        }
    };
    let range_op =
        |bound: &str| (column.name != ID).then(|| range_query(column, &[(bound, value.clone())]));
    let exact_eq = value_exact && term_exact(column);
    let exact_range = value_exact && range_exact(column);
    let (query, exact) = match op {
        Operator::Eq => (eq(), exact_eq),
        Operator::NotEq => {
            if !exact_eq {
                return None;
            }
            (
                json!({ "bool": { "must_not": [eq()], "filter": [exists(column)] } }),
                true,
            )
        }
        Operator::Lt => (range_op("lt")?, exact_range),
        Operator::LtEq => (range_op("lte")?, exact_range),
        Operator::Gt => (range_op("gt")?, exact_range),
        Operator::GtEq => (range_op("gte")?, exact_range),
        _ => return None,
    };
    Some(Translated { query, exact })
}

fn range_query(column: &Column, bounds: &[(&str, Value)]) -> Value {
    let mut body = serde_json::Map::new();
    for (bound, value) in bounds {
        body.insert(bound.to_string(), value.clone());
    }
    if column.es_type.starts_with("date") {
        body.insert("format".into(), json!(DATE_FORMAT));
    }
    json!({ "range": { &column.name: body } })
}

/// Whether `term` on the column selects exactly equal values.
fn term_exact(column: &Column) -> bool {
    !matches!(column.es_type.as_str(), "half_float" | "scaled_float")
}

/// Whether `range` on the column selects exactly the values in range.
fn range_exact(column: &Column) -> bool {
    term_exact(column) && column.name != ID
}

fn as_column<'a>(expr: &Expr, columns: &'a [Column]) -> Option<&'a Column> {
    match expr {
        Expr::Column(c) => columns.iter().find(|col| col.name == c.name),
        _ => None,
    }
}

/// A column any rule may filter (not analysed text, not a list or object).
fn filterable<'a>(expr: &Expr, columns: &'a [Column]) -> Option<&'a Column> {
    let column = plain_column(expr, columns)?;
    let analysed = matches!(
        column.es_type.as_str(),
        "text" | "match_only_text" | "search_as_you_type"
    );
    let scalar = matches!(
        column.data_type,
        DataType::Utf8
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
            | DataType::Decimal128(_, _)
            | DataType::Timestamp(_, _)
            | DataType::Date32
    );
    let known = column.name == ID
        || matches!(
            column.es_type.as_str(),
            "keyword"
                | "constant_keyword"
                | "wildcard"
                | "ip"
                | "version"
                | "long"
                | "integer"
                | "short"
                | "byte"
                | "unsigned_long"
                | "double"
                | "float"
                | "half_float"
                | "scaled_float"
                | "boolean"
                | "date"
                | "date_nanos"
        );
    (!analysed && scalar && known).then_some(column)
}

/// A column `exists` can test exactly (a scalar field, or `_id`).
fn plain_column<'a>(expr: &Expr, columns: &'a [Column]) -> Option<&'a Column> {
    let column = as_column(expr, columns)?;
    // Lists and objects: an empty one is missing to `exists` but not NULL.
    let nested = matches!(column.data_type, DataType::List(_) | DataType::Struct(_));
    ((!column.is_meta() || column.name == ID) && !nested).then_some(column)
}

/// The single column `expr` reads, when it reads exactly one.
fn single_column<'a>(expr: &Expr, columns: &'a [Column]) -> Option<&'a Column> {
    let used = expr.column_refs();
    if used.len() != 1 {
        return None;
    }
    let name = &used.iter().next()?.name;
    columns.iter().find(|c| &c.name == name)
}

/// A literal as the JSON value the column's queries take, and whether the
/// value is exact for the column (a timestamp finer than the field's unit is not).
fn literal(expr: &Expr, column: &Column) -> Option<(bool, Value)> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    let field_nanos: i64 = match &column.data_type {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        _ => 1_000_000,
    };
    Some(match value {
        v if v.is_null() => (true, Value::Null),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => {
            if column.data_type != DataType::Utf8 {
                return None;
            }
            (true, json!(s))
        }
        ScalarValue::Boolean(Some(b)) => (true, json!(b)),
        ScalarValue::Int8(Some(n)) => (true, json!(n)),
        ScalarValue::Int16(Some(n)) => (true, json!(n)),
        ScalarValue::Int32(Some(n)) => (true, json!(n)),
        ScalarValue::Int64(Some(n)) => (true, json!(n)),
        ScalarValue::UInt8(Some(n)) => (true, json!(n)),
        ScalarValue::UInt16(Some(n)) => (true, json!(n)),
        ScalarValue::UInt32(Some(n)) => (true, json!(n)),
        ScalarValue::UInt64(Some(n)) => (true, json!(n)),
        ScalarValue::Float32(Some(f)) if f.is_finite() => (true, json!(f)),
        ScalarValue::Float64(Some(f)) if f.is_finite() => (true, json!(f)),
        ScalarValue::Decimal128(Some(v), _, scale) => {
            let text = ScalarValue::Decimal128(Some(*v), 38, *scale).to_string();
            (true, json!(text))
        }
        ScalarValue::Date32(Some(days)) if column.data_type == DataType::Date32 => {
            let day = DateTime::from_timestamp(i64::from(*days) * 86_400, 0)?;
            (true, json!(day.format("%Y-%m-%d").to_string()))
        }
        ScalarValue::TimestampSecond(Some(v), _) => {
            timestamp(v.checked_mul(1_000_000_000)?, field_nanos)?
        }
        ScalarValue::TimestampMillisecond(Some(v), _) => {
            timestamp(v.checked_mul(1_000_000)?, field_nanos)?
        }
        ScalarValue::TimestampMicrosecond(Some(v), _) => {
            timestamp(v.checked_mul(1_000)?, field_nanos)?
        }
        ScalarValue::TimestampNanosecond(Some(v), _) => timestamp(*v, field_nanos)?,
        _ => return None,
    })
}

fn timestamp(nanos: i64, field_nanos: i64) -> Option<(bool, Value)> {
    let at = DateTime::from_timestamp_nanos(nanos);
    Some((
        nanos % field_nanos == 0,
        json!(at.to_rfc3339_opts(SecondsFormat::Nanos, true)),
    ))
}

fn like_query(like: &Like, columns: &[Column]) -> Option<Translated> {
    let column = filterable(&like.expr, columns)?;
    if column.data_type != DataType::Utf8 || like.case_insensitive || column.name == ID {
        return None;
    }
    let Expr::Literal(ScalarValue::Utf8(Some(pattern)) | ScalarValue::Utf8View(Some(pattern)), _) =
        like.pattern.as_ref()
    else {
        return None;
    };
    let escape = like.escape_char.unwrap_or('\\');
    // The pattern's parts: literal text and the two wildcards.
    let mut literal_prefix = String::new();
    let mut wildcard = String::new();
    let mut only_trailing_percent = true;
    let mut seen_wildcard = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let (text, wild) = match c {
            c if c == escape => (Some(chars.next()?), None),
            '%' => (None, Some('*')),
            '_' => (None, Some('?')),
            c => (Some(c), None),
        };
        match (text, wild) {
            (Some(t), _) => {
                if seen_wildcard {
                    only_trailing_percent = false;
                } else {
                    literal_prefix.push(t);
                }
                if matches!(t, '*' | '?' | '\\') {
                    wildcard.push('\\');
                }
                wildcard.push(t);
            }
            (None, Some(w)) => {
                if w == '?' || seen_wildcard {
                    only_trailing_percent = false;
                }
                seen_wildcard = true;
                wildcard.push(w);
            }
            _ => return None,
        }
    }
    let positive = if !seen_wildcard {
        json!({ "term": { &column.name: literal_prefix } })
    } else if only_trailing_percent && !literal_prefix.is_empty() {
        json!({ "prefix": { &column.name: literal_prefix } })
    } else {
        json!({ "wildcard": { &column.name: { "value": wildcard } } })
    };
    let query = if like.negated {
        json!({ "bool": { "must_not": [positive], "filter": [exists(column)] } })
    } else {
        positive
    };
    Some(Translated { query, exact: true })
}

fn full_text(call: &FullText, columns: &[Column]) -> Option<Translated> {
    let query = match call {
        FullText::Match { column, text } | FullText::MatchPhrase { column, text } => {
            let col = columns.iter().find(|c| &c.name == column && !c.is_meta())?;
            let kind = if matches!(call, FullText::Match { .. }) {
                "match"
            } else {
                "match_phrase"
            };
            json!({ kind: { &col.name: { "query": text } } })
        }
        FullText::QueryString { query } => json!({ "query_string": { "query": query } }),
    };
    Some(Translated { query, exact: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn columns() -> Vec<Column> {
        let c = |name: &str, data_type: DataType, es_type: &str| Column {
            name: name.into(),
            data_type,
            es_type: es_type.into(),
        };
        vec![
            c("_id", DataType::Utf8, "_id"),
            c("city", DataType::Utf8, "keyword"),
            c("body", DataType::Utf8, "text"),
            c("price", DataType::Int64, "long"),
            c("rating", DataType::Float64, "scaled_float"),
            c(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                "date",
            ),
        ]
    }

    #[test]
    fn rules_and_exactness() {
        let cols = columns();
        let t = translate(&col("city").eq(lit("a\"b\\*")), &cols).unwrap();
        assert_eq!(t.query, json!({"term": {"city": "a\"b\\*"}}));
        assert!(t.exact);
        let t = translate(&col("price").lt(lit(5i64)).or(col("city").is_null()), &cols).unwrap();
        assert!(t.exact);
        assert!(translate(&col("body").eq(lit("x")), &cols).is_none());
        assert!(!translate(&col("rating").gt(lit(1.5)), &cols).unwrap().exact);
        assert!(translate(&Expr::Not(Box::new(col("rating").gt(lit(1.5)))), &cols).is_none());
        let t = translate(&col("city").like(lit("ab%")), &cols).unwrap();
        assert_eq!(t.query, json!({"prefix": {"city": "ab"}}));
        let t = translate(&col("city").like(lit("a*b_%")), &cols).unwrap();
        assert_eq!(t.query, json!({"wildcard": {"city": {"value": "a\\*b?*"}}}));
        let t = translate(&col("_id").in_list(vec![lit("x"), lit("y")], false), &cols).unwrap();
        assert_eq!(t.query, json!({"ids": {"values": ["x", "y"]}}));
        assert!(translate(&col("_id").gt(lit("x")), &cols).is_none());
        assert!(translate(&col("_id").between(lit("x"), lit("y")), &cols).is_none());
        let ts = Expr::Literal(
            ScalarValue::TimestampMicrosecond(Some(1_500), Some("UTC".into())),
            None,
        );
        let t = translate(&col("ts").gt_eq(ts), &cols).unwrap();
        assert!(!t.exact, "a microsecond bound on a millisecond field");
    }
}

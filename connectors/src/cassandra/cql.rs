//! Which filters Cassandra can answer, and the CQL requests a scan sends.
//!
//! Cassandra answers a query efficiently only through its key, and refuses
//! others unless told `ALLOW FILTERING`. So Vivace pushes exactly what it
//! accepts and no more:
//!
//! | SQL | CQL | exact |
//! |---|---|---|
//! | `=` / `IN` on every partition-key column (or a range of at most `max_partitions` integers) | one read per partition: `pk1 = ? AND pk2 = ?` (the cartesian product of the lists, at most `max_partitions`) | yes (floats: re-checked) |
//! | then `=` / `IN` on a prefix of the clustering columns, and one range on the next | `ck1 = ? AND ck2 IN (?, ?) AND ck3 > ?` | yes (floats: re-checked) |
//! | any comparison on another scalar column, when the table says `allow_filtering` | `c = ?` … `ALLOW FILTERING` | no: Vivace re-checks |
//! | `LIMIT n` (when every filter is exact) | `LIMIT n` on each read | — |
//! | `row_number() OVER (PARTITION BY <partition key> [ORDER BY <clustering prefix, stored order>]) <= n` over exact filters | `PER PARTITION LIMIT n` ([`super::per_partition`]) | — |
//!
//! A scan that fixes no partition reads token ranges: `token(pk) > ? AND
//! token(pk) <= ?`, one request per split. Values are always bound
//! parameters of a prepared statement, never spliced into the text.

use chrono::{DateTime, NaiveDate};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::schema::{Column, Role, quote};

/// One request: a statement and the parameter sets it runs with, one after
/// the other (no sets: it runs once, without parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CqlRequest {
    /// The statement, with `?` markers.
    pub cql: String,
    /// Parameter sets, each value in its JSON form ([`to_json`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Vec<Value>>,
    /// Most rows to read from each run (also the statement's `LIMIT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// What the pushed filters restrict.
#[derive(Debug, Default)]
pub struct Restrictions {
    /// Per partition-key column (key order), its allowed values.
    partition: Option<Vec<Vec<Value>>>,
    /// Clustering prefix: per column, `=` (one value) or `IN` values.
    clustering_eq: Vec<(String, Vec<Value>)>,
    /// One range on the next clustering column: (column, op, value).
    clustering_range: Vec<(String, &'static str, Value)>,
    /// Comparisons pushed with ALLOW FILTERING.
    filtering: Vec<(String, &'static str, Value)>,
    /// Each filter's verdict, in the order given.
    verdicts: Vec<TableProviderFilterPushDown>,
}

/// A comparison of one column with one literal.
struct Comparison<'a> {
    column: &'a Column,
    op: &'static str,
    values: Vec<Value>,
    /// The literal converts without loss.
    exact: bool,
}

fn disjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut parts = disjuncts(left);
            parts.extend(disjuncts(right));
            parts
        }
        other => vec![other],
    }
}

fn column_of<'a>(expr: &Expr, columns: &'a [Column]) -> Option<&'a Column> {
    match expr {
        Expr::Column(c) => columns.iter().find(|col| col.name == c.name),
        _ => None,
    }
}

/// `expr` as a comparison Cassandra can run, when it is one.
fn comparison<'a>(expr: &Expr, columns: &'a [Column]) -> Option<Comparison<'a>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if *op != Operator::Or => {
            let (column, op, value) = match (column_of(left, columns), column_of(right, columns)) {
                (Some(c), None) => (c, *op, right.as_ref()),
                (None, Some(c)) => (c, op.swap()?, left.as_ref()),
                _ => return None,
            };
            let op = match op {
                Operator::Eq => "=",
                Operator::Lt => "<",
                Operator::LtEq => "<=",
                Operator::Gt => ">",
                Operator::GtEq => ">=",
                _ => return None,
            };
            let (value, exact) = literal(value, column)?;
            Some(Comparison {
                column,
                op,
                values: vec![value],
                exact,
            })
        }
        // DataFusion writes a short IN list as ORs of equalities.
        Expr::BinaryExpr(BinaryExpr {
            op: Operator::Or, ..
        }) => {
            let mut column: Option<&Column> = None;
            let mut values = Vec::new();
            let mut exact = true;
            for part in disjuncts(expr) {
                let c = comparison(part, columns)?;
                if c.op != "=" && c.op != "IN" {
                    return None;
                }
                if column.is_some_and(|seen| seen.name != c.column.name) {
                    return None;
                }
                column = Some(c.column);
                exact &= c.exact;
                for v in c.values {
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
            }
            Some(Comparison {
                column: column?,
                op: "IN",
                values,
                exact,
            })
        }
        Expr::InList(in_list) if !in_list.negated => {
            let column = column_of(&in_list.expr, columns)?;
            let mut values = Vec::with_capacity(in_list.list.len());
            let mut exact = true;
            for item in &in_list.list {
                let (value, e) = literal(item, column)?;
                exact &= e;
                if !values.contains(&value) {
                    values.push(value);
                }
            }
            Some(Comparison {
                column,
                op: "IN",
                values,
                exact,
            })
        }
        _ => None,
    }
}

/// A literal as the JSON form of a value of `column` (see [`to_json`]), and
/// whether it is exactly the value SQL compares with.
fn literal(expr: &Expr, column: &Column) -> Option<(Value, bool)> {
    let Expr::Literal(scalar, _) = expr else {
        return None;
    };
    if scalar.is_null() {
        return None;
    }
    let scalar_exact = !matches!(column.data_type, DataType::Float32 | DataType::Float64);
    let cql = column.cql_type.as_str();
    let value = match (&column.data_type, scalar) {
        (
            DataType::Utf8,
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => {
            // uuid, timeuuid and inet columns compare as text in Vivace but
            // as values in Cassandra: only a canonical spelling is pushed.
            match cql {
                "uuid" | "timeuuid" => {
                    let parsed = uuid::Uuid::parse_str(s).ok()?;
                    (parsed.to_string() == *s).then(|| json!(s))?
                }
                "inet" => {
                    let parsed: std::net::IpAddr = s.parse().ok()?;
                    (parsed.to_string() == *s).then(|| json!(s))?
                }
                _ => json!(s),
            }
        }
        (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64, s) => {
            json!(integer(s)?)
        }
        (DataType::Float32 | DataType::Float64, ScalarValue::Float64(Some(f))) => json!(f),
        (DataType::Float32 | DataType::Float64, ScalarValue::Float32(Some(f))) => json!(f),
        (DataType::Boolean, ScalarValue::Boolean(Some(b))) => json!(b),
        (DataType::Date32, ScalarValue::Date32(Some(d))) => {
            json!(
                NaiveDate::from_num_days_from_ce_opt(d + 719_163)?
                    .format("%Y-%m-%d")
                    .to_string()
            )
        }
        (DataType::Timestamp(..), s) => {
            let millis = match s {
                ScalarValue::TimestampMillisecond(Some(v), _) => *v,
                ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1000)?,
                ScalarValue::TimestampMicrosecond(Some(v), _) if v % 1000 == 0 => v / 1000,
                ScalarValue::TimestampNanosecond(Some(v), _) if v % 1_000_000 == 0 => v / 1_000_000,
                _ => return None,
            };
            json!(
                DateTime::from_timestamp_millis(millis)?
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
        }
        _ => return None,
    };
    Some((value, scalar_exact))
}

fn integer(s: &ScalarValue) -> Option<i64> {
    Some(match s {
        ScalarValue::Int8(Some(v)) => (*v).into(),
        ScalarValue::Int16(Some(v)) => (*v).into(),
        ScalarValue::Int32(Some(v)) => (*v).into(),
        ScalarValue::Int64(Some(v)) => *v,
        ScalarValue::UInt8(Some(v)) => (*v).into(),
        ScalarValue::UInt16(Some(v)) => (*v).into(),
        ScalarValue::UInt32(Some(v)) => (*v).into(),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok()?,
        _ => return None,
    })
}

fn is_integer(column: &Column) -> bool {
    matches!(
        column.data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    ) && column.cql_type != "counter"
}

/// The whole conjunction's plan: which filters are pushed and how.
pub fn restrict(
    filters: &[&Expr],
    columns: &[Column],
    max_partitions: u32,
    allow_filtering: bool,
) -> Restrictions {
    let comparisons: Vec<Option<Comparison>> =
        filters.iter().map(|f| comparison(f, columns)).collect();
    let mut verdicts = vec![TableProviderFilterPushDown::Unsupported; filters.len()];
    let mut out = Restrictions::default();

    // Partition key: every column needs a finite set of values.
    let pk: Vec<&Column> = columns
        .iter()
        .filter(|c| c.role == Role::PartitionKey)
        .collect();
    let mut sets = Vec::with_capacity(pk.len());
    let mut used = Vec::new();
    for column in &pk {
        match value_set(column, &comparisons, max_partitions) {
            Some((values, indices, exact)) => {
                sets.push(values);
                used.push((indices, exact));
            }
            None => break,
        }
    }
    let product = sets
        .iter()
        .try_fold(1u64, |acc, s| acc.checked_mul(s.len() as u64));
    let fixed = !pk.is_empty()
        && sets.len() == pk.len()
        && product.is_some_and(|p| p >= 1 && p <= u64::from(max_partitions));
    if fixed {
        for (indices, exact) in used {
            for i in indices {
                verdicts[i] = verdict(exact);
            }
        }
        out.partition = Some(sets);
        // Clustering: `=`/`IN` on a prefix, then one range.
        for column in columns.iter().filter(|c| c.role == Role::Clustering) {
            let eq = comparisons.iter().enumerate().find(|(_, c)| {
                c.as_ref()
                    .is_some_and(|c| c.column.name == column.name && (c.op == "=" || c.op == "IN"))
            });
            if let Some((i, Some(c))) = eq {
                verdicts[i] = verdict(c.exact);
                out.clustering_eq
                    .push((column.name.clone(), c.values.clone()));
                continue;
            }
            let mut lower = false;
            let mut upper = false;
            for (i, c) in comparisons.iter().enumerate() {
                let Some(c) = c else { continue };
                if c.column.name != column.name {
                    continue;
                }
                let slot = if c.op.starts_with('>') {
                    &mut lower
                } else if c.op.starts_with('<') {
                    &mut upper
                } else {
                    continue;
                };
                if *slot {
                    continue;
                }
                *slot = true;
                verdicts[i] = verdict(c.exact);
                out.clustering_range
                    .push((column.name.clone(), c.op, c.values[0].clone()));
            }
            break;
        }
    }
    if allow_filtering {
        for (i, c) in comparisons.iter().enumerate() {
            let Some(c) = c else { continue };
            if verdicts[i] != TableProviderFilterPushDown::Unsupported
                || c.op == "IN"
                || matches!(c.column.role, Role::PartitionKey)
            {
                continue;
            }
            verdicts[i] = TableProviderFilterPushDown::Inexact;
            out.filtering
                .push((c.column.name.clone(), c.op, c.values[0].clone()));
        }
    }
    out.verdicts = verdicts;
    out
}

fn verdict(exact: bool) -> TableProviderFilterPushDown {
    if exact {
        TableProviderFilterPushDown::Exact
    } else {
        TableProviderFilterPushDown::Inexact
    }
}

/// The values a partition-key column is restricted to: by `=`/`IN`, or by a
/// closed integer range of at most `max` values. With the filters that made
/// it and whether they are exact.
fn value_set(
    column: &Column,
    comparisons: &[Option<Comparison>],
    max: u32,
) -> Option<(Vec<Value>, Vec<usize>, bool)> {
    for (i, c) in comparisons.iter().enumerate() {
        if let Some(c) = c
            && c.column.name == column.name
            && (c.op == "=" || c.op == "IN")
        {
            return Some((c.values.clone(), vec![i], c.exact));
        }
    }
    if !is_integer(column) {
        return None;
    }
    let (mut low, mut high) = (None::<(i64, usize)>, None::<(i64, usize)>);
    for (i, c) in comparisons.iter().enumerate() {
        let Some(c) = c else { continue };
        if c.column.name != column.name {
            continue;
        }
        let v = c.values[0].as_i64()?;
        match c.op {
            ">=" => low = Some((v, i)),
            ">" => low = Some((v.checked_add(1)?, i)),
            "<=" => high = Some((v, i)),
            "<" => high = Some((v.checked_sub(1)?, i)),
            _ => {}
        }
    }
    let ((low, li), (high, hi)) = (low?, high?);
    if high < low || (high - low) as u64 >= u64::from(max) {
        return None;
    }
    Some(((low..=high).map(|v| json!(v)).collect(), vec![li, hi], true))
}

impl Restrictions {
    /// Whether the filters fix the partitions read (no token ranges).
    pub fn fixes_partitions(&self) -> bool {
        self.partition.is_some()
    }
}

/// Each filter's verdict for the table's columns and settings.
pub fn verdicts(
    filters: &[&Expr],
    columns: &[Column],
    max_partitions: u32,
    allow_filtering: bool,
) -> Vec<TableProviderFilterPushDown> {
    restrict(filters, columns, max_partitions, allow_filtering).verdicts
}

/// How a scan reads its rows.
pub struct Plan {
    /// The requests, one per output partition.
    pub requests: Vec<CqlRequest>,
    /// What the requests are split on (for EXPLAIN), when several.
    pub split_on: Option<String>,
}

/// The limits a scan pushes: rows in all (`LIMIT`) and rows of each
/// partition (`PER PARTITION LIMIT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most rows each request reads.
    pub rows: Option<u64>,
    /// Most rows each request reads of any one partition.
    pub per_partition: Option<u64>,
}

/// Most requests the partition reads of one scan are grouped into.
const MAX_PARTITION_REQUESTS: usize = 16;

/// The requests of a scan of `projected` columns of `keyspace.table` under
/// the pushed filters' restrictions `r` ([`restrict`]), reading at most
/// `limit` rows; when no partition is fixed, one request per group of token
/// `ranges` ([`token_groups`]).
pub fn plan(
    keyspace: &str,
    table: &str,
    columns: &[Column],
    projected: &[&Column],
    r: &Restrictions,
    limits: Limits,
    ranges: &[Vec<(i64, i64)>],
) -> Plan {
    let limit = limits.rows;
    let select: Vec<String> = if projected.is_empty() {
        // count(*): read the smallest thing every row has.
        columns
            .iter()
            .filter(|c| c.role == Role::PartitionKey)
            .take(1)
            .map(|c| c.quoted())
            .collect()
    } else {
        projected.iter().map(|c| c.quoted()).collect()
    };
    let from = format!("{}.{}", quote(keyspace), quote(table));
    let mut tail = String::new();
    let mut tail_values = Vec::new();
    for (name, values) in &r.clustering_eq {
        if values.len() == 1 {
            tail.push_str(&format!(" AND {} = ?", quote(name)));
        } else {
            let marks = vec!["?"; values.len()].join(", ");
            tail.push_str(&format!(" AND {} IN ({marks})", quote(name)));
        }
        tail_values.extend(values.iter().cloned());
    }
    for (name, op, value) in r.clustering_range.iter().chain(&r.filtering) {
        tail.push_str(&format!(" AND {} {op} ?", quote(name)));
        tail_values.push(value.clone());
    }
    let mut end = String::new();
    if let Some(n) = limits.per_partition {
        end.push_str(&format!(" PER PARTITION LIMIT {n}"));
    }
    if let Some(n) = limit {
        end.push_str(&format!(" LIMIT {n}"));
    }
    if !r.filtering.is_empty() {
        end.push_str(" ALLOW FILTERING");
    }
    let pk: Vec<&Column> = columns
        .iter()
        .filter(|c| c.role == Role::PartitionKey)
        .collect();
    if let Some(sets) = &r.partition {
        let key = pk
            .iter()
            .map(|c| format!("{} = ?", c.quoted()))
            .collect::<Vec<_>>()
            .join(" AND ");
        let cql = format!(
            "SELECT {} FROM {from} WHERE {key}{tail}{end}",
            select.join(", ")
        );
        let mut keys: Vec<Vec<Value>> = vec![vec![]];
        for set in sets {
            keys = keys
                .into_iter()
                .flat_map(|prefix| {
                    set.iter().map(move |v| {
                        let mut k = prefix.clone();
                        k.push(v.clone());
                        k
                    })
                })
                .collect();
        }
        let groups = keys.len().clamp(1, MAX_PARTITION_REQUESTS);
        let mut requests: Vec<CqlRequest> = (0..groups)
            .map(|_| CqlRequest {
                cql: cql.clone(),
                values: vec![],
                limit,
            })
            .collect();
        for (i, mut key) in keys.into_iter().enumerate() {
            key.extend(tail_values.iter().cloned());
            requests[i % groups].values.push(key);
        }
        let split_on = (requests.len() > 1).then(|| "partition key".to_string());
        return Plan { requests, split_on };
    }
    let token = format!(
        "token({})",
        pk.iter().map(|c| c.quoted()).collect::<Vec<_>>().join(", ")
    );
    let cql = format!(
        "SELECT {} FROM {from} WHERE {token} > ? AND {token} <= ?{tail}{end}",
        select.join(", ")
    );
    let requests = ranges
        .iter()
        .map(|group| CqlRequest {
            cql: cql.clone(),
            values: group
                .iter()
                .map(|(low, high)| {
                    let mut values = vec![json!(low), json!(high)];
                    values.extend(tail_values.iter().cloned());
                    values
                })
                .collect(),
            limit,
        })
        .collect::<Vec<_>>();
    let split_on = (requests.len() > 1).then(|| "token range".to_string());
    Plan { requests, split_on }
}

/// The Murmur3 ring (-2^63, 2^63 - 1] as the ranges (low, high] between
/// the nodes' tokens (`ring`: every token the cluster's nodes own; empty: one
/// range), the wrap-around range split in two at the ends of the ring; ranges
/// are halved (widest first) until there are at least `splits`, then grouped,
/// contiguous, into `splits` groups. No key has the token -2^63, so together
/// they cover every row once.
pub fn token_groups(ring: &[i64], splits: u32) -> Vec<Vec<(i64, i64)>> {
    let mut tokens: Vec<i64> = ring.iter().copied().filter(|t| *t != i64::MIN).collect();
    tokens.sort_unstable();
    tokens.dedup();
    let mut ranges: Vec<(i64, i64)> = Vec::with_capacity(tokens.len() + 1);
    let mut low = i64::MIN;
    for t in &tokens {
        ranges.push((low, *t));
        low = *t;
    }
    if low != i64::MAX {
        ranges.push((low, i64::MAX));
    }
    let splits = splits.max(1) as usize;
    while ranges.len() < splits {
        let (widest, _) = ranges
            .iter()
            .enumerate()
            .max_by_key(|(_, (l, h))| i128::from(*h) - i128::from(*l))
            .expect("at least one range");
        let (l, h) = ranges[widest];
        if i128::from(h) - i128::from(l) < 2 {
            break;
        }
        let mid = ((i128::from(l) + i128::from(h)) / 2) as i64;
        ranges.splice(widest..=widest, [(l, mid), (mid, h)]);
    }
    let groups = splits.min(ranges.len());
    let per_group = ranges.len() / groups;
    let extra = ranges.len() % groups;
    let mut out = Vec::with_capacity(groups);
    let mut rest = ranges.as_slice();
    for g in 0..groups {
        let take = per_group + usize::from(g < extra);
        let (head, tail) = rest.split_at(take);
        out.push(head.to_vec());
        rest = tail;
    }
    out
}

/// The Murmur3 ring cut into `splits` equal ranges (low, high].
#[cfg(test)]
fn token_ranges(splits: u32) -> Vec<(i64, i64)> {
    let splits = i128::from(splits.max(1));
    let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
    let width = (max - min) / splits;
    (0..splits)
        .map(|k| {
            let low = min + k * width;
            let high = if k == splits - 1 {
                max
            } else {
                min + (k + 1) * width
            };
            (low as i64, high as i64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn columns() -> Vec<Column> {
        let c = |name: &str, data_type: DataType, role: Role, cql: &str| Column {
            name: name.into(),
            data_type,
            role,
            cql_type: cql.into(),
            descending: false,
        };
        vec![
            c("user_id", DataType::Utf8, Role::PartitionKey, "text"),
            c("day", DataType::Int32, Role::PartitionKey, "int"),
            c("ts", DataType::Int64, Role::Clustering, "bigint"),
            c("seq", DataType::Int32, Role::Clustering, "int"),
            c("device", DataType::Utf8, Role::Regular, "text"),
        ]
    }

    #[test]
    fn partition_reads_need_every_key_column() {
        let cols = columns();
        let a = col("user_id").in_list(vec![lit("u1"), lit("u2")], false);
        let b = col("day").gt_eq(lit(3)).and(col("day").lt_eq(lit(5)));
        let (b1, b2) = match &b {
            Expr::BinaryExpr(BinaryExpr { left, right, .. }) => {
                (left.as_ref().clone(), right.as_ref().clone())
            }
            _ => unreachable!(),
        };
        let ts = col("ts").gt(lit(10i64));
        let device = col("device").eq(lit("x"));
        let filters = [&a, &b1, &b2, &ts, &device];
        let v = verdicts(&filters, &cols, 1000, false);
        use TableProviderFilterPushDown::*;
        assert_eq!(v, vec![Exact, Exact, Exact, Exact, Unsupported]);
        // One key column alone fixes nothing.
        assert_eq!(
            verdicts(&[&a, &ts], &cols, 1000, false),
            vec![Unsupported, Unsupported]
        );
        // 2 users x 3 days = 6 partitions: over a bound of 5, token ranges instead.
        assert_eq!(verdicts(&filters, &cols, 5, false)[0], Unsupported);
        let owned: Vec<Expr> = filters.iter().take(4).map(|e| (*e).clone()).collect();
        let projected: Vec<&Column> = vec![&cols[4]];
        let pushed: Vec<&Expr> = owned.iter().collect();
        let r = restrict(&pushed, &cols, 1000, false);
        assert!(r.fixes_partitions());
        let p = plan(
            "app",
            "s",
            &cols,
            &projected,
            &r,
            Limits::default(),
            &token_groups(&[], 4),
        );
        assert_eq!(p.requests.len(), 6);
        assert_eq!(
            p.requests[0].cql,
            "SELECT \"device\" FROM \"app\".\"s\" WHERE \"user_id\" = ? AND \"day\" = ? AND \"ts\" > ?"
        );
        assert_eq!(
            p.requests[0].values,
            vec![vec![json!("u1"), json!(3), json!(10)]]
        );
        // With allow_filtering, a regular column is pushed and re-checked.
        assert_eq!(verdicts(&[&device], &cols, 1000, true), vec![Inexact]);
        let r = restrict(&[&device], &cols, 1000, true);
        assert!(!r.fixes_partitions());
        let p = plan(
            "app",
            "s",
            &cols,
            &projected,
            &r,
            Limits {
                rows: Some(7),
                per_partition: Some(2),
            },
            &token_groups(&[], 2),
        );
        assert_eq!(
            p.requests[1].cql,
            "SELECT \"device\" FROM \"app\".\"s\" WHERE token(\"user_id\", \"day\") > ? AND token(\"user_id\", \"day\") <= ? AND \"device\" = ? PER PARTITION LIMIT 2 LIMIT 7 ALLOW FILTERING"
        );
    }

    #[test]
    fn token_ranges_cover_the_ring_once() {
        let r = token_ranges(3);
        assert_eq!(r[0].0, i64::MIN);
        assert_eq!(r[2].1, i64::MAX);
        assert_eq!(r[0].1, r[1].0);
        assert_eq!(r[1].1, r[2].0);
        assert_eq!(token_ranges(1), vec![(i64::MIN, i64::MAX)]);
        // Node tokens cut the ring; the wrap-around range ends at both ends.
        let groups = token_groups(&[-10, 5, 100], 2);
        assert_eq!(
            groups,
            vec![
                vec![(i64::MIN, -10), (-10, 5)],
                vec![(5, 100), (100, i64::MAX)]
            ]
        );
        // More splits than ranges: the widest are halved.
        let groups = token_groups(&[0], 3);
        assert_eq!(groups.len(), 3);
        let flat: Vec<(i64, i64)> = groups.into_iter().flatten().collect();
        assert_eq!(flat.first().unwrap().0, i64::MIN);
        assert_eq!(flat.last().unwrap().1, i64::MAX);
        assert!(flat.windows(2).all(|w| w[0].1 == w[1].0));
    }
}

//! The answer of a pushed aggregation as Arrow batches: one row per composite
//! bucket (or one row for an aggregation without groups), each output column
//! read as its [`Output`] says and converted exactly to the planned type —
//! a value the server's double cannot hold exactly is an error, never a
//! rounded answer.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use serde_json::Value;

use super::request::Output;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Largest integer a double holds exactly.
const EXACT_DOUBLE: f64 = 9_007_199_254_740_992.0;

/// Rows of `buckets` (each with `key`, `doc_count` and the metrics) as a batch.
pub fn decode(
    buckets: &[&Value],
    outputs: &[Output],
    schema: &SchemaRef,
) -> ConnectorResult<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(outputs.len());
    for (output, field) in outputs.iter().zip(schema.fields()) {
        let values = buckets
            .iter()
            .map(|bucket| value(bucket, output, field.data_type()))
            .collect::<ConnectorResult<Vec<ScalarValue>>>()?;
        let array = if values.is_empty() {
            new_null_array(field.data_type(), 0)
        } else {
            ScalarValue::iter_to_array(values).map_err(|e| bad(e.to_string()))?
        };
        columns.push(array);
    }
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| bad(e.to_string()))
}

fn bad(message: impl Into<String>) -> ConnectorError {
    ConnectorError::new(ConnectorErrorKind::UnreadableFormat, message)
}

fn value(bucket: &Value, output: &Output, target: &DataType) -> ConnectorResult<ScalarValue> {
    let null = || ScalarValue::try_from(target).map_err(|e| bad(e.to_string()));
    let count = |agg: &str| bucket[agg]["value"].as_f64().unwrap_or(0.0);
    match output {
        Output::Key { source } => key(&bucket["key"][source.as_str()], target),
        Output::DocCount => number(bucket["doc_count"].as_f64().unwrap_or(0.0), target),
        Output::Count { agg } => number(count(agg), target),
        Output::Value { agg, count: c } => {
            if count(c) == 0.0 {
                return null();
            }
            match bucket[agg.as_str()]["value"].as_f64() {
                Some(v) => number(v, target),
                None => null(),
            }
        }
        Output::Avg { sum, count: c } => {
            let n = count(c);
            if n == 0.0 {
                return null();
            }
            let total = bucket[sum.as_str()]["value"].as_f64().unwrap_or(0.0);
            match target {
                DataType::Decimal128(p, out_scale) => {
                    let total = exact_integer(total)?;
                    let average = vivace_functions::numeric::divide(
                        total as i128,
                        0,
                        n as i128,
                        0,
                        *out_scale,
                    )
                    .map_err(|_| bad("numeric value out of range in avg"))?;
                    Ok(ScalarValue::Decimal128(Some(average), *p, *out_scale))
                }
                _ => number(total / n, target),
            }
        }
    }
}

fn exact_integer(v: f64) -> ConnectorResult<i64> {
    if v.fract() == 0.0 && v.abs() <= EXACT_DOUBLE {
        Ok(v as i64)
    } else {
        Err(ConnectorError::new(
            ConnectorErrorKind::UnreadableFormat,
            format!(
                "the search server's aggregate {v} is not exact in a double; run the query with SET vivace.pushdown = off"
            ),
        ))
    }
}

/// A metric (a double in the answer) as `target`.
fn number(v: f64, target: &DataType) -> ConnectorResult<ScalarValue> {
    Ok(match target {
        DataType::Int64 => ScalarValue::Int64(Some(exact_integer(v)?)),
        DataType::Int32 => ScalarValue::Int32(Some(exact_integer(v)? as i32)),
        DataType::Int16 => ScalarValue::Int16(Some(exact_integer(v)? as i16)),
        DataType::Int8 => ScalarValue::Int8(Some(exact_integer(v)? as i8)),
        DataType::Float64 => ScalarValue::Float64(Some(v)),
        DataType::Float32 => ScalarValue::Float32(Some(v as f32)),
        DataType::Decimal128(p, s) => {
            let whole = exact_integer(v)? as i128;
            let scaled = whole
                .checked_mul(10i128.pow((*s).max(0) as u32))
                .ok_or_else(|| bad("numeric value out of range"))?;
            ScalarValue::Decimal128(Some(scaled), *p, *s)
        }
        DataType::Timestamp(unit, tz) => timestamp(exact_integer(v)?, unit, tz.clone())?,
        DataType::Date32 => {
            ScalarValue::Date32(Some(exact_integer(v)?.div_euclid(86_400_000) as i32))
        }
        other => return Err(bad(format!("cannot read an aggregate as {other}"))),
    })
}

fn timestamp(millis: i64, unit: &TimeUnit, tz: Option<Arc<str>>) -> ConnectorResult<ScalarValue> {
    let overflow = || bad("timestamp out of range");
    Ok(match unit {
        TimeUnit::Second => ScalarValue::TimestampSecond(Some(millis.div_euclid(1000)), tz),
        TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(millis), tz),
        TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(
            Some(millis.checked_mul(1000).ok_or_else(overflow)?),
            tz,
        ),
        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(
            Some(millis.checked_mul(1_000_000).ok_or_else(overflow)?),
            tz,
        ),
    })
}

/// A composite key (string, number, boolean or null) as `target`.
fn key(key: &Value, target: &DataType) -> ConnectorResult<ScalarValue> {
    match (key, target) {
        (Value::Null, _) => ScalarValue::try_from(target).map_err(|e| bad(e.to_string())),
        (Value::String(s), DataType::Utf8) => Ok(ScalarValue::Utf8(Some(s.clone()))),
        (Value::String(s), DataType::Utf8View) => Ok(ScalarValue::Utf8View(Some(s.clone()))),
        (Value::Bool(b), DataType::Boolean) => Ok(ScalarValue::Boolean(Some(*b))),
        (Value::Number(n), DataType::Boolean) => {
            Ok(ScalarValue::Boolean(Some(n.as_i64() == Some(1))))
        }
        (Value::String(s), DataType::Boolean) => Ok(ScalarValue::Boolean(Some(s == "true"))),
        (Value::Number(n), DataType::Int64) if n.is_i64() => Ok(ScalarValue::Int64(n.as_i64())),
        (Value::Number(n), DataType::Date32) if n.is_i64() => Ok(ScalarValue::Date32(Some(
            n.as_i64().unwrap_or_default().div_euclid(86_400_000) as i32,
        ))),
        (Value::Number(n), DataType::Timestamp(unit, tz)) if n.is_i64() => {
            timestamp(n.as_i64().unwrap_or_default(), unit, tz.clone())
        }
        (Value::Number(n), target) => number(n.as_f64().unwrap_or_default(), target),
        (other, target) => Err(bad(format!(
            "cannot read the group key {other} as {target}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use serde_json::json;

    #[test]
    fn buckets_convert_exactly() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("city", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("total", DataType::Decimal128(38, 0), true),
            Field::new("mean", DataType::Decimal128(38, 16), true),
        ]));
        let outputs = vec![
            Output::Key {
                source: "g0".into(),
            },
            Output::DocCount,
            Output::Value {
                agg: "m2".into(),
                count: "c2".into(),
            },
            Output::Avg {
                sum: "s3".into(),
                count: "c3".into(),
            },
        ];
        let buckets = [
            json!({"key": {"g0": "Oslo"}, "doc_count": 3, "m2": {"value": 5.0}, "c2": {"value": 3},
                   "s3": {"value": 5.0}, "c3": {"value": 3}}),
            json!({"key": {"g0": null}, "doc_count": 1, "m2": {"value": 0.0}, "c2": {"value": 0},
                   "s3": {"value": 0.0}, "c3": {"value": 0}}),
        ];
        let refs: Vec<&Value> = buckets.iter().collect();
        let batch = decode(&refs, &outputs, &schema).unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        assert!(
            text.contains("| Oslo | 3 | 5     | 1.6666666666666667 |"),
            "{text}"
        );
        assert!(
            text.contains("|      | 1 |       |                    |"),
            "{text}"
        );
        assert!(number(1e300, &DataType::Int64).is_err());
    }
}

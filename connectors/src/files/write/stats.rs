//! Column statistics of a written Parquet file, from its footer, in the
//! shape of a Delta log's `add.stats`: `numRecords`, and per top-level column
//! `minValues`, `maxValues` and `nullCount`. Table formats that keep file
//! statistics in their log (Delta) record them, so readers skip files and
//! the planner sizes joins without opening any footer.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::Schema;
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::scalar::ScalarValue;
use serde_json::{Map, Value, json};

/// Columns that get statistics, as Delta's `dataSkippingNumIndexedCols`
/// defaults to: the first 32.
const INDEXED_COLUMNS: usize = 32;

/// The statistics JSON of a Parquet file of `schema` with footer `metadata`.
pub fn file_statistics(schema: &Schema, metadata: &ParquetMetaData) -> String {
    let rows = metadata.file_metadata().num_rows();
    let groups = metadata.row_groups();
    let mut mins = Map::new();
    let mut maxes = Map::new();
    let mut nulls = Map::new();
    for field in schema.fields().iter().take(INDEXED_COLUMNS) {
        let Ok(converter) = StatisticsConverter::try_new(
            field.name(),
            schema,
            metadata.file_metadata().schema_descr(),
        ) else {
            continue;
        };
        if let Ok(counts) = converter.row_group_null_counts(groups)
            && counts.null_count() == 0
        {
            nulls.insert(
                field.name().clone(),
                json!(counts.values().iter().sum::<u64>()),
            );
        }
        let bound = |values: Option<ArrayRef>, lowest: bool| {
            values.and_then(|values| fold(&values, lowest))
        };
        if let Some(min) = bound(converter.row_group_mins(groups).ok(), true)
            .and_then(|v| json_value(&v, Rounding::Down))
        {
            mins.insert(field.name().clone(), min);
        }
        if let Some(max) = bound(converter.row_group_maxes(groups).ok(), false)
            .and_then(|v| json_value(&v, Rounding::Up))
        {
            maxes.insert(field.name().clone(), max);
        }
    }
    json!({
        "numRecords": rows,
        "minValues": mins,
        "maxValues": maxes,
        "nullCount": nulls,
    })
    .to_string()
}

/// The least (`lowest`) or greatest non-null value of `values`, one per row
/// group; `None` when a row group has none (no bound holds for the file).
fn fold(values: &ArrayRef, lowest: bool) -> Option<ScalarValue> {
    let mut best: Option<ScalarValue> = None;
    for i in 0..values.len() {
        if values.is_null(i) {
            return None;
        }
        let value = ScalarValue::try_from_array(values, i).ok()?;
        best = Some(match best {
            None => value,
            Some(b) => {
                let ordering = value.partial_cmp(&b)?;
                if ordering.is_lt() == lowest && ordering.is_ne() {
                    value
                } else {
                    b
                }
            }
        });
    }
    best
}

/// Which way a value the log cannot hold exactly is moved: a minimum down,
/// a maximum up, so it stays a bound.
#[derive(Clone, Copy)]
enum Rounding {
    Down,
    Up,
}

/// `value` as the log writes it; `None` for types it keeps no bound of.
fn json_value(value: &ScalarValue, rounding: Rounding) -> Option<Value> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => json!(v),
        ScalarValue::Int16(Some(v)) => json!(v),
        ScalarValue::Int32(Some(v)) => json!(v),
        ScalarValue::Int64(Some(v)) => json!(v),
        ScalarValue::UInt8(Some(v)) => json!(v),
        ScalarValue::UInt16(Some(v)) => json!(v),
        ScalarValue::UInt32(Some(v)) => json!(v),
        ScalarValue::Float32(Some(v)) if v.is_finite() => json!(v),
        ScalarValue::Float64(Some(v)) if v.is_finite() => json!(v),
        ScalarValue::Utf8(Some(v))
        | ScalarValue::LargeUtf8(Some(v))
        | ScalarValue::Utf8View(Some(v)) => json!(v),
        ScalarValue::Date32(Some(days)) => {
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)?;
            json!(date.format("%Y-%m-%d").to_string())
        }
        // A decimal of up to 15 digits is exactly an f64's shortest text.
        ScalarValue::Decimal128(Some(v), precision, scale) if *precision <= 15 => {
            let number = *v as f64 / 10f64.powi(i32::from(*scale));
            json!(number)
        }
        ScalarValue::TimestampSecond(Some(v), tz) => timestamp(v * 1000, tz.is_some()),
        ScalarValue::TimestampMillisecond(Some(v), tz) => timestamp(*v, tz.is_some()),
        ScalarValue::TimestampMicrosecond(Some(v), tz) => {
            timestamp(to_millis(*v, 1_000, rounding), tz.is_some())
        }
        ScalarValue::TimestampNanosecond(Some(v), tz) => {
            timestamp(to_millis(*v, 1_000_000, rounding), tz.is_some())
        }
        _ => return None,
    })
}

/// `value` in `per_milli` units as milliseconds, rounded as a bound needs.
fn to_millis(value: i64, per_milli: i64, rounding: Rounding) -> i64 {
    match rounding {
        Rounding::Down => value.div_euclid(per_milli),
        Rounding::Up => value.div_euclid(per_milli) + i64::from(value.rem_euclid(per_milli) != 0),
    }
}

/// A timestamp in milliseconds as the log writes it: UTC with `Z`, or
/// without a zone for `timestamp_ntz`.
fn timestamp(millis: i64, zoned: bool) -> Value {
    let Some(time) = chrono::DateTime::from_timestamp_millis(millis) else {
        return Value::Null;
    };
    let text = time.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    json!(if zoned { format!("{text}Z") } else { text })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
        TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;

    use super::*;

    #[test]
    fn statistics_bound_every_row_group_and_count_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, false),
            Field::new("price", DataType::Decimal128(15, 2), false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]));
        let batch = |ids: Vec<Option<i64>>, names: Vec<&str>, days: Vec<i32>, micros: Vec<i64>| {
            let n = ids.len();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(names)),
                    Arc::new(Date32Array::from(days)),
                    Arc::new(
                        Decimal128Array::from(vec![123_456; n])
                            .with_precision_and_scale(15, 2)
                            .unwrap(),
                    ),
                    Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")),
                ],
            )
            .unwrap()
        };
        let mut out = Vec::new();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(&schema), Some(props)).unwrap();
        writer
            .write(&batch(
                vec![Some(7), None, Some(-3), Some(40)],
                vec!["pear", "apple", "zebra", "fig"],
                vec![19_000, 19_001, 18_999, 19_500],
                vec![1_500, 2_000_001, 3_000, 4_000],
            ))
            .unwrap();
        let metadata = writer.close().unwrap();
        let stats: Value = serde_json::from_str(&file_statistics(&schema, &metadata)).unwrap();
        assert_eq!(
            stats,
            json!({
                "numRecords": 4,
                "minValues": {
                    "id": -3, "name": "apple", "day": "2022-01-07", "price": 1234.56,
                    "at": "1970-01-01T00:00:00.001Z",
                },
                "maxValues": {
                    "id": 40, "name": "zebra", "day": "2023-05-23", "price": 1234.56,
                    "at": "1970-01-01T00:00:02.001Z",
                },
                "nullCount": {"id": 1, "name": 0, "day": 0, "price": 0, "at": 0},
            })
        );
    }
}

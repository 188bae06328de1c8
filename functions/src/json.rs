//! `json` values as PostgreSQL writes them: `json_build_object(key, value, …)`,
//! and [`to_json_column`], the `json` text the wire layer sends for maps,
//! structs and lists that are no PostgreSQL array.
//!
//! The result is `json` (OID 114): text tagged with Arrow's `arrow.json`
//! extension, which the wire layer reports as `json`, so drivers decode it
//! (psycopg2 into a dict; SQLAlchemy 2.1's inspector reads its columns'
//! identity options through it). The text is PostgreSQL's to the byte:
//! `{"a" : 1, "b" : "x"}` (json, unlike jsonb, puts a space on each side of
//! the colon), keys as text, values as `to_json` gives them: numbers bare
//! (NaN and infinities quoted), dates and timestamps in ISO form with `T`,
//! arrays as `[1,2]`, json values embedded as they are, NULL as `null`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use chrono::{Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, StringBuilder, downcast_dictionary_array,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, FieldRef, Float16Type, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// Arrow's extension name for JSON text.
pub const JSON_EXTENSION: &str = "arrow.json";

/// Field metadata that marks a text column as `json`.
pub fn json_metadata() -> HashMap<String, String> {
    HashMap::from([(
        "ARROW:extension:name".to_string(),
        JSON_EXTENSION.to_string(),
    )])
}

/// Whether `field` holds `json` text.
pub fn is_json(field: &Field) -> bool {
    field.extension_type_name() == Some(JSON_EXTENSION)
}

/// The function.
pub fn json_build_object() -> Arc<ScalarUDF> {
    static UDF: LazyLock<Arc<ScalarUDF>> =
        LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(JsonBuildObject::new())));
    UDF.clone()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if !args.arg_fields.len().is_multiple_of(2) {
            return plan_err!(
                "argument list must have even number of elements: the arguments of \
                 json_build_object() must consist of alternating keys and values"
            );
        }
        Ok(Arc::new(
            Field::new(self.name(), DataType::Utf8, true).with_metadata(json_metadata()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalars = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        let mut text = String::new();
        for row in 0..rows {
            text.clear();
            text.push('{');
            for (pair, kv) in arrays.chunks(2).enumerate() {
                let [key, value] = kv else {
                    return exec_err!("argument list must have even number of elements");
                };
                if key.is_null(row) {
                    return exec_err!("argument {} cannot be null", pair * 2 + 1);
                }
                if pair > 0 {
                    text.push_str(", ");
                }
                let mut key_text = String::new();
                write_value(&mut key_text, key, row, false)?;
                let key_text = key_text.trim_matches('"').to_string();
                write_string(&mut text, &plain_text(key, row, &key_text)?);
                text.push_str(" : ");
                let embedded = is_json(&args.arg_fields[pair * 2 + 1]);
                write_value(&mut text, value, row, embedded)?;
            }
            text.push('}');
            out.append_value(&text);
        }
        let result: ArrayRef = Arc::new(out.finish());
        if all_scalars {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// A key as text: strings as they are, anything else as its JSON rendering.
fn plain_text(key: &ArrayRef, row: usize, rendered: &str) -> Result<String> {
    Ok(match key.data_type() {
        DataType::Utf8 => key.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => key.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => key.as_string_view().value(row).to_string(),
        _ => rendered.to_string(),
    })
}

/// `s` as a JSON string literal.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A fraction of a second, `.` and its digits down to the nanosecond with
/// trailing zeros dropped (PostgreSQL's microseconds print as it prints them).
fn write_fraction(out: &mut String, nanos: u32) {
    if nanos == 0 {
        return;
    }
    let digits = format!("{nanos:09}");
    out.push('.');
    out.push_str(digits.trim_end_matches('0'));
}

/// `array`'s values as `json` text, one per row (SQL NULL stays NULL): what
/// the wire layer sends for maps, structs and lists that are no PostgreSQL
/// array. See [`write_value`] for the form of each type.
pub fn to_json_column(array: &ArrayRef) -> Result<ArrayRef> {
    let nulls = array.logical_nulls();
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut text = String::new();
    for row in 0..array.len() {
        if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            out.append_null();
            continue;
        }
        text.clear();
        write_value(&mut text, array, row, false)?;
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}

/// The value at `row` as `to_json` writes it: numbers bare and exact
/// (integers of any width, decimals with their scale, floats in PostgreSQL's
/// shortest form; NaN and infinities quoted), booleans, strings, dates
/// (`"2024-01-02"`), times (`"13:14:15.5"`), timestamps in ISO form with `T`
/// and, with a zone, the offset (`"2024-01-02T03:04:05+00:00"`), bytes as
/// PostgreSQL's `bytea` hex text (`"\\x0102"`), lists as `[1,2]`, structs as
/// `{"field":value}` (what `row_to_json` writes), maps as `{"key":value}`
/// with each key as a JSON string (non-text keys as their JSON text), json
/// text embedded as it is, NULL as `null`; anything else as a string of
/// Arrow's display of it.
fn write_value(out: &mut String, array: &ArrayRef, row: usize, embedded_json: bool) -> Result<()> {
    if array.is_null(row) {
        out.push_str("null");
        return Ok(());
    }
    match array.data_type() {
        DataType::Null => out.push_str("null"),
        DataType::Boolean => {
            out.push_str(if array.as_boolean().value(row) {
                "true"
            } else {
                "false"
            });
        }
        DataType::Int8 => write_display(out, array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write_display(out, array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write_display(out, array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write_display(out, array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => write_display(out, array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => write_display(out, array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => write_display(out, array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => write_display(out, array.as_primitive::<UInt64Type>().value(row)),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => out.push_str(&formatted(array, row)?),
        DataType::Float16 => {
            write_float(out, array.as_primitive::<Float16Type>().value(row).to_f32());
        }
        DataType::Float32 => write_float(out, array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => write_float(out, array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if embedded_json => {
            out.push_str(&formatted(array, row)?);
        }
        DataType::Utf8 => write_string(out, array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => write_string(out, array.as_string::<i64>().value(row)),
        DataType::Utf8View => write_string(out, array.as_string_view().value(row)),
        DataType::Binary => write_bytes(out, array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => write_bytes(out, array.as_binary::<i64>().value(row)),
        DataType::BinaryView => write_bytes(out, array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => write_bytes(out, array.as_fixed_size_binary().value(row)),
        DataType::Date32 | DataType::Date64 => {
            let date = match array.data_type() {
                DataType::Date32 => array.as_primitive::<Date32Type>().value_as_date(row),
                _ => array.as_primitive::<Date64Type>().value_as_date(row),
            };
            match date {
                Some(d) => write_string(out, &d.format("%Y-%m-%d").to_string()),
                None => write_string(out, &formatted(array, row)?),
            }
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let time = match array.data_type() {
                DataType::Time32(TimeUnit::Second) => {
                    array.as_primitive::<Time32SecondType>().value_as_time(row)
                }
                DataType::Time32(_) => array
                    .as_primitive::<Time32MillisecondType>()
                    .value_as_time(row),
                DataType::Time64(TimeUnit::Microsecond) => array
                    .as_primitive::<Time64MicrosecondType>()
                    .value_as_time(row),
                _ => array
                    .as_primitive::<Time64NanosecondType>()
                    .value_as_time(row),
            };
            let Some(time) = time else {
                write_string(out, &formatted(array, row)?);
                return Ok(());
            };
            let mut text = time.format("%H:%M:%S").to_string();
            write_fraction(&mut text, time.nanosecond());
            write_string(out, &text);
        }
        DataType::Timestamp(unit, tz) => {
            let datetime = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value_as_datetime(row),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value_as_datetime(row),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value_as_datetime(row),
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value_as_datetime(row),
            };
            let Some(utc) = datetime else {
                write_string(out, &formatted(array, row)?);
                return Ok(());
            };
            // With a zone, the local time there and its offset, as PostgreSQL
            // writes a timestamptz in the session's zone.
            let (local, offset) = match tz {
                Some(tz) => {
                    let tz: Tz = tz.parse()?;
                    let offset = tz.offset_from_utc_datetime(&utc).fix();
                    (utc + offset, Some(offset.local_minus_utc()))
                }
                None => (utc, None),
            };
            let mut text = local.format("%Y-%m-%dT%H:%M:%S").to_string();
            write_fraction(&mut text, local.and_utc().timestamp_subsec_nanos());
            if let Some(seconds) = offset {
                let sign = if seconds < 0 { '-' } else { '+' };
                let seconds = seconds.abs();
                let _ = write!(
                    text,
                    "{sign}{:02}:{:02}",
                    seconds / 3600,
                    (seconds / 60) % 60
                );
                if seconds % 60 != 0 {
                    let _ = write!(text, ":{:02}", seconds % 60);
                }
            }
            write_string(out, &text);
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => {
            let (values, element) = match array.data_type() {
                DataType::List(f) => (array.as_list::<i32>().value(row), f),
                DataType::LargeList(f) => (array.as_list::<i64>().value(row), f),
                DataType::FixedSizeList(f, _) => (array.as_fixed_size_list().value(row), f),
                DataType::ListView(f) => (array.as_list_view::<i32>().value(row), f),
                DataType::LargeListView(f) => (array.as_list_view::<i64>().value(row), f),
                _ => unreachable!("matched as a list above"),
            };
            let embedded = is_json(element);
            out.push('[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, &values, i, embedded)?;
            }
            out.push(']');
        }
        DataType::Struct(fields) => {
            let columns = array.as_struct().columns();
            out.push('{');
            for (i, (field, column)) in fields.iter().zip(columns).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, field.name());
                out.push(':');
                write_value(out, column, row, is_json(field))?;
            }
            out.push('}');
        }
        DataType::Map(entry, _) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let embedded = match entry.data_type() {
                DataType::Struct(fields) if fields.len() == 2 => is_json(&fields[1]),
                _ => false,
            };
            out.push('{');
            let mut key = String::new();
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                key.clear();
                write_value(&mut key, keys, i, false)?;
                if key.starts_with('"') {
                    out.push_str(&key);
                } else {
                    write_string(out, &key);
                }
                out.push(':');
                write_value(out, values, i, embedded)?;
            }
            out.push('}');
        }
        DataType::Dictionary(..) => downcast_dictionary_array!(
            array => match array.key(row) {
                Some(key) => write_value(out, array.values(), key, embedded_json)?,
                None => out.push_str("null"),
            },
            other => return exec_err!("unexpected dictionary type {other}")
        ),
        DataType::Union(..) => {
            let union = array.as_union();
            let child = union.child(union.type_id(row));
            write_value(out, child, union.value_offset(row), embedded_json)?;
        }
        _ => write_string(out, &formatted(array, row)?),
    }
    Ok(())
}

fn write_display(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

/// A float as PostgreSQL's text of it: a JSON number, except NaN and the
/// infinities, which JSON has no number for (`"NaN"`, `"Infinity"`).
fn write_float<T: Into<f64> + std::fmt::LowerExp + Copy>(out: &mut String, v: T) {
    let max_exp = if std::mem::size_of::<T>() == 4 { 6 } else { 15 };
    let text = crate::float::format_float(v, max_exp);
    if v.into().is_finite() {
        out.push_str(&text);
    } else {
        write_string(out, &text);
    }
}

/// Bytes as the JSON string of PostgreSQL's `bytea` hex text: `"\\x0a1b"`.
fn write_bytes(out: &mut String, bytes: &[u8]) {
    out.push_str("\"\\\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push('"');
}

fn formatted(array: &ArrayRef, row: usize) -> Result<String> {
    let options = FormatOptions::default();
    Ok(ArrayFormatter::try_new(array.as_ref(), &options)?
        .value(row)
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use datafusion::common::config::ConfigOptions;

    fn build(columns: Vec<ArrayRef>) -> Result<String> {
        let arg_fields = columns
            .iter()
            .map(|c| Arc::new(Field::new("a", c.data_type().clone(), true)))
            .collect();
        let args = ScalarFunctionArgs {
            args: columns.into_iter().map(ColumnarValue::Array).collect(),
            arg_fields,
            number_rows: 1,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        match JsonBuildObject::new().invoke_with_args(args)? {
            ColumnarValue::Array(a) => Ok(a.as_string::<i32>().value(0).to_string()),
            ColumnarValue::Scalar(s) => Ok(s.to_string()),
        }
    }

    fn text(v: &str) -> ArrayRef {
        Arc::new(StringArray::from(vec![v]))
    }

    #[test]
    fn postgres_text() {
        // PostgreSQL 15: SELECT json_build_object('a', 1, 'b', 'x', 'c', NULL::text)
        let got = build(vec![
            text("a"),
            Arc::new(Int64Array::from(vec![1])),
            text("b"),
            text("x\"y"),
            text("c"),
            Arc::new(StringArray::from(vec![None::<&str>])),
        ])
        .unwrap();
        assert_eq!(got, r#"{"a" : 1, "b" : "x\"y", "c" : null}"#);
        // Non-text keys become text; NaN is quoted.
        let got = build(vec![
            Arc::new(BooleanArray::from(vec![true])),
            Arc::new(Float64Array::from(vec![f64::NAN])),
        ])
        .unwrap();
        assert_eq!(got, r#"{"true" : "NaN"}"#);
        assert_eq!(build(vec![]).unwrap(), "{}");
        let null_key = build(vec![
            Arc::new(StringArray::from(vec![None::<&str>])),
            text("v"),
        ]);
        assert!(null_key.unwrap_err().to_string().contains("cannot be null"));
    }
    /// `to_json_column` over `array`, NULL rows as `None`.
    fn json_rows(array: ArrayRef) -> Vec<Option<String>> {
        let out = to_json_column(&array).unwrap();
        out.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn maps_are_objects_keyed_by_text() {
        use datafusion::arrow::array::{Int32Builder, MapBuilder, StringBuilder};
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        map.keys().append_value("a");
        map.values().append_value(1);
        map.keys().append_value("b\"");
        map.values().append_null();
        map.append(true).unwrap();
        map.append(true).unwrap(); // empty
        map.append(false).unwrap(); // NULL
        let got = json_rows(Arc::new(map.finish()));
        assert_eq!(
            got,
            [
                Some(r#"{"a":1,"b\"":null}"#.to_string()),
                Some("{}".to_string()),
                None
            ]
        );

        // Keys that are not text become JSON strings of their JSON text.
        let mut map = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
        map.keys().append_value(7);
        map.values().append_value("x");
        map.append(true).unwrap();
        assert_eq!(
            json_rows(Arc::new(map.finish())),
            [Some(r#"{"7":"x"}"#.to_string())]
        );
    }

    #[test]
    fn structs_and_lists_nest() {
        use datafusion::arrow::array::{ListArray, StructArray};
        use datafusion::arrow::buffer::NullBuffer;
        use datafusion::arrow::datatypes::Int32Type;
        let lines = ListArray::from_iter_primitive::<Int32Type, _, _>([
            Some(vec![Some(1), None]),
            Some(vec![]),
            None,
        ]);
        let zip: ArrayRef = Arc::new(StringArray::from(vec![Some("75001"), None, Some("z")]));
        let fields = vec![
            Field::new("zip", DataType::Utf8, true),
            Field::new("lines", lines.data_type().clone(), true),
        ];
        let s = StructArray::try_new(
            fields.into(),
            vec![zip, Arc::new(lines)],
            Some(NullBuffer::from(vec![true, true, false])),
        )
        .unwrap();
        assert_eq!(
            json_rows(Arc::new(s)),
            [
                Some(r#"{"zip":"75001","lines":[1,null]}"#.to_string()),
                Some(r#"{"zip":null,"lines":[]}"#.to_string()),
                None
            ]
        );
    }

    #[test]
    fn scalars_inside_json_are_exact() {
        use datafusion::arrow::array::{
            BinaryArray, Decimal128Array, Float32Array, ListArray, Time64MicrosecondArray,
            TimestampMicrosecondArray, UInt64Array,
        };
        let list = |values: ArrayRef| -> ArrayRef {
            let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
            let offsets = datafusion::arrow::buffer::OffsetBuffer::from_lengths([values.len()]);
            Arc::new(ListArray::new(field, offsets, values, None))
        };
        let one = |values: ArrayRef| json_rows(list(values))[0].clone().unwrap();
        assert_eq!(
            one(Arc::new(
                Decimal128Array::from(vec![Some(12345678901234567890123456789012345678), Some(-5)])
                    .with_precision_and_scale(38, 2)
                    .unwrap()
            )),
            "[123456789012345678901234567890123456.78,-0.05]"
        );
        assert_eq!(
            one(Arc::new(UInt64Array::from(vec![u64::MAX]))),
            "[18446744073709551615]"
        );
        assert_eq!(
            one(Arc::new(Float64Array::from(vec![
                2.0,
                1e20,
                0.1,
                f64::NAN,
                f64::NEG_INFINITY
            ]))),
            r#"[2,1e+20,0.1,"NaN","-Infinity"]"#
        );
        assert_eq!(one(Arc::new(Float32Array::from(vec![0.1f32]))), "[0.1]");
        assert_eq!(
            one(Arc::new(BinaryArray::from(vec![&b"\x01\xab"[..]]))),
            r#"["\\x01ab"]"#
        );
        assert_eq!(
            one(Arc::new(Time64MicrosecondArray::from(vec![47_655_500_000]))),
            r#"["13:14:15.5"]"#
        );
        let ts = TimestampMicrosecondArray::from(vec![1_704_164_645_120_000]);
        assert_eq!(one(Arc::new(ts.clone())), r#"["2024-01-02T03:04:05.12"]"#);
        assert_eq!(
            one(Arc::new(ts.clone().with_timezone("UTC"))),
            r#"["2024-01-02T03:04:05.12+00:00"]"#
        );
        assert_eq!(
            one(Arc::new(ts.with_timezone("+05:30"))),
            r#"["2024-01-02T08:34:05.12+05:30"]"#
        );
    }
}

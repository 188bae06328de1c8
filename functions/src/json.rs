//! `json_build_object(key, value, …)`, as PostgreSQL writes it.
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

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
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

/// Seconds and a fraction, PostgreSQL style: trailing zeros of the fraction dropped.
fn write_fraction(out: &mut String, nanos: u32) {
    if nanos == 0 {
        return;
    }
    let micros = format!("{:06}", nanos / 1000);
    let trimmed = micros.trim_end_matches('0');
    if !trimmed.is_empty() {
        out.push('.');
        out.push_str(trimmed);
    }
}

/// The value at `row` as `to_json` writes it.
fn write_value(out: &mut String, array: &ArrayRef, row: usize, embedded_json: bool) -> Result<()> {
    if array.is_null(row) {
        out.push_str("null");
        return Ok(());
    }
    match array.data_type() {
        DataType::Boolean => {
            out.push_str(if array.as_boolean().value(row) {
                "true"
            } else {
                "false"
            });
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => out.push_str(&formatted(array, row)?),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let text = formatted(array, row)?;
            match text.as_str() {
                "NaN" => out.push_str("\"NaN\""),
                "inf" => out.push_str("\"Infinity\""),
                "-inf" => out.push_str("\"-Infinity\""),
                _ => out.push_str(&text),
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if embedded_json => {
            out.push_str(&formatted(array, row)?);
        }
        DataType::Utf8 => write_string(out, array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => write_string(out, array.as_string::<i64>().value(row)),
        DataType::Utf8View => write_string(out, array.as_string_view().value(row)),
        DataType::Date32 => {
            let date = array
                .as_primitive::<Date32Type>()
                .value_as_date(row)
                .map(|d| d.format("%Y-%m-%d").to_string());
            match date {
                Some(d) => write_string(out, &d),
                None => write_string(out, &formatted(array, row)?),
            }
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
            let Some(datetime) = datetime else {
                write_string(out, &formatted(array, row)?);
                return Ok(());
            };
            let mut text = datetime.format("%Y-%m-%dT%H:%M:%S").to_string();
            write_fraction(&mut text, datetime.and_utc().timestamp_subsec_nanos());
            if tz.is_some() {
                text.push_str("+00:00");
            }
            write_string(out, &text);
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let values = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(row),
                DataType::LargeList(_) => array.as_list::<i64>().value(row),
                _ => array.as_fixed_size_list().value(row),
            };
            out.push('[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, &values, i, false)?;
            }
            out.push(']');
        }
        _ => write_string(out, &formatted(array, row)?),
    }
    Ok(())
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
}

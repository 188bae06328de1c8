//! PostgreSQL's text form of `float8` / `float4` values.
//!
//! pgwire 0.41 writes floats with ryu's notation (`2.0`, `1e20`, `inf`) where
//! PostgreSQL (12+, `extra_float_digits` ≥ 1, the default) writes the shortest
//! exact digits in `%g` style: `2`, `1e+20`, `1.5e-07`, `Infinity`. psql output,
//! COPY text and every text-format driver read the latter, so float columns sent
//! as text are formatted here, before arrow-pg encodes the batch.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema};
use datafusion::arrow::error::ArrowError;
use pgwire::api::results::{FieldFormat, FieldInfo};

/// `batch` with every text-format float column replaced by PostgreSQL's text for
/// it (a string column; the row description keeps the float type). Columns sent
/// in binary, and clients asking for fewer float digits, are left alone.
pub fn postgres_float_text(
    batch: RecordBatch,
    fields: &[FieldInfo],
    extra_float_digits: i8,
) -> Result<RecordBatch, ArrowError> {
    let is_float = |t: &DataType| matches!(t, DataType::Float64 | DataType::Float32);
    let text = |i: usize| {
        fields
            .get(i)
            .is_some_and(|f| f.format() == FieldFormat::Text)
    };
    if extra_float_digits < 1
        || !batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .any(|(i, f)| is_float(f.data_type()) && text(i))
    {
        return Ok(batch);
    }
    let schema = batch.schema();
    let mut new_fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, (field, column)) in schema.fields().iter().zip(batch.columns()).enumerate() {
        let formatted = match field.data_type() {
            DataType::Float64 if text(i) => Some(format_column(
                column.as_primitive::<Float64Type>().iter(),
                column.len(),
                |v: f64| format_float(v, 15),
            )),
            DataType::Float32 if text(i) => Some(format_column(
                column.as_primitive::<Float32Type>().iter(),
                column.len(),
                |v: f32| format_float(v, 6),
            )),
            _ => None,
        };
        match formatted {
            Some(strings) => {
                new_fields.push(Field::new(field.name(), DataType::Utf8, true));
                columns.push(strings);
            }
            None => {
                new_fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), columns)
}

fn format_column<T>(
    values: impl Iterator<Item = Option<T>>,
    len: usize,
    format: impl Fn(T) -> String,
) -> ArrayRef {
    let mut out = StringBuilder::with_capacity(len, len * 8);
    for v in values {
        match v {
            Some(v) => out.append_value(format(v)),
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

/// The shortest digits that read back as `v` (Rust's `{:e}` gives exactly those),
/// laid out as PostgreSQL does: positional when `-4 <= exponent < max_exp`
/// (15 for float8, 6 for float4), else `d.ddde±XX`.
fn format_float<T: Into<f64> + std::fmt::LowerExp + Copy>(v: T, max_exp: i32) -> String {
    let f: f64 = v.into();
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if exp < -4 || exp >= max_exp {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_postgres_prints_them() {
        let cases: &[(f64, &str)] = &[
            (2.0, "2"),
            (0.5, "0.5"),
            (-1.25, "-1.25"),
            (1234.5678, "1234.5678"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (1.2345678901234566e25, "1.2345678901234566e+25"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (0.0, "0"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(*v, 15), *want, "{v}");
        }
        assert_eq!(format_float(1.5f32, 6), "1.5");
        assert_eq!(format_float(1234567f32, 6), "1.234567e+06");
        assert_eq!(format_float(0.1f32, 6), "0.1");
    }
}

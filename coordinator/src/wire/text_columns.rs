//! Columns PostgreSQL writes differently from pgwire, formatted here as text
//! before arrow-pg encodes the batch (a string column; the row description keeps
//! the column's type). Only columns sent in text format are touched.
//!
//! - **Floats.** pgwire 0.41 writes floats with ryu's notation (`2.0`, `1e20`,
//!   `inf`) where PostgreSQL (12+, `extra_float_digits` ≥ 1, the default) writes
//!   the shortest exact digits in `%g` style: `2`, `1e+20`, `1.5e-07`, `Infinity`.
//!   psql output, COPY text and every text-format driver read the latter.
//! - **Decimals**, in text *and* binary format ([`super::numeric`]): arrow-pg
//!   goes through `rust_decimal`, which holds 28 digits, so wider values
//!   (`numeric(38,10)`, averages at 20 decimals) failed to encode. A binary
//!   column becomes the bytes of PostgreSQL's binary `numeric`.
//! - **Dates, `DateStyle` ISO** (the default). pgwire parses the `DateStyle`
//!   setting and runs a chrono strftime pattern for every value, which was the
//!   largest single cost of sending a date column; it also writes years before 1
//!   as `-0043-03-15` and after 9999 as `+10000-01-01`, where PostgreSQL writes
//!   `0044-03-15 BC` and `10000-01-01`. Other date styles are left to pgwire.
//! - **Timestamps (`DateStyle` ISO) and times.** pgwire always writes six
//!   fractional digits (`00:00:00.000000`); PostgreSQL writes them only when
//!   there are some, trailing zeros trimmed, and rounds nanoseconds to
//!   microseconds.

use std::fmt::Write;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, RecordBatch, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int64Type, Schema,
    TimeUnit,
};
use datafusion::arrow::error::ArrowError;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::types::format::FormatOptions;

/// How the session wants text values written.
#[derive(Debug, Clone, Copy)]
pub struct TextStyle {
    /// Floats are rewritten when this is at least 1 (`extra_float_digits`).
    extra_float_digits: i8,
    /// `DateStyle` is ISO, so dates are written `YYYY-MM-DD[ BC]`.
    iso_dates: bool,
}

impl TextStyle {
    /// The style a session's format options ask for.
    pub fn of(options: &FormatOptions) -> Self {
        let style = options.date_style.trim_start();
        Self {
            extra_float_digits: options.extra_float_digits,
            iso_dates: style.len() >= 3 && style[..3].eq_ignore_ascii_case("iso"),
        }
    }
}

/// `batch` with every text-format float and date column replaced by PostgreSQL's
/// text for it, as [`TextStyle`] allows, and every decimal column by its text
/// or binary form. Other columns are left alone.
pub fn postgres_text_columns(
    batch: RecordBatch,
    fields: &[FieldInfo],
    style: TextStyle,
) -> Result<RecordBatch, ArrowError> {
    let text = |i: usize| {
        fields
            .get(i)
            .is_some_and(|f| f.format() == FieldFormat::Text)
    };
    let rewrites = |i: usize, t: &DataType| match t {
        DataType::Float64 | DataType::Float32 => style.extra_float_digits >= 1 && text(i),
        DataType::Date32 | DataType::Timestamp(..) => style.iso_dates && text(i),
        DataType::Time32(_) | DataType::Time64(_) => text(i),
        DataType::Decimal128(..) => true,
        _ => false,
    };
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .enumerate()
        .any(|(i, f)| rewrites(i, f.data_type()))
    {
        return Ok(batch);
    }
    let mut new_fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, (field, column)) in schema.fields().iter().zip(batch.columns()).enumerate() {
        if !rewrites(i, field.data_type()) {
            new_fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        if let DataType::Decimal128(_, scale) = field.data_type() {
            let values = column.as_primitive::<Decimal128Type>();
            let (data_type, encoded): (DataType, ArrayRef) = if text(i) {
                let scale = *scale;
                let encoded = format_column(values.iter(), column.len(), |out, v| {
                    super::numeric::write_text(out, v, scale)
                });
                (DataType::Utf8, encoded)
            } else {
                let encoded: BinaryArray = values
                    .iter()
                    .map(|v| v.map(|v| super::numeric::binary(v, *scale)))
                    .collect();
                (DataType::Binary, Arc::new(encoded))
            };
            new_fields.push(Field::new(field.name(), data_type, true));
            columns.push(encoded);
            continue;
        }
        let strings = match field.data_type() {
            DataType::Float64 => format_column(
                column.as_primitive::<Float64Type>().iter(),
                column.len(),
                |out, v: f64| out.push_str(&format_float(v, 15)),
            ),
            DataType::Float32 => format_column(
                column.as_primitive::<Float32Type>().iter(),
                column.len(),
                |out, v: f32| out.push_str(&format_float(v, 6)),
            ),
            DataType::Timestamp(unit, tz) => {
                let micros_per = |v: i64| match unit {
                    TimeUnit::Second => v.checked_mul(1_000_000),
                    TimeUnit::Millisecond => v.checked_mul(1_000),
                    TimeUnit::Microsecond => Some(v),
                    // PostgreSQL keeps microseconds, rounding half away from zero.
                    TimeUnit::Nanosecond => Some(if v >= 0 {
                        (v + 500) / 1000
                    } else {
                        (v - 500) / 1000
                    }),
                };
                let tz: Option<Tz> = tz.as_deref().map(str::parse).transpose()?;
                let raw = cast(column, &DataType::Int64)?;
                format_column(
                    raw.as_primitive::<Int64Type>().iter(),
                    column.len(),
                    |out, v| write_iso_timestamp(out, micros_per(v), tz.as_ref()),
                )
            }
            DataType::Time32(unit) | DataType::Time64(unit) => {
                let per_second: i64 = match unit {
                    TimeUnit::Second => 1,
                    TimeUnit::Millisecond => 1_000,
                    TimeUnit::Microsecond => 1_000_000,
                    TimeUnit::Nanosecond => 1_000_000_000,
                };
                let raw = cast(column, &DataType::Int64)?;
                format_column(
                    raw.as_primitive::<Int64Type>().iter(),
                    column.len(),
                    |out, v| {
                        // To microseconds, rounding nanoseconds as PostgreSQL does.
                        let micros = match per_second {
                            1_000_000_000 => (v + 500) / 1000,
                            p => v * (1_000_000 / p),
                        };
                        write_time(out, micros)
                    },
                )
            }
            _ => format_column(
                column.as_primitive::<Date32Type>().iter(),
                column.len(),
                write_iso_date,
            ),
        };
        new_fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(strings);
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), columns)
}

/// A string column of `values`, each written by `format` into a reused buffer.
fn format_column<T>(
    values: impl Iterator<Item = Option<T>>,
    len: usize,
    format: impl Fn(&mut String, T),
) -> ArrayRef {
    let mut out = StringBuilder::with_capacity(len, len * 10);
    let mut buf = String::with_capacity(32);
    for v in values {
        match v {
            Some(v) => {
                buf.clear();
                format(&mut buf, v);
                out.append_value(&buf);
            }
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

/// Days since 1970-01-01 between `NaiveDate::from_num_days_from_ce` day 1
/// (0001-01-01) and the epoch.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A `date` as PostgreSQL writes it in ISO style: `2024-02-29`, `10000-01-01`,
/// `0044-03-15 BC` (there is no year 0: year 0 is 1 BC).
fn write_iso_date(out: &mut String, days: i32) {
    let Some(date) = days
        .checked_add(EPOCH_DAYS_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
    else {
        // Outside chrono's range (±262,000 years) and PostgreSQL's alike.
        let _ = write!(out, "{days}");
        return;
    };
    let year = date.year();
    let (shown, era) = if year >= 1 {
        (year, "")
    } else {
        (1 - year, " BC")
    };
    let _ = write!(out, "{shown:04}-{:02}-{:02}{era}", date.month(), date.day());
}

/// A `timestamp` (no zone) or `timestamptz` (shown in the column's zone) as
/// PostgreSQL writes it in ISO style: `2024-01-02 03:04:05`, fractional
/// seconds only when there are some, trailing zeros trimmed
/// (`05.12`), the offset as `+00`, `+05:30`; years before 1 as `BC`.
fn write_iso_timestamp(out: &mut String, micros: Option<i64>, tz: Option<&Tz>) {
    let Some(utc) = micros.and_then(chrono::DateTime::from_timestamp_micros) else {
        let _ = write!(out, "{micros:?}");
        return;
    };
    let (local, offset) = match tz {
        Some(tz) => {
            let offset = tz.offset_from_utc_datetime(&utc.naive_utc()).fix();
            (utc.naive_utc() + offset, Some(offset.local_minus_utc()))
        }
        None => (utc.naive_utc(), None),
    };
    let year = local.year();
    let (shown, era) = if year >= 1 {
        (year, "")
    } else {
        (1 - year, " BC")
    };
    let _ = write!(
        out,
        "{shown:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        local.month(),
        local.day(),
        local.hour(),
        local.minute(),
        local.second()
    );
    let fraction = local.nanosecond() / 1000;
    if fraction > 0 {
        let digits = format!("{fraction:06}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    if let Some(seconds) = offset {
        let sign = if seconds < 0 { '-' } else { '+' };
        let seconds = seconds.abs();
        let _ = write!(out, "{sign}{:02}", seconds / 3600);
        if seconds % 3600 != 0 {
            let _ = write!(out, ":{:02}", (seconds % 3600) / 60);
            if seconds % 60 != 0 {
                let _ = write!(out, ":{:02}", seconds % 60);
            }
        }
    }
    out.push_str(era);
}

/// A `time` as PostgreSQL writes it: `13:14:15`, `13:14:15.5`.
fn write_time(out: &mut String, micros: i64) {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    );
    if fraction > 0 {
        let digits = format!("{fraction:06}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
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
    fn timestamps_print_as_postgres_prints_them_in_iso_style() {
        let utc: Tz = "UTC".parse().unwrap();
        let kolkata: Tz = "+05:30".parse().unwrap();
        let cases = [
            (Some(1_704_164_645_000_000), None, "2024-01-02 03:04:05"),
            (
                Some(1_704_164_645_120_000),
                Some(&utc),
                "2024-01-02 03:04:05.12+00",
            ),
            (
                Some(1_704_164_645_000_001),
                Some(&kolkata),
                "2024-01-02 08:34:05.000001+05:30",
            ),
            (Some(0), None, "1970-01-01 00:00:00"),
            (
                Some(-62_135_596_800_000_000 - 86_400_000_000),
                None,
                "0001-12-31 00:00:00 BC",
            ),
        ];
        for (micros, tz, want) in cases {
            let mut out = String::new();
            write_iso_timestamp(&mut out, micros, tz);
            assert_eq!(out, want);
        }
        for (micros, want) in [
            (47_655_000_000, "13:14:15"),
            (47_655_500_000, "13:14:15.5"),
            (1, "00:00:00.000001"),
        ] {
            let mut out = String::new();
            write_time(&mut out, micros);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn dates_print_as_postgres_prints_them_in_iso_style() {
        let day = |y, m, d| {
            (NaiveDate::from_ymd_opt(y, m, d).unwrap()
                - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days() as i32
        };
        let cases = [
            (day(2024, 2, 29), "2024-02-29"),
            (0, "1970-01-01"),
            (day(1, 1, 1), "0001-01-01"),
            (day(0, 12, 31), "0001-12-31 BC"),
            (day(-43, 3, 15), "0044-03-15 BC"),
            (day(10000, 1, 1), "10000-01-01"),
        ];
        for (days, want) in cases {
            let mut out = String::new();
            write_iso_date(&mut out, days);
            assert_eq!(out, want, "{days}");
        }
    }

    #[test]
    fn only_text_columns_are_rewritten_and_only_in_iso_style() {
        use datafusion::arrow::array::{Date32Array, Int32Array};
        use pgwire::api::Type;
        use pgwire::api::results::FieldFormat;

        let batch = RecordBatch::try_from_iter([
            (
                "d",
                Arc::new(Date32Array::from(vec![Some(0), None])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(Date32Array::from(vec![Some(1), Some(2)])) as ArrayRef,
            ),
            ("i", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
        ])
        .unwrap();
        let field =
            |name: &str, ty, format| FieldInfo::new(name.to_string(), None, None, ty, format);
        let fields = [
            field("d", Type::DATE, FieldFormat::Text),
            field("b", Type::DATE, FieldFormat::Binary),
            field("i", Type::INT4, FieldFormat::Text),
        ];
        let iso = TextStyle::of(&FormatOptions::default());
        let out = postgres_text_columns(batch.clone(), &fields, iso).unwrap();
        let d = out.column(0).as_string::<i32>();
        assert_eq!((d.value(0), d.is_null(1)), ("1970-01-01", true));
        assert_eq!(out.column(1).data_type(), &DataType::Date32);
        assert_eq!(out.column(2).data_type(), &DataType::Int32);

        let mut german = FormatOptions::default();
        german.date_style = "German, DMY".to_string();
        let out = postgres_text_columns(batch, &fields, TextStyle::of(&german)).unwrap();
        assert_eq!(out.column(0).data_type(), &DataType::Date32);
    }

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

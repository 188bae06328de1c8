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
//! - **Arrays of those** (lists of floats, dates, timestamps, times,
//!   decimals; see [`super::nested`]): their elements as above, quoted as
//!   PostgreSQL's `array_out` quotes them (`{"2024-01-02 03:04:05",NULL}`)
//!   where pgwire wrote `{2024-01-02 03:04:05.000000,NULL}`; decimal arrays
//!   in binary format as binary `numeric[]` (arrow-pg's `rust_decimal` again).

use std::fmt::Write;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, RecordBatch, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int64Type, Schema,
    TimeUnit,
};
use datafusion::arrow::error::ArrowError;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::types::format::FormatOptions;
use vivace_functions::float::format_float;

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
/// or binary form; lists of those alike, as PostgreSQL's array text
/// (`{1.5,NULL}`) or, for decimals in binary format, binary `numeric[]`.
/// Other columns are left alone.
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
    // Whether values of type `t` sent as text are written here.
    let writes_text = |t: &DataType| match t {
        DataType::Float64 | DataType::Float32 => style.extra_float_digits >= 1,
        DataType::Date32 | DataType::Timestamp(..) => style.iso_dates,
        DataType::Time32(_) | DataType::Time64(_) | DataType::Decimal128(..) => true,
        _ => false,
    };
    let rewrites = |i: usize, t: &DataType| match t {
        DataType::Decimal128(..) => true,
        DataType::List(element)
        | DataType::LargeList(element)
        | DataType::FixedSizeList(element, _) => match element.data_type() {
            DataType::Decimal128(..) => true,
            element => text(i) && writes_text(element),
        },
        t => text(i) && writes_text(t),
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
        let (data_type, encoded): (DataType, ArrayRef) = match field.data_type() {
            DataType::Decimal128(_, scale) if !text(i) => {
                let encoded: BinaryArray = column
                    .as_primitive::<Decimal128Type>()
                    .iter()
                    .map(|v| v.map(|v| super::numeric::binary(v, *scale)))
                    .collect();
                (DataType::Binary, Arc::new(encoded))
            }
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                array_column(column, text(i))?
            }
            _ => (DataType::Utf8, scalar_text(column)?),
        };
        new_fields.push(Field::new(field.name(), data_type, true));
        columns.push(encoded);
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), columns)
}

/// A string column of PostgreSQL's text for each value of `column`, a float,
/// date, timestamp, time or decimal column.
fn scalar_text(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    Ok(match column.data_type() {
        DataType::Decimal128(_, scale) => {
            let scale = *scale;
            format_column(
                column.as_primitive::<Decimal128Type>().iter(),
                column.len(),
                |out, v| super::numeric::write_text(out, v, scale),
            )
        }
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
        DataType::Date32 => format_column(
            column.as_primitive::<Date32Type>().iter(),
            column.len(),
            write_iso_date,
        ),
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "PostgreSQL text of {other}"
            )));
        }
    })
}

/// `numeric`'s type OID, the element type of a binary `numeric[]`.
const NUMERIC_OID: u32 = 1700;

/// A list column as PostgreSQL's array of its elements: the array's text
/// (`{1.5,NULL,"2024-01-02 03:04:05"}`), or, in binary format (decimal
/// elements only), the bytes of a binary `numeric[]`.
fn array_column(column: &ArrayRef, text: bool) -> Result<(DataType, ArrayRef), ArrowError> {
    // The elements, and the range of them each row holds (None: a NULL list).
    let (values, ranges): (ArrayRef, Vec<Option<(usize, usize)>>) = match column.data_type() {
        DataType::List(_) => {
            let list = column.as_list::<i32>();
            let offsets = list.value_offsets();
            let ranges = (0..list.len())
                .map(|r| {
                    list.is_valid(r)
                        .then(|| (offsets[r] as usize, offsets[r + 1] as usize))
                })
                .collect();
            (list.values().clone(), ranges)
        }
        DataType::LargeList(_) => {
            let list = column.as_list::<i64>();
            let offsets = list.value_offsets();
            let ranges = (0..list.len())
                .map(|r| {
                    list.is_valid(r)
                        .then(|| (offsets[r] as usize, offsets[r + 1] as usize))
                })
                .collect();
            (list.values().clone(), ranges)
        }
        _ => {
            let list = column.as_fixed_size_list();
            let size = list.value_length() as usize;
            let ranges = (0..list.len())
                .map(|r| {
                    list.is_valid(r).then(|| {
                        let start = list.value_offset(r) as usize;
                        (start, start + size)
                    })
                })
                .collect();
            (list.values().clone(), ranges)
        }
    };
    if text {
        let elements = scalar_text(&values)?;
        let elements = elements.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(ranges.len(), ranges.len() * 16);
        let mut buf = String::new();
        for range in ranges {
            let Some((start, end)) = range else {
                out.append_null();
                continue;
            };
            buf.clear();
            buf.push('{');
            for j in start..end {
                if j > start {
                    buf.push(',');
                }
                if elements.is_null(j) {
                    buf.push_str("NULL");
                } else {
                    write_array_element(&mut buf, elements.value(j));
                }
            }
            buf.push('}');
            out.append_value(&buf);
        }
        return Ok((DataType::Utf8, Arc::new(out.finish())));
    }
    let DataType::Decimal128(_, scale) = values.data_type() else {
        return Err(ArrowError::NotYetImplemented(format!(
            "binary PostgreSQL array of {}",
            values.data_type()
        )));
    };
    let decimals = values.as_primitive::<Decimal128Type>();
    let mut out = BinaryBuilder::with_capacity(ranges.len(), ranges.len() * 32);
    for range in ranges {
        let Some((start, end)) = range else {
            out.append_null();
            continue;
        };
        // ndim, has-nulls flag, element type; then each dimension's length
        // and lower bound (an empty array has no dimension); then the
        // elements, each after its length (-1 for NULL).
        let mut buf = Vec::with_capacity(20 + (end - start) * 16);
        let ndim: i32 = if end > start { 1 } else { 0 };
        let has_nulls = (start..end).any(|j| decimals.is_null(j));
        buf.extend_from_slice(&ndim.to_be_bytes());
        buf.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
        buf.extend_from_slice(&NUMERIC_OID.to_be_bytes());
        if ndim == 1 {
            buf.extend_from_slice(&((end - start) as i32).to_be_bytes());
            buf.extend_from_slice(&1i32.to_be_bytes());
        }
        for j in start..end {
            if decimals.is_null(j) {
                buf.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                let element = super::numeric::binary(decimals.value(j), *scale);
                buf.extend_from_slice(&(element.len() as i32).to_be_bytes());
                buf.extend_from_slice(&element);
            }
        }
        out.append_value(&buf);
    }
    Ok((DataType::Binary, Arc::new(out.finish())))
}

/// One element of an array's text, double-quoted as PostgreSQL's `array_out`
/// does when it is empty, reads as NULL, or holds a space, a quote, a
/// backslash, a comma or a brace (`"2024-01-02 03:04:05"`, `"0044-03-15 BC"`).
fn write_array_element(out: &mut String, element: &str) {
    let quote = element.is_empty()
        || element.eq_ignore_ascii_case("NULL")
        || element.chars().any(|c| {
            matches!(
                c,
                '"' | '\\' | ',' | '{' | '}' | ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}'
            )
        });
    if !quote {
        out.push_str(element);
        return;
    }
    out.push('"');
    for c in element.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
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
    #[test]
    fn lists_print_as_postgres_arrays() {
        use datafusion::arrow::array::{Float64Array, ListArray, TimestampMicrosecondArray};
        use datafusion::arrow::buffer::OffsetBuffer;
        use pgwire::api::Type;

        let list = |values: ArrayRef, lengths: Vec<usize>| -> ArrayRef {
            let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
            Arc::new(ListArray::new(
                field,
                OffsetBuffer::from_lengths(lengths),
                values,
                None,
            ))
        };
        let floats = list(
            Arc::new(Float64Array::from(vec![Some(2.0), None, Some(1e20)])),
            vec![3, 0],
        );
        let stamps = list(
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_704_164_645_000_000),
                None,
            ])),
            vec![2, 0],
        );
        let batch = RecordBatch::try_from_iter([("f", floats.clone()), ("t", stamps)]).unwrap();
        let fields = [
            FieldInfo::new(
                "f".into(),
                None,
                None,
                Type::FLOAT8_ARRAY,
                FieldFormat::Text,
            ),
            FieldInfo::new(
                "t".into(),
                None,
                None,
                Type::TIMESTAMP_ARRAY,
                FieldFormat::Text,
            ),
        ];
        let out = postgres_text_columns(batch, &fields, TextStyle::of(&FormatOptions::default()))
            .unwrap();
        let f = out.column(0).as_string::<i32>();
        assert_eq!((f.value(0), f.value(1)), ("{2,NULL,1e+20}", "{}"));
        let t = out.column(1).as_string::<i32>();
        assert_eq!(t.value(0), r#"{"2024-01-02 03:04:05",NULL}"#);

        let mut element = String::new();
        for (text, want) in [
            ("a b", r#""a b""#),
            ("", r#""""#),
            ("null", r#""null""#),
            (r#"x"\"#, r#""x\"\\""#),
            ("1.5", "1.5"),
        ] {
            element.clear();
            write_array_element(&mut element, text);
            assert_eq!(element, want);
        }
    }

    #[test]
    fn decimal_lists_go_as_binary_numeric_arrays() {
        use datafusion::arrow::array::{Decimal128Array, ListArray};
        use datafusion::arrow::buffer::OffsetBuffer;

        let values = Decimal128Array::from(vec![Some(150), None])
            .with_precision_and_scale(38, 2)
            .unwrap();
        let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        let list: ArrayRef = Arc::new(ListArray::new(
            field,
            OffsetBuffer::from_lengths([2, 0]),
            Arc::new(values),
            None,
        ));
        let (data_type, column) = array_column(&list, false).unwrap();
        assert_eq!(data_type, DataType::Binary);
        let bytes = column.as_binary::<i32>();
        let mut want = vec![
            0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 6, 0xa4, 0, 0, 0, 2, 0, 0, 0, 1,
        ];
        let one_fifty = super::super::numeric::binary(150, 2);
        want.extend_from_slice(&(one_fifty.len() as i32).to_be_bytes());
        want.extend_from_slice(&one_fifty);
        want.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(bytes.value(0), &want[..]);
        // An empty array has no dimension.
        assert_eq!(bytes.value(1), &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0xa4][..]);
    }
}

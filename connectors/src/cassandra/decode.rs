//! Rows from the driver (`CqlValue`s) as Arrow arrays of the planned types,
//! collections and user-defined types included. A value that does not fit its
//! column (a decimal with more decimals than the column's scale, a varint
//! beyond 38 digits) is an error naming the column, never a rounded value.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeListArray,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, ListArray, MapArray, RecordBatch, RecordBatchOptions,
    StringBuilder, StructArray, Time64NanosecondBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, SchemaRef};
use scylla::value::{CqlValue, Row};
use uuid::Uuid;

use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// `rows` (in the schema's column order) as one batch of `schema`.
pub fn batch(rows: &[Row], schema: &SchemaRef) -> ConnectorResult<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let values: Vec<Option<&CqlValue>> = rows
            .iter()
            .map(|row| row.columns.get(i).and_then(Option::as_ref))
            .collect();
        columns.push(array(&values, field.data_type(), field.name())?);
    }
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| {
        ConnectorError::new(
            ConnectorErrorKind::UnreadableFormat,
            format!("cannot assemble Cassandra rows: {e}"),
        )
    })
}

fn mismatch(column: &str, value: &CqlValue, data_type: &DataType) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::UnreadableFormat,
        format!(
            "column \"{column}\": Cassandra sent {value:?}, which is not a {data_type} value; the table changed since it was registered — run REFRESH or re-create it"
        ),
    )
}

/// `Empty` (a legacy zero-length value) reads as NULL.
fn present(value: Option<&CqlValue>) -> Option<&CqlValue> {
    value.filter(|v| !matches!(v, CqlValue::Empty))
}

macro_rules! primitive {
    ($values:expr, $builder:ty, $column:expr, $dt:expr, $($pat:pat => $out:expr),+) => {{
        let mut b = <$builder>::with_capacity($values.len());
        for v in $values {
            match present(*v) {
                None => b.append_null(),
                $(Some($pat) => b.append_value($out),)+
                Some(other) => return Err(mismatch($column, other, $dt)),
            }
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

/// One column's values as an array of `data_type`.
fn array(
    values: &[Option<&CqlValue>],
    data_type: &DataType,
    column: &str,
) -> ConnectorResult<ArrayRef> {
    let dt = data_type;
    Ok(match data_type {
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match present(*v) {
                    None => b.append_null(),
                    Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => b.append_value(s),
                    Some(CqlValue::Uuid(u)) => b.append_value(u.to_string()),
                    Some(CqlValue::Timeuuid(u)) => b.append_value(Uuid::from(*u).to_string()),
                    Some(CqlValue::Inet(ip)) => b.append_value(ip.to_string()),
                    Some(other) => return Err(mismatch(column, other, dt)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Boolean => {
            primitive!(values, BooleanBuilder, column, dt, CqlValue::Boolean(x) => *x)
        }
        DataType::Int8 => primitive!(values, Int8Builder, column, dt, CqlValue::TinyInt(x) => *x),
        DataType::Int16 => {
            primitive!(values, Int16Builder, column, dt, CqlValue::SmallInt(x) => *x)
        }
        DataType::Int32 => primitive!(values, Int32Builder, column, dt, CqlValue::Int(x) => *x),
        DataType::Int64 => primitive!(values, Int64Builder, column, dt,
            CqlValue::BigInt(x) => *x, CqlValue::Counter(c) => c.0),
        DataType::Float32 => {
            primitive!(values, Float32Builder, column, dt, CqlValue::Float(x) => *x)
        }
        DataType::Float64 => {
            primitive!(values, Float64Builder, column, dt, CqlValue::Double(x) => *x)
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::new();
            for v in values {
                match present(*v) {
                    None => b.append_null(),
                    Some(CqlValue::Blob(x)) => b.append_value(x),
                    Some(other) => return Err(mismatch(column, other, dt)),
                }
            }
            Arc::new(b.finish())
        }
        // CQL dates count days from 2^31 before the epoch: every one fits Date32.
        DataType::Date32 => primitive!(values, Date32Builder, column, dt,
            CqlValue::Date(d) => (i64::from(d.0) - (1i64 << 31)) as i32),
        DataType::Time64(_) => {
            primitive!(values, Time64NanosecondBuilder, column, dt, CqlValue::Time(t) => t.0)
        }
        DataType::Timestamp(_, tz) => {
            let mut b = TimestampMillisecondBuilder::with_capacity(values.len());
            for v in values {
                match present(*v) {
                    None => b.append_null(),
                    Some(CqlValue::Timestamp(t)) => b.append_value(t.0),
                    Some(other) => return Err(mismatch(column, other, dt)),
                }
            }
            Arc::new(b.finish().with_timezone_opt(tz.clone()))
        }
        DataType::Interval(_) => primitive!(values, IntervalMonthDayNanoBuilder, column, dt,
            CqlValue::Duration(d) => IntervalMonthDayNano::new(d.months, d.days, d.nanoseconds)),
        DataType::Decimal128(precision, scale) => {
            let mut b = Decimal128Builder::with_capacity(values.len());
            for v in values {
                match present(*v) {
                    None => b.append_null(),
                    Some(CqlValue::Decimal(d)) => {
                        let (bytes, value_scale) = d.as_signed_be_bytes_slice_and_exponent();
                        b.append_value(decimal(bytes, value_scale, *precision, *scale, column)?);
                    }
                    Some(CqlValue::Varint(d)) => {
                        b.append_value(decimal(
                            d.as_signed_bytes_be_slice(),
                            0,
                            *precision,
                            *scale,
                            column,
                        )?);
                    }
                    Some(other) => return Err(mismatch(column, other, dt)),
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| {
                        ConnectorError::new(ConnectorErrorKind::SchemaMismatch, e.to_string())
                    })?,
            )
        }
        DataType::List(item) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut children: Vec<Option<&CqlValue>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match present(*v) {
                    None => valid.push(false),
                    Some(CqlValue::List(xs) | CqlValue::Set(xs) | CqlValue::Vector(xs)) => {
                        children.extend(xs.iter().map(Some));
                        valid.push(true);
                    }
                    Some(other) => return Err(mismatch(column, other, dt)),
                }
                offsets.push(children.len() as i32);
            }
            let child = array(&children, item.data_type(), column)?;
            Arc::new(ListArray::new(
                Arc::clone(item),
                OffsetBuffer::new(offsets.into()),
                child,
                nulls(valid),
            ))
        }
        DataType::FixedSizeList(item, size) => {
            let mut children: Vec<Option<&CqlValue>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match present(*v) {
                    None => {
                        valid.push(false);
                        children.extend(std::iter::repeat_n(None, *size as usize));
                    }
                    Some(CqlValue::Vector(xs) | CqlValue::List(xs))
                        if xs.len() == *size as usize =>
                    {
                        children.extend(xs.iter().map(Some));
                        valid.push(true);
                    }
                    Some(other) => return Err(mismatch(column, other, dt)),
                }
            }
            let child = array(&children, item.data_type(), column)?;
            Arc::new(FixedSizeListArray::new(
                Arc::clone(item),
                *size,
                child,
                nulls(valid),
            ))
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(fields) = entries.data_type() else {
                return Err(mismatch_type(column, dt));
            };
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut keys: Vec<Option<&CqlValue>> = Vec::new();
            let mut vals: Vec<Option<&CqlValue>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match present(*v) {
                    None => valid.push(false),
                    Some(CqlValue::Map(pairs)) => {
                        for (k, v) in pairs {
                            keys.push(Some(k));
                            vals.push(Some(v));
                        }
                        valid.push(true);
                    }
                    Some(other) => return Err(mismatch(column, other, dt)),
                }
                offsets.push(keys.len() as i32);
            }
            let key_array = array(&keys, fields[0].data_type(), column)?;
            let value_array = array(&vals, fields[1].data_type(), column)?;
            let entries_array =
                StructArray::try_new(fields.clone(), vec![key_array, value_array], None).map_err(
                    |e| {
                        ConnectorError::new(
                            ConnectorErrorKind::UnreadableFormat,
                            format!("column \"{column}\": {e}"),
                        )
                    },
                )?;
            Arc::new(
                MapArray::try_new(
                    Arc::clone(entries),
                    OffsetBuffer::new(offsets.into()),
                    entries_array,
                    nulls(valid),
                    *sorted,
                )
                .map_err(|e| {
                    ConnectorError::new(
                        ConnectorErrorKind::UnreadableFormat,
                        format!("column \"{column}\": {e}"),
                    )
                })?,
            )
        }
        DataType::Struct(fields) => {
            let mut per_field: Vec<Vec<Option<&CqlValue>>> =
                vec![Vec::with_capacity(values.len()); fields.len()];
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match present(*v) {
                    None => {
                        valid.push(false);
                        per_field.iter_mut().for_each(|f| f.push(None));
                    }
                    Some(CqlValue::UserDefinedType { fields: given, .. }) => {
                        valid.push(true);
                        for (field, out) in fields.iter().zip(per_field.iter_mut()) {
                            out.push(
                                given
                                    .iter()
                                    .find(|(name, _)| name == field.name())
                                    .and_then(|(_, v)| v.as_ref()),
                            );
                        }
                    }
                    Some(CqlValue::Tuple(items)) => {
                        valid.push(true);
                        for (i, out) in per_field.iter_mut().enumerate() {
                            out.push(items.get(i).and_then(Option::as_ref));
                        }
                    }
                    Some(other) => return Err(mismatch(column, other, dt)),
                }
            }
            let children = fields
                .iter()
                .zip(&per_field)
                .map(|(field, values)| array(values, field.data_type(), column))
                .collect::<ConnectorResult<Vec<_>>>()?;
            Arc::new(
                StructArray::try_new(fields.clone(), children, nulls(valid)).map_err(|e| {
                    ConnectorError::new(
                        ConnectorErrorKind::UnreadableFormat,
                        format!("column \"{column}\": {e}"),
                    )
                })?,
            )
        }
        _ => return Err(mismatch_type(column, dt)),
    })
}

fn mismatch_type(column: &str, data_type: &DataType) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::UnsupportedType,
        format!("column \"{column}\": Cassandra values cannot be read as {data_type}"),
    )
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    valid.iter().any(|v| !v).then(|| NullBuffer::from(valid))
}

/// A big-endian two's-complement unscaled value at `value_scale` as an i128
/// at `scale`, within `precision` digits.
fn decimal(
    bytes: &[u8],
    value_scale: i32,
    precision: u8,
    scale: i8,
    column: &str,
) -> ConnectorResult<i128> {
    let out_of_range = |why: &str| {
        ConnectorError::new(
            ConnectorErrorKind::OutOfRange,
            format!(
                "column \"{column}\": a Cassandra value {why} (the column is DECIMAL({precision},{scale})); declare the column with a wider DECIMAL(p,s) in a column list"
            ),
        )
    };
    let trimmed = trim_sign_bytes(bytes);
    if trimmed.len() > 16 {
        return Err(out_of_range("has more than 38 digits"));
    }
    let mut unscaled: i128 = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for byte in trimmed {
        unscaled = (unscaled << 8) | i128::from(*byte);
    }
    let shift = i32::from(scale) - value_scale;
    let value = if shift >= 0 {
        10i128
            .checked_pow(shift as u32)
            .and_then(|f| unscaled.checked_mul(f))
            .ok_or_else(|| out_of_range("has too many digits"))?
    } else {
        let divisor = 10i128
            .checked_pow(shift.unsigned_abs())
            .ok_or_else(|| out_of_range("has too many decimals"))?;
        if unscaled % divisor != 0 {
            return Err(out_of_range(&format!("has more than {scale} decimals")));
        }
        unscaled / divisor
    };
    if value.unsigned_abs() >= 10u128.pow(u32::from(precision)) {
        return Err(out_of_range(&format!("has more than {precision} digits")));
    }
    Ok(value)
}

/// Drop redundant leading sign bytes (0x00 before a positive, 0xff before a
/// negative top bit).
fn trim_sign_bytes(mut bytes: &[u8]) -> &[u8] {
    while bytes.len() > 1
        && ((bytes[0] == 0 && bytes[1] & 0x80 == 0) || (bytes[0] == 0xff && bytes[1] & 0x80 != 0))
    {
        bytes = &bytes[1..];
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::arrow::datatypes::{Decimal128Type, Fields, Int32Type, Schema};
    use scylla::value::{CqlDecimal, CqlVarint};

    #[test]
    fn decimals_are_exact_or_refused() {
        // 123.45 = 12345 at scale 2.
        assert_eq!(
            decimal(&12345i32.to_be_bytes(), 2, 38, 10, "c").unwrap(),
            1_234_500_000_000
        );
        assert_eq!(
            decimal(&(-5i64).to_be_bytes(), 0, 38, 10, "c").unwrap(),
            -50_000_000_000
        );
        // 1e-11 has 11 decimals: refused at scale 10, never rounded.
        let err = decimal(&[1], 11, 38, 10, "c").unwrap_err();
        assert_eq!(err.kind, ConnectorErrorKind::OutOfRange);
        assert!(
            err.message.contains("more than 10 decimals"),
            "{}",
            err.message
        );
        // Trailing zeros beyond the scale are fine.
        assert_eq!(decimal(&[100], 12, 38, 10, "c").unwrap(), 1);
        assert!(decimal(&[0x7f; 17], 0, 38, 0, "c").is_err());
    }

    #[test]
    fn nested_values() {
        let map_type = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Int32, true),
                ])),
                false,
            )),
            false,
        );
        let list_type = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        let dec_type = DataType::Decimal128(38, 0);
        let schema = Arc::new(Schema::new(vec![
            Field::new("m", map_type, true),
            Field::new("l", list_type, true),
            Field::new("v", dec_type, true),
            Field::new("d", DataType::Decimal128(38, 10), true),
        ]));
        let rows = vec![
            Row {
                columns: vec![
                    Some(CqlValue::Map(vec![(
                        CqlValue::Text("a".into()),
                        CqlValue::Int(1),
                    )])),
                    Some(CqlValue::Set(vec![CqlValue::Int(3), CqlValue::Int(4)])),
                    Some(CqlValue::Varint(CqlVarint::from_signed_bytes_be(vec![
                        0xff, 0x00,
                    ]))),
                    Some(CqlValue::Decimal(
                        CqlDecimal::from_signed_be_bytes_and_exponent(vec![0x01], 1),
                    )),
                ],
            },
            Row {
                columns: vec![None, None, None, None],
            },
        ];
        let batch = batch(&rows, &schema).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let m = batch.column(0).as_map();
        assert_eq!(m.value(0).column(1).as_primitive::<Int32Type>().value(0), 1);
        assert!(m.is_null(1));
        let l = batch.column(1).as_list::<i32>();
        assert_eq!(l.value(0).as_primitive::<Int32Type>().values(), &[3, 4]);
        assert_eq!(
            batch.column(2).as_primitive::<Decimal128Type>().value(0),
            -256
        );
        assert_eq!(
            batch.column(3).as_primitive::<Decimal128Type>().value(0),
            1_000_000_000
        );
    }
}

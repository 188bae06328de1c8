//! Catalog columns and Arrow schemas, both ways: a column's type is stored
//! as Arrow prints it (`Int64`, `Timestamp(Microsecond, None)`), so the
//! catalog crate needs no Arrow. Used by every connector that stores plain
//! Arrow columns, and by stored views.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use vivace_catalog::ColumnDefinition;

use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Catalog columns for an Arrow schema (types in Arrow's textual form).
pub fn to_columns(schema: &Schema) -> Vec<ColumnDefinition> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnDefinition {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
            source_type: None,
        })
        .collect()
}

/// The Arrow schema of stored catalog columns.
pub fn from_columns(columns: &[ColumnDefinition]) -> ConnectorResult<SchemaRef> {
    let fields = columns
        .iter()
        .map(|c| {
            let data_type = DataType::from_str(&c.data_type).map_err(|e| {
                ConnectorError::new(
                    ConnectorErrorKind::UnsupportedType,
                    format!(
                        "column \"{}\" has a stored type '{}' that cannot be read back: {e}",
                        c.name, c.data_type
                    ),
                )
            })?;
            Ok(Field::new(&c.name, data_type, c.nullable))
        })
        .collect::<ConnectorResult<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn column_types_round_trip_through_the_catalog() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8View, false),
            Field::new("c", DataType::Decimal128(15, 2), true),
            Field::new("d", DataType::Date32, true),
            Field::new(
                "e",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "f",
                DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new(
                "g",
                DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
                true,
            ),
        ]);
        let back = from_columns(&to_columns(&schema)).unwrap();
        assert_eq!(back.as_ref(), &schema);
    }
}

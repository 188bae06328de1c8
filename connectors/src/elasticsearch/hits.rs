//! Hits as Arrow batches: each hit becomes one JSON row of the scan's columns
//! (`_id`, `_score`, values from `_source`, dates from doc values), which
//! arrow-json decodes into the planned schema.
//!
//! A document is checked before it is decoded: an array where the column holds
//! one value is an error naming the field and the document, never a silently
//! wrong row.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{Array, ArrayRef, BinaryBuilder, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::ReaderBuilder;
use serde_json::{Map, Value};

use super::mapping::{ID, SCORE, SOURCE};
use super::request::is_date;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Decodes pages of hits into batches of one schema.
pub struct HitDecoder {
    schema: SchemaRef,
    /// The schema arrow-json decodes (binary columns as their base64 text).
    reading: SchemaRef,
    columns: Vec<(String, String, DataType)>,
}

impl HitDecoder {
    /// A decoder for `schema`, whose columns have the mapping types `types`.
    pub fn new(schema: SchemaRef, types: &BTreeMap<String, String>) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let es_type = types.get(f.name()).cloned().unwrap_or_default();
                (f.name().clone(), es_type, f.data_type().clone())
            })
            .collect();
        let reading = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Binary => Arc::new(Field::new(f.name(), DataType::Utf8, true)),
                    _ => Arc::clone(f),
                })
                .collect::<Vec<_>>(),
        ));
        Self {
            schema,
            reading,
            columns,
        }
    }

    /// One page of hits as a batch.
    pub fn decode(&self, hits: &[Value]) -> ConnectorResult<RecordBatch> {
        let rows = hits
            .iter()
            .map(|hit| self.row(hit))
            .collect::<ConnectorResult<Vec<_>>>()?;
        let batch = match self.decode_rows(&rows) {
            Ok(batch) => batch,
            Err(e) => {
                // Name the first document that does not decode.
                for (hit, row) in hits.iter().zip(&rows) {
                    if let Err(e) = self.decode_rows(std::slice::from_ref(row)) {
                        return Err(unreadable(hit, &e));
                    }
                }
                return Err(ConnectorError::new(ConnectorErrorKind::UnreadableFormat, e));
            }
        };
        self.binary_columns(batch)
    }

    fn decode_rows(&self, rows: &[Value]) -> Result<RecordBatch, String> {
        let mut decoder = ReaderBuilder::new(Arc::clone(&self.reading))
            .with_batch_size(rows.len().max(1))
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        decoder.serialize(rows).map_err(|e| e.to_string())?;
        Ok(decoder
            .flush()
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&self.reading))))
    }

    /// The JSON row of one hit.
    fn row(&self, hit: &Value) -> ConnectorResult<Value> {
        let source = &hit["_source"];
        let mut row = Map::new();
        for (name, es_type, data_type) in &self.columns {
            let value = match name.as_str() {
                ID => hit["_id"].clone(),
                SCORE => hit["_score"].clone(),
                SOURCE => Value::String(source.to_string()),
                _ if is_date(es_type) => {
                    let values = hit["fields"][name.as_str()].clone();
                    match (data_type, values) {
                        (DataType::List(_), values) => values,
                        (_, Value::Array(mut values)) if values.len() <= 1 => {
                            values.pop().unwrap_or(Value::Null)
                        }
                        (_, Value::Array(_)) => return Err(several_values(name, hit)),
                        _ => Value::Null,
                    }
                }
                _ => {
                    let field = name.split('.').next().unwrap_or(name);
                    let value = source.get(field).cloned().unwrap_or(Value::Null);
                    shape(name, es_type, data_type, value, hit)?
                }
            };
            row.insert(name.clone(), value);
        }
        Ok(Value::Object(row))
    }

    fn binary_columns(&self, batch: RecordBatch) -> ConnectorResult<RecordBatch> {
        if self.reading == self.schema {
            return Ok(batch);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(array, field)| {
                if field.data_type() != &DataType::Binary {
                    return Ok(Arc::clone(array));
                }
                let text = array
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| {
                        ConnectorError::new(
                            ConnectorErrorKind::UnreadableFormat,
                            "binary column not read as text",
                        )
                    })?;
                let mut builder = BinaryBuilder::new();
                for value in text.iter() {
                    match value {
                        None => builder.append_null(),
                        Some(v) => builder.append_value(
                            base64::engine::general_purpose::STANDARD
                                .decode(v)
                                .map_err(|e| {
                                    ConnectorError::new(
                                        ConnectorErrorKind::UnreadableFormat,
                                        format!(
                                            "field \"{}\" holds a value that is not base64: {e}",
                                            field.name()
                                        ),
                                    )
                                })?,
                        ),
                    }
                }
                Ok(Arc::new(builder.finish()) as ArrayRef)
            })
            .collect::<ConnectorResult<Vec<_>>>()?;
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| ConnectorError::new(ConnectorErrorKind::UnreadableFormat, e.to_string()))
    }
}

/// A `_source` value in the shape the column's type needs.
fn shape(
    name: &str,
    es_type: &str,
    data_type: &DataType,
    value: Value,
    hit: &Value,
) -> ConnectorResult<Value> {
    let list = matches!(data_type, DataType::List(_)) && es_type != "nested";
    Ok(match value {
        Value::Null => Value::Null,
        Value::Array(values) if list => Value::Array(values),
        value if list => Value::Array(vec![value]),
        Value::Array(values) if es_type == "geo_point" && values.len() == 2 && values.iter().all(Value::is_number) => {
            // GeoJSON order: [lon, lat].
            serde_json::json!({ "lat": values[1], "lon": values[0] })
        }
        // A nested field holding one object is a list of one.
        value @ Value::Object(_) if es_type == "nested" => Value::Array(vec![value]),
        Value::Array(values) if es_type == "nested" => Value::Array(values),
        // An empty array is a missing value; an array of one, that value.
        Value::Array(values) if values.is_empty() => Value::Null,
        Value::Array(mut values) if values.len() == 1 && !matches!(values[0], Value::Array(_)) => {
            shape(name, es_type, data_type, values.pop().unwrap_or(Value::Null), hit)?
        }
        Value::Array(_) => return Err(several_values(name, hit)),
        Value::String(s) if es_type == "geo_point" => geo_text(&s).ok_or_else(|| {
            ConnectorError::new(
                ConnectorErrorKind::UnreadableFormat,
                format!("field \"{name}\" of document \"{}\" holds a geo point Vivace cannot read: '{s}'", id(hit)),
            )
        })?,
        // Types read as JSON text (flattened, shapes ...).
        value @ Value::Object(_) if *data_type == DataType::Utf8 => Value::String(value.to_string()),
        value => value,
    })
}

/// `"lat,lon"` or `"POINT (lon lat)"`.
fn geo_text(text: &str) -> Option<Value> {
    let numbers: Vec<f64> = if let Some(rest) = text.trim().strip_prefix("POINT") {
        rest.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split_whitespace()
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?
    } else {
        let v: Vec<f64> = text
            .split(',')
            .map(|n| n.trim().parse().ok())
            .collect::<Option<_>>()?;
        if v.len() == 2 {
            vec![v[1], v[0]]
        } else {
            return None;
        }
    };
    match numbers.as_slice() {
        [lon, lat] => Some(serde_json::json!({ "lat": lat, "lon": lon })),
        _ => None,
    }
}

fn id(hit: &Value) -> &str {
    hit["_id"].as_str().unwrap_or("?")
}

fn several_values(name: &str, hit: &Value) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::UnreadableFormat,
        format!(
            "field \"{name}\" of document \"{}\" in index \"{}\" holds several values but the column holds one; declare it as an array (e.g. {name} TEXT[]) or list it in the mapping's _meta.vivace.arrays",
            id(hit),
            hit["_index"].as_str().unwrap_or("?")
        ),
    )
}

fn unreadable(hit: &Value, e: &str) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::UnreadableFormat,
        format!(
            "document \"{}\" in index \"{}\" does not fit the table's columns: {e}",
            id(hit),
            hit["_index"].as_str().unwrap_or("?")
        ),
    )
}

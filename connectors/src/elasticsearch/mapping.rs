//! Columns from index mappings.
//!
//! Every top-level field is a column, typed from its mapping (see
//! `docs/elasticsearch.md` for the table); a top-level field's multi-fields
//! (`name.raw`) are columns too, reading their parent's value. `_id` comes
//! first and `_score` last; `_source` (the document as JSON text) when the
//! table asks for it. An index pattern or alias reads every matching index,
//! and the columns are the merge of their mappings: a field mapped with two
//! different types is an error naming both indices.
//!
//! A field holding several values reads as a list when the mapping's `_meta`
//! says so (`"_meta": {"vivace": {"arrays": ["tags"]}}`) or the column list
//! declares it (`tags TEXT[]`); otherwise a document with an array there is an
//! error naming the field and the document.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_json::Value;
use vivace_catalog::ColumnDefinition;

use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Column of the document id.
pub const ID: &str = "_id";
/// Column of the relevance score (NULL unless a full-text function ranks hits).
pub const SCORE: &str = "_score";
/// Column of the whole document as JSON text (`source_column` on).
pub const SOURCE: &str = "_source";

/// One column and how it is read and filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name (a field name, `name.raw` for a multi-field, or `_id` ...).
    pub name: String,
    /// Its Arrow type.
    pub data_type: DataType,
    /// The field's mapping type (`keyword`, `text`, `date` ...; `_id` for the id).
    pub es_type: String,
}

impl Column {
    /// The field of `_source` holding the value (a multi-field reads its parent).
    pub fn source_field(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
    }

    /// Whether the column holds a list (an array field).
    pub fn is_list(&self) -> bool {
        matches!(self.data_type, DataType::List(_)) && self.es_type != "nested"
    }

    /// Whether the column is one Vivace makes (`_id`, `_score`, `_source`).
    pub fn is_meta(&self) -> bool {
        matches!(self.name.as_str(), ID | SCORE | SOURCE)
    }

    /// Whether the server's doc values of this column equal and order as the
    /// values Vivace reads: one value per document (no list), of a type whose
    /// doc values are the value itself. Bucket keys and sorts rest on this;
    /// `ip` and `date_nanos` hold for one of them only (see their callers).
    pub fn doc_values_match(&self) -> bool {
        !self.is_list()
            && matches!(
                self.es_type.as_str(),
                "keyword"
                    | "constant_keyword"
                    | "long"
                    | "integer"
                    | "short"
                    | "byte"
                    | "double"
                    | "float"
                    | "boolean"
                    | "date"
            )
    }
}

/// The Arrow type of a top-level field of mapping type `es_type`; `None` for a
/// field with no readable value (alias, an object without properties).
fn top_level_type(es_type: &str, mapping: &Value) -> Option<DataType> {
    Some(match es_type {
        "date" => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        "date_nanos" => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        "binary" => DataType::Binary,
        "geo_point" => DataType::Struct(geo_fields()),
        _ => inner_type(es_type, mapping)?,
    })
}

fn geo_fields() -> Fields {
    Fields::from(vec![
        Field::new("lat", DataType::Float64, true),
        Field::new("lon", DataType::Float64, true),
    ])
}

/// The Arrow type of a field inside an object or nested field (where dates,
/// binary and geo points read as the text the document holds).
fn inner_type(es_type: &str, mapping: &Value) -> Option<DataType> {
    Some(match es_type {
        "keyword" | "constant_keyword" | "wildcard" | "text" | "match_only_text"
        | "search_as_you_type" | "ip" | "version" | "date" | "date_nanos" | "binary" => {
            DataType::Utf8
        }
        "long" => DataType::Int64,
        "integer" => DataType::Int32,
        "short" => DataType::Int16,
        "byte" => DataType::Int8,
        "unsigned_long" => DataType::Decimal128(20, 0),
        "double" | "scaled_float" => DataType::Float64,
        "float" | "half_float" => DataType::Float32,
        "boolean" => DataType::Boolean,
        "object" => {
            let fields = object_fields(mapping)?;
            DataType::Struct(fields)
        }
        "nested" => {
            let fields = object_fields(mapping)?;
            DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), true)))
        }
        "alias" => return None,
        // Anything else (flattened, geo_shape, vectors, ranges ...) reads as
        // the JSON text of the value the document holds.
        _ => DataType::Utf8,
    })
}

fn object_fields(mapping: &Value) -> Option<Fields> {
    let properties = mapping["properties"].as_object()?;
    let fields: Vec<Field> = properties
        .iter()
        .filter_map(|(name, m)| {
            let es_type = mapping_type(m);
            let data_type = inner_type(es_type, m)?;
            Some(Field::new(name, data_type, true))
        })
        .collect();
    (!fields.is_empty()).then(|| Fields::from(fields))
}

fn mapping_type(mapping: &Value) -> &str {
    mapping["type"]
        .as_str()
        .unwrap_or(if mapping.get("properties").is_some() {
            "object"
        } else {
            "unknown"
        })
}

/// The columns of every index in a `GET /<index>/_mapping` answer, merged.
pub fn discover(
    mappings: &Value,
    index: &str,
    source_column: bool,
) -> ConnectorResult<Vec<Column>> {
    // Field → (column, the index it was first seen in).
    let mut merged: BTreeMap<String, (Column, String)> = BTreeMap::new();
    let mut arrays: Vec<String> = Vec::new();
    for (index_name, answer) in mappings.as_object().into_iter().flatten() {
        let mapping = &answer["mappings"];
        for name in mapping["_meta"]["vivace"]["arrays"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(name) = name.as_str() {
                arrays.push(name.to_string());
            }
        }
        for (name, field) in mapping["properties"].as_object().into_iter().flatten() {
            let es_type = mapping_type(field).to_string();
            let mut found = Vec::new();
            if let Some(data_type) = top_level_type(&es_type, field) {
                found.push(Column {
                    name: name.clone(),
                    data_type,
                    es_type: es_type.clone(),
                });
            }
            for (sub, sub_mapping) in field["fields"].as_object().into_iter().flatten() {
                let sub_type = mapping_type(sub_mapping).to_string();
                if let Some(data_type) = top_level_type(&sub_type, sub_mapping)
                    && !matches!(data_type, DataType::Struct(_) | DataType::List(_))
                {
                    found.push(Column {
                        name: format!("{name}.{sub}"),
                        data_type,
                        es_type: sub_type,
                    });
                }
            }
            for column in found {
                match merged.get(&column.name) {
                    None => {
                        merged.insert(column.name.clone(), (column, index_name.clone()));
                    }
                    Some((seen, seen_in))
                        if seen.data_type != column.data_type || seen.es_type != column.es_type =>
                    {
                        return Err(ConnectorError::new(
                            ConnectorErrorKind::SchemaMismatch,
                            format!(
                                "indices matching [{index}] disagree on field \"{}\": {} in index \"{seen_in}\", {} in index \"{index_name}\"",
                                column.name,
                                describe(seen),
                                describe(&column),
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    if merged.is_empty() {
        return Err(ConnectorError::new(
            ConnectorErrorKind::SchemaMismatch,
            format!(
                "[{index}] has no mapped fields to read; index a document or define a mapping first"
            ),
        ));
    }
    let mut columns = vec![Column {
        name: ID.to_string(),
        data_type: DataType::Utf8,
        es_type: ID.to_string(),
    }];
    for (name, (mut column, _)) in merged {
        if arrays.contains(&name) {
            column.data_type = DataType::List(Arc::new(Field::new("item", column.data_type, true)));
        }
        columns.push(column);
    }
    columns.push(Column {
        name: SCORE.to_string(),
        data_type: DataType::Float64,
        es_type: SCORE.to_string(),
    });
    if source_column {
        columns.push(Column {
            name: SOURCE.to_string(),
            data_type: DataType::Utf8,
            es_type: SOURCE.to_string(),
        });
    }
    Ok(columns)
}

fn describe(column: &Column) -> String {
    match &column.data_type {
        DataType::Struct(_) | DataType::List(_) => column.es_type.clone(),
        other => format!("{} ({other})", column.es_type),
    }
}

/// The discovered columns narrowed to a declared column list: every declared
/// column must exist, with the discovered type or a list of it (an array).
pub fn apply_declared(discovered: &[Column], declared: &Schema) -> ConnectorResult<Vec<Column>> {
    declared
        .fields()
        .iter()
        .map(|field| {
            let Some(column) = discovered.iter().find(|c| c.name == *field.name()) else {
                return Err(ConnectorError::new(
                    ConnectorErrorKind::SchemaMismatch,
                    format!(
                        "declared column \"{}\" is not a field of the index; its fields: {}",
                        field.name(),
                        discovered
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            let same = |a: &DataType, b: &DataType| {
                a == b
                    || (matches!(a, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
                        && matches!(b, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8))
            };
            let data_type = match field.data_type() {
                DataType::List(item) | DataType::LargeList(item)
                    if !column.is_list() && column.es_type != "nested" =>
                {
                    if !same(item.data_type(), &column.data_type) {
                        return Err(mismatch(field, column));
                    }
                    DataType::List(Arc::new(Field::new("item", column.data_type.clone(), true)))
                }
                other if same(other, &column.data_type) => column.data_type.clone(),
                // A date field declared DATE reads its day (in UTC).
                DataType::Date32 if column.es_type == "date" || column.es_type == "date_nanos" => {
                    DataType::Date32
                }
                _ => return Err(mismatch(field, column)),
            };
            Ok(Column {
                data_type,
                ..column.clone()
            })
        })
        .collect()
}

fn mismatch(field: &Field, column: &Column) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::SchemaMismatch,
        format!(
            "declared column \"{}\" is {} but the index maps it as {} ({}); declare it as that type, or as an array of it",
            field.name(),
            field.data_type(),
            column.es_type,
            column.data_type
        ),
    )
}

/// Columns as the catalog stores them.
pub fn to_definitions(columns: &[Column]) -> Vec<ColumnDefinition> {
    columns
        .iter()
        .map(|c| ColumnDefinition {
            name: c.name.clone(),
            data_type: c.data_type.to_string(),
            nullable: true,
            source_type: Some(c.es_type.clone()),
        })
        .collect()
}

/// Columns back from the catalog.
pub fn from_definitions(columns: &[ColumnDefinition]) -> ConnectorResult<Vec<Column>> {
    let schema = crate::columns::from_columns(columns)?;
    Ok(columns
        .iter()
        .zip(schema.fields())
        .map(|(c, field)| Column {
            name: c.name.clone(),
            data_type: field.data_type().clone(),
            es_type: c
                .source_type
                .clone()
                .unwrap_or_else(|| "keyword".to_string()),
        })
        .collect())
}

/// The Arrow schema of `columns`.
pub fn schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_multi_fields_and_merge() {
        let mappings = json!({
            "a": {"mappings": {"_meta": {"vivace": {"arrays": ["tags"]}}, "properties": {
                "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "n": {"type": "long"},
                "tags": {"type": "keyword"},
                "loc": {"type": "geo_point"},
                "who": {"properties": {"first": {"type": "keyword"}, "age": {"type": "integer"}}},
                "items": {"type": "nested", "properties": {"sku": {"type": "keyword"}}},
                "ts": {"type": "date", "format": "dd/MM/yyyy"},
                "al": {"type": "alias", "path": "n"}
            }}},
            "b": {"mappings": {"properties": {"n": {"type": "long"}, "extra": {"type": "boolean"}}}}
        });
        let columns = discover(&mappings, "x*", false).unwrap();
        let names: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "_id", "extra", "items", "loc", "n", "name", "name.raw", "tags", "ts", "who",
                "_score"
            ]
        );
        let get = |n: &str| columns.iter().find(|c| c.name == n).unwrap();
        assert_eq!(get("name.raw").source_field(), "name");
        assert_eq!(get("name.raw").es_type, "keyword");
        assert!(get("tags").is_list());
        assert!(!get("items").is_list());
        assert_eq!(
            get("ts").data_type,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        let conflicting = json!({
            "a": {"mappings": {"properties": {"n": {"type": "long"}}}},
            "b": {"mappings": {"properties": {"n": {"type": "keyword"}}}}
        });
        let err = discover(&conflicting, "x*", false).unwrap_err().to_string();
        assert!(
            err.contains("\"n\"") && err.contains("\"a\"") && err.contains("\"b\""),
            "{err}"
        );
    }
}

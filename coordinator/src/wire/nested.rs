//! Nested values on the wire: lists, maps and structs, from any source
//! (Parquet, Cassandra's collections, tuples and UDTs, DataFusion's own
//! `make_array`, `named_struct`, `map`).
//!
//! - **Lists** (`List`, `LargeList`, `FixedSizeList`) of a scalar type go as
//!   PostgreSQL arrays (`int4[]`, `text[]`, `float4[]`, …), which arrow-pg
//!   encodes in both formats ([`super::text_columns`] writes their text as
//!   PostgreSQL does where arrow-pg differs).
//! - **Maps** go as `json`: PostgreSQL has no map type, and a JSON object is
//!   what every driver turns into its dictionary type.
//! - **Structs** go as `json` too, an object keyed by field name (what
//!   `row_to_json` writes), rather than as an anonymous `record`, which
//!   arrow-pg could send: a record's text drops the field names (`(75001,)`),
//!   arrow-pg writes a NULL field as `""` and panics on a field it cannot
//!   encode (a map), and drivers cannot decode a binary `record` without the
//!   type of each field, which an anonymous record does not name.
//! - **Lists of anything else** (of structs, maps, lists; Cassandra's
//!   `list<frozen<udt>>`) go as `json` arrays, for the same reasons.
//!
//! A column sent as `json` is replaced by a string column of its JSON text
//! ([`vivace_functions::json::to_json_column`]) tagged as JSON, before the
//! row description is made and before each batch is encoded, so the text and
//! binary formats (`json`'s binary form is its text) carry the same bytes.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::arrow::error::ArrowError;

use crate::pgcompat::catalog::pg_types::sends_as_json;

/// `field` as the wire sees it: a `json` string field where it is sent as JSON.
fn wire_field(field: &FieldRef) -> FieldRef {
    if !sends_as_json(field.data_type()) {
        return field.clone();
    }
    Arc::new(
        Field::new(field.name(), DataType::Utf8, true)
            .with_metadata(vivace_functions::json::json_metadata()),
    )
}

/// `schema` with every column sent as JSON a `json` string column, or `None`
/// when there is none.
pub fn wire_schema(schema: &Schema) -> Option<Schema> {
    if !schema.fields().iter().any(|f| sends_as_json(f.data_type())) {
        return None;
    }
    let fields: Vec<FieldRef> = schema.fields().iter().map(wire_field).collect();
    Some(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with every column sent as JSON replaced by its JSON text.
pub fn json_columns(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    let Some(schema) = wire_schema(&batch.schema()) else {
        return Ok(batch);
    };
    let columns = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            if sends_as_json(field.data_type()) {
                vivace_functions::json::to_json_column(column)
                    .map_err(|e| ArrowError::ExternalError(Box::new(e)))
            } else {
                Ok(column.clone())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new(Arc::new(schema), columns)
}

//! Arrow batches to PostgreSQL rows, streamed, with errors mapped to SQLSTATEs.

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::execution::SendableRecordBatchStream;
use pgwire::api::results::FieldInfo;

use super::text_columns::{TextStyle, postgres_text_columns};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{StreamExt, stream};
use pgwire::api::portal::Format;
use pgwire::api::results::QueryResponse;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use crate::engine::tracker::QueryRecord;
use crate::error::SqlError;
use crate::session::QueryStream;

/// A pgwire error carrying the SQLSTATE and message of `e`.
pub fn to_pg_error(e: SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        e.code.to_string(),
        e.message,
    )))
}

/// `e`, with PostgreSQL's SQLSTATE where pgwire or arrow-pg gave XX000 for
/// a mistake that has one (an array type the wire cannot carry is 0A000).
pub fn with_postgres_code(e: PgWireError) -> PgWireError {
    match e {
        PgWireError::UserError(mut info) if info.code == crate::error::sqlstate::INTERNAL_ERROR => {
            if let Some(code) = crate::error::code_for_wording(&info.message) {
                info.code = code.to_string();
            }
            PgWireError::UserError(info)
        }
        other => other,
    }
}

/// A NOTICE carrying `e`'s code and message.
pub fn to_notice(e: SqlError) -> ErrorInfo {
    ErrorInfo::new("NOTICE".to_string(), e.code.to_string(), e.message)
}

/// The RowDescription fields of `schema`: arrow-pg's, except that text
/// tagged as JSON (`vivace_functions::json`) and the maps, structs and lists
/// sent as JSON ([`super::nested`]) are reported as `json`.
pub fn pg_fields(
    schema: &datafusion::arrow::datatypes::Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    let wire_schema = super::nested::wire_schema(schema);
    let schema = wire_schema.as_ref().unwrap_or(schema);
    let fields = arrow_schema_to_pg_fields(schema, format, options).map_err(with_postgres_code)?;
    Ok(fields
        .into_iter()
        .zip(schema.fields())
        .map(|(info, field)| {
            if !vivace_functions::json::is_json(field) {
                return info;
            }
            FieldInfo::new(
                info.name().to_string(),
                info.table_id(),
                info.column_id(),
                pgwire::api::Type::JSON,
                info.format(),
            )
            .with_format_options(info.format_options().clone())
        })
        .collect())
}

/// Stream a query's rows in `format`; memory stays bounded to one batch in
/// flight, whatever the result size.
pub fn encode_rows(
    query: QueryStream,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<QueryResponse> {
    let style = TextStyle::of(&options);
    let fields = Arc::new(pg_fields(&query.schema, format, Some(options))?);
    let tag = query.tag;
    let rows = encode_batches(query.batches, fields.clone(), style, query.record);
    let mut response = QueryResponse::new(fields, rows);
    response.set_command_tag(tag);
    Ok(response)
}

/// DataRows of every batch, encoded by arrow-pg for `fields` (nested values
/// sent as JSON turned into their text, floats and dates sent as text
/// formatted as PostgreSQL does first).
pub fn encode_batches(
    batches: SendableRecordBatchStream,
    fields: Arc<Vec<FieldInfo>>,
    style: TextStyle,
    record: Option<Arc<QueryRecord>>,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    let sent = move |row: &PgWireResult<DataRow>| {
        if let (Some(record), Ok(row)) = (&record, row) {
            // The DataRow message: type byte, length, field count, fields.
            record.sent(1, row.data.len() as u64 + 7);
        }
    };
    batches
        .map(move |batch: datafusion::error::Result<RecordBatch>| {
            let batch = batch.and_then(|b| {
                let b = super::nested::json_columns(b)?;
                postgres_text_columns(b, &fields, style).map_err(Into::into)
            });
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
                Ok(batch) => Box::new(
                    encode_recordbatch(encoding_fields(&fields, &batch), batch)
                        .map(|r| r.map_err(with_postgres_code)),
                ),
                Err(e) => Box::new(std::iter::once(Err(to_pg_error(e.into())))),
            };
            stream::iter(rows)
        })
        .flatten()
        .inspect(sent)
}

/// The fields arrow-pg encodes `batch` with: `fields`, except that an array
/// column whose text [`postgres_text_columns`] wrote (a string column where
/// the row description says array) is encoded as `text`, which pgwire writes
/// as it is; for an array type it would quote the whole text as one element.
fn encoding_fields(fields: &Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> Arc<Vec<FieldInfo>> {
    use datafusion::arrow::datatypes::DataType;
    let written = |(field, column): (&FieldInfo, &datafusion::arrow::array::ArrayRef)| {
        field.format() == pgwire::api::results::FieldFormat::Text
            && matches!(field.datatype().kind(), postgres_types::Kind::Array(_))
            && column.data_type() == &DataType::Utf8
    };
    if !fields.iter().zip(batch.columns()).any(written) {
        return fields.clone();
    }
    Arc::new(
        fields
            .iter()
            .zip(batch.columns())
            .map(|pair| {
                let field = pair.0;
                if !written(pair) {
                    return field.clone();
                }
                FieldInfo::new(
                    field.name().to_string(),
                    field.table_id(),
                    field.column_id(),
                    pgwire::api::Type::TEXT,
                    field.format(),
                )
                .with_format_options(field.format_options().clone())
            })
            .collect(),
    )
}

//! Schema discovery for PostgreSQL tables: read the columns from the server's
//! catalog (datafusion-table-providers maps the types) and store them as catalog
//! columns, so start-up and `information_schema` need no round trip.
//!
//! Type mapping: smallint/integer/bigint → Int16/Int32/Int64; `numeric(p,s)` →
//! Decimal128(p,s) (exact); real/double precision → Float32/Float64;
//! text/varchar/char/uuid/json → Utf8; bool → Boolean; date → Date32; time →
//! Time64(ns); timestamp → Timestamp(ns); timestamptz → Timestamp(ns, UTC);
//! bytea → Binary. Types the crate cannot map (jsonb, ...) are read as text.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;

use super::client::LazyPool;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// The columns of `table` as the server reports them now. A table the server
/// does not have is [`ConnectorErrorKind::NotFound`].
pub async fn discover(pool: &LazyPool, table: &TableReference) -> ConnectorResult<SchemaRef> {
    let schema = pool.table_schema(table).await?;
    if schema.fields().is_empty() {
        return Err(ConnectorError::new(
            ConnectorErrorKind::NotFound,
            format!("relation \"{table}\" does not exist on the PostgreSQL source"),
        ));
    }
    Ok(schema)
}

/// A declared column list (optional; `SHOW CREATE TABLE` prints one) must name
/// the source's columns in order. The source's types are kept.
pub fn check_declared(declared: &SchemaRef, source: &SchemaRef) -> ConnectorResult<()> {
    let names = |s: &SchemaRef| {
        s.fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    if names(declared) == names(source) {
        return Ok(());
    }
    Err(ConnectorError::new(
        ConnectorErrorKind::SchemaMismatch,
        format!(
            "the column list does not match the PostgreSQL table, which has: {}",
            names(source).join(", ")
        ),
    ))
}

/// The `partition_column` must be one of the table's integer, date or
/// timestamp columns.
pub fn check_partition_column(schema: &SchemaRef, column: &str) -> ConnectorResult<()> {
    use datafusion::arrow::datatypes::DataType;
    let field = schema.field_with_name(column).map_err(|_| {
        ConnectorError::invalid_option(format!(
            "option 'partition_column': the table has no column \"{column}\""
        ))
    })?;
    match field.data_type() {
        DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Date32
        | DataType::Timestamp(_, _) => Ok(()),
        other => Err(ConnectorError::invalid_option(format!(
            "option 'partition_column': column \"{column}\" is {other}; range splits need an integer, date or timestamp column"
        ))),
    }
}

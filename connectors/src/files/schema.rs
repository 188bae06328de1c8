//! Schema discovery for file tables: list the location, infer the files' schema,
//! check it against a declared column list, and store it as catalog columns.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use futures::TryStreamExt;

use super::FileOptions;
use super::provider::listing_options;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult, TableRequest};

/// Resolve the full table schema (file columns, then partition columns), checking
/// that the location is reachable, holds files, and matches any declared columns.
pub async fn resolve(
    request: &TableRequest,
    options: &FileOptions,
    table_url: &ListingTableUrl,
    state: &SessionState,
) -> ConnectorResult<SchemaRef> {
    ensure_files_exist(request, options, table_url, state).await?;
    let format_name = options.kind.name().to_uppercase();
    let inferred = listing_options(options, &Schema::empty(), &[])?
        .infer_schema(state, table_url)
        .await
        .map_err(|e| {
            ConnectorError::new(
                ConnectorErrorKind::UnreadableFormat,
                format!(
                    "cannot read the files at '{}' as {format_name}: {}",
                    request.location,
                    root_message(&e)
                ),
            )
        })?;
    let schema = match &request.declared_schema {
        Some(declared) => check_declared(request, options, &inferred, declared)?,
        None => with_string_partitions(&inferred, &request.partition_columns),
    };
    let listing = listing_options(options, &schema, &request.partition_columns)?;
    listing
        .validate_partitions(state, table_url)
        .await
        .map_err(|e| {
            ConnectorError::new(
                ConnectorErrorKind::SchemaMismatch,
                format!(
                    "PARTITIONED BY does not match the folders at '{}': {}",
                    request.location,
                    root_message(&e)
                ),
            )
        })?;
    Ok(schema)
}

async fn ensure_files_exist(
    request: &TableRequest,
    options: &FileOptions,
    table_url: &ListingTableUrl,
    state: &SessionState,
) -> ConnectorResult<()> {
    let unreachable = |e: DataFusionError| {
        ConnectorError::new(
            ConnectorErrorKind::Unreachable,
            format!(
                "cannot list LOCATION '{}': {}",
                request.location,
                root_message(&e)
            ),
        )
    };
    let store = state
        .runtime_env()
        .object_store(table_url)
        .map_err(unreachable)?;
    let mut files = table_url
        .list_all_files(state, store.as_ref(), &options.file_extension)
        .await
        .map_err(unreachable)?;
    match files.try_next().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(no_files(request, options)),
        Err(DataFusionError::ObjectStore(e))
            if matches!(*e, object_store::Error::NotFound { .. }) =>
        {
            Err(no_files(request, options))
        }
        Err(e) => Err(unreachable(e)),
    }
}

fn no_files(request: &TableRequest, options: &FileOptions) -> ConnectorError {
    let what = if options.file_extension.is_empty() {
        "no files".to_string()
    } else {
        format!("no '*{}' files", options.file_extension)
    };
    ConnectorError::new(
        ConnectorErrorKind::NoFiles,
        format!(
            "{what} found at LOCATION '{}' (set option 'file_extension' if the files are named differently)",
            request.location
        ),
    )
}

/// The innermost message of a DataFusion error, without its wrapping prefixes.
fn root_message(e: &DataFusionError) -> String {
    match e.find_root() {
        DataFusionError::ObjectStore(os) => os.to_string(),
        other => other.message().to_string(),
    }
}

fn with_string_partitions(file_schema: &Schema, partition_columns: &[String]) -> SchemaRef {
    let mut fields: Vec<Field> = file_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(
        partition_columns
            .iter()
            .map(|p| Field::new(p, DataType::Utf8, false)),
    );
    Arc::new(Schema::new(fields))
}

/// Check a declared column list against the files' schema; the declared list wins
/// (DataFusion casts file columns to it), partition columns moved last.
fn check_declared(
    request: &TableRequest,
    options: &FileOptions,
    inferred: &Schema,
    declared: &Schema,
) -> ConnectorResult<SchemaRef> {
    let mismatch = |msg: String| ConnectorError::new(ConnectorErrorKind::SchemaMismatch, msg);
    let parts = &request.partition_columns;
    for p in parts {
        if declared.field_with_name(p).is_err() {
            return Err(mismatch(format!(
                "partition column \"{p}\" must also appear in the column list"
            )));
        }
    }
    let data_fields: Vec<&Field> = declared
        .fields()
        .iter()
        .map(|f| f.as_ref())
        .filter(|f| !parts.contains(f.name()))
        .collect();
    let by_position = options.kind == super::FileFormatKind::Csv && !options.header;
    if by_position && data_fields.len() != inferred.fields().len() {
        return Err(mismatch(format!(
            "the column list has {} columns but the files at '{}' have {}",
            data_fields.len(),
            request.location,
            inferred.fields().len()
        )));
    }
    for (i, field) in data_fields.iter().enumerate() {
        let file_field = if by_position {
            inferred.field(i)
        } else {
            inferred.field_with_name(field.name()).map_err(|_| {
                let have: Vec<&str> = inferred
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                mismatch(format!(
                    "column \"{}\" is not in the files at '{}' (they have: {})",
                    field.name(),
                    request.location,
                    have.join(", ")
                ))
            })?
        };
        if !compatible(file_field.data_type(), field.data_type()) {
            return Err(mismatch(format!(
                "column \"{}\" is declared as {} but the files hold {}",
                field.name(),
                field.data_type(),
                file_field.data_type()
            )));
        }
    }
    let mut fields: Vec<Field> = data_fields.into_iter().cloned().collect();
    for p in parts {
        let f = declared
            .field_with_name(p)
            .map_err(|e| mismatch(e.to_string()))?;
        fields.push(f.clone());
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Whether files holding `file` can be read as a column declared `declared`.
/// Stricter than Arrow's castability (which would read a bigint as a date): the
/// kinds must agree, except that anything may be declared as text.
fn compatible(file: &DataType, declared: &DataType) -> bool {
    fn string(t: &DataType) -> bool {
        match t {
            DataType::Dictionary(_, v) => string(v),
            t => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
        }
    }
    fn binary(t: &DataType) -> bool {
        matches!(
            t,
            DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        )
    }
    fn datetime(t: &DataType) -> bool {
        matches!(
            t,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
        )
    }
    fn time(t: &DataType) -> bool {
        matches!(t, DataType::Time32(_) | DataType::Time64(_))
    }
    file == declared
        || string(declared)
        || (file.is_numeric() && declared.is_numeric())
        || (binary(file) && binary(declared))
        || (datetime(file) && datetime(declared))
        || (time(file) && time(declared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn declared_types_must_match_the_files_kind() {
        assert!(compatible(&DataType::Int32, &DataType::Int64));
        assert!(compatible(&DataType::Int64, &DataType::Decimal128(20, 2)));
        assert!(compatible(&DataType::Utf8View, &DataType::Utf8));
        assert!(compatible(&DataType::Int64, &DataType::Utf8));
        assert!(compatible(
            &DataType::Date32,
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        ));
        assert!(!compatible(&DataType::Int64, &DataType::Date32));
        assert!(!compatible(&DataType::Utf8, &DataType::Int64));
        assert!(!compatible(&DataType::Boolean, &DataType::Int64));
    }
}

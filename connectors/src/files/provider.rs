//! The DataFusion table provider of a file table.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::avro::AvroFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};

use super::{FileFormatKind, FileOptions};
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// DataFusion's reader for the table's format, configured from its options.
pub fn file_format(options: &FileOptions) -> Arc<dyn FileFormat> {
    match options.kind {
        FileFormatKind::Parquet => Arc::new(ParquetFormat::default()),
        FileFormatKind::Csv => Arc::new(
            CsvFormat::default()
                .with_has_header(options.header)
                .with_delimiter(options.delimiter)
                .with_file_compression_type(options.compression),
        ),
        FileFormatKind::Json => {
            Arc::new(JsonFormat::default().with_file_compression_type(options.compression))
        }
        FileFormatKind::Avro => Arc::new(AvroFormat),
    }
}

/// Listing options (format, extension, partition columns) for a table whose full
/// schema is `schema`; the partition columns' types are taken from it.
pub fn listing_options(
    options: &FileOptions,
    schema: &Schema,
    partition_columns: &[String],
) -> ConnectorResult<ListingOptions> {
    let partition_cols = partition_columns
        .iter()
        .map(|name| {
            let field = schema.field_with_name(name).map_err(|_| {
                ConnectorError::new(
                    ConnectorErrorKind::SchemaMismatch,
                    format!("partition column \"{name}\" is not in the column list"),
                )
            })?;
            Ok((name.clone(), field.data_type().clone()))
        })
        .collect::<ConnectorResult<Vec<_>>>()?;
    Ok(ListingOptions::new(file_format(options))
        .with_file_extension(options.file_extension.clone())
        .with_table_partition_cols(partition_cols))
}

/// The schema of the files alone: `schema` without its partition columns.
pub fn file_schema(schema: &Schema, partition_columns: &[String]) -> SchemaRef {
    let fields = schema
        .fields()
        .iter()
        .filter(|f| !partition_columns.contains(f.name()))
        .cloned()
        .collect::<Vec<_>>();
    Arc::new(Schema::new(fields))
}

/// A listing table over `table_url` with the stored schema (no I/O).
pub fn listing_table(
    table_url: ListingTableUrl,
    options: &FileOptions,
    schema: SchemaRef,
    partition_columns: &[String],
) -> ConnectorResult<Arc<dyn TableProvider>> {
    let listing = listing_options(options, &schema, partition_columns)?;
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(listing)
        .with_schema(file_schema(&schema, partition_columns));
    let table = ListingTable::try_new(config).map_err(|e| {
        ConnectorError::new(
            ConnectorErrorKind::SchemaMismatch,
            format!("cannot build table: {e}"),
        )
    })?;
    Ok(Arc::new(table))
}

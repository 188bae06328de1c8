//! `OPTIMIZE table [WHERE predicate]`: which files a compaction rewrites.
//! Within each partition the predicate selects (it may name partition
//! columns only, and is evaluated exactly on each file's partition values),
//! the files smaller than `target_file_size` are rewritten together when
//! there are at least two of them; larger files stay as they are.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::context::SessionState;
use datafusion::scalar::ScalarValue;
use deltalake_core::table::state::DeltaTableState;

use super::provider::partition_value;
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// The files (as the log names them) a compaction of `state` rewrites.
pub fn files_to_compact(
    state: &DeltaTableState,
    schema: &SchemaRef,
    partition_columns: &[String],
    predicate: Option<&str>,
    target_file_size: u64,
    session: &SessionState,
) -> ConnectorResult<HashSet<String>> {
    let log = state.log_data();
    let files: Vec<_> = log.iter().collect();
    let chosen = match predicate {
        Some(sql) => matching(&files, schema, partition_columns, sql, session)?,
        None => vec![true; files.len()],
    };
    let mut small: BTreeMap<Vec<Option<String>>, Vec<String>> = BTreeMap::new();
    for (file, chosen) in files.iter().zip(chosen) {
        let size = u64::try_from(file.size()).unwrap_or(u64::MAX);
        if !chosen || size >= target_file_size {
            continue;
        }
        let values = file.partition_values_map();
        let key = partition_columns
            .iter()
            .map(|c| values.get(c).cloned().flatten())
            .collect();
        small.entry(key).or_default().push(file.path().into_owned());
    }
    Ok(small
        .into_values()
        .filter(|files| files.len() > 1)
        .flatten()
        .collect())
}

/// Whether each file's partition values satisfy the predicate.
fn matching(
    files: &[deltalake_core::kernel::LogicalFileView],
    schema: &SchemaRef,
    partition_columns: &[String],
    sql: &str,
    session: &SessionState,
) -> ConnectorResult<Vec<bool>> {
    let fields: Vec<Field> = partition_columns
        .iter()
        .filter_map(|c| schema.field_with_name(c).ok().cloned())
        .collect();
    let partition_schema = Arc::new(Schema::new(fields));
    let only_partitions = || {
        ConnectorError::new(
            ConnectorErrorKind::Unsupported,
            format!(
                "OPTIMIZE … WHERE may name only the table's partition columns ({}): {sql}",
                partition_columns.join(", ")
            ),
        )
    };
    let df_schema =
        DFSchema::try_from(Arc::clone(&partition_schema)).map_err(|_| only_partitions())?;
    let expr = session
        .create_logical_expr(sql, &df_schema)
        .map_err(|_| only_partitions())?;
    let physical = session
        .create_physical_expr(expr, &df_schema)
        .map_err(|e| ConnectorError::invalid_option(format!("OPTIMIZE … WHERE {sql}: {e}")))?;
    let columns = partition_schema
        .fields()
        .iter()
        .map(|field| {
            let values = files
                .iter()
                .map(|f| {
                    partition_value(
                        f.partition_values_map().remove(field.name()).flatten(),
                        field,
                    )
                })
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            ScalarValue::iter_to_array(values)
                .or_else(|_| Ok(datafusion::arrow::array::new_empty_array(field.data_type())))
        })
        .collect::<datafusion::error::Result<Vec<ArrayRef>>>()
        .map_err(|e| ConnectorError::invalid_option(format!("OPTIMIZE … WHERE {sql}: {e}")))?;
    let batch = RecordBatch::try_new_with_options(
        partition_schema,
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(files.len())),
    )
    .map_err(|e| ConnectorError::invalid_option(format!("OPTIMIZE … WHERE {sql}: {e}")))?;
    let result = physical
        .evaluate(&batch)
        .and_then(|v| v.into_array(files.len()))
        .map_err(|e| ConnectorError::invalid_option(format!("OPTIMIZE … WHERE {sql}: {e}")))?;
    let mask = result
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| {
            ConnectorError::invalid_option(format!("OPTIMIZE … WHERE {sql} is not a condition"))
        })?;
    Ok((0..mask.len())
        .map(|i| mask.is_valid(i) && mask.value(i))
        .collect())
}

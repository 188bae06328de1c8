//! The planner's statistics of a Delta scan, from the log alone: each file's
//! row count, and per column the min, max and null count its `add.stats`
//! records (partition columns: the file's partition value). The planner
//! sizes joins and filters with them, as it does with a Parquet table's
//! footers, without opening a file.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::stats::Precision;
use datafusion::common::{Column, ColumnStatistics, Statistics};
use datafusion::physical_optimizer::pruning::PruningStatistics;
use datafusion::scalar::ScalarValue;

/// One column's statistics over the files of a version: one entry per file.
struct ColumnLog {
    data_type: DataType,
    mins: Option<ArrayRef>,
    maxes: Option<ArrayRef>,
    nulls: Option<ArrayRef>,
}

/// The log's statistics of every file of a version, for the columns of
/// `schema` (the scan's table schema: file columns, then partition columns).
pub(super) struct LogStatistics {
    columns: Vec<ColumnLog>,
}

impl LogStatistics {
    /// Read the statistics of `schema`'s columns from `log`.
    pub fn new(log: &dyn PruningStatistics, schema: &Schema) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                let column = Column::new_unqualified(field.name());
                ColumnLog {
                    data_type: field.data_type().clone(),
                    mins: log.min_values(&column),
                    maxes: log.max_values(&column),
                    nulls: log.null_counts(&column),
                }
            })
            .collect();
        Self { columns }
    }

    /// The statistics of the `file`th file of the version, which holds `rows`.
    ///
    /// Bounds are inexact (other writers truncate strings and timestamps in
    /// the log), so the planner never answers `min`/`max` from them; row and
    /// null counts are exact.
    pub fn file(&self, file: usize, rows: usize) -> Statistics {
        let column_statistics: Vec<ColumnStatistics> = self
            .columns
            .iter()
            .map(|column| {
                let value = |array: &Option<ArrayRef>| {
                    array
                        .as_ref()
                        .filter(|a| file < a.len() && a.is_valid(file))
                        .and_then(|a| ScalarValue::try_from_array(a, file).ok())
                };
                let min = value(&column.mins).and_then(|v| cast(v, &column.data_type));
                let max = value(&column.maxes).and_then(|v| cast(v, &column.data_type));
                let nulls = value(&column.nulls).and_then(|n| match n {
                    ScalarValue::UInt64(Some(n)) => usize::try_from(n).ok(),
                    _ => None,
                });
                let byte_size = byte_size(&column.data_type, rows, min.as_ref(), max.as_ref());
                ColumnStatistics {
                    null_count: nulls.map_or(Precision::Absent, Precision::Exact),
                    max_value: max.map_or(Precision::Absent, Precision::Inexact),
                    min_value: min.map_or(Precision::Absent, Precision::Inexact),
                    sum_value: Precision::Absent,
                    distinct_count: Precision::Absent,
                    byte_size,
                }
            })
            .collect();
        let total_byte_size = column_statistics
            .iter()
            .map(|c| c.byte_size.get_value().copied())
            .sum::<Option<usize>>()
            .map_or(Precision::Absent, Precision::Inexact);
        Statistics {
            num_rows: Precision::Exact(rows),
            total_byte_size,
            column_statistics,
        }
    }
}

/// `value` as `data_type` (the log types strings and timestamps its own way).
fn cast(value: ScalarValue, data_type: &DataType) -> Option<ScalarValue> {
    if value.is_null() {
        return None;
    }
    if &value.data_type() == data_type {
        return Some(value);
    }
    value.cast_to(data_type).ok()
}

/// The bytes a column of `rows` values takes in memory: exact for fixed-width
/// types, estimated from the bounds' lengths for strings (as the Parquet
/// scan estimates from its uncompressed size).
fn byte_size(
    data_type: &DataType,
    rows: usize,
    min: Option<&ScalarValue>,
    max: Option<&ScalarValue>,
) -> Precision<usize> {
    if let Some(width) = data_type.primitive_width() {
        return Precision::Exact(width * rows);
    }
    let length = |v: Option<&ScalarValue>| match v {
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => Some(s.len()),
        _ => None,
    };
    match (length(min), length(max)) {
        (Some(a), Some(b)) => Precision::Inexact(rows * (a + b).div_ceil(2)),
        _ => Precision::Absent,
    }
}

/// The statistics of `parts` (files, or groups of files) together, over
/// `schema`; `None` when one part has none.
pub(super) fn merged<'a>(
    parts: impl IntoIterator<Item = Option<&'a Statistics>>,
    schema: &Schema,
) -> Option<Statistics> {
    let parts: Vec<&Statistics> = parts.into_iter().collect::<Option<_>>()?;
    Some(
        Statistics::try_merge_iter(parts, schema)
            .unwrap_or_else(|_| Statistics::new_unknown(schema)),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Int64Array, StringArray, UInt64Array};
    use datafusion::arrow::datatypes::Field;

    use super::*;

    /// Two files' statistics, as a log would give them.
    struct TwoFiles;

    impl PruningStatistics for TwoFiles {
        fn min_values(&self, column: &Column) -> Option<ArrayRef> {
            match column.name.as_str() {
                "id" => Some(Arc::new(Int64Array::from(vec![Some(1), None]))),
                "name" => Some(Arc::new(StringArray::from(vec!["ab", "abcd"]))),
                _ => None,
            }
        }
        fn max_values(&self, column: &Column) -> Option<ArrayRef> {
            match column.name.as_str() {
                "id" => Some(Arc::new(Int64Array::from(vec![Some(10), None]))),
                "name" => Some(Arc::new(StringArray::from(vec!["abcd", "abcdef"]))),
                _ => None,
            }
        }
        fn num_containers(&self) -> usize {
            2
        }
        fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
            (column.name == "id").then(|| Arc::new(UInt64Array::from(vec![0, 3])) as ArrayRef)
        }
        fn row_counts(&self) -> Option<ArrayRef> {
            None
        }
        fn contained(&self, _: &Column, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
            None
        }
    }

    #[test]
    fn a_scan_gets_each_file_bounds_and_counts_from_the_log() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        let log = LogStatistics::new(&TwoFiles, &schema);
        let first = log.file(0, 100);
        assert_eq!(first.num_rows, Precision::Exact(100));
        let id = &first.column_statistics[0];
        assert_eq!(
            id.min_value,
            Precision::Inexact(ScalarValue::Int64(Some(1)))
        );
        assert_eq!(
            id.max_value,
            Precision::Inexact(ScalarValue::Int64(Some(10)))
        );
        assert_eq!(id.null_count, Precision::Exact(0));
        assert_eq!(id.byte_size, Precision::Exact(800));
        assert_eq!(
            first.column_statistics[1].byte_size,
            Precision::Inexact(300)
        );
        let second = log.file(1, 3);
        assert_eq!(second.column_statistics[0].min_value, Precision::Absent);
        assert_eq!(second.column_statistics[0].null_count, Precision::Exact(3));

        assert!(merged([Some(&first), None], &schema).is_none());
        let scan = merged([Some(&first), Some(&second)], &schema).unwrap();
        assert_eq!(scan.num_rows, Precision::Exact(103));
        // A file without bounds leaves the column without any.
        assert_eq!(scan.column_statistics[0].min_value, Precision::Absent);
        assert_eq!(
            scan.column_statistics[1].max_value,
            Precision::Inexact(ScalarValue::Utf8(Some("abcdef".into())))
        );
        assert_eq!(scan.column_statistics[0].null_count, Precision::Exact(3));
    }
}

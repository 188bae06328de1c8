//! Test data files: a small "events" data set written as Parquet (Hive-partitioned
//! by `dt`), CSV, newline-delimited JSON and Avro, all with the same rows.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

/// Days of the events data set, one partition each.
pub const DAYS: [&str; 3] = ["2024-01-01", "2024-01-02", "2024-01-03"];

/// The rows of one day: (user_id, amount). Day i has i+2 rows.
pub fn day_rows(day_index: usize) -> Vec<(String, i64)> {
    (0..day_index + 2)
        .map(|j| {
            (
                format!("u{}", j % 2),
                (day_index as i64 + 1) * 10 + j as i64,
            )
        })
        .collect()
}

/// A batch of (user_id, amount) rows.
pub fn batch(rows: &[(String, i64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
    ]));
    let users: ArrayRef = Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.0.as_str()),
    ));
    let amounts: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1)));
    RecordBatch::try_new(schema, vec![users, amounts]).unwrap()
}

/// Parquet bytes of `batch`.
pub fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    buf
}

/// DDL registering the partitioned events data set at `location` as `events`.
pub fn create_events_sql(location: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE events (user_id VARCHAR, amount BIGINT, dt VARCHAR) \
         STORED AS PARQUET PARTITIONED BY (dt) LOCATION '{location}'"
    )
}

/// Write `root/dt=DAY/part-0.parquet` for every day; returns the number of files.
pub fn write_partitioned_parquet(root: &Path) -> usize {
    for (i, day) in DAYS.iter().enumerate() {
        let dir = root.join(format!("dt={day}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("part-0.parquet"),
            parquet_bytes(&batch(&day_rows(i))),
        )
        .unwrap();
    }
    DAYS.len()
}

/// Every row with its day: (user_id, amount, dt).
pub fn all_rows() -> Vec<(String, i64, String)> {
    DAYS.iter()
        .enumerate()
        .flat_map(|(i, d)| {
            day_rows(i)
                .into_iter()
                .map(move |(u, a)| (u, a, d.to_string()))
        })
        .collect()
}

/// Write all rows (with a `dt` column) as one CSV file with a header.
pub fn write_csv(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::from("user_id,amount,dt\n");
    for (u, a, d) in all_rows() {
        text.push_str(&format!("{u},{a},{d}\n"));
    }
    std::fs::write(dir.join("events.csv"), text).unwrap();
}

/// Write all rows as newline-delimited JSON.
pub fn write_json(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let text: String = all_rows()
        .into_iter()
        .map(|(u, a, d)| format!("{{\"user_id\":\"{u}\",\"amount\":{a},\"dt\":\"{d}\"}}\n"))
        .collect();
    std::fs::write(dir.join("events.json"), text).unwrap();
}

/// Write all rows as an Avro object container file.
pub fn write_avro(dir: &Path) {
    use arrow_avro::writer::AvroWriter;
    std::fs::create_dir_all(dir).unwrap();
    let rows = all_rows();
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
        Field::new("dt", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )) as ArrayRef,
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.as_str()),
            )),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.join("events.avro")).unwrap();
    let mut w = AvroWriter::new(file, schema.as_ref().clone()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
}

/// Expected `dt, count, sum(amount)` rows for days >= `from`, as text.
pub fn expected_daily_totals(from: &str) -> Vec<Vec<String>> {
    DAYS.iter()
        .enumerate()
        .filter(|(_, d)| **d >= from)
        .map(|(i, d)| {
            let rows = day_rows(i);
            vec![
                d.to_string(),
                rows.len().to_string(),
                rows.iter().map(|r| r.1).sum::<i64>().to_string(),
            ]
        })
        .collect()
}

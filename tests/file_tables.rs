//! File tables end to end: CREATE EXTERNAL TABLE over Parquet (Hive-partitioned),
//! CSV, JSON and Avro; partition pruning; SHOW/DESCRIBE; typed parameters.

mod common;

use common::data::{self, DAYS};
use common::{Server, TempDir, rows, table, text_rows};

const DAILY: &str =
    "SELECT dt, count(*), sum(amount) FROM events WHERE dt >= '2024-01-02' GROUP BY dt ORDER BY dt";

#[tokio::test]
async fn partitioned_parquet_answers_and_prunes_partitions() {
    let dir = TempDir::new("parquet");
    let root = dir.path().join("events");
    data::write_partitioned_parquet(&root);
    let server = Server::start(&dir).await;
    let client = server.client().await;
    client
        .simple_query(&data::create_events_sql(&format!("{}/", root.display())))
        .await
        .unwrap();

    assert_eq!(
        text_rows(&client, DAILY).await,
        data::expected_daily_totals("2024-01-02")
    );

    // The plan lists only the files of the partitions that match the filter.
    let plan = text_rows(&client, &format!("EXPLAIN {DAILY}"))
        .await
        .concat()
        .join("\n");
    assert!(
        plan.contains("dt=2024-01-02") && plan.contains("dt=2024-01-03"),
        "{plan}"
    );
    assert!(
        !plan.contains("dt=2024-01-01"),
        "partition 2024-01-01 was not pruned:\n{plan}"
    );
    let all = text_rows(
        &client,
        "EXPLAIN SELECT count(*) FROM events WHERE amount > 0",
    )
    .await
    .concat()
    .join("\n");
    assert!(all.contains("dt=2024-01-01"), "{all}");

    // EXPLAIN ANALYZE shows the scan read only the rows of the two partitions.
    let analyzed = text_rows(&client, &format!("EXPLAIN ANALYZE {DAILY}"))
        .await
        .concat()
        .join("\n");
    let scan = analyzed
        .lines()
        .find(|l| l.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no scan in:\n{analyzed}"));
    let expected_rows = data::day_rows(1).len() + data::day_rows(2).len();
    assert!(
        scan.contains(&format!("output_rows={expected_rows}")),
        "{scan}"
    );
}

#[tokio::test]
async fn schema_is_inferred_when_no_columns_are_given() {
    let dir = TempDir::new("infer");
    let root = dir.path().join("events");
    data::write_partitioned_parquet(&root);
    let server = Server::start(&dir).await;
    let client = server.client().await;
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE events STORED AS PARQUET PARTITIONED BY (dt) LOCATION '{}/'",
            root.display()
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "DESCRIBE events").await,
        table(&[
            &["user_id", "text", "NO", "NO"],
            &["amount", "bigint", "NO", "NO"],
            &["dt", "text", "NO", "YES"],
        ])
    );
    assert_eq!(
        text_rows(&client, DAILY).await,
        data::expected_daily_totals("2024-01-02")
    );
}

#[tokio::test]
async fn csv_json_and_avro_tables_give_the_same_rows() {
    let dir = TempDir::new("formats");
    data::write_csv(&dir.path().join("csv"));
    data::write_json(&dir.path().join("json"));
    data::write_avro(&dir.path().join("avro"));
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let expected = data::expected_daily_totals("2024-01-02");
    for format in ["csv", "json", "avro"] {
        let location = dir.path().join(format);
        client
            .simple_query(&format!(
                "CREATE EXTERNAL TABLE ev_{format} STORED AS {format} LOCATION '{}/'",
                location.display()
            ))
            .await
            .unwrap_or_else(|e| panic!("{format}: {e:?}"));
        let got = text_rows(
            &client,
            &format!("SELECT dt, count(*), sum(amount) FROM ev_{format} WHERE dt >= '2024-01-02' GROUP BY dt ORDER BY dt"),
        )
        .await;
        assert_eq!(got, expected, "format {format}");
    }
    // CSV options: a semicolon-separated file without a header, columns declared.
    let semi = dir.path().join("semi");
    std::fs::create_dir_all(&semi).unwrap();
    std::fs::write(semi.join("a.csv"), "u1;5\nu2;7\n").unwrap();
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE semi (who VARCHAR, n BIGINT) STORED AS CSV LOCATION '{}/' \
             OPTIONS ('header' 'false', 'delimiter' ';')",
            semi.display()
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT who, n * 2 FROM semi ORDER BY who").await,
        table(&[&["u1", "10"], &["u2", "14"]])
    );
}

#[tokio::test]
async fn show_tables_show_create_and_drop() {
    let dir = TempDir::new("show");
    let root = dir.path().join("events");
    data::write_partitioned_parquet(&root);
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let location = format!("{}/", root.display());
    client
        .simple_query(&data::create_events_sql(&location))
        .await
        .unwrap();

    assert_eq!(
        text_rows(&client, "SHOW TABLES").await,
        vec![vec![
            "public".to_string(),
            "events".into(),
            "PARQUET".into(),
            location.clone()
        ]]
    );

    // SHOW CREATE TABLE prints DDL that recreates the same table.
    let ddl = rows(&client, "SHOW CREATE TABLE events").await[0][1]
        .clone()
        .unwrap();
    assert!(
        ddl.contains("PARTITIONED BY (dt)") && ddl.contains(&location),
        "{ddl}"
    );
    let before = text_rows(&client, DAILY).await;
    client.simple_query("DROP TABLE events").await.unwrap();
    assert!(text_rows(&client, "SHOW TABLES").await.is_empty());
    client.simple_query(&ddl).await.unwrap();
    assert_eq!(text_rows(&client, DAILY).await, before);

    // IF NOT EXISTS / IF EXISTS are no-ops with a notice, not errors.
    client
        .simple_query(
            &data::create_events_sql(&location)
                .replace("TABLE events", "TABLE IF NOT EXISTS events"),
        )
        .await
        .unwrap();
    client
        .simple_query("DROP EXTERNAL TABLE events")
        .await
        .unwrap();
    client
        .simple_query("DROP TABLE IF EXISTS events")
        .await
        .unwrap();
    assert!(text_rows(&client, "SHOW TABLES").await.is_empty());
}

#[tokio::test]
async fn extended_protocol_binds_typed_parameters() {
    let dir = TempDir::new("extended");
    let root = dir.path().join("events");
    data::write_partitioned_parquet(&root);
    let server = Server::start(&dir).await;
    let client = server.client().await;
    // DDL through the extended protocol too (tokio-postgres `execute`).
    client
        .execute(
            &data::create_events_sql(&format!("{}/", root.display())),
            &[],
        )
        .await
        .unwrap();
    let stmt = client
        .prepare("SELECT user_id, amount FROM events WHERE amount > $1 AND dt = $2 ORDER BY amount")
        .await
        .unwrap();
    assert_eq!(
        stmt.params(),
        &[
            tokio_postgres::types::Type::INT8,
            tokio_postgres::types::Type::TEXT
        ]
    );
    for (min, day) in [(20_i64, DAYS[1]), (0, DAYS[0]), (1000, DAYS[2])] {
        let got: Vec<(String, i64)> = client
            .query(&stmt, &[&min, &day])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let idx = DAYS.iter().position(|d| *d == day).unwrap();
        let mut expected: Vec<(String, i64)> = data::day_rows(idx)
            .into_iter()
            .filter(|r| r.1 > min)
            .collect();
        expected.sort_by_key(|r| r.1);
        assert_eq!(got, expected, "amount > {min} on {day}");
    }
}

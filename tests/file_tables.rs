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

/// A prepared statement keeps its plans between executions, and is planned
/// again after DDL as PostgreSQL plans a cached statement again: a table
/// dropped and created anew is read at its new location, a change of its
/// columns is refused with 0A000, a dropped table gives 42P01; a temp table
/// that shadows it counts as a change too.
#[tokio::test]
async fn prepared_statements_are_planned_again_after_ddl() {
    let dir = TempDir::new("replan");
    let (first, second, wide) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for (folder, text) in [
        (&first, "1;one\n2;two\n3;three\n"),
        (&second, "1;uno\n2;dos\n"),
        (&wide, "1;2;x\n"),
    ] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join("t.csv"), text).unwrap();
    }
    let create = |folder: &std::path::Path, columns: &str| {
        format!(
            "CREATE EXTERNAL TABLE t ({columns}) STORED AS CSV LOCATION '{}/' \
             OPTIONS ('header' 'false', 'delimiter' ';')",
            folder.display()
        )
    };
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let other = server.client().await;
    client
        .simple_query(&create(&first, "id BIGINT, name VARCHAR"))
        .await
        .unwrap();
    let lookup = client
        .prepare("SELECT name FROM t WHERE id = $1")
        .await
        .unwrap();
    let count = client.prepare("SELECT count(*) FROM t").await.unwrap();
    let name =
        |rows: Vec<tokio_postgres::Row>| -> Vec<String> { rows.iter().map(|r| r.get(0)).collect() };
    // Run again and again with other values: the kept plan takes each one.
    for (id, want) in [(1_i64, "one"), (3, "three"), (2, "two"), (1, "one")] {
        let got = name(client.query(&lookup, &[&id]).await.unwrap());
        assert_eq!(got, [want], "id {id}");
    }
    assert!(client.query(&lookup, &[&9_i64]).await.unwrap().is_empty());

    // Another session drops the table and creates it elsewhere.
    other.simple_query("DROP TABLE t").await.unwrap();
    other
        .simple_query(&create(&second, "id BIGINT, name VARCHAR"))
        .await
        .unwrap();
    assert_eq!(
        name(client.query(&lookup, &[&1_i64]).await.unwrap()),
        ["uno"]
    );
    let counted: i64 = client.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(counted, 2);

    // Other columns: the statement's result would change shape.
    other.simple_query("DROP TABLE t").await.unwrap();
    other
        .simple_query(&create(&wide, "id BIGINT, name BIGINT, extra VARCHAR"))
        .await
        .unwrap();
    let e = client.query(&lookup, &[&1_i64]).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
        "{e:?}"
    );
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("cached plan must not change result type"),
        "{e:?}"
    );
    // Gone: the table's error, and the server goes on.
    other.simple_query("DROP TABLE t").await.unwrap();
    let e = client.query(&count, &[]).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE),
        "{e:?}"
    );
    // Back at the first location: the statement works again.
    other
        .simple_query(&create(&first, "id BIGINT, name VARCHAR"))
        .await
        .unwrap();
    assert_eq!(
        name(client.query(&lookup, &[&2_i64]).await.unwrap()),
        ["two"]
    );
    // A temp table of the session shadows `t` (PostgreSQL searches pg_temp first).
    client
        .simple_query("CREATE TEMP TABLE t (id BIGINT, name VARCHAR)")
        .await
        .unwrap();
    client
        .simple_query("INSERT INTO t VALUES (2, 'temp')")
        .await
        .unwrap();
    assert_eq!(
        name(client.query(&lookup, &[&2_i64]).await.unwrap()),
        ["temp"]
    );
    // A second temp table of that name is PostgreSQL's duplicate, not an internal error.
    let e = client
        .simple_query("CREATE TEMP TABLE t (id BIGINT)")
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::DUPLICATE_TABLE),
        "{e:?}"
    );
    client
        .simple_query("CREATE TEMP TABLE IF NOT EXISTS t (id BIGINT)")
        .await
        .unwrap();
    // The other session never saw the temp table.
    let rows = other
        .query("SELECT name FROM t WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(name(rows), ["two"]);
}

/// A kept plan never freezes what a stable function gave: `now()` moves on
/// from one execution of the same prepared statement to the next.
#[tokio::test]
async fn prepared_statements_do_not_keep_now() {
    let dir = TempDir::new("keep-now");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let stmt = client
        .prepare("SELECT CAST(now() AS TEXT) FROM (VALUES (1), (2)) AS v(x) WHERE x = $1")
        .await
        .unwrap();
    let at = |row: tokio_postgres::Row| -> String { row.get(0) };
    let first = at(client.query_one(&stmt, &[&1_i64]).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = at(client.query_one(&stmt, &[&1_i64]).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let third = at(client.query_one(&stmt, &[&1_i64]).await.unwrap());
    assert!(first < second && second < third, "{first} {second} {third}");
}

//! Every error a user can cause returns the right SQLSTATE, persists nothing, and
//! leaves the server up with its catalog intact.

mod common;

use common::data;
use common::{Server, TempDir, sql_error, text_rows};

#[tokio::test]
async fn user_errors_carry_sqlstates_and_change_nothing() {
    let dir = TempDir::new("errors");
    let root = dir.path().join("events");
    data::write_partitioned_parquet(&root);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("x.parquet"), b"this is not parquet").unwrap();
    let closed_port = common::free_port();

    let mut server = Server::start_with(&dir, &[], &[("ERR_SECRET", "x")]).await;
    let client = server.client().await;
    let ok_ddl = data::create_events_sql(&format!("{}/", root.display()));
    client.simple_query(&ok_ddl).await.unwrap();
    let baseline = text_rows(&client, "SELECT count(*), sum(amount) FROM events").await;

    let cases: Vec<(String, &str, &str)> = vec![
        (
            "SELECT * FROM no_such_table".into(),
            "42P01",
            "no_such_table",
        ),
        (
            "SELECT no_such_column FROM events".into(),
            "42703",
            "no_such_column",
        ),
        ("SELEC 1".into(), "42601", "syntax"),
        ("SELECT 1/0".into(), "22012", "division by zero"),
        ("SELECT no_such_fn(1)".into(), "42883", "no_such_fn"),
        ("SELECT interval '1 day' * 2".into(), "42883", "Interval"),
        ("DROP TABLE no_such_table".into(), "42P01", "no_such_table"),
        (ok_ddl.clone(), "42P07", "already exists"),
        (
            "CREATE TABLE t (a INT)".into(),
            "0A000",
            "CREATE EXTERNAL TABLE",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}/' OPTIONS ('colour' 'red')",
                root.display()
            ),
            "22023",
            "unknown option 'colour'",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS ORC LOCATION '{}/'",
                root.display()
            ),
            "0A000",
            "ORC",
        ),
        (
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://lake/x/' \
             OPTIONS ('aws.secret_access_key' 'hunter2')"
                .into(),
            "22023",
            "aws.secret_access_key_env",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://lake/x/' \
             OPTIONS ('aws.endpoint' 'http://127.0.0.1:{closed_port}', 'aws.region' 'us-east-1', 'aws.access_key_id' 'k', 'aws.secret_access_key_env' 'ERR_SECRET')"
            ),
            "08001",
            "cannot list LOCATION",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}/'",
                empty.display()
            ),
            "58P01",
            "no '*.parquet' files",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}/'",
                garbage.display()
            ),
            "22P04",
            "as PARQUET",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t (user_id VARCHAR, nope BIGINT, dt VARCHAR) STORED AS PARQUET \
                 PARTITIONED BY (dt) LOCATION '{}/'",
                root.display()
            ),
            "42P16",
            "column \"nope\" is not in the files",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t (user_id VARCHAR, amount DATE, dt VARCHAR) STORED AS PARQUET \
                 PARTITIONED BY (dt) LOCATION '{}/'",
                root.display()
            ),
            "42P16",
            "declared as",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET PARTITIONED BY (day) LOCATION '{}/'",
                root.display()
            ),
            "42P16",
            "PARTITIONED BY",
        ),
        ("SET no_such_setting = 1".into(), "42704", "no_such_setting"),
        (
            "CREATE EXTERNAL TABLE other.t STORED AS PARQUET LOCATION '/x/'".into(),
            "3F000",
            "other",
        ),
    ];
    for (sql, code, needle) in &cases {
        let (got_code, message) = sql_error(&client, sql).await;
        assert_eq!(&got_code, code, "{sql} -> {message}");
        assert!(
            message.contains(needle),
            "{sql}: message {message:?} lacks {needle:?}"
        );
    }

    // The connection, the server and the catalog all survived.
    assert_eq!(
        text_rows(&client, "SELECT count(*), sum(amount) FROM events").await,
        baseline
    );
    let tables = text_rows(&client, "SHOW TABLES").await;
    assert_eq!(tables.len(), 1, "{tables:?}");
    assert!(server.is_running());
    server.restart().await;
    let client = server.client().await;
    assert_eq!(text_rows(&client, "SHOW TABLES").await, tables);
}

#[tokio::test]
async fn an_error_in_a_multi_statement_query_stops_the_rest() {
    let dir = TempDir::new("multi");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let (code, _) = sql_error(
        &client,
        "SET application_name = 'a'; SELECT * FROM nope; SET application_name = 'b'",
    )
    .await;
    assert_eq!(code, "42P01");
    assert_eq!(
        text_rows(&client, "SHOW application_name").await,
        vec![vec!["a".to_string()]]
    );
}

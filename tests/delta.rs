//! Delta Lake tables (`STORED AS DELTA`) written by the Python `deltalake`
//! package (delta-rs, from PyPI): every version read back and compared with
//! what that package reads; time travel by version and by timestamp; the
//! history; file skipping shown by EXPLAIN ANALYZE; scans split over two
//! workers equal to one; the same on the suite's S3 server; and the errors.

mod common;

use common::delta::{
    DAYS, TOTALS, active_files, check_versions, delta_rs, expected, field, read_with_delta_rs,
    write_with_delta_rs,
};
use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use common::{Server, TempDir, sql_error, tag_rows, text_rows};

/// A server with `events` registered: the table delta-rs wrote at `lake`.
async fn registered_delta_rs_table(
    name: &str,
) -> (
    TempDir,
    std::path::PathBuf,
    serde_json::Value,
    Server,
    tokio_postgres::Client,
) {
    let dir = TempDir::new(name);
    let lake = dir.path().join("events");
    let written = write_with_delta_rs(lake.to_str().unwrap(), None);
    let server = Server::start(&dir).await;
    let client = server.client().await;
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE events STORED AS DELTA LOCATION '{}'",
            lake.display()
        ))
        .await
        .unwrap();
    (dir, lake, written, server, client)
}

#[tokio::test]
async fn reads_every_version_of_a_table_delta_rs_wrote() {
    let (_dir, lake, written, _server, client) = registered_delta_rs_table("delta").await;
    // The columns and partitioning come from the log's latest version.
    let columns: Vec<String> = text_rows(
        &client,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' ORDER BY ordinal_position",
    )
    .await
    .concat();
    assert_eq!(columns, ["id", "amount", "dt", "note"]);
    check_versions(&client, &written).await;
    // SHOW CREATE TABLE re-runs; a column list naming other columns does not.
    let ddl = text_rows(&client, "SHOW CREATE TABLE events").await[0][1].clone();
    assert!(ddl.contains("STORED AS DELTA"), "{ddl}");
    client
        .simple_query(&ddl.replacen("TABLE events", "TABLE events_again", 1))
        .await
        .unwrap();
    let (code, _) = sql_error(
        &client,
        &format!(
            "CREATE EXTERNAL TABLE wrong (id BIGINT) STORED AS DELTA LOCATION '{}'",
            lake.display()
        ),
    )
    .await;
    assert_eq!(code, "42P16");

    // Each version has its own columns: `note` came in version 3.
    let first = written["versions"][0]["columns"].as_array().unwrap().len();
    let star = text_rows(&client, "SELECT * FROM events VERSION AS OF 0 LIMIT 1").await;
    assert_eq!(star[0].len(), first);
    let (code, _) = sql_error(&client, "SELECT note FROM events VERSION AS OF 0").await;
    assert_eq!(code, "42703");
    let last = written["versions"].as_array().unwrap().last().unwrap();
    let (_, days) = expected(last);
    let fifth = days.iter().find(|d| d[0] == "2024-03-05").unwrap()[1].clone();
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(note), count(*) FROM events WHERE dt = '2024-03-05'"
        )
        .await,
        vec![vec!["500".to_string(), fifth]]
    );

    // TIMESTAMP AS OF a commit's time reads that commit; an alias and a
    // join of two versions work as for any table.
    let when = written["versions"][1]["timestamp"].as_str().unwrap();
    let (totals, _) = expected(&written["versions"][1]);
    assert_eq!(
        text_rows(
            &client,
            &format!("SELECT count(*), sum(e.amount) FROM events TIMESTAMP AS OF '{when}' AS e")
        )
        .await,
        totals
    );
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*) FROM events VERSION AS OF 1 a JOIN events VERSION AS OF 2 b ON a.id = b.id"
        )
        .await,
        vec![vec![written["versions"][2]["rows"].to_string()]]
    );

    // The history, newest first, as delta-rs wrote it.
    let history = text_rows(
        &client,
        "SELECT version, operation FROM vivace.delta_history('events')",
    )
    .await;
    let operations = written["operations"].as_array().unwrap();
    assert_eq!(history.len(), operations.len());
    for (i, (row, op)) in history.iter().zip(operations).enumerate() {
        assert_eq!(row[0], (operations.len() - 1 - i).to_string());
        assert_eq!(row[1], op.as_str().unwrap());
    }

    // Errors: a version that does not exist, time travel on a table that
    // keeps no versions, a history of a table that has none.
    let (code, message) = sql_error(&client, "SELECT count(*) FROM events VERSION AS OF 99").await;
    assert_eq!(code, "22023", "{message}");
    assert!(message.contains("version 99"), "{message}");
    let (code, _) = sql_error(
        &client,
        "SELECT count(*) FROM events TIMESTAMP AS OF '2001-01-01 00:00:00'",
    )
    .await;
    assert_eq!(code, "22023");
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE plain STORED AS PARQUET LOCATION '{}/dt=2024-03-01/'",
            lake.display()
        ))
        .await
        .unwrap();
    let (code, message) = sql_error(&client, "SELECT count(*) FROM plain VERSION AS OF 1").await;
    assert_eq!(code, "0A000", "{message}");
    let (code, _) = sql_error(&client, "SELECT * FROM vivace.delta_history('plain')").await;
    assert_eq!(code, "0A000");
    let (code, _) = sql_error(&client, "SELECT * FROM vivace.delta_history('nothing')").await;
    assert_eq!(code, "42P01");
}

#[tokio::test]
async fn skips_files_by_partition_and_statistics_and_splits_over_workers() {
    let (_dir, _lake, written, _server, client) = registered_delta_rs_table("delta-skip").await;
    let scan_line = |plan: String| {
        plan.lines()
            .find(|l| l.contains("DeltaScanExec"))
            .unwrap_or_else(|| panic!("no Delta scan: {plan}"))
            .to_string()
    };
    let analyze = |sql: &str| format!("EXPLAIN ANALYZE {sql}");
    let all = scan_line(
        text_rows(&client, &analyze("SELECT sum(amount) FROM events"))
            .await
            .concat()
            .join("\n"),
    );
    let files: usize = field(&all, "of ");
    assert!(files >= 5, "{all}");
    assert!(all.contains(&format!("files={files} of {files}")), "{all}");
    // A partition value: only that day's file(s).
    let one_day = scan_line(
        text_rows(
            &client,
            &analyze("SELECT sum(amount) FROM events WHERE dt = '2024-03-02'"),
        )
        .await
        .concat()
        .join("\n"),
    );
    assert!(one_day.contains("files=1 of"), "{one_day}");
    // The log's min/max of `id`: no file holds ids past 5500.
    let none = scan_line(
        text_rows(
            &client,
            &analyze("SELECT sum(amount) FROM events WHERE id > 6000"),
        )
        .await
        .concat()
        .join("\n"),
    );
    assert!(none.contains("files=0 of"), "{none}");
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*), sum(amount) FROM events WHERE id > 6000"
        )
        .await,
        vec![vec!["0".to_string(), "NULL".to_string()]]
    );
    let day = text_rows(
        &client,
        "SELECT count(*) FROM events WHERE dt = '2024-03-02'",
    )
    .await;

    // Split over both workers: a stage of two tasks reads the files, and
    // the rows are those of one.
    let one = (
        text_rows(&client, TOTALS).await,
        text_rows(&client, DAYS).await,
    );
    client
        .simple_query("SET distributed.file_scan_config_bytes_per_partition = 1")
        .await
        .unwrap();
    let plan = common::explain(&client, TOTALS).await;
    assert!(
        plan.lines()
            .any(|l| l.contains("Stage") && l.contains("── tasks=2")),
        "{plan}"
    );
    assert_eq!(
        (
            text_rows(&client, TOTALS).await,
            text_rows(&client, DAYS).await,
        ),
        one
    );
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*) FROM events WHERE dt = '2024-03-02'"
        )
        .await,
        day
    );
    check_versions(&client, &written).await;
}

#[tokio::test]
async fn tables_on_s3_and_the_errors_of_create() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let written = write_with_delta_rs(
        "s3://lake/events",
        Some(serde_json::json!({
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        })),
    );
    let dir = TempDir::new("delta-s3");
    let server = Server::start_with(&dir, &[], &[("LAKE_SECRET", SECRET_KEY)]).await;
    let client = server.client().await;
    let options = format!(
        "OPTIONS ('aws.endpoint' '{}', 'aws.region' 'us-east-1', \
         'aws.access_key_id' '{ACCESS_KEY}', 'aws.secret_access_key_env' 'LAKE_SECRET')",
        s3.endpoint
    );
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE events STORED AS DELTA LOCATION 's3://lake/events/' {options}"
        ))
        .await
        .unwrap();
    check_versions(&client, &written).await;
    client
        .simple_query("SET distributed.file_scan_config_bytes_per_partition = 1")
        .await
        .unwrap();
    check_versions(&client, &written).await;

    // A table Vivace writes on S3: two commits, read back by delta-rs.
    let storage = serde_json::json!({
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ALLOW_HTTP": "true",
    });
    client
        .simple_query(&format!(
            "CREATE TABLE copy STORED AS DELTA PARTITIONED BY (dt) LOCATION 's3://lake/copy/' {options} \
             AS SELECT id, amount, dt FROM events VERSION AS OF 0"
        ))
        .await
        .unwrap();
    client
        .simple_query(
            "INSERT INTO copy SELECT id, amount, dt FROM events VERSION AS OF 1 WHERE id > 3000",
        )
        .await
        .unwrap();
    let copied = delta_rs("read", "s3://lake/copy", Some(storage));
    let rows: Vec<u64> = copied["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rows"].as_u64().unwrap())
        .collect();
    let v0 = written["versions"][0]["rows"].as_u64().unwrap();
    let v1 = written["versions"][1]["rows"].as_u64().unwrap();
    assert_eq!(rows, [v0, v1]);
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM copy").await,
        vec![vec![v1.to_string()]]
    );
    client.simple_query("DROP TABLE copy").await.unwrap();

    // Not a Delta table: 42P01, and nothing is stored.
    s3.put("lake", "plain/part-0.parquet", b"not parquet".to_vec())
        .await;
    let (code, message) = sql_error(
        &client,
        &format!(
            "CREATE EXTERNAL TABLE plain STORED AS DELTA LOCATION 's3://lake/plain/' {options}"
        ),
    )
    .await;
    assert_eq!(code, "42P01", "{message}");
    assert!(message.contains("not a Delta table"), "{message}");
    // An unreachable store: 08001.
    let (code, message) = sql_error(
        &client,
        &format!(
            "CREATE EXTERNAL TABLE gone STORED AS DELTA LOCATION 's3://lake/events/' {}",
            options.replace(&s3.endpoint, "http://127.0.0.1:1")
        ),
    )
    .await;
    assert_eq!(code, "08001", "{message}");
    assert!(!message.contains(SECRET_KEY));
    // Options that are not Delta's.
    let (code, _) = sql_error(
        &client,
        "CREATE EXTERNAL TABLE bad STORED AS DELTA LOCATION '/tmp/x' OPTIONS ('header' 'true')",
    )
    .await;
    assert_eq!(code, "22023");
    let tables: Vec<String> = common::table_names(&client).await;
    assert_eq!(tables, ["events"]);
}

#[tokio::test]
async fn refuses_a_table_feature_it_does_not_read() {
    let dir = TempDir::new("delta-feature");
    let lake = dir.path().join("events");
    write_with_delta_rs(lake.to_str().unwrap(), None);
    // A later commit asks readers for a feature Vivace does not know.
    std::fs::write(
        lake.join("_delta_log/00000000000000000004.json"),
        r#"{"commitInfo":{"timestamp":1796117900000,"operation":"SET TBLPROPERTIES"}}
{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["futureFeature"],"writerFeatures":["futureFeature"]}}
"#,
    )
    .unwrap();
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let (code, message) = sql_error(
        &client,
        &format!(
            "CREATE EXTERNAL TABLE events STORED AS DELTA LOCATION '{}'",
            lake.display()
        ),
    )
    .await;
    assert_eq!(code, "0A000", "{message}");
    assert!(message.contains("futureFeature"), "{message}");
    assert!(common::table_names(&client).await.is_empty());
}

/// Events over five days: `id`, `amount`, `dt`.
const EVENTS: &str = "SELECT value AS id, value * 3 AS amount, \
     '2024-03-0' || CAST(1 + value % 5 AS VARCHAR) AS dt FROM generate_series(1, 20000)";

#[tokio::test]
async fn writes_are_delta_commits_that_delta_rs_reads_back() {
    let dir = TempDir::new("delta-write");
    let lake = dir.path().join("events");
    let mut server = Server::start(&dir).await;
    let client = server.client().await;
    // CTAS: version 0, partitioned, split over both workers.
    client
        .simple_query("SET distributed.file_scan_config_bytes_per_partition = 1")
        .await
        .unwrap();
    let created = tag_rows(
        &client,
        &format!(
            "CREATE TABLE events STORED AS DELTA PARTITIONED BY (dt) LOCATION '{}/' AS {EVENTS}",
            lake.display()
        ),
    )
    .await;
    assert_eq!(created, 20000);
    assert!(lake.join("_delta_log/00000000000000000000.json").exists());
    let read = read_with_delta_rs(lake.to_str().unwrap());
    check_versions(&client, &read).await;
    assert_eq!(read["versions"][0]["rows"], 20000);

    // INSERT INTO: version 1, an append.
    assert_eq!(
        tag_rows(
            &client,
            &format!("INSERT INTO events SELECT id + 20000, amount, dt FROM ({EVENTS})")
        )
        .await,
        20000
    );
    // Each file's statistics in the log are the bounds and null counts of
    // its rows, as delta-rs reads them back…
    let files = delta_rs("files", lake.to_str().unwrap(), None);
    let files = files.as_array().unwrap();
    for file in files {
        assert_eq!(file["log"], file["file"], "{file}");
        assert!(file["log"]["max.id"].is_i64(), "{file}");
    }
    // …and they skip files: ids past 20000 lie only in the inserted files.
    let inserted = files
        .iter()
        .filter(|f| f["log"]["max.id"].as_i64().unwrap() > 20000)
        .count();
    assert!(inserted > 0 && inserted < files.len());
    let plan = text_rows(
        &client,
        "EXPLAIN ANALYZE SELECT count(*) FROM events WHERE id > 20000",
    )
    .await
    .concat()
    .join("\n");
    assert!(
        plan.contains(&format!("files={inserted} of {}", files.len())),
        "{plan}"
    );
    // INSERT OVERWRITE one partition: version 2; the other days keep their files.
    assert_eq!(
        tag_rows(
            &client,
            "INSERT OVERWRITE events PARTITION (dt = '2024-03-01') SELECT id, amount FROM events WHERE dt = '2024-03-01' AND id % 2 = 0"
        )
        .await,
        4000
    );
    let read = read_with_delta_rs(lake.to_str().unwrap());
    assert_eq!(read["versions"].as_array().unwrap().len(), 3);
    assert_eq!(read["operations"][0], "WRITE");
    check_versions(&client, &read).await;
    let day = |v: usize, d: &str| {
        read["versions"][v]["per_day"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == d)
            .map(|p| p[1].as_u64().unwrap())
    };
    assert_eq!(day(1, "2024-03-01"), Some(8000));
    assert_eq!(day(2, "2024-03-01"), Some(4000));
    assert_eq!(day(2, "2024-03-02"), day(1, "2024-03-02"));

    // A write that fails halfway commits nothing.
    let (code, _) = sql_error(
        &client,
        "INSERT INTO events SELECT id, amount / (id - 30000), dt FROM events",
    )
    .await;
    assert_eq!(code, "22012");
    // Two appends at once both commit; two overwrites at once either both
    // commit or one is refused with 40001; the log stays readable.
    let (a, b) = (server.client().await, server.client().await);
    let append =
        "INSERT INTO events SELECT id, amount, dt FROM events VERSION AS OF 0 WHERE id <= 100";
    let (ra, rb) = tokio::join!(a.simple_query(append), b.simple_query(append));
    ra.unwrap();
    rb.unwrap();
    let overwrite = "INSERT OVERWRITE events PARTITION (dt = '2024-03-02') SELECT id, amount FROM events VERSION AS OF 0 WHERE dt = '2024-03-02'";
    let (ra, rb) = tokio::join!(a.simple_query(overwrite), b.simple_query(overwrite));
    let mut committed = 0;
    for r in [ra, rb] {
        match r {
            Ok(_) => committed += 1,
            Err(e) => assert_eq!(e.as_db_error().unwrap().code().code(), "40001", "{e:?}"),
        }
    }
    assert!(committed >= 1);
    let read = read_with_delta_rs(lake.to_str().unwrap());
    assert_eq!(read["versions"].as_array().unwrap().len(), 5 + committed);
    check_versions(&client, &read).await;

    // kill -9 in the middle of a write: no new version.
    let versions = read["versions"].as_array().unwrap().len();
    let staging = lake.join("_vivace_staging");
    common::kill_while_writing(
        &mut server,
        "INSERT INTO events SELECT value, value, '2024-03-09' FROM generate_series(1, 30000000)",
        &staging,
    )
    .await;
    let client = server.client().await;
    let read = read_with_delta_rs(lake.to_str().unwrap());
    assert_eq!(read["versions"].as_array().unwrap().len(), versions);
    check_versions(&client, &read).await;
    assert!(!staging.exists());
}

#[tokio::test]
async fn optimize_compacts_small_files_in_one_commit() {
    let dir = TempDir::new("delta-optimize");
    let lake = dir.path().join("events");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    tag_rows(
        &client,
        &format!(
            "CREATE TABLE events STORED AS DELTA PARTITIONED BY (dt) LOCATION '{}/' AS {EVENTS}",
            lake.display()
        ),
    )
    .await;
    for i in 1..=3 {
        tag_rows(
            &client,
            &format!("INSERT INTO events SELECT id + {i} * 20000, amount, dt FROM ({EVENTS})"),
        )
        .await;
    }
    assert_eq!(active_files(&client).await, 20);
    let before = read_with_delta_rs(lake.to_str().unwrap());
    let versions = before["versions"].as_array().unwrap().len();
    let totals = text_rows(&client, TOTALS).await;

    // One partition: its four files become one; the rows do not change.
    client
        .simple_query("OPTIMIZE events WHERE dt = '2024-03-01'")
        .await
        .unwrap();
    assert_eq!(active_files(&client).await, 17);
    assert_eq!(text_rows(&client, TOTALS).await, totals);
    // The whole table.
    client.simple_query("OPTIMIZE events").await.unwrap();
    assert_eq!(active_files(&client).await, 5);
    let after = read_with_delta_rs(lake.to_str().unwrap());
    assert_eq!(after["versions"].as_array().unwrap().len(), versions + 2);
    assert_eq!(after["operations"][0], "OPTIMIZE");
    assert_eq!(after["operations"][1], "OPTIMIZE");
    // Every version, old ones included, still reads as delta-rs reads it.
    check_versions(&client, &after).await;
    let last = after["versions"].as_array().unwrap().last().unwrap();
    assert_eq!(last["rows"], before["versions"][versions - 1]["rows"]);
    assert_eq!(last["amount"], before["versions"][versions - 1]["amount"]);
    // Nothing left to compact: no new version.
    client.simple_query("OPTIMIZE events").await.unwrap();
    let again = read_with_delta_rs(lake.to_str().unwrap());
    assert_eq!(again["versions"].as_array().unwrap().len(), versions + 2);

    // Errors: a predicate on a data column, a table that is not Delta.
    let (code, message) = sql_error(&client, "OPTIMIZE events WHERE amount > 3").await;
    assert_eq!(code, "0A000", "{message}");
    client
        .simple_query(&format!(
            "CREATE TABLE plain STORED AS PARQUET LOCATION '{}/plain/' AS SELECT 1 AS x",
            dir.path().display()
        ))
        .await
        .unwrap();
    let (code, _) = sql_error(&client, "OPTIMIZE plain").await;
    assert_eq!(code, "0A000");
    let (code, _) = sql_error(&client, "OPTIMIZE nothing").await;
    assert_eq!(code, "42P01");
}

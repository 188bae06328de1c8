//! Writes: `CREATE TABLE … AS`, `INSERT INTO` and `INSERT OVERWRITE` into
//! partitioned Parquet on local disk and S3 — rows compared after every
//! write, file counts and sizes, untouched partitions byte-identical, nothing
//! left behind by a failed or killed write.

mod common;

use std::path::Path;

use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use common::{Server, TempDir, sql_error, tag_rows, text_rows};
use futures::TryStreamExt;

/// Every file below `dir`, relative path and size, sorted.
fn files(dir: &Path) -> Vec<(String, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, entry.metadata().unwrap().len()));
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The files of one partition folder.
fn partition_files(dir: &Path, folder: &str) -> Vec<(String, Vec<u8>)> {
    files(&dir.join(folder))
        .into_iter()
        .map(|(rel, _)| {
            (
                rel.clone(),
                std::fs::read(dir.join(folder).join(&rel)).unwrap(),
            )
        })
        .collect()
}

/// Events over five days: `id`, `amount`, `dt` (`2024-03-01` … `2024-03-05`).
const EVENTS: &str = "SELECT value AS id, value * 3 AS amount, \
     '2024-03-0' || CAST(1 + value % 5 AS VARCHAR) AS dt FROM generate_series(1, 20000)";

/// `n` rows of `id`, a 64-character hex `digest` (barely compressible) and
/// `k` in 0 and 1.
fn digests(n: u64) -> String {
    format!(
        "SELECT value AS id, md5(CAST(value AS VARCHAR)) || md5(CAST(-value AS VARCHAR)) AS digest, \
         value % 2 AS k FROM generate_series(1, {n})"
    )
}

const DAILY: &str = "SELECT dt, count(*), sum(amount) FROM events_pq GROUP BY dt ORDER BY dt";

#[tokio::test]
async fn ctas_insert_and_overwrite_partitioned_parquet() {
    let dir = TempDir::new("writes");
    let lake = dir.path().join("events_pq");
    let mut server = Server::start(&dir).await;
    let client = server.client().await;

    let created = tag_rows(
        &client,
        &format!(
            "CREATE TABLE events_pq STORED AS PARQUET PARTITIONED BY (dt) LOCATION '{}/' AS {EVENTS}",
            lake.display()
        ),
    )
    .await;
    assert_eq!(created, 20000);
    let expected = text_rows(
        &client,
        &format!("SELECT dt, count(*), sum(amount) FROM ({EVENTS}) GROUP BY dt ORDER BY dt"),
    )
    .await;
    assert_eq!(text_rows(&client, DAILY).await, expected);
    // One file per partition, nothing in staging.
    let written = files(&lake);
    assert_eq!(written.len(), 5, "{written:?}");
    for (i, (rel, _)) in written.iter().enumerate() {
        assert!(
            rel.starts_with(&format!("dt=2024-03-0{}/part-", i + 1)) && rel.ends_with(".parquet"),
            "{rel}"
        );
    }

    // EXPLAIN shows the write's plan and writes nothing.
    let plan = common::explain(
        &client,
        "INSERT INTO events_pq SELECT id, amount, dt FROM events_pq",
    )
    .await;
    assert!(plan.contains("FileWriteExec: parquet"), "{plan}");
    assert!(plan.contains("partitioned by [dt]"), "{plan}");
    assert_eq!(files(&lake), written);

    // With the scan split across both workers, the write runs on them: its
    // node sits in a stage of two tasks, each writing its own files.
    client
        .simple_query("SET distributed.file_scan_config_bytes_per_partition = 1")
        .await
        .unwrap();
    let copy = format!(
        "CREATE TABLE events_copy STORED AS PARQUET PARTITIONED BY (dt) LOCATION '{}/' \
         AS SELECT id, amount, dt FROM events_pq",
        dir.path().join("events_copy").display()
    );
    let plan = common::explain(&client, &copy).await;
    let stage = plan
        .lines()
        .position(|l| l.contains("Stage") && l.contains("── tasks=2"))
        .unwrap_or_else(|| panic!("no stage of two tasks: {plan}"));
    let write = plan
        .lines()
        .position(|l| l.contains("FileWriteExec"))
        .unwrap();
    assert!(
        write == stage + 1,
        "the write is not in the workers' stage: {plan}"
    );
    // Written by two workers, still one file per partition.
    assert_eq!(tag_rows(&client, &copy).await, 20000);
    assert_eq!(
        text_rows(
            &client,
            "SELECT dt, count(*), sum(amount) FROM events_copy GROUP BY dt ORDER BY dt"
        )
        .await,
        expected
    );
    assert_eq!(files(&dir.path().join("events_copy")).len(), 5);
    client
        .simple_query("RESET distributed.file_scan_config_bytes_per_partition")
        .await
        .unwrap();

    // INSERT INTO appends.
    let inserted = tag_rows(
        &client,
        "INSERT INTO events_pq SELECT id, amount, dt FROM events_pq WHERE dt = '2024-03-01'",
    )
    .await;
    assert_eq!(inserted, 4000);
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*) FROM events_pq WHERE dt = '2024-03-01'"
        )
        .await,
        vec![vec!["8000".to_string()]]
    );

    // INSERT OVERWRITE … PARTITION replaces that partition only.
    let untouched: Vec<_> = [
        "dt=2024-03-01",
        "dt=2024-03-03",
        "dt=2024-03-04",
        "dt=2024-03-05",
    ]
    .iter()
    .map(|f| partition_files(&lake, f))
    .collect();
    let replaced = tag_rows(
        &client,
        "INSERT OVERWRITE events_pq PARTITION (dt = '2024-03-02') \
         SELECT value, value FROM generate_series(1, 3)",
    )
    .await;
    assert_eq!(replaced, 3);
    assert_eq!(
        text_rows(
            &client,
            "SELECT id, amount, dt FROM events_pq WHERE dt = '2024-03-02' ORDER BY id"
        )
        .await,
        vec![
            vec!["1".to_string(), "1".into(), "2024-03-02".into()],
            vec!["2".to_string(), "2".into(), "2024-03-02".into()],
            vec!["3".to_string(), "3".into(), "2024-03-02".into()],
        ]
    );
    let after: Vec<_> = [
        "dt=2024-03-01",
        "dt=2024-03-03",
        "dt=2024-03-04",
        "dt=2024-03-05",
    ]
    .iter()
    .map(|f| partition_files(&lake, f))
    .collect();
    assert_eq!(
        untouched, after,
        "other partitions must stay byte-identical"
    );

    // Writes that cannot happen change nothing.
    let before = text_rows(&client, DAILY).await;
    let before_files = files(&lake);
    for (sql, code) in [
        // A column of the wrong type.
        (
            "INSERT INTO events_pq SELECT DATE '2024-01-01', 1, '2024-03-09'",
            "42804",
        ),
        ("INSERT INTO events_pq SELECT 1, 2", "42601"),
        ("INSERT INTO events_pq SELECT 1, 2, NULL", "22004"),
        // Fails halfway through the rows: division by zero.
        (
            "INSERT INTO events_pq SELECT value, 10 / (value - 15000), '2024-03-01' FROM generate_series(1, 20000)",
            "22012",
        ),
        (
            "INSERT INTO events_pq PARTITION (id = 1) SELECT 1, '2024-03-01'",
            "42703",
        ),
    ] {
        assert_eq!(sql_error(&client, sql).await.0, code, "{sql}");
    }
    assert_eq!(text_rows(&client, DAILY).await, before);
    assert_eq!(files(&lake), before_files);

    // A new table needs an empty location and a free name.
    let (code, message) = sql_error(
        &client,
        &format!(
            "CREATE TABLE other STORED AS PARQUET LOCATION '{}/' AS SELECT 1 AS a",
            lake.display()
        ),
    )
    .await;
    assert_eq!(code, "42P07", "{message}");
    assert!(message.contains("already holds files"), "{message}");
    let (code, _) = sql_error(
        &client,
        &format!(
            "CREATE TABLE events_pq STORED AS PARQUET LOCATION '{}/x/' AS SELECT 1 AS a",
            dir.path().display()
        ),
    )
    .await;
    assert_eq!(code, "42P07");
    // A CTAS that fails leaves no table and no folder.
    let failed = dir.path().join("failed");
    let (code, _) = sql_error(
        &client,
        &format!(
            "CREATE TABLE failed STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/' AS \
             SELECT 10 / (value - 15000) AS v, value % 7 AS k FROM generate_series(1, 20000)",
            failed.display()
        ),
    )
    .await;
    assert_eq!(code, "22012");
    assert!(!failed.exists(), "{:?}", files(&failed));
    assert_eq!(sql_error(&client, "SELECT * FROM failed").await.0, "42P01");
    // Read-only sources and views take no rows.
    client
        .simple_query("CREATE VIEW recent AS SELECT * FROM events_pq WHERE dt > '2024-03-03'")
        .await
        .unwrap();
    assert_eq!(
        sql_error(&client, "INSERT INTO recent SELECT * FROM recent")
            .await
            .0,
        "42809"
    );

    // The whole table replaced; it survives a restart.
    let replaced = tag_rows(
        &client,
        "INSERT OVERWRITE events_pq SELECT id, amount, dt FROM events_pq WHERE dt = '2024-03-05'",
    )
    .await;
    assert_eq!(replaced, 4000);
    let expected = table_rows(&[("2024-03-05", 4000)]);
    assert_eq!(
        text_rows(&client, "SELECT dt, count(*) FROM events_pq GROUP BY dt").await,
        expected
    );
    assert_eq!(files(&lake).len(), 1, "{:?}", files(&lake));
    drop(client);
    server.restart().await;
    let client = server.client().await;
    assert_eq!(
        text_rows(&client, "SELECT dt, count(*) FROM events_pq GROUP BY dt").await,
        expected
    );
}

fn table_rows(rows: &[(&str, u64)]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|(a, b)| vec![a.to_string(), b.to_string()])
        .collect()
}

#[tokio::test]
async fn one_file_per_partition_rolled_at_the_target_size() {
    let dir = TempDir::new("write-sizes");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    // 100 partitions written from 8 tasks: still one file each.
    client
        .simple_query("SET datafusion.execution.target_partitions = 8")
        .await
        .unwrap();
    let hundred = dir.path().join("hundred");
    tag_rows(
        &client,
        &format!(
            "CREATE TABLE hundred STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/' AS \
             SELECT value AS id, value % 100 AS k FROM generate_series(1, 100000)",
            hundred.display()
        ),
    )
    .await;
    let written = files(&hundred);
    assert_eq!(written.len(), 100, "{written:?}");
    let folders: std::collections::BTreeSet<_> = written
        .iter()
        .map(|(rel, _)| rel.split('/').next().unwrap().to_string())
        .collect();
    assert_eq!(folders.len(), 100);
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*), count(DISTINCT k), sum(id) FROM hundred"
        )
        .await,
        vec![vec![
            "100000".to_string(),
            "100".into(),
            "5000050000".into()
        ]]
    );

    // A partition larger than the target is rolled into files of about the
    // target size (hex digests barely compress).
    let rolled = dir.path().join("rolled");
    tag_rows(
        &client,
        &format!(
            "CREATE TABLE rolled STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/' \
             OPTIONS ('target_file_size' '1MB') AS {}",
            rolled.display(),
            digests(400000)
        ),
    )
    .await;
    let target = 1024 * 1024;
    for k in ["k=0", "k=1"] {
        let mut sizes: Vec<u64> = files(&rolled.join(k)).into_iter().map(|(_, s)| s).collect();
        sizes.sort();
        assert!(sizes.len() >= 4, "{k}: {sizes:?}");
        // All but the smallest (the partition's last file) are about the target.
        for size in &sizes[1..] {
            assert!(*size >= target / 2 && *size <= 2 * target, "{k}: {sizes:?}");
        }
    }
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*), count(DISTINCT digest) FROM rolled"
        )
        .await,
        vec![vec!["400000".to_string(), "400000".into()]]
    );
}

#[tokio::test]
async fn a_killed_write_leaves_the_table_as_it_was_or_fully_written() {
    let dir = TempDir::new("write-kill");
    let table_dir = dir.path().join("big");
    let mut server = Server::start(&dir).await;
    let client = server.client().await;
    tag_rows(
        &client,
        &format!(
            "CREATE TABLE big STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/' AS \
             SELECT value AS id, value % 10 AS k FROM generate_series(1, 1000)",
            table_dir.display()
        ),
    )
    .await;
    let before = files(&table_dir);
    // A long INSERT cancelled by statement_timeout changes nothing.
    client
        .simple_query("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    assert_eq!(
        sql_error(
            &client,
            "INSERT INTO big SELECT value, value % 10 FROM generate_series(1, 30000000)"
        )
        .await
        .0,
        "57014"
    );
    client
        .simple_query("RESET statement_timeout")
        .await
        .unwrap();
    assert_eq!(files(&table_dir), before);
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM big").await,
        vec![vec!["1000".to_string()]]
    );
    // A long INSERT, killed while it writes.
    let staging = table_dir.join("_vivace_staging");
    common::kill_while_writing(
        &mut server,
        "INSERT INTO big SELECT value, value % 10 FROM generate_series(1, 30000000)",
        &staging,
    )
    .await;
    // Staged files exist, but readers never list them.
    let client = server.client().await;
    let count = text_rows(&client, "SELECT count(*) FROM big").await[0][0].clone();
    assert!(
        count == "1000" || count == "30001000",
        "the table must read as before or fully written, not {count}"
    );
    if count == "1000" {
        assert_eq!(files(&table_dir), before);
    }
    assert!(!staging.exists(), "{:?}", files(&staging));
}

#[tokio::test]
async fn writes_to_s3_publish_by_copy_and_leave_no_staging() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let dir = TempDir::new("write-s3");
    let server = Server::start_with(&dir, &[], &[("LAKE_SECRET", SECRET_KEY)]).await;
    let client = server.client().await;
    let options = format!(
        "OPTIONS ('aws.endpoint' '{}', 'aws.region' 'us-east-1', \
         'aws.access_key_id' '{ACCESS_KEY}', 'aws.secret_access_key_env' 'LAKE_SECRET')",
        s3.endpoint
    );
    let created = tag_rows(
        &client,
        &format!("CREATE TABLE events_pq STORED AS PARQUET PARTITIONED BY (dt) LOCATION 's3://lake/events_pq/' {options} AS {EVENTS}"),
    )
    .await;
    assert_eq!(created, 20000);
    let expected = text_rows(
        &client,
        &format!("SELECT dt, count(*), sum(amount) FROM ({EVENTS}) GROUP BY dt ORDER BY dt"),
    )
    .await;
    assert_eq!(text_rows(&client, DAILY).await, expected);
    let keys = |store: std::sync::Arc<dyn object_store::ObjectStore>| async move {
        let mut keys: Vec<(String, u64)> = store
            .list(None)
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    };
    let listed = keys(s3.store("lake")).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|(k, _)| k.starts_with("events_pq/dt=2024-03-0"))
    );

    tag_rows(
        &client,
        "INSERT OVERWRITE events_pq PARTITION (dt = '2024-03-02') SELECT value, value FROM generate_series(1, 3)",
    )
    .await;
    let after = keys(s3.store("lake")).await;
    let others = |keys: &[(String, u64)]| -> Vec<(String, u64)> {
        keys.iter()
            .filter(|(k, _)| !k.contains("dt=2024-03-02"))
            .cloned()
            .collect()
    };
    assert_eq!(others(&listed), others(&after));
    assert_eq!(after.len(), 5, "{after:?}");
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*) FROM events_pq WHERE dt = '2024-03-02'"
        )
        .await,
        vec![vec!["3".to_string()]]
    );
}

#[tokio::test]
async fn a_read_only_server_refuses_writes_and_touches_nothing() {
    let dir = TempDir::new("write-read-only");
    let server = Server::start_with(&dir, &["--read-only"], &[]).await;
    let client = server.client().await;
    let target = dir.path().join("t");
    let (code, message) = sql_error(
        &client,
        &format!(
            "CREATE TABLE t STORED AS PARQUET LOCATION '{}/' AS SELECT 1 AS a",
            target.display()
        ),
    )
    .await;
    assert_eq!(code, "42501", "{message}");
    assert!(!target.exists());
    let events = dir.path().join("events");
    common::data::write_partitioned_parquet(&events);
    client
        .simple_query(&common::data::create_events_sql(&format!(
            "{}/",
            events.display()
        )))
        .await
        .unwrap();
    let before = files(&events);
    assert_eq!(
        sql_error(&client, "INSERT INTO events SELECT * FROM events")
            .await
            .0,
        "42501"
    );
    assert_eq!(files(&events), before);
}

/// psql as `user` with `password`: (stdout, stderr, success).
fn psql_as(port: u16, user: &str, password: &str, sql: &str) -> (String, String, bool) {
    common::credentials::psql_with_password(
        &format!("host=127.0.0.1 port={port} user={user} dbname=vivace"),
        password,
        sql,
    )
}

#[tokio::test]
async fn only_users_granted_can_write_may_write() {
    let dir = TempDir::new("write-users");
    let verifier = |user: &str, password: &str| {
        let line = common::credentials::users_line(user, password);
        line.split_once(" = ").unwrap().1.to_string()
    };
    let config = dir.path().join("vivace.toml");
    std::fs::write(
        &config,
        format!(
            "[users]\nanalyst = {}\n[users.loader]\npassword = {}\ncan_write = true\n",
            verifier("analyst", "a-pass"),
            verifier("loader", "l-pass")
        ),
    )
    .unwrap();
    let server = Server::start_with(&dir, &["--config", config.to_str().unwrap()], &[]).await;
    let target = dir.path().join("t");
    let ctas = format!(
        "CREATE TABLE t STORED AS PARQUET LOCATION '{}/' AS SELECT 1 AS a",
        target.display()
    );
    let (_, err, ok) = psql_as(server.port, "analyst", "a-pass", &ctas);
    assert!(!ok);
    assert!(
        err.contains("permission denied") && err.contains("can_write"),
        "{err}"
    );
    assert!(!target.exists());
    let (out, err, ok) = psql_as(server.port, "loader", "l-pass", &ctas);
    assert!(ok, "{err}");
    assert_eq!(out, "SELECT 1");
    let (_, err, ok) = psql_as(server.port, "analyst", "a-pass", "INSERT INTO t SELECT 2");
    assert!(!ok && err.contains("permission denied"), "{err}");
    let (out, err, ok) = psql_as(server.port, "analyst", "a-pass", "SELECT count(*) FROM t");
    assert!(ok, "{err}");
    assert_eq!(out, "1");
}

#[tokio::test]
async fn concurrent_inserts_all_land_and_unwritable_locations_fail_cleanly() {
    let dir = TempDir::new("write-concurrent");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let lake = dir.path().join("c");
    tag_rows(
        &client,
        &format!(
            "CREATE TABLE c STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/' AS \
             SELECT value AS id, value % 3 AS k FROM generate_series(1, 300)",
            lake.display()
        ),
    )
    .await;
    let mut inserts = vec![];
    for i in 0..4 {
        let writer = server.client().await;
        inserts.push(tokio::spawn(async move {
            let sql = format!(
                "INSERT INTO c SELECT value + {}, value % 3 FROM generate_series(1, 1000)",
                (i + 1) * 10000
            );
            tag_rows(&writer, &sql).await
        }));
    }
    for insert in inserts {
        assert_eq!(insert.await.unwrap(), 1000);
    }
    assert_eq!(
        text_rows(&client, "SELECT count(*), count(DISTINCT id) FROM c").await,
        vec![vec!["4300".to_string(), "4300".into()]]
    );
    // Five writes, three partitions: fifteen files.
    assert_eq!(files(&lake).len(), 15, "{:?}", files(&lake));
    // A sort column that does not exist is refused when the table is registered.
    let (code, message) = sql_error(
        &client,
        &format!(
            "CREATE EXTERNAL TABLE c2 STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/' OPTIONS ('sorted_by' 'nope')",
            lake.display()
        ),
    )
    .await;
    assert_eq!(code, "42P16", "{message}");
    assert!(message.contains("sorted_by"), "{message}");

    // A location below a file cannot be written: 58030, nothing registered.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a folder").unwrap();
    let (code, message) = sql_error(
        &client,
        &format!(
            "CREATE TABLE u STORED AS PARQUET LOCATION '{}/u/' AS SELECT 1 AS a",
            blocker.display()
        ),
    )
    .await;
    assert_eq!(code, "58030", "{message}");
    assert_eq!(sql_error(&client, "SELECT * FROM u").await.0, "42P01");
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "not a folder");
}

#[tokio::test]
async fn the_memory_limit_bounds_buffered_row_groups_not_file_counts() {
    let dir = TempDir::new("write-memory");
    let server = Server::start_with(&dir, &["--memory-limit", "8M"], &[]).await;
    let client = server.client().await;
    let out = dir.path().join("m");
    // Two partitions of ~400k rows (~30 MB of digests each) under an 8 MB
    // pool: row groups (122,880 rows at most, ~9 MB each) cannot be held whole.
    tag_rows(
        &client,
        &format!(
            "CREATE TABLE m STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/' \
             OPTIONS ('target_file_size' '1GB') AS {}",
            out.display(),
            digests(800000)
        ),
    )
    .await;
    let written = files(&out);
    assert_eq!(written.len(), 2, "{written:?}");
    for (rel, _) in &written {
        let file = std::fs::File::open(out.join(rel)).unwrap();
        let reader = datafusion::parquet::file::reader::SerializedFileReader::new(file).unwrap();
        use datafusion::parquet::file::reader::FileReader;
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), 400000);
        // 122,880 rows a row group would make 4; the pool makes more.
        assert!(
            meta.num_row_groups() > 4,
            "{rel}: {} row groups: the buffered ones outgrew the pool",
            meta.num_row_groups()
        );
    }
    assert_eq!(
        text_rows(&client, "SELECT count(*), sum(id) FROM m").await,
        vec![vec!["800000".to_string(), "320000400000".into()]]
    );
}

#[tokio::test]
async fn partition_values_with_reserved_characters_round_trip() {
    let dir = TempDir::new("write-escape");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    tag_rows(
        &client,
        &format!(
            "CREATE TABLE esc STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/' AS \
             SELECT * FROM (VALUES (1, 'a/b'), (2, '100%'), (3, 'x y=z:w'), (4, 'São Paulo'), (5, 'q?#')) AS t(id, k)",
            dir.path().join("esc").display()
        ),
    )
    .await;
    let all = "SELECT id, k FROM esc ORDER BY id";
    let expected = vec![
        vec!["1".to_string(), "a/b".into()],
        vec!["2".to_string(), "100%".into()],
        vec!["3".to_string(), "x y=z:w".into()],
        vec!["4".to_string(), "São Paulo".into()],
        vec!["5".to_string(), "q?#".into()],
    ];
    assert_eq!(text_rows(&client, all).await, expected);
    // Five folders, the slash escaped rather than nesting folders.
    assert_eq!(files(&dir.path().join("esc")).len(), 5);
    tag_rows(
        &client,
        "INSERT OVERWRITE esc PARTITION (k = 'a/b') SELECT 10",
    )
    .await;
    assert_eq!(
        text_rows(&client, "SELECT id FROM esc WHERE k = 'a/b'").await,
        vec![vec!["10".to_string()]]
    );
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM esc").await[0][0],
        "5"
    );
    // PARTITION (k) with no value replaces only the partitions written.
    tag_rows(
        &client,
        "INSERT OVERWRITE esc PARTITION (k) SELECT 20, '100%' UNION ALL SELECT 21, 'new'",
    )
    .await;
    assert_eq!(
        text_rows(&client, "SELECT id, k FROM esc ORDER BY id").await,
        vec![
            vec!["3".to_string(), "x y=z:w".into()],
            vec!["4".to_string(), "São Paulo".into()],
            vec!["5".to_string(), "q?#".into()],
            vec!["10".to_string(), "a/b".into()],
            vec!["20".to_string(), "100%".into()],
            vec!["21".to_string(), "new".into()],
        ]
    );
}

#[tokio::test]
async fn csv_and_json_tables_are_written_too() {
    let dir = TempDir::new("write-text");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let expected = text_rows(
        &client,
        &format!("SELECT dt, count(*), sum(amount) FROM ({EVENTS}) GROUP BY dt ORDER BY dt"),
    )
    .await;
    for format in ["csv", "json"] {
        let out = dir.path().join(format);
        let created = tag_rows(
            &client,
            &format!(
                "CREATE TABLE events_{format} STORED AS {format} PARTITIONED BY (dt) LOCATION '{}/' AS {EVENTS}",
                out.display()
            ),
        )
        .await;
        assert_eq!(created, 20000);
        assert_eq!(
            text_rows(
                &client,
                &format!(
                    "SELECT dt, count(*), sum(amount) FROM events_{format} GROUP BY dt ORDER BY dt"
                )
            )
            .await,
            expected
        );
        let written = files(&out);
        assert_eq!(written.len(), 5, "{written:?}");
        assert!(
            written
                .iter()
                .all(|(rel, _)| rel.ends_with(&format!(".{format}")))
        );
        let first = std::fs::read_to_string(out.join(&written[0].0)).unwrap();
        let line = first.lines().next().unwrap();
        match format {
            "csv" => assert_eq!(line, "id,amount"),
            _ => assert!(line.starts_with("{\"id\":"), "{line}"),
        }
    }
}

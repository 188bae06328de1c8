//! One statement cannot crash or freeze the server. Long flat chains are
//! planned (or refused with 54001 past a documented depth), deep nesting is
//! refused before the parser can spin on it, and while a slow statement plans,
//! other clients are served and the statement itself obeys statement_timeout
//! and CancelRequest; while a join emits billions of rows, other sessions'
//! queries still run. The harness fails the test if the log shows a panic.

mod common;

use std::time::Duration;

use common::{Server, TempDir, sql_error, table, text_rows};

/// `SELECT 1 + 1 + …` with `terms` ones.
fn sum_of_ones(terms: usize) -> String {
    format!("SELECT 1{}", " + 1".repeat(terms - 1))
}

/// A 40-column, one-row table for expressions over many columns.
fn wide_table() -> String {
    let columns: Vec<String> = (1..=40).map(|i| format!("c{i}")).collect();
    let values = vec!["1"; 40].join(", ");
    format!("(VALUES ({values})) t({})", columns.join(", "))
}

/// `CASE WHEN c1 = 1 THEN CASE WHEN c2 = 1 THEN … c40 … ELSE 0 END … END`:
/// `depth` CASEs nested in THEN branches, each reading another column.
fn nested_case(depth: usize) -> String {
    let mut expr = String::new();
    for i in 1..=depth {
        expr += &format!("CASE WHEN c{i} = 1 THEN ");
    }
    expr += "c40";
    expr += &" ELSE 0 END".repeat(depth);
    expr
}

#[tokio::test]
async fn long_chains_plan_and_deep_nesting_is_refused() {
    let dir = TempDir::new("robust-shapes");
    let server = Server::start(&dir).await;
    let client = server.client().await;

    // Long flat chains are planned.
    assert_eq!(
        text_rows(&client, &sum_of_ones(500)).await,
        table(&[&["500"]])
    );
    let ors: Vec<String> = (0..2_000).map(|i| format!("a = {i}")).collect();
    let sql = format!(
        "SELECT count(*) FROM (VALUES (1), (1999), (5000)) t(a) WHERE {}",
        ors.join(" OR ")
    );
    assert_eq!(text_rows(&client, &sql).await, table(&[&["2"]]));
    let ands: Vec<String> = (0..2_000).map(|i| format!("a <> {}", i * 2)).collect();
    let sql = format!(
        "SELECT a FROM (VALUES (1), (2), (4001)) t(a) WHERE {} ORDER BY a",
        ands.join(" AND ")
    );
    assert_eq!(text_rows(&client, &sql).await, table(&[&["1"], &["4001"]]));
    let selects: Vec<String> = (0..1_000).map(|i| format!("SELECT {i} AS n")).collect();
    let sql = format!(
        "SELECT count(*), sum(n), min(n), max(n) FROM ({}) u",
        selects.join(" UNION ALL ")
    );
    assert_eq!(
        text_rows(&client, &sql).await,
        table(&[&["1000", "499500", "0", "999"]])
    );
    // CASEs nested in THEN branches, up to the limit; an IF / ELSE IF chain of
    // 30 is one CASE.
    assert_eq!(
        text_rows(
            &client,
            &format!("SELECT {} FROM {}", nested_case(12), wide_table())
        )
        .await,
        table(&[&["1"]])
    );
    let mut chain = String::new();
    for i in 1..=30 {
        chain += &format!("CASE WHEN c{i} = 2 THEN {i} ELSE ");
    }
    chain += "-1";
    chain += &" END".repeat(30);
    assert_eq!(
        text_rows(&client, &format!("SELECT {chain} FROM {}", wide_table())).await,
        table(&[&["-1"]])
    );

    // Past the limits: PostgreSQL's SQLSTATEs, at once.
    for (sql, code) in [
        (sum_of_ones(2_000), "54001"),
        (
            format!("SELECT {}1{}", "ARRAY[".repeat(50), "]".repeat(50)),
            "54000",
        ),
        (
            format!("SELECT {}1{}", "(".repeat(60), ")".repeat(60)),
            "54001",
        ),
        (
            format!("SELECT {}1{}", "CAST(".repeat(20), " AS INT)".repeat(20)),
            "54001",
        ),
        (
            format!("SELECT {} FROM {}", nested_case(13), wide_table()),
            "54001",
        ),
    ] {
        let (got, message) = sql_error(&client, &sql).await;
        assert_eq!(got, code, "{message}");
    }
    assert_eq!(text_rows(&client, "SELECT 1").await, table(&[&["1"]]));
}

#[tokio::test]
async fn a_slow_statement_freezes_nobody_and_obeys_timeouts_and_cancels() {
    let dir = TempDir::new("robust-slow");
    let server = Server::start(&dir).await;
    // Three expressions 999 levels deep: seconds of planning in a debug build
    // (DataFusion names and types every subtree of each).
    let slow = format!(
        "SELECT ({}) AS a, ({}) AS b, ({}) AS c",
        &sum_of_ones(999)[7..],
        &sum_of_ones(999)[7..],
        &sum_of_ones(999)[7..]
    );
    let busy = server.client().await;
    let slow_sql = slow.clone();
    let running = tokio::spawn(async move { text_rows(&busy, &slow_sql).await });

    // Meanwhile a new client connects and is answered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = server.client().await;
    assert_eq!(text_rows(&other, "SELECT 40 + 2").await, table(&[&["42"]]));
    assert!(
        !running.is_finished(),
        "the slow statement finished first; it should take seconds"
    );

    // statement_timeout stops a statement while it is being planned.
    let timed = server.client().await;
    timed
        .simple_query("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let (code, message) = sql_error(&timed, &slow).await;
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("statement timeout"), "{message}");

    // So does a CancelRequest.
    let cancelled = server.client().await;
    let token = cancelled.cancel_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let (code, message) = sql_error(&cancelled, &slow).await;
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("user request"), "{message}");

    // The slow statement itself completes with the right answer.
    assert_eq!(running.await.unwrap(), table(&[&["999", "999", "999"]]));
}

/// A join whose every key is shared by 100,000 rows on each side emits 40
/// billion rows (hours of work). Its tasks used to keep the query runtime's
/// threads until they ended, so no other session's query ran, not even
/// `SELECT 1`: now each join yields every 128 batches it emits. The bound
/// below is a liveness check (a frozen server never answers), not a timing.
#[tokio::test(flavor = "multi_thread")]
async fn a_join_that_emits_billions_of_rows_freezes_nobody() {
    let dir = TempDir::new("robust-join");
    let server = Server::start(&dir).await;
    let admin = server.client().await;
    admin
        .simple_query(&format!(
            "CREATE TABLE pairs STORED AS PARQUET PARTITIONED BY (k) LOCATION '{}/pairs/' \
             AS SELECT v, v % 4 AS k FROM generate_series(1, 400000) AS t(v)",
            dir.path().display()
        ))
        .await
        .unwrap();
    let heavy = server.client().await;
    heavy
        .simple_query(
            "SET application_name = 'heavy'; \
             SET distributed.file_scan_config_bytes_per_partition = 262144; \
             SET datafusion.optimizer.hash_join_single_partition_threshold = 0; \
             SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0",
        )
        .await
        .unwrap();
    let join = tokio::spawn(async move {
        sql_error(
            &heavy,
            "SELECT count(*) FROM pairs a JOIN pairs b ON a.k = b.k WHERE a.v * b.v > 0",
        )
        .await
    });
    let answered_within = Duration::from_secs(60);
    let ask = |sql: &'static str| {
        let server = &server;
        async move {
            let client = server.client().await;
            tokio::time::timeout(answered_within, text_rows(&client, sql))
                .await
                .unwrap_or_else(|_| panic!("{sql}: no answer while the join runs"))
        }
    };
    // Once the join is producing rows, other sessions are answered.
    let deadline = std::time::Instant::now() + answered_within;
    loop {
        let state = ask("SELECT rows_scanned > 0 FROM system.queries \
             WHERE application_name = 'heavy' AND state = 'running'")
        .await;
        if state == table(&[&["t"]]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the join never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ask("SELECT 40 + 2").await, table(&[&["42"]]));
    assert_eq!(
        ask("SELECT count(*) FROM pairs").await,
        table(&[&["400000"]])
    );
    assert_eq!(
        ask("SELECT count(*) > 0 FROM system.nodes").await,
        table(&[&["t"]])
    );
    assert!(!join.is_finished(), "the join ended; it should take hours");
    // And the join itself can still be cancelled.
    let cancelled = ask("SELECT vivace.cancel_query(query_id) FROM system.queries \
         WHERE application_name = 'heavy' AND state = 'running'")
    .await;
    assert_eq!(cancelled, table(&[&["t"]]));
    let (code, message) = join.await.unwrap();
    assert_eq!(code, "57014", "{message}");
}

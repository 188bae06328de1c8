//! One statement cannot crash or freeze the server. Long flat chains are
//! planned (or refused with 54001 past a documented depth), deep nesting is
//! refused before the parser can spin on it, and while a slow statement plans,
//! other clients are served and the statement itself obeys statement_timeout
//! and CancelRequest. The harness fails the test if the log shows a panic.

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

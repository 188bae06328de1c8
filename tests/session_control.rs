//! Stopping queries: CancelRequest and statement_timeout end a running query with
//! SQLSTATE 57014, and the session and server carry on.

mod common;

use std::time::{Duration, Instant};

use common::{Server, TempDir, sql_error, text_rows};
use tokio_postgres::NoTls;

/// Several minutes of work if nothing stops it.
const LONG_QUERY: &str =
    "SELECT count(*) FROM generate_series(1, 3000000000) AS t(x) WHERE x % 7 = 3";

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let dir = TempDir::new("cancel");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let started = Instant::now();
    let (code, message) = sql_error(&client, LONG_QUERY).await;
    canceller.await.unwrap();
    assert_eq!(code, "57014", "{message}");
    assert_eq!(message, "canceling statement due to user request");
    // Stopped, not finished: the query needs minutes.
    assert!(started.elapsed() < Duration::from_secs(30));
    // The same session goes on, and so does the server.
    assert_eq!(text_rows(&client, "SELECT 41 + 1").await, [["42"]]);
    let other = server.client().await;
    assert_eq!(text_rows(&other, "SELECT 'ok'").await, [["ok"]]);
}

#[tokio::test]
async fn statement_timeout_stops_a_query_and_is_per_session() {
    let dir = TempDir::new("timeout");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    client
        .simple_query("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SHOW statement_timeout").await,
        [["300ms"]]
    );
    let (code, message) = sql_error(&client, LONG_QUERY).await;
    assert_eq!(code, "57014", "{message}");
    assert_eq!(message, "canceling statement due to statement timeout");
    // Short statements still run under the timeout.
    assert_eq!(text_rows(&client, "SELECT 1").await, [["1"]]);
    // Another session does not inherit the setting.
    let other = server.client().await;
    assert_eq!(text_rows(&other, "SHOW statement_timeout").await, [["0"]]);
    // The extended protocol is covered too.
    let err = client.query(LONG_QUERY, &[]).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"));
    let (code, _) = sql_error(&client, "SET statement_timeout = 'soon'").await;
    assert_eq!(code, "22023");
}

/// The server's settings, as configured from flags, variables and defaults,
/// are shown read-only in every session, and RESET restores a session's own.
#[tokio::test]
async fn server_settings_are_shown_and_read_only() {
    let dir = TempDir::new("server-settings");
    let server = Server::start_with(
        &dir,
        &["--retry-policy", "none"],
        &[("VIVACE_MEMORY_LIMIT", "512M")],
    )
    .await;
    let client = server.client().await;
    assert_eq!(
        text_rows(&client, "SHOW vivace.server.retry_policy").await,
        [["none"]]
    );
    assert_eq!(
        text_rows(&client, "SHOW vivace.server.memory_limit").await,
        [["512M"]]
    );
    assert_eq!(
        text_rows(&client, "SHOW vivace.server.demo_scale_factor").await,
        [["0.01"]]
    );
    let all = text_rows(&client, "SHOW ALL").await;
    assert!(
        all.iter().any(|row| row[0] == "vivace.server.listen"),
        "{all:?}"
    );
    let (code, message) = sql_error(&client, "SET vivace.server.workers = 3").await;
    assert_eq!(code, "55P02", "{message}");
    // A session's own settings go back to what it started with.
    client
        .batch_execute("SET statement_timeout = '5s'; SET application_name = 'x'")
        .await
        .unwrap();
    client
        .batch_execute("RESET statement_timeout")
        .await
        .unwrap();
    assert_eq!(text_rows(&client, "SHOW statement_timeout").await, [["0"]]);
    assert_eq!(text_rows(&client, "SHOW application_name").await, [["x"]]);
    client
        .batch_execute("SET datafusion.execution.batch_size = 100; RESET ALL")
        .await
        .unwrap();
    assert_eq!(text_rows(&client, "SHOW application_name").await, [[""]]);
    assert_eq!(
        text_rows(&client, "SHOW datafusion.execution.batch_size").await,
        [["8192"]]
    );
}

/// A session plans with a snapshot of its state, and a prepared statement
/// that reads no table keeps its plan; every execution still sees the time
/// of its own start, and kept plans give the same rows each time.
#[tokio::test]
async fn statements_run_again_see_the_time_of_their_own_start() {
    let dir = TempDir::new("rerun");
    let server = Server::start(&dir).await;
    let client = server.client().await;
    let constant = client.prepare("SELECT 1 + 1, 'a' || 'b'").await.unwrap();
    for _ in 0..3 {
        let row = client.query_one(&constant, &[]).await.unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, String>(1)),
            (2, "ab".to_string())
        );
    }
    let now = client.prepare("SELECT CAST(now() AS TEXT)").await.unwrap();
    let mut prepared = Vec::new();
    let mut simple = Vec::new();
    for _ in 0..2 {
        prepared.push(
            client
                .query_one(&now, &[])
                .await
                .unwrap()
                .get::<_, String>(0),
        );
        simple.push(text_rows(&client, "SELECT CAST(now() AS TEXT)").await[0][0].clone());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(prepared[1] > prepared[0], "{prepared:?}");
    assert!(simple[1] > simple[0], "{simple:?}");
    assert!(simple[0] > prepared[0], "{prepared:?} {simple:?}");
}

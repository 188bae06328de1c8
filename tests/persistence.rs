//! Catalog definitions survive restarts and `kill -9`.

mod common;

use common::data;
use common::{Server, TempDir, table_names, text_rows};

#[tokio::test]
async fn definitions_survive_kill_9() {
    let dir = TempDir::new("persist");
    let root = dir.path().join("events");
    data::write_partitioned_parquet(&root);
    let csv = dir.path().join("csv");
    data::write_csv(&csv);
    let mut server = Server::start(&dir).await;
    let client = server.client().await;
    client
        .simple_query(&data::create_events_sql(&format!("{}/", root.display())))
        .await
        .unwrap();
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE ev_csv STORED AS CSV LOCATION '{}/'",
            csv.display()
        ))
        .await
        .unwrap();
    let query = "SELECT e.dt, count(*) FROM events e JOIN ev_csv c ON e.user_id = c.user_id \
                 AND e.amount = c.amount AND e.dt = c.dt GROUP BY e.dt ORDER BY e.dt";
    let before = text_rows(&client, query).await;
    assert_eq!(before.len(), 3);
    let ddl_before = text_rows(&client, "SHOW CREATE TABLE events").await;

    server.restart().await; // SIGKILL, then start again on the same data dir
    let client = server.client().await;
    assert_eq!(text_rows(&client, query).await, before);
    assert_eq!(
        text_rows(&client, "SHOW CREATE TABLE events").await,
        ddl_before
    );

    client.simple_query("DROP TABLE ev_csv").await.unwrap();
    server.restart().await;
    let client = server.client().await;
    let names = table_names(&client).await;
    assert_eq!(names, vec!["events".to_string()]);
}

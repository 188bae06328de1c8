//! Tables on a real S3-compatible server (moto), credentials by environment
//! variable name, never shown back.

mod common;

use common::data;
use common::s3::{S3Server, SECRET_KEY};
use common::{Server, TempDir, rows, sql_error, text_rows};

#[tokio::test]
async fn s3_partitioned_parquet_with_secret_by_reference() {
    let s3 = S3Server::start();
    s3.put_events("lake").await;
    let dir = TempDir::new("s3");
    let server = Server::start_with(&dir, &[], &[("LAKE_SECRET", SECRET_KEY)]).await;
    let client = server.client().await;
    let create = s3.create_events_sql();
    client.simple_query(&create).await.unwrap();
    let daily = "SELECT dt, count(*), sum(amount) FROM events WHERE dt >= '2024-01-02' GROUP BY dt ORDER BY dt";
    assert_eq!(
        text_rows(&client, daily).await,
        data::expected_daily_totals("2024-01-02")
    );
    let plan = text_rows(&client, &format!("EXPLAIN {daily}"))
        .await
        .concat()
        .join("\n");
    assert!(!plan.contains("dt=2024-01-01"), "{plan}");

    // The secret is stored by reference only and never printed.
    let ddl = rows(&client, "SHOW CREATE TABLE events").await[0][1]
        .clone()
        .unwrap();
    assert!(
        ddl.contains("'aws.secret_access_key_env' 'LAKE_SECRET'"),
        "{ddl}"
    );
    assert!(!ddl.contains(SECRET_KEY));
    let catalog = std::fs::read(server.data_dir.join("catalog.db")).unwrap();
    assert!(!String::from_utf8_lossy(&catalog).contains(SECRET_KEY));

    // A variable that is not set is a clear option error, and nothing is stored.
    let (code, message) = sql_error(
        &client,
        &create
            .replace("TABLE events", "TABLE events2")
            .replace("LAKE_SECRET", "NOT_SET_ANYWHERE"),
    )
    .await;
    assert_eq!(code, "22023");
    assert!(message.contains("NOT_SET_ANYWHERE"), "{message}");
    // A prefix with no objects.
    let (code, _) = sql_error(
        &client,
        &create
            .replace("TABLE events", "TABLE events3")
            .replace("s3://lake/events/", "s3://lake/nothing-here/"),
    )
    .await;
    assert_eq!(code, "58P01");
    assert_eq!(text_rows(&client, "SHOW TABLES").await.len(), 1);
    assert!(!server.log_text().contains(SECRET_KEY));
}

/// Remote worker processes scan S3 tables too: the coordinator tells them which
/// store to open (endpoint, region, the *name* of the credential variable) and
/// each worker reads the credential from its own environment.
#[tokio::test]
async fn remote_workers_scan_s3_with_their_own_credentials() {
    use common::cluster::{Cluster, WorkerProcess};

    let s3 = S3Server::start();
    s3.put_events("lake").await;
    let env = [("LAKE_SECRET", SECRET_KEY)];
    let cluster = Cluster::start_with_env("s3-cluster", &[], &env).await;
    let _w1 = WorkerProcess::start_with_env(
        &cluster.dir,
        cluster.cluster_port,
        &cluster.secret_file,
        &env,
    );
    let _w2 = WorkerProcess::start_with_env(
        &cluster.dir,
        cluster.cluster_port,
        &cluster.secret_file,
        &env,
    );
    cluster.wait_for_workers(2).await;
    let client = cluster.server.client().await;
    client.simple_query(&s3.create_events_sql()).await.unwrap();
    // Split the scan per file so both workers read from S3.
    client
        .simple_query("SET distributed.file_scan_config_bytes_per_partition = 1")
        .await
        .unwrap();
    let daily = "SELECT dt, count(*), sum(amount) FROM events WHERE dt >= '2024-01-01' GROUP BY dt ORDER BY dt";
    let plan = text_rows(&client, &format!("EXPLAIN {daily}"))
        .await
        .concat()
        .join("\n");
    assert!(
        plan.contains("tasks=2"),
        "the scan was not split across the workers:\n{plan}"
    );
    assert_eq!(
        text_rows(&client, daily).await,
        data::expected_daily_totals("2024-01-01")
    );
    assert!(!cluster.server.log_text().contains(SECRET_KEY));
}

//! A coordinator and separate `vivace worker` processes on loopback: registration
//! and drop-out, secret enforcement, and TPC-H answers equal to single-process
//! execution.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, WorkerProcess, split_finely};
use common::{Server, TempDir, text_rows};

#[tokio::test]
async fn workers_register_drop_out_and_join() {
    let cluster = Cluster::start("dist-members", &[]).await;
    let client = cluster.server.client().await;
    let coordinator = text_rows(
        &client,
        "SELECT node_id, role, state FROM system.nodes WHERE role = 'coordinator'",
    )
    .await;
    assert_eq!(
        coordinator,
        vec![vec![
            "coordinator".to_string(),
            "coordinator".into(),
            "active".into()
        ]]
    );

    let mut a = cluster.worker();
    let b = cluster.worker();
    let mut expected = vec![a.port, b.port];
    expected.sort();
    assert_eq!(cluster.wait_for_workers(2).await, expected);

    a.kill(); // stops heartbeating: dropped within the expiry window
    assert_eq!(cluster.wait_for_workers(1).await, vec![b.port]);

    let c = cluster.worker(); // a new worker joins
    let mut expected = vec![b.port, c.port];
    expected.sort();
    assert_eq!(cluster.wait_for_workers(2).await, expected);
}

#[tokio::test]
async fn a_worker_with_the_wrong_secret_is_refused() {
    let cluster = Cluster::start("dist-secret", &[]).await;
    let wrong = cluster.dir.path().join("wrong-secret");
    std::fs::write(&wrong, "not-the-cluster-secret-at-all").unwrap();
    let _intruder = WorkerProcess::start(&cluster.dir, cluster.cluster_port, &wrong);
    let _good = cluster.worker();
    tokio::time::sleep(Duration::from_secs(5)).await; // two heartbeat rounds
    assert_eq!(cluster.wait_for_workers(1).await, vec![_good.port]);
}

/// Run all 22 TPC-H queries on a distributed cluster (2 worker processes), on two
/// embedded workers (called in-process) and on a single-process coordinator
/// (`--workers 0`) over the same generated data.
#[tokio::test]
async fn tpch_answers_match_single_process_execution() {
    let demo = ["--demo", "--demo-scale-factor", "0.01"];
    let cluster = Cluster::start("dist-tpch", &demo).await;
    let _w1 = cluster.worker();
    let _w2 = cluster.worker();
    cluster.wait_for_workers(2).await;
    let single_dir = TempDir::new("dist-tpch-single");
    let single = Server::start_with(
        &single_dir,
        &["--workers", "0", "--demo", "--demo-scale-factor", "0.01"],
        &[],
    )
    .await;
    let embedded_dir = TempDir::new("dist-tpch-embedded");
    let embedded = Server::start_with(
        &embedded_dir,
        &["--workers", "2", "--demo", "--demo-scale-factor", "0.01"],
        &[],
    )
    .await;

    let distributed = cluster.server.client().await;
    let in_process = embedded.client().await;
    let local = single.client().await;
    // The demo files are a few MB: split scans finer than the 16 MiB default so
    // every stage really runs on several workers.
    for client in [&distributed, &in_process] {
        client
            .simple_query("SET distributed.file_scan_config_bytes_per_partition = 262144")
            .await
            .unwrap();
    }
    // Exchanges go uncompressed unless a session asks for a codec.
    assert_eq!(
        text_rows(&distributed, "SHOW distributed.compression").await,
        vec![vec!["none".to_string()]]
    );
    assert_eq!(
        text_rows(
            &distributed,
            "SHOW distributed.file_scan_config_bytes_per_partition"
        )
        .await,
        vec![vec!["262144".to_string()]]
    );
    // Distributed sessions broadcast build sides up to 32 MiB; a single process
    // keeps DataFusion's 1 MiB.
    for (client, bytes) in [
        (&distributed, "33554432"),
        (&in_process, "33554432"),
        (&local, "1048576"),
    ] {
        assert_eq!(
            text_rows(
                client,
                "SHOW datafusion.optimizer.hash_join_single_partition_threshold"
            )
            .await,
            vec![vec![bytes.to_string()]]
        );
    }
    for client in [&distributed, &in_process] {
        let plan = text_rows(
            client,
            "EXPLAIN SELECT l_returnflag, count(*) FROM lineitem GROUP BY 1",
        )
        .await
        .concat()
        .join("\n");
        assert!(
            plan.contains("DistributedExec") && plan.contains("tasks=2"),
            "the cluster did not plan a distributed query:\n{plan}"
        );
    }

    for n in 1..=22 {
        let q = format!("q{n}");
        let sql =
            std::fs::read_to_string(format!("{}/tests/tpch/{q}.sql", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        let expected = text_rows(&local, &sql).await;
        assert!(!expected.is_empty(), "{q} returned no rows");
        assert_eq!(text_rows(&distributed, &sql).await, expected, "{q} differs");
        assert_eq!(
            text_rows(&in_process, &sql).await,
            expected,
            "{q} differs on embedded workers"
        );
    }

    // A session may still compress its exchanges.
    distributed
        .simple_query("SET distributed.compression = 'lz4'")
        .await
        .unwrap();
    for q in ["q3", "q18"] {
        let sql =
            std::fs::read_to_string(format!("{}/tests/tpch/{q}.sql", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert_eq!(
            text_rows(&distributed, &sql).await,
            text_rows(&local, &sql).await,
            "{q} differs with lz4 exchanges"
        );
    }
}

/// A join big enough to run for seconds on two workers (36M joined rows at SF 0.01).
const LONG_QUERY: &str = "SELECT count(*), sum(a.l_quantity * b.l_quantity) FROM lineitem a JOIN lineitem b ON a.l_suppkey = b.l_suppkey";

async fn start_long_query_cluster(
    name: &str,
    policy: &str,
) -> (Cluster, WorkerProcess, WorkerProcess) {
    let cluster = Cluster::start(
        name,
        &[
            "--demo",
            "--demo-scale-factor",
            "0.01",
            "--retry-policy",
            policy,
        ],
    )
    .await;
    let a = cluster.worker();
    let b = cluster.worker();
    cluster.wait_for_workers(2).await;
    (cluster, a, b)
}

#[tokio::test]
async fn losing_a_worker_mid_query_reruns_it_on_the_survivor() {
    let (cluster, mut a, _b) = start_long_query_cluster("dist-loss", "query").await;
    let client = cluster.server.client().await;
    split_finely(&client).await;
    let expected = text_rows(&client, LONG_QUERY).await; // both workers alive

    let running = tokio::spawn({
        let client = cluster.server.client().await;
        async move {
            split_finely(&client).await;
            let started = Instant::now();
            let rows = client.simple_query(LONG_QUERY).await;
            (rows, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    a.kill();
    let (rows, _) = running.await.unwrap();
    let rows: Vec<Vec<String>> = rows
        .unwrap_or_else(|e| {
            panic!(
                "the query must survive the loss of a worker: {e:?}\ncoordinator log:\n{}",
                cluster.server.log_text()
            )
        })
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap().to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(rows, expected);
    assert!(
        cluster.server.log_text().contains("re-running the query"),
        "the worker was not lost mid-query (the query finished before the kill?)"
    );
    // The coordinator and other sessions carry on, on the surviving worker.
    let other = cluster.server.client().await;
    assert_eq!(
        text_rows(&other, "SELECT count(*) FROM nation").await,
        vec![vec!["25".to_string()]]
    );
    assert_eq!(cluster.wait_for_workers(1).await.len(), 1);
}

#[tokio::test]
async fn without_retries_a_lost_worker_fails_the_query_with_a_sqlstate() {
    let (cluster, mut a, _b) = start_long_query_cluster("dist-noretry", "none").await;
    let client = cluster.server.client().await;
    split_finely(&client).await;
    let running = tokio::spawn(async move {
        let result =
            tokio::time::timeout(Duration::from_secs(60), client.simple_query(LONG_QUERY)).await;
        result.expect("the query hung after a worker was lost")
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    a.kill();
    let err = running
        .await
        .unwrap()
        .expect_err("the query should fail without retries");
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("no server error: {err:?}"));
    assert_eq!(db.code().code(), "08006", "{}", db.message());
    assert!(db.message().contains("worker was lost"), "{}", db.message());
    let other = cluster.server.client().await;
    assert_eq!(
        text_rows(&other, "SELECT count(*) FROM region").await,
        vec![vec!["5".to_string()]]
    );
}

//! Operating Vivace: system.queries, vivace.cancel_query, resource groups,
//! and the HTTP listener (health, metrics, the JSON API behind the page, its
//! logins).

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::credentials::users_line;
use common::http::{get, request};
use common::{Server, TempDir, rows, sql_error, text_rows};
use tokio_postgres::Client;

/// Runs until cancelled: 10^11 generated rows.
const LONG_QUERY: &str = "SELECT max(v) FROM generate_series(1, 100000000000) AS t(v)";

async fn connect(server: &Server, options: &str) -> Client {
    server.client_with(options).await
}

/// The id of the one query of `application` in `state`, waiting for it.
async fn query_in_state(client: &Client, application: &str, state: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = rows(
            client,
            &format!(
                "SELECT query_id FROM system.queries WHERE application_name = '{application}' AND state = '{state}'"
            ),
        )
        .await;
        if let Some(row) = found.first() {
            return row[0].clone().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no {state} query of {application}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The SQLSTATE a statement run on a spawned task ended with.
fn spawn_query(client: Client, sql: &'static str) -> tokio::task::JoinHandle<Option<String>> {
    tokio::spawn(async move {
        match client.simple_query(sql).await {
            Ok(_) => None,
            Err(e) => Some(e.code().map(|c| c.code().to_string()).unwrap_or_default()),
        }
    })
}

#[tokio::test]
async fn queries_are_listed_measured_and_cancelled() {
    let dir = TempDir::new("ops-queries");
    let http_port = common::free_port();
    let server = Server::start_with(
        &dir,
        &[
            "--http-listen",
            &format!("127.0.0.1:{http_port}"),
            "--memory-limit",
            "4G",
        ],
        &[("VIVACE_LOG_FORMAT", "json")],
    )
    .await;
    let watcher = connect(&server, "user=ops application_name=watcher").await;
    let worker = connect(&server, "user=ann application_name=report").await;

    // A finished query with its rows and bytes, and a failed one with its SQLSTATE.
    let sent = worker
        .simple_query("SELECT v FROM generate_series(1, 1000) AS t(v)")
        .await
        .unwrap();
    let sent_rows = sent
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(sent_rows, 1000);
    let (code, _) = sql_error(&worker, "SELECT * FROM no_such_table").await;
    assert_eq!(code, "42P01");
    let report = rows(
        &watcher,
        "SELECT state, user_name, rows, bytes > 1000, error_code, resource_group, query \
         FROM system.queries WHERE application_name = 'report' ORDER BY created, query_id",
    )
    .await;
    let report: Vec<Vec<String>> = report
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect();
    assert_eq!(
        report,
        vec![
            vec![
                "finished",
                "ann",
                "1000",
                "t",
                "NULL",
                "global",
                "SELECT v FROM generate_series(1, 1000) AS t(v)"
            ],
            vec![
                "failed",
                "ann",
                "0",
                "f",
                "42P01",
                "global",
                "SELECT * FROM no_such_table"
            ],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );

    // A long query shows as running, and cancel_query stops it with 57014.
    let long = connect(&server, "user=ann application_name=long").await;
    let ended = spawn_query(long, LONG_QUERY);
    let id = query_in_state(&watcher, "long", "running").await;
    let cancelled = rows(&watcher, &format!("SELECT vivace.cancel_query('{id}')")).await;
    assert_eq!(cancelled, vec![vec![Some("t".to_string())]]);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), ended)
            .await
            .expect("the query stops")
            .unwrap()
            .as_deref(),
        Some("57014")
    );
    let state = rows(
        &watcher,
        &format!("SELECT state, error_code, done FROM system.queries WHERE query_id = '{id}'"),
    )
    .await;
    assert_eq!(
        state,
        vec![vec![
            Some("cancelled".to_string()),
            Some("57014".to_string()),
            Some("t".to_string())
        ]]
    );
    // Cancelling it again says it had ended; an unknown id is an error.
    let again = rows(&watcher, &format!("SELECT vivace.cancel_query('{id}')")).await;
    assert_eq!(again, vec![vec![Some("f".to_string())]]);
    let (code, message) = sql_error(&watcher, "SELECT vivace.cancel_query('nope')").await;
    assert_eq!(code, "42704", "{message}");

    // The HTTP listener: health, readiness, the API, the page, the metrics.
    assert_eq!(get(http_port, "/healthz").await, (200, "ok\n".to_string()));
    let (status, ready) = get(http_port, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let (status, page) = get(http_port, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Vivace"), "{page}");
    let (status, queries) = get(http_port, "/api/queries").await;
    assert_eq!(status, 200);
    let queries: serde_json::Value = serde_json::from_str(&queries).unwrap();
    let listed = queries
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query_id"] == id.as_str())
        .expect("the cancelled query is listed");
    assert_eq!(listed["state"], "cancelled");
    let (status, detail) = get(http_port, &format!("/api/queries/{id}")).await;
    assert_eq!(status, 200);
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert!(
        detail["plan"]
            .as_str()
            .unwrap_or_default()
            .contains("AggregateExec"),
        "{detail}"
    );
    assert_eq!(get(http_port, "/api/queries/nope").await.0, 404);

    let (status, metrics) = get(http_port, "/metrics").await;
    assert_eq!(status, 200);
    let value = |start: &str| metric(&metrics, start);
    assert!(
        value(
            r#"vivace_queries_total{state="failed",sqlstate_class="42",resource_group="global"}"#
        ) >= 1.0
    );
    assert!(
        value(
            r#"vivace_queries_total{state="cancelled",sqlstate_class="57",resource_group="global"}"#
        ) >= 1.0
    );
    assert!(value("vivace_rows_returned_total") >= 1000.0);
    assert!(value("vivace_sessions_active") >= 2.0);
    assert!(metrics.contains("vivace_query_duration_seconds_bucket{phase=\"execution\""));
    assert!(
        !metrics.contains("no_such_table"),
        "no query text in labels"
    );
    // Every metric the Grafana dashboard charts is exported (those about
    // sources once a source is read: see the S3 test below and tests/postgres.rs).
    let charted = dashboard_metrics();
    assert!(charted.len() >= 10, "{charted:?}");
    for name in charted
        .iter()
        .filter(|n| !n.starts_with("vivace_source_") && !n.starts_with("vivace_object_store_"))
    {
        assert!(
            metrics.contains(&format!("\n{name}")),
            "the dashboard charts {name}, which /metrics does not export"
        );
    }

    // One JSON log line per query end, with its id, state and figures.
    let log = server.log_text();
    let ended: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "query ended")
        .collect();
    let line = ended
        .iter()
        .find(|l| l["fields"]["query_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no query-end line for {id}:\n{log}"));
    assert_eq!(line["fields"]["state"], "cancelled");
    assert_eq!(line["fields"]["sqlstate"], "57014");
    assert_eq!(line["fields"]["user"], "ann");
    let thousand = ended
        .iter()
        .find(|l| l["fields"]["query"] == "SELECT v FROM generate_series(1, 1000) AS t(v)")
        .expect("the finished query's line");
    assert_eq!(thousand["fields"]["rows"], 1000);
}

/// A group's CPU share cuts the partitions its queries are planned with, and
/// its memory share bounds what they hold: a query that fits the server's
/// pool fails with 53200 in a group whose share it exceeds.
#[tokio::test]
async fn resource_group_shares_bound_partitions_and_memory() {
    let dir = TempDir::new("ops-shares");
    let config = dir.path().join("vivace.toml");
    std::fs::write(
        &config,
        "memory_limit = \"512M\"\n\
         [resource_groups.narrow]\ncpu_share = 0.25\nmemory_share = 0.05\napplications = [\"narrow\"]\n",
    )
    .unwrap();
    let http_port = common::free_port();
    let server = Server::start_with(
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--workers",
            "0",
            "--http-listen",
            &format!("127.0.0.1:{http_port}"),
        ],
        &[],
    )
    .await;
    let partitions = "SET datafusion.execution.target_partitions = 8";
    let grouped = "SELECT v % 10, count(*) FROM generate_series(1, 100000) AS t(v) GROUP BY 1";
    let hash_partitions = |plan: String| -> Vec<String> {
        plan.lines()
            .filter(|l| l.contains("RepartitionExec: partitioning=Hash"))
            .map(|l| l.split("Hash(").nth(1).unwrap().to_string())
            .collect()
    };
    let wide = connect(&server, "application_name=wide").await;
    let narrow = connect(&server, "application_name=narrow").await;
    for client in [&wide, &narrow] {
        client.simple_query(partitions).await.unwrap();
    }
    let wide_plan = hash_partitions(common::explain(&wide, grouped).await);
    let narrow_plan = hash_partitions(common::explain(&narrow, grouped).await);
    assert!(
        !wide_plan.is_empty() && wide_plan.iter().all(|p| p.contains("], 8)")),
        "{wide_plan:?}"
    );
    assert!(
        !narrow_plan.is_empty() && narrow_plan.iter().all(|p| p.contains("], 2)")),
        "{narrow_plan:?}"
    );

    // About 80 MB of list that cannot spill: within the server's 512 MB, not
    // within the narrow group's 25 MB.
    let collect = "SELECT cardinality(array_agg(v)) FROM generate_series(1, 10000000) AS t(v)";
    assert_eq!(text_rows(&wide, collect).await, vec![vec!["10000000"]]);
    let (code, message) = sql_error(&narrow, collect).await;
    assert_eq!(code, "53200", "{message}");
    assert!(message.contains("resource group \"narrow\""), "{message}");
    // The group's memory came back: a small query still runs there.
    assert_eq!(text_rows(&narrow, "SELECT 40 + 2").await, vec![vec!["42"]]);
    // A sort past the share spills to disk instead, and the spill is counted.
    let spills = |text: &str| common::http::metric_sum(text, "vivace_spills_total", &[]);
    let before = common::http::metrics_text(http_port).await;
    assert_eq!(
        text_rows(
            &narrow,
            "SELECT sum(r) FROM (SELECT row_number() OVER (ORDER BY v DESC) AS r \
             FROM generate_series(1, 3000000) AS t(v))"
        )
        .await,
        vec![vec!["4500001500000"]]
    );
    let after = common::http::metrics_text(http_port).await;
    assert!(spills(&after) > spills(&before), "no spill counted");
}

#[tokio::test]
async fn resource_groups_queue_and_refuse() {
    let dir = TempDir::new("ops-groups");
    let config = dir.path().join("vivace.toml");
    std::fs::write(
        &config,
        "[resource_groups.dashboards]\nmax_running = 1\nmax_queued = 1\napplications = [\"dash*\", \"multi-*\"]\n",
    )
    .unwrap();
    let server = Server::start_with(&dir, &["--config", config.to_str().unwrap()], &[]).await;
    let watcher = connect(&server, "user=ops application_name=watcher").await;

    // The group's one place is taken by a long query; the next waits, the one
    // after is refused at once.
    let first = spawn_query(
        connect(&server, "user=a application_name=dash-1").await,
        LONG_QUERY,
    );
    let first_id = query_in_state(&watcher, "dash-1", "running").await;
    let second_client = connect(&server, "user=b application_name=dash-2").await;
    let second = tokio::spawn(async move {
        let answer = rows(&second_client, "SELECT 40 + 2").await;
        answer[0][0].clone().unwrap()
    });
    query_in_state(&watcher, "dash-2", "queued").await;
    let third = connect(&server, "user=c application_name=dash-3").await;
    let (code, message) = sql_error(&third, "SELECT 1").await;
    assert_eq!(code, "53000", "{message}");
    assert!(message.contains("dashboards"), "{message}");
    // Another group (here global) is not held back, and a session may name its group.
    assert_eq!(
        rows(&third, "SET vivace.resource_group = 'global'; SELECT 7")
            .await
            .len(),
        1
    );
    let (code, _) = sql_error(&third, "SET vivace.resource_group = 'nope'; SELECT 1").await;
    assert_eq!(code, "42704");

    // When the long query stops, the waiting one runs.
    assert_eq!(
        rows(
            &watcher,
            &format!("SELECT vivace.cancel_query('{first_id}')")
        )
        .await,
        vec![vec![Some("t".to_string())]]
    );
    assert_eq!(first.await.unwrap().as_deref(), Some("57014"));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), second)
            .await
            .unwrap()
            .unwrap(),
        "42"
    );
    // The statements of one message share their place: with room for one
    // query, two in a message still run (the second before the first's rows
    // are sent).
    let both = connect(&server, "user=d application_name=multi-dash").await;
    let answered = tokio::time::timeout(Duration::from_secs(30), rows(&both, "SELECT 1; SELECT 2"))
        .await
        .expect("the second statement does not wait for the first's place");
    assert_eq!(
        answered,
        vec![vec![Some("1".to_string())], vec![Some("2".to_string())]]
    );

    let states = rows(
        &watcher,
        "SELECT application_name, state, resource_group, error_code, queued_ms > 0 FROM system.queries \
         WHERE application_name IN ('dash-1', 'dash-2') OR error_code = '53000' ORDER BY application_name",
    )
    .await;
    let row = |cells: [Option<&str>; 5]| cells.map(|c| c.map(String::from)).to_vec();
    assert_eq!(
        states,
        vec![
            row([
                Some("dash-1"),
                Some("cancelled"),
                Some("dashboards"),
                Some("57014"),
                Some("f")
            ]),
            row([
                Some("dash-2"),
                Some("finished"),
                Some("dashboards"),
                None,
                Some("t")
            ]),
            row([
                Some("dash-3"),
                Some("failed"),
                Some("dashboards"),
                Some("53000"),
                Some("f")
            ]),
        ]
    );
}

#[tokio::test]
async fn with_users_the_listener_asks_for_a_login_and_shows_users_their_own_queries() {
    let dir = TempDir::new("ops-users");
    let http_port = common::free_port();
    let analyst = users_line("analyst", "analyst pw");
    let boss = users_line("boss", "boss pw");
    let boss_verifier = boss.split_once(" = ").unwrap().1;
    let config = dir.path().join("vivace.toml");
    std::fs::write(
        &config,
        format!("[users]\n{analyst}\n[users.boss]\npassword = {boss_verifier}\nadmin = true\n"),
    )
    .unwrap();
    let server = Server::start_with(
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--http-listen",
            &format!("127.0.0.1:{http_port}"),
        ],
        &[],
    )
    .await;
    let login = |user: &str, password: &str| {
        format!("user={user} password='{password}' application_name={user}-app")
    };
    let ann = connect(&server, &login("analyst", "analyst pw")).await;
    let boss_client = connect(&server, &login("boss", "boss pw")).await;
    rows(&ann, "SELECT 'analyst query'").await;
    rows(&boss_client, "SELECT 'boss query'").await;
    // A secret typed into OPTIONS is refused, and masked wherever the text is shown.
    let (code, _) = sql_error(
        &boss_client,
        "CREATE EXTERNAL TABLE leak STORED AS POSTGRES LOCATION 'postgres://127.0.0.1:1/x' \
         OPTIONS ('table' 't', 'password' 'hunter2-secret')",
    )
    .await;
    assert_ne!(code, "00000");

    // Health checks stay open; everything else asks for a login.
    assert_eq!(get(http_port, "/healthz").await.0, 200);
    for path in ["/", "/metrics", "/api/queries", "/api/cluster"] {
        assert_eq!(get(http_port, path).await.0, 401, "{path}");
    }
    let wrong = request(http_port, "GET", "/api/queries", Some(("analyst", "nope"))).await;
    assert_eq!(wrong.0, 401);
    let unknown = request(http_port, "GET", "/api/queries", Some(("nobody", "x"))).await;
    assert_eq!(unknown.0, 401);

    // A user sees their own queries; an admin sees every one.
    let seen = |body: String| -> Vec<String> {
        let queries: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut users: Vec<String> = queries
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["user_name"].as_str().unwrap().to_string())
            .collect();
        users.sort();
        users.dedup();
        users
    };
    let (status, mine) = request(
        http_port,
        "GET",
        "/api/queries",
        Some(("analyst", "analyst pw")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(mine), vec!["analyst"]);
    let (status, all) = request(http_port, "GET", "/api/queries", Some(("boss", "boss pw"))).await;
    assert_eq!(status, 200);
    assert!(all.contains("'password' '********'"), "{all}");
    assert_eq!(seen(all), vec!["analyst", "boss"]);
    // The same rule in SQL.
    let users = rows(&ann, "SELECT DISTINCT user_name FROM system.queries").await;
    assert_eq!(users, vec![vec![Some("analyst".to_string())]]);
    let boss_query = rows(
        &boss_client,
        "SELECT query_id FROM system.queries WHERE user_name = 'boss' LIMIT 1",
    )
    .await;
    let boss_id = boss_query[0][0].clone().unwrap();
    let (code, _) = sql_error(&ann, &format!("SELECT vivace.cancel_query('{boss_id}')")).await;
    assert_eq!(code, "42704", "a user cannot reach another's query");
    let refused = request(
        http_port,
        "POST",
        &format!("/api/queries/{boss_id}/cancel"),
        Some(("analyst", "analyst pw")),
    )
    .await;
    assert_eq!(refused.0, 404);

    // The secret appears nowhere: not in the metrics, the API or the log.
    let (_, metrics) = request(http_port, "GET", "/metrics", Some(("boss", "boss pw"))).await;
    assert!(metrics.contains("vivace_queries_total"));
    for text in [metrics, server.log_text()] {
        assert!(!text.contains("hunter2-secret"));
        assert!(!text.contains("analyst pw"));
    }
}

/// The metrics the Grafana dashboard charts.
fn dashboard_metrics() -> std::collections::BTreeSet<String> {
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/grafana/vivace-dashboard.json"),
    )
    .unwrap();
    dashboard
        .match_indices("vivace_")
        .map(|(at, _)| {
            let rest = &dashboard[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches("_bucket").to_string()
        })
        .filter(|name| name != "vivace_" && !name.starts_with("vivace_overview"))
        .collect()
}

/// The value of the first sample of `metrics` whose line starts with `start`.
fn metric(metrics: &str, start: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {start} in\n{metrics}"))
}

/// Poll `GET path` on `port` until it answers `status`.
async fn wait_for_status(port: u16, path: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A process just started may not listen yet.
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nothing listens on {port}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let (got, body) = get(port, path).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn workers_serve_health_and_metrics_and_queries_report_their_stages() {
    let http_port = common::free_port();
    let http = format!("127.0.0.1:{http_port}");
    let cluster = Cluster::start(
        "ops-workers",
        &[
            "--demo",
            "--demo-scale-factor",
            "0.01",
            "--http-listen",
            &http,
        ],
    )
    .await;
    let worker = cluster.worker();
    let _other = cluster.worker();
    // Up at once; ready once the coordinator acknowledged a heartbeat.
    wait_for_status(worker.http_port, "/healthz", 200).await;
    wait_for_status(worker.http_port, "/readyz", 200).await;
    cluster.wait_for_workers(2).await;

    let client = cluster.server.client().await;
    client
        .simple_query(
            "SET distributed.file_scan_config_bytes_per_partition = 262144; \
             SET datafusion.optimizer.hash_join_single_partition_threshold = 0; \
             SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0; \
             SET application_name = 'staged'",
        )
        .await
        .unwrap();
    let answer = text_rows(
        &client,
        "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag ORDER BY 1",
    )
    .await;
    assert_eq!(answer.len(), 3, "{answer:?}");
    // The query ran two stages of two tasks on the workers.
    let staged = text_rows(
        &client,
        "SELECT stages, tasks FROM system.queries \
         WHERE application_name = 'staged' AND query LIKE 'SELECT l_returnflag%'",
    )
    .await;
    let plan = common::explain(
        &client,
        "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag ORDER BY 1",
    )
    .await;
    assert_eq!(staged, vec![vec!["2", "4"]], "{plan}");
    // Once ended, it counts the rows its stages scanned on the workers, and
    // its plan shows each stage's operators with their figures.
    let total: u64 = answer.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    let ended = text_rows(
        &client,
        "SELECT query_id, rows_scanned, bytes_scanned > 0 FROM system.queries \
         WHERE application_name = 'staged' AND query LIKE 'SELECT l_returnflag%'",
    )
    .await;
    assert_eq!(ended[0][1..], [total.to_string(), "t".to_string()]);
    let (status, detail) = get(http_port, &format!("/api/queries/{}", ended[0][0])).await;
    assert_eq!(status, 200);
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    let stage_scan = detail["plan"]
        .as_str()
        .unwrap()
        .lines()
        .find(|l| l.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no scan in {detail}"))
        .to_string();
    assert!(stage_scan.contains("output_rows="), "{stage_scan}");

    // The worker counts the tasks it was sent and its heartbeats.
    let (status, metrics) = get(worker.http_port, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metric(&metrics, "vivace_worker_tasks_total") >= 1.0);
    assert!(metric(&metrics, r#"vivace_worker_heartbeats_total{result="ok"}"#) >= 1.0);
    assert!(metrics.contains("vivace_memory_pool_used_bytes"));
    // The coordinator counts its live workers.
    let (_, metrics) = get(http_port, "/metrics").await;
    assert_eq!(metric(&metrics, "vivace_workers "), 2.0);
    // Its stages sent their partial groups to the stage above them.
    assert!(metric(&metrics, "vivace_exchange_bytes_total") > 0.0);

    // While a distributed query runs, its tasks on the workers report (in
    // their heartbeats) the rows their scans produced so far: here a
    // partitioned self-join of lineitem, cancelled once its build side's scan
    // is counted, long before it could end.
    let live_client = cluster.server.client_with("application_name=live").await;
    common::cluster::split_finely(&live_client).await;
    let long = spawn_query(
        live_client,
        "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_returnflag = b.l_returnflag \
         WHERE a.l_quantity * b.l_quantity > 0",
    );
    let live_id = query_in_state(&client, "live", "running").await;
    // Generous: on 2 cores the other tests of this file run beside it.
    let deadline = Instant::now() + Duration::from_secs(180);
    let live = loop {
        let live = text_rows(
            &client,
            &format!(
                "SELECT state, rows_scanned, stages FROM system.queries WHERE query_id = '{live_id}'"
            ),
        )
        .await;
        if live[0][1].parse::<u64>().unwrap() >= total {
            break live;
        }
        assert!(Instant::now() < deadline, "no live progress: {live:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(live[0][0], "running", "{live:?}");
    assert_ne!(live[0][2], "0", "{live:?}");
    // system.tasks has one row per task of each stage, on the two workers;
    // their scans account for the rows counted above. The join's two scans
    // of lineitem are identical stages, which a worker cannot tell apart:
    // their tasks show no stage number; the stage above them has its own.
    let workers: Vec<String> = text_rows(
        &client,
        "SELECT address FROM system.nodes WHERE role = 'worker' ORDER BY address",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    let tasks_sql = format!(
        "SELECT t.stage, count(*), max(t.stage_tasks), count(DISTINCT t.worker), \
         sum(t.rows_scanned), max(t.worker), min(t.worker), min(t.operator), max(q.tasks) \
         FROM system.tasks t JOIN system.queries q USING (query_id) \
         WHERE t.query_id = '{live_id}' GROUP BY t.stage ORDER BY t.stage"
    );
    let by_stage = loop {
        let by_stage = text_rows(&client, &tasks_sql).await;
        let reported: usize = by_stage
            .iter()
            .map(|s| s[1].parse::<usize>().unwrap())
            .sum();
        if !by_stage.is_empty() && reported.to_string() == by_stage[0][8] {
            break by_stage;
        }
        assert!(
            Instant::now() < deadline,
            "tasks not all reported: {by_stage:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(by_stage.len(), 2, "{by_stage:?}");
    let (upper, scans) = (&by_stage[0], &by_stage[1]);
    assert!(upper[0].parse::<u64>().is_ok(), "{by_stage:?}");
    assert!(upper[7].starts_with("AggregateExec"), "{by_stage:?}");
    assert_eq!(upper[1], upper[2], "{by_stage:?}");
    assert_eq!(scans[0], "NULL", "{by_stage:?}");
    assert!(scans[7].starts_with("RepartitionExec"), "{by_stage:?}");
    assert_eq!(
        scans[1].parse::<u64>().unwrap(),
        2 * scans[2].parse::<u64>().unwrap(),
        "{by_stage:?}"
    );
    for stage in &by_stage {
        assert!(
            workers.contains(&stage[5]) && workers.contains(&stage[6]),
            "{by_stage:?} on {workers:?}"
        );
        assert_eq!(
            stage[3], "2",
            "each stage runs on both workers: {by_stage:?}"
        );
    }
    let task_rows: u64 = by_stage.iter().map(|s| s[4].parse::<u64>().unwrap()).sum();
    assert!(
        task_rows >= total,
        "tasks scanned {task_rows} of {total}: {by_stage:?}"
    );
    // The web page's detail of the query lists the same tasks.
    let (status, detail) = get(http_port, &format!("/api/queries/{live_id}")).await;
    assert_eq!(status, 200, "{detail}");
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    let listed = detail["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in {detail}"));
    let reported: usize = by_stage
        .iter()
        .map(|s| s[1].parse::<usize>().unwrap())
        .sum();
    assert_eq!(listed.len(), reported, "{detail}");
    let upper_stage: u64 = upper[0].parse().unwrap();
    let upper_tasks = listed
        .iter()
        .filter(|t| t["stage"] == upper_stage && t["operator"] == upper[7].as_str())
        .count();
    assert_eq!(upper_tasks.to_string(), upper[1], "{detail}");
    assert_eq!(
        listed.iter().filter(|t| t["stage"].is_null()).count(),
        reported - upper_tasks,
        "{detail}"
    );
    assert!(
        listed
            .iter()
            .all(|t| workers.iter().any(|w| t["worker"] == w.as_str())),
        "{detail}"
    );
    rows(&client, &format!("SELECT vivace.cancel_query('{live_id}')")).await;
    assert_eq!(long.await.unwrap().as_deref(), Some("57014"));

    // Without its coordinator, the worker is alive but no longer ready.
    drop(client);
    let Cluster { server, dir, .. } = cluster;
    drop(server);
    wait_for_status(worker.http_port, "/readyz", 503).await;
    assert_eq!(get(worker.http_port, "/healthz").await.0, 200);
    drop(worker);
    drop(dir);
}

/// The object store counters agree with the S3 server: a query over a 3-file
/// Parquet table moves the requests counter, per operation, by the requests
/// the server recorded, and the bytes-read counter by the bytes their ranges
/// cover; no secret reaches `/metrics`.
#[tokio::test]
async fn object_store_metrics_match_what_the_s3_server_recorded() {
    use common::data;
    use common::http::{metric_sum, metrics_text};
    use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};

    let s3 = S3Server::start();
    s3.put_events("lake").await;
    let sizes: Vec<(String, u64)> = data::DAYS
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let bytes = data::parquet_bytes(&data::batch(&data::day_rows(i)));
            (
                format!("/lake/events/dt={day}/part-0.parquet"),
                bytes.len() as u64,
            )
        })
        .collect();
    let dir = TempDir::new("ops-s3");
    let http_port = common::free_port();
    let server = Server::start_with(
        &dir,
        &["--http-listen", &format!("127.0.0.1:{http_port}")],
        &[("LAKE_SECRET", SECRET_KEY)],
    )
    .await;
    let client = server.client().await;
    client.simple_query(&s3.create_events_sql()).await.unwrap();

    let count = |text: &str, operation: &str| {
        metric_sum(
            text,
            "vivace_object_store_requests_total",
            &[("store", "s3"), ("operation", operation)],
        )
    };
    let read = |text: &str| {
        metric_sum(
            text,
            "vivace_object_store_read_bytes_total",
            &[("store", "s3")],
        )
    };
    let before = metrics_text(http_port).await;
    s3.start_recording();
    assert_eq!(
        text_rows(
            &client,
            "SELECT dt, count(*), sum(amount) FROM events GROUP BY dt ORDER BY dt"
        )
        .await,
        data::expected_daily_totals("2024-01-01")
    );
    let recorded = s3.recorded();
    let after = metrics_text(http_port).await;

    // What the server saw: object GETs (with the bytes their ranges cover),
    // HEADs, and bucket listings (GETs of the bucket itself).
    let (mut gets, mut heads, mut lists, mut bytes) = (0.0, 0.0, 0.0, 0);
    for request in &recorded {
        let is_bucket = request.path.trim_matches('/') == "lake";
        match (request.method.as_str(), is_bucket) {
            ("HEAD", _) => heads += 1.0,
            ("GET", true) => lists += 1.0,
            ("GET", false) => {
                gets += 1.0;
                let size = sizes
                    .iter()
                    .find(|(path, _)| *path == request.path.replace("%3D", "="))
                    .unwrap_or_else(|| panic!("an unknown object: {request:?}"))
                    .1;
                bytes += match request.range {
                    Some((first, last)) => last.min(size - 1) - first + 1,
                    None => size,
                };
            }
            _ => panic!("a query sent {request:?}"),
        }
    }
    assert!(gets >= 3.0, "each of the 3 files is read: {recorded:#?}");
    assert_eq!(count(&after, "get") - count(&before, "get"), gets);
    assert_eq!(count(&after, "head") - count(&before, "head"), heads);
    assert_eq!(count(&after, "list") - count(&before, "list"), lists);
    assert_eq!(read(&after) - read(&before), bytes as f64);
    assert!(!after.contains(SECRET_KEY));

    // A write counts the bytes of the objects it leaves.
    let written = |text: &str| {
        metric_sum(
            text,
            "vivace_object_store_written_bytes_total",
            &[("store", "s3")],
        )
    };
    client
        .simple_query(&format!(
            "CREATE TABLE events_copy STORED AS PARQUET LOCATION 's3://lake/copy/' \
             OPTIONS ('aws.endpoint' '{}', 'aws.region' 'us-east-1', \
                      'aws.access_key_id' '{ACCESS_KEY}', 'aws.secret_access_key_env' 'LAKE_SECRET') \
             AS SELECT * FROM events",
            s3.endpoint
        ))
        .await
        .unwrap();
    let after_write = metrics_text(http_port).await;
    let objects: Vec<u64> = {
        use futures::TryStreamExt;
        s3.store("lake")
            .list(Some(&"copy".into()))
            .map_ok(|meta| meta.size)
            .try_collect()
            .await
            .unwrap()
    };
    assert!(!objects.is_empty());
    assert_eq!(
        written(&after_write) - written(&after),
        objects.iter().sum::<u64>() as f64
    );

    let charted = dashboard_metrics();
    let charted: Vec<_> = charted
        .iter()
        .filter(|n| n.starts_with("vivace_object_store_"))
        .collect();
    assert!(charted.len() >= 2, "{charted:?}");
    for name in charted {
        assert!(
            after_write.contains(&format!("\n{name}")),
            "{name} is charted"
        );
    }
}

/// With a certificate configured, the HTTP listener speaks only HTTPS (the
/// same certificate as the PostgreSQL listener), so basic logins are never
/// sent in the clear: curl verifies the server against the test CA, logs in,
/// and a plaintext request gets no answer.
#[tokio::test]
async fn with_a_certificate_the_listener_serves_https_only() {
    use common::credentials::make_certificates;

    let dir = TempDir::new("ops-https");
    make_certificates(dir.path());
    let http_port = common::free_port();
    let config = dir.path().join("vivace.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert_file = \"{0}/server.crt\"\ntls_key_file = \"{0}/server.key\"\n\
             http_listen = \"127.0.0.1:{http_port}\"\n[users]\n{1}",
            dir.path().display(),
            users_line("analyst", "analyst pw")
        ),
    )
    .unwrap();
    let _server = Server::start_with(&dir, &["--config", config.to_str().unwrap()], &[]).await;
    let ca = dir.path().join("ca.crt");
    let curl = |url: &str, login: Option<&str>| {
        let mut command = std::process::Command::new("curl");
        command
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .args(["-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(login) = login {
            command.args(["-u", login]);
        }
        let out = command.arg(url).output().expect("curl is installed");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let https = |path: &str| format!("https://localhost:{http_port}{path}");
    // The listener may still be starting.
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(&https("/healthz"), None) != (true, "200".to_string()) {
        assert!(Instant::now() < deadline, "no HTTPS on {http_port}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        curl(&https("/api/cluster"), Some("analyst:analyst pw")),
        (true, "200".to_string())
    );
    assert_eq!(
        curl(&https("/api/cluster"), None),
        (true, "401".to_string())
    );
    assert_eq!(
        curl(&https("/metrics"), Some("analyst:wrong")),
        (true, "401".to_string())
    );
    // Plain HTTP on the same port: the TLS handshake fails, nothing is served.
    let (ok, code) = curl(&format!("http://127.0.0.1:{http_port}/healthz"), None);
    assert!(!ok && code == "000", "plaintext got {code}");
}

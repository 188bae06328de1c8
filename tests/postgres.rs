//! `STORED AS POSTGRES` against a real PostgreSQL 15 server started by the test:
//! pushdown on and off give the same rows, the server receives one statement per
//! federated sub-plan (checked in its statement log), EXPLAIN shows that SQL,
//! cross-source joins with Parquet, quoting, types, errors and secrets; remote
//! views; pools closed on DROP; remote statements cancelled with Vivace's query;
//! `STORED AS REDSHIFT` (Redshift's dialect, run against PostgreSQL).

mod common;

use common::http::{metric_sum, metrics_text};
use common::postgres::{DATABASE, PASSWORD, PgServer, ROLE};
use common::{Server, TempDir, data, rows, sql_error, table_names, text_rows};

const SETUP: &str = r#"
CREATE TABLE customers (customer text PRIMARY KEY, region text NOT NULL, name text);
INSERT INTO customers VALUES
  ('c1', 'north', 'Ann'), ('c2', 'south', 'Bob'), ('c3', 'north', 'Cy'),
  ('c42', 'east', 'O''Brien'), ('c5', 'west', NULL);
CREATE TABLE orders (id integer PRIMARY KEY, customer text, amount numeric(12,2) NOT NULL,
  placed date NOT NULL, note text);
INSERT INTO orders VALUES
  (1, 'c1', 10.50, '2024-01-01', 'first'), (2, 'c1', 20.25, '2024-01-15', NULL),
  (3, 'c2', 7.00, '2024-02-01', 'x'' OR ''1''=''1'), (4, 'c42', 99.99, '2024-02-10', 'big'),
  (5, 'c42', 0.01, '2024-03-01', 'tiny'), (6, 'c9', 5.00, '2024-03-05', 'orphan'),
  (7, NULL, 1.00, '2024-03-06', 'nobody'), (8, 'c3', 12.00, '2023-12-31', 'old');
CREATE TABLE all_types (
  s smallint, i integer, b bigint, n numeric(20,6), r real, d double precision,
  t text, v varchar(10), c char(3), flag boolean, day date, tm time, ts timestamp,
  tstz timestamptz, u uuid, j json, jb jsonb, raw bytea);
INSERT INTO all_types VALUES
  (-2, 40000, 9000000000, 12345678901234.123456, 1.5, 2.25, 'text', 'vc', 'ab', true,
   '2024-02-29', '13:14:15', '2024-02-29 13:14:15.5', '2024-02-29 13:14:15+02',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}', '{"b": [1, 2]}', '\x00ff');
CREATE TABLE "Odd ""Name"" \ é" (id integer, "Wéird ""col""" text);
INSERT INTO "Odd ""Name"" \ é" VALUES (1, 'ünï''code');
CREATE VIEW big_orders AS SELECT id, customer, amount FROM orders WHERE amount > 10;
CREATE MATERIALIZED VIEW order_totals AS
  SELECT customer, sum(amount) AS total FROM orders GROUP BY customer;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;
"#;

/// A PostgreSQL server with the test tables and a Vivace server that has the
/// password in `APP_PG_PASSWORD`.
async fn start(name: &str) -> (TempDir, PgServer, Server) {
    start_with(name, &[]).await
}

/// [`start`], with more arguments for `vivace serve`.
async fn start_with(name: &str, args: &[&str]) -> (TempDir, PgServer, Server) {
    let dir = TempDir::new(name);
    let pg = PgServer::start(&dir);
    pg.psql(DATABASE, SETUP);
    let server = Server::start_with(
        &dir,
        args,
        &[
            ("APP_PG_PASSWORD", PASSWORD),
            ("WRONG_PG_PASSWORD", "not-the-password"),
        ],
    )
    .await;
    (dir, pg, server)
}

fn create_sql(pg: &PgServer, name: &str, remote: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' \
         OPTIONS ('table' '{}', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable')",
        pg.location(),
        remote.replace('\'', "''")
    )
}

/// `orders` (over the remote table `orders`, spelled as given) and `customers`.
async fn register_orders_and_customers(
    client: &tokio_postgres::Client,
    pg: &PgServer,
    orders: &str,
) {
    for (name, remote) in [("orders", orders), ("customers", "customers")] {
        client
            .simple_query(&create_sql(pg, name, remote))
            .await
            .unwrap();
    }
}

/// Queries run with pushdown on and off; each must give the same rows. With
/// pushdown on, each reaches PostgreSQL as the given number of statements: one,
/// except `NOT IN (subquery)`, which is never pushed (the SQL unparser would turn
/// its null-aware anti join into `NOT EXISTS`), so both tables are scanned.
const DIFFERENTIAL: &[(&str, usize)] = &[
    ("SELECT count(*) FROM orders WHERE customer = 'c42'", 1),
    ("SELECT count(*) FROM orders", 1),
    (
        "SELECT id, amount FROM orders WHERE customer IN ('c1', 'c2') ORDER BY id",
        1,
    ),
    (
        "SELECT id FROM orders WHERE note LIKE 'fi%' OR note LIKE '%ig' ORDER BY id",
        1,
    ),
    (
        "SELECT id FROM orders WHERE placed >= DATE '2024-02-01' AND placed < '2024-03-02' ORDER BY id",
        1,
    ),
    (
        "SELECT id, amount FROM orders ORDER BY amount DESC LIMIT 3",
        1,
    ),
    (
        "SELECT customer, sum(amount), count(*), min(placed) FROM orders GROUP BY customer ORDER BY customer NULLS LAST",
        1,
    ),
    (
        "SELECT c.region, sum(o.amount) AS total FROM orders o JOIN customers c USING (customer) GROUP BY 1 ORDER BY 1",
        1,
    ),
    (
        "SELECT c.customer, o.id FROM customers c LEFT JOIN orders o ON o.customer = c.customer AND o.amount > 10 ORDER BY 1, 2",
        1,
    ),
    (
        "SELECT c.customer FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer = c.customer) ORDER BY 1",
        1,
    ),
    (
        "SELECT o.id FROM orders o WHERE o.customer NOT IN (SELECT customer FROM customers) ORDER BY 1",
        2,
    ),
    (
        "SELECT id, note FROM orders WHERE note IS NULL OR amount BETWEEN 5 AND 8 ORDER BY id",
        1,
    ),
];

#[tokio::test]
async fn pushdown_sends_one_statement_and_matches_local_execution() {
    let http_port = common::free_port();
    let (_dir, pg, server) = start_with(
        "pg-pushdown",
        &["--http-listen", &format!("127.0.0.1:{http_port}")],
    )
    .await;
    // The source metrics of this PostgreSQL server (labelled without the user).
    let server_label = pg.location().replace(&format!("{ROLE}@"), "");
    let source = |text: &str, name: &str| {
        metric_sum(
            text,
            name,
            &[("connector", "postgres"), ("server", &server_label)],
        )
    };
    let client = server.client().await;
    register_orders_and_customers(&client, &pg, "public.orders").await;

    for &(sql, statements) in DIFFERENTIAL {
        client
            .simple_query("SET vivace.pushdown = on")
            .await
            .unwrap();
        let mark = pg.log_text().len();
        let metrics_before = metrics_text(http_port).await;
        let pushed = rows(&client, sql).await;
        let metrics_after = metrics_text(http_port).await;
        let received: Vec<String> = pg
            .statements_since(mark)
            .into_iter()
            .filter(|s| s.contains("\"orders\"") || s.contains("\"customers\""))
            .collect();
        assert_eq!(
            received.len(),
            statements,
            "{sql}: remote statements {received:#?}"
        );
        // The metrics count the statements PostgreSQL logged and, for a query
        // pushed whole, exactly the rows the client got.
        let moved = |name| source(&metrics_after, name) - source(&metrics_before, name);
        assert_eq!(
            moved("vivace_source_requests_total"),
            statements as f64,
            "{sql}"
        );
        if statements == 1 {
            assert_eq!(
                moved("vivace_source_rows_total"),
                pushed.len() as f64,
                "{sql}"
            );
        }
        client
            .simple_query("SET vivace.pushdown = off")
            .await
            .unwrap();
        let local = rows(&client, sql).await;
        assert_eq!(pushed, local, "pushdown on/off differ for {sql}");
        assert!(!pushed.is_empty(), "{sql} returned no rows");
    }
    client
        .simple_query("SET vivace.pushdown = on")
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SHOW vivace.pushdown").await,
        vec![vec!["on".to_string()]]
    );

    // The whole join and aggregate reach PostgreSQL as one statement.
    let mark = pg.log_text().len();
    let _ = rows(&client, DIFFERENTIAL[7].0).await;
    let sent = pg.statements_since(mark).join("\n");
    assert!(
        sent.contains("JOIN") && sent.contains("GROUP BY") && sent.contains("sum("),
        "{sent}"
    );

    // Without pushdown the server sees plain scans, no WHERE.
    client
        .simple_query("SET vivace.pushdown = off")
        .await
        .unwrap();
    let mark = pg.log_text().len();
    let _ = rows(&client, DIFFERENTIAL[0].0).await;
    let sent = pg.statements_since(mark).join("\n");
    assert!(
        sent.contains("\"orders\"") && !sent.contains("WHERE"),
        "{sent}"
    );
    client
        .simple_query("SET vivace.pushdown = on")
        .await
        .unwrap();

    // EXPLAIN prints the SQL PostgreSQL receives.
    let plan = text_rows(
        &client,
        "EXPLAIN SELECT count(*) FROM orders WHERE customer = 'c42'",
    )
    .await;
    let physical = &plan[1][1];
    assert!(physical.contains("RemoteScanExec"), "{physical}");
    assert!(
        physical.contains("WHERE") && physical.contains("'c42'"),
        "{physical}"
    );

    // EXPLAIN ANALYZE counts the rows the source sent and the time spent on them.
    let matching = text_rows(&client, "SELECT id FROM orders WHERE customer = 'c42'")
        .await
        .len();
    assert!(matching > 0);
    let analyzed = text_rows(
        &client,
        "EXPLAIN ANALYZE SELECT id FROM orders WHERE customer = 'c42'",
    )
    .await
    .concat()
    .join("\n");
    let scan = analyzed
        .lines()
        .find(|l| l.contains("RemoteScanExec"))
        .unwrap_or_else(|| panic!("{analyzed}"));
    assert!(
        scan.contains(&format!("output_rows={matching},"))
            && scan.contains("remote_fetch_time=")
            && scan.contains("elapsed_compute="),
        "{scan}"
    );
}

#[tokio::test]
async fn joins_with_parquet_quoting_and_types() {
    let (dir, pg, server) = start("pg-join").await;
    let client = server.client().await;
    client
        .simple_query(&create_sql(&pg, "orders", "public.orders"))
        .await
        .unwrap();

    // Cross-source join: PostgreSQL orders with a Parquet table of (user_id, amount).
    let parquet_dir = dir.path().join("tiers");
    std::fs::create_dir_all(&parquet_dir).unwrap();
    let tiers = data::batch(&[("c1".into(), 1), ("c42".into(), 2), ("c2".into(), 1)]);
    std::fs::write(parquet_dir.join("t.parquet"), data::parquet_bytes(&tiers)).unwrap();
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE tiers STORED AS PARQUET LOCATION '{}/'",
            parquet_dir.display()
        ))
        .await
        .unwrap();
    let join = "SELECT t.amount AS tier, sum(o.amount) AS total, count(*) AS n \
                FROM orders o JOIN tiers t ON o.customer = t.user_id GROUP BY 1 ORDER BY 1";
    let expected = vec![
        vec!["1".to_string(), "37.75".into(), "3".into()],
        vec!["2".to_string(), "100.00".into(), "2".into()],
    ];
    assert_eq!(text_rows(&client, join).await, expected);
    // The cross-source join lands in Parquet; PostgreSQL tables take no rows.
    client
        .simple_query(&format!(
            "CREATE TABLE tier_totals STORED AS PARQUET LOCATION '{}/' AS {join}",
            dir.path().join("tier_totals").display()
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT * FROM tier_totals ORDER BY tier").await,
        expected
    );
    let (code, message) = sql_error(&client, "INSERT INTO orders SELECT * FROM orders").await;
    assert_eq!(code, "0A000", "{message}");
    assert!(
        message.contains("POSTGRES tables are read-only"),
        "{message}"
    );
    client
        .simple_query("SET vivace.pushdown = off")
        .await
        .unwrap();
    assert_eq!(text_rows(&client, join).await, expected);
    client
        .simple_query("SET vivace.pushdown = on")
        .await
        .unwrap();

    // A value that would inject SQL if spliced as text matches nothing, and the
    // server receives it with its quotes doubled.
    let mark = pg.log_text().len();
    let injected = "SELECT id FROM orders WHERE note = 'x'' OR ''1''=''1' AND id <> 3";
    assert!(rows(&client, injected).await.is_empty());
    let sent = pg.statements_since(mark).join("\n");
    assert!(sent.contains("'x'' OR ''1''=''1'"), "{sent}");
    assert_eq!(
        text_rows(
            &client,
            "SELECT id FROM orders WHERE note = 'x'' OR ''1''=''1'"
        )
        .await,
        vec![vec!["3".to_string()]]
    );

    // Names with quotes, a backslash and non-ASCII letters round-trip.
    client
        .simple_query(&create_sql(&pg, "odd", r#""Odd ""Name"" \ é""#))
        .await
        .unwrap();
    assert_eq!(
        text_rows(
            &client,
            r#"SELECT id, "Wéird ""col""" FROM odd WHERE "Wéird ""col""" LIKE 'ü%'"#
        )
        .await,
        vec![vec!["1".to_string(), "ünï'code".into()]]
    );

    // Types: exact numerics, temporal types, uuid/json as text, bytea.
    client
        .simple_query(&create_sql(&pg, "all_types", "all_types"))
        .await
        .unwrap();
    let described = text_rows(&client, "DESCRIBE all_types").await;
    let types: Vec<(String, String)> = described
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let expect_types = [
        ("s", "smallint"),
        ("i", "integer"),
        ("b", "bigint"),
        ("n", "numeric(20,6)"),
        ("r", "real"),
        ("d", "double precision"),
        ("t", "text"),
        ("v", "text"),
        ("c", "text"),
        ("flag", "boolean"),
        ("day", "date"),
        ("tm", "time without time zone"),
        ("ts", "timestamp without time zone"),
        ("tstz", "timestamp with time zone"),
        ("u", "text"),
        ("j", "text"),
        ("jb", "text"),
        ("raw", "bytea"),
    ];
    let expect_types: Vec<(String, String)> = expect_types
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(types, expect_types);
    let values = text_rows(&client, "SELECT s, i, b, n, r, d, t, v, c, flag, day, tm, ts, u, j, jb FROM all_types WHERE n > 12345678901234.12").await;
    assert_eq!(
        values,
        vec![
            vec![
                "-2",
                "40000",
                "9000000000",
                "12345678901234.123456",
                "1.5",
                "2.25",
                "text",
                "vc",
                "ab",
                "t",
                "2024-02-29",
                "13:14:15",
                "2024-02-29 13:14:15.5",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "{\"a\": 1}",
                "{\"b\": [1, 2]}",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
        ]
    );
    let tstz = text_rows(
        &client,
        "SELECT tstz = TIMESTAMPTZ '2024-02-29 11:14:15Z', raw FROM all_types",
    )
    .await;
    assert_eq!(tstz[0][0], "t", "{tstz:?}");
    assert!(tstz[0][1].contains("00ff"), "{tstz:?}");
}

#[tokio::test]
async fn errors_at_create_time_and_a_source_going_down() {
    let (dir, pg, server) = start("pg-errors").await;
    let client = server.client().await;
    let create = |location: String, options: &str| {
        format!(
            "CREATE EXTERNAL TABLE t STORED AS POSTGRES LOCATION '{location}' OPTIONS ({options})"
        )
    };
    let ok_options = "'table' 'orders', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable'";

    // Secrets are refused before anything is stored.
    let in_url = format!(
        "postgres://{ROLE}:{PASSWORD}@127.0.0.1:{}/{DATABASE}",
        pg.port
    );
    let (code, msg) = sql_error(&client, &create(in_url, "'table' 'orders'")).await;
    assert_eq!(code, "22023", "{msg}");
    assert!(!msg.contains(PASSWORD));
    let (code, _) = sql_error(
        &client,
        &create(
            pg.location(),
            &format!("'table' 'orders', 'password' '{PASSWORD}'"),
        ),
    )
    .await;
    assert_eq!(code, "22023");

    // Unreachable host, wrong password, missing table: each refused, nothing kept.
    let closed = format!(
        "postgres://{ROLE}@127.0.0.1:{}/{DATABASE}",
        common::free_port()
    );
    let (code, msg) = sql_error(&client, &create(closed, ok_options)).await;
    assert_eq!(code, "08001", "{msg}");
    let (code, msg) = sql_error(
        &client,
        &create(
            pg.location(),
            "'table' 'orders', 'password_env' 'WRONG_PG_PASSWORD', 'sslmode' 'disable'",
        ),
    )
    .await;
    assert_eq!(code, "28P01", "{msg}");
    let (code, msg) = sql_error(
        &client,
        &create(
            pg.location(),
            "'table' 'no_such_table', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable'",
        ),
    )
    .await;
    assert_eq!(code, "42P01", "{msg}");
    assert!(table_names(&client).await.is_empty());

    // A working table; its definition and the server log hold no password.
    client
        .simple_query(&create(pg.location(), ok_options))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM t").await,
        vec![vec!["8".to_string()]]
    );
    let shown = text_rows(&client, "SHOW CREATE TABLE t").await[0][1].clone();
    assert!(
        shown.contains("'password_env' 'APP_PG_PASSWORD'") && !shown.contains(PASSWORD),
        "{shown}"
    );
    // ... and re-runs as shown.
    client.simple_query("DROP TABLE t").await.unwrap();
    client.simple_query(&shown).await.unwrap();
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM t").await,
        vec![vec!["8".to_string()]]
    );
    let catalog = std::fs::read(server.data_dir.join("catalog.db")).unwrap();
    let wal = std::fs::read(server.data_dir.join("catalog.db-wal")).unwrap_or_default();
    for bytes in [&catalog, &wal] {
        assert!(!String::from_utf8_lossy(bytes).contains(PASSWORD));
    }

    // The source goes down: only queries touching it fail, with an 08 SQLSTATE.
    let local_dir = dir.path().join("local");
    std::fs::create_dir_all(&local_dir).unwrap();
    std::fs::write(
        local_dir.join("a.parquet"),
        data::parquet_bytes(&data::batch(&[("u".into(), 1)])),
    )
    .unwrap();
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE local STORED AS PARQUET LOCATION '{}/'",
            local_dir.display()
        ))
        .await
        .unwrap();
    pg.stop();
    let (code, msg) = sql_error(&client, "SELECT count(*) FROM t WHERE id > 1").await;
    assert!(code.starts_with("08"), "{code} {msg}");
    assert!(!msg.contains(PASSWORD));
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM local").await,
        vec![vec!["1".to_string()]]
    );
    pg.pg_ctl_start();
    let back = client
        .simple_query("SELECT count(*) FROM t WHERE id > 1")
        .await;
    assert!(back.is_ok(), "{back:?}; server log:\n{}", server.log_text());
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM t WHERE id > 1").await,
        vec![vec!["7".to_string()]]
    );
    assert!(!server.log_text().contains(PASSWORD));
}

#[tokio::test]
async fn external_schema_is_discovered_once_refreshed_and_dropped() {
    let (dir, pg, mut server) = start("pg-schema").await;
    let client = server.client().await;
    let create = format!(
        "CREATE EXTERNAL SCHEMA app FROM POSTGRES LOCATION '{}' \
         OPTIONS ('schema' 'public', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable')",
        pg.location()
    );
    let (code, _) = sql_error(
        &client,
        &create.replace("'schema' 'public'", "'schema' 'nowhere'"),
    )
    .await;
    assert_eq!(code, "42P01");
    client.simple_query(&create).await.unwrap();
    let (code, _) = sql_error(&client, &create).await;
    assert_eq!(code, "42P06");

    // Listed from the catalog: PostgreSQL receives nothing.
    let mark = pg.log_text().len();
    let listed = text_rows(
        &client,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' ORDER BY 1",
    )
    .await;
    let expected = [
        "Odd \"Name\" \\ é",
        "all_types",
        "big_orders",
        "customers",
        "order_totals",
        "orders",
    ];
    assert_eq!(listed, expected.map(|t| vec![t.to_string()]).to_vec());
    // The catalog scans psql's \dt / \d and BI tools' sync send are served from
    // the stored columns too: no remote statement per table.
    let relations = text_rows(
        &client,
        "SELECT c.relname FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'app' ORDER BY 1",
    )
    .await;
    assert_eq!(relations, listed);
    let attributes = text_rows(
        &client,
        "SELECT a.attname FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON a.attrelid = c.oid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'app' AND c.relname = 'orders' AND a.attnum > 0 ORDER BY a.attnum",
    )
    .await;
    assert_eq!(
        attributes,
        ["id", "customer", "amount", "placed", "note"].map(|c| vec![c.to_string()])
    );
    let columns = text_rows(
        &client,
        "SELECT column_name, data_type, udt_name FROM information_schema.columns \
         WHERE table_schema = 'app' AND table_name = 'orders' ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(
        columns,
        [
            ["id", "integer", "int4"],
            ["customer", "text", "text"],
            ["amount", "numeric", "numeric"],
            ["placed", "date", "date"],
            ["note", "text", "text"],
        ]
        .map(|r| r.map(String::from).to_vec())
    );
    assert!(pg.statements_since(mark).is_empty());

    // Views and materialized views are mounted like tables.
    assert_eq!(
        text_rows(&client, "SELECT count(*), sum(amount) FROM app.big_orders").await,
        vec![vec!["4".to_string(), "142.74".into()]]
    );
    assert_eq!(
        text_rows(
            &client,
            "SELECT total = 100, total FROM app.order_totals WHERE customer = 'c42'"
        )
        .await,
        vec![vec!["t".to_string(), "100.00000000000000000000".into()]]
    );

    // Same-source join pushed as one statement; cross-source join with Parquet.
    let mark = pg.log_text().len();
    let join = "SELECT c.region, sum(o.amount) FROM app.orders o JOIN app.customers c \
                USING (customer) GROUP BY 1 ORDER BY 1";
    assert_eq!(
        text_rows(&client, join).await,
        vec![
            vec!["east".to_string(), "100.00".into()],
            vec!["north".into(), "42.75".into()],
            vec!["south".into(), "7.00".into()],
        ]
    );
    let sent: Vec<String> = pg
        .statements_since(mark)
        .into_iter()
        .filter(|s| s.contains("\"orders\"") || s.contains("\"customers\""))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].contains("JOIN"), "{sent:#?}");
    let parquet_dir = dir.path().join("tiers");
    std::fs::create_dir_all(&parquet_dir).unwrap();
    let tiers = data::batch(&[("c1".into(), 1), ("c42".into(), 2)]);
    std::fs::write(parquet_dir.join("t.parquet"), data::parquet_bytes(&tiers)).unwrap();
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE tiers STORED AS PARQUET LOCATION '{}/'",
            parquet_dir.display()
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(
            &client,
            "SELECT t.amount, sum(o.amount) FROM app.orders o JOIN tiers t ON o.customer = t.user_id GROUP BY 1 ORDER BY 1"
        )
        .await,
        vec![vec!["1".to_string(), "30.75".into()], vec!["2".into(), "100.00".into()]]
    );

    // A new remote table appears after REFRESH; the schema survives a restart.
    pg.psql(
        DATABASE,
        "CREATE TABLE later (x integer); INSERT INTO later VALUES (7); GRANT SELECT ON later TO reporting",
    );
    client
        .simple_query("REFRESH EXTERNAL SCHEMA app")
        .await
        .unwrap();
    server.restart().await;
    let client = server.client().await;
    assert_eq!(
        text_rows(&client, "SELECT x FROM app.later").await,
        vec![vec!["7".to_string()]]
    );
    let catalog = std::fs::read(server.data_dir.join("catalog.db")).unwrap();
    assert!(!String::from_utf8_lossy(&catalog).contains(PASSWORD));

    client
        .simple_query("DROP EXTERNAL SCHEMA app")
        .await
        .unwrap();
    let (code, _) = sql_error(&client, "SELECT * FROM app.orders").await;
    assert_eq!(code, "42P01");
    client
        .simple_query("DROP EXTERNAL SCHEMA IF EXISTS app")
        .await
        .unwrap();
}

/// How many connections Vivace holds to the test server (its pool sets
/// `application_name`), optionally only those running a statement on `relation`.
fn vivace_backends(pg: &PgServer, running_on: Option<&str>) -> usize {
    let mut sql =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vivace'".to_string();
    if let Some(relation) = running_on {
        sql.push_str(&format!(
            " AND state = 'active' AND query LIKE '%\"{relation}\"%'"
        ));
    }
    let out = pg.psql("postgres", &format!("COPY ({sql}) TO STDOUT"));
    out.trim().parse().unwrap()
}

/// Poll `f` until it holds, for at most `seconds`.
async fn eventually(seconds: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    f()
}

#[tokio::test]
async fn pools_close_with_their_last_table_and_schema() {
    let (_dir, pg, server) = start("pg-pools").await;
    let client = server.client().await;
    register_orders_and_customers(&client, &pg, "orders").await;
    let _ = rows(&client, "SELECT count(*) FROM orders").await;
    let _ = rows(&client, "SELECT count(*) FROM customers").await;
    assert!(vivace_backends(&pg, None) > 0);

    // One table of the server is left: its pool stays open.
    client.simple_query("DROP TABLE orders").await.unwrap();
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM customers").await,
        vec![vec!["5".to_string()]]
    );
    assert!(vivace_backends(&pg, None) > 0);
    // The last one: the connections close.
    client.simple_query("DROP TABLE customers").await.unwrap();
    assert!(
        eventually(10, || vivace_backends(&pg, None) == 0).await,
        "{} connections left after DROP TABLE",
        vivace_backends(&pg, None)
    );

    client
        .simple_query(&format!(
            "CREATE EXTERNAL SCHEMA app FROM POSTGRES LOCATION '{}' \
             OPTIONS ('password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable')",
            pg.location()
        ))
        .await
        .unwrap();
    let _ = rows(&client, "SELECT count(*) FROM app.orders").await;
    assert!(vivace_backends(&pg, None) > 0);
    client
        .simple_query("DROP EXTERNAL SCHEMA app")
        .await
        .unwrap();
    assert!(
        eventually(10, || vivace_backends(&pg, None) == 0).await,
        "{} connections left after DROP EXTERNAL SCHEMA",
        vivace_backends(&pg, None)
    );
}

#[tokio::test]
async fn cancelling_a_query_cancels_the_remote_statement() {
    let (_dir, pg, server) = start("pg-cancel").await;
    pg.psql(
        DATABASE,
        "CREATE VIEW slow AS SELECT x FROM generate_series(1, 1) AS x, pg_sleep(30); \
         GRANT SELECT ON slow TO reporting",
    );
    let client = server.client().await;
    client
        .simple_query(&create_sql(&pg, "slow", "slow"))
        .await
        .unwrap();
    client
        .simple_query("SET statement_timeout = '500ms'")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (code, msg) = sql_error(&client, "SELECT x FROM slow").await;
    assert_eq!(code, "57014", "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Without the cancel request the server would sleep on for 30 seconds.
    assert!(
        eventually(5, || vivace_backends(&pg, Some("slow")) == 0).await,
        "the remote statement still runs after the query was cancelled"
    );
    // The pool's connection is fine for the next query.
    client
        .simple_query("SET statement_timeout = 0")
        .await
        .unwrap();
    client
        .simple_query(&create_sql(&pg, "orders", "orders"))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM orders").await,
        vec![vec!["8".to_string()]]
    );
}

/// `STORED AS REDSHIFT` against the PostgreSQL test server: the same wire
/// protocol, Redshift's dialect. What Redshift lacks (here `concat`, and
/// `avg` over a decimal, which Redshift rounds to the argument's scale) is not
/// sent; the rest of the query is.
#[tokio::test]
async fn redshift_tables_push_only_what_redshift_has() {
    let (_dir, pg, server) = start("pg-redshift").await;
    let client = server.client().await;
    let redshift = format!("redshift://{ROLE}@127.0.0.1:{}/{DATABASE}", pg.port);
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE rs_orders STORED AS REDSHIFT LOCATION '{redshift}' \
             OPTIONS ('table' 'public.orders', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable')"
        ))
        .await
        .unwrap();
    client
        .simple_query(&create_sql(&pg, "pg_orders", "orders"))
        .await
        .unwrap();
    let shown = text_rows(&client, "SHOW CREATE TABLE rs_orders").await[0][1].clone();
    assert!(shown.contains("STORED AS REDSHIFT"), "{shown}");

    // (query, text the remote statement must hold, text it must not hold)
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "SELECT customer, count(*), sum(amount) FROM {t} WHERE placed >= DATE '2024-02-01' \
             GROUP BY customer ORDER BY customer NULLS LAST",
            &["GROUP BY", "sum(", "WHERE"],
            &[],
        ),
        (
            "SELECT id FROM {t} WHERE concat(customer, '!') = 'c42!' AND amount > 1 ORDER BY id",
            &["WHERE", "> 1"],
            &["concat"],
        ),
        (
            "SELECT customer, avg(amount) FROM {t} WHERE customer LIKE 'c%' GROUP BY customer \
             ORDER BY customer",
            &["LIKE 'c%'"],
            &["avg(", "GROUP BY"],
        ),
    ];
    for (sql, has, lacks) in cases {
        let mark = pg.log_text().len();
        let on_redshift = rows(&client, &sql.replace("{t}", "rs_orders")).await;
        let sent: Vec<String> = pg
            .statements_since(mark)
            .into_iter()
            .filter(|s| s.contains("\"orders\""))
            .collect();
        assert_eq!(sent.len(), 1, "{sql}: {sent:#?}");
        for part in *has {
            assert!(sent[0].contains(part), "{sql}: {part} not in {}", sent[0]);
        }
        for part in *lacks {
            assert!(!sent[0].contains(part), "{sql}: {part} in {}", sent[0]);
        }
        let on_postgres = rows(&client, &sql.replace("{t}", "pg_orders")).await;
        assert_eq!(on_redshift, on_postgres, "{sql}");
        assert!(!on_redshift.is_empty(), "{sql}");
        client
            .simple_query("SET vivace.pushdown = off")
            .await
            .unwrap();
        let local = rows(&client, &sql.replace("{t}", "rs_orders")).await;
        client
            .simple_query("SET vivace.pushdown = on")
            .await
            .unwrap();
        assert_eq!(on_redshift, local, "{sql}");
    }

    // EXPLAIN names the engine; an external schema works FROM REDSHIFT too.
    let plan = text_rows(&client, "EXPLAIN SELECT count(*) FROM rs_orders").await;
    assert!(plan[1][1].contains("source=redshift"), "{}", plan[1][1]);
    client
        .simple_query(&format!(
            "CREATE EXTERNAL SCHEMA dw FROM REDSHIFT LOCATION '{redshift}' \
             OPTIONS ('password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable')"
        ))
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM dw.big_orders").await,
        vec![vec!["4".to_string()]]
    );
    let (code, msg) = sql_error(
        &client,
        &format!(
            "CREATE EXTERNAL TABLE bad STORED AS REDSHIFT LOCATION '{}' OPTIONS ('table' 'orders')",
            pg.location()
        ),
    )
    .await;
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("redshift://"), "{msg}");
}

#[tokio::test]
async fn partitioned_tables_are_read_as_parallel_range_queries() {
    let (_dir, pg, server) = start("pg-partitions").await;
    pg.psql(
        DATABASE,
        "CREATE TABLE events AS SELECT g AS id, 'u' || (g % 7) AS who, \
           DATE '2024-01-01' + g % 100 AS day FROM generate_series(1, 1000) AS g; \
         INSERT INTO events VALUES (NULL, 'nobody', NULL); \
         GRANT SELECT ON events TO reporting",
    );
    let client = server.client().await;
    let create = |name: &str, options: &str| {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' \
             OPTIONS ('table' 'events', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable'{options})",
            pg.location()
        )
    };
    client.simple_query(&create("whole", "")).await.unwrap();
    client
        .simple_query(&create(
            "by_id",
            ", 'partition_column' 'id', 'partitions' '4'",
        ))
        .await
        .unwrap();
    client
        .simple_query(&create(
            "by_day",
            ", 'partition_column' 'day', 'partitions' '3'",
        ))
        .await
        .unwrap();

    let sorted = |mut rows: Vec<Vec<Option<String>>>| {
        rows.sort();
        rows
    };
    // (query, whether what is pushed is a scan): scans of a partitioned table
    // are one min/max statement and one statement per range; an aggregate is
    // pushed whole, unless pushdown is off (then its scan is split).
    let cases = [
        ("SELECT id, who FROM {t} WHERE who = 'u3'", true),
        ("SELECT * FROM {t}", true),
        ("SELECT who FROM {t} WHERE id > 990 OR id IS NULL", true),
        (
            "SELECT who, count(*), min(day) FROM {t} GROUP BY who",
            false,
        ),
    ];
    for (sql, split) in cases {
        let expected = sorted(rows(&client, &sql.replace("{t}", "whole")).await);
        assert!(!expected.is_empty(), "{sql}");
        for (table, partitions) in [("by_id", 4), ("by_day", 3)] {
            for pushdown in ["on", "off"] {
                client
                    .simple_query(&format!("SET vivace.pushdown = {pushdown}"))
                    .await
                    .unwrap();
                let mark = pg.log_text().len();
                let got = sorted(rows(&client, &sql.replace("{t}", table)).await);
                assert_eq!(got, expected, "{sql} on {table}, pushdown {pushdown}");
                let sent: Vec<String> = pg
                    .statements_since(mark)
                    .into_iter()
                    .filter(|s| s.contains("\"events\""))
                    .collect();
                let want = if split || pushdown == "off" {
                    1 + partitions
                } else {
                    1
                };
                assert_eq!(
                    sent.len(),
                    want,
                    "{sql} on {table}, pushdown {pushdown}: {sent:#?}"
                );
                if want > 1 {
                    assert!(sent.iter().any(|s| s.contains("min(")), "{sent:#?}");
                    assert!(sent.iter().any(|s| s.contains("IS NULL")), "{sent:#?}");
                }
            }
        }
    }
    client
        .simple_query("SET vivace.pushdown = on")
        .await
        .unwrap();
    // The four range statements, split between the tasks of a worker stage when
    // there are workers to run them.
    let plan = text_rows(&client, "EXPLAIN SELECT id FROM by_id WHERE who = 'u1'").await;
    let physical = &plan[1][1];
    assert!(physical.contains("partition_column=id"), "{physical}");
    assert_eq!(physical.matches(" sql=SELECT").count(), 4, "{physical}");
    assert!(physical.contains("\"id\" >= 751"), "{physical}");

    for (options, needle) in [
        (
            ", 'partition_column' 'who', 'partitions' '2'",
            "integer, date or timestamp",
        ),
        (", 'partition_column' 'nope', 'partitions' '2'", "no column"),
        (", 'partitions' '2'", "go together"),
        (
            ", 'partition_column' 'id', 'partitions' '1'",
            "between 2 and",
        ),
    ] {
        let (code, msg) = sql_error(&client, &create("bad", options)).await;
        assert_eq!(code, "22023", "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
}

/// Worker processes run the range statements of a partitioned table themselves:
/// the coordinator sends each a recipe (source, SQL, schema), the worker opens its
/// own pool (as `vivace-worker`, with the password from its own environment), and
/// the rows equal those of the unpartitioned table, with pushdown on and off.
#[tokio::test]
async fn worker_processes_run_partitioned_scans() {
    let cluster = common::cluster::Cluster::start_with_env(
        "pg-workers",
        &[],
        &[("APP_PG_PASSWORD", PASSWORD)],
    )
    .await;
    let pg = PgServer::start(&cluster.dir);
    pg.psql(
        DATABASE,
        "CREATE TABLE events AS SELECT g AS id, 'u' || (g % 7) AS who \
           FROM generate_series(1, 2000) AS g; \
         GRANT SELECT ON events TO reporting",
    );
    let _workers: Vec<_> = (0..2)
        .map(|_| {
            common::cluster::WorkerProcess::start_with_env(
                &cluster.dir,
                cluster.cluster_port,
                &cluster.secret_file,
                &[("APP_PG_PASSWORD", PASSWORD)],
            )
        })
        .collect();
    cluster.wait_for_workers(2).await;
    let client = cluster.server.client().await;
    for (name, options) in [
        ("whole", ""),
        ("by_id", ", 'partition_column' 'id', 'partitions' '4'"),
    ] {
        client
            .simple_query(&format!(
                "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' \
                 OPTIONS ('table' 'events', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable'{options})",
                pg.location()
            ))
            .await
            .unwrap();
    }
    let plan = text_rows(
        &client,
        "EXPLAIN SELECT id, who FROM by_id WHERE who = 'u3'",
    )
    .await;
    assert!(
        plan[1][1].contains("tasks=2") && plan[1][1].contains("DistributedLeafExec"),
        "{}",
        plan[1][1]
    );
    for pushdown in ["on", "off"] {
        client
            .simple_query(&format!("SET vivace.pushdown = {pushdown}"))
            .await
            .unwrap();
        for sql in [
            "SELECT id, who FROM {t} WHERE who = 'u3' ORDER BY id",
            "SELECT who, count(*), sum(id) FROM {t} GROUP BY who ORDER BY who",
        ] {
            let expected = rows(&client, &sql.replace("{t}", "whole")).await;
            assert!(!expected.is_empty(), "{sql}");
            let got = rows(&client, &sql.replace("{t}", "by_id")).await;
            assert_eq!(got, expected, "{sql}, pushdown {pushdown}");
        }
    }
    let worker_connections: i64 = pg
        .psql(
            DATABASE,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vivace-worker'",
        )
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap();
    assert!(
        worker_connections >= 2,
        "both workers should hold connections, found {worker_connections}"
    );

    // A source that is down fails the queries that read it with 08001, and only those.
    pg.stop();
    for table in ["whole", "by_id"] {
        let (code, msg) =
            sql_error(&client, &format!("SELECT id FROM {table} WHERE who = 'u3'")).await;
        assert_eq!(code, "08001", "{table}: {msg}");
    }
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*) FROM system.nodes WHERE role = 'worker'"
        )
        .await,
        vec![vec!["2".to_string()]]
    );
}

/// A prepared statement keeps its plan between executions, and each
/// execution's values still reach PostgreSQL inside the one statement Vivace
/// sends, quoted as literals; its rows are those of the same query run
/// without pushdown (by another session).
#[tokio::test]
async fn prepared_statements_push_each_executions_values() {
    let (_dir, pg, server) = start("pg-prepared").await;
    let client = server.client().await;
    register_orders_and_customers(&client, &pg, "public.orders").await;
    let local = server.client().await;
    local
        .simple_query("SET vivace.pushdown = off")
        .await
        .unwrap();
    let lookup = client
        .prepare("SELECT id FROM orders WHERE customer = $1 ORDER BY id")
        .await
        .unwrap();
    for customer in ["c42", "c1", "x' OR '1'='1", "c42", "c9"] {
        let mark = pg.log_text().len();
        let got: Vec<String> = client
            .query(&lookup, &[&customer])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i32>(0).to_string())
            .collect();
        let sent: Vec<String> = pg
            .statements_since(mark)
            .into_iter()
            .filter(|s| s.contains("\"orders\""))
            .collect();
        let quoted = format!("'{}'", customer.replace('\'', "''"));
        assert!(
            sent.len() == 1 && sent[0].contains("WHERE") && sent[0].contains(&quoted),
            "{customer}: {sent:#?}"
        );
        let want: Vec<String> = text_rows(
            &local,
            &format!("SELECT id FROM orders WHERE customer = {quoted} ORDER BY id"),
        )
        .await
        .concat();
        assert_eq!(got, want, "{customer}");
    }
    // A join and an aggregate pushed whole, with the value inside.
    let regions = client
        .prepare(
            "SELECT c.region, count(*) FROM orders o JOIN customers c USING (customer) \
             WHERE o.id > $1 GROUP BY 1 ORDER BY 1",
        )
        .await
        .unwrap();
    for above in [0_i32, 3, 4, 100, 3] {
        let mark = pg.log_text().len();
        let got: Vec<Vec<String>> = client
            .query(&regions, &[&above])
            .await
            .unwrap()
            .iter()
            .map(|r| vec![r.get::<_, String>(0), r.get::<_, i64>(1).to_string()])
            .collect();
        let sent = pg.statements_since(mark).join("\n");
        assert!(
            sent.contains("JOIN") && sent.contains(&format!("> {above}")),
            "{above}: {sent}"
        );
        let want = text_rows(
            &local,
            &format!(
                "SELECT c.region, count(*) FROM orders o JOIN customers c USING (customer) \
                 WHERE o.id > {above} GROUP BY 1 ORDER BY 1"
            ),
        )
        .await;
        assert_eq!(got, want, "id > {above}");
    }
}

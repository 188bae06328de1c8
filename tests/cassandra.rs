//! `STORED AS CASSANDRA` against a real Apache Cassandra 5.0 (started once for
//! this binary, password authentication on): every CQL type as its Arrow
//! column, key pushdown checked against pushdown off and against the rows the
//! scan moved, token-range reads on two workers covering every row once,
//! external schemas, and errors.

mod common;

use common::cassandra::{Cassandra, PASSWORD, USER};
use common::http::{metric_sum, metrics_text};
use common::{Server, TempDir, both_ways, explain, sql_error, text_rows};
use futures::StreamExt;
use scylla::client::session::Session;
use tokio_postgres::Client;

const PASSWORD_ENV: &str = "VIVACE_TEST_CASS_PASSWORD";

async fn server(dir: &TempDir, workers: &str) -> Server {
    Server::start_with(dir, &["--workers", workers], &[(PASSWORD_ENV, PASSWORD)]).await
}

fn options(keyspace: &str, extra: &str) -> String {
    format!("'keyspace' '{keyspace}', 'user' '{USER}', 'password_env' '{PASSWORD_ENV}'{extra}")
}

async fn create(
    client: &Client,
    name: &str,
    cass: &Cassandra,
    keyspace: &str,
    table: &str,
    extra: &str,
) {
    let sql = format!(
        "CREATE EXTERNAL TABLE {name} STORED AS CASSANDRA LOCATION '{}' OPTIONS ({}, 'table' '{table}'{extra})",
        cass.location(),
        options(keyspace, "")
    );
    client
        .simple_query(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

async fn cql(session: &Session, statement: &str) {
    session
        .query_unpaged(statement, ())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn keyspace(session: &Session, name: &str) {
    cql(
        session,
        &format!("CREATE KEYSPACE IF NOT EXISTS {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
    )
    .await;
}

/// Rows the Cassandra scan of `sql` produced (EXPLAIN ANALYZE's output_rows).
async fn rows_moved(client: &Client, sql: &str) -> u64 {
    let plan = explain(client, &format!("ANALYZE {sql}")).await;
    let line = plan
        .lines()
        .find(|l| l.contains("RemoteScanExec"))
        .unwrap_or_else(|| panic!("no remote scan in:\n{plan}"));
    let (_, rest) = line
        .split_once("output_rows=")
        .unwrap_or_else(|| panic!("no output_rows in: {line}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The parameters of the traced statement whose text contains `needle`
/// (`query` and each bound value), waiting for the trace to be written.
async fn traced_statement(
    session: &Session,
    needle: &str,
) -> std::collections::BTreeMap<String, String> {
    for _ in 0..50 {
        // system_traces has two replicas; this cluster has one node.
        let mut statement =
            scylla::statement::Statement::new("SELECT parameters FROM system_traces.sessions");
        statement.set_consistency(scylla::statement::Consistency::One);
        let rows = session
            .query_unpaged(statement, ())
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        for row in rows
            .rows::<(Option<std::collections::BTreeMap<String, String>>,)>()
            .unwrap()
        {
            let (Some(parameters),) = row.unwrap() else {
                continue;
            };
            if parameters.get("query").is_some_and(|q| q.contains(needle)) {
                return parameters;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("no traced statement contains {needle}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_cql_type_reads_as_its_column() {
    let cass = Cassandra::shared();
    let session = cass.session().await;
    keyspace(&session, "types").await;
    cql(
        &session,
        "CREATE TYPE IF NOT EXISTS types.address (street text, zip int)",
    )
    .await;
    cql(
        &session,
        "CREATE TABLE types.everything (id int PRIMARY KEY, a ascii, t text, ti tinyint, si smallint, i int, bi bigint, \
         vi varint, de decimal, f float, d double, b boolean, dt date, tm time, ts timestamp, du duration, u uuid, \
         tu timeuuid, ip inet, bl blob, l list<int>, s set<text>, m map<text, int>, tp tuple<int, text>, \
         addr frozen<address>, v vector<float, 3>, fl frozen<list<int>>, \
         nest map<text, frozen<list<int>>>)",
    )
    .await;
    cql(
        &session,
        "INSERT INTO types.everything (id, a, t, ti, si, i, bi, vi, de, f, d, b, dt, tm, ts, du, u, tu, ip, bl, l, s, m, tp, addr, v, fl, nest) \
         VALUES (1, 'abc', 'Zürich \"Old\"', -8, 300, 70000, 9000000000, 123456789012345678901234567890, 12345.6789, 1.5, 2.25, true, \
         '2024-03-05', '10:11:12.123456789', '2024-03-05 10:00:00.123Z', 1mo2d3ns, 3f2504e0-4f89-11d3-9a0c-0305e82c3301, \
         50554d6e-29bb-11e5-b345-feff819cdc9f, '10.0.0.1', 0xcafe, [3, 1, 3], {'x', 'a'}, {'k': 1, 'j': 2}, (7, 'seven'), \
         {street: 'Main', zip: 1234}, [0.5, 1.5, 2.5], [9, 8], {'p': [1, 2], 'q': []})",
    )
    .await;
    cql(&session, "INSERT INTO types.everything (id) VALUES (2)").await;
    cql(
        &session,
        "CREATE TABLE types.hits (k text PRIMARY KEY, n counter)",
    )
    .await;
    cql(&session, "UPDATE types.hits SET n = n + 41 WHERE k = 'a'").await;

    let dir = TempDir::new("cass-types");
    let server = server(&dir, "0").await;
    let client = server.client().await;
    create(&client, "everything", cass, "types", "everything", "").await;
    create(&client, "hits", cass, "types", "hits", "").await;
    let got = text_rows(
        &client,
        "SELECT id, a, t, ti, si, i, bi, vi, de, f, d, b, dt, tm, ts, u, tu, ip, bl FROM everything ORDER BY id",
    )
    .await;
    assert_eq!(
        got[0],
        [
            "1",
            "abc",
            "Zürich \"Old\"",
            "-8",
            "300",
            "70000",
            "9000000000",
            "123456789012345678901234567890",
            "12345.6789000000",
            "1.5",
            "2.25",
            "t",
            "2024-03-05",
            "10:11:12.123457",
            "2024-03-05 10:00:00.123+00",
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "50554d6e-29bb-11e5-b345-feff819cdc9f",
            "10.0.0.1",
            "\\xcafe",
        ]
    );
    assert_eq!(got[1][0], "2");
    assert!(got[1][1..].iter().all(|v| v == "NULL"), "{:?}", got[1]);
    // Collections, tuples and user-defined types are real nested values.
    let nested = text_rows(
        &client,
        "SELECT l[1], cardinality(l), s[1], m['k'], m['j'], tp['f2'], addr['zip'], v[3], \
         extract(month FROM du), extract(day FROM du), fl[2], nest['p'][2], cardinality(nest['q']) \
         FROM everything WHERE id = 1",
    )
    .await;
    assert_eq!(
        nested,
        [[
            "3", "3", "a", "1", "2", "seven", "1234", "2.5", "1", "2", "8", "2", "0"
        ]]
    );
    // Whole nested values reach clients: lists as arrays, the rest as json.
    let whole = text_rows(
        &client,
        "SELECT l, s, m, tp, addr, v, fl, nest, du FROM everything WHERE id = 1",
    )
    .await;
    assert_eq!(
        whole,
        [[
            "{3,1,3}",
            "{a,x}",
            r#"{"j":2,"k":1}"#,
            r#"{"f1":7,"f2":"seven"}"#,
            r#"{"street":"Main","zip":1234}"#,
            "{0.5,1.5,2.5}",
            "{9,8}",
            r#"{"p":[1,2],"q":[]}"#,
            "1 mon 2 days",
        ]]
    );
    assert_eq!(
        text_rows(&client, "SELECT k, n FROM hits").await,
        [["a", "41"]]
    );
    // \d shows every column with its type, the key columns among them.
    let described = text_rows(
        &client,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'everything' ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(described.len(), 28);
    assert_eq!(described[0][0], "id");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_filters_read_only_their_partitions() {
    let cass = Cassandra::shared();
    let session = cass.session().await;
    keyspace(&session, "app").await;
    cql(
        &session,
        "CREATE TABLE app.sessions (user_id text, day int, ts bigint, device text, PRIMARY KEY ((user_id, day), ts))",
    )
    .await;
    let insert = session
        .prepare("INSERT INTO app.sessions (user_id, day, ts, device) VALUES (?, ?, ?, ?)")
        .await
        .unwrap();
    for u in 0..10 {
        for day in 1..=5 {
            for ts in 0..20i64 {
                let user = if u == 9 {
                    "o'brien \"q\"".to_string()
                } else {
                    format!("u{u}")
                };
                session
                    .execute_unpaged(&insert, (user, day, ts, format!("d{}", ts % 3)))
                    .await
                    .unwrap();
            }
        }
    }
    let dir = TempDir::new("cass-keys");
    let server = server(&dir, "0").await;
    let client = server.client().await;
    create(&client, "sessions", cass, "app", "sessions", "").await;

    // psql's \d shows the key: partition columns in parentheses, then the
    // clustering columns, as CQL writes a primary key.
    let (out, err, ok) = server.psql(&["-c", "\\d sessions"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(r#""sessions_pkey" PRIMARY KEY, cassandra ((user_id, day), ts)"#),
        "{out}"
    );
    // Drivers find the key columns where PostgreSQL keeps them.
    let key = text_rows(
        &client,
        "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) \
         WHERE c.relname = 'sessions' AND i.indisprimary ORDER BY a.attnum",
    )
    .await;
    assert_eq!(key, [["user_id"], ["day"], ["ts"]]);

    // One partition, a clustering range.
    let sql = "SELECT ts, device FROM sessions WHERE user_id = 'u1' AND day = 3 AND ts >= 15";
    let got = both_ways(&client, sql).await;
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], ["15", "d0"]);
    let plan = explain(&client, sql).await;
    assert!(
        plan.contains(r#"WHERE \"user_id\" = ? AND \"day\" = ? AND \"ts\" >= ?"#),
        "{plan}"
    );
    assert!(!plan.contains("token("), "{plan}");
    assert_eq!(rows_moved(&client, sql).await, 5);
    // IN lists and a small integer range expand into partitions.
    let sql = "SELECT day, count(*) FROM sessions WHERE user_id IN ('u1', 'u2', 'u3') AND day BETWEEN 2 AND 4 GROUP BY day";
    let got = both_ways(&client, sql).await;
    assert_eq!(got, [["2", "60"], ["3", "60"], ["4", "60"]]);
    assert_eq!(
        rows_moved(
            &client,
            "SELECT ts FROM sessions WHERE user_id IN ('u1', 'u2', 'u3') AND day BETWEEN 2 AND 4"
        )
        .await,
        180
    );
    // A quote in a value is a bound parameter, not CQL text.
    let got = both_ways(
        &client,
        "SELECT count(*) FROM sessions WHERE user_id = 'o''brien \"q\"' AND day = 1",
    )
    .await;
    assert_eq!(got, [["20"]]);
    // Only part of the key: token ranges, the filter stays with Vivace.
    let sql = "SELECT count(*) FROM sessions WHERE user_id = 'u1'";
    assert_eq!(both_ways(&client, sql).await, [["100"]]);
    let plan = explain(&client, sql).await;
    assert!(plan.contains("token("), "{plan}");
    // A non-key filter is never pushed without allow_filtering.
    let sql = "SELECT count(*) FROM sessions WHERE device = 'd1'";
    assert_eq!(both_ways(&client, sql).await, [["350"]]);
    assert!(!explain(&client, sql).await.contains("ALLOW FILTERING"));
    create(
        &client,
        "sessions_f",
        cass,
        "app",
        "sessions",
        ", 'allow_filtering' 'true'",
    )
    .await;
    let sql = "SELECT count(*) FROM sessions_f WHERE device = 'd1'";
    assert_eq!(both_ways(&client, sql).await, [["350"]]);
    assert!(explain(&client, sql).await.contains("ALLOW FILTERING"));
    assert_eq!(
        rows_moved(&client, "SELECT ts FROM sessions_f WHERE device = 'd1'").await,
        350
    );
    // What the server ran: with tracing on, system_traces holds each
    // statement and the values bound to it.
    create(
        &client,
        "sessions_t",
        cass,
        "app",
        "sessions",
        ", 'tracing' 'true'",
    )
    .await;
    let sql = "SELECT ts FROM sessions_t WHERE user_id = 'u7' AND day = 2 AND ts < 4";
    assert_eq!(text_rows(&client, sql).await.len(), 4);
    let traced = traced_statement(&session, "\"ts\" < ?").await;
    assert_eq!(
        traced["query"],
        "SELECT \"ts\" FROM \"app\".\"sessions\" WHERE \"user_id\" = ? AND \"day\" = ? AND \"ts\" < ?"
    );
    assert_eq!(
        (
            traced["bound_var_0_user_id"].as_str(),
            traced["bound_var_1_day"].as_str(),
            traced["bound_var_2_ts"].as_str()
        ),
        ("'u7'", "2", "4")
    );
    // LIMIT on a partition read.
    let sql = "SELECT ts FROM sessions WHERE user_id = 'u4' AND day = 5 LIMIT 3";
    assert_eq!(text_rows(&client, sql).await.len(), 3);
    assert!(explain(&client, sql).await.contains("LIMIT 3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn top_rows_of_each_partition_read_with_per_partition_limit() {
    let cass = Cassandra::shared();
    let session = cass.session().await;
    keyspace(&session, "tops").await;
    cql(
        &session,
        "CREATE TABLE tops.readings (site text, day int, ts int, v int, PRIMARY KEY ((site, day), ts))",
    )
    .await;
    cql(
        &session,
        "CREATE TABLE tops.latest (k int, ts int, v int, PRIMARY KEY (k, ts)) WITH CLUSTERING ORDER BY (ts DESC)",
    )
    .await;
    let insert = session
        .prepare("INSERT INTO tops.readings (site, day, ts, v) VALUES (?, ?, ?, ?)")
        .await
        .unwrap();
    for site in ["a", "b", "c"] {
        for day in 1..=4 {
            for ts in 0..10 {
                session
                    .execute_unpaged(&insert, (site, day, ts, ts * day))
                    .await
                    .unwrap();
            }
        }
    }
    let insert = session
        .prepare("INSERT INTO tops.latest (k, ts, v) VALUES (?, ?, ?)")
        .await
        .unwrap();
    for k in 0..5 {
        for ts in 0..10 {
            session
                .execute_unpaged(&insert, (k, ts, k + ts))
                .await
                .unwrap();
        }
    }
    let dir = TempDir::new("cass-tops");
    let server = server(&dir, "0").await;
    let client = server.client().await;
    create(&client, "readings", cass, "tops", "readings", "").await;
    create(&client, "latest", cass, "tops", "latest", "").await;
    let top = |table: &str, by: &str, order: &str, bound: &str| {
        format!(
            "SELECT * FROM (SELECT {by}, ts, v, row_number() OVER (PARTITION BY {by} {order}) AS rn \
             FROM {table}) t WHERE {bound} ORDER BY {by}, ts"
        )
    };

    // The first 2 readings of each of the 12 partitions, in clustering order.
    let sql = top("readings", "site, day", "ORDER BY ts", "rn <= 2");
    let got = both_ways(&client, &sql).await;
    assert_eq!(got.len(), 24);
    assert!(got.iter().all(|r| r[2] == "0" || r[2] == "1"), "{got:?}");
    assert!(
        explain(&client, &sql)
            .await
            .contains("PER PARTITION LIMIT 2")
    );
    assert_eq!(rows_moved(&client, &sql).await, 24);
    // The key's columns in another order, `rn = 1`, `rn < 4`; no ORDER BY
    // (any one row of each partition: counted, not compared).
    let sql = top("readings", "day, site", "ORDER BY ts", "rn = 1");
    assert_eq!(both_ways(&client, &sql).await.len(), 12);
    assert_eq!(rows_moved(&client, &sql).await, 12);
    let sql = "SELECT count(*), count(DISTINCT site || day) FROM (SELECT site, day, \
               row_number() OVER (PARTITION BY site, day) AS rn FROM readings) t WHERE rn = 1";
    assert_eq!(both_ways(&client, sql).await, [["12", "12"]]);
    assert_eq!(rows_moved(&client, sql).await, 12);
    let sql = top("readings", "site, day", "ORDER BY ts", "rn < 4 AND v > 0");
    assert_eq!(both_ways(&client, &sql).await.len(), 24);
    assert_eq!(rows_moved(&client, &sql).await, 36);
    // With the partitions fixed too.
    let sql = "SELECT ts FROM (SELECT site, day, ts, row_number() OVER (PARTITION BY site, day ORDER BY ts) AS rn \
               FROM readings WHERE site = 'b' AND day IN (2, 3)) t WHERE rn <= 3 ORDER BY ts";
    assert_eq!(
        both_ways(&client, sql).await,
        [["0"], ["0"], ["1"], ["1"], ["2"], ["2"]]
    );
    assert_eq!(rows_moved(&client, sql).await, 6);

    // Not the same rows as Cassandra's first n: nothing is limited.
    for sql in [
        // Against the stored order.
        top("readings", "site, day", "ORDER BY ts DESC", "rn <= 2"),
        // Part of the key only.
        top("readings", "site", "ORDER BY ts", "rn <= 2"),
        // A filter Vivace runs under the window.
        "SELECT * FROM (SELECT site, day, ts, row_number() OVER (PARTITION BY site, day ORDER BY ts) AS rn \
         FROM readings WHERE v > 4) t WHERE rn <= 2"
            .to_string(),
    ] {
        let got = both_ways(&client, &sql).await;
        assert!(!got.is_empty());
        assert!(!explain(&client, &sql).await.contains("PER PARTITION"), "{sql}");
    }
    let got = both_ways(
        &client,
        &top("readings", "site, day", "ORDER BY ts DESC", "rn <= 2"),
    )
    .await;
    assert!(got.iter().all(|r| r[2] == "8" || r[2] == "9"), "{got:?}");

    // A table clustered descending: its newest rows are its first.
    let sql = top("latest", "k", "ORDER BY ts DESC", "rn <= 3");
    let got = both_ways(&client, &sql).await;
    assert_eq!(got.len(), 15);
    assert!(
        got.iter().all(|r| ["7", "8", "9"].contains(&r[1].as_str())),
        "{got:?}"
    );
    assert_eq!(rows_moved(&client, &sql).await, 15);
    let sql = top("latest", "k", "ORDER BY ts", "rn <= 3");
    let got = both_ways(&client, &sql).await;
    assert!(
        got.iter().all(|r| ["0", "1", "2"].contains(&r[1].as_str())),
        "{got:?}"
    );
    assert!(!explain(&client, &sql).await.contains("PER PARTITION"));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_ranges_cover_every_row_once_on_one_and_two_workers() {
    let cass = Cassandra::shared();
    let session = cass.session().await;
    keyspace(&session, "big").await;
    cql(
        &session,
        "CREATE TABLE big.events (id bigint, seq int, amount bigint, PRIMARY KEY (id, seq))",
    )
    .await;
    // A million rows: 10,000 partitions of 100, loaded a partition per batch.
    let n: i64 = 1_000_000;
    let per_partition = 100;
    let insert = session
        .prepare("INSERT INTO big.events (id, seq, amount) VALUES (?, ?, ?)")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let batches = (0..n / per_partition).map(|p| {
        let (session, insert) = (&session, &insert);
        async move {
            let mut batch =
                scylla::statement::batch::Batch::new(scylla::statement::batch::BatchType::Unlogged);
            let mut values = Vec::with_capacity(per_partition as usize);
            for seq in 0..per_partition {
                batch.append_statement(insert.clone());
                let i = p * per_partition + seq;
                values.push((p, seq as i32, i * 3));
            }
            session.batch(&batch, values).await.unwrap();
        }
    });
    futures::stream::iter(batches)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    eprintln!("loaded {n} rows in {:?}", started.elapsed());
    let want: i64 = (0..n).map(|i| i * 3).sum();
    for workers in ["1", "2"] {
        let dir = TempDir::new("cass-big");
        let server = server(&dir, workers).await;
        let client = server.client().await;
        create(
            &client,
            "events",
            cass,
            "big",
            "events",
            ", 'splits' '8', 'fetch_size' '5000'",
        )
        .await;
        let started = std::time::Instant::now();
        let got = text_rows(
            &client,
            "SELECT count(*), count(DISTINCT id * 1000 + seq), sum(amount) FROM events",
        )
        .await;
        eprintln!(
            "read {n} rows on {workers} workers in {:?}",
            started.elapsed()
        );
        assert_eq!(got, [[n.to_string(), n.to_string(), want.to_string()]]);
        let plan = explain(&client, "SELECT id, amount FROM events").await;
        assert!(plan.matches("token(").count() >= 8, "{plan}");
        if workers == "2" {
            assert!(plan.contains("tasks="), "{plan}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn external_schemas_and_errors() {
    let cass = Cassandra::shared();
    let session = cass.session().await;
    keyspace(&session, "shop").await;
    cql(
        &session,
        "CREATE TABLE shop.orders (id int PRIMARY KEY, total decimal)",
    )
    .await;
    cql(
        &session,
        "CREATE TABLE shop.items (order_id int, n int, sku text, PRIMARY KEY (order_id, n))",
    )
    .await;
    cql(
        &session,
        "INSERT INTO shop.orders (id, total) VALUES (1, 10.50)",
    )
    .await;
    cql(
        &session,
        "INSERT INTO shop.items (order_id, n, sku) VALUES (1, 1, 'a')",
    )
    .await;
    let dir = TempDir::new("cass-errors");
    let server = server(&dir, "0").await;
    let client = server.client().await;
    let schema = format!(
        "CREATE EXTERNAL SCHEMA shop FROM CASSANDRA LOCATION '{}' OPTIONS ({})",
        cass.location(),
        options("shop", "")
    );
    client.simple_query(&schema).await.unwrap();
    assert_eq!(
        text_rows(
            &client,
            "SELECT o.id, o.total, i.sku FROM shop.orders o JOIN shop.items i ON i.order_id = o.id"
        )
        .await,
        [["1", "10.5000000000", "a"]]
    );
    // REFRESH mounts a table made since; DROP unmounts them all.
    cql(
        &session,
        "CREATE TABLE shop.refunds (id int PRIMARY KEY, amount bigint)",
    )
    .await;
    cql(
        &session,
        "INSERT INTO shop.refunds (id, amount) VALUES (7, 70)",
    )
    .await;
    let (code, _) = sql_error(&client, "SELECT * FROM shop.refunds").await;
    assert_eq!(code, "42P01");
    client
        .simple_query("REFRESH EXTERNAL SCHEMA shop")
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT id, amount FROM shop.refunds").await,
        [["7", "70"]]
    );
    let tables = text_rows(
        &client,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop' ORDER BY 1",
    )
    .await;
    assert_eq!(tables, [["items"], ["orders"], ["refunds"]]);
    client
        .simple_query("DROP EXTERNAL SCHEMA shop")
        .await
        .unwrap();
    let (code, _) = sql_error(&client, "SELECT * FROM shop.orders").await;
    assert!(code == "42P01" || code == "3F000", "{code}");
    client.simple_query(&schema).await.unwrap();
    let location = cass.location();
    let cases = [
        (
            format!(
                "CREATE EXTERNAL TABLE e1 STORED AS CASSANDRA LOCATION 'cassandra://127.0.0.1:1' OPTIONS ({}, 'table' 'orders', 'connect_timeout' '2')",
                options("shop", "")
            ),
            "08001",
            "cannot reach Cassandra",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE e2 STORED AS CASSANDRA LOCATION '{location}' OPTIONS ('keyspace' 'shop', 'table' 'orders', 'user' '{USER}', 'password_env' 'HOME')"
            ),
            "28P01",
            "refused the credentials",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE e3 STORED AS CASSANDRA LOCATION '{location}' OPTIONS ({}, 'table' 'orders')",
                options("nowhere", "")
            ),
            "3F000",
            "no keyspace \"nowhere\"",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE e4 STORED AS CASSANDRA LOCATION '{location}' OPTIONS ({}, 'table' 'nothing')",
                options("shop", "")
            ),
            "42P01",
            "has no table \"nothing\"",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE e5 STORED AS CASSANDRA LOCATION '{location}' OPTIONS ({}, 'table' 'orders', 'password' 'x')",
                options("shop", "")
            ),
            "22023",
            "password_env",
        ),
    ];
    for (sql, code, needle) in &cases {
        let (got_code, message) = sql_error(&client, sql).await;
        assert_eq!(&got_code, code, "{sql}: {message}");
        assert!(message.contains(needle), "{sql}: {message}");
        assert!(!message.contains(PASSWORD), "{message}");
    }
    // Too few replicas for the consistency asked for; a data centre with no node.
    cql(
        &session,
        "CREATE KEYSPACE IF NOT EXISTS triple WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
    )
    .await;
    cql(&session, "CREATE TABLE triple.t (k int PRIMARY KEY, v int)").await;
    create(
        &client,
        "quorum",
        cass,
        "triple",
        "t",
        ", 'consistency' 'QUORUM'",
    )
    .await;
    let (code, message) = sql_error(&client, "SELECT * FROM quorum").await;
    assert_eq!(code, "57014", "{message}");
    assert!(
        message.contains("QUORUM") && message.contains("replicas"),
        "{message}"
    );
    create(&client, "one", cass, "triple", "t", ", 'consistency' 'ONE'").await;
    assert!(text_rows(&client, "SELECT * FROM one").await.is_empty());
    create(
        &client,
        "far",
        cass,
        "shop",
        "orders",
        ", 'local_dc' 'datacenter1'",
    )
    .await;
    assert_eq!(text_rows(&client, "SELECT id FROM far").await, [["1"]]);
    let sql = format!(
        "CREATE EXTERNAL TABLE e6 STORED AS CASSANDRA LOCATION '{location}' OPTIONS ({}, 'table' 'orders', 'local_dc' 'mars')",
        options("shop", "")
    );
    let (code, message) = sql_error(&client, &sql).await;
    assert_eq!(code, "08001", "{message}");
    assert!(message.contains("\"mars\""), "{message}");
    // TLS: the server's CA reads; another CA is refused at the handshake.
    create(
        &client,
        "tls_orders",
        cass,
        "shop",
        "orders",
        &format!(", 'ca_file' '{}'", cass.ca_file().display()),
    )
    .await;
    assert_eq!(
        text_rows(&client, "SELECT id FROM tls_orders").await,
        [["1"]]
    );
    let other = TempDir::new("cass-other-ca");
    common::credentials::make_certificates(other.path());
    let sql = format!(
        "CREATE EXTERNAL TABLE e7 STORED AS CASSANDRA LOCATION '{location}' OPTIONS ({}, 'table' 'orders', 'ca_file' '{}')",
        options("shop", ""),
        other.path().join("ca.crt").display()
    );
    let (code, message) = sql_error(&client, &sql).await;
    assert_eq!(code, "08001", "{message}");
    assert!(message.contains("certificate"), "{message}");
    for name in ["e1", "e2", "e3", "e4", "e5", "e7"] {
        let (code, _) = sql_error(&client, &format!("SELECT * FROM {name}")).await;
        assert_eq!(code, "42P01", "{name} was persisted");
    }
    // The secret never shows.
    create(&client, "orders", cass, "shop", "orders", "").await;
    let shown = text_rows(&client, "SHOW CREATE TABLE orders").await;
    assert!(format!("{shown:?}").contains("password_env"), "{shown:?}");
    assert!(!format!("{shown:?}").contains(PASSWORD), "{shown:?}");
    // A table dropped at the source: only queries touching it fail.
    cql(&session, "DROP TABLE shop.items").await;
    let (code, message) = sql_error(&client, "SELECT * FROM shop.items").await;
    assert_eq!(code, "42P01", "{message}");
    assert_eq!(
        text_rows(&client, "SELECT id FROM shop.orders").await,
        [["1"]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn joins_with_postgresql_and_parquet() {
    use common::postgres::{DATABASE, PASSWORD as PG_PASSWORD, PgServer};
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let cass = Cassandra::shared();
    let session = cass.session().await;
    keyspace(&session, "joins").await;
    cql(
        &session,
        "CREATE TABLE joins.sessions (user_id text, day int, ts bigint, device text, PRIMARY KEY (user_id, day, ts))",
    )
    .await;
    let insert = session
        .prepare("INSERT INTO joins.sessions (user_id, day, ts, device) VALUES (?, ?, ?, ?)")
        .await
        .unwrap();
    let devices = ["ios", "android", "web"];
    for i in 0..600i64 {
        let user = format!("u{}", i % 40);
        session
            .execute_unpaged(
                &insert,
                (user, (i % 5) as i32, i, devices[(i % 3) as usize]),
            )
            .await
            .unwrap();
    }
    let dir = TempDir::new("cass-join");
    let pg = PgServer::start(&dir);
    pg.psql(
        DATABASE,
        "CREATE TABLE accounts (id text PRIMARY KEY, country text NOT NULL); \
         INSERT INTO accounts SELECT 'u' || i, CASE WHEN i % 3 = 0 THEN 'ES' ELSE 'PT' END FROM generate_series(0, 39) i; \
         GRANT SELECT ON accounts TO reporting;",
    );
    // Parquet purchases: users 0..40 step 2, two each.
    let users: Vec<String> = (0..40)
        .step_by(2)
        .flat_map(|u| [format!("u{u}"), format!("u{u}")])
        .collect();
    let amounts: Vec<i64> = (0..users.len() as i64).map(|i| i * 7 + 1).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from(users.clone())),
            Arc::new(Int64Array::from(amounts.clone())),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("purchases")).unwrap();
    std::fs::write(
        dir.path().join("purchases/part-0.parquet"),
        common::data::parquet_bytes(&batch),
    )
    .unwrap();
    let server = Server::start_with(
        &dir,
        &["--workers", "2"],
        &[(PASSWORD_ENV, PASSWORD), ("APP_PG_PASSWORD", PG_PASSWORD)],
    )
    .await;
    let client = server.client().await;
    create(&client, "sessions", cass, "joins", "sessions", "").await;
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE accounts STORED AS POSTGRES LOCATION '{}' \
             OPTIONS ('table' 'accounts', 'password_env' 'APP_PG_PASSWORD', 'sslmode' 'disable')",
            pg.location()
        ))
        .await
        .unwrap();
    client
        .simple_query(&format!(
            "CREATE EXTERNAL TABLE purchases STORED AS PARQUET LOCATION '{}'",
            dir.path().join("purchases").display()
        ))
        .await
        .unwrap();
    let sql = "SELECT s.device, a.country, count(*) AS n, sum(p.amount) AS total \
               FROM sessions s JOIN accounts a ON a.id = s.user_id JOIN purchases p ON p.user_id = s.user_id \
               WHERE a.country = 'ES' AND s.day IN (1, 2, 3) GROUP BY 1, 2";
    let got = both_ways(&client, sql).await;
    // The same answer computed from the rows as loaded.
    let mut want: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for i in 0..600i64 {
        let u = i % 40;
        if u % 3 != 0 || !(1..=3).contains(&(i % 5)) {
            continue;
        }
        for (k, user) in users.iter().enumerate() {
            if *user == format!("u{u}") {
                let entry = want
                    .entry(devices[(i % 3) as usize].to_string())
                    .or_default();
                entry.0 += 1;
                entry.1 += amounts[k];
            }
        }
    }
    let mut want: Vec<Vec<String>> = want
        .into_iter()
        .map(|(device, (n, total))| {
            vec![device, "ES".to_string(), n.to_string(), total.to_string()]
        })
        .collect();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

/// How many requests of the traced statement containing `needle` the server
/// has run.
async fn traced_requests(session: &Session, needle: &str) -> usize {
    let mut statement =
        scylla::statement::Statement::new("SELECT parameters FROM system_traces.sessions");
    statement.set_consistency(scylla::statement::Consistency::One);
    statement.set_page_size(5000);
    let mut pager = session
        .query_iter(statement, ())
        .await
        .unwrap()
        .rows_stream::<(Option<std::collections::BTreeMap<String, String>>,)>()
        .unwrap();
    let mut n = 0;
    while let Some(row) = pager.next().await {
        let (Some(parameters),) = row.unwrap() else {
            continue;
        };
        n += usize::from(parameters.get("query").is_some_and(|q| q.contains(needle)));
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_query_stops_paging() {
    let cass = Cassandra::shared();
    let session = cass.session().await;
    keyspace(&session, "slow").await;
    cql(
        &session,
        "CREATE TABLE slow.rows (p int, c int, v text, PRIMARY KEY (p, c))",
    )
    .await;
    let insert = session
        .prepare("INSERT INTO slow.rows (p, c, v) VALUES (?, ?, ?)")
        .await
        .unwrap();
    let inserts = (0..20_000i32).map(|i| {
        let (session, insert) = (&session, &insert);
        async move {
            session
                .execute_unpaged(insert, (i / 50, i % 50, format!("v{i}")))
                .await
                .unwrap();
        }
    });
    futures::stream::iter(inserts)
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let dir = TempDir::new("cass-cancel");
    let server = server(&dir, "0").await;
    let client = server.client().await;
    // Ten rows a page, one token range, every page traced: 2,000 pages.
    create(
        &client,
        "slow_rows",
        cass,
        "slow",
        "rows",
        ", 'fetch_size' '10', 'splits' '1', 'tracing' 'true'",
    )
    .await;
    client
        .simple_query("SET statement_timeout = 1500")
        .await
        .unwrap();
    let (code, message) = sql_error(&client, "SELECT count(DISTINCT v) FROM slow_rows").await;
    assert_eq!(code, "57014", "{message}");
    let needle = "FROM \"slow\".\"rows\"";
    // Traces are written after each request: let the last ones land.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after_cancel = traced_requests(&session, needle).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let later = traced_requests(&session, needle).await;
    assert!(after_cancel >= 1, "the read never started");
    assert!(after_cancel < 2_000, "every page was read: {after_cancel}");
    assert_eq!(
        later, after_cancel,
        "pages were still read after the cancel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn source_metrics_count_each_page_as_the_server_runs_it() {
    let cass = Cassandra::shared();
    let session = cass.session().await;
    keyspace(&session, "paging").await;
    cql(
        &session,
        "CREATE TABLE paging.items (p int, c int, v text, PRIMARY KEY (p, c))",
    )
    .await;
    let insert = session
        .prepare("INSERT INTO paging.items (p, c, v) VALUES (?, ?, ?)")
        .await
        .unwrap();
    for i in 0..95i32 {
        session
            .execute_unpaged(&insert, (i / 10, i % 10, format!("v{i}")))
            .await
            .unwrap();
    }
    let dir = TempDir::new("cass-pages");
    let (server, http_port) =
        Server::start_single_with_http(&dir, &[(PASSWORD_ENV, PASSWORD)]).await;
    let client = server.client().await;
    // Ten rows a page, one token range, every request traced by the server.
    create(
        &client,
        "paging_items",
        cass,
        "paging",
        "items",
        ", 'fetch_size' '10', 'splits' '1', 'tracing' 'true'",
    )
    .await;
    let counted = |text: &str, name: &str, operation: Option<&str>| {
        let mut labels = vec![("connector", "cassandra")];
        labels.extend(operation.map(|o| ("operation", o)));
        metric_sum(text, name, &labels)
    };
    let before = metrics_text(http_port).await;
    let got = text_rows(
        &client,
        "SELECT count(*), count(DISTINCT v) FROM paging_items",
    )
    .await;
    let after = metrics_text(http_port).await;
    assert_eq!(got, [vec!["95".to_string(), "95".to_string()]]);
    let pages = counted(&after, "vivace_source_requests_total", Some("page"))
        - counted(&before, "vivace_source_requests_total", Some("page"));
    // The server's own count: one trace session per request it ran (traces
    // land after each request; wait until the count is steady).
    let needle = "FROM \"paging\".\"items\"";
    let mut ran = traced_requests(&session, needle).await;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let again = traced_requests(&session, needle).await;
        if again == ran && ran as f64 >= pages {
            break;
        }
        ran = again;
    }
    assert!(pages >= 10.0, "95 rows in pages of 10: {pages} pages");
    assert_eq!(pages, ran as f64, "pages counted vs run by the server");
    assert_eq!(
        counted(&after, "vivace_source_rows_total", None)
            - counted(&before, "vivace_source_rows_total", None),
        95.0
    );
    assert!(
        counted(&after, "vivace_source_requests_total", Some("prepare")) >= 1.0,
        "{after}"
    );
}

//! PostgreSQL behaviour clients rely on: version(), settings functions, catalog
//! helper functions, and result column names as PostgreSQL gives them.

mod common;

use common::{Server, TempDir, sql_error, text_rows};

#[tokio::test]
async fn functions_and_column_names_answer_like_postgres() {
    let dir = TempDir::new("compat");
    let server = Server::start(&dir).await;
    let client = server.client().await;

    let version = text_rows(&client, "SELECT version()").await;
    assert!(version[0][0].starts_with("PostgreSQL 16."), "{version:?}");

    assert_eq!(
        text_rows(
            &client,
            "SELECT current_setting('server_version'), set_config('application_name', 'bi', false)"
        )
        .await,
        [["16.6", "bi"]]
    );
    assert_eq!(
        text_rows(
            &client,
            "SELECT current_setting('application_name'), current_setting('no.such', true)"
        )
        .await,
        [["bi", "NULL"]]
    );
    let (code, _) = sql_error(&client, "SELECT current_setting('no_such')").await;
    assert_eq!(code, "42704");
    assert_eq!(
        text_rows(
            &client,
            "SELECT to_regclass('pg_catalog.pg_class'), to_regclass('public.nope'), \
             obj_description(1, 'pg_class'), col_description(1, 1), pg_type_is_visible(23), \
             pg_get_indexdef(1), pg_get_serial_sequence('t', 'c')"
        )
        .await,
        [[
            "pg_catalog.pg_class",
            "NULL",
            "NULL",
            "NULL",
            "t",
            "NULL",
            "NULL"
        ]]
    );

    // Names: function name, cast type, ?column?, repeated names, look-alike subqueries.
    let stmt = client
        .prepare(
            "SELECT count(*), count(*), 1 + 1, 2::int, 'x' AS \"Label\", \
             (SELECT max(v) FROM (VALUES (1), (2)) AS t(v)), (SELECT 1), (SELECT 2)",
        )
        .await
        .unwrap();
    let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "count", "count", "?column?", "int4", "Label", "max", "?column?", "?column?"
        ]
    );
    let row = client.query_one(&stmt, &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, i64>(6), 1);
    assert_eq!(row.get::<_, i64>(7), 2);

    // `$1::bigint` tells the driver the parameter's type, as PostgreSQL does.
    let stmt = client.prepare("SELECT $1::bigint + 1 AS n").await.unwrap();
    assert_eq!(stmt.params(), [tokio_postgres::types::Type::INT8]);
    let row = client.query_one(&stmt, &[&41i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>("n"), 42);
}

#[tokio::test]
async fn transaction_no_ops_server_limits_and_type_names() {
    let dir = TempDir::new("compat-limits");
    let server = Server::start(&dir).await;
    let client = server.client().await;

    // Accepted as PostgreSQL accepts them (Vivace has nothing to roll back).
    let tags: Vec<String> = client
        .simple_query("BEGIN; SAVEPOINT s1; RELEASE SAVEPOINT s1; SAVEPOINT s2; ROLLBACK TO SAVEPOINT s2; COMMIT; DISCARD ALL")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(tags.len(), 7, "{tags:?}");

    assert_eq!(
        text_rows(
            &client,
            "SELECT name, setting FROM pg_catalog.pg_settings \
             WHERE name IN ('max_index_keys', 'max_identifier_length', 'standard_conforming_strings') \
             ORDER BY name"
        )
        .await,
        [
            ["max_identifier_length", "63"],
            ["max_index_keys", "32"],
            ["standard_conforming_strings", "on"]
        ]
    );
    assert_eq!(
        text_rows(
            &client,
            "SELECT pg_typeof(1::integer), pg_typeof(2.5::double precision), pg_typeof('x'::text), \
             pg_typeof(ARRAY[1, 2]), format('%I.%I', 'public', 'Odd T')"
        )
        .await,
        [[
            "integer",
            "double precision",
            "text",
            "bigint[]",
            "public.\"Odd T\""
        ]]
    );
}

#[tokio::test]
async fn subqueries_reg_casts_privileges_and_startup_parameters() {
    let dir = TempDir::new("compat-subqueries");
    let data = dir.path().join("items");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("items.csv"),
        "id,name,qty\n1,apple,3\n2,pear,0\n3,plum,12\n",
    )
    .unwrap();
    let server = Server::start(&dir).await;
    let client = server.client().await;
    client
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE items (id BIGINT, name TEXT, qty INT) STORED AS CSV LOCATION '{}/'",
            data.display()
        ))
        .await
        .unwrap();

    // A correlated select-list subquery over data answers its rows (never NULL
    // in their place), and one that yields two rows is PostgreSQL's 21000.
    assert_eq!(
        common::rows(
            &client,
            "SELECT o.id, (SELECT i.name FROM items i WHERE i.id = o.id + 1) AS next, \
             (SELECT count(*) FROM items i WHERE i.id = o.id + 1) AS has_next FROM items o ORDER BY o.id"
        )
        .await,
        [
            [Some("1".into()), Some("pear".into()), Some("1".into())],
            [Some("2".into()), Some("plum".into()), Some("1".into())],
            [Some("3".into()), None, Some("0".into())],
        ]
    );
    let (code, message) = sql_error(&client, "SELECT (SELECT name FROM items)").await;
    assert_eq!(code, "21000", "{message}");
    // One correlated by inequality is refused in words, not answered NULL.
    let (code, message) = sql_error(
        &client,
        "SELECT (SELECT max(i.qty) FROM items i WHERE i.id <> o.id) FROM items o",
    )
    .await;
    assert_eq!(code, "0A000");
    assert!(message.contains("correlated"), "{message}");

    // A reg cast of a computed name (Metabase's field sync) looks the name up.
    assert_eq!(
        text_rows(
            &client,
            "SELECT n, CAST(CAST(format('%I.%I', 'public', n) AS regclass) AS oid) = \
             (SELECT oid FROM pg_catalog.pg_class WHERE relname = 'items') \
             FROM (VALUES ('items'), ('nope')) AS t(n) ORDER BY n"
        )
        .await,
        [["items", "t"], ["nope", "NULL"]]
    );

    // External tables are read-only, and their columns count from 1.
    assert_eq!(
        text_rows(
            &client,
            "SELECT has_table_privilege('items', 'SELECT'), has_table_privilege('items', 'INSERT, UPDATE'), \
             has_schema_privilege('public', 'USAGE'), has_schema_privilege('public', 'CREATE')"
        )
        .await,
        [["t", "f", "t", "f"]]
    );
    let (code, _) = sql_error(&client, "SELECT has_table_privilege('items', 'sellect')").await;
    assert_eq!(code, "22023");
    assert_eq!(
        text_rows(
            &client,
            "SELECT column_name, ordinal_position FROM information_schema.columns \
             WHERE table_name = 'items' ORDER BY ordinal_position"
        )
        .await,
        [["id", "1"], ["name", "2"], ["qty", "3"]]
    );

    // A small integer literal is an int4 column named ?column?, a large one int8.
    let row = client
        .query_one("SELECT 1, 3000000000, 2 AS two", &[])
        .await
        .unwrap();
    let columns: Vec<(&str, &tokio_postgres::types::Type)> = row
        .columns()
        .iter()
        .map(|c| (c.name(), c.type_()))
        .collect();
    assert_eq!(
        columns,
        [
            ("?column?", &tokio_postgres::types::Type::INT4),
            ("?column?", &tokio_postgres::types::Type::INT8),
            ("two", &tokio_postgres::types::Type::INT4),
        ]
    );
    assert_eq!(row.get::<_, i32>(0), 1);

    // Run-time parameters sent at start-up become the session's settings.
    let (tuned, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(server.port)
        .user("vivace")
        .dbname("vivace")
        .application_name("probe")
        .options("-c statement_timeout=7s -c TimeZone=Etc/UTC")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    assert_eq!(
        text_rows(
            &tuned,
            "SELECT current_setting('application_name'), current_setting('statement_timeout'), \
             current_setting('TimeZone')"
        )
        .await,
        [["probe", "7s", "Etc/UTC"]]
    );
}

//! Views: stored, planned on every use, listed where PostgreSQL lists them.

mod common;

use common::data;
use common::{Server, TempDir, explain, sql_error, table, text_rows};

/// Facts about providers, several per provider; the latest one is current.
fn write_facts(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("facts.csv"),
        "provider_id,name,email,ts\n\
         1,Ana,ana@old.pt,2024-01-01 10:00:00\n\
         1,Ana Maria,ana@uni.pt,2024-03-01 10:00:00\n\
         2,Bruno,bruno@uni.pt,2024-01-05 09:00:00\n\
         2,Bruno,bruno@corp.com,2024-02-05 09:00:00\n\
         3,Carla,carla@uni.pt,2024-02-10 08:00:00\n",
    )
    .unwrap();
}

/// `CREATE EXTERNAL TABLE provider_facts` over [`write_facts`]'s folder.
fn create_facts(dir: &std::path::Path) -> String {
    format!(
        "CREATE EXTERNAL TABLE provider_facts (provider_id INT, name VARCHAR, email VARCHAR, ts TIMESTAMP) \
         STORED AS CSV LOCATION '{}/' OPTIONS ('header' 'true')",
        dir.display()
    )
}

#[tokio::test]
async fn views_fold_facts_push_filters_and_survive_restarts() {
    let dir = TempDir::new("views");
    let events = dir.path().join("events");
    data::write_partitioned_parquet(&events);
    let facts = dir.path().join("facts");
    write_facts(&facts);
    let mut server = Server::start(&dir).await;
    let client = server.client().await;
    client
        .simple_query(&data::create_events_sql(&format!("{}/", events.display())))
        .await
        .unwrap();
    client.simple_query(&create_facts(&facts)).await.unwrap();

    // Immutable facts folded into current state: DISTINCT ON, a window
    // function and date arithmetic in views.
    client
        .simple_query(
            "CREATE VIEW providers_current AS \
             SELECT DISTINCT ON (provider_id) provider_id, name, email FROM provider_facts \
             ORDER BY provider_id, ts DESC",
        )
        .await
        .unwrap();
    let current =
        "SELECT * FROM providers_current WHERE email LIKE '%@uni.pt' ORDER BY provider_id";
    assert_eq!(
        text_rows(&client, current).await,
        table(&[
            &["1", "Ana Maria", "ana@uni.pt"],
            &["3", "Carla", "carla@uni.pt"]
        ])
    );
    client
        .simple_query(
            "CREATE VIEW fact_age (id, seq, days_to_next) AS \
             SELECT provider_id, row_number() OVER (PARTITION BY provider_id ORDER BY ts), \
             CAST(date_part('day', lead(ts) OVER (PARTITION BY provider_id ORDER BY ts) - ts) AS INT) \
             FROM provider_facts",
        )
        .await
        .unwrap();
    assert_eq!(
        text_rows(
            &client,
            "SELECT * FROM fact_age WHERE days_to_next IS NOT NULL ORDER BY id"
        )
        .await,
        table(&[&["1", "1", "60"], &["2", "1", "31"]])
    );

    // A view's filters reach the table's scan: partitions are pruned.
    client
        .simple_query(
            "CREATE VIEW big_spends AS SELECT user_id, amount, dt FROM events WHERE amount > 10",
        )
        .await
        .unwrap();
    let by_day = "SELECT dt, count(*) FROM big_spends WHERE dt = '2024-01-02' GROUP BY dt";
    let direct =
        "SELECT dt, count(*) FROM events WHERE amount > 10 AND dt = '2024-01-02' GROUP BY dt";
    assert_eq!(
        text_rows(&client, by_day).await,
        text_rows(&client, direct).await
    );
    let plan = explain(&client, by_day).await;
    assert!(
        plan.contains("file_groups={1 group: [[") && plan.contains("dt=2024-01-02"),
        "{plan}"
    );
    assert!(!plan.contains("dt=2024-01-01"), "{plan}");

    // Listed where psql and drivers look.
    let (out, err, ok) = server.psql(&["-c", "\\dv"]);
    assert!(ok, "{err}");
    for name in ["big_spends", "fact_age", "providers_current"] {
        assert!(out.contains(name), "{out}");
    }
    let (out, err, ok) = server.psql(&["-c", "\\d providers_current"]);
    assert!(ok, "{err}");
    assert!(out.contains("View \"public.providers_current\""), "{out}");
    // SQLAlchemy's get_view_definition.
    let definition = text_rows(
        &client,
        "SELECT pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relname = 'providers_current' AND c.relkind IN ('v', 'm')",
    )
    .await;
    assert!(
        definition[0][0].starts_with("SELECT DISTINCT ON (provider_id)"),
        "{definition:?}"
    );
    assert_eq!(
        text_rows(
            &client,
            "SELECT table_name, is_updatable FROM information_schema.views \
             WHERE table_schema = 'public' ORDER BY 1"
        )
        .await,
        table(&[
            &["big_spends", "NO"],
            &["fact_age", "NO"],
            &["providers_current", "NO"]
        ])
    );
    assert_eq!(
        text_rows(
            &client,
            "SELECT viewname, definition FROM pg_views WHERE viewname = 'big_spends'"
        )
        .await,
        table(&[&[
            "big_spends",
            "SELECT user_id, amount, dt FROM events WHERE amount > 10"
        ]])
    );

    // Errors: names taken, a view of itself, DROP VIEW of a table.
    let (code, _) = sql_error(&client, "CREATE VIEW events AS SELECT 1").await;
    assert_eq!(code, "42P07");
    let (code, _) = sql_error(&client, "CREATE VIEW big_spends AS SELECT 1").await;
    assert_eq!(code, "42P07");
    let (code, _) = sql_error(&client, "CREATE VIEW nowhere AS SELECT * FROM missing").await;
    assert_eq!(code, "42P01");
    let (code, _) = sql_error(&client, "DROP VIEW events").await;
    assert_eq!(code, "42809");
    let (code, _) = sql_error(&client, "DROP TABLE big_spends").await;
    assert_eq!(code, "42809");
    let (code, _) = sql_error(&client, "CREATE MATERIALIZED VIEW m AS SELECT 1").await;
    assert_eq!(code, "0A000");
    client
        .simple_query("CREATE OR REPLACE VIEW big_spends AS SELECT user_id, amount, dt FROM events WHERE amount > 20")
        .await
        .unwrap();
    // A view cannot read itself (planned without the one it replaces), and
    // the failed replacement leaves the old one in place.
    let (code, message) = sql_error(
        &client,
        "CREATE OR REPLACE VIEW big_spends AS SELECT * FROM big_spends",
    )
    .await;
    assert_eq!(code, "42P01", "{message}");
    assert_eq!(
        text_rows(
            &client,
            "SELECT count(*) FROM big_spends WHERE amount <= 20"
        )
        .await,
        table(&[&["0"]])
    );

    // Survive kill -9.
    let before = text_rows(&client, current).await;
    let spends = text_rows(&client, "SELECT count(*) FROM big_spends").await;
    server.restart().await;
    let client = server.client().await;
    assert_eq!(text_rows(&client, current).await, before);
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM big_spends").await,
        spends
    );

    // A dropped table: its views (and views of them) stay listed and fail
    // with 42P01 naming it; back when the table is.
    client
        .simple_query("CREATE VIEW uni AS SELECT provider_id FROM providers_current WHERE email LIKE '%@uni.pt'")
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT * FROM uni ORDER BY 1").await,
        table(&[&["1"], &["3"]])
    );
    client
        .simple_query("DROP TABLE provider_facts")
        .await
        .unwrap();
    for sql in [current, "SELECT * FROM uni"] {
        let (code, message) = sql_error(&client, sql).await;
        assert_eq!(code, "42P01", "{message}");
        assert!(message.contains("provider_facts"), "{message}");
    }
    let (out, _, _) = server.psql(&["-c", "\\dv"]);
    assert!(out.contains("providers_current"), "{out}");
    server.restart().await;
    let client = server.client().await;
    let (code, _) = sql_error(&client, current).await;
    assert_eq!(code, "42P01");
    client.simple_query(&create_facts(&facts)).await.unwrap();
    assert_eq!(text_rows(&client, current).await, before);
    assert_eq!(
        text_rows(&client, "SELECT * FROM uni ORDER BY 1").await,
        table(&[&["1"], &["3"]])
    );

    client
        .simple_query("DROP VIEW uni, providers_current, fact_age")
        .await
        .unwrap();
    let (code, _) = sql_error(&client, current).await;
    assert_eq!(code, "42P01");
    client
        .simple_query("DROP VIEW IF EXISTS providers_current")
        .await
        .unwrap();
    server.restart().await;
    let client = server.client().await;
    assert_eq!(
        text_rows(&client, "SELECT viewname FROM pg_views ORDER BY 1").await,
        table(&[&["big_spends"]])
    );
}

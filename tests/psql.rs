//! The real `psql` client: meta-commands and queries print what PostgreSQL would.

mod common;

use common::data;
use common::{Server, TempDir};

#[tokio::test]
async fn psql_meta_commands_show_external_tables() {
    let dir = TempDir::new("psql");
    let root = dir.path().join("events");
    data::write_partitioned_parquet(&root);
    let server = Server::start(&dir).await;
    let create = data::create_events_sql(&format!("{}/", root.display()));
    let (out, err, ok) = server.psql(&["-c", &create]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "CREATE EXTERNAL TABLE");

    let (out, err, ok) = server.psql(&["-c", r"\dt"]);
    assert!(ok, "{err}");
    assert!(out.contains("public | events | table"), "{out}");

    let (out, err, ok) = server.psql(&["-c", r"\d events"]);
    assert!(ok, "{err}");
    assert!(out.contains("Table \"public.events\""), "{out}");
    for line in ["user_id | text", "amount  | bigint", "dt      | text"] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }

    let (out, err, ok) = server.psql(&["-c", r"\l"]);
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("vivace")),
        "{out}"
    );

    let (out, err, ok) = server.psql(&["-c", r"\dn"]);
    assert!(ok, "{err}");
    assert!(out.contains("public"), "{out}");

    // Unaligned, tuples-only output for an exact comparison of rows.
    let (out, err, ok) = server.psql(&[
        "-A",
        "-t",
        "-c",
        "SELECT dt, count(*), sum(amount) FROM events WHERE dt >= '2024-01-02' GROUP BY dt ORDER BY dt",
    ]);
    assert!(ok, "{err}");
    let expected: Vec<String> = data::expected_daily_totals("2024-01-02")
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);

    // Errors reach psql with their SQLSTATE.
    let (_, err, ok) = server.psql(&["-v", "VERBOSITY=verbose", "-c", "SELECT * FROM missing"]);
    assert!(!ok);
    assert!(err.contains("42P01"), "{err}");
}

//! Delta tables for tests/delta.rs: written and read back by the Python
//! `deltalake` package (delta-rs, from PyPI; `delta_tables.py`), and the
//! checks that compare Vivace's rows with what it reads.

use std::process::Command;

use serde_json::Value;

/// Write the test table at `uri` with delta-rs; what delta-rs reads back.
pub fn write_with_delta_rs(uri: &str, storage_options: Option<Value>) -> Value {
    delta_rs("write", uri, storage_options)
}

/// What delta-rs reads of the table at `uri`, version by version.
pub fn read_with_delta_rs(uri: &str) -> Value {
    delta_rs("read", uri, None)
}

pub fn delta_rs(mode: &str, uri: &str, storage_options: Option<Value>) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/delta_tables.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(mode).arg(uri);
    if let Some(options) = storage_options {
        cmd.arg(options.to_string());
    }
    let out = cmd.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "delta_tables.py failed (scripts/test installs deltalake from PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("delta_tables.py prints JSON")
}

/// What delta-rs read at each version: rows, sum(amount) and rows per day,
/// as Vivace's text rows.
pub fn expected(version: &Value) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let totals = vec![vec![
        version["rows"].to_string(),
        version["amount"].to_string(),
    ]];
    let days = version["per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| vec![d[0].as_str().unwrap().to_string(), d[1].to_string()])
        .collect();
    (totals, days)
}

pub const TOTALS: &str = "SELECT count(*), sum(amount) FROM events";
pub const DAYS: &str = "SELECT dt, count(*) FROM events GROUP BY dt ORDER BY dt";

/// Every version, at `VERSION AS OF`, equals what delta-rs read; the latest
/// equals the last.
pub async fn check_versions(client: &tokio_postgres::Client, written: &Value) {
    let versions = written["versions"].as_array().unwrap();
    for version in versions {
        let v = version["version"].as_u64().unwrap();
        let (totals, days) = expected(version);
        let at = format!(" VERSION AS OF {v}");
        assert_eq!(
            super::text_rows(client, &format!("{TOTALS}{at}")).await,
            totals,
            "v{v}"
        );
        assert_eq!(
            super::text_rows(
                client,
                &format!("SELECT dt, count(*) FROM events{at} GROUP BY dt ORDER BY dt")
            )
            .await,
            days,
            "v{v}"
        );
    }
    let (totals, days) = expected(versions.last().unwrap());
    assert_eq!(super::text_rows(client, TOTALS).await, totals);
    assert_eq!(super::text_rows(client, DAYS).await, days);
}

/// The number after `key` in `line`.
pub fn field(line: &str, key: &str) -> usize {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len();
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// The files the latest version of `events` holds, from `EXPLAIN`.
pub async fn active_files(client: &tokio_postgres::Client) -> usize {
    let plan = super::explain(client, "SELECT sum(amount) FROM events").await;
    let line = plan
        .lines()
        .find(|l| l.contains("DeltaScanExec"))
        .unwrap_or_else(|| panic!("no Delta scan: {plan}"))
        .to_string();
    field(&line, "files=")
}

//! Passwords and TLS from the configuration file, checked with the real psql.

mod common;

use std::process::Command;

use common::credentials::{make_certificates, psql_with_password as psql, users_line};
use common::{Server, TempDir};

#[tokio::test]
async fn scram_users_and_tls_from_the_config_file() {
    let dir = TempDir::new("auth");
    make_certificates(dir.path());
    let line = users_line("analyst", "correct horse");
    assert!(
        line.starts_with("analyst = \"SCRAM-SHA-256$4096:"),
        "{line}"
    );
    assert!(!line.contains("correct horse"));
    let config = dir.path().join("vivace.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert_file = \"{0}/server.crt\"\ntls_key_file = \"{0}/server.key\"\n[users]\n{line}",
            dir.path().display()
        ),
    )
    .unwrap();
    let server = Server::start_with(&dir, &["--config", config.to_str().unwrap()], &[]).await;
    let base = format!("port={} user=analyst dbname=vivace", server.port);
    let ca = dir.path().join("ca.crt");

    // Right password over TLS, server certificate verified against the test CA.
    let (out, err, ok) = psql(
        &format!(
            "host=localhost {base} sslmode=verify-full sslrootcert={}",
            ca.display()
        ),
        "correct horse",
        "SELECT current_user, 40 + 2",
    );
    assert!(ok, "{err}");
    assert!(out.ends_with("|42"), "{out}");
    let (out, err, ok) = psql(
        &format!("host=127.0.0.1 {base} sslmode=require"),
        "correct horse",
        "SELECT 'tls'",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "tls");

    // Wrong password, unknown user: 28P01, the same message shape.
    let (_, err, ok) = psql(
        &format!("host=127.0.0.1 {base} sslmode=require"),
        "wrong",
        "SELECT 1",
    );
    assert!(!ok);
    assert!(
        err.contains("password authentication failed for user \"analyst\""),
        "{err}"
    );
    let (_, err, ok) = psql(
        &format!(
            "host=127.0.0.1 port={} user=mallory dbname=vivace",
            server.port
        ),
        "x",
        "SELECT 1",
    );
    assert!(!ok);
    assert!(
        err.contains("password authentication failed for user \"mallory\""),
        "{err}"
    );
    // The SQLSTATE, through a driver that reports it.
    let err = tokio_postgres::connect(
        &format!("host=127.0.0.1 {base} password=wrong"),
        tokio_postgres::NoTls,
    )
    .await
    .err()
    .expect("a wrong password must be refused");
    assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{err}");

    // Neither the password nor the verifier's keys reach the log.
    let log = server.log_text();
    assert!(!log.contains("correct horse"));
    let keys = line.split('$').nth(2).unwrap().trim_end_matches("\"\n");
    assert!(!log.contains(keys), "{log}");
}

#[tokio::test]
async fn an_unusable_tls_setup_stops_the_server_from_starting() {
    let dir = TempDir::new("badtls");
    let config = dir.path().join("vivace.toml");
    std::fs::write(
        &config,
        "tls_cert_file = \"/nonexistent/server.crt\"\ntls_key_file = \"/nonexistent/server.key\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vivace"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read TLS certificate /nonexistent/server.crt"),
        "{err}"
    );

    // A clear-text password where a verifier belongs is refused, and not echoed.
    std::fs::write(&config, "[users]\nanalyst = \"hunter2\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vivace"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("users.analyst"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

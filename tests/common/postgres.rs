//! A real PostgreSQL 15 server for connector tests: `initdb` + `pg_ctl start` from
//! /usr/lib/postgresql/15/bin (Debian's `postgresql` package) on a private port,
//! with a throwaway data directory and `log_statement=all`, so tests can read the
//! SQL the server actually received.
//!
//! `initdb` refuses to run as root; as root the server runs as the `postgres`
//! user (`runuser`), in a directory handed to it. Local socket connections are
//! trusted (setup through `psql`); TCP connections need a SCRAM password, so a
//! wrong password is testable.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{TempDir, free_port};

/// Where Debian installs the PostgreSQL 15 server binaries.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The login role Vivace connects as.
pub const ROLE: &str = "reporting";
/// Its password (given to Vivace through an environment variable only).
pub const PASSWORD: &str = "s3cr3t-Pa55word-4-tests";
/// The database the test tables live in.
pub const DATABASE: &str = "app";

/// A running PostgreSQL server, stopped on drop.
pub struct PgServer {
    root: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
}

fn as_server_user(program: &str) -> Command {
    let path = format!("{PG_BIN}/{program}");
    // std has no geteuid; `id -u` tells whether we are root.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", &path]);
        cmd
    } else {
        Command::new(path)
    }
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| {
        panic!("{what}: {e} (is the `postgresql` package installed? scripts/test installs it)")
    });
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgServer {
    /// Initialise and start a server in `dir`, create the [`ROLE`] with its
    /// password and the [`DATABASE`].
    pub fn start(dir: &TempDir) -> Self {
        let root = dir.path().join("pg");
        std::fs::create_dir_all(&root).unwrap();
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&root)
            .status();
        let server = Self {
            root,
            port: free_port(),
        };
        check(
            "initdb",
            as_server_user("initdb")
                .arg("-D")
                .arg(server.data_dir())
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ])
                .output(),
        );
        server.pg_ctl_start();
        server.psql(
            "postgres",
            &format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"),
        );
        server.psql(
            "postgres",
            &format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"),
        );
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// Start (or restart) the server process and wait until it accepts connections.
    pub fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c log_statement=all -c fsync=off",
            self.port,
            self.root.display()
        );
        check(
            "pg_ctl start",
            as_server_user("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .args(["-o", &options, "-w", "start"])
                .output(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (fast shutdown: open connections are closed).
    pub fn stop(&self) {
        let _ = as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    /// Run SQL as the superuser over the local socket, failing on the first error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = check(
            "psql",
            Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
                .arg(&self.root)
                .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
                .output(),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything the server logged so far (every statement, `log_statement=all`).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The statements the server received after the log was `mark` bytes long
    /// (simple-protocol `statement:` and extended-protocol `execute ...:` lines).
    pub fn statements_since(&self, mark: usize) -> Vec<String> {
        self.log_text()
            .get(mark..)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once("LOG:  ")?;
                if let Some(sql) = rest.strip_prefix("statement: ") {
                    return Some(sql.to_string());
                }
                let (_, sql) = rest.strip_prefix("execute ")?.split_once(": ")?;
                Some(sql.to_string())
            })
            .collect()
    }

    /// `postgres://reporting@127.0.0.1:PORT/app`: a LOCATION without the password.
    pub fn location(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{DATABASE}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

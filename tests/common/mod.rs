//! Shared harness for end-to-end tests: start the real `vivace` binary on a free
//! loopback port with a throwaway data directory, connect with real clients, and
//! write test data files. Each test binary includes this module.

#![allow(dead_code)] // each test file uses a different subset

pub mod cassandra;
pub mod cluster;
pub mod credentials;
pub mod data;
pub mod delta;
pub mod elasticsearch;
pub mod http;
pub mod netns;
pub mod opensearch;
pub mod postgres;
pub mod s3;
pub mod wire;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Create `vivace-test-<name>-<pid>-<n>`.
    pub fn new(name: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("vivace-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on loopback (bound then released), never the same one twice
/// in this test process: tests run in parallel threads, and two servers handed
/// one port would have the second fail to bind while its readiness probe is
/// answered by the first.
/// Run `command` (a shell command line starting a JVM) in the background of
/// a shell that kills it once this test process is gone: the watchdog.
pub fn watched(command: &str, envs: &[(&str, &str)]) -> std::process::Child {
    let script = format!(
        "{command} &\nchild=$!\n\
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done\n\
         kill $child 2>/dev/null; sleep 5; kill -9 $child 2>/dev/null",
        parent = std::process::id(),
    );
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cannot start a watchdog shell")
}

/// Where the fetch scripts put the backends (`VIVACE_BACKENDS`, default
/// `~/.cache/vivace/backends`).
pub fn backends() -> PathBuf {
    std::env::var_os("VIVACE_BACKENDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/vivace/backends")
        })
}

pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// A running `vivace serve`, killed on drop.
pub struct Server {
    listen_host: String,
    child: Option<Child>,
    /// PostgreSQL-protocol port.
    pub port: u16,
    /// Data directory (catalog lives here).
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
}

impl Server {
    /// Start a server on a fresh data dir inside `dir`.
    pub async fn start(dir: &TempDir) -> Self {
        Self::start_with(dir, &[], &[]).await
    }

    /// Start with extra command-line arguments and environment variables.
    pub async fn start_with(dir: &TempDir, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::launch(dir, "127.0.0.1", args, envs).await
    }

    /// A single-process server (`--workers 0`) with its HTTP listener on a
    /// free port (metrics, the page's API): the server and that port.
    pub async fn start_single_with_http(dir: &TempDir, envs: &[(&str, &str)]) -> (Self, u16) {
        let http_port = free_port();
        let listen = format!("127.0.0.1:{http_port}");
        let server =
            Self::start_with(dir, &["--workers", "0", "--http-listen", &listen], envs).await;
        (server, http_port)
    }

    /// Start listening on `host` (e.g. `0.0.0.0`) instead of loopback.
    pub async fn start_on(dir: &TempDir, host: &str) -> Self {
        Self::launch(dir, host, &[], &[]).await
    }

    async fn launch(dir: &TempDir, host: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut server = Self {
            listen_host: host.to_string(),
            child: None,
            port: free_port(),
            data_dir: dir.path().join("data"),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: dir.path().join("server.log"),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // `VIVACE_TEST_BINARY` runs another build (a release build, or a copy
        // that builds of other checkouts sharing the target folder cannot replace).
        let binary = std::env::var_os("VIVACE_TEST_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_vivace").into());
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("{}:{}", self.listen_host, self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env("VIVACE_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("cannot start vivace"));
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "vivace exited early with {status}; log:\n{}",
                    self.log_text()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "vivace did not start; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A tokio-postgres client (extended protocol for `query`, simple for `simple_query`).
    pub async fn client(&self) -> Client {
        self.client_with("user=vivace").await
    }

    /// A client connected with `options` (user, password, application_name…).
    pub async fn client_with(&self, options: &str) -> Client {
        let (client, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={} dbname=vivace {options}", self.port),
            NoTls,
        )
        .await
        .unwrap_or_else(|e| panic!("cannot connect: {e}; log:\n{}", self.log_text()));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// Stop gracefully-or-not (SIGKILL) and start again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// SIGKILL the server, as `kill -9` would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Run SQL through the real `psql` client; returns (stdout, stderr, success).
    pub fn psql(&self, args: &[&str]) -> (String, String, bool) {
        let out = Command::new("psql")
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "vivace",
                "vivace",
            ])
            .args(args)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql must be installed (scripts/test installs postgresql-client)");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.success(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // A panic is not an answer, even where the server survived it.
        let log = self.log_text();
        if !std::thread::panicking() && log.contains("panicked at") {
            panic!("the server panicked during the test; log:\n{log}");
        }
    }
}

/// Rows of a simple-protocol query as text cells (NULL as `None`).
pub async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("query failed: {sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// Rows as plain strings, NULL shown as `NULL`; handy for comparisons.
pub async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<String>> {
    rows(client, sql)
        .await
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| c.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

/// The SQLSTATE and message of a statement that must fail.
pub async fn sql_error(client: &Client, sql: &str) -> (String, String) {
    let err = client
        .simple_query(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("expected an error from: {sql}"));
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("expected a server error from {sql}, got {err:?}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// Names of the tables `SHOW TABLES` lists.
pub async fn table_names(client: &Client) -> Vec<String> {
    text_rows(client, "SHOW TABLES")
        .await
        .into_iter()
        .map(|r| r[1].clone())
        .collect()
}

/// Shorthand to build a `Vec<Vec<String>>` from string literals.
pub fn table(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

/// Rows of `sql` with pushdown on and with it off, which must be equal; sorted.
pub async fn both_ways(client: &Client, sql: &str) -> Vec<Vec<String>> {
    client
        .simple_query("SET vivace.pushdown = on")
        .await
        .unwrap();
    let mut on = text_rows(client, sql).await;
    client
        .simple_query("SET vivace.pushdown = off")
        .await
        .unwrap();
    let mut off = text_rows(client, sql).await;
    client
        .simple_query("SET vivace.pushdown = on")
        .await
        .unwrap();
    on.sort();
    off.sort();
    assert_eq!(on, off, "pushdown on and off disagree on: {sql}");
    on
}

/// The plan `EXPLAIN` prints for `sql`, one line per row.
pub async fn explain(client: &Client, sql: &str) -> String {
    text_rows(client, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .map(|r| r.join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Start `sql` (a long write) on a connection of its own, wait until its
/// staging folder `staging` appears, then `kill -9` the server and restart it.
pub async fn kill_while_writing(server: &mut Server, sql: &'static str, staging: &Path) {
    let writer = server.client().await;
    let write = tokio::spawn(async move { writer.simple_query(sql).await });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !staging.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(staging.exists(), "the write never started staging");
    server.kill();
    let _ = write.await;
    server.restart().await;
}

/// The rows count a statement's command tag reports.
pub async fn tag_rows(client: &Client, sql: &str) -> u64 {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(n),
            _ => None,
        })
        .unwrap()
}

//! A real S3-compatible server for tests: moto's server (PyPI `moto[server]`,
//! installed by scripts/test), started on a free loopback port per test.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// Access key the tests use (moto accepts any).
pub const ACCESS_KEY: &str = "vivace-test-key";
/// Secret key the tests use; it must never appear in Vivace's output.
pub const SECRET_KEY: &str = "vivace-test-secret-8d1f2a";

/// A running S3 server, stopped on drop.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    port: u16,
    /// Where the server records requests once asked to ([`Self::start_recording`]).
    recording: std::path::PathBuf,
}

/// One request the server recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `HEAD`, `PUT`, ...
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Range: bytes=a-b` header's bounds (inclusive), if sent.
    pub range: Option<(u64, u64)>,
}

impl S3Server {
    /// Start `moto_server` on a free port and wait until it answers.
    pub fn start() -> Self {
        let port = super::free_port();
        let recording =
            std::env::temp_dir().join(format!("vivace-moto-{}-{port}.jsonl", std::process::id()));
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server must be installed (scripts/test installs moto[server] from PyPI)");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // A server that exited (say, the port was taken by another process)
            // must not pass for ready because something else answers the port.
            if let Some(status) = child.try_wait().unwrap() {
                panic!("moto_server exited early with {status}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            recording,
        }
    }

    /// Send a plain unsigned request with no body (which moto accepts for its
    /// own API and for creating buckets), expecting 200.
    fn send(&self, method: &str, path: &str) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "{method} {path} failed: {reply}"
        );
    }

    /// Create a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        self.send("PUT", &format!("/{bucket}"));
    }

    /// From now on the server records every request it is sent, forgetting
    /// what it recorded before.
    pub fn start_recording(&self) {
        self.send("POST", "/moto-api/recorder/reset-recording");
        self.send("POST", "/moto-api/recorder/start-recording");
    }

    /// The requests recorded since [`Self::start_recording`], in order.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines()
            .map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line).unwrap();
                // `http://host:port/path?query`
                let url = entry["url"].as_str().unwrap();
                let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
                let target = &after_scheme[after_scheme.find('/').unwrap_or(after_scheme.len())..];
                let (path, query) = match target.split_once('?') {
                    Some((path, query)) => (path, Some(query.to_string())),
                    None => (target, None),
                };
                let range = entry["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("range"))
                    .map(|(_, value)| {
                        let bounds = value.as_str().unwrap().trim_start_matches("bytes=");
                        let (a, b) = bounds.split_once('-').unwrap();
                        (a.parse().unwrap(), b.parse().unwrap())
                    });
                RecordedRequest {
                    method: entry["method"].as_str().unwrap().to_string(),
                    path: path.to_string(),
                    query,
                    range,
                }
            })
            .collect()
    }

    /// An object store client for `bucket`, to upload test data with PUTs.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .build()
                .unwrap(),
        )
    }

    /// Create `bucket` holding the partitioned events data set under `events/`.
    pub async fn put_events(&self, bucket: &str) {
        self.create_bucket(bucket);
        for (i, day) in super::data::DAYS.iter().enumerate() {
            let bytes = super::data::parquet_bytes(&super::data::batch(&super::data::day_rows(i)));
            self.put(bucket, &format!("events/dt={day}/part-0.parquet"), bytes)
                .await;
        }
    }

    /// The `CREATE EXTERNAL TABLE events` over [`Self::put_events`]'s data in
    /// bucket `lake`, the secret read from the variable `LAKE_SECRET`.
    pub fn create_events_sql(&self) -> String {
        format!(
            "CREATE EXTERNAL TABLE events (user_id VARCHAR, amount BIGINT, dt VARCHAR) \
             STORED AS PARQUET PARTITIONED BY (dt) LOCATION 's3://lake/events/' \
             OPTIONS ('aws.endpoint' '{}', 'aws.region' 'us-east-1', \
                      'aws.access_key_id' '{ACCESS_KEY}', 'aws.secret_access_key_env' 'LAKE_SECRET')",
            self.endpoint
        )
    }

    /// Upload `bytes` to `key` in `bucket`.
    pub async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.store(bucket)
            .put(&ObjectPath::from(key), bytes.into())
            .await
            .unwrap();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.recording);
    }
}

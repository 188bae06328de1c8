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
}

impl S3Server {
    /// Start `moto_server` on a free port and wait until it answers.
    pub fn start() -> Self {
        let port = super::free_port();
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
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
        }
    }

    /// Create a bucket (a plain unsigned PUT, which moto accepts).
    pub fn create_bucket(&self, bucket: &str) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "bucket creation failed: {reply}"
        );
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
    }
}

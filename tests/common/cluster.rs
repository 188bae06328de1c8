//! Test clusters: a coordinator accepting remote workers, and `vivace worker`
//! processes reporting to it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Server, TempDir, text_rows};

/// The cluster secret of test clusters.
pub const SECRET: &str = "test-cluster-secret-0123456789";

/// A `vivace worker` process, killed on drop.
pub struct WorkerProcess {
    child: Child,
    /// Port of its worker service.
    pub port: u16,
    /// Port of its HTTP listener (health and metrics).
    pub http_port: u16,
    log: std::path::PathBuf,
}

impl WorkerProcess {
    /// Start a worker reporting to `coordinator_port` with the secret in `secret_file`.
    pub fn start(dir: &TempDir, coordinator_port: u16, secret_file: &std::path::Path) -> Self {
        Self::start_with_env(dir, coordinator_port, secret_file, &[])
    }

    /// Same, with extra environment variables (credentials named by table options).
    pub fn start_with_env(
        dir: &TempDir,
        coordinator_port: u16,
        secret_file: &std::path::Path,
        envs: &[(&str, &str)],
    ) -> Self {
        let port = super::free_port();
        let http_port = super::free_port();
        let log_path = dir.path().join(format!("worker-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vivace"))
            .args(["worker", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
            .args(["--coordinator", &format!("127.0.0.1:{coordinator_port}")])
            .arg("--cluster-secret-file")
            .arg(secret_file)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .envs(envs.iter().copied())
            .spawn()
            .unwrap();
        Self {
            child,
            port,
            http_port,
            log: log_path,
        }
    }

    /// SIGKILL the worker.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if !std::thread::panicking() && log.contains("panicked at") {
            panic!("a worker panicked during the test; log:\n{log}");
        }
    }
}

/// A coordinator that accepts remote workers.
pub struct Cluster {
    /// Scratch directory (logs, secret, data).
    pub dir: TempDir,
    /// The coordinator.
    pub server: Server,
    /// Its heartbeat port.
    pub cluster_port: u16,
    /// File holding the cluster secret.
    pub secret_file: std::path::PathBuf,
}

impl Cluster {
    /// A coordinator with no embedded workers, accepting remote ones.
    pub async fn start(name: &str, extra: &[&str]) -> Self {
        Self::start_with_env(name, extra, &[]).await
    }

    /// Same, with environment variables for the coordinator.
    pub async fn start_with_env(name: &str, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let dir = TempDir::new(name);
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, SECRET).unwrap();
        let cluster_port = super::free_port();
        let listen = format!("127.0.0.1:{cluster_port}");
        let secret_arg = secret_file.display().to_string();
        let mut args = vec![
            "--workers",
            "0",
            "--cluster-listen",
            &listen,
            "--cluster-secret-file",
            &secret_arg,
        ];
        args.extend_from_slice(extra);
        let server = Server::start_with(&dir, &args, envs).await;
        Self {
            dir,
            server,
            cluster_port,
            secret_file,
        }
    }

    /// Start a worker for this coordinator.
    pub fn worker(&self) -> WorkerProcess {
        WorkerProcess::start(&self.dir, self.cluster_port, &self.secret_file)
    }

    /// Worker ports listed in system.nodes, waiting up to 20 s for `want` of them.
    pub async fn wait_for_workers(&self, want: usize) -> Vec<u16> {
        let client = self.server.client().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = text_rows(&client, "SELECT node_id, role, address, state FROM system.nodes WHERE role = 'worker' ORDER BY address").await;
            if rows.len() == want {
                return rows
                    .iter()
                    .map(|r| r[2].rsplit(':').next().unwrap().parse().unwrap())
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "wanted {want} workers, system.nodes has {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Split scans finely and join by shuffling both sides, so that both workers
/// stream rows until the end of `LONG_QUERY`: with the build side broadcast, one
/// task could finish its share before the other, and a worker killed then is no
/// longer lost *mid-query*.
pub async fn split_finely(client: &tokio_postgres::Client) {
    client
        .simple_query(
            "SET distributed.file_scan_config_bytes_per_partition = 262144; \
             SET datafusion.optimizer.hash_join_single_partition_threshold = 0; \
             SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0",
        )
        .await
        .unwrap();
}

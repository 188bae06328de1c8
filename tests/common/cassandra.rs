//! A real Apache Cassandra 5.0 for connector tests: `cassandra-all` and its
//! dependencies (fetched from Maven Central by
//! `scripts/backends/fetch-cassandra.sh`, which `scripts/test` runs) on
//! OpenJDK 17, started once per test binary on free loopback ports with
//! password authentication on (user `cassandra`), and stopped when the test
//! process exits (a watchdog shell kills it).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use super::{TempDir, backends, free_port, watched};

/// A role with a password the harness makes (any table, any keyspace).
pub const USER: &str = "analyst";
/// [`USER`]'s password (given to Vivace through a variable only).
pub const PASSWORD: &str = "Kq9-c4ss-secret!";

/// A running Cassandra, shared by every test of the binary.
pub struct Cassandra {
    /// CQL port on 127.0.0.1.
    pub port: u16,
    _watchdog: std::sync::Mutex<std::process::Child>,
    _dir: TempDir,
}

/// OpenJDK 17 (`VIVACE_JAVA17`, else under /usr/lib/jvm): Cassandra 5.0 runs
/// on 11 or 17 only.
fn java17() -> PathBuf {
    if let Some(java) = std::env::var_os("VIVACE_JAVA17") {
        return PathBuf::from(java);
    }
    std::fs::read_dir("/usr/lib/jvm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/java"))
        .find(|java| {
            java.exists()
                && java
                    .parent()
                    .and_then(|p| p.parent())
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n.to_string_lossy().contains("-17-"))
        })
        .expect("no OpenJDK 17 under /usr/lib/jvm (Cassandra 5.0 needs it); set VIVACE_JAVA17")
}

/// Cassandra 5.0's `conf/jvm17-server.options`: the exports and opens it needs.
const JVM17_FLAGS: &str = "-Djdk.attach.allowAttachSelf=true \
 --add-exports java.base/jdk.internal.misc=ALL-UNNAMED --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
 --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
 --add-exports java.sql/java.sql=ALL-UNNAMED --add-exports java.base/java.lang.ref=ALL-UNNAMED \
 --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
 --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
 --add-opens java.base/java.lang.module=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
 --add-opens java.base/jdk.internal.ref=ALL-UNNAMED --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
 --add-opens java.base/jdk.internal.math=ALL-UNNAMED --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
 --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
 --add-opens java.base/java.io=ALL-UNNAMED --add-opens java.base/java.lang.reflect=ALL-UNNAMED \
 --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
 --add-opens java.base/java.nio=ALL-UNNAMED --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
 --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED";

impl Cassandra {
    /// The binary's server, started on first use.
    pub fn shared() -> &'static Cassandra {
        static SERVER: OnceLock<Cassandra> = OnceLock::new();
        SERVER.get_or_init(Cassandra::start)
    }

    /// The CA that signed the server's TLS certificate.
    pub fn ca_file(&self) -> PathBuf {
        self._dir.path().join("tls/ca.crt")
    }

    /// `cassandra://127.0.0.1:<port>`.
    pub fn location(&self) -> String {
        format!("cassandra://127.0.0.1:{}", self.port)
    }

    fn start() -> Self {
        let lib = backends().join("cassandra/lib");
        assert!(
            lib.read_dir().is_ok_and(|mut d| d.next().is_some()),
            "Cassandra is not fetched into {}; run scripts/backends/fetch-cassandra.sh (scripts/test does)",
            lib.display()
        );
        let jamm = std::fs::read_dir(&lib)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("jamm-"))
            })
            .expect("no jamm jar among Cassandra's dependencies");
        let dir = TempDir::new("cassandra");
        let d = dir.path();
        for sub in [
            "data",
            "commitlog",
            "saved_caches",
            "hints",
            "cdc_raw",
            "logs",
            "tmp",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let (cql, storage, ssl_storage, jmx) = (free_port(), free_port(), free_port(), free_port());
        // TLS on the CQL port, optional: clients may connect either way.
        let tls = d.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        super::credentials::make_certificates(&tls);
        let pem = [
            std::fs::read_to_string(tls.join("server.key")).unwrap(),
            std::fs::read_to_string(tls.join("server.crt")).unwrap(),
        ]
        .concat();
        std::fs::write(tls.join("server.pem"), pem).unwrap();
        let yaml = format!(
            "cluster_name: vivace-test
num_tokens: 16
allocate_tokens_for_local_replication_factor: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {storage}
ssl_storage_port: {ssl_storage}
native_transport_port: {cql}
start_native_transport: true
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters: [{{seeds: \"127.0.0.1:{storage}\"}}]
data_file_directories: [{d}/data]
commitlog_directory: {d}/commitlog
saved_caches_directory: {d}/saved_caches
hints_directory: {d}/hints
cdc_raw_directory: {d}/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
authenticator: PasswordAuthenticator
authorizer: AllowAllAuthorizer
auto_snapshot: false
snapshot_on_duplicate_row_detection: false
disk_failure_policy: stop
commit_failure_policy: stop
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
concurrent_compactors: 1
memtable_allocation_type: heap_buffers
read_request_timeout: 20000ms
range_request_timeout: 20000ms
client_encryption_options:
  enabled: true
  optional: true
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: {d}/tls/server.pem
  require_client_auth: false
",
            d = d.display()
        );
        std::fs::write(d.join("cassandra.yaml"), yaml).unwrap();
        std::fs::write(
            d.join("logback.xml"),
            format!(
                r#"<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{}/logs/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>"#,
                d.display()
            ),
        )
        .unwrap();
        let command = format!(
            r#"{java} -Xms512m -Xmx512m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Xss256k {flags} \
 -Dio.netty.tryReflectionSetAccessible=true -javaagent:{jamm} -Djava.io.tmpdir={d}/tmp -Djava.net.preferIPv4Stack=true \
 -Dcassandra.config=file://{d}/cassandra.yaml -Dcassandra.storagedir={d} -Dcassandra.logdir={d}/logs \
 -Dlogback.configurationFile=file://{d}/logback.xml -Dcassandra.jmx.local.port={jmx} -Dcassandra-foreground=yes \
 -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=100 -Dcassandra.superuser_setup_delay_ms=0 \
 -cp '{lib}/*' org.apache.cassandra.service.CassandraDaemon > {d}/cassandra.out 2>&1"#,
            java = java17().display(),
            flags = JVM17_FLAGS,
            jamm = jamm.display(),
            d = d.display(),
            lib = lib.display(),
        );
        let watchdog = watched(&command, &[]);
        let deadline = Instant::now() + Duration::from_secs(180);
        let log = d.join("logs/system.log");
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Starting listening for CQL clients")
                && std::net::TcpStream::connect(("127.0.0.1", cql)).is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Cassandra did not start on port {cql}; log:\n{}\n{}",
                text.lines().rev().take(40).collect::<Vec<_>>().join("\n"),
                std::fs::read_to_string(d.join("cassandra.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        Self {
            port: cql,
            _watchdog: std::sync::Mutex::new(watchdog),
            _dir: dir,
        }
    }

    /// A driver session as the superuser `cassandra` (retried while the
    /// server finishes setting up its roles), after making [`USER`].
    pub async fn session(&self) -> Session {
        let session = self.superuser().await;
        session
            .query_unpaged(
                format!(
                    "CREATE ROLE IF NOT EXISTS {USER} WITH PASSWORD = '{PASSWORD}' AND LOGIN = true"
                ),
                (),
            )
            .await
            .expect("cannot make the test role");
        session
    }

    async fn superuser(&self) -> Session {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match SessionBuilder::new()
                .known_node(format!("127.0.0.1:{}", self.port))
                .user("cassandra", "cassandra")
                .build()
                .await
            {
                Ok(session) => return session,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("cannot connect to the test Cassandra: {e}"),
            }
        }
    }
}

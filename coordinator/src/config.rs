//! `vivace serve` configuration: one typed struct, filled from (highest first)
//! command-line flags, `VIVACE_*` environment variables, the TOML file given by
//! `--config`, and the defaults documented here and in `deploy/vivace.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::engine::RetryPolicy;

/// Default address of the PostgreSQL-protocol listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";
/// Default data directory (catalog database, demo data).
pub const DEFAULT_DATA_DIR: &str = "./vivace-data";
/// Default TPC-H scale factor of the demo tables (about 60k lineitem rows).
pub const DEFAULT_DEMO_SCALE_FACTOR: f64 = 0.01;

/// One embedded worker per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The effective configuration of a coordinator.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Address the PostgreSQL wire listener binds (`listen`).
    pub listen: SocketAddr,
    /// Directory holding `catalog.db` and generated demo data (`data_dir`).
    pub data_dir: PathBuf,
    /// Register the TPC-H demo tables at start-up (`demo`).
    pub demo: bool,
    /// Scale factor of the demo tables (`demo_scale_factor`).
    pub demo_scale_factor: f64,
    /// Workers run inside this process (`workers`; default one per core, 0 for none).
    pub workers: usize,
    /// Address remote workers send heartbeats to (`cluster_listen`); none by default.
    pub cluster_listen: Option<SocketAddr>,
    /// File holding the cluster secret (`cluster_secret_file`); required with `cluster_listen`.
    pub cluster_secret_file: Option<PathBuf>,
    /// What to do when a worker is lost mid-query (`retry_policy`: `query` or `none`).
    pub retry_policy: RetryPolicy,
    /// Users and their SCRAM-SHA-256 verifiers (`[users]`, TOML only). None
    /// configured: loopback clients only, without passwords.
    pub users: BTreeMap<String, String>,
    /// PEM certificate chain for TLS (`tls_cert_file`); with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for TLS (`tls_key_file`).
    pub tls_key_file: Option<PathBuf>,
    /// Memory all queries of this process may hold at once, in bytes
    /// (`memory_limit`, e.g. `"8G"`); sorts and aggregations spill to disk beyond
    /// their share, other operators fail the query with SQLSTATE 53200. None by
    /// default: bounded only by the machine.
    pub memory_limit: Option<usize>,
}

/// Values given on the command line or through `VIVACE_*` variables; `None` means
/// "not given", so the file or the default applies.
#[derive(Debug, Clone, Default)]
pub struct ServeOverrides {
    /// `--listen` / `VIVACE_LISTEN`.
    pub listen: Option<String>,
    /// `--data-dir` / `VIVACE_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--demo` / `VIVACE_DEMO`.
    pub demo: Option<bool>,
    /// `--demo-scale-factor` / `VIVACE_DEMO_SCALE_FACTOR`.
    pub demo_scale_factor: Option<f64>,
    /// `--workers` / `VIVACE_WORKERS`.
    pub workers: Option<usize>,
    /// `--cluster-listen` / `VIVACE_CLUSTER_LISTEN`.
    pub cluster_listen: Option<String>,
    /// `--cluster-secret-file` / `VIVACE_CLUSTER_SECRET_FILE`.
    pub cluster_secret_file: Option<PathBuf>,
    /// `--retry-policy` / `VIVACE_RETRY_POLICY`.
    pub retry_policy: Option<String>,
    /// `--tls-cert-file` / `VIVACE_TLS_CERT_FILE`.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-key-file` / `VIVACE_TLS_KEY_FILE`.
    pub tls_key_file: Option<PathBuf>,
    /// `--memory-limit` / `VIVACE_MEMORY_LIMIT`.
    pub memory_limit: Option<String>,
}

/// The TOML file's shape; unknown keys are an error so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    demo: Option<bool>,
    demo_scale_factor: Option<f64>,
    workers: Option<usize>,
    cluster_listen: Option<String>,
    cluster_secret_file: Option<PathBuf>,
    retry_policy: Option<String>,
    users: Option<BTreeMap<String, String>>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    memory_limit: Option<String>,
}

impl ServeConfig {
    /// Merge overrides over the optional TOML file over the defaults.
    pub fn resolve(overrides: ServeOverrides, file: Option<&Path>) -> anyhow::Result<Self> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = overrides
            .listen
            .or(from_file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen
            .parse()
            .with_context(|| format!("listen address '{listen}' is not HOST:PORT"))?;
        let demo_scale_factor = overrides
            .demo_scale_factor
            .or(from_file.demo_scale_factor)
            .unwrap_or(DEFAULT_DEMO_SCALE_FACTOR);
        anyhow::ensure!(
            demo_scale_factor > 0.0 && demo_scale_factor <= 10.0,
            "demo_scale_factor must be in (0, 10], got {demo_scale_factor}"
        );
        let cluster_listen = overrides
            .cluster_listen
            .or(from_file.cluster_listen)
            .map(|a| {
                a.parse::<SocketAddr>()
                    .with_context(|| format!("cluster_listen '{a}' is not HOST:PORT"))
            })
            .transpose()?;
        let cluster_secret_file = overrides
            .cluster_secret_file
            .or(from_file.cluster_secret_file);
        anyhow::ensure!(
            cluster_listen.is_none() || cluster_secret_file.is_some(),
            "cluster_listen needs cluster_secret_file: workers must authenticate"
        );
        let retry_policy = overrides
            .retry_policy
            .or(from_file.retry_policy)
            .map_or(Ok(RetryPolicy::Query), |p| p.parse())?;
        let tls_cert_file = overrides.tls_cert_file.or(from_file.tls_cert_file);
        let tls_key_file = overrides.tls_key_file.or(from_file.tls_key_file);
        anyhow::ensure!(
            tls_cert_file.is_some() == tls_key_file.is_some(),
            "tls_cert_file and tls_key_file go together"
        );
        let memory_limit = overrides
            .memory_limit
            .or(from_file.memory_limit)
            .map(|m| vivace_worker::parse_memory_size(&m))
            .transpose()?;
        Ok(Self {
            memory_limit,
            retry_policy,
            users: from_file.users.unwrap_or_default(),
            tls_cert_file,
            tls_key_file,
            workers: overrides
                .workers
                .or(from_file.workers)
                .unwrap_or_else(default_workers),
            cluster_listen,
            cluster_secret_file,
            listen,
            data_dir: overrides
                .data_dir
                .or(from_file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            demo: overrides.demo.or(from_file.demo).unwrap_or(false),
            demo_scale_factor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let c = ServeConfig::resolve(ServeOverrides::default(), None).unwrap();
        assert_eq!(c.listen, "127.0.0.1:5433".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./vivace-data"));
        assert!(!c.demo);
        assert_eq!(c.demo_scale_factor, 0.01);
        assert_eq!(c.workers, default_workers());
        assert_eq!(c.cluster_listen, None);
        assert_eq!(c.cluster_secret_file, None);
        assert_eq!(c.retry_policy, RetryPolicy::Query);
        assert!(c.users.is_empty());
        assert_eq!(c.tls_cert_file, None);
        assert_eq!(c.memory_limit, None);
    }

    #[test]
    fn memory_limits_take_units() {
        assert_eq!(vivace_worker::parse_memory_size("512M").unwrap(), 512 << 20);
        assert_eq!(vivace_worker::parse_memory_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(vivace_worker::parse_memory_size("65536").unwrap(), 65536);
        assert!(vivace_worker::parse_memory_size("0").is_err());
        assert!(vivace_worker::parse_memory_size("lots").is_err());
        let overrides = ServeOverrides {
            memory_limit: Some("64K".into()),
            ..Default::default()
        };
        let c = ServeConfig::resolve(overrides, None).unwrap();
        assert_eq!(c.memory_limit, Some(64 << 10));
    }

    #[test]
    fn the_documented_example_file_states_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vivace.toml");
        let from_example = ServeConfig::resolve(ServeOverrides::default(), Some(&example)).unwrap();
        assert_eq!(
            from_example,
            ServeConfig::resolve(ServeOverrides::default(), None).unwrap()
        );
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("vivace-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:6000\"\ndata_dir = \"/srv/v\"\ndemo = true\n",
        )
        .unwrap();
        let overrides = ServeOverrides {
            listen: Some("127.0.0.1:7000".into()),
            ..Default::default()
        };
        let c = ServeConfig::resolve(overrides, Some(&path)).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/srv/v"));
        assert!(c.demo);
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = ServeConfig::resolve(ServeOverrides::default(), Some(&path)).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `vivace serve` configuration. Every setting is declared once, in
//! [`SETTINGS`] (key, documentation, default, example); the command-line flags
//! (`--key-with-dashes`), the `VIVACE_*` environment variables, the TOML reader,
//! `SHOW vivace.server.<key>` and `deploy/vivace.toml` ([`example_file`]) are all
//! derived from it. Values are taken from (highest first) flags, variables, the
//! TOML file given by `--config`, and the declared defaults, then typed into
//! [`ServeConfig`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};

use crate::engine::RetryPolicy;
use crate::engine::groups::ResourceGroupSpec;

/// How a setting is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text: a flag, a variable and a TOML string.
    Text,
    /// `true` or `false`; the flag alone means true.
    Bool,
    /// A number (TOML integer or float).
    Number,
    /// A table (`[users]`, `[resource_groups]`): TOML only, never shown.
    Table,
}

/// A setting's value when it is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenAbsent {
    /// This value (as TOML writes it).
    Value(&'static str),
    /// Unset, or computed when the server starts as the documentation says;
    /// the example file shows this value commented out.
    Unset {
        /// A value to show in the example file.
        example: &'static str,
    },
}

/// One server setting, declared once.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// TOML key; the flag is `--key` with dashes, the variable `VIVACE_KEY`.
    pub key: &'static str,
    /// How it is given.
    pub kind: Kind,
    /// One line for `--help`.
    pub help: &'static str,
    /// What the example file says above the key (lines without `# `).
    pub doc: &'static str,
    /// The value when none is given.
    pub default: WhenAbsent,
}

impl Setting {
    /// The command-line flag, without its leading dashes.
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    /// The environment variable.
    pub fn variable(&self) -> String {
        format!("VIVACE_{}", self.key.to_ascii_uppercase())
    }
}

/// Every setting of `vivace serve`, in the order the example file lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        kind: Kind::Text,
        help: "Address of the PostgreSQL listener",
        doc: "Address of the PostgreSQL-protocol listener. Without configured users only\n\
              loopback clients are accepted, whatever the address.",
        default: WhenAbsent::Value("\"127.0.0.1:5433\""),
    },
    Setting {
        key: "data_dir",
        kind: Kind::Text,
        help: "Directory for the catalog and demo data",
        doc: "Directory for catalog.db (the external-table catalog) and generated demo data.",
        default: WhenAbsent::Value("\"./vivace-data\""),
    },
    Setting {
        key: "demo",
        kind: Kind::Bool,
        help: "Generate and register the TPC-H demo tables",
        doc: "Register the TPC-H demo tables (generated once into data_dir/demo/).",
        default: WhenAbsent::Value("false"),
    },
    Setting {
        key: "demo_scale_factor",
        kind: Kind::Number,
        help: "TPC-H scale factor of the demo tables",
        doc: "TPC-H scale factor of the demo tables (0.01 is about 60k lineitem rows).",
        default: WhenAbsent::Value("0.01"),
    },
    Setting {
        key: "workers",
        kind: Kind::Number,
        help: "Workers inside this process [default: one per core; 0 for none]",
        doc: "Workers run inside this process. Default: one per core; 0 runs every query in\n\
              the coordinator alone (no distributed planning).",
        default: WhenAbsent::Unset { example: "2" },
    },
    Setting {
        key: "cluster_listen",
        kind: Kind::Text,
        help: "Address remote workers send heartbeats to [default: none]",
        doc: "Address remote `vivace worker` processes send heartbeats to. Default: none, so\n\
              only embedded workers are used. Requires cluster_secret_file.",
        default: WhenAbsent::Unset {
            example: "\"0.0.0.0:7433\"",
        },
    },
    Setting {
        key: "cluster_secret_file",
        kind: Kind::Text,
        help: "File holding the cluster secret (required with --cluster-listen)",
        doc: "File holding the secret shared by the coordinator and its workers (at least 16\n\
              printable characters). Every coordinator<->worker call must present it.",
        default: WhenAbsent::Unset {
            example: "\"/etc/vivace/cluster-secret\"",
        },
    },
    Setting {
        key: "retry_policy",
        kind: Kind::Text,
        help: "On losing a worker mid-query: `query` re-runs it on the survivors, `none` fails it",
        doc: "When a worker is lost during a query: \"query\" re-runs the query on the surviving\n\
              workers if no row has reached the client yet; \"none\" fails it.",
        default: WhenAbsent::Value("\"query\""),
    },
    Setting {
        key: "memory_limit",
        kind: Kind::Text,
        help: "Memory all queries may hold at once, e.g. 8G; sorts spill beyond it [default: no limit]",
        doc: "Memory all running queries may hold together (e.g. \"8G\", \"512M\"); sorts and\n\
              aggregations spill to the OS temporary directory beyond it, a query whose hash\n\
              join does not fit fails with SQLSTATE 53200. Default: no limit.",
        default: WhenAbsent::Unset { example: "\"8G\"" },
    },
    Setting {
        key: "read_only",
        kind: Kind::Bool,
        help: "Refuse every write (CREATE TABLE … AS, INSERT) with SQLSTATE 42501",
        doc: "Refuse every write (CREATE TABLE … AS, INSERT INTO, INSERT OVERWRITE) with\n\
              SQLSTATE 42501; reads and registering external tables still work.",
        default: WhenAbsent::Value("false"),
    },
    Setting {
        key: "tls_cert_file",
        kind: Kind::Text,
        help: "PEM certificate chain: serve TLS (with --tls-key-file) [default: no TLS]",
        doc: "TLS for PostgreSQL clients: a PEM certificate chain and its private key. When set\n\
              and unreadable, the server refuses to start (it never falls back to plaintext).",
        default: WhenAbsent::Unset {
            example: "\"/etc/vivace/server.crt\"",
        },
    },
    Setting {
        key: "tls_key_file",
        kind: Kind::Text,
        help: "PEM private key of --tls-cert-file",
        doc: "",
        default: WhenAbsent::Unset {
            example: "\"/etc/vivace/server.key\"",
        },
    },
    Setting {
        key: "http_listen",
        kind: Kind::Text,
        help: "Address of the HTTP listener: /metrics, /healthz, /readyz, the query page [default: none]",
        doc: "Address of the HTTP listener: Prometheus /metrics, /healthz, /readyz, the web\n\
              page of queries and workers and its JSON API. With users configured it asks\n\
              for their password (HTTP basic); the page then shows a user their own queries,\n\
              an admin every query. Default: no HTTP listener.",
        default: WhenAbsent::Unset {
            example: "\"127.0.0.1:8080\"",
        },
    },
    Setting {
        key: "query_history",
        kind: Kind::Number,
        help: "Finished queries system.queries and the web page keep",
        doc: "How many finished queries system.queries and the web page keep (the oldest\n\
              are forgotten first).",
        default: WhenAbsent::Value("100"),
    },
    Setting {
        key: "users",
        kind: Kind::Table,
        help: "",
        doc: "Users, each with a SCRAM-SHA-256 verifier (never a clear-text password):\n\
              `echo -n 'their password' | vivace password analyst` prints the line, and\n\
              PostgreSQL's pg_authid.rolpassword values work as they are. With users\n\
              configured, every client must log in with a password, from any address,\n\
              and only users granted writes may write (CREATE TABLE … AS, INSERT): give\n\
              such a user a table, `[users.loader]`, with keys password and can_write.\n\
              An admin (key admin, true, in that table) may see and cancel every query.",
        default: WhenAbsent::Unset {
            example: "analyst = \"SCRAM-SHA-256$4096:...$...:...\"",
        },
    },
    Setting {
        key: "resource_groups",
        kind: Kind::Table,
        help: "",
        doc: "Resource groups: how many queries of a group run at once (max_running) and\n\
              wait (max_queued; one more is refused with SQLSTATE 53000). A query joins\n\
              the group its session names (`SET vivace.resource_group TO adhoc`), else\n\
              the first group, by name, listing its user or its application_name (`*`\n\
              matches any text), else `global` (unlimited unless declared here).\n\
              cpu_share plans the group's queries on that fraction of the partitions (so\n\
              of the cores); memory_share bounds what its running queries hold together\n\
              to that fraction of memory_limit (beyond: spill, or 53200).",
        default: WhenAbsent::Unset {
            example: "adhoc = { max_running = 1, max_queued = 10, users = [\"analyst\"], cpu_share = 0.5, memory_share = 0.5 }",
        },
    },
];

/// The example configuration file, `deploy/vivace.toml`, as the declaration
/// writes it.
pub fn example_file() -> String {
    let mut out = String::from(
        "# Example configuration for `vivace serve --config deploy/vivace.toml`.\n\
         # Every key is optional; the value shown is the default. Flags and VIVACE_*\n\
         # environment variables override what is written here. Unknown keys are an error.\n\
         # Generated from the declaration in coordinator/src/config.rs\n\
         # (`vivace config-example`); a test checks that the two agree.\n",
    );
    for setting in SETTINGS {
        if !setting.doc.is_empty() {
            out.push('\n');
            for line in setting.doc.lines() {
                out.push_str(&format!("# {}\n", line.trim()));
            }
        }
        match (setting.kind, setting.default) {
            (Kind::Table, WhenAbsent::Unset { example }) => {
                out.push_str(&format!("# [{}]\n# {example}\n", setting.key));
            }
            (_, WhenAbsent::Value(value)) => out.push_str(&format!("{} = {value}\n", setting.key)),
            (_, WhenAbsent::Unset { example }) => {
                out.push_str(&format!("# {} = {example}\n", setting.key))
            }
        }
    }
    out
}

/// One connection-wide default: one embedded worker per core.
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
    /// Workers run inside this process (`workers`).
    pub workers: usize,
    /// Address remote workers send heartbeats to (`cluster_listen`).
    pub cluster_listen: Option<SocketAddr>,
    /// File holding the cluster secret (`cluster_secret_file`).
    pub cluster_secret_file: Option<PathBuf>,
    /// What to do when a worker is lost mid-query (`retry_policy`).
    pub retry_policy: RetryPolicy,
    /// Users and their SCRAM-SHA-256 verifiers (`[users]`). None configured:
    /// loopback clients only, without passwords.
    pub users: BTreeMap<String, String>,
    /// The users that may write (`[users.NAME] can_write = true`).
    pub writers: BTreeSet<String>,
    /// The users that may see and cancel every query (`[users.NAME] admin = true`).
    pub admins: BTreeSet<String>,
    /// Address of the HTTP listener (`http_listen`).
    pub http_listen: Option<SocketAddr>,
    /// Finished queries kept for `system.queries` (`query_history`).
    pub query_history: usize,
    /// Resource groups, by name (`[resource_groups]`).
    pub resource_groups: Vec<ResourceGroupSpec>,
    /// PEM certificate chain for TLS (`tls_cert_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for TLS (`tls_key_file`).
    pub tls_key_file: Option<PathBuf>,
    /// Memory all queries of this process may hold at once, in bytes
    /// (`memory_limit`).
    pub memory_limit: Option<usize>,
    /// Refuse every write.
    pub read_only: bool,
    /// Every setting's effective value as text, by key, for `SHOW` (the
    /// users' verifiers are never among them).
    pub shown: Vec<(String, String)>,
}

/// Values given on the command line or through `VIVACE_*` variables, by
/// setting key; a key that is absent was not given.
pub type ServeOverrides = BTreeMap<String, String>;

/// The values a configuration is typed from: given ones over the file's over
/// the declared defaults. Records which keys were read, so that a setting
/// declared and never used is caught by a test.
struct Values {
    given: BTreeMap<String, String>,
    users: BTreeMap<String, String>,
    writers: BTreeSet<String>,
    admins: BTreeSet<String>,
    groups: Vec<ResourceGroupSpec>,
    read: Mutex<BTreeSet<&'static str>>,
}

/// `[users]`: each user a verifier, or a table of password, can_write and admin.
fn read_users(
    table: toml::Table,
    users: &mut BTreeMap<String, String>,
    writers: &mut BTreeSet<String>,
    admins: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    for (user, entry) in table {
        let verifier = match entry {
            toml::Value::String(verifier) => verifier,
            toml::Value::Table(mut fields) => {
                for (flag, granted) in [("can_write", &mut *writers), ("admin", &mut *admins)] {
                    match fields.remove(flag) {
                        None | Some(toml::Value::Boolean(false)) => {}
                        Some(toml::Value::Boolean(true)) => {
                            granted.insert(user.clone());
                        }
                        Some(_) => bail!("users.{user}.{flag} must be true or false"),
                    }
                }
                let Some(toml::Value::String(verifier)) = fields.remove("password") else {
                    bail!("users.{user}.password must be a SCRAM-SHA-256 verifier");
                };
                if let Some(key) = fields.keys().next() {
                    bail!("users.{user}.{key} is not a user setting (password, can_write, admin)");
                }
                verifier
            }
            _ => bail!("users.{user} must be a verifier or a table"),
        };
        users.insert(user, verifier);
    }
    Ok(())
}

/// `[resource_groups]`: each group a table of limits and selectors, by name.
fn read_groups(table: toml::Table) -> anyhow::Result<Vec<ResourceGroupSpec>> {
    let mut groups = Vec::new();
    for (name, entry) in table {
        let toml::Value::Table(mut fields) = entry else {
            bail!("resource_groups.{name} must be a table");
        };
        let mut limit = |key: &str| -> anyhow::Result<Option<usize>> {
            match fields.remove(key) {
                None => Ok(None),
                Some(toml::Value::Integer(n)) if n >= 0 => Ok(Some(n as usize)),
                Some(_) => bail!("resource_groups.{name}.{key} must be a whole number"),
            }
        };
        let max_running = limit("max_running")?;
        let max_queued = limit("max_queued")?;
        anyhow::ensure!(
            max_running != Some(0),
            "resource_groups.{name}.max_running must be at least 1"
        );
        let mut names = |key: &str| -> anyhow::Result<Vec<String>> {
            match fields.remove(key) {
                None => Ok(Vec::new()),
                Some(toml::Value::Array(items)) => items
                    .into_iter()
                    .map(|item| match item {
                        toml::Value::String(text) => Ok(text),
                        _ => bail!("resource_groups.{name}.{key} must be a list of text"),
                    })
                    .collect(),
                Some(_) => bail!("resource_groups.{name}.{key} must be a list of text"),
            }
        };
        let users = names("users")?;
        let applications = names("applications")?;
        let mut share = |key: &str| -> anyhow::Result<Option<f64>> {
            let value = match fields.remove(key) {
                None => return Ok(None),
                Some(toml::Value::Float(f)) => f,
                Some(toml::Value::Integer(n)) => n as f64,
                Some(_) => bail!("resource_groups.{name}.{key} must be a number"),
            };
            anyhow::ensure!(
                value > 0.0 && value <= 1.0,
                "resource_groups.{name}.{key} must be a fraction above 0 and at most 1 (e.g. 0.25)"
            );
            Ok(Some(value))
        };
        let cpu_share = share("cpu_share")?;
        let memory_share = share("memory_share")?;
        if let Some(key) = fields.keys().next() {
            bail!(
                "resource_groups.{name}.{key} is not a group setting (max_running, max_queued, users, applications, cpu_share, memory_share)"
            );
        }
        groups.push(ResourceGroupSpec {
            name,
            max_running,
            max_queued,
            users,
            applications,
            cpu_share,
            memory_share,
        });
    }
    Ok(groups)
}

impl Values {
    fn new(overrides: ServeOverrides, file: Option<&Path>) -> anyhow::Result<Self> {
        let mut given = BTreeMap::new();
        let mut users = BTreeMap::new();
        let mut writers = BTreeSet::new();
        let mut admins = BTreeSet::new();
        let mut groups = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let table: toml::Table = text
                .parse()
                .with_context(|| format!("invalid config file {}", path.display()))?;
            for (key, value) in table {
                let setting = declared(&key)
                    .with_context(|| format!("invalid config file {}", path.display()))?;
                match (setting.kind, value) {
                    (Kind::Table, toml::Value::Table(table)) if key == "users" => {
                        read_users(table, &mut users, &mut writers, &mut admins)
                            .with_context(|| format!("invalid config file {}", path.display()))?;
                    }
                    (Kind::Table, toml::Value::Table(table)) => {
                        groups = read_groups(table)
                            .with_context(|| format!("invalid config file {}", path.display()))?;
                    }
                    (Kind::Table, _) => bail!(
                        "invalid config file {}: {key} must be a table",
                        path.display()
                    ),
                    (_, toml::Value::String(text)) => {
                        given.insert(key, text);
                    }
                    (
                        _,
                        value @ (toml::Value::Boolean(_)
                        | toml::Value::Integer(_)
                        | toml::Value::Float(_)),
                    ) => {
                        given.insert(key, value.to_string());
                    }
                    (_, _) => bail!(
                        "invalid config file {}: {key} must be a single value",
                        path.display()
                    ),
                }
            }
        }
        for (key, value) in overrides {
            let setting = declared(&key)?;
            anyhow::ensure!(
                setting.kind != Kind::Table,
                "{key} are configured in the TOML file only"
            );
            given.insert(key, value);
        }
        Ok(Self {
            given,
            users,
            writers,
            admins,
            groups,
            read: Mutex::default(),
        })
    }

    /// The value of `key` as text: given, or the declared default.
    fn text(&self, key: &'static str) -> Option<String> {
        let setting = declared(key).expect("a declared setting");
        self.read.lock().expect("not poisoned").insert(setting.key);
        self.given.get(key).cloned().or(match setting.default {
            WhenAbsent::Value(value) => Some(value.trim_matches('"').to_string()),
            WhenAbsent::Unset { .. } => None,
        })
    }

    /// The value of `key` parsed, which has a declared default.
    fn require<T: std::str::FromStr>(&self, key: &'static str) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        self.parse(key)?
            .with_context(|| format!("{key} has no value"))
    }

    /// The value of `key` parsed, with the key in the error.
    fn parse<T: std::str::FromStr>(&self, key: &'static str) -> anyhow::Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.text(key)
            .map(|text| {
                text.parse::<T>()
                    .map_err(|e| anyhow::anyhow!("{key} '{text}' is not valid: {e}"))
            })
            .transpose()
    }
}

fn declared(key: &str) -> anyhow::Result<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key).with_context(|| {
        let known: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        format!(
            "unknown field `{key}`; known settings: {}",
            known.join(", ")
        )
    })
}

impl ServeConfig {
    /// Merge overrides over the optional TOML file over the defaults.
    pub fn resolve(overrides: ServeOverrides, file: Option<&Path>) -> anyhow::Result<Self> {
        let values = Values::new(overrides, file)?;
        let mut config = Self::from_values(&values)?;
        debug_assert_eq!(
            values.read.lock().expect("not poisoned").len(),
            SETTINGS.iter().filter(|s| s.kind != Kind::Table).count(),
            "every declared setting but the tables is read"
        );
        config.shown = SETTINGS
            .iter()
            .filter(|s| s.kind != Kind::Table)
            .map(|s| {
                let value = match s.key {
                    "workers" => config.workers.to_string(),
                    key => values.text(key).unwrap_or_default(),
                };
                (s.key.to_string(), value)
            })
            .collect();
        Ok(config)
    }

    fn from_values(values: &Values) -> anyhow::Result<Self> {
        let listen: SocketAddr = values.require("listen")?;
        let demo_scale_factor: f64 = values.require("demo_scale_factor")?;
        anyhow::ensure!(
            demo_scale_factor > 0.0 && demo_scale_factor <= 10.0,
            "demo_scale_factor must be in (0, 10], got {demo_scale_factor}"
        );
        let cluster_listen: Option<SocketAddr> = values.parse("cluster_listen")?;
        let cluster_secret_file: Option<PathBuf> = values.parse("cluster_secret_file")?;
        anyhow::ensure!(
            cluster_listen.is_none() || cluster_secret_file.is_some(),
            "cluster_listen needs cluster_secret_file: workers must authenticate"
        );
        let tls_cert_file: Option<PathBuf> = values.parse("tls_cert_file")?;
        let tls_key_file: Option<PathBuf> = values.parse("tls_key_file")?;
        anyhow::ensure!(
            tls_cert_file.is_some() == tls_key_file.is_some(),
            "tls_cert_file and tls_key_file go together"
        );
        let memory_limit = values
            .text("memory_limit")
            .map(|m| vivace_worker::parse_memory_size(&m))
            .transpose()?;
        let workers = values.parse("workers")?.unwrap_or_else(default_workers);
        Ok(Self {
            listen,
            data_dir: values.require("data_dir")?,
            demo: values.require("demo")?,
            demo_scale_factor,
            workers,
            cluster_listen,
            cluster_secret_file,
            retry_policy: values.require("retry_policy")?,
            users: values.users.clone(),
            writers: values.writers.clone(),
            admins: values.admins.clone(),
            http_listen: values.parse("http_listen")?,
            query_history: values.require("query_history")?,
            resource_groups: values.groups.clone(),
            tls_cert_file,
            tls_key_file,
            memory_limit,
            read_only: values.require("read_only")?,
            shown: Vec::new(),
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
        let overrides = ServeOverrides::from([("memory_limit".into(), "64K".into())]);
        let c = ServeConfig::resolve(overrides, None).unwrap();
        assert_eq!(c.memory_limit, Some(64 << 10));
    }

    #[test]
    fn the_example_file_is_the_declaration() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vivace.toml");
        assert_eq!(
            std::fs::read_to_string(&example).unwrap(),
            example_file(),
            "deploy/vivace.toml differs from the declared settings: regenerate it with \
             `vivace config-example > deploy/vivace.toml`"
        );
    }

    #[test]
    fn the_readme_table_lists_every_setting() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        for setting in SETTINGS.iter().filter(|s| s.kind != Kind::Table) {
            let row = readme
                .lines()
                .find(|l| {
                    l.starts_with(&format!("| `--{} ", setting.flag()))
                        || l.starts_with(&format!("| `--{}`", setting.flag()))
                })
                .unwrap_or_else(|| panic!("README.md has no row for --{}", setting.flag()));
            assert!(
                row.contains(&format!("`{}`", setting.variable()))
                    && row.contains(&format!("`{}`", setting.key)),
                "README.md's row for {} names another variable or key: {row}",
                setting.key
            );
        }
    }

    #[test]
    fn users_may_be_granted_writes() {
        let dir = std::env::temp_dir().join(format!("vivace-cfg-writers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.toml");
        std::fs::write(
            &path,
            "[users]\nanalyst = \"SCRAM-a\"\n[users.loader]\npassword = \"SCRAM-b\"\ncan_write = true\n",
        )
        .unwrap();
        let c = ServeConfig::resolve(ServeOverrides::default(), Some(&path)).unwrap();
        assert_eq!(c.users.len(), 2);
        assert_eq!(c.users["loader"], "SCRAM-b");
        assert_eq!(c.writers, BTreeSet::from(["loader".to_string()]));
        std::fs::write(
            &path,
            "[users.loader]\npassword = \"x\"\ncan_write = \"yes\"\n",
        )
        .unwrap();
        assert!(ServeConfig::resolve(ServeOverrides::default(), Some(&path)).is_err());
        std::fs::write(&path, "[users.loader]\ncan_write = true\n").unwrap();
        assert!(ServeConfig::resolve(ServeOverrides::default(), Some(&path)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_declared_setting_is_read_and_shown_but_users() {
        let dir = std::env::temp_dir().join(format!("vivace-cfg-all-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.toml");
        // Every example uncommented: each value is accepted as its kind says.
        let text: String = example_file()
            .lines()
            .filter(|l| !l.starts_with("# ") || l.contains(" = ") || l.starts_with("# ["))
            .map(|l| l.trim_start_matches("# "))
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, &text).unwrap();
        let c = ServeConfig::resolve(ServeOverrides::default(), Some(&path)).unwrap();
        assert_eq!(c.workers, 2);
        assert_eq!(c.memory_limit, Some(8 << 30));
        assert_eq!(c.users.len(), 1);
        assert!(c.writers.is_empty());
        let shown: Vec<&str> = c.shown.iter().map(|(k, _)| k.as_str()).collect();
        let declared: Vec<&str> = SETTINGS
            .iter()
            .filter(|s| s.kind != Kind::Table)
            .map(|s| s.key)
            .collect();
        assert_eq!(shown, declared);
        assert!(!c.shown.iter().any(|(_, v)| v.contains("SCRAM")));
        assert!(
            ServeConfig::resolve(ServeOverrides::from([("users".into(), "x".into())]), None)
                .is_err()
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
        let overrides = ServeOverrides::from([("listen".into(), "127.0.0.1:7000".into())]);
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

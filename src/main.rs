//! The `vivace` binary: one executable, subcommands for each role.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use vivace_coordinator::config::{Kind, SETTINGS, WhenAbsent};
use vivace_coordinator::{ServeConfig, ServeOverrides};

#[derive(Parser)]
#[command(
    name = "vivace",
    version,
    about = "Federated SQL query gateway speaking the PostgreSQL protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a coordinator: PostgreSQL-protocol endpoint, catalog and planner.
    Serve(ServeArgs),
    /// Run a worker that executes plan fragments for a coordinator.
    Worker(WorkerArgs),
    /// Read a password on stdin and print its SCRAM-SHA-256 verifier for `[users]`.
    Password(PasswordArgs),
    /// Print the example configuration file (deploy/vivace.toml) from the declared settings.
    ConfigExample,
}

#[derive(clap::Args)]
struct PasswordArgs {
    /// The user the printed line is for.
    user: String,
}

#[derive(clap::Args)]
struct WorkerArgs {
    /// Address the worker service listens on.
    #[arg(long, env = "VIVACE_WORKER_LISTEN")]
    listen: SocketAddr,
    /// Address peers use to reach this worker [default: the listen address].
    #[arg(long, env = "VIVACE_WORKER_ADVERTISE")]
    advertise: Option<SocketAddr>,
    /// The coordinator's cluster address (its --cluster-listen).
    #[arg(long, env = "VIVACE_COORDINATOR")]
    coordinator: String,
    /// File holding the cluster secret shared with the coordinator.
    #[arg(long, env = "VIVACE_CLUSTER_SECRET_FILE")]
    cluster_secret_file: PathBuf,
    /// Memory the tasks on this worker may hold at once, e.g. 8G [default: no limit].
    #[arg(long, env = "VIVACE_MEMORY_LIMIT")]
    memory_limit: Option<String>,
    /// Address of the HTTP listener serving /healthz, /readyz and /metrics
    /// [default: none].
    #[arg(long, env = "VIVACE_WORKER_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
}

/// `vivace serve`'s flags: `--config`, then one per declared setting
/// (`vivace_coordinator::config::SETTINGS`), each also read from its variable.
struct ServeArgs {
    config: Option<PathBuf>,
    given: ServeOverrides,
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self {
            config: None,
            given: ServeOverrides::new(),
        };
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        if let Some(config) = matches.get_one::<PathBuf>("config") {
            self.config = Some(config.clone());
        }
        for setting in SETTINGS.iter().filter(|s| s.kind != Kind::Table) {
            if let Some(value) = matches.get_one::<String>(setting.key) {
                self.given.insert(setting.key.to_string(), value.clone());
            }
        }
        Ok(())
    }
}

impl clap::Args for ServeArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = cmd.arg(
            clap::Arg::new("config")
                .long("config")
                .env("VIVACE_CONFIG")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML configuration file (see deploy/vivace.toml)"),
        );
        SETTINGS
            .iter()
            .filter(|s| s.kind != Kind::Table)
            .fold(cmd, |cmd, setting| {
                let mut help = setting.help.to_string();
                if let WhenAbsent::Value(value) = setting.default
                    && !help.contains("[default:")
                {
                    help.push_str(&format!(" [default: {}]", value.trim_matches('"')));
                }
                // clap keeps names for the life of the process; these are
                // built once, at start-up.
                let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
                let mut arg = clap::Arg::new(setting.key)
                    .long(leak(setting.flag()))
                    .env(leak(setting.variable()))
                    .value_name(leak(setting.key.to_ascii_uppercase()))
                    .help(help);
                if setting.kind == Kind::Bool {
                    arg = arg.num_args(0..=1).default_missing_value("true");
                }
                cmd.arg(arg)
            })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Stack of the threads serving connections and cluster calls.
const RUNTIME_STACK_BYTES: usize = 16 << 20;

fn main() -> anyhow::Result<()> {
    // The Delta kernel logs every snapshot and scan at INFO: it says only
    // warnings unless VIVACE_LOG names it.
    let filter = std::env::var("VIVACE_LOG").unwrap_or_else(|_| "info".into());
    let filter = if filter.contains("buoyant_kernel") {
        filter
    } else {
        format!("{filter},buoyant_kernel=warn")
    };
    let filter =
        EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info,buoyant_kernel=warn"));
    // `VIVACE_LOG_FORMAT=json`: one JSON object per line (the query-end lines
    // carry their fields as keys), for log shippers.
    if std::env::var("VIVACE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let cli = Cli::parse();
    // Deep plans (long flat expressions) are cloned and dropped recursively on
    // these threads too; 2 MiB (tokio's default) is not always enough.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(RUNTIME_STACK_BYTES)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            let config = ServeConfig::resolve(args.given, args.config.as_deref())?;
            runtime.block_on(vivace_coordinator::run(config))
        }
        Command::Worker(args) => runtime.block_on(run_worker(args)),
        Command::ConfigExample => {
            print!("{}", vivace_coordinator::config::example_file());
            Ok(())
        }
        Command::Password(args) => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on stdin");
            let verifier = vivace_coordinator::wire::Verifier::generate(password);
            println!("{} = \"{verifier}\"", toml_key(&args.user));
            Ok(())
        }
    }
}

/// `user` as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(user: &str) -> String {
    if !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        user.to_string()
    } else {
        format!("{user:?}")
    }
}

/// Serve plan fragments and heartbeat to the coordinator until stopped.
async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    use vivace_worker::http::WorkerHttp;
    use vivace_worker::membership::{Heartbeat, Registration, heartbeat_loop};
    use vivace_worker::{ClusterSecret, WorkerOptions, spawn_worker};

    let secret = ClusterSecret::from_file(&args.cluster_secret_file)?;
    let memory_limit = args
        .memory_limit
        .as_deref()
        .map(vivace_worker::parse_memory_size)
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let runtime = vivace_worker::runtime_env(memory_limit)?;
    let registration = Registration::default();
    if let Some(address) = args.http_listen {
        let http = tokio::net::TcpListener::bind(address).await?;
        let state = WorkerHttp::new(registration.clone(), runtime.clone())?;
        tracing::info!(address = %http.local_addr()?, "worker HTTP listener ready");
        tokio::spawn(async move {
            if let Err(e) = vivace_worker::http::serve(http, state).await {
                tracing::error!(error = %e, "worker HTTP listener stopped");
            }
        });
    }
    let handle = spawn_worker(
        listener,
        WorkerOptions {
            secret: secret.clone(),
            runtime: Some(runtime),
            local: None,
            connectors: Default::default(),
        },
    )?;
    let advertise = args.advertise.unwrap_or(handle.addr);
    let heartbeat = Heartbeat {
        node_id: format!("worker-{advertise}"),
        url: format!("http://{advertise}"),
        task_rows: Vec::new(),
    };
    tracing::info!(url = %heartbeat.url, coordinator = %args.coordinator, "worker ready");
    // Heartbeats run on a thread of their own: a worker whose runtime is busy
    // with query work must still say it is alive (and how far its tasks got).
    let coordinator = args.coordinator.clone();
    std::thread::Builder::new()
        .name("vivace-heartbeat".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    runtime.block_on(heartbeat_loop(coordinator, heartbeat, secret, registration))
                }
                Err(e) => tracing::error!(error = %e, "cannot start the heartbeat thread"),
            }
        })?;
    tokio::signal::ctrl_c().await?;
    handle.stop().await;
    Ok(())
}

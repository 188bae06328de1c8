//! The `vivace` binary: one executable, subcommands for each role.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
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
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (see deploy/vivace.toml).
    #[arg(long, env = "VIVACE_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the PostgreSQL listener [default: 127.0.0.1:5433].
    #[arg(long, env = "VIVACE_LISTEN")]
    listen: Option<String>,
    /// Directory for the catalog and demo data [default: ./vivace-data].
    #[arg(long, env = "VIVACE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Generate and register the TPC-H demo tables.
    #[arg(long, env = "VIVACE_DEMO", num_args = 0..=1, default_missing_value = "true")]
    demo: Option<bool>,
    /// TPC-H scale factor of the demo tables [default: 0.01].
    #[arg(long, env = "VIVACE_DEMO_SCALE_FACTOR")]
    demo_scale_factor: Option<f64>,
    /// Workers inside this process [default: one per core; 0 for none].
    #[arg(long, env = "VIVACE_WORKERS")]
    workers: Option<usize>,
    /// Address remote workers send heartbeats to [default: none].
    #[arg(long, env = "VIVACE_CLUSTER_LISTEN")]
    cluster_listen: Option<String>,
    /// File holding the cluster secret (required with --cluster-listen).
    #[arg(long, env = "VIVACE_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// On losing a worker mid-query: `query` re-runs it on the survivors, `none` fails it [default: query].
    #[arg(long, env = "VIVACE_RETRY_POLICY")]
    retry_policy: Option<String>,
    /// PEM certificate chain: serve TLS (with --tls-key-file) [default: no TLS].
    #[arg(long, env = "VIVACE_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "VIVACE_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    /// Memory all queries may hold at once, e.g. 8G; sorts spill beyond it [default: no limit].
    #[arg(long, env = "VIVACE_MEMORY_LIMIT")]
    memory_limit: Option<String>,
}

/// Stack of the threads serving connections and cluster calls.
const RUNTIME_STACK_BYTES: usize = 16 << 20;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("VIVACE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    // Deep plans (long flat expressions) are cloned and dropped recursively on
    // these threads too; 2 MiB (tokio's default) is not always enough.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(RUNTIME_STACK_BYTES)
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => {
            let overrides = ServeOverrides {
                listen: args.listen,
                data_dir: args.data_dir,
                demo: args.demo,
                demo_scale_factor: args.demo_scale_factor,
                workers: args.workers,
                cluster_listen: args.cluster_listen,
                cluster_secret_file: args.cluster_secret_file,
                retry_policy: args.retry_policy,
                tls_cert_file: args.tls_cert_file,
                tls_key_file: args.tls_key_file,
                memory_limit: args.memory_limit,
            };
            let config = ServeConfig::resolve(overrides, args.config.as_deref())?;
            runtime.block_on(vivace_coordinator::run(config))
        }
        Command::Worker(args) => runtime.block_on(run_worker(args)),
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
    use vivace_worker::membership::{Heartbeat, heartbeat_loop};
    use vivace_worker::{ClusterSecret, WorkerOptions, spawn_worker};

    let secret = ClusterSecret::from_file(&args.cluster_secret_file)?;
    let memory_limit = args
        .memory_limit
        .as_deref()
        .map(vivace_worker::parse_memory_size)
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let handle = spawn_worker(
        listener,
        WorkerOptions {
            secret: secret.clone(),
            runtime: Some(vivace_worker::runtime_env(memory_limit)?),
            local: None,
            connectors: Default::default(),
        },
    )?;
    let advertise = args.advertise.unwrap_or(handle.addr);
    let heartbeat = Heartbeat {
        node_id: format!("worker-{advertise}"),
        url: format!("http://{advertise}"),
    };
    tracing::info!(url = %heartbeat.url, coordinator = %args.coordinator, "worker ready");
    tokio::select! {
        _ = heartbeat_loop(args.coordinator, heartbeat, secret) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    handle.stop().await;
    Ok(())
}

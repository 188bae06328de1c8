//! The `vivace` binary: one executable, subcommands for each role.

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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("VIVACE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve(args) => {
            let overrides = ServeOverrides {
                listen: args.listen,
                data_dir: args.data_dir,
                demo: args.demo,
                demo_scale_factor: args.demo_scale_factor,
            };
            let config = ServeConfig::resolve(overrides, args.config.as_deref())?;
            runtime.block_on(vivace_coordinator::run(config))
        }
    }
}

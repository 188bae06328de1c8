//! The Vivace coordinator: PostgreSQL wire protocol, sessions, DDL and planning over
//! the catalog and connectors.

pub mod cluster;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod http;
pub mod pgcompat;
pub mod session;
pub mod telemetry;
pub mod tls;
pub mod wire;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

pub use config::{ServeConfig, ServeOverrides};
pub use engine::{Engine, Execution, RetryPolicy};

use cluster::{Cluster, ClusterConfig, Membership};
use vivace_worker::ClusterSecret;

/// Run a coordinator until the process is stopped: open the catalog, install the
/// demo tables if asked, then serve PostgreSQL clients.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    // Refuse to start rather than serve plaintext or open access by mistake.
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Some(wire::tls_acceptor(cert, key)?),
        _ => None,
    };
    let users = wire::Users::from_verifiers(&config.users)?;
    let secret = match &config.cluster_secret_file {
        Some(path) => ClusterSecret::from_file(path)?,
        None => ClusterSecret::random(),
    };
    // The client port is taken first: embedded workers and the cluster
    // listener bind ports the system picks, which could otherwise be the one
    // configured here. Clients that connect early wait until serving starts.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let http_listener = match config.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (http_listen)"))?,
        ),
        None => None,
    };
    let metrics = telemetry::install();
    let distributed = config.workers > 0 || config.cluster_listen.is_some();
    let membership = Arc::new(Membership::new(config.listen.to_string()));
    let local = vivace_worker::LocalWorkers::default();
    let execution = if distributed {
        Execution::Distributed {
            membership: membership.clone(),
            secret: secret.clone(),
            retry: config.retry_policy,
            local: local.clone(),
        }
    } else {
        Execution::Local
    };
    let engine: Arc<Engine> = Engine::open(
        &config.data_dir,
        execution,
        config.memory_limit,
        engine::WriteAccess {
            read_only: config.read_only,
            writers: (!config.users.is_empty()).then(|| config.writers.clone()),
        },
        engine::Operations {
            query_history: config.query_history,
            resource_groups: config.resource_groups.clone(),
            admins: (!config.users.is_empty()).then(|| config.admins.clone()),
        },
        Arc::new(pgcompat::PostgresDialect),
        config.shown.clone(),
    )
    .await?;
    let _cluster = Cluster::start(
        ClusterConfig {
            embedded_workers: config.workers,
            listen: config.cluster_listen,
            secret,
            local,
            connectors: engine.connectors().clone(),
            query_runtime: engine::executor::query_runtime(),
        },
        membership,
        engine.runtime(),
    )
    .await?;
    if config.demo {
        demo::install(&engine, &config.data_dir, config.demo_scale_factor).await?;
    }
    let addr = listener.local_addr()?;
    tracing::info!(
        tls = tls.is_some(),
        passwords = !users.is_empty(),
        "Vivace is ready: connect with  psql -h {} -p {} -U vivace vivace",
        addr.ip(),
        addr.port()
    );
    if let Some(http_listener) = http_listener {
        let https = match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key, &[b"http/1.1"])?),
            _ => None,
        };
        tracing::info!(
            "web page and metrics on {}://{}/",
            if https.is_some() { "https" } else { "http" },
            http_listener.local_addr()?
        );
        let state = http::HttpState {
            engine: engine.clone(),
            metrics,
            users: Arc::new(users.clone()),
        };
        tokio::spawn(async move {
            if let Err(e) = http::serve(http_listener, https, state).await {
                tracing::error!(error = %e, "the HTTP listener stopped");
            }
        });
    }
    let gate = Arc::new(wire::Gate::new(users, Default::default()));
    wire::serve(engine, listener, gate, tls).await?;
    Ok(())
}

//! Sessions to a Cassandra cluster (the scylla driver, CQL protocol v4/v5):
//! contact points, credentials read from the environment, TLS with a CA file,
//! the data centre to prefer and the timeouts of the table's options; and the
//! driver's errors as connector errors with the right kind.

use openssl::ssl::{SslContextBuilder, SslMethod, SslVerifyMode};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::Consistency as DriverConsistency;

use super::options::{CassandraOptions, Consistency};
use crate::{ConnectorError, ConnectorErrorKind, ConnectorResult};

/// Open a session to the cluster `options` names (reads the password now).
pub async fn open(options: &CassandraOptions) -> ConnectorResult<Session> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &options.local_dc {
        policy = policy
            .prefer_datacenter(dc.clone())
            .permit_dc_failover(false);
    }
    let profile = ExecutionProfile::builder()
        .load_balancing_policy(policy.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&options.contact_points)
        .connection_timeout(options.connect_timeout)
        .default_execution_profile_handle(profile.into_handle())
        .keyspaces_to_fetch([options.keyspace.clone()]);
    if let Some((user, password)) = options.password()? {
        builder = builder.user(user, password);
    }
    if let Some(ca_file) = &options.ca_file {
        let mut tls = SslContextBuilder::new(SslMethod::tls_client()).map_err(tls_error)?;
        tls.set_ca_file(ca_file).map_err(|e| {
            ConnectorError::invalid_option(format!(
                "option 'ca_file': cannot read '{}' as PEM certificates: {e}",
                ca_file.display()
            ))
        })?;
        tls.set_verify(SslVerifyMode::PEER);
        builder = builder.tls_context(Some(tls.build()));
    }
    let session = tokio::time::timeout(options.connect_timeout * 3, builder.build())
        .await
        .map_err(|_| {
            ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                format!(
                    "cannot reach Cassandra at {}: no answer in {} s",
                    options.contact_points.join(","),
                    (options.connect_timeout * 3).as_secs()
                ),
            )
        })?
        .map_err(|e| connect_error(options, &e.to_string()))?;
    Ok(session)
}

fn tls_error(e: openssl::error::ErrorStack) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::Unreachable,
        format!("cannot set up TLS: {e}"),
    )
}

/// The driver's level for `c`.
pub fn driver_consistency(c: Consistency) -> DriverConsistency {
    match c {
        Consistency::One => DriverConsistency::One,
        Consistency::LocalOne => DriverConsistency::LocalOne,
        Consistency::Quorum => DriverConsistency::Quorum,
        Consistency::LocalQuorum => DriverConsistency::LocalQuorum,
        Consistency::All => DriverConsistency::All,
    }
}

/// A failure to open a session: refused credentials or an unreachable cluster.
fn connect_error(options: &CassandraOptions, text: &str) -> ConnectorError {
    if is_auth_failure(text) {
        return ConnectorError::new(
            ConnectorErrorKind::AuthenticationFailed,
            format!(
                "Cassandra at {} refused the credentials of user \"{}\": {}",
                options.contact_points.join(","),
                options.user.as_deref().unwrap_or(""),
                redact(text)
            ),
        );
    }
    ConnectorError::new(
        ConnectorErrorKind::Unreachable,
        format!(
            "cannot reach Cassandra at {}: {}",
            options.contact_points.join(","),
            redact(text)
        ),
    )
}

fn is_auth_failure(text: &str) -> bool {
    text.contains("bad credentials")
        || text.contains("Authentication")
        || text.contains("authenticat")
        || text.contains("Provided username")
}

/// A failed request (a page of rows, a prepare), by what the driver says.
pub fn request_error(options: &CassandraOptions, table: &str, text: &str) -> ConnectorError {
    let consistency = options.consistency.name();
    if text.contains("timeout") || text.contains("Timeout") || text.contains("timed out") {
        return ConnectorError::new(
            ConnectorErrorKind::TimedOut,
            format!(
                "Cassandra did not answer a read of {table} at consistency {consistency} in time: {}",
                redact(text)
            ),
        );
    }
    if text.contains("Unavailable") || text.contains("Not enough") || text.contains("unavailable") {
        return ConnectorError::new(
            ConnectorErrorKind::TimedOut,
            format!(
                "too few Cassandra replicas are up to read {table} at consistency {consistency}: {}",
                redact(text)
            ),
        );
    }
    if is_auth_failure(text) {
        return connect_error(options, text);
    }
    if text.contains("empty plan") {
        return ConnectorError::new(
            ConnectorErrorKind::Unreachable,
            format!(
                "no Cassandra node to read {table} from{}: {}",
                options
                    .local_dc
                    .as_deref()
                    .map(|dc| format!(" in data centre \"{dc}\" (option 'local_dc')"))
                    .unwrap_or_default(),
                redact(text)
            ),
        );
    }
    if text.contains("unconfigured table") || text.contains("does not exist") {
        return ConnectorError::new(
            ConnectorErrorKind::NotFound,
            format!("Cassandra has no table {table} any more: {}", redact(text)),
        );
    }
    if text.contains("broken") || text.contains("No connections") || text.contains("Connection") {
        return ConnectorError::new(
            ConnectorErrorKind::Unreachable,
            format!(
                "lost Cassandra at {} reading {table}: {}",
                options.contact_points.join(","),
                redact(text)
            ),
        );
    }
    ConnectorError::new(
        ConnectorErrorKind::Rejected,
        format!("Cassandra rejected a read of {table}: {}", redact(text)),
    )
}

/// The driver's message, which never holds the password (the driver does not
/// print it) but may be long: kept to its first 500 characters.
fn redact(text: &str) -> String {
    text.chars().take(500).collect()
}

//! Sessions to a Cassandra cluster (the scylla driver, CQL protocol v4/v5):
//! contact points, credentials read from the environment, TLS with a CA file,
//! the data centre to prefer and the timeouts of the table's options; and the
//! driver's errors as connector errors with the right kind, read from the
//! driver's error types (a missing table alone is told by the server's text).

use openssl::ssl::{SslContextBuilder, SslMethod, SslVerifyMode};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{
    ConnectionError, ConnectionPoolError, ConnectionSetupRequestErrorKind, DbError,
    DeserializationError, ExecutionError, IntoRowsResultError, MetadataError, MetadataFetchError,
    MetadataFetchErrorKind, NewSessionError, PrepareError, RequestAttemptError, RowsError,
    SchemaAgreementError, UseKeyspaceError,
};
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
        .map_err(|e| connect_error(options, &e))?;
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

/// What a driver error means for the user: it decides the error's kind (and
/// so its SQLSTATE) and message. Read from the driver's typed errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The driver's request timeout ran out, or the replicas did not answer
    /// in time for the consistency.
    TimedOut,
    /// Too few replicas are up for the consistency.
    Unavailable,
    /// The credentials were refused (or none were given where the cluster
    /// asks for them).
    Credentials,
    /// The load balancing policy had no node to send the request to (no node
    /// in the preferred data centre).
    NoNode,
    /// The table, or its keyspace, is not there (dropped since).
    NoTable,
    /// The cluster could not be reached, or the connection to it broke.
    Lost,
    /// Anything else Cassandra or the driver refused.
    Rejected,
}

/// A driver error whose [`Cause`] its type tells.
pub trait DriverError: std::fmt::Display {
    /// What the error means.
    fn cause(&self) -> Cause;
}

impl DriverError for NewSessionError {
    fn cause(&self) -> Cause {
        match self {
            NewSessionError::MetadataError(e) => metadata_cause(e),
            NewSessionError::UseKeyspaceError(e) => use_keyspace_cause(e),
            // No address resolved, no contact point, a configuration the
            // driver refuses: nothing was reached.
            _ => Cause::Lost,
        }
    }
}

impl DriverError for ExecutionError {
    fn cause(&self) -> Cause {
        match self {
            ExecutionError::RequestTimeout(_) => Cause::TimedOut,
            ExecutionError::EmptyPlan => Cause::NoNode,
            ExecutionError::LastAttemptError(e) => attempt_cause(e),
            ExecutionError::ConnectionPoolError(e) => pool_cause(e),
            ExecutionError::PrepareError(e) => e.cause(),
            ExecutionError::UseKeyspaceError(e) => use_keyspace_cause(e),
            ExecutionError::SchemaAgreementError(e) => match e {
                SchemaAgreementError::Timeout(_) => Cause::TimedOut,
                SchemaAgreementError::ConnectionPoolError(e) => pool_cause(e),
                SchemaAgreementError::PrepareError(e) => e.cause(),
                SchemaAgreementError::RequestError(e) => attempt_cause(e),
                _ => Cause::Rejected,
            },
            ExecutionError::MetadataError(e) => metadata_cause(e),
            _ => Cause::Rejected,
        }
    }
}

impl DriverError for PrepareError {
    fn cause(&self) -> Cause {
        match self {
            PrepareError::ConnectionPoolError(e) => pool_cause(e),
            PrepareError::AllAttemptsFailed { first_attempt } => attempt_cause(first_attempt),
            _ => Cause::Rejected,
        }
    }
}

/// A page's rows that are not rows, or do not read as the statement's columns.
impl DriverError for IntoRowsResultError {
    fn cause(&self) -> Cause {
        Cause::Rejected
    }
}

impl DriverError for RowsError {
    fn cause(&self) -> Cause {
        Cause::Rejected
    }
}

impl DriverError for DeserializationError {
    fn cause(&self) -> Cause {
        Cause::Rejected
    }
}

/// One attempt of a request: the error the server sent, or the connection
/// broke under it.
fn attempt_cause(e: &RequestAttemptError) -> Cause {
    match e {
        RequestAttemptError::DbError(db, message) => db_cause(db, message),
        RequestAttemptError::BrokenConnectionError(_) => Cause::Lost,
        _ => Cause::Rejected,
    }
}

/// An error the server sent, with its message.
fn db_cause(e: &DbError, message: &str) -> Cause {
    match e {
        DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. } => Cause::TimedOut,
        DbError::Unavailable { .. } => Cause::Unavailable,
        DbError::AuthenticationError => Cause::Credentials,
        // Cassandra reports a table or keyspace that is not there only as an
        // invalid request ("unconfigured table t", "table t does not exist",
        // "Keyspace k does not exist"): which invalid request it is, only its
        // message says, so here, and only here, the text decides.
        DbError::Invalid
            if message.contains("unconfigured table") || message.contains("does not exist") =>
        {
            Cause::NoTable
        }
        _ => Cause::Rejected,
    }
}

/// A node's connections: the last connection's failure, or none to use.
fn pool_cause(e: &ConnectionPoolError) -> Cause {
    match e {
        ConnectionPoolError::Broken {
            last_connection_error,
        } => connection_cause(last_connection_error),
        // Still connecting, or the node is filtered out: no connection.
        _ => Cause::Lost,
    }
}

/// A connection that could not be made or broke: refused credentials during
/// its setup, else the node is out of reach (refused, timed out, TLS
/// handshake refused, broken).
fn connection_cause(e: &ConnectionError) -> Cause {
    match e {
        ConnectionError::ConnectionSetupRequestError(e) => setup_cause(e.get_error()),
        _ => Cause::Lost,
    }
}

/// A request that sets a connection up (options, startup, authentication).
fn setup_cause(e: &ConnectionSetupRequestErrorKind) -> Cause {
    match e {
        ConnectionSetupRequestErrorKind::DbError(DbError::AuthenticationError, _)
        | ConnectionSetupRequestErrorKind::MissingAuthentication
        | ConnectionSetupRequestErrorKind::StartAuthSessionError(_)
        | ConnectionSetupRequestErrorKind::AuthChallengeEvaluationError(_)
        | ConnectionSetupRequestErrorKind::AuthFinishError(_) => Cause::Credentials,
        _ => Cause::Lost,
    }
}

/// Reading the cluster's metadata (at connect, or after a schema change).
fn metadata_cause(e: &MetadataError) -> Cause {
    match e {
        MetadataError::ConnectionPoolError(e) => pool_cause(e),
        MetadataError::FetchError(MetadataFetchError {
            error: MetadataFetchErrorKind::PrepareError(e),
            ..
        }) => attempt_cause(e),
        _ => Cause::Lost,
    }
}

fn use_keyspace_cause(e: &UseKeyspaceError) -> Cause {
    match e {
        UseKeyspaceError::RequestTimeout(_) => Cause::TimedOut,
        UseKeyspaceError::RequestError(e) => attempt_cause(e),
        _ => Cause::Rejected,
    }
}

/// A failure to open a session: refused credentials or an unreachable cluster.
fn connect_error(options: &CassandraOptions, e: &NewSessionError) -> ConnectorError {
    let text = e.to_string();
    if e.cause() == Cause::Credentials {
        return credentials_error(options, &text);
    }
    ConnectorError::new(
        ConnectorErrorKind::Unreachable,
        format!(
            "cannot reach Cassandra at {}: {}",
            options.contact_points.join(","),
            redact(&text)
        ),
    )
}

fn credentials_error(options: &CassandraOptions, text: &str) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::AuthenticationFailed,
        format!(
            "Cassandra at {} refused the credentials of user \"{}\": {}",
            options.contact_points.join(","),
            options.user.as_deref().unwrap_or(""),
            redact(text)
        ),
    )
}

/// A failed request (a prepare, a page of rows, its decoding), by the
/// driver's error.
pub fn request_error(
    options: &CassandraOptions,
    table: &str,
    e: &impl DriverError,
) -> ConnectorError {
    let consistency = options.consistency.name();
    let text = redact(&e.to_string());
    match e.cause() {
        Cause::TimedOut => ConnectorError::new(
            ConnectorErrorKind::TimedOut,
            format!(
                "Cassandra did not answer a read of {table} at consistency {consistency} in time: {text}"
            ),
        ),
        Cause::Unavailable => ConnectorError::new(
            ConnectorErrorKind::TimedOut,
            format!(
                "too few Cassandra replicas are up to read {table} at consistency {consistency}: {text}"
            ),
        ),
        Cause::Credentials => credentials_error(options, &text),
        Cause::NoNode => ConnectorError::new(
            ConnectorErrorKind::Unreachable,
            format!(
                "no Cassandra node to read {table} from{}: {text}",
                options
                    .local_dc
                    .as_deref()
                    .map(|dc| format!(" in data centre \"{dc}\" (option 'local_dc')"))
                    .unwrap_or_default(),
            ),
        ),
        Cause::NoTable => ConnectorError::new(
            ConnectorErrorKind::NotFound,
            format!("Cassandra has no table {table} any more: {text}"),
        ),
        Cause::Lost => ConnectorError::new(
            ConnectorErrorKind::Unreachable,
            format!(
                "lost Cassandra at {} reading {table}: {text}",
                options.contact_points.join(","),
            ),
        ),
        Cause::Rejected => ConnectorError::new(
            ConnectorErrorKind::Rejected,
            format!("Cassandra rejected a read of {table}: {text}"),
        ),
    }
}

/// The driver's message, which never holds the password (the driver does not
/// print it) but may be long: kept to its first 500 characters.
fn redact(text: &str) -> String {
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use scylla::errors::{BrokenConnectionErrorKind, OperationType};

    use super::*;
    use crate::options::pairs as opts;

    fn options(extra: &[(&str, &str)]) -> CassandraOptions {
        let mut pairs = vec![
            ("keyspace", "shop"),
            ("table", "orders"),
            ("user", "reader"),
            ("consistency", "QUORUM"),
        ];
        pairs.extend_from_slice(extra);
        CassandraOptions::parse("cassandra", "cassandra://c1:9042", &opts(&pairs)).unwrap()
    }

    fn read(e: &impl DriverError) -> ConnectorError {
        request_error(&options(&[]), "shop.orders", e)
    }

    fn server(db: DbError, message: &str) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, message.to_string()))
    }

    fn refused() -> ConnectionError {
        ConnectionError::IoError(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
    }

    #[test]
    fn timeouts_and_too_few_replicas_name_the_consistency() {
        let client = read(&ExecutionError::RequestTimeout(Duration::from_secs(2)));
        let replicas = read(&server(
            DbError::ReadTimeout {
                consistency: DriverConsistency::Quorum,
                received: 1,
                required: 2,
                data_present: false,
            },
            "Operation timed out - received only 1 responses.",
        ));
        for e in [&client, &replicas] {
            assert_eq!(e.kind, ConnectorErrorKind::TimedOut, "{e}");
            assert!(e.message.contains("at consistency QUORUM in time"), "{e}");
        }
        let unavailable = read(&server(
            DbError::Unavailable {
                consistency: DriverConsistency::Quorum,
                required: 2,
                alive: 1,
            },
            "Cannot achieve consistency level QUORUM",
        ));
        assert_eq!(unavailable.kind, ConnectorErrorKind::TimedOut);
        assert!(
            unavailable.message.starts_with(
                "too few Cassandra replicas are up to read shop.orders at consistency QUORUM"
            ),
            "{unavailable}"
        );
    }

    #[test]
    fn a_missing_table_is_told_by_the_invalid_requests_text() {
        for message in [
            "unconfigured table orders",
            "table orders does not exist",
            "Keyspace shop does not exist",
        ] {
            let e = read(&server(DbError::Invalid, message));
            assert_eq!(e.kind, ConnectorErrorKind::NotFound, "{e}");
            assert!(e.message.contains("has no table shop.orders"), "{e}");
        }
        // Another invalid request, or the same words in another error, is not.
        for e in [
            server(DbError::Invalid, "Undefined column name x"),
            server(DbError::SyntaxError, "line 1: table x does not exist"),
        ] {
            assert_eq!(read(&e).kind, ConnectorErrorKind::Rejected, "{e}");
        }
    }

    #[test]
    fn no_node_in_the_data_centre_names_it() {
        let e = request_error(
            &options(&[("local_dc", "mars")]),
            "shop.orders",
            &ExecutionError::EmptyPlan,
        );
        assert_eq!(e.kind, ConnectorErrorKind::Unreachable);
        assert!(
            e.message
                .starts_with("no Cassandra node to read shop.orders from in data centre \"mars\""),
            "{e}"
        );
    }

    #[test]
    fn lost_connections_are_unreachable() {
        let broken = ExecutionError::LastAttemptError(RequestAttemptError::BrokenConnectionError(
            BrokenConnectionErrorKind::ChannelError.into(),
        ));
        let pool = |last_connection_error| {
            ExecutionError::ConnectionPoolError(ConnectionPoolError::Broken {
                last_connection_error,
            })
        };
        for e in [
            broken,
            pool(refused()),
            // Connecting timed out: the node is out of reach, not slow to read.
            pool(ConnectionError::ConnectTimeout),
            ExecutionError::ConnectionPoolError(ConnectionPoolError::Initializing),
        ] {
            let got = read(&e);
            assert_eq!(got.kind, ConnectorErrorKind::Unreachable, "{e}");
            assert!(
                got.message.starts_with("lost Cassandra at c1:9042"),
                "{got}"
            );
        }
        let prepare = PrepareError::ConnectionPoolError(ConnectionPoolError::Broken {
            last_connection_error: refused(),
        });
        assert_eq!(read(&prepare).kind, ConnectorErrorKind::Unreachable);
    }

    #[test]
    fn refused_credentials_name_the_user() {
        let e = read(&server(
            DbError::AuthenticationError,
            "Provided username reader and/or password are incorrect",
        ));
        assert_eq!(e.kind, ConnectorErrorKind::AuthenticationFailed);
        assert!(
            e.message
                .starts_with("Cassandra at c1:9042 refused the credentials of user \"reader\""),
            "{e}"
        );
        // At connection setup (the driver builds that error itself only).
        for kind in [
            ConnectionSetupRequestErrorKind::DbError(DbError::AuthenticationError, String::new()),
            ConnectionSetupRequestErrorKind::MissingAuthentication,
        ] {
            assert_eq!(setup_cause(&kind), Cause::Credentials, "{kind}");
        }
        let other = ConnectionSetupRequestErrorKind::DbError(DbError::ProtocolError, String::new());
        assert_eq!(setup_cause(&other), Cause::Lost);
    }

    #[test]
    fn a_session_that_cannot_connect_is_unreachable() {
        let e = connect_error(
            &options(&[]),
            &NewSessionError::MetadataError(MetadataError::ConnectionPoolError(
                ConnectionPoolError::Broken {
                    last_connection_error: refused(),
                },
            )),
        );
        assert_eq!(e.kind, ConnectorErrorKind::Unreachable);
        assert!(
            e.message.starts_with("cannot reach Cassandra at c1:9042"),
            "{e}"
        );
        let e = connect_error(
            &options(&[]),
            &NewSessionError::FailedToResolveAnyHostname(vec!["c1:9042".into()]),
        );
        assert_eq!(e.kind, ConnectorErrorKind::Unreachable);
    }

    #[test]
    fn other_refusals_carry_the_servers_text() {
        for e in [
            server(
                DbError::Unauthorized,
                "User reader has no SELECT permission",
            ),
            server(DbError::Overloaded, "overloaded"),
            // A replica failed the read (too many tombstones): not a timeout.
            server(
                DbError::ReadFailure {
                    consistency: DriverConsistency::Quorum,
                    received: 0,
                    required: 2,
                    numfailures: 1,
                    data_present: false,
                },
                "Operation failed - received 0 responses and 1 failures",
            ),
            server(
                DbError::RateLimitReached {
                    op_type: OperationType::Read,
                    rejected_by_coordinator: true,
                },
                "",
            ),
        ] {
            let got = read(&e);
            assert_eq!(got.kind, ConnectorErrorKind::Rejected, "{e}");
            assert!(
                got.message.starts_with(
                    "Cassandra rejected a read of shop.orders: Database returned an error"
                ),
                "{got}"
            );
        }
        let prepare = PrepareError::AllAttemptsFailed {
            first_attempt: RequestAttemptError::DbError(DbError::SyntaxError, "line 1".into()),
        };
        assert_eq!(read(&prepare).kind, ConnectorErrorKind::Rejected);
    }
}

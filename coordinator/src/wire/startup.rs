//! Connection start-up: who may connect, and how.
//!
//! - Users configured (`[users]` in the TOML file): every client must pass
//!   SCRAM-SHA-256 against the user's stored verifier, from any address; a wrong
//!   password or an unknown user gets FATAL 28P01.
//! - No users: any user name is accepted without a password, but only from
//!   loopback addresses; others get FATAL 28000 and a message saying how to allow
//!   them.
//!
//! Either way, the connection's backend key is registered for CancelRequests.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::scram::{self, Exchange, ScramError, Verifier};
use crate::engine::cancel::{CancelRegistry, SessionCancel};
use crate::error::sqlstate;
use crate::pgcompat::settings::Settings;

/// Configured users and their SCRAM verifiers; empty means loopback-only trust.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Users {
    verifiers: BTreeMap<String, Verifier>,
}

impl Users {
    /// Users from `name = "SCRAM-SHA-256$..."` pairs; a value that is not a SCRAM
    /// verifier (a clear-text password, say) is refused.
    pub fn from_verifiers(pairs: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let verifiers = pairs
            .iter()
            .map(|(name, text)| {
                text.parse::<Verifier>()
                    .map(|v| (name.clone(), v))
                    .map_err(|e| anyhow::anyhow!("users.{name}: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { verifiers })
    }

    /// Whether any user is configured (then passwords are required).
    pub fn is_empty(&self) -> bool {
        self.verifiers.is_empty()
    }

    /// Whether `user` is configured and `password` is theirs (an unknown
    /// user costs the same work as a wrong password).
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        match self.verifiers.get(user) {
            Some(verifier) => verifier.accepts(password),
            None => {
                Verifier::impossible().accepts(password);
                false
            }
        }
    }
}

/// Shared by the start-up handlers of all connections.
#[derive(Debug, Default)]
pub struct Gate {
    /// Who may log in.
    pub users: Users,
    /// Where sessions are found by backend key.
    pub cancels: Arc<CancelRegistry>,
    keys: RandomPidSecretKeyGenerator,
}

impl Gate {
    /// A gate for `users`, registering sessions in `cancels`.
    pub fn new(users: Users, cancels: Arc<CancelRegistry>) -> Self {
        Self {
            users,
            cancels,
            keys: RandomPidSecretKeyGenerator::default(),
        }
    }
}

/// The start-up handler of one connection.
pub struct Startup {
    gate: Arc<Gate>,
    session: Arc<SessionCancel>,
    settings: Arc<Mutex<Settings>>,
    exchange: Mutex<Option<Exchange>>,
}

impl Startup {
    /// A handler for one connection whose session stops queries through
    /// `session` and keeps its settings in `settings`.
    pub fn new(
        gate: Arc<Gate>,
        session: Arc<SessionCancel>,
        settings: Arc<Mutex<Settings>>,
    ) -> Self {
        Self {
            gate,
            session,
            settings,
            exchange: Mutex::new(None),
        }
    }

    async fn accept<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret) = self.gate.keys.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let guard = self
            .gate
            .cancels
            .register((pid, secret.to_bytes().to_vec()), &self.session);
        client.session_extensions().insert(guard);
        let reported = {
            let mut settings = self.settings.lock().map_err(|_| {
                PgWireError::ApiError("the session's settings lock is poisoned".into())
            })?;
            settings.apply_startup_parameters(client.metadata());
            ReportedParameters::from(&*settings)
        };
        finish_authentication(client, &reported).await
    }
}

/// The ParameterStatus values sent after authentication: the settings
/// PostgreSQL reports (`GUC_REPORT`), as this session now has them, so a
/// driver reads back the `TimeZone` or `application_name` it sent.
struct ReportedParameters(HashMap<String, String>);

impl From<&Settings> for ReportedParameters {
    fn from(settings: &Settings) -> Self {
        const REPORTED: &[(&str, &str)] = &[
            ("application_name", "application_name"),
            ("client_encoding", "client_encoding"),
            ("DateStyle", "datestyle"),
            (
                "default_transaction_read_only",
                "default_transaction_read_only",
            ),
            ("integer_datetimes", "integer_datetimes"),
            ("IntervalStyle", "intervalstyle"),
            ("is_superuser", "is_superuser"),
            ("server_encoding", "server_encoding"),
            ("server_version", "server_version"),
            ("standard_conforming_strings", "standard_conforming_strings"),
            ("TimeZone", "timezone"),
        ];
        let mut reported: HashMap<String, String> = REPORTED
            .iter()
            .filter_map(|(shown, name)| Some((shown.to_string(), settings.get(name).ok()?)))
            .collect();
        reported.insert("in_hot_standby".into(), "off".into());
        reported.insert("session_authorization".into(), String::new());
        Self(reported)
    }
}

impl ServerParameterProvider for ReportedParameters {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        let mut reported = self.0.clone();
        if let Some(user) = client.metadata().get(pgwire::api::METADATA_USER) {
            reported.insert("session_authorization".into(), user.clone());
        }
        Some(reported)
    }
}

/// Whether a peer may connect when no users are configured.
pub fn trusted_without_password(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message,
    )))
}

fn auth_failed(user: &str) -> PgWireError {
    fatal(
        sqlstate::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let user = client
            .metadata()
            .get(pgwire::api::METADATA_USER)
            .cloned()
            .unwrap_or_default();
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.gate.users.is_empty() {
                    let peer = client.socket_addr();
                    if !trusted_without_password(peer) {
                        tracing::warn!(%peer, "refused a non-loopback connection: no users are configured");
                        return Err(fatal(
                            sqlstate::INVALID_AUTHORIZATION,
                            format!(
                                "connections from {} are refused: no users are configured, so Vivace accepts only loopback connections; configure users with passwords to allow remote clients",
                                peer.ip()
                            ),
                        ));
                    }
                    return self.accept(client).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec!["SCRAM-SHA-256".to_string()],
                    )))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let pending = self.exchange.lock().map(|mut e| e.take()).ok().flatten();
                match pending {
                    None => {
                        if let PasswordMessageFamily::Raw(body) = &msg {
                            super::frames::check_sasl_initial_response(body)
                                .map_err(|why| fatal(sqlstate::PROTOCOL_VIOLATION, why))?;
                        }
                        let initial = msg.into_sasl_initial_response()?;
                        if initial.auth_method != "SCRAM-SHA-256" {
                            return Err(fatal(
                                sqlstate::INVALID_AUTHORIZATION,
                                format!(
                                    "SASL mechanism {} is not supported; use SCRAM-SHA-256",
                                    initial.auth_method
                                ),
                            ));
                        }
                        let verifier = self
                            .gate
                            .users
                            .verifiers
                            .get(&user)
                            .cloned()
                            .unwrap_or_else(Verifier::impossible);
                        let data = initial.data.unwrap_or_default();
                        let (first, exchange) = scram::server_first(&data, verifier)
                            .map_err(|e| scram_failure(e, &user))?;
                        if let Ok(mut slot) = self.exchange.lock() {
                            *slot = Some(exchange);
                        }
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(first.into_bytes().into()),
                            ))
                            .await?;
                    }
                    Some(exchange) => {
                        let response = msg.into_sasl_response()?;
                        match exchange.finish(&response.data) {
                            Ok(server_final) => {
                                client
                                    .feed(PgWireBackendMessage::Authentication(
                                        Authentication::SASLFinal(server_final.into_bytes().into()),
                                    ))
                                    .await?;
                                tracing::debug!(user = %user, "password accepted");
                                self.accept(client).await?;
                            }
                            Err(e) => {
                                tracing::warn!(user = %user, peer = %client.socket_addr(), "authentication failed");
                                return Err(scram_failure(e, &user));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn scram_failure(e: ScramError, user: &str) -> PgWireError {
    match e {
        ScramError::WrongPassword => auth_failed(user),
        ScramError::Malformed(why) => fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!("malformed SCRAM message: {why}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_trusted() {
        let ok = |s: &str| trusted_without_password(s.parse().unwrap());
        assert!(ok("127.0.0.1:1"));
        assert!(ok("127.8.9.10:1"));
        assert!(ok("[::1]:1"));
        assert!(ok("[::ffff:127.0.0.1]:1"));
        assert!(!ok("10.1.2.3:1"));
        assert!(!ok("192.168.0.5:1"));
        assert!(!ok("[2001:db8::1]:1"));
    }

    #[test]
    fn users_need_scram_verifiers() {
        let mut pairs = BTreeMap::new();
        pairs.insert("ann".to_string(), "plaintext".to_string());
        let err = Users::from_verifiers(&pairs).unwrap_err().to_string();
        assert!(err.contains("users.ann"), "{err}");
        assert!(!err.contains("plaintext"), "{err}");
        pairs.insert("ann".to_string(), Verifier::generate("pw").to_string());
        assert!(!Users::from_verifiers(&pairs).unwrap().is_empty());
    }
}

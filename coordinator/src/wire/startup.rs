//! Connection start-up: who may connect.
//!
//! With no users configured, Vivace accepts any user name without a password, but
//! only from loopback addresses; other addresses are refused with SQLSTATE 28000
//! and a message saying how to allow them.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::{ClientInfo, ConnectionManager};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::error::sqlstate;

/// Accept-without-password start-up, registering each connection for cancel requests.
pub struct TrustLoopback {
    connections: Arc<ConnectionManager>,
}

impl TrustLoopback {
    /// A start-up handler registering connections with `connections`.
    pub fn new(connections: Arc<ConnectionManager>) -> Self {
        Self { connections }
    }
}

impl NoopStartupHandler for TrustLoopback {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

/// Refuse anything but loopback before the trusting handler runs.
pub struct LoopbackOnly {
    inner: TrustLoopback,
}

impl LoopbackOnly {
    /// Wrap the trusting handler.
    pub fn new(connections: Arc<ConnectionManager>) -> Self {
        Self {
            inner: TrustLoopback::new(connections),
        }
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

#[async_trait]
impl StartupHandler for LoopbackOnly {
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
        let peer = client.socket_addr();
        if matches!(message, PgWireFrontendMessage::Startup(_)) && !trusted_without_password(peer) {
            tracing::warn!(%peer, "refused a non-loopback connection: no users are configured");
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_string(),
                sqlstate::INVALID_AUTHORIZATION.to_string(),
                format!(
                    "connections from {} are refused: no users are configured, so Vivace accepts only loopback connections; configure users with passwords to allow remote clients",
                    peer.ip()
                ),
            ))));
        }
        self.inner.on_startup(client, message).await
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
}

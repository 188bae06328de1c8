//! The listener: one task and one [`Session`] per connection.

use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpListener;

use super::connection::{self, Handlers};
use super::handler::QueryHandler;
use super::startup::{Gate, Startup};
use crate::engine::Engine;
use crate::session::Session;

/// Accept PostgreSQL connections on `listener` until the task is dropped,
/// authenticating through `gate` and offering TLS when `tls` is given.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    gate: Arc<Gate>,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let session = Arc::new(Session::new(engine.clone()));
        let handlers = Handlers {
            startup: Arc::new(Startup::new(
                gate.clone(),
                session.cancel_switch(),
                session.settings(),
            )),
            session: session.cancel_switch(),
            query: Arc::new(QueryHandler::new(session)),
            cancels: gate.cancels.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            tracing::debug!(%peer, "connection opened");
            connection::serve(socket, tls, handlers).await;
            tracing::debug!(%peer, "connection closed");
        });
    }
}

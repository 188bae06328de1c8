//! The listener: one task and one [`Session`] per connection.

use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::PgWireServerHandlers;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::tokio::{TlsAcceptor, process_socket};
use tokio::net::TcpListener;

use super::handler::QueryHandler;
use super::startup::{Gate, Startup};
use crate::cancel::CancelRegistry;
use crate::engine::Engine;
use crate::session::Session;

/// pgwire's handler set for one connection.
struct ConnectionHandlers {
    query: Arc<QueryHandler>,
    startup: Arc<Startup>,
    cancel: Arc<CancelByKey>,
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.query.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.query.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// Routes CancelRequests to the session holding the backend key.
struct CancelByKey {
    registry: Arc<CancelRegistry>,
}

#[async_trait]
impl CancelHandler for CancelByKey {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.registry
            .cancel(&(request.pid, request.secret_key.to_bytes().to_vec()));
    }
}

/// Accept PostgreSQL connections on `listener` until the task is dropped,
/// authenticating through `gate` and offering TLS when `tls` is given.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    gate: Arc<Gate>,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    let cancel = Arc::new(CancelByKey {
        registry: gate.cancels.clone(),
    });
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
        let handlers = ConnectionHandlers {
            startup: Arc::new(Startup::new(
                gate.clone(),
                session.cancel_switch(),
                session.settings(),
            )),
            query: Arc::new(QueryHandler::new(session)),
            cancel: cancel.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            tracing::debug!(%peer, "connection opened");
            if let Err(e) = process_socket(socket, tls, handlers).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

//! The listener: one task and one [`Session`] per connection.

use std::sync::Arc;

use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use pgwire::tokio::process_socket;
use tokio::net::TcpListener;

use super::handler::QueryHandler;
use super::startup::LoopbackOnly;
use crate::engine::Engine;
use crate::session::Session;

/// pgwire's handler set for one connection.
struct ConnectionHandlers {
    query: Arc<QueryHandler>,
    startup: Arc<LoopbackOnly>,
    cancel: Arc<DefaultCancelHandler>,
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

/// Accept PostgreSQL connections on `listener` until the task is dropped.
pub async fn serve(engine: Arc<Engine>, listener: TcpListener) -> std::io::Result<()> {
    let connections = Arc::new(ConnectionManager::new());
    let cancel = Arc::new(DefaultCancelHandler::new(connections.clone()));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handlers = ConnectionHandlers {
            query: Arc::new(QueryHandler::new(Arc::new(Session::new(engine.clone())))),
            startup: Arc::new(LoopbackOnly::new(connections.clone())),
            cancel: cancel.clone(),
        };
        tokio::spawn(async move {
            tracing::debug!(%peer, "connection opened");
            if let Err(e) = process_socket(socket, None, handlers).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

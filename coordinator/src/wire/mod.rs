//! The PostgreSQL wire protocol, on pgwire. We implement pgwire's handler traits
//! ourselves rather than use datafusion-postgres's `DfSessionService`, because we
//! need a session per connection (it shares one), SQLSTATE-bearing errors (it sends
//! XX000), and Vivace's own DDL; we reuse its siblings arrow-pg (row encoding) and
//! datafusion-pg-catalog (pg_catalog tables and the psql-compatibility rewriter).

mod connection;
mod copy;
mod encode;
mod frames;
mod handler;
mod nested;
mod numeric;
mod scram;
mod server;
mod startup;
mod text_columns;
mod tls;

pub use connection::AUTHENTICATION_TIMEOUT;
pub use frames::{MAX_MESSAGE_BYTES, MAX_STARTUP_BYTES};
pub use scram::Verifier;
pub use server::serve;
pub use startup::{Gate, Users};
pub use tls::acceptor as tls_acceptor;

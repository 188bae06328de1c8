//! TLS for the PostgreSQL listener, from a PEM certificate chain and key.

use std::path::Path;

use pgwire::tokio::TlsAcceptor;

/// An acceptor serving `cert_file` (PEM chain, leaf first) with `key_file` (PEM key).
pub fn acceptor(cert_file: &Path, key_file: &Path) -> anyhow::Result<TlsAcceptor> {
    // PostgreSQL 17 clients may open TLS directly (sslnegotiation=direct) and then
    // require this ALPN name; libpq's classic SSLRequest path ignores it.
    crate::tls::acceptor(cert_file, key_file, &[b"postgresql"])
}

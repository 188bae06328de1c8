//! TLS server settings from a PEM certificate chain and key, shared by the
//! PostgreSQL listener and the HTTP listener (each names its own ALPN
//! protocols).
//!
//! A configured certificate that cannot be loaded stops the server from
//! starting: Vivace never falls back to plaintext when TLS was asked for.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
// pgwire re-exports the tokio-rustls it links, built on the same rustls.
pub use pgwire::tokio::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// An acceptor serving `cert_file` (PEM chain, leaf first) with `key_file`
/// (PEM key), offering `alpn` protocols to clients that ask for one.
pub fn acceptor(cert_file: &Path, key_file: &Path, alpn: &[&[u8]]) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("cannot read TLS certificate {}", cert_file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid TLS certificate {}", cert_file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "TLS certificate file {} holds no certificate",
        cert_file.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("cannot read TLS key {}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not form a usable pair")?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

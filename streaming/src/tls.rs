//! Optional TLS for the streaming server, with the rustls (aws-lc-rs) already in the tree.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

/// Builds an acceptor from a PEM certificate chain and a PEM private key. Only HTTP/1.1 is
/// offered over ALPN: streaming needs HTTP/1.1 upgrades.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, Error> {
    let tls_err = |what, path: &Path| {
        let path = path.to_owned();
        move |e: Box<dyn std::error::Error + Send + Sync>| Error::Tls {
            what,
            path,
            source: e,
        }
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| tls_err("reading certificates", cert_path)(e.into()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err("reading certificates", cert_path)(e.into()))?;
    if certs.is_empty() {
        return Err(tls_err("reading certificates", cert_path)(
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| tls_err("reading the private key", key_path)(e.into()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("configuring", cert_path)(e.into()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("using the certificate and key", cert_path)(e.into()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

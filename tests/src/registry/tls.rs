//! Throwaway PKI for a TLS registry: a CA made at test time and a server certificate it signs
//! for `127.0.0.1` (IP SAN) and `localhost`. Nothing is shared between registries, so a
//! client that trusts one registry's CA trusts no other.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The PEM files of one TLS registry, written into its directory.
#[derive(Debug, Clone)]
pub(super) struct TlsFiles {
    /// The CA certificate, PEM: what a client must trust.
    pub ca_pem: String,
    /// Path of [`ca_pem`](Self::ca_pem) on disk.
    pub ca_path: PathBuf,
    /// The server certificate (`http.tls.certificate`).
    pub cert_path: PathBuf,
    /// The server's private key, PKCS#8 (`http.tls.key`).
    pub key_path: PathBuf,
}

impl TlsFiles {
    /// Generates a CA and a server certificate and writes them to `dir` as `ca.pem`,
    /// `server.pem` and `server-key.pem`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "corral test registry CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)
            .context("self-signing the test CA")?;

        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "corral test registry");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &ca)
            .context("signing the server certificate")?;

        let files = Self {
            ca_pem: ca.pem(),
            ca_path: dir.join("ca.pem"),
            cert_path: dir.join("server.pem"),
            key_path: dir.join("server-key.pem"),
        };
        for (path, pem) in [
            (&files.ca_path, files.ca_pem.clone()),
            (&files.cert_path, cert.pem()),
            (&files.key_path, key.serialize_pem()),
        ] {
            fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(files)
    }
}

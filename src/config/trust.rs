//! The mesh's trust material: the CA every server trusts and this server's
//! own certificate and key, read from PEM files and checked the way its
//! peers will check them.
//!
//! Servers of a mesh authenticate each other with mutual TLS (RFC 3261
//! section 26.2.1): each presents a certificate issued by the mesh CA
//! (`vmesh certs`) whose subject alternative names hold its topology name
//! as a DNS name (RFC 5922 section 7.1 names a SIP server by its domain the
//! same way). A peer is the topology server named in the certificate it
//! presented, never an address. So before a server starts (and in `vmesh
//! check`) its own certificate must chain to the CA, name this server, be
//! valid now for both TLS roles (it serves its listener and dials its
//! peers), and match its key: a mistake here would otherwise surface only
//! as peers that stay down.
//!
//! Parsing and verification come from rustls and webpki (the same code the
//! handshakes run), so what passes here passes there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore};

/// The crypto provider of every TLS session of vmesh (ring).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why trust material cannot be used; each names the file to fix.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The CA file cannot be read or holds no certificate.
    #[error("CA {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    /// The certificate file cannot be read or holds no certificate.
    #[error("certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    /// The key file cannot be read or holds no private key.
    #[error("key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    /// The certificate is not one its peers would accept for this server.
    #[error("certificate {path}: {reason}")]
    Rejected { path: PathBuf, reason: String },
}

/// What a server needs for mutual TLS, checked.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The mesh CA: the only root trusted for peers.
    pub roots: Arc<RootCertStore>,
    /// This server's certificate chain, its own certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

impl TlsMaterial {
    /// Reads the CA, certificate and key and checks that the certificate
    /// is what peers accept as server `name`: issued by the CA, valid now,
    /// naming `name`, usable as TLS server and client, matching the key.
    pub fn load(ca: &Path, cert: &Path, key: &Path, name: &str) -> Result<TlsMaterial, TrustError> {
        let roots = Arc::new(load_roots(ca)?);
        let chain = load_chain(cert)?;
        let key_der = load_key(key)?;
        let provider = crypto_provider();
        let rejected = |reason: String| TrustError::Rejected {
            path: cert.to_path_buf(),
            reason,
        };
        let signing = provider
            .key_provider
            .load_private_key(key_der.clone_key())
            .map_err(|e| TrustError::Key {
                path: key.to_path_buf(),
                reason: format!("unusable private key: {e}"),
            })?;
        CertifiedKey::new(chain.clone(), signing)
            .keys_match()
            .map_err(|_| {
                rejected(format!(
                    "does not match the key {} (issue the pair together with vmesh certs issue)",
                    key.display()
                ))
            })?;
        let server_name = certificate_name(name).map_err(rejected)?;
        let (leaf, intermediates) = chain.split_first().ok_or_else(|| TrustError::Cert {
            path: cert.to_path_buf(),
            reason: "holds no certificate".into(),
        })?;
        let now = UnixTime::now();
        let as_server =
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| rejected(e.to_string()))?;
        as_server
            .verify_server_cert(leaf, intermediates, &server_name, &[], now)
            .map_err(|e| rejected(explain(&e, name, ca)))?;
        let as_client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
            .build()
            .map_err(|e| rejected(e.to_string()))?;
        as_client
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|e| rejected(explain(&e, name, ca)))?;
        Ok(TlsMaterial {
            roots,
            chain,
            key: key_der,
        })
    }
}

/// A server name as a certificate names it (a DNS name, RFC 5922 section
/// 7.1). Names that DNS cannot hold (an all-digit last label, such as
/// `"42"`) cannot be in a certificate.
pub fn certificate_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned()).map_err(|_| {
        format!(
            "server name {name:?} cannot be named in a certificate (a DNS name is needed: \
             letters, digits, '-', '_' and '.', not all digits after the last dot)"
        )
    })
}

/// The CA certificates in `path`.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TrustError> {
    let ca_error = |reason: String| TrustError::Ca {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ca_error("holds no certificate".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The certificate chain in `path`, leaf first.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let cert_error = |reason: String| TrustError::Cert {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| cert_error(format!("cannot read: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(cert_error("holds no certificate".into()));
    }
    Ok(chain)
}

/// The private key in `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TrustError> {
    let pem = std::fs::read(path).map_err(|e| TrustError::Key {
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TrustError::Key {
        path: path.to_path_buf(),
        reason: format!("no PEM private key: {e}"),
    })
}

/// A verification failure in words an operator can act on.
fn explain(error: &rustls::Error, name: &str, ca: &Path) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        | rustls::Error::InvalidCertificate(CertificateError::BadSignature) => format!(
            "is not issued by the mesh CA {} (issue it with vmesh certs issue {name})",
            ca.display()
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("does not name server {name:?} in its subject alternative names"),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "has expired".into(),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => "is not valid yet".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;

//! TLS between mesh servers (RFC 3261 §26.2, mutual authentication): the
//! rustls configurations, and who a handshake proved the other side to be.
//!
//! Both sides present a certificate of the mesh CA and check the other's
//! against that CA alone. The server side requires a client certificate;
//! the peer is then the topology server whose name the certificate holds
//! in its subject alternative names (exactly one of them, or nobody). The
//! client side checks the server's certificate against the name of the
//! peer it dialled, as any TLS client checks a host name (RFC 5922 §7.2),
//! so a server holding another peer's address but not its key is refused
//! in the handshake. TLS 1.3 only: both ends are vmesh.
//!
//! rsipstack has a TLS transport too, but it cannot answer malformed
//! requests, bound requests in time and size, or bound its writes, which
//! `super::stream` does for TCP and TLS alike; so the handshake is done
//! here with tokio-rustls and the stream handed to that shared loop.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{crypto_provider, TlsMaterial};
use crate::sip::identity::Identity;
use crate::sip::SipError;

/// The TLS side of the endpoint: what it accepts and how it dials.
#[derive(Clone)]
pub struct TlsSettings {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSettings")
    }
}

impl TlsSettings {
    /// Mutual-TLS configurations from checked trust material.
    pub fn new(material: &TlsMaterial) -> Result<TlsSettings, SipError> {
        let provider = crypto_provider();
        let tls = |e: &dyn std::fmt::Display| SipError::Tls(e.to_string());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(material.roots.clone(), provider.clone())
                .build()
                .map_err(|e| tls(&e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(material.chain.clone(), material.key.clone_key())
            .map_err(|e| tls(&e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls(&e))?
            .with_root_certificates(material.roots.clone())
            .with_client_auth_cert(material.chain.clone(), material.key.clone_key())
            .map_err(|e| tls(&e))?;
        Ok(TlsSettings {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

/// The server name a peer's certificate must hold, to dial it.
pub fn server_name(peer: &str) -> Result<ServerName<'static>, SipError> {
    ServerName::try_from(peer.to_owned())
        .map_err(|_| SipError::Tls(format!("{peer:?} cannot be a certificate name")))
}

/// Who a verified client certificate names, among the topology's servers
/// `peers`: the one server whose name it holds, or nobody (no such name,
/// or more than one).
pub fn identity_of(certificates: Option<&[CertificateDer<'_>]>, peers: &[String]) -> Identity {
    let Some(leaf) = certificates.and_then(<[_]>::first) else {
        return Identity::Anonymous;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return Identity::Anonymous;
    };
    let mut named = peers.iter().filter(|name| {
        ServerName::try_from(name.as_str())
            .is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok())
    });
    match (named.next(), named.next()) {
        (Some(name), None) => Identity::Peer(name.clone()),
        _ => Identity::Anonymous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MeshCa;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn a_certificate_names_one_peer_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let ca = MeshCa::in_dir(dir.path());
        ca.init().unwrap();
        let (cert, _) = ca.issue("site-b", 30).unwrap();
        let der = CertificateDer::from_pem_file(&cert).unwrap();
        let peers = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            identity_of(
                Some(std::slice::from_ref(&der)),
                &peers(&["site-a", "site-b"])
            ),
            Identity::Peer("site-b".into())
        );
        // Names compare as DNS names do, without regard to case.
        assert_eq!(
            identity_of(Some(std::slice::from_ref(&der)), &peers(&["SITE-B"])),
            Identity::Peer("SITE-B".into())
        );
        assert_eq!(
            identity_of(
                Some(std::slice::from_ref(&der)),
                &peers(&["site-a", "site-c"])
            ),
            Identity::Anonymous
        );
        assert_eq!(identity_of(None, &peers(&["site-b"])), Identity::Anonymous);
        assert_eq!(
            identity_of(Some(&[]), &peers(&["site-b"])),
            Identity::Anonymous
        );
    }
}

//! A blocking SIP-over-TLS client for tests (rustls), presenting whatever
//! certificate a test gives it: a peer's, another server's, one of another
//! CA, or none. The server's certificate is checked against the mesh CA
//! and the name of the server the test means to reach, as a vmesh peer
//! checks it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::raw_sip::{final_response, tcp_connect_from, SipResponse, StreamFramer};

/// A certificate and key for the client side, as PEM files.
pub struct ClientIdentity<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// One TLS connection to a server.
pub struct SipTls {
    stream: StreamOwned<ClientConnection, TcpStream>,
    framer: StreamFramer,
}

impl SipTls {
    /// Connects from `local_ip` to `server`, which must present a
    /// certificate of the CA in `ca` naming `server_name`, and completes the
    /// handshake (and the server's verdict on our certificate: TLS 1.3
    /// reports a refused client certificate only on the first read, so a
    /// probe read is made). The error says why it failed.
    pub fn connect(
        local_ip: Ipv4Addr,
        server: SocketAddr,
        server_name: &str,
        ca: &Path,
        client: Option<ClientIdentity<'_>>,
    ) -> Result<SipTls, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match client {
            Some(id) => {
                let chain = CertificateDer::pem_file_iter(id.cert)
                    .map_err(|e| e.to_string())?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let key = PrivateKeyDer::from_pem_file(id.key).map_err(|e| e.to_string())?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| e.to_string())?
            }
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
        let connection =
            ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let socket = tcp_connect_from(local_ip, server).map_err(|e| e.to_string())?;
        socket.set_nodelay(true).ok();
        let mut stream = StreamOwned::new(connection, socket);
        let deadline = Instant::now() + Duration::from_secs(5);
        while stream.conn.is_handshaking() {
            if Instant::now() > deadline {
                return Err("handshake timed out".into());
            }
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("handshake: {e}"))?;
        }
        let mut tls = SipTls {
            stream,
            framer: StreamFramer::default(),
        };
        // The server's alert for a certificate it refuses arrives after
        // the client's side of the handshake is done.
        tls.stream
            .sock
            .set_read_timeout(Some(Duration::from_millis(300)))
            .ok();
        let mut buf = [0u8; 4096];
        match tls.stream.read(&mut buf) {
            Ok(0) => return Err("closed by the server after the handshake".into()),
            Ok(n) => tls.framer.push(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(format!("refused after the handshake: {e}")),
        }
        Ok(tls)
    }

    /// The local end of the connection (for Via).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.sock.local_addr().expect("local address")
    }

    /// Sends a request and returns its final response (skipping 1xx).
    pub fn transact_bytes(&mut self, request: &[u8], timeout: Duration) -> Option<SipResponse> {
        self.stream.write_all(request).ok()?;
        self.stream.flush().ok()?;
        final_response(|left| self.recv(left), timeout)
    }

    fn recv(&mut self, timeout: Duration) -> Option<SipResponse> {
        let stream = &mut self.stream;
        self.framer.recv_response(timeout, |left, buf| {
            stream.sock.set_read_timeout(Some(left))?;
            stream.read(buf)
        })
    }
}

//! The TCP listener and per-connection receive loop (RFC 3261 §18.3).
//!
//! One connection carries any number of requests, framed by Content-Length
//! ([`crate::sip::framing`]). A connection is closed when it is idle for the
//! profile's timeout, when its framing breaks (after a 400 or 413 when the
//! head allows one), or at shutdown. The number of open connections is
//! bounded so a flood of idle sockets cannot exhaust descriptors.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::sip::transport::Transport;
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::stream::StreamConnection;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::io::{AsyncReadExt, ReadHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::deliver;
use crate::sip::framing::{Frame, FramingError, StreamFramer};
use crate::sip::inbound::{classify, Inbound, SizeLimits};
use crate::sip::malformed::error_response;
use crate::sip::SipError;

/// Open TCP connections accepted at once; more are refused until some close.
const MAX_CONNECTIONS: usize = 4096;

/// What a connection loop needs besides its socket.
#[derive(Clone)]
pub struct TcpSettings {
    pub limits: SizeLimits,
    pub idle_timeout: Duration,
    pub server: String,
}

/// A bound TCP SIP listener.
pub struct TcpTransport {
    listener: TcpListener,
}

impl TcpTransport {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Self, SipError> {
        let bind_error = |e: std::io::Error| SipError::Bind {
            addr: format!("tcp:{addr}"),
            reason: e.to_string(),
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        Ok(TcpTransport { listener })
    }

    /// Accepts connections until cancelled.
    pub async fn serve(
        self,
        endpoint: Arc<EndpointInner>,
        settings: TcpSettings,
        cancel: CancellationToken,
    ) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => return,
                a = self.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                warn!(%peer, "too many tcp connections; refusing");
                continue;
            };
            let connection = Connection {
                endpoint: endpoint.clone(),
                settings: settings.clone(),
            };
            let cancel = cancel.child_token();
            tokio::spawn(async move {
                connection.run(stream, peer, cancel).await;
                drop(permit);
            });
        }
    }
}

struct Connection {
    endpoint: Arc<EndpointInner>,
    settings: TcpSettings,
}

/// rsipstack's connection (which sends) and the read half we read from.
type Opened = (TcpConnection, ReadHalf<TcpStream>);

/// Wraps a connected stream: rsipstack's connection keeps the write half for
/// sending; we take the read half back for our own framing.
async fn open(stream: TcpStream, cancel: &CancellationToken) -> Option<Opened> {
    stream.set_nodelay(true).ok();
    let local = SipAddr {
        r#type: Some(Transport::Tcp),
        addr: stream.local_addr().ok()?.into(),
    };
    let tcp = match TcpConnection::from_stream(stream, local, Some(cancel.clone())) {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "cannot set up tcp connection");
            return None;
        }
    };
    let reader = tcp.inner.read_half.lock().await.take()?;
    Some((tcp, reader))
}

/// Opens a TCP connection from `local_ip` (so the peer sees our own address,
/// by which a mesh peer knows us) to `remote`, and reads it like an accepted
/// one: responses go to their client transactions, requests to the server
/// side. The connection ends when `cancel` is cancelled, on error, or idle.
pub async fn connect(
    local_ip: IpAddr,
    remote: SocketAddr,
    endpoint: Arc<EndpointInner>,
    settings: TcpSettings,
    cancel: CancellationToken,
) -> Result<SipConnection, SipError> {
    let failed = |e: std::io::Error| SipError::Connect {
        addr: remote.to_string(),
        reason: e.to_string(),
    };
    let socket = match local_ip {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(failed)?;
    socket.bind(SocketAddr::new(local_ip, 0)).map_err(failed)?;
    let stream = socket.connect(remote).await.map_err(failed)?;
    let (tcp, reader) = open(stream, &cancel)
        .await
        .ok_or_else(|| SipError::Connect {
            addr: remote.to_string(),
            reason: "connection closed at once".into(),
        })?;
    let connection = Connection { endpoint, settings };
    tokio::spawn(connection.read_loop(tcp.clone(), reader, remote, cancel));
    Ok(SipConnection::Tcp(tcp))
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr, cancel: CancellationToken) {
        if let Some((tcp, reader)) = open(stream, &cancel).await {
            self.read_loop(tcp, reader, peer, cancel).await;
        }
    }

    /// Frames and delivers what arrives until the connection ends.
    async fn read_loop(
        self,
        tcp: TcpConnection,
        mut reader: ReadHalf<TcpStream>,
        peer: SocketAddr,
        cancel: CancellationToken,
    ) {
        // Not registered with the transport layer: that would start
        // rsipstack's own reader on it. In-dialog requests find the
        // connection through the dialog's flow affinity instead, and mesh
        // senders hold it themselves; both stop using it once `cancel` is
        // cancelled below.
        let connection = SipConnection::Tcp(tcp.clone());
        let from = SipAddr {
            r#type: Some(Transport::Tcp),
            addr: peer.into(),
        };
        let mut framer = StreamFramer::new(self.settings.limits);
        let mut chunk = vec![0u8; 16 * 1024];
        'read: loop {
            let read = tokio::select! {
                _ = cancel.cancelled() => break,
                r = tokio::time::timeout(self.settings.idle_timeout, reader.read(&mut chunk)) => r,
            };
            let n = match read {
                Err(_) => {
                    debug!(%peer, "tcp connection idle; closing");
                    break;
                }
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "tcp read error");
                    break;
                }
            };
            framer.push(chunk.get(..n).unwrap_or_default());
            while let Some(frame) = framer.next_frame() {
                match frame {
                    Frame::Message(raw) => {
                        match classify(&raw, self.settings.limits, false, &self.settings.server) {
                            Inbound::Message(m) => {
                                deliver(&self.endpoint, *m, connection.clone(), &from).await
                            }
                            Inbound::Reply(bytes) => {
                                if tcp.send_raw(&bytes).await.is_err() {
                                    break 'read;
                                }
                            }
                            Inbound::Ignore => debug!(%peer, "ignored tcp message"),
                        }
                    }
                    Frame::Ping => {
                        if tcp.send_raw(b"\r\n").await.is_err() {
                            break 'read;
                        }
                    }
                    Frame::Error { error, head } => {
                        debug!(%peer, %error, "tcp framing error; closing");
                        let (status, reason) = match error {
                            FramingError::TooLarge { .. }
                            | FramingError::HeadersTooLarge { .. } => {
                                (413, "Request Entity Too Large")
                            }
                            FramingError::BadContentLength { .. } => (400, "Bad Request"),
                        };
                        let why = error.to_string();
                        if let Some(bytes) =
                            error_response(&head, status, reason, &why, &self.settings.server, &[])
                        {
                            tcp.send_raw(&bytes).await.ok();
                        }
                        break 'read;
                    }
                }
            }
        }
        cancel.cancel();
        tcp.inner.close().await.ok();
    }
}

//! The stream listeners (TCP, and TLS over TCP) and outgoing stream
//! connections to mesh peers (RFC 3261 §18.3, §26.2).
//!
//! A listener admits each new connection against the connection limits
//! ([`super::admission`]: per source address, and a pool of its own for the
//! topology's servers), then, for TLS, completes the handshake within the
//! request deadline, learns who the other side is ([`super::tls`] for a
//! certificate, the topology's `insecure` servers for plain TCP), and hands
//! the stream to the loop every stream connection shares
//! ([`super::stream`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::sip::Transport;
use rsipstack::transport::SipConnection;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::admission::{Admission, AdmissionLimits, Pool, Refusal};
use super::stream::{self, Connected, StreamContext};
use super::tls::{identity_of, server_name, TlsSettings};
use crate::sip::gate::{RefusalLog, LOG_INTERVAL};
use crate::sip::identity::Identity;
use crate::sip::SipError;

/// The servers of the topology as the transports need them.
#[derive(Debug, Clone, Default)]
pub struct PeerDirectory {
    /// Every other server's name: who a certificate may name.
    pub names: Vec<String>,
    /// The `insecure` servers by IP: who a plain TCP connection may be.
    pub insecure: HashMap<IpAddr, String>,
    /// Every other server's IP: whose connections count in the peers' pool.
    pub addresses: Vec<IpAddr>,
}

impl PeerDirectory {
    fn pool_of(&self, ip: IpAddr) -> Pool {
        let ip = ip.to_canonical();
        if self.addresses.iter().any(|a| a.to_canonical() == ip) {
            Pool::Peer
        } else {
            Pool::General
        }
    }

    fn insecure_peer(&self, ip: IpAddr) -> Identity {
        let ip = ip.to_canonical();
        self.insecure
            .iter()
            .find(|(a, _)| a.to_canonical() == ip)
            .map(|(_, name)| Identity::Peer(name.clone()))
            .unwrap_or(Identity::Anonymous)
    }
}

/// What the listeners of one endpoint share.
pub struct ListenerContext {
    pub stream: Arc<StreamContext>,
    pub peers: PeerDirectory,
    pub admission: Mutex<Admission>,
    /// Refused connections, logged once per source and minute.
    refusals: Mutex<RefusalLog>,
}

impl ListenerContext {
    pub fn new(stream: Arc<StreamContext>, peers: PeerDirectory, limits: AdmissionLimits) -> Self {
        ListenerContext {
            stream,
            peers,
            admission: Mutex::new(Admission::new(limits)),
            refusals: Mutex::new(RefusalLog::new(LOG_INTERVAL, 4096)),
        }
    }
}

/// A bound TCP or TLS listener.
pub struct StreamListener {
    listener: TcpListener,
    tls: Option<TlsSettings>,
}

impl StreamListener {
    /// Binds `addr`, for TLS when `tls` is given.
    pub async fn bind(addr: SocketAddr, tls: Option<TlsSettings>) -> Result<Self, SipError> {
        let name = if tls.is_some() { "tls" } else { "tcp" };
        let listener = TcpListener::bind(addr).await.map_err(|e| SipError::Bind {
            addr: format!("{name}:{addr}"),
            reason: e.to_string(),
        })?;
        Ok(StreamListener { listener, tls })
    }

    /// Accepts connections until cancelled.
    pub async fn serve(self, context: Arc<ListenerContext>, cancel: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => return,
                a = self.listener.accept() => a,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let pool = context.peers.pool_of(remote.ip());
            let admitted = match context.admission.lock() {
                Ok(mut a) => a.open(remote.ip(), pool),
                Err(_) => Err(Refusal::GeneralFull),
            };
            if let Err(refusal) = admitted {
                let log = context
                    .refusals
                    .lock()
                    .ok()
                    .and_then(|mut l| l.should_log(remote.ip(), std::time::Instant::now()));
                if let Some(unlogged) = log {
                    warn!(%remote, ?refusal, unlogged_since_last = unlogged,
                          "connection refused: over the connection limits");
                }
                continue;
            }
            let context = context.clone();
            let tls = self.tls.clone();
            let cancel = cancel.child_token();
            tokio::spawn(async move {
                let closed = cancel.clone();
                match tls {
                    Some(tls) => accept_tls(&context, stream, remote, tls, cancel).await,
                    None => accept_tcp(&context, stream, remote, cancel).await,
                }
                closed.cancelled().await;
                if let Ok(mut a) = context.admission.lock() {
                    a.close(remote.ip(), pool);
                }
            });
        }
    }
}

async fn accept_tcp(
    context: &ListenerContext,
    stream: TcpStream,
    remote: SocketAddr,
    cancel: CancellationToken,
) {
    stream.set_nodelay(true).ok();
    let connected = Connected {
        stream,
        remote,
        transport: Transport::Tcp,
        identity: context.peers.insecure_peer(remote.ip()),
    };
    if stream::start(context.stream.clone(), connected, cancel.clone())
        .await
        .is_err()
    {
        cancel.cancel();
    }
}

async fn accept_tls(
    context: &ListenerContext,
    stream: TcpStream,
    remote: SocketAddr,
    tls: TlsSettings,
    cancel: CancellationToken,
) {
    stream.set_nodelay(true).ok();
    let deadline = context.stream.request_deadline;
    let handshake = tokio::time::timeout(deadline, tls.acceptor.accept(stream));
    let stream = tokio::select! {
        _ = cancel.cancelled() => return,
        h = handshake => match h {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                info!(%remote, error = %e, "TLS handshake refused");
                cancel.cancel();
                return;
            }
            Err(_) => {
                info!(%remote, ?deadline, "TLS handshake not complete within the deadline");
                cancel.cancel();
                return;
            }
        },
    };
    let identity = identity_of(stream.get_ref().1.peer_certificates(), &context.peers.names);
    debug!(%remote, ?identity, "TLS connection");
    let connected = Connected {
        stream,
        remote,
        transport: Transport::Tls,
        identity,
    };
    if stream::start(context.stream.clone(), connected, cancel.clone())
        .await
        .is_err()
    {
        cancel.cancel();
    }
}

/// Where and how to reach a peer.
#[derive(Debug, Clone)]
pub struct PeerTarget {
    /// Its topology name: the name its certificate must hold.
    pub name: String,
    pub addr: SocketAddr,
    /// TLS when settings are given; plain TCP (an `insecure` peer) else.
    pub tls: Option<TlsSettings>,
}

/// Opens a connection from `local_ip` (our own topology address, which an
/// insecure peer knows us by) to `target`, with the TLS handshake when the
/// peer is reached by TLS, and reads it like an accepted one: responses go
/// to their client transactions, requests to the server side. The caller
/// bounds the time this takes. The connection ends when `cancel` is
/// cancelled, on error, or when idle.
pub async fn connect(
    context: Arc<StreamContext>,
    local_ip: IpAddr,
    target: &PeerTarget,
    cancel: CancellationToken,
) -> Result<SipConnection, SipError> {
    let remote = target.addr;
    let stream = dial(local_ip, remote).await?;
    let identity = Identity::Peer(target.name.clone());
    match &target.tls {
        Some(tls) => {
            let name = server_name(&target.name)?;
            let stream =
                tls.connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| SipError::Connect {
                        addr: remote.to_string(),
                        reason: format!("TLS handshake: {e}"),
                    })?;
            let connected = Connected {
                stream: tokio_rustls::TlsStream::Client(stream),
                remote,
                transport: Transport::Tls,
                identity,
            };
            stream::start(context, connected, cancel).await
        }
        None => {
            let connected = Connected {
                stream,
                remote,
                transport: Transport::Tcp,
                identity,
            };
            stream::start(context, connected, cancel).await
        }
    }
}

/// Opens a plain TCP connection from `local_ip` to `remote`, a server that
/// is no mesh peer (a registrar, a PBX), read like an accepted one. The
/// caller bounds the time this takes.
pub async fn connect_anonymous(
    context: Arc<StreamContext>,
    local_ip: IpAddr,
    remote: SocketAddr,
    cancel: CancellationToken,
) -> Result<SipConnection, SipError> {
    let stream = dial(local_ip, remote).await?;
    let connected = Connected {
        stream,
        remote,
        transport: Transport::Tcp,
        identity: Identity::Anonymous,
    };
    stream::start(context, connected, cancel).await
}

/// A TCP connection from `local_ip` (any port) to `remote`.
async fn dial(local_ip: IpAddr, remote: SocketAddr) -> Result<TcpStream, SipError> {
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
    stream.set_nodelay(true).ok();
    Ok(stream)
}

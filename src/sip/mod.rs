//! The glue to the SIP stack.
//!
//! vmesh builds on rsipstack (see DESIGN.md for why not plain rsip): its
//! message types (`rsipstack::sip`, a maintained rsip fork), its RFC 3261
//! transaction layer with Timers A–K (and RFC 6026's Accepted state, in which
//! it retransmits a 2xx until the ACK), and its dialog layer. The sockets are
//! read by our own loops in [`transport`], which check every message first
//! ([`inbound`], [`malformed`], [`framing`], [`gate`]) and then hand it to
//! the transaction layer; they also learn who each connection is
//! ([`identity`]: a mesh peer by its certificate, or nobody); [`request`]
//! builds the requests vmesh sends on its own. [`SipStack`]
//! owns that assembly; the voicemail layer takes the new server
//! transactions from it.

pub mod digest;
pub mod framing;
pub mod gate;
pub mod identity;
pub mod inbound;
pub mod malformed;
pub mod overload;
pub mod request;
pub mod responses;
pub mod transfer_bodies;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::Method;
use rsipstack::transaction::{EndpointBuilder, TransactionReceiver};
use rsipstack::transport::{SipConnection, TransportLayer};
use tokio_util::sync::CancellationToken;

use gate::Gate;
use identity::{Identities, Origin};
use transport::admission::AdmissionLimits;
use transport::stream::StreamContext;
use transport::tcp::{ListenerContext, PeerDirectory, PeerTarget, StreamListener};
use transport::tls::TlsSettings;
use transport::udp::UdpTransport;

/// Errors of the SIP layer.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    /// A connection to a peer could not be opened.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// rsipstack refused something.
    #[error("SIP stack: {0}")]
    Stack(String),
    /// The TLS configuration cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The methods vmesh answers, for Allow headers (RFC 3261 §20.5); INFO
/// (DTMF, RFC 2976) and UPDATE (session refreshes, RFC 3311 and RFC
/// 4028) inside a call's dialog.
pub const ALLOWED: [Method; 9] = [
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Options,
    Method::Message,
    Method::Subscribe,
    Method::Info,
    Method::Update,
];

/// What the stack listens on and how it treats connections.
#[derive(Debug, Clone)]
pub struct SipSettings {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// TLS listeners; they need `tls`.
    pub tls_listen: Vec<SocketAddr>,
    /// Mutual TLS with the mesh peers, when this server uses TLS.
    pub tls: Option<TlsSettings>,
    pub user_agent: String,
    pub limits: inbound::SizeLimits,
    pub tcp_idle_timeout: Duration,
    /// A request on a stream must be whole this long after its first byte.
    pub request_deadline: Duration,
    /// The same for an authenticated peer (transfers are large).
    pub peer_request_deadline: Duration,
    pub admission: AdmissionLimits,
    /// The topology's servers, as the transports recognise them.
    pub peers: PeerDirectory,
    /// Whether this server has a topology (see [`gate`]).
    pub mesh: bool,
}

/// A running SIP endpoint: transports, transaction layer, dialog layer.
pub struct SipStack {
    pub endpoint: rsipstack::transaction::Endpoint,
    pub dialogs: DialogLayer,
    /// The UDP sockets, for building Contact/Via and sending.
    pub udp: Vec<SipConnection>,
    /// Bodies of large MESSAGEs kept aside from the transaction layer.
    pub bodies: Arc<transfer_bodies::BodyStash>,
    streams: Arc<StreamContext>,
    identities: Arc<Identities>,
    tls: Option<TlsSettings>,
    cancel: CancellationToken,
}

impl SipStack {
    /// Binds every listen address and starts the receive loops and the
    /// transaction timers. Fails if any address cannot be bound. Returns the
    /// stack and the receiver of new server transactions (each request that
    /// starts one).
    pub async fn start(
        settings: &SipSettings,
    ) -> Result<(SipStack, TransactionReceiver), SipError> {
        let cancel = CancellationToken::new();
        let transports = TransportLayer::new(cancel.clone());
        let mut udp = Vec::new();
        for addr in &settings.udp {
            udp.push(UdpTransport::bind(*addr, cancel.child_token()).await?);
        }
        let mut listeners = Vec::new();
        for addr in &settings.tcp {
            listeners.push(StreamListener::bind(*addr, None).await?);
        }
        for addr in &settings.tls_listen {
            let tls = settings.tls.clone().ok_or_else(|| {
                SipError::Tls(format!("tls:{addr} needs a certificate and the mesh CA"))
            })?;
            listeners.push(StreamListener::bind(*addr, Some(tls)).await?);
        }
        // Registered for sending only: the endpoint's own serve() (which
        // would start rsipstack's readers on them) is never called.
        for t in &udp {
            transports.add_transport(t.connection());
        }
        let bodies = transfer_bodies::BodyStash::new();
        let endpoint = EndpointBuilder::new()
            .with_inspector(bodies.inspector())
            .with_user_agent(&settings.user_agent)
            .with_transport_layer(transports)
            .with_cancel_token(cancel.child_token())
            .with_allows(ALLOWED.to_vec())
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| SipError::Stack(e.to_string()))?;
        let dialogs = DialogLayer::new(endpoint.inner.clone());

        let inner = endpoint.inner.clone();
        let timers = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = timers.cancelled() => {}
                _ = inner.process_timer() => {}
            }
        });
        let gate = Arc::new(Gate::new(settings.mesh));
        let identities = Arc::new(Identities::default());
        let udp_connections = udp.iter().map(UdpTransport::connection).collect();
        for t in udp {
            tokio::spawn(t.serve(
                endpoint.inner.clone(),
                settings.limits,
                settings.user_agent.clone(),
                gate.clone(),
                cancel.child_token(),
            ));
        }
        let streams = Arc::new(StreamContext {
            endpoint: endpoint.inner.clone(),
            identities: identities.clone(),
            gate,
            limits: settings.limits,
            idle_timeout: settings.tcp_idle_timeout,
            request_deadline: settings.request_deadline,
            peer_request_deadline: settings.peer_request_deadline,
            server: settings.user_agent.clone(),
        });
        let listener_context = Arc::new(ListenerContext::new(
            streams.clone(),
            settings.peers.clone(),
            settings.admission,
        ));
        for listener in listeners {
            tokio::spawn(listener.serve(listener_context.clone(), cancel.child_token()));
        }
        let stack = SipStack {
            endpoint,
            dialogs,
            udp: udp_connections,
            bodies,
            streams,
            identities,
            tls: settings.tls.clone(),
            cancel,
        };
        Ok((stack, incoming))
    }

    /// Opens a connection from `local_ip` to mesh peer `name` at `remote`
    /// (see [`transport::tcp::connect`]): TLS when this server uses TLS and
    /// `tls` says the peer does, plain TCP for an insecure peer. It closes
    /// when `cancel` is cancelled, on error, or when idle. The caller
    /// bounds the time it takes.
    pub async fn connect_peer(
        &self,
        local_ip: std::net::IpAddr,
        name: &str,
        remote: SocketAddr,
        tls: bool,
        cancel: CancellationToken,
    ) -> Result<SipConnection, SipError> {
        let tls = match (tls, &self.tls) {
            (true, Some(settings)) => Some(settings.clone()),
            (true, None) => {
                return Err(SipError::Tls(format!(
                    "{name} is reached by TLS but this server has no certificate"
                )))
            }
            (false, _) => None,
        };
        let target = PeerTarget {
            name: name.to_string(),
            addr: remote,
            tls,
        };
        transport::tcp::connect(self.streams.clone(), local_ip, &target, cancel).await
    }

    /// Opens a plain TCP connection from `local_ip` to `remote`, a server
    /// that is no mesh peer (see [`transport::tcp::connect_anonymous`]). It
    /// closes when `cancel` is cancelled, on error, or when idle. The caller
    /// bounds the time it takes.
    pub async fn connect_tcp(
        &self,
        local_ip: std::net::IpAddr,
        remote: SocketAddr,
        cancel: CancellationToken,
    ) -> Result<SipConnection, SipError> {
        transport::tcp::connect_anonymous(self.streams.clone(), local_ip, remote, cancel).await
    }

    /// Where a server transaction's request came from and who sent it.
    pub fn origin_of(&self, tx: &rsipstack::transaction::transaction::Transaction) -> Origin {
        self.identities.origin_of(tx)
    }

    /// Stops every loop and closes the sockets.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

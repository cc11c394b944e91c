//! The glue to the SIP stack.
//!
//! vmesh builds on rsipstack (see DESIGN.md for why not plain rsip): its
//! message types (`rsipstack::sip`, a maintained rsip fork), its RFC 3261
//! transaction layer with Timers A–K (and RFC 6026's Accepted state, in which
//! it retransmits a 2xx until the ACK), and its dialog layer. The sockets are
//! read by our own loops in [`transport`], which check every message first
//! ([`inbound`], [`malformed`], [`framing`]) and then hand it to the
//! transaction layer. [`SipStack`] owns that assembly; the voicemail layer
//! takes the new server transactions from it.

pub mod digest;
pub mod framing;
pub mod inbound;
pub mod malformed;
pub mod overload;
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

use transport::tcp::{TcpSettings, TcpTransport};
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
}

/// The methods vmesh answers, for Allow headers (RFC 3261 §20.5).
pub const ALLOWED: [Method; 6] = [
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Options,
    Method::Message,
];

/// What the stack listens on and how it treats connections.
#[derive(Debug, Clone)]
pub struct SipSettings {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub user_agent: String,
    pub limits: inbound::SizeLimits,
    pub tcp_idle_timeout: Duration,
}

/// A running SIP endpoint: transports, transaction layer, dialog layer.
pub struct SipStack {
    pub endpoint: rsipstack::transaction::Endpoint,
    pub dialogs: DialogLayer,
    /// The UDP sockets, for building Contact/Via and sending.
    pub udp: Vec<SipConnection>,
    /// Bodies of large MESSAGEs kept aside from the transaction layer.
    pub bodies: Arc<transfer_bodies::BodyStash>,
    tcp_settings: TcpSettings,
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
        let mut tcp = Vec::new();
        for addr in &settings.tcp {
            tcp.push(TcpTransport::bind(*addr).await?);
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
        let udp_connections = udp.iter().map(UdpTransport::connection).collect();
        for t in udp {
            tokio::spawn(t.serve(
                endpoint.inner.clone(),
                settings.limits,
                settings.user_agent.clone(),
                cancel.child_token(),
            ));
        }
        let tcp_settings = TcpSettings {
            limits: settings.limits,
            idle_timeout: settings.tcp_idle_timeout,
            server: settings.user_agent.clone(),
        };
        for t in tcp {
            tokio::spawn(t.serve(
                endpoint.inner.clone(),
                tcp_settings.clone(),
                cancel.child_token(),
            ));
        }
        let stack = SipStack {
            endpoint,
            dialogs,
            udp: udp_connections,
            bodies,
            tcp_settings,
            cancel,
        };
        Ok((stack, incoming))
    }

    /// Opens a TCP connection from `local_ip` to `remote` that is read like
    /// the accepted ones (see [`transport::tcp::connect`]). It closes when
    /// `cancel` is cancelled, on error, or when idle.
    pub async fn connect_tcp(
        &self,
        local_ip: std::net::IpAddr,
        remote: SocketAddr,
        cancel: CancellationToken,
    ) -> Result<SipConnection, SipError> {
        transport::tcp::connect(
            local_ip,
            remote,
            self.endpoint.inner.clone(),
            self.tcp_settings.clone(),
            cancel,
        )
        .await
    }

    /// Stops every loop and closes the sockets.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// The address a request came from: the connection's peer, or on UDP the
/// Via's `received` (set by our transport to the datagram's source, RFC 3261
/// §18.2.1). This is how a mesh peer is recognized.
pub fn source_ip(
    tx: &rsipstack::transaction::transaction::Transaction,
) -> Option<std::net::IpAddr> {
    use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
    tx.connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
        .map(|a| a.ip())
        .or_else(|| {
            tx.original
                .via_header()
                .ok()
                .and_then(|v| v.typed().ok())
                .and_then(|v| v.received().and_then(Result::ok))
        })
}

//! The UDP receive loop (RFC 3261 §18.2.1).
//!
//! A datagram authenticates nothing: every one is held to the limits of an
//! unauthenticated sender and passes the gate as one (a MESSAGE over UDP is
//! refused whatever its Via says).

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::SipConnection;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use rsipstack::sip::{SipMessage, Transport};

use super::deliver;
use crate::sip::gate::Gate;
use crate::sip::identity::{Identity, Origin};
use crate::sip::inbound::{classify, Inbound, SizeLimits};
use crate::sip::malformed::error_response;
use crate::sip::SipError;

/// A bound UDP SIP socket, registered with rsipstack for sending.
pub struct UdpTransport {
    connection: UdpConnection,
}

impl UdpTransport {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr, cancel: CancellationToken) -> Result<Self, SipError> {
        let connection = UdpConnection::create_connection(addr, None, Some(cancel))
            .await
            .map_err(|e| SipError::Bind {
                addr: format!("udp:{addr}"),
                reason: e.to_string(),
            })?;
        Ok(UdpTransport { connection })
    }

    /// The rsipstack connection that sends on this socket.
    pub fn connection(&self) -> SipConnection {
        SipConnection::Udp(self.connection.clone())
    }

    /// Reads datagrams until cancelled. One buffer, reused, one byte longer
    /// than the largest datagram allowed, so an oversized one is seen as such
    /// and answered 413 when its headers allow.
    pub async fn serve(
        self,
        endpoint: Arc<EndpointInner>,
        limits: SizeLimits,
        server: String,
        gate: Arc<Gate>,
        cancel: CancellationToken,
    ) {
        let limits = limits.unauthenticated();
        let mut buf = vec![0u8; limits.largest().min(65535) + 1];
        loop {
            let received = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.connection.recv_raw(&mut buf) => r,
            };
            let (len, from) = match received {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port unreachable surfaces here on Linux; the
                    // socket itself is fine.
                    debug!(error = %e, "udp receive error");
                    continue;
                }
            };
            let Some(raw) = buf.get(..len) else { continue };
            let reply = match classify(raw, limits, true, &server) {
                Inbound::Message(message) => {
                    let refused = match (message.as_ref(), from.get_socketaddr()) {
                        (SipMessage::Request(request), Ok(source)) => {
                            let origin = Origin {
                                source: Some(source),
                                transport: Transport::Udp,
                                identity: Identity::Anonymous,
                            };
                            gate.check(&request.method, &origin, std::time::Instant::now())
                        }
                        _ => None,
                    };
                    match refused {
                        Some(why) => error_response(raw, 403, "Forbidden", &why, &server, &[]),
                        None => {
                            deliver(
                                &endpoint,
                                *message,
                                self.connection(),
                                &from,
                                Transport::Udp,
                            )
                            .await;
                            None
                        }
                    }
                }
                Inbound::Reply(bytes) => Some(bytes),
                Inbound::Ignore => {
                    debug!(%from, len, "ignored datagram");
                    None
                }
            };
            if let Some(bytes) = reply {
                if let Err(e) = self.connection.send_raw(&bytes, &from).await {
                    warn!(%from, error = %e, "cannot send error response");
                }
            }
        }
    }
}

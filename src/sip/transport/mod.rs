//! The SIP transports: our own loops in front of rsipstack.
//!
//! rsipstack brings UDP, TCP and TLS transports, but its receive loops drop
//! a message they cannot parse without an answer, its stream codec limits a
//! message to 64 KiB and closes the connection on any framing error, and its
//! stream writes have no timeout. vmesh must answer malformed requests with
//! 400 and oversized ones with 413 (RFC 3261 §8.2, §21.4.11), carry
//! voicemail bodies of many megabytes between authenticated peers and only
//! between them, bound every request in time and every send, and know who
//! each connection is. So the sockets are read here, every message is
//! checked by [`super::inbound::classify`] and [`super::gate`], and what
//! passes is handed to rsipstack's transaction layer
//! (`EndpointInner::on_received_message`). UDP sends stay with rsipstack's
//! UDP connection; streams ([`stream`]: TCP and TLS alike, accepted by
//! [`tcp`] with [`tls`] and [`admission`]) are handed to it as channel
//! connections whose writes our own send loop makes.

pub mod admission;
pub mod stream;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::sync::Arc;

use rsipstack::sip::{SipMessage, Transport};
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::{SipAddr, SipConnection};
use tracing::debug;

/// Hands a checked message, received over `transport`, to the transaction
/// layer. Errors there concern one message only (say, a response to no
/// transaction) and are logged.
async fn deliver(
    endpoint: &Arc<EndpointInner>,
    message: SipMessage,
    connection: SipConnection,
    from: &SipAddr,
    transport: Transport,
) {
    let Ok(socket) = from.get_socketaddr() else {
        return;
    };
    let message = match SipConnection::update_msg_received(message, socket, transport) {
        Ok(m) => m,
        Err(e) => {
            debug!(%from, error = %e, "cannot mark Via received");
            return;
        }
    };
    if let Err(e) = endpoint
        .on_received_message(message, connection, from)
        .await
    {
        debug!(%from, error = %e, "message not taken by the transaction layer");
    }
}

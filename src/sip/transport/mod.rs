//! The SIP transports: our own receive loops in front of rsipstack.
//!
//! rsipstack brings UDP and TCP transports, but its receive loops drop a
//! message they cannot parse without an answer, and its stream codec limits a
//! message to 64 KiB and closes the connection on any framing error. vmesh
//! must answer malformed requests with 400 and oversized ones with 413 (RFC
//! 3261 §8.2, §21.4.11), and later carry voicemail bodies of many megabytes
//! over TCP. So the sockets are read here, every message is checked by
//! [`super::inbound::classify`], and what passes is handed to rsipstack's
//! transaction layer (`EndpointInner::on_received_message`). Sending stays
//! with rsipstack's connection types, which these loops create and register,
//! so transactions and dialogs answer and retransmit exactly as they would on
//! rsipstack's own transports.

pub mod tcp;
pub mod udp;

use std::sync::Arc;

use rsipstack::sip::SipMessage;
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::{SipAddr, SipConnection};
use tracing::debug;

/// Hands a checked message to the transaction layer. Errors there concern
/// one message only (say, a response to no transaction) and are logged.
async fn deliver(
    endpoint: &Arc<EndpointInner>,
    message: SipMessage,
    connection: SipConnection,
    from: &SipAddr,
) {
    let Ok(socket) = from.get_socketaddr() else {
        return;
    };
    let transport = connection.transport();
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

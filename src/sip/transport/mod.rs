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

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Param, Request, SipMessage, StatusCode, Transport};
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::{SipAddr, SipConnection};
use tracing::debug;

use super::overload::{self, Limits};
use super::responses;

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
    let message = without_sender_received(message);
    let message = match SipConnection::update_msg_received(message, socket, transport) {
        Ok(m) => m,
        Err(e) => {
            debug!(%from, error = %e, "cannot mark Via received");
            return;
        }
    };
    if let SipMessage::Request(req) = &message {
        if overload::starts_transaction(endpoint, req)
            && !Limits::default().admits(overload::load_of(endpoint))
        {
            debug!(%from, method = %req.method, "transaction tables full; 503");
            refuse_overloaded(endpoint, req, &connection, from).await;
            return;
        }
    }
    if let Err(e) = endpoint
        .on_received_message(message, connection, from)
        .await
    {
        debug!(%from, error = %e, "message not taken by the transaction layer");
    }
}

/// The message with any `received` parameter of a request's top Via
/// removed. Only the receiving server writes `received` (RFC 3261
/// §18.2.1); rsipstack keeps one the sender wrote when its sent-by equals
/// the source, which would let a sender name any address as its own. After
/// this, the top Via's `received` (or, when absent, its sent-by) is the
/// address the message really came from.
fn without_sender_received(message: SipMessage) -> SipMessage {
    const RECEIVED: &[u8] = b"received";
    let SipMessage::Request(mut req) = message else {
        return message;
    };
    if let Ok(via) = req.via_header_mut() {
        // Most requests carry no `received` at all: they are left as they
        // came instead of being parsed and written again.
        let named = via
            .value()
            .as_bytes()
            .windows(RECEIVED.len())
            .any(|w| w.eq_ignore_ascii_case(RECEIVED));
        if !named {
            return SipMessage::Request(req);
        }
        let stripped = via.update_first_value(|v| {
            let mut typed = v.typed()?;
            typed.params.retain(|p| !matches!(p, Param::Received(_)));
            Ok(typed.into())
        });
        if let Err(e) = stripped {
            debug!(error = %e, "cannot clean the top Via");
        }
    }
    SipMessage::Request(req)
}

/// Answers a request that cannot become a transaction: 503 with
/// Retry-After, statelessly (RFC 3261 §8.2.6).
async fn refuse_overloaded(
    endpoint: &EndpointInner,
    req: &Request,
    connection: &SipConnection,
    from: &SipAddr,
) {
    let mut response = endpoint.make_response(req, StatusCode::ServiceUnavailable, None);
    response
        .headers
        .push(responses::retry_after(overload::OVERLOAD_RETRY_AFTER_S));
    let destination = (!connection.is_reliable()).then_some(from);
    if let Err(e) = connection.send(response.into(), destination).await {
        debug!(%from, error = %e, "cannot send 503");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top_via(raw: &str) -> String {
        let message = SipMessage::try_from(raw.as_bytes()).expect("a request");
        let SipMessage::Request(req) = without_sender_received(message) else {
            panic!("a request stays a request");
        };
        req.via_header().expect("a Via").value().to_string()
    }

    fn options(via_params: &str) -> String {
        format!(
            "OPTIONS sip:vm@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.9:5070;{via_params}\r\n\
             Via: SIP/2.0/UDP 127.0.0.8:5060;branch=z9hG4bK-p;received=127.0.0.7\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\n\
             To: <sip:vm@127.0.0.1>\r\n\
             Call-ID: c1\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn a_received_the_sender_wrote_is_removed_in_any_case() {
        for param in [
            "received=127.0.0.66",
            "RECEIVED=127.0.0.66",
            "Received=127.0.0.66",
        ] {
            let via = top_via(&options(&format!("{param};branch=z9hG4bK-1")));
            assert!(!via.to_ascii_lowercase().contains("received"), "{via}");
            assert!(via.contains("branch=z9hG4bK-1"), "{via}");
        }
    }

    #[test]
    fn a_top_via_without_received_is_left_as_it_came() {
        let via = top_via(&options("branch=z9hG4bK-1;rport"));
        assert_eq!(via, "SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-1;rport");
    }
}

//! From raw bytes to a SIP message the transaction layer may see.
//!
//! Every datagram and every framed stream message passes through
//! [`classify`] before it reaches rsipstack. The parser's verdict alone is not
//! enough: rsipstack drops unparseable datagrams without an answer and only
//! fails later, also silently, on a request whose CSeq or Via it cannot use.
//! Here such requests get the 400 that RFC 3261 §8.2 asks for (or 413 when too
//! large, §21.4.11), built by [`super::malformed`], and nothing that cannot
//! be answered goes further.

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Method, Request, SipMessage};

use super::framing::content_length;
use super::malformed::{error_response, method_of};
use super::responses::allow_line;

/// What to do with one received message.
#[derive(Debug)]
pub enum Inbound {
    /// A well-formed message for the transaction layer.
    Message(Box<SipMessage>),
    /// Send these bytes back to the sender (an error response).
    Reply(Vec<u8>),
    /// Nothing to do (keep-alive, or garbage that cannot be answered).
    Ignore,
}

/// How large a message may be. Call signalling is small; a MESSAGE between
/// vmesh servers carries a whole voicemail (RFC 3428 §7 keeps such bodies
/// off UDP, but TCP has no such limit), so it has a limit of its own, which
/// applies only on a connection from an authenticated peer: anyone else is
/// held to `message` whatever the method ([`SizeLimits::unauthenticated`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// Any request or response (the profile's `sip.max_message_bytes`).
    pub message: usize,
    /// The body of a MESSAGE (the profile's `mesh.max_transfer_bytes`);
    /// zero where no transfer may come from.
    pub transfer_body: usize,
}

/// Room for the headers of a MESSAGE on top of its body.
const TRANSFER_HEADROOM: usize = 64 * 1024;

impl SizeLimits {
    /// The largest whole message allowed for `method` (None: a response or
    /// something unparseable).
    pub fn for_method(&self, method: Option<&str>) -> usize {
        match method {
            Some(m) if m.eq_ignore_ascii_case("MESSAGE") && self.transfer_body > 0 => self
                .message
                .max(self.transfer_body.saturating_add(TRANSFER_HEADROOM)),
            _ => self.message,
        }
    }

    /// The largest message of any kind: the bound of a stream's buffer.
    pub fn largest(&self) -> usize {
        self.for_method(Some("MESSAGE"))
    }

    /// The limits for a sender that is not an authenticated peer (any UDP
    /// datagram, any stream before or without authentication): no message
    /// of any method above `message`, so no stranger's transfer-sized body
    /// is ever buffered.
    pub fn unauthenticated(&self) -> SizeLimits {
        SizeLimits {
            message: self.message,
            transfer_body: 0,
        }
    }
}

/// Parses and checks one message. `datagram` says whether `raw` is a whole
/// UDP datagram, where a Content-Length larger than the body means the
/// message was truncated (RFC 3261 §18.3).
pub fn classify(raw: &[u8], limits: SizeLimits, datagram: bool, server: &str) -> Inbound {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Inbound::Ignore;
    }
    let reject_with = |status: u16, reason: &str, why: &str, extra: &[String]| match error_response(
        raw, status, reason, why, server, extra,
    ) {
        Some(bytes) => Inbound::Reply(bytes),
        None => Inbound::Ignore,
    };
    let reject = |status: u16, reason: &str, why: &str| reject_with(status, reason, why, &[]);
    let limit = limits.for_method(method_of(raw).as_deref());
    if raw.len() > limit {
        return reject(
            413,
            "Request Entity Too Large",
            &format!("message over {limit} bytes"),
        );
    }
    if datagram {
        if let Some(problem) = datagram_body_problem(raw) {
            return reject(400, "Bad Request", &problem);
        }
    }
    let message = match SipMessage::try_from(raw) {
        Ok(m) => m,
        Err(e) => {
            // The parser knows only the standard methods. Any other token
            // is a method we do not implement: 501 with Allow (RFC 3261
            // §21.5.2, §8.2.1), not a malformed request.
            if let Some(method) = method_of(raw).filter(|m| m.parse::<Method>().is_err()) {
                let why = format!("method {method} not implemented");
                return reject_with(501, "Not Implemented", &why, &[allow_line()]);
            }
            return reject(400, "Bad Request", &format!("unparseable: {e}"));
        }
    };
    match message {
        SipMessage::Request(req) => match check_request(&req) {
            Ok(()) => Inbound::Message(Box::new(SipMessage::Request(req))),
            Err(why) => reject(400, "Bad Request", &why),
        },
        response => Inbound::Message(Box::new(response)),
    }
}

/// A datagram whose Content-Length does not match its body.
fn datagram_body_problem(raw: &[u8]) -> Option<String> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    match content_length(&raw[..head_end]) {
        Ok(n) if n > raw.len() - head_end => Some(format!(
            "Content-Length {n} but {} body bytes",
            raw.len() - head_end
        )),
        Ok(_) => None,
        Err(v) => Some(format!("invalid Content-Length {v:?}")),
    }
}

/// The checks of RFC 3261 §8.2 that the parser leaves to us: the headers
/// every request must carry, in a form the transaction layer can use.
pub fn check_request(req: &Request) -> Result<(), String> {
    // The top Via as the transaction layer reads it: the first of possibly
    // comma-separated values (RFC 3261 §7.3.1). A header whose first value
    // cannot be split off (an unclosed quote) parses as a whole, but the
    // layer cannot mark its `received` nor key its transaction, and drops
    // the request without an answer.
    let via = req.top_via_header().map_err(|e| format!("bad Via: {e}"))?;
    via.typed().map_err(|e| format!("bad Via: {e}"))?;
    // sent-protocol and sent-by are tokens and a host (RFC 3261 §25.1): a
    // quote there is never valid, and one that the parser took in stops
    // the layer from keying the request once it has marked `received`.
    let sent = via.value().split(';').next().unwrap_or_default();
    if sent.contains('"') {
        return Err("bad Via: a quote in its sent-protocol or sent-by".to_string());
    }
    // Parsed once, for its URI and its tag alike.
    let from = req
        .from_header()
        .and_then(|f| f.typed())
        .map_err(|e| format!("bad From: {e}"))?;
    // RFC 3261 §8.1.1.3: the From tag is mandatory. The transaction layer
    // keys every transaction on it and drops a request without one without
    // a word, so it is refused here, where it can still be answered.
    if from.tag().is_none() {
        return Err("From without a tag (RFC 3261 8.1.1.3)".to_string());
    }
    req.to_header()
        .and_then(|t| t.uri())
        .map_err(|e| format!("bad To: {e}"))?;
    req.call_id_header()
        .map_err(|e| format!("bad Call-ID: {e}"))?;
    let cseq = req.cseq_header().map_err(|e| format!("bad CSeq: {e}"))?;
    cseq.seq().map_err(|e| format!("bad CSeq number: {e}"))?;
    let method = cseq.method().map_err(|e| format!("bad CSeq method: {e}"))?;
    if method != req.method {
        return Err(format!(
            "CSeq method {method} does not match request method {}",
            req.method
        ));
    }
    match req.contact_header() {
        Ok(contact) => {
            contact.typed().map_err(|e| format!("bad Contact: {e}"))?;
        }
        // RFC 3261 §8.1.1.8: a request that can establish a dialog MUST
        // carry a Contact (the remote target of every later request).
        Err(_) if req.method == Method::Invite => {
            return Err("INVITE without Contact (RFC 3261 8.1.1.8)".to_string());
        }
        Err(_) => {}
    }
    if matches!(req.method, Method::Invite) && !req.body.is_empty() {
        std::str::from_utf8(&req.body).map_err(|_| "SDP body is not UTF-8".to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(extra: &str) -> String {
        format!(
            "OPTIONS sip:vm@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\n\
             To: <sip:vm@127.0.0.1>\r\n\
             Call-ID: c1\r\n\
             {extra}\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    fn limits(message: usize) -> SizeLimits {
        SizeLimits {
            message,
            transfer_body: 100_000,
        }
    }

    #[test]
    fn a_message_may_carry_a_transfer_body() {
        let big = "a".repeat(90_000);
        let raw = options("CSeq: 1 MESSAGE\r\n")
            .replace("OPTIONS sip:", "MESSAGE sip:")
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!("Content-Length: {}\r\n\r\n{big}", big.len()),
            );
        assert!(matches!(
            classify(raw.as_bytes(), limits(65536), false, "v"),
            Inbound::Message(_)
        ));
        let bigger = "a".repeat(200_000);
        let raw = options("CSeq: 1 MESSAGE\r\n")
            .replace("OPTIONS sip:", "MESSAGE sip:")
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!("Content-Length: {}\r\n\r\n{bigger}", bigger.len()),
            );
        assert_eq!(
            status_of(classify(raw.as_bytes(), limits(65536), false, "v")),
            "SIP/2.0 413 "
        );
    }

    #[test]
    fn a_stranger_may_not_send_a_transfer_sized_message() {
        let limits = limits(4096).unauthenticated();
        assert_eq!(limits.for_method(Some("MESSAGE")), 4096);
        assert_eq!(limits.largest(), 4096);
    }

    fn status_of(i: Inbound) -> String {
        match i {
            Inbound::Reply(b) => String::from_utf8_lossy(&b[..12]).into_owned(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn a_good_request_passes() {
        let raw = options("CSeq: 1 OPTIONS\r\n");
        assert!(matches!(
            classify(raw.as_bytes(), limits(65536), true, "v"),
            Inbound::Message(_)
        ));
    }

    #[test]
    fn cseq_method_mismatch_gets_400() {
        let raw = options("CSeq: 1 INVITE\r\n");
        assert_eq!(
            status_of(classify(raw.as_bytes(), limits(65536), true, "v")),
            "SIP/2.0 400 "
        );
    }

    #[test]
    fn non_numeric_cseq_gets_400() {
        let raw = options("CSeq: one OPTIONS\r\n");
        assert_eq!(
            status_of(classify(raw.as_bytes(), limits(65536), true, "v")),
            "SIP/2.0 400 "
        );
    }

    #[test]
    fn truncated_datagram_gets_400() {
        let raw = options("CSeq: 1 OPTIONS\r\n").replace("Content-Length: 0", "Content-Length: 50");
        assert_eq!(
            status_of(classify(raw.as_bytes(), limits(65536), true, "v")),
            "SIP/2.0 400 "
        );
    }

    #[test]
    fn oversized_gets_413() {
        let raw = options(&format!(
            "CSeq: 1 OPTIONS\r\nX-Pad: {}\r\n",
            "a".repeat(3000)
        ));
        assert_eq!(
            status_of(classify(raw.as_bytes(), limits(2048), true, "v")),
            "SIP/2.0 413 "
        );
    }

    #[test]
    fn unknown_method_gets_501_with_allow() {
        let raw = options("CSeq: 1 FOO\r\n").replace("OPTIONS sip:", "FOO sip:");
        match classify(raw.as_bytes(), limits(65536), true, "v") {
            Inbound::Reply(b) => {
                let text = String::from_utf8_lossy(&b);
                assert!(text.starts_with("SIP/2.0 501 "), "{text}");
                assert!(text.contains(
                    "\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, SUBSCRIBE, INFO, UPDATE\r\n"
                ));
            }
            other => panic!("expected 501, got {other:?}"),
        }
    }

    #[test]
    fn unparseable_contact_gets_400() {
        let raw = options("CSeq: 1 OPTIONS\r\nContact: <sip:@@::;;>>\r\n");
        assert_eq!(
            status_of(classify(raw.as_bytes(), limits(65536), true, "v")),
            "SIP/2.0 400 "
        );
    }

    #[test]
    fn an_invite_without_contact_gets_400() {
        let invite = options("CSeq: 1 INVITE\r\n").replace("OPTIONS sip:", "INVITE sip:");
        match classify(invite.as_bytes(), limits(65536), true, "v") {
            Inbound::Reply(b) => {
                let text = String::from_utf8_lossy(&b);
                assert!(text.starts_with("SIP/2.0 400 "), "{text}");
                assert!(text.contains("Warning: 399 vmesh \"INVITE without Contact"));
            }
            other => panic!("expected 400, got {other:?}"),
        }
        let with_contact = invite.replace(
            "Max-Forwards",
            "Contact: <sip:a@127.0.0.1:5070>\r\nMax-Forwards",
        );
        assert!(matches!(
            classify(with_contact.as_bytes(), limits(65536), true, "v"),
            Inbound::Message(_)
        ));
        // Other requests need none.
        let options = options("CSeq: 1 OPTIONS\r\n");
        assert!(matches!(
            classify(options.as_bytes(), limits(65536), true, "v"),
            Inbound::Message(_)
        ));
    }

    /// Found by fuzzing (sip_datagram): a request whose From had no tag
    /// passed these checks, and rsipstack, which keys its transactions on
    /// the tag, then dropped it without an answer.
    #[test]
    fn a_request_without_a_from_tag_gets_400() {
        let raw = options("CSeq: 1 OPTIONS\r\n").replace(";tag=1", "");
        match classify(raw.as_bytes(), limits(65536), true, "v") {
            Inbound::Reply(b) => {
                let text = String::from_utf8_lossy(&b);
                assert!(text.starts_with("SIP/2.0 400 "), "{text}");
                assert!(text.contains("From without a tag"), "{text}");
            }
            other => panic!("expected 400, got {other:?}"),
        }
        // The fuzzer's input: a SIPp BYE whose tag parameter lost its name.
        let bye = "BYE sip:vmesh@127.0.77.10:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.77.11:5070;branch=z9hG4bK-29298-1-8\r\n\
             From: \"Test Caller\" <sip:5551234@127.0.77.11:5070>;t\0\0\0\0\0\0\0\0SIPpTag001\r\n\
             To: <sip:1001@127.0.77.10:5060>;tag=cLrT4wMT\r\n\
             Call-ID: 1-29298@127.0.77.11\r\n\
             CSeq: 2 BYE\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n";
        // The NULs make it unanswerable (see `malformed`); it must not
        // reach the transaction layer either way.
        assert!(matches!(
            classify(bye.as_bytes(), limits(65536), true, "v"),
            Inbound::Ignore
        ));
        let printable = bye.replace('\0', "x");
        assert_eq!(
            status_of(classify(printable.as_bytes(), limits(65536), true, "v")),
            "SIP/2.0 400 "
        );
        // What passes has a transaction key.
        let good = options("CSeq: 1 OPTIONS\r\n");
        let Inbound::Message(message) = classify(good.as_bytes(), limits(65536), true, "v") else {
            panic!("a good request is refused");
        };
        let rsipstack::sip::SipMessage::Request(req) = *message else {
            panic!("not a request");
        };
        use rsipstack::transaction::key::{TransactionKey, TransactionRole};
        assert!(TransactionKey::from_request(&req, TransactionRole::Server).is_ok());
    }

    /// Found by fuzzing (sip_datagram): a Via with an unclosed quote
    /// parsed, but rsipstack could not split off its first value to mark
    /// `received`, and dropped the INVITE without an answer.
    #[test]
    fn a_via_whose_first_value_cannot_be_split_off_gets_400() {
        // The first found with an unclosed quote; the second, found by
        // fuzzing too: quotes around the sent-protocol and host parsed, and
        // the request lost its transaction key once marked.
        for via in [
            "Via: SIP/2.0/UDP 127.0.waller\" <0;branch=z9hG4bK-29298-1-0",
            "Via:\"SIP/2.0/UDP 127.0.waller\" <0;branch=z9hG4bK-29298-1-0",
        ] {
            let raw = options("CSeq: 1 OPTIONS\r\n")
                .replace("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1", via);
            match classify(raw.as_bytes(), limits(65536), true, "v") {
                Inbound::Reply(b) => {
                    let text = String::from_utf8_lossy(&b);
                    assert!(text.starts_with("SIP/2.0 400 "), "{text}");
                    assert!(text.contains("bad Via"), "{text}");
                }
                other => panic!("expected 400 for {via:?}, got {other:?}"),
            }
        }
        // Two values in one header are fine, the first one counts.
        let two = options("CSeq: 1 OPTIONS\r\n").replace(
            "branch=z9hG4bK-1\r\n",
            "branch=z9hG4bK-1, SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK-0\r\n",
        );
        let Inbound::Message(message) = classify(two.as_bytes(), limits(65536), true, "v") else {
            panic!("two Via values refused");
        };
        let source = "192.0.2.9:5060".parse().unwrap();
        rsipstack::transport::SipConnection::update_msg_received(
            *message,
            source,
            rsipstack::sip::Transport::Udp,
        )
        .expect("the transaction layer can mark it");
    }

    #[test]
    fn garbage_and_keepalives_are_ignored() {
        assert!(matches!(
            classify(b"\r\n\r\n", limits(65536), true, "v"),
            Inbound::Ignore
        ));
        assert!(matches!(
            classify(b"\x00\x01garbage", limits(65536), true, "v"),
            Inbound::Ignore
        ));
    }
}

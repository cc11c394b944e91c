//! One SIP message from the network, the whole way our code reads it: the
//! checks of `sip::inbound::classify` (size, Content-Length, rsipstack's
//! parser, the RFC 3261 §8.2 header checks), the error answers built from
//! raw text (`sip::malformed`), Via `received` marking and the transaction
//! key as the transaction layer takes the message, the request gate, and
//! what the handlers read from a request that passed: the mailbox and the
//! caller (RFC 4458, RFC 7044, RFC 5806), deposit or retrieval, digest
//! credentials, a SUBSCRIBE's facts (RFC 6665, RFC 3842), an INFO's DTMF
//! body, an INVITE's SDP and a MESSAGE's transfer body.
//!
//! The input is one datagram (also classified as a framed stream message,
//! from a stranger and from a peer). Checked beyond "no panic":
//! - an answer is a well-formed SIP response (400, 413 or 501) with
//!   Content-Length 0, never to an ACK or to a response;
//! - nothing over the size limit reaches the parser;
//! - a message that passes has a usable Via, From, To, Call-ID and a CSeq
//!   whose method is the request's, and a Contact when it is an INVITE;
//! - a MESSAGE over UDP, and a MESSAGE or OPTIONS from a stranger of a
//!   mesh, are refused by the gate;
//! - a mailbox read from a request is 1 to 32 digits (it becomes a
//!   directory name);
//! - credentials the client could not have been given (the nonce is an
//!   HMAC under a secret of the process) never authorize;
//! - an INFO digit is a DTMF key.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Request, SipMessage, Transport};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transport::SipConnection;
use vmesh::call::access::{caller_mailbox_of, purpose_of};
use vmesh::call::parties::{caller_of, mailbox_of};
use vmesh::config::{is_valid_mailbox, CodecOrder, RetrievalConfig};
use vmesh::media::codec::Codec;
use vmesh::media::dtmf_info::parse_info_dtmf;
use vmesh::media::sdp::negotiate_in_order;
use vmesh::mesh::wire;
use vmesh::mwi::subscribe::{evaluate, ExpiryBounds, SubscribeFacts};
use vmesh::sip::digest::server::{DigestAlgorithm, DigestAuthenticator, DigestSettings, Verdict};
use vmesh::sip::gate::Gate;
use vmesh::sip::identity::{Identity, Origin};
use vmesh::sip::inbound::{check_request, classify, Inbound, SizeLimits};
use vmesh::sip::malformed::method_of;

const STRANGER: SizeLimits = SizeLimits {
    message: 4096,
    transfer_body: 0,
};
const PEER: SizeLimits = SizeLimits {
    message: 4096,
    transfer_body: 8192,
};

fuzz_target!(|raw: &[u8]| {
    for (limits, datagram) in [(STRANGER, true), (STRANGER, false), (PEER, false)] {
        match classify(raw, limits, datagram, "vmesh-fuzz") {
            Inbound::Message(message) => {
                let limit = limits.for_method(method_of(raw).as_deref());
                assert!(
                    raw.len() <= limit,
                    "{} bytes passed, limit {limit}",
                    raw.len()
                );
                if let SipMessage::Request(req) = message.as_ref() {
                    check_request(req).expect("a classified request passes its own checks");
                    assert!(req.method != Method::Invite || req.contact_header().is_ok());
                    gate(req);
                    handlers(req);
                }
                transaction_layer(*message);
            }
            Inbound::Reply(reply) => check_reply(raw, &reply),
            Inbound::Ignore => {}
        }
    }
});

/// What rsipstack does first with a message our checks passed.
fn transaction_layer(message: SipMessage) {
    let source: SocketAddr = "192.0.2.7:5060".parse().unwrap();
    let message = SipConnection::update_msg_received(message, source, Transport::Udp)
        .expect("a checked request has a top Via to mark");
    match &message {
        SipMessage::Request(req) => {
            TransactionKey::from_request(req, TransactionRole::Server)
                .expect("a checked request has a transaction key");
        }
        SipMessage::Response(resp) => {
            let _ = TransactionKey::from_response(resp, TransactionRole::Client);
        }
    }
}

fn gate(req: &Request) {
    let now = Instant::now();
    let from = Some("192.0.2.7:5060".parse().unwrap());
    let origin = |transport, identity| Origin {
        source: from,
        transport,
        identity,
    };
    let mesh = Gate::new(true);
    let peer = Identity::Peer("site-b".into());
    let udp = mesh.check(&req.method, &origin(Transport::Udp, peer.clone()), now);
    let stranger = mesh.check(
        &req.method,
        &origin(Transport::Tcp, Identity::Anonymous),
        now,
    );
    let from_peer = mesh.check(&req.method, &origin(Transport::Tls, peer), now);
    match req.method {
        Method::Message => {
            assert!(udp.is_some() && stranger.is_some());
            assert!(from_peer.is_none());
        }
        Method::Options => assert!(stranger.is_some() && from_peer.is_none()),
        _ => assert!(udp.is_none() && stranger.is_none() && from_peer.is_none()),
    }
}

fn handlers(req: &Request) {
    match req.method {
        Method::Invite => invite(req),
        Method::Subscribe => subscribe(req),
        Method::Info => info(req),
        Method::Message => message(req),
        _ => {}
    }
}

fn invite(req: &Request) {
    if let Ok(target) = mailbox_of(req) {
        assert!(is_valid_mailbox(&target.mailbox), "{:?}", target.mailbox);
    }
    let caller = caller_of(req);
    if let Some(name) = &caller.display_name {
        assert!(!name.is_empty());
    }
    let _ = purpose_of(req, &RetrievalConfig::default());
    if let Some(mailbox) = caller_mailbox_of(req) {
        assert!(is_valid_mailbox(&mailbox), "{mailbox:?}");
    }
    let authorizations: Vec<String> = req
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Authorization(a) => Some(a.value().to_string()),
            _ => None,
        })
        .collect();
    let values: Vec<&str> = authorizations.iter().map(String::as_str).collect();
    let origin = Instant::now();
    let mut digest = DigestAuthenticator::new(
        DigestSettings {
            realm: "vm.example".into(),
            users: vec![("pbx".into(), "secret".into())],
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            nonce_lifetime: Duration::from_secs(300),
        },
        [7; 32],
        origin,
    );
    let verdict = digest.verify(&req.method.to_string(), &req.uri, &values, origin);
    assert!(
        !matches!(verdict, Verdict::Authorized { .. }),
        "credentials without one of our nonces authorized"
    );
    if let Ok(body) = std::str::from_utf8(&req.body) {
        let supported = [Codec::Pcmu, Codec::Pcma, Codec::G722];
        let _ = negotiate_in_order(body, &supported, CodecOrder::Profile);
    }
}

fn subscribe(req: &Request) {
    let mut facts = SubscribeFacts::default();
    for header in req.headers.iter() {
        match header {
            Header::Event(e) => facts.event = Some(e.value().to_string()),
            Header::Expires(e) => facts.expires = Some(e.value().to_string()),
            Header::Accept(a) => facts.accept.push(a.value().to_string()),
            _ => {}
        }
    }
    facts.request_user = req.uri.auth.as_ref().map(|a| a.user.clone());
    facts.to_user = req
        .to_header()
        .ok()
        .and_then(|t| t.uri().ok())
        .and_then(|u| u.auth.map(|a| a.user));
    let bounds = ExpiryBounds {
        min: Duration::from_secs(60),
        max: Duration::from_secs(3600),
    };
    if let Ok(asked) = evaluate(&facts, bounds) {
        assert!(is_valid_mailbox(&asked.mailbox), "{:?}", asked.mailbox);
        assert!(asked.duration <= bounds.max);
        assert!(asked.duration.is_zero() || asked.duration >= bounds.min);
    }
}

fn content_type(req: &Request) -> String {
    req.headers
        .iter()
        .find_map(|h| match h {
            Header::ContentType(c) => Some(c.value().to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

fn info(req: &Request) {
    if let Ok(key) = parse_info_dtmf(&content_type(req), &req.body) {
        assert!("0123456789*#ABCD".contains(key.digit), "{:?}", key.digit);
    }
}

fn message(req: &Request) {
    let body = &req.body;
    if let Ok(decoded) = wire::decode(&content_type(req), body) {
        if let std::borrow::Cow::Borrowed(audio) = decoded.audio {
            let range = body.as_ptr_range();
            assert!(range.start <= audio.as_ptr() && audio.as_ptr_range().end <= range.end);
        }
    }
}

/// An answer built from the raw text must be a response a client can read.
fn check_reply(raw: &[u8], reply: &[u8]) {
    let method = method_of(raw);
    assert!(
        method.is_some(),
        "an answer to something that is not a request"
    );
    assert!(
        !method.unwrap().eq_ignore_ascii_case("ACK"),
        "an answer to an ACK"
    );
    let text = std::str::from_utf8(reply).expect("answers are UTF-8");
    let status = text.get(8..12).unwrap_or_default();
    assert!(
        text.starts_with("SIP/2.0 ") && ["400 ", "413 ", "501 "].contains(&status),
        "{text:?}"
    );
    assert!(text.ends_with("\r\nContent-Length: 0\r\n\r\n"), "{text:?}");
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        assert!(
            !line.contains(['\r', '\n']),
            "a bare line break inside an answer's header line: {line:?}"
        );
    }
}

//! What vmesh does with traffic that is not a well-behaved call: garbage,
//! truncated and oversized messages, malformed requests, unknown methods
//! and stray in-dialog requests. Never a crash, never a hang; an answer
//! whenever the request can be answered (RFC 3261 8.2, 21.4).

mod common;

use std::time::{Duration, Instant};

use common::raw_sip::{options_udp, request, unique_token};
use common::{
    assert_recording_matches, call_timeout, Server, SipTcp, SipUdp, TestNet, SPEECH_MS, SPEECH_ULAW,
};

const ANSWER: Duration = Duration::from_secs(2);

/// Deterministic noise (xorshift), so a failure can be replayed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn invite_text(server: &Server, local: std::net::SocketAddr, transport: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    request(
        "INVITE",
        &format!("sip:1001@{}", server.net.sip_addr()),
        local,
        transport,
        &["Content-Type: application/sdp"],
        sdp,
    )
}

#[test]
fn garbage_does_not_stop_the_server() {
    let server = Server::start(TestNet::allocate());
    let addr = server.net.sip_addr();
    let udp = SipUdp::bind(server.net.peer_ip, addr);
    let local = udp.local_addr();
    let invite = invite_text(&server, local, "UDP");

    // UDP: random datagrams, empty ones, NUL bytes, a request cut in the
    // middle of a header, a header without a colon, a 60 KB datagram.
    for seed in 1..=50 {
        udp.send(&noise(1 + (seed as usize * 37) % 1400, seed));
    }
    udp.send(b"");
    udp.send(&[0u8; 512]);
    udp.send(&invite.as_bytes()[..invite.len() / 3]);
    udp.send(
        invite
            .replacen("Max-Forwards: 70", "Max-Forwards 70", 1)
            .as_bytes(),
    );
    udp.send(b"INVITE sip:1001@x SIP/2.0\r\n\r\n");
    udp.send(b"SIP/2.0 200 OK\r\n\r\n");
    udp.send(&noise(60_000, 99));

    // TCP: noise then close, a body shorter than its Content-Length then
    // close, 100 KB of junk, and a connection that stalls half-way.
    let mut tcp = SipTcp::connect(addr);
    tcp.send(&noise(4096, 7));
    drop(tcp);
    let mut tcp = SipTcp::connect(addr);
    let short_body =
        invite_text(&server, local, "TCP").replacen("Content-Length: ", "Content-Length: 9", 1);
    tcp.send(short_body.as_bytes());
    drop(tcp);
    let mut tcp = SipTcp::connect(addr);
    tcp.send(&noise(100 * 1024, 11));
    drop(tcp);
    let mut stalled = SipTcp::connect(addr);
    let half = invite_text(&server, local, "TCP");
    stalled.send(&half.as_bytes()[..half.len() / 2]);

    // Still answering, promptly.
    let started = Instant::now();
    let answer = options_udp(server.net.peer_ip, addr, Duration::from_millis(500));
    assert_eq!(
        answer.as_ref().map(|r| r.status),
        Some(200),
        "OPTIONS after the garbage (within 500 ms)"
    );
    assert!(started.elapsed() < Duration::from_millis(500));

    // And still recording calls.
    server
        .sipp("uac_speech.xml", &["-s", "1001"], call_timeout(SPEECH_MS))
        .assert_success();
    let messages = server.wait_messages(1, Duration::from_secs(5));
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_recording_matches(&server, &messages[0], SPEECH_ULAW, SPEECH_MS, 0.03, 0.9);
    drop(stalled);
}

#[test]
fn malformed_but_answerable_requests_get_400() {
    let server = Server::start(TestNet::allocate());
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let local = udp.local_addr();
    let cases = [
        (
            "non-numeric Content-Length",
            request(
                "OPTIONS",
                &format!("sip:{}", server.net.sip_addr()),
                local,
                "UDP",
                &[],
                "",
            )
            .replacen("Content-Length: 0", "Content-Length: zero", 1),
        ),
        (
            "unparseable Contact",
            invite_text(&server, local, "UDP").replacen(
                &format!("Contact: <sip:5551234@{local};transport=udp>"),
                "Contact: <sip:@@::;;>>",
                1,
            ),
        ),
    ];
    for (what, text) in cases {
        let response = udp.transact(&text, ANSWER);
        assert_eq!(
            response.as_ref().map(|r| r.status),
            Some(400),
            "{what}: want 400 Bad Request, got {response:?}"
        );
    }
    assert!(server.messages().is_empty());
}

/// Sends an out-of-dialog `method` request and returns the answer.
fn ask(server: &Server, method: &str) -> common::SipResponse {
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let text = request(
        method,
        &format!("sip:1001@{}", server.net.sip_addr()),
        udp.local_addr(),
        "UDP",
        &[],
        "",
    );
    udp.transact(&text, ANSWER)
        .unwrap_or_else(|| panic!("no answer to {method}"))
}

fn assert_allow_lists_the_call_methods(response: &common::SipResponse) {
    for method in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"] {
        assert!(
            response.lists("Allow", method),
            "Allow lacks {method}: {}",
            response.raw
        );
    }
}

#[test]
fn unsupported_and_unknown_methods_get_405_with_allow() {
    let server = Server::start(TestNet::allocate());
    // A method SIP defines but vmesh does not serve: 405 with Allow
    // (RFC 3261 8.2.1).
    let response = ask(&server, "PUBLISH");
    assert_eq!(response.status, 405, "{}", response.raw);
    assert_allow_lists_the_call_methods(&response);
    // A method nobody defines is still a well-formed request, not a 400:
    // 405 with Allow, or 501 (RFC 3261 21.5.2) with Allow.
    let response = ask(&server, "FOO");
    assert!(
        matches!(response.status, 405 | 501),
        "FOO: want 405 (or 501) with Allow, got {}",
        response.raw
    );
    assert_allow_lists_the_call_methods(&response);
}

#[test]
fn options_gets_200_with_allow_accept_supported_over_udp_and_tcp() {
    let server = Server::start(TestNet::allocate());
    let udp_answer = options_udp(server.net.peer_ip, server.net.sip_addr(), ANSWER);
    let mut tcp = SipTcp::connect(server.net.sip_addr());
    let text = request(
        "OPTIONS",
        &format!("sip:{}", server.net.sip_addr()),
        tcp.local_addr(),
        "TCP",
        &["Accept: application/sdp"],
        "",
    );
    let tcp_answer = tcp.transact(&text, ANSWER);
    for (transport, answer) in [("UDP", udp_answer), ("TCP", tcp_answer)] {
        let response = answer.unwrap_or_else(|| panic!("no answer to OPTIONS over {transport}"));
        assert_eq!(response.status, 200, "{transport}: {}", response.raw);
        assert!(response.lists("Allow", "INVITE"), "{}", response.raw);
        assert!(response.lists("Allow", "BYE"), "{}", response.raw);
        assert!(
            response.lists("Accept", "application/sdp"),
            "{}",
            response.raw
        );
        assert!(response.header("Supported").is_some(), "{}", response.raw);
    }
}

#[test]
fn bye_for_an_unknown_dialog_gets_481() {
    let server = Server::start(TestNet::allocate());
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let text = request(
        "BYE",
        &format!("sip:1001@{}", server.net.sip_addr()),
        udp.local_addr(),
        "UDP",
        &[],
        "",
    )
    .replacen(
        &format!("To: <sip:1001@{}>", server.net.sip_addr()),
        &format!(
            "To: <sip:1001@{}>;tag={}",
            server.net.sip_addr(),
            unique_token()
        ),
        1,
    );
    let response = udp.transact(&text, ANSWER).expect("an answer to the BYE");
    assert_eq!(response.status, 481, "{}", response.raw);
}

#[test]
fn an_invite_without_contact_gets_400_saying_so() {
    let server = Server::start(TestNet::allocate());
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let local = udp.local_addr();
    let invite = invite_text(&server, local, "UDP");
    let contact = format!("Contact: <sip:5551234@{local};transport=udp>\r\n");
    let without = invite.replacen(&contact, "", 1);
    assert!(!without.contains("Contact"));
    let response = udp.transact(&without, ANSWER).expect("an answer");
    // RFC 3261 8.1.1.8: a dialog-creating request must carry a Contact.
    assert_eq!(response.status, 400, "{}", response.raw);
    assert!(
        response
            .header("Warning")
            .is_some_and(|w| w.contains("Contact")),
        "{}",
        response.raw
    );
    assert!(server.messages().is_empty());
    // The same INVITE with its Contact is a call.
    let response = udp.transact(&invite, ANSWER).expect("an answer");
    assert_eq!(response.status, 200, "{}", response.raw);
}

//! vmesh behind a real PBX-side peer, as README's "Pointing a PBX at vmesh"
//! describes: a caller (SIPp) calls user 1001 at Kamailio; Kamailio rings
//! the phone (a SIPp UAS that is busy, or rings and is never answered),
//! and its failure route redirects the call to vmesh with
//! `Diversion: <sip:1001@...>;reason=user-busy` (or `no-answer`). vmesh
//! answers through Kamailio, which Record-Routes, so the caller's ACK and
//! BYE reach vmesh through it too. The message must be stored for mailbox
//! 1001 with the diversion's reason and hold the audio the caller sent.
//!
//! Each test binds Kamailio to its own loopback address (the vmesh
//! server's address, port 5080) and the phone and caller to the test's
//! caller address, so the tests run in parallel.

mod common;
#[path = "kamailio/proxy.rs"]
mod proxy;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use common::sipp::{SippOutcome, SippRun, SippSetup};
use common::{
    assert_short_speech_recorded, call_timeout, field, Server, ServerConfig, TestNet,
    SPEECH_SHORT_MS,
};
use proxy::{wait_udp_bound, Kamailio, KamailioConfig};

/// Kamailio's port, on the vmesh server's address.
const PROXY_PORT: u16 = 5080;
/// The caller's SIP port, on the test's caller address.
const CALLER_PORT: u16 = 5070;
/// The phone's SIP port, on the test's caller address.
const PHONE_PORT: u16 = 5090;
/// How long the phone rings before Kamailio gives up on it (408).
const NO_ANSWER_MS: u64 = 2_000;

/// Calls 1001 at Kamailio while the phone plays `phone_scenario`; checks
/// both SIPp sides succeeded, that the dialog went through Kamailio, and
/// that one message for 1001 with the diversion `reason` holds what the
/// caller sent. Returns what the caller saw.
fn call_through_kamailio(phone_scenario: &str, pilot: bool, reason: &str) -> SippOutcome {
    let net = TestNet::allocate();
    let server = Server::start_with(
        net,
        ServerConfig {
            prompts: false,
            ..ServerConfig::default()
        },
    );
    let proxy_addr = SocketAddrV4::new(net.ip, PROXY_PORT);
    let phone_addr = SocketAddr::V4(SocketAddrV4::new(net.peer_ip, PHONE_PORT));
    // Declared after the server, so stopped before it.
    let kamailio = Kamailio::start(
        KamailioConfig {
            listen: proxy_addr,
            phone: phone_addr,
            vmesh: net.sip_addr(),
            no_answer_ms: NO_ANSWER_MS,
            pilot,
            registrar: None,
        },
        server.dir(),
    );

    let setup = |port: u16, media_port: u16| SippSetup {
        remote: proxy_addr.to_string(),
        local_ip: net.peer_ip.to_string(),
        local_port: port,
        media_port,
        log_dir: server.dir(),
    };
    let phone = SippRun::start(
        &setup(PHONE_PORT, 6100),
        phone_scenario,
        &[],
        Duration::from_secs(30),
    );
    wait_udp_bound(phone_addr, Duration::from_secs(5));
    let caller = SippRun::start(
        &setup(CALLER_PORT, 6000),
        "uac_pbx_caller.xml",
        &["-s", "1001"],
        call_timeout(SPEECH_SHORT_MS + NO_ANSWER_MS),
    )
    .wait();
    let phone = phone.wait();
    caller.assert_success();
    phone.assert_success();

    // The dialog's route set is Kamailio: the 200 carries its
    // Record-Route and the caller's ACK and BYE its Route.
    let proxy_uri = format!("sip:{proxy_addr}");
    let answers: Vec<_> = caller
        .received("SIP/2.0 200")
        .into_iter()
        .filter(|m| {
            header_lines(&m.text, "cseq")
                .iter()
                .any(|l| l.contains("INVITE"))
        })
        .collect();
    // A second 200 would be vmesh retransmitting it: the ACK did not
    // reach it through Kamailio.
    assert_eq!(
        answers.len(),
        1,
        "one 200 to the INVITE:\n{}",
        caller.messages_log
    );
    let answer = &answers[0];
    assert!(
        header_lines(&answer.text, "record-route")
            .iter()
            .any(|l| l.contains(&proxy_uri)),
        "vmesh's 200 (through Kamailio) lacks Kamailio's Record-Route:\n{}",
        answer.text
    );
    for method in ["ACK ", "BYE "] {
        let sent: Vec<_> = caller
            .messages()
            .into_iter()
            .filter(|m| !m.received && m.start_line().starts_with(method))
            .collect();
        assert_eq!(sent.len(), 1, "the caller sent one {method}");
        assert!(
            header_lines(&sent[0].text, "route")
                .iter()
                .any(|l| l.contains(&proxy_uri)),
            "the caller's {method}does not route through Kamailio:\n{}",
            sent[0].text
        );
    }

    let messages = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(messages.len(), 1, "one message stored: {messages:#?}");
    let message = messages.into_iter().next().expect("one message");
    assert_eq!(field(&message, "mailbox"), "1001", "{message:#}");
    assert_eq!(field(&message, "reason"), reason, "{message:#}");
    assert_short_speech_recorded(&server, &message);
    // The Request-URI vmesh got: the called user, or the pilot.
    let user = if pilot { "voicemail" } else { "1001" };
    let relayed = format!("sending sip:{user}@{proxy_addr} to vmesh");
    assert!(
        kamailio.log().contains(&relayed),
        "Kamailio did not log \"{relayed}\"\n{}",
        kamailio.log_tail()
    );
    caller
}

/// The lines of header `name` (case-insensitive) in a SIP message.
fn header_lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .collect()
}

#[test]
fn busy_phone_redirects_to_voicemail_with_user_busy() {
    let caller = call_through_kamailio("uas_busy.xml", false, "user-busy");
    assert!(
        caller.received("SIP/2.0 486").is_empty(),
        "Kamailio must not pass the phone's 486 on to the caller"
    );
}

#[test]
fn busy_phone_redirects_to_the_pilot_user_with_diversion() {
    call_through_kamailio("uas_busy.xml", true, "user-busy");
}

#[test]
fn unanswered_phone_redirects_to_voicemail_with_no_answer() {
    let caller = call_through_kamailio("uas_no_answer.xml", false, "no-answer");
    assert!(
        !caller.received("SIP/2.0 180").is_empty(),
        "the caller must hear the phone ring first"
    );
}

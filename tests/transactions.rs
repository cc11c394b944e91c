//! SIP transactions and dialogs as a peer sees them on the wire, driven by
//! hand: retransmitted requests absorbed (RFC 3261 17.2.2), many requests
//! on one TCP connection, an INVITE without an offer (RFC 3261 13.2.1),
//! Record-Route (12.1.1), capacity (503), the RTP timeout, the minimum
//! message length, and the TCP connection limits (idle timeout, 413).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::dialog::{ack_for_failure, split_header_values, Dialog};
use common::media::{sdp, sdp_audio_addr, sdp_payload_types, sdp_rtpmap, RtpSender};
use common::raw_sip::{options_udp, request, SipResponse};
use common::{
    assert_duration_close, assert_recording_matches, field, number, testdata, Server, ServerConfig,
    SipTcp, SipUdp, TestNet, SPEECH_SHORT_ULAW,
};

/// How long an answer may take.
const ANSWER: Duration = Duration::from_secs(2);
/// How long a stored message may take to appear after the call ends.
const STORE_WAIT: Duration = Duration::from_secs(5);
/// The A-law twin of the short speech file.
const SPEECH_SHORT_ALAW: &str = "speech-short-alaw.wav";
/// RFC 3261 T1: a UDP client retransmits a request this long after
/// sending it (Timer E) when no response came.
const T1: Duration = Duration::from_millis(500);
/// RTP payload types of RFC 3551.
const PCMU: u8 = 0;
const PCMA: u8 = 8;

/// The first `ms` of a G.711 file of testdata/ as RTP payload bytes.
fn g711_payload(name: &str, ms: u64) -> Vec<u8> {
    let mut bytes = common::audio::read_wav_data(&testdata(name));
    let len = (ms * 8) as usize;
    assert!(bytes.len() >= len, "{name} is shorter than {ms} ms");
    bytes.truncate(len);
    bytes
}

/// The next final response over UDP whose CSeq method is `method`,
/// skipping provisional responses and responses to other requests (such
/// as a late retransmission of the INVITE's 200).
fn response_to(udp: &SipUdp, method: &str, timeout: Duration) -> Option<SipResponse> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let response = udp.recv(left)?;
        let cseq_method = response
            .header("CSeq")
            .and_then(|c| c.split_whitespace().nth(1));
        if response.status >= 200 && cseq_method == Some(method) {
            return Some(response);
        }
    }
}

/// A caller over UDP with a media socket of its own.
struct Caller {
    udp: SipUdp,
    rtp: RtpSender,
    server: SocketAddr,
}

impl Caller {
    fn new(server: &Server) -> Caller {
        Caller {
            udp: SipUdp::bind(server.net.peer_ip, server.net.sip_addr()),
            rtp: RtpSender::bind(server.net.peer_ip),
            server: server.net.sip_addr(),
        }
    }

    /// An INVITE for mailbox 1001 with `extra_headers` and, if `offer`,
    /// a PCMU + telephone-event offer for our RTP socket.
    fn invite(&self, extra_headers: &[&str], offer: bool) -> String {
        let uri = format!("sip:1001@{}", self.server);
        if offer {
            let body = sdp(
                self.rtp.local_addr(),
                &[(PCMU, "PCMU/8000"), (101, "telephone-event/8000")],
            );
            let mut headers = extra_headers.to_vec();
            headers.push("Content-Type: application/sdp");
            request(
                "INVITE",
                &uri,
                self.udp.local_addr(),
                "UDP",
                &headers,
                &body,
            )
        } else {
            request(
                "INVITE",
                &uri,
                self.udp.local_addr(),
                "UDP",
                extra_headers,
                "",
            )
        }
    }

    /// Sends `invite` and returns its final response.
    fn send_invite(&self, invite: &str) -> SipResponse {
        self.udp
            .transact(invite, ANSWER)
            .unwrap_or_else(|| panic!("no final response to the INVITE:\n{invite}"))
    }

    /// INVITE with an offer, 200, ACK: the dialog and where to send RTP.
    fn establish(&self) -> (Dialog, SocketAddr) {
        let response = self.send_invite(&self.invite(&[], true));
        assert_eq!(response.status, 200, "{}", response.raw);
        let media = sdp_audio_addr(&response.body)
            .unwrap_or_else(|| panic!("no audio address in the answer: {}", response.raw));
        let dialog = Dialog::from_2xx(&response, self.udp.local_addr(), "UDP");
        self.udp.send(dialog.ack(None).as_bytes());
        (dialog, media)
    }

    /// Sends our BYE and asserts it is answered 200.
    fn hang_up(&self, dialog: &Dialog) {
        self.udp.send(dialog.bye().as_bytes());
        let response = response_to(&self.udp, "BYE", ANSWER).expect("an answer to the BYE");
        assert_eq!(response.status, 200, "{}", response.raw);
    }
}

fn one_message(server: &Server) -> serde_json::Value {
    let mut messages = server.wait_messages(1, STORE_WAIT);
    assert_eq!(messages.len(), 1, "want exactly one message: {messages:?}");
    messages.remove(0)
}

/// The headers a retransmitted response must repeat unchanged.
fn transaction_identity(response: &SipResponse) -> Vec<String> {
    let mut identity = vec![format!("{} {}", response.status, response.reason)];
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        identity.extend(response.headers_named(name).iter().map(|v| v.to_string()));
    }
    identity
}

#[test]
fn retransmitted_options_gets_the_same_answer() {
    let server = Server::start(TestNet::allocate());
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let options = request(
        "OPTIONS",
        &format!("sip:1001@{}", server.net.sip_addr()),
        udp.local_addr(),
        "UDP",
        &[],
        "",
    );
    let first = udp
        .transact(&options, ANSWER)
        .expect("an answer to OPTIONS");
    // The same request again, same branch, when a client whose 200 was
    // lost retransmits it (Timer E, T1 later). The server transaction
    // answers it with the same response (RFC 3261 17.2.2, Timer J), not as
    // a new request with a new To tag.
    std::thread::sleep(T1);
    let again = udp
        .transact(&options, ANSWER)
        .expect("an answer to the retransmitted OPTIONS");
    assert_eq!(first.status, 200, "{}", first.raw);
    assert!(first.to_tag().is_some(), "{}", first.raw);
    assert_eq!(
        transaction_identity(&first),
        transaction_identity(&again),
        "first answer:\n{}\nanswer to the retransmission:\n{}",
        first.raw,
        again.raw
    );
}

#[test]
fn retransmitted_bye_gets_the_same_answer_and_one_message_is_stored() {
    let server = Server::start(TestNet::allocate());
    let mut caller = Caller::new(&server);
    let (dialog, media) = caller.establish();
    let sent = caller
        .rtp
        .stream(media, PCMU, &g711_payload(SPEECH_SHORT_ULAW, 1500));

    let bye = dialog.bye();
    caller.udp.send(bye.as_bytes());
    let first = response_to(&caller.udp, "BYE", ANSWER).expect("an answer to the BYE");
    std::thread::sleep(T1);
    caller.udp.send(bye.as_bytes());
    let again = response_to(&caller.udp, "BYE", ANSWER)
        .expect("an answer to the retransmitted BYE (RFC 3261 17.2.2)");
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_eq!(
        transaction_identity(&first),
        transaction_identity(&again),
        "first answer:\n{}\nanswer to the retransmission:\n{}",
        first.raw,
        again.raw
    );

    let message = one_message(&server);
    let sent_ms = sent.as_millis() as u64;
    assert_duration_close("duration_ms", number(&message, "duration_ms"), sent_ms, 0.1);
    assert_recording_matches(&server, &message, SPEECH_SHORT_ULAW, sent_ms, 0.1, 0.9);
    // A later call is the marker: whatever the retransmitted BYE could have
    // set off (it came before this call began, which lasts 1.5 s) is stored
    // by the time this call's message is; then each call has exactly one.
    let mut later = Caller::new(&server);
    let (later_dialog, media) = later.establish();
    later
        .rtp
        .stream(media, PCMU, &g711_payload(SPEECH_SHORT_ULAW, 1500));
    later.hang_up(&later_dialog);
    let messages = server.wait_messages(2, STORE_WAIT);
    let mut call_ids: Vec<&str> = messages.iter().map(|m| field(m, "call_id")).collect();
    call_ids.sort_unstable();
    let mut want = vec![dialog.call_id.as_str(), later_dialog.call_id.as_str()];
    want.sort_unstable();
    assert_eq!(
        call_ids, want,
        "exactly one message per call: {messages:#?}"
    );
}

#[test]
fn one_tcp_connection_carries_many_requests() {
    let server = Server::start(TestNet::allocate());
    let mut tcp = SipTcp::connect(server.net.sip_addr());
    let options: Vec<String> = (1..=5)
        .map(|cseq| {
            request(
                "OPTIONS",
                &format!("sip:{}", server.net.sip_addr()),
                tcp.local_addr(),
                "TCP",
                &[],
                "",
            )
            .replacen("CSeq: 1 OPTIONS", &format!("CSeq: {cseq} OPTIONS"), 1)
        })
        .collect();

    // Three requests in one write (RFC 3261 18.3: Content-Length frames
    // them), then two more one at a time.
    assert!(
        tcp.send(options[..3].concat().as_bytes()),
        "write the three"
    );
    let mut responses = Vec::new();
    for _ in 0..3 {
        responses.push(tcp.recv(ANSWER));
    }
    for text in &options[3..] {
        assert!(tcp.send(text.as_bytes()), "write one more");
        responses.push(tcp.recv(ANSWER));
    }

    for (i, response) in responses.iter().enumerate() {
        let cseq = i + 1;
        let response = response
            .as_ref()
            .unwrap_or_else(|| panic!("no answer to OPTIONS {cseq} on the connection"));
        assert_eq!(response.status, 200, "OPTIONS {cseq}: {}", response.raw);
        assert_eq!(
            response.header("CSeq"),
            Some(format!("{cseq} OPTIONS").as_str()),
            "answers come in the order of the requests: {}",
            response.raw
        );
    }
}

#[test]
fn invite_without_offer_takes_the_answer_from_the_ack() {
    let server = Server::start(TestNet::allocate());
    let mut caller = Caller::new(&server);
    let response = caller.send_invite(&caller.invite(&[], false));
    assert_eq!(response.status, 200, "{}", response.raw);

    // Our 200 carries the offer (RFC 3261 13.2.1, RFC 3264).
    let offer = &response.body;
    let types = sdp_payload_types(offer);
    assert!(
        types.contains(&PCMU) && types.contains(&PCMA),
        "the offer must list PCMU (0) and PCMA (8): {}",
        response.raw
    );
    let event = sdp_rtpmap(offer, "telephone-event")
        .unwrap_or_else(|| panic!("the offer has no telephone-event: {}", response.raw));
    assert!(types.contains(&event), "{}", response.raw);
    let media = sdp_audio_addr(offer)
        .unwrap_or_else(|| panic!("no audio address in the offer: {}", response.raw));

    // The answer, in the ACK, picks PCMA.
    let dialog = Dialog::from_2xx(&response, caller.udp.local_addr(), "UDP");
    let answer = sdp(caller.rtp.local_addr(), &[(PCMA, "PCMA/8000")]);
    caller.udp.send(dialog.ack(Some(&answer)).as_bytes());
    let sent = caller
        .rtp
        .stream(media, PCMA, &g711_payload(SPEECH_SHORT_ALAW, 2000));
    caller.hang_up(&dialog);

    let message = one_message(&server);
    let sent_ms = sent.as_millis() as u64;
    assert_duration_close(
        "duration_ms",
        number(&message, "duration_ms"),
        sent_ms,
        0.03,
    );
    // The recording is the A-law stream decoded.
    assert_recording_matches(&server, &message, SPEECH_SHORT_ALAW, sent_ms, 0.03, 0.9);
    assert!(
        field(&message, "codec").eq_ignore_ascii_case("PCMA"),
        "the message's codec is the one the answer in the ACK chose: {message}"
    );
}

#[test]
fn record_route_is_copied_into_the_200_in_order() {
    let server = Server::start(TestNet::allocate());
    let caller = Caller::new(&server);
    let record_route = [
        "<sip:edge.pbx.example;lr;ftag=a1>",
        "<sip:core.pbx.example:5080;transport=udp;lr>",
    ];
    let invite = caller.invite(
        &[
            &format!("Record-Route: {}", record_route[0]),
            &format!("Record-Route: {}", record_route[1]),
        ],
        true,
    );
    let response = caller.send_invite(&invite);
    assert_eq!(response.status, 200, "{}", response.raw);
    // RFC 3261 12.1.1: every value copied, parameters included, in order.
    let copied = split_header_values(&response.headers_named("Record-Route"));
    assert_eq!(
        copied, record_route,
        "Record-Route of the 200:\n{}",
        response.raw
    );

    let mut dialog = Dialog::from_2xx(&response, caller.udp.local_addr(), "UDP");
    assert_eq!(dialog.route_set, [record_route[1], record_route[0]]);
    // We stand in for the last proxy: each proxy removes its own Route
    // entry (RFC 3261 16.4), so the requests reach vmesh without Route.
    dialog.route_set.clear();
    caller.udp.send(dialog.ack(None).as_bytes());
    caller.hang_up(&dialog);
}

/// Under an open files limit that cannot hold `max_calls`, vmesh takes
/// only the calls it can record (three descriptors each, after 256 of its
/// own and one per SIP connection it may accept), says so at start-up, and
/// answers the next call 503: every call it took is recorded whole, where
/// without the bound the calls above it would have been answered and then
/// failed to open their files.
#[test]
fn an_open_files_limit_lowers_the_calls_taken_at_once() {
    // (310 − 256 − 8 connections) / 3 = 15 calls, not max_calls' 100.
    const CALLS: usize = 15;
    let config = ServerConfig {
        max_calls: 100,
        open_files: Some(310),
        sip_lines: vec!["max_connections = 8".into()],
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("the open files limit holds fewer calls than sip.max_calls"))
        .unwrap_or_else(|| panic!("no start-up warning:\n{}", server.log_tail()));
    assert!(
        warning.contains(&format!("calls={CALLS}")) && warning.contains("open_files=310"),
        "{warning}"
    );
    let mut callers: Vec<Caller> = (0..CALLS).map(|_| Caller::new(&server)).collect();
    let dialogs: Vec<(Dialog, SocketAddr)> = callers.iter().map(Caller::establish).collect();

    let extra = Caller::new(&server);
    let invite = extra.invite(&[], true);
    let response = extra.send_invite(&invite);
    extra
        .udp
        .send(ack_for_failure(&invite, &response).as_bytes());
    assert_eq!(response.status, 503, "call {}: {}", CALLS + 1, response.raw);

    // Every call taken records 1.5 s of speech, all at once.
    let speech = g711_payload(SPEECH_SHORT_ULAW, 1500);
    std::thread::scope(|scope| {
        for (caller, (_, media)) in callers.iter_mut().zip(&dialogs) {
            let speech = &speech;
            scope.spawn(move || caller.rtp.stream(*media, PCMU, speech));
        }
    });
    for (caller, (dialog, _)) in callers.iter().zip(&dialogs) {
        caller.hang_up(dialog);
    }
    let messages = server.wait_messages(CALLS, STORE_WAIT);
    assert_eq!(messages.len(), CALLS, "{messages:?}");
    for message in &messages {
        assert_duration_close("a message", number(message, "duration_ms"), 1500, 0.05);
    }
    assert!(
        !server.log().contains("Too many open files"),
        "{}",
        server.log_tail()
    );

    // A place is free again once a call ended.
    let again = Caller::new(&server);
    let (dialog, _) = again.establish();
    again.hang_up(&dialog);
}

#[test]
fn over_capacity_invite_gets_503_with_retry_after() {
    let config = ServerConfig {
        max_calls: 1,
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    let first = Caller::new(&server);
    let (dialog, _) = first.establish();

    let second = Caller::new(&server);
    let invite = second.invite(&[], true);
    let response = second.send_invite(&invite);
    second
        .udp
        .send(ack_for_failure(&invite, &response).as_bytes());
    assert_eq!(
        response.status, 503,
        "a second call with max_calls = 1: {}",
        response.raw
    );
    let retry_after = response
        .header("Retry-After")
        .unwrap_or_else(|| panic!("503 without Retry-After: {}", response.raw));
    assert!(
        retry_after
            .split([';', '('])
            .next()
            .is_some_and(|s| s.trim().parse::<u32>().is_ok()),
        "Retry-After is delta-seconds (RFC 3261 20.33): {retry_after}"
    );

    // Once the first call ends its place is free again: the session lets
    // go of it before it puts the recording away, so once it has logged
    // its last word, a third call is taken.
    first.hang_up(&dialog);
    server.wait_calls_ended(1, STORE_WAIT);
    let third = Caller::new(&server);
    let (dialog, _) = third.establish();
    third.hang_up(&dialog);
}

#[test]
fn silent_caller_is_hung_up_after_the_rtp_timeout() {
    let config = ServerConfig {
        rtp_timeout_s: 2,
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    let mut caller = Caller::new(&server);
    let (dialog, media) = caller.establish();
    let sent = caller
        .rtp
        .stream(media, PCMU, &g711_payload(SPEECH_SHORT_ULAW, 1500));
    let silent_since = Instant::now();

    // vmesh sends its BYE to our Contact (the UDP socket of the INVITE).
    let bye = caller
        .udp
        .recv_request(Duration::from_secs(6))
        .expect("vmesh sends BYE after rtp_timeout_s without RTP");
    let waited = silent_since.elapsed();
    caller.udp.send(bye.response(200, "OK").as_bytes());
    assert_eq!(bye.method, "BYE", "{}", bye.raw);
    assert_eq!(bye.header("Call-ID"), Some(dialog.call_id.as_str()));
    assert!(
        waited >= Duration::from_millis(1800) && waited <= Duration::from_millis(3000),
        "the BYE came {waited:?} after the last RTP packet; rtp_timeout_s = 2"
    );

    let message = one_message(&server);
    let sent_ms = sent.as_millis() as u64;
    assert_duration_close("duration_ms", number(&message, "duration_ms"), sent_ms, 0.1);
    assert_recording_matches(&server, &message, SPEECH_SHORT_ULAW, sent_ms, 0.1, 0.9);
}

#[test]
fn message_shorter_than_the_minimum_is_not_stored() {
    let server = Server::start(TestNet::allocate());
    let mut caller = Caller::new(&server);
    let (dialog, media) = caller.establish();
    caller
        .rtp
        .stream(media, PCMU, &g711_payload(SPEECH_SHORT_ULAW, 400));
    caller.hang_up(&dialog);
    // The session's last word on the call: its recording was discarded.
    server.wait_calls_ended(1, STORE_WAIT);
    let messages = server.messages();
    assert!(
        messages.is_empty(),
        "0.4 s is under min_message_ms = 1000: {messages:?}"
    );
    assert!(
        server.log().contains("reason=TooShort"),
        "discarded as too short:\n{}",
        server.log_tail()
    );
}

#[test]
fn idle_tcp_connection_is_closed_and_a_busy_one_is_kept() {
    let config = ServerConfig {
        tcp_idle_timeout_s: Some(2),
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    let addr = server.net.sip_addr();
    let options = |tcp: &SipTcp| {
        request(
            "OPTIONS",
            &format!("sip:{addr}"),
            tcp.local_addr(),
            "TCP",
            &[],
            "",
        )
    };

    let mut idle = SipTcp::connect(addr);
    let mut busy = SipTcp::connect(addr);
    let text = options(&idle);
    let answer = idle.transact(&text, ANSWER);
    assert_eq!(
        answer.map(|r| r.status),
        Some(200),
        "OPTIONS on the idle one"
    );
    let idle_since = Instant::now();
    let watcher = std::thread::spawn(move || {
        let closed = idle.wait_closed(Duration::from_secs(6));
        (closed, idle_since.elapsed())
    });

    // The busy connection sends OPTIONS every 0.5 s for 4 s, twice the
    // idle timeout, and every one is answered.
    let busy_since = Instant::now();
    while busy_since.elapsed() < Duration::from_secs(4) {
        let text = options(&busy);
        let answer = busy.transact(&text, ANSWER);
        assert_eq!(
            answer.as_ref().map(|r| r.status),
            Some(200),
            "OPTIONS on the busy connection {:?} after it opened",
            busy_since.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let (closed, after) = watcher.join().expect("the idle watcher");
    assert!(closed, "the idle connection is still open after {after:?}");
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_millis(3500),
        "the idle connection was closed {after:?} after its last traffic; tcp_idle_timeout_s = 2"
    );
    let text = options(&busy);
    let answer = busy.transact(&text, ANSWER);
    assert_eq!(
        answer.map(|r| r.status),
        Some(200),
        "the busy connection stays open"
    );
}

#[test]
fn oversized_tcp_request_gets_413_and_the_connection_is_closed() {
    let server = Server::start(TestNet::allocate());
    let addr = server.net.sip_addr();
    let mut tcp = SipTcp::connect(addr);
    // Only the head: a Content-Length above sip.max_message_bytes (65536)
    // is enough to refuse it (RFC 3261 21.4.11), and framing cannot go on.
    let head = request(
        "OPTIONS",
        &format!("sip:{addr}"),
        tcp.local_addr(),
        "TCP",
        &[],
        "",
    )
    .replacen("Content-Length: 0", "Content-Length: 70000", 1);
    assert!(tcp.send(head.as_bytes()), "write the request head");
    let response = tcp
        .recv(ANSWER)
        .expect("an answer to the oversized request");
    assert_eq!(response.status, 413, "{}", response.raw);
    assert!(
        tcp.wait_closed(Duration::from_secs(2)),
        "the connection is closed after the 413"
    );

    let answer = options_udp(server.net.peer_ip, addr, ANSWER);
    assert_eq!(
        answer.map(|r| r.status),
        Some(200),
        "OPTIONS over UDP after"
    );
    let mut tcp = SipTcp::connect(addr);
    let text = request(
        "OPTIONS",
        &format!("sip:{addr}"),
        tcp.local_addr(),
        "TCP",
        &[],
        "",
    );
    let answer = tcp.transact(&text, ANSWER);
    assert_eq!(
        answer.map(|r| r.status),
        Some(200),
        "OPTIONS over a new TCP connection after"
    );
}

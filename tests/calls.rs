//! Calls into voicemail through SIPp and a real softphone (baresip), end
//! to end: what the caller sees on the wire and what vmesh stores.

mod common;

use std::time::{Duration, Instant};

use common::baresip::{Softphone, SoftphoneConfig};
use common::{
    assert_audio_matches, assert_duration_close, assert_recording_matches,
    assert_short_speech_recorded, call_timeout, field, number, read_wav_mono_i16, testdata, Server,
    ServerConfig, TestNet, SPEECH_MS, SPEECH_SHORT_MS, SPEECH_SHORT_ULAW, SPEECH_ULAW,
};

/// How long a stored message may take to appear after the call ends.
const STORE_WAIT: Duration = Duration::from_secs(5);

fn one_message(server: &Server) -> serde_json::Value {
    let mut messages = server.wait_messages(1, STORE_WAIT);
    assert_eq!(messages.len(), 1, "want exactly one message: {messages:?}");
    messages.remove(0)
}

/// Checks that a refused or abandoned call stored nothing, once the
/// server has logged `outcome`: the point where it dropped the call, after
/// which nothing can be recorded for it.
fn assert_nothing_stored(server: &Server, outcome: &str) {
    server.wait_log(outcome, 1, STORE_WAIT);
    let messages = server.messages();
    assert!(messages.is_empty(), "nothing may be stored: {messages:?}");
}

fn speech_call(transport_args: &[&str]) {
    let server = Server::start(TestNet::allocate());
    let mut args = vec!["-s", "1001"];
    args.extend_from_slice(transport_args);
    let outcome = server.sipp("uac_speech.xml", &args, call_timeout(SPEECH_MS));
    outcome.assert_success();

    let message = one_message(&server);
    assert_eq!(field(&message, "mailbox"), "1001");
    assert!(field(&message, "caller").contains("5551234"), "{message}");
    assert_eq!(field(&message, "caller_name"), "Test Caller");
    assert!(
        field(&message, "codec").eq_ignore_ascii_case("PCMU"),
        "{message}"
    );
    assert_eq!(number(&message, "sample_rate"), 8000);
    assert_eq!(message["partial"], serde_json::Value::Bool(false));
    let invite = outcome
        .messages()
        .into_iter()
        .find(|m| !m.received && m.start_line().starts_with("INVITE"))
        .expect("SIPp sent an INVITE");
    let call_id = invite
        .text
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID:"))
        .expect("INVITE has a Call-ID")
        .trim();
    assert_eq!(field(&message, "call_id"), call_id);
    assert_duration_close(
        "duration_ms",
        number(&message, "duration_ms"),
        SPEECH_MS,
        0.03,
    );
    // The stored audio is the μ-law stream decoded: compare with the
    // decoded μ-law file, not the original PCM.
    assert_recording_matches(&server, &message, SPEECH_ULAW, SPEECH_MS, 0.03, 0.9);
}

#[test]
fn speech_over_udp_is_recorded_faithfully() {
    speech_call(&[]);
}

#[test]
fn speech_over_tcp_is_recorded_faithfully() {
    speech_call(&["-t", "t1"]);
}

fn pilot_call(scenario: &str) -> serde_json::Value {
    let server = Server::start(TestNet::allocate());
    server
        .sipp(scenario, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    let message = one_message(&server);
    assert_eq!(
        field(&message, "mailbox"),
        "1001",
        "{scenario}: the mailbox must come from the redirection information, not the pilot"
    );
    // Every pilot scenario names the original called party sip:1001@pbx.example.
    assert_eq!(
        field(&message, "called"),
        "sip:1001@pbx.example",
        "{scenario}: called is the diverted-from party, not the pilot"
    );
    assert_short_speech_recorded(&server, &message);
    message
}

#[test]
fn pilot_call_with_diversion_goes_to_the_diverted_mailbox() {
    let message = pilot_call("uac_pilot_diversion.xml");
    assert_eq!(field(&message, "reason"), "user-busy");
}

#[test]
fn pilot_call_with_history_info_goes_to_the_retargeted_mailbox() {
    pilot_call("uac_pilot_history_info.xml");
}

#[test]
fn rfc4458_target_parameter_names_the_mailbox() {
    pilot_call("uac_pilot_target.xml");
}

#[test]
fn unknown_mailbox_is_refused_with_404() {
    let config = ServerConfig {
        accept: vec!["1000-1999".into()],
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    server
        .sipp("uac_404.xml", &["-s", "9999"], Duration::from_secs(15))
        .assert_success();
    assert_nothing_stored(&server, "mailbox not served here");
}

#[test]
fn offer_without_a_common_codec_is_refused_with_488() {
    let server = Server::start(TestNet::allocate());
    server
        .sipp("uac_488.xml", &["-s", "1001"], Duration::from_secs(15))
        .assert_success();
    assert_nothing_stored(&server, "SDP offer refused");
}

#[test]
fn cancel_before_answer_gets_487_and_stores_nothing() {
    let config = ServerConfig {
        answer_delay_ms: 3000,
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    let outcome = server.sipp("uac_cancel.xml", &["-s", "1001"], Duration::from_secs(15));
    outcome.assert_success();
    assert!(
        outcome.received("SIP/2.0 200").is_empty()
            || outcome
                .received("SIP/2.0 200")
                .iter()
                .all(|m| m.text.contains("CANCEL")),
        "the INVITE must not be answered with 200 after a CANCEL"
    );
    assert_nothing_stored(&server, "caller gave up before the answer");
}

#[test]
fn hash_key_ends_the_message_and_vmesh_hangs_up() {
    let server = Server::start(TestNet::allocate());
    let outcome = server.sipp(
        "uac_dtmf_hash.xml",
        &["-s", "1001"],
        call_timeout(SPEECH_SHORT_MS),
    );
    // The scenario succeeds only if vmesh sends the BYE after the '#'.
    outcome.assert_success();
    let message = one_message(&server);
    // The recording holds the speech before the '#', not the tone.
    assert_recording_matches(
        &server,
        &message,
        SPEECH_SHORT_ULAW,
        SPEECH_SHORT_MS,
        0.1,
        0.9,
    );
}

/// When the softphone's caller presses '#', counted from the call's
/// answer: well inside its 14.5 s of speech.
const KEY_PRESS_MS: u64 = 5_000;
/// How far the stored message's end may be from the key press. It may end
/// a little early (vmesh trims the silence before the key) or late:
/// baresip sends the digit as an RFC 4733 event of 180 ms alongside its
/// audio (same SSRC), and the message may run to the event's end.
const KEY_EARLY_MS: u64 = 200;
const KEY_LATE_MS: u64 = 400;

#[test]
fn hash_key_from_a_softphone_ends_the_message_and_vmesh_hangs_up() {
    let server = Server::start(TestNet::allocate());
    let mut phone = Softphone::start(
        SoftphoneConfig {
            ip: server.net.peer_ip,
            codec: "PCMU/8000/1".into(),
            source: testdata("speech-8k.wav"),
            user: "5551234".into(),
            display_name: "Test Softphone".into(),
            max_run: call_timeout(SPEECH_MS),
        },
        &server.dir().join("baresip"),
    );
    phone.dial(&format!("sip:1001@{}", server.net.sip_addr()));
    let established = phone.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    // Speak for a while, then press '#' mid-sentence.
    let press_at = established.at + Duration::from_millis(KEY_PRESS_MS);
    if let Some(wait) = press_at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    let pressed = Instant::now();
    phone.send_digit('#');
    let closed = phone.wait_event("CALL_CLOSED", Duration::from_secs(5));
    let key_ms = (pressed - established.at).as_millis() as u64;
    let bye_ms = (closed.at - pressed).as_millis() as u64;
    assert_eq!(
        closed.param, "Connection reset by peer",
        "the call must end by vmesh's BYE, not baresip's"
    );
    assert!(phone.quit().success(), "baresip exit status");

    let trace = phone.sip_trace();
    let me = phone.sip_addr().to_string();
    let vmesh = server.net.sip_addr().to_string();
    let answer = trace
        .iter()
        .find(|m| {
            m.from == vmesh
                && m.start_line().starts_with("SIP/2.0 200")
                && m.cseq_method() == Some("INVITE")
        })
        .expect("vmesh answered the INVITE with 200");
    assert!(
        answer.text.contains("telephone-event/8000"),
        "vmesh accepts RFC 4733 events: {}",
        answer.text
    );
    assert!(
        trace
            .iter()
            .any(|m| m.from == vmesh && m.start_line().starts_with("BYE ")),
        "vmesh sent the BYE"
    );
    assert!(
        trace.iter().any(|m| m.from == me
            && m.start_line().starts_with("SIP/2.0 200")
            && m.cseq_method() == Some("BYE")),
        "baresip answered vmesh's BYE with 200"
    );
    assert!(
        !trace
            .iter()
            .any(|m| m.from == me && m.start_line().starts_with("BYE ")),
        "baresip must not have hung up itself"
    );

    let message = one_message(&server);
    let duration = number(&message, "duration_ms");
    eprintln!("'#' pressed at {key_ms} ms, BYE {bye_ms} ms later, {duration} ms stored");
    assert!(
        duration + KEY_EARLY_MS >= key_ms && duration <= key_ms + KEY_LATE_MS,
        "the message must end at the key press ({key_ms} ms): {duration} ms stored"
    );
    // It holds the speech up to the key press (and the duration bounds
    // above allow for the event's length).
    let (rate, mut speech) = read_wav_mono_i16(&testdata("speech-8k.wav"));
    speech.truncate((key_ms * u64::from(rate) / 1000) as usize);
    let tolerance = (KEY_EARLY_MS.max(KEY_LATE_MS) as f64) / key_ms as f64;
    assert_audio_matches(&server, &message, rate, &speech, tolerance, 0.9);
}

#[test]
fn message_is_cut_at_max_length_and_vmesh_hangs_up() {
    let config = ServerConfig {
        max_message_s: 3,
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    server
        .sipp("uac_wait_bye.xml", &["-s", "1001"], Duration::from_secs(30))
        .assert_success();
    let message = one_message(&server);
    assert_duration_close("duration_ms", number(&message, "duration_ms"), 3000, 0.03);
    assert_recording_matches(&server, &message, SPEECH_ULAW, 3000, 0.03, 0.9);
}

#[test]
fn hold_and_resume_keep_one_message_covering_the_call() {
    let server = Server::start(TestNet::allocate());
    server
        .sipp(
            "uac_reinvite_hold.xml",
            &["-s", "1001"],
            call_timeout(SPEECH_MS),
        )
        .assert_success();
    let message = one_message(&server);
    assert_duration_close(
        "duration_ms",
        number(&message, "duration_ms"),
        SPEECH_MS,
        0.03,
    );
    assert_recording_matches(&server, &message, SPEECH_ULAW, SPEECH_MS, 0.03, 0.9);
}

/// The To tags of the 200 responses to the INVITE SIPp received.
fn invite_200_tags(outcome: &common::SippOutcome) -> Vec<String> {
    outcome
        .received("SIP/2.0 200")
        .iter()
        .filter_map(|m| common::SipResponse::parse(&m.text))
        .filter(|r| r.header("CSeq").is_some_and(|c| c.ends_with("INVITE")))
        .filter_map(|r| r.to_tag())
        .collect()
}

#[test]
fn unacknowledged_200_is_retransmitted_with_the_same_tag() {
    let server = Server::start(TestNet::allocate());
    let outcome = server.sipp(
        "uac_200_retransmit.xml",
        &["-s", "1001", "-nr"],
        call_timeout(SPEECH_SHORT_MS),
    );
    outcome.assert_success();
    let tags = invite_200_tags(&outcome);
    assert!(
        tags.len() >= 2,
        "want the 200 and its retransmission: {tags:?}"
    );
    assert!(tags.iter().all(|t| *t == tags[0]), "one dialog: {tags:?}");
    one_message(&server);
}

#[test]
fn retransmitted_invite_does_not_start_a_second_call() {
    let server = Server::start(TestNet::allocate());
    let outcome = server.sipp(
        "uac_invite_retransmit.xml",
        &["-s", "1001", "-nr"],
        call_timeout(SPEECH_SHORT_MS),
    );
    outcome.assert_success();
    let tags = invite_200_tags(&outcome);
    assert!(tags.iter().all(|t| *t == tags[0]), "one dialog: {tags:?}");
    // A call session logs "answering" as it answers. The call's message
    // is stored seconds after a session started by the retransmission
    // (within the call's first second) would have answered: by then the
    // log shows every session there is.
    server.wait_log("message stored", 1, STORE_WAIT);
    assert_eq!(
        server.calls_answered(),
        1,
        "one call session:\n{}",
        server.log_tail()
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "exactly one message: {messages:?}");
}

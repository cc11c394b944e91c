//! The server's life around calls in progress: a crash (kill -9) must not
//! lose what was recorded, and a graceful stop (SIGTERM) must hang up and
//! store the calls before exiting 0.

mod common;

use std::time::Duration;

use common::raw_sip::request;
use common::{
    aligned_correlation, duration_ms, field, number, read_wav_mono_i16, testdata, Server, SipUdp,
    TestNet, MAX_LAG_SAMPLES, SPEECH_MS, SPEECH_ULAW,
};

#[test]
fn kill9_during_a_call_keeps_a_partial_message_after_restart() {
    let mut server = Server::start(TestNet::allocate());
    let call = server.sipp_start(
        "uac_speech.xml",
        &["-s", "1001"],
        common::call_timeout(SPEECH_MS),
    );
    // Three seconds into the 14.5 s message (its recording holds 3 s of
    // 16-bit audio at 8 kHz), the server dies.
    server.wait_recording(44 + 3 * 8000 * 2, Duration::from_secs(10));
    server.kill9();
    drop(call);

    server.restart();
    let messages = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(
        messages.len(),
        1,
        "the interrupted message must be listed: {messages:?}"
    );
    let message = &messages[0];
    assert_eq!(
        message["partial"],
        serde_json::Value::Bool(true),
        "{message}"
    );
    assert_eq!(field(message, "mailbox"), "1001");
    let listed_ms = number(message, "duration_ms");
    assert!(listed_ms > 0, "a partial message has audio: {message}");

    let exported = server.export(field(message, "id"));
    let (rate, recorded) = read_wav_mono_i16(&exported);
    assert_eq!(rate, 8000);
    let recorded_ms = duration_ms(recorded.len(), rate);
    assert!(
        (1000..=7000).contains(&recorded_ms),
        "about 3 s were recorded before the crash, {recorded_ms} ms were kept"
    );
    // What was kept is what was sent so far.
    let (_, mut reference) = read_wav_mono_i16(&testdata(SPEECH_ULAW));
    reference.truncate(recorded.len() + MAX_LAG_SAMPLES);
    let (lag, ncc) = aligned_correlation(&reference, &recorded, MAX_LAG_SAMPLES);
    assert!(
        ncc > 0.9,
        "the partial recording does not match the speech sent: NCC {ncc:.3} at lag {lag}"
    );
}

#[test]
fn sigterm_hangs_up_stores_the_call_and_exits_0() {
    let mut server = Server::start(TestNet::allocate());
    let call = server.sipp_start("uac_wait_bye.xml", &["-s", "1001"], Duration::from_secs(30));
    // The call is being recorded (4 s of audio so far) when SIGTERM comes.
    server.wait_recording(44 + 4 * 8000 * 2, Duration::from_secs(10));
    server.send_sigterm();
    // Signals are handled asynchronously: an INVITE sent before the server
    // has seen SIGTERM is a call like any other. Wait until it is stopping.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !server.log().contains("stopping: refusing new calls") {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start stopping within 5 s of SIGTERM\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // A new call while stopping is refused (503), or finds the server gone;
    // it is never answered.
    let caller = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let invite = request(
        "INVITE",
        &format!("sip:1002@{}", server.net.sip_addr()),
        caller.local_addr(),
        "UDP",
        &["Content-Type: application/sdp"],
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    );
    if let Some(response) = caller.transact(&invite, Duration::from_secs(1)) {
        assert_eq!(
            response.status, 503,
            "a call while stopping: {}",
            response.raw
        );
    }

    // The caller's scenario succeeds only if vmesh sends a BYE.
    call.wait().assert_success();
    let status = server.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );

    // The server is down: the CLI reads the data directory directly.
    let messages = server.messages();
    assert_eq!(
        messages.len(),
        1,
        "the call in progress is stored: {messages:?}"
    );
    let message = &messages[0];
    let listed_ms = number(message, "duration_ms");
    assert!(
        (2500..=6000).contains(&listed_ms),
        "about 4 s were recorded before SIGTERM, listed {listed_ms} ms"
    );
    let exported = server.export(field(message, "id"));
    let (_, recorded) = read_wav_mono_i16(&exported);
    let (_, mut reference) = read_wav_mono_i16(&testdata(SPEECH_ULAW));
    reference.truncate(recorded.len() + MAX_LAG_SAMPLES);
    let (lag, ncc) = aligned_correlation(&reference, &recorded, MAX_LAG_SAMPLES);
    assert!(ncc > 0.9, "NCC {ncc:.3} at lag {lag}");
}

/// Waits until the server has opened a recording: its sidecar, written
/// when the ACK confirms the call, is in `recording/`.
fn wait_recording_opened(server: &Server) {
    let dir = server.data_dir().join("recording");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let opened = std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        });
        if opened {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recording opened within 10 s\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The one message listed: partial, for mailbox 1001, with no audio.
fn assert_one_empty_partial(messages: &[serde_json::Value]) {
    assert_eq!(
        messages.len(),
        1,
        "the answered call is listed: {messages:?}"
    );
    let message = &messages[0];
    assert_eq!(
        message["partial"],
        serde_json::Value::Bool(true),
        "{message}"
    );
    assert_eq!(field(message, "mailbox"), "1001");
    assert_eq!(number(message, "duration_ms"), 0, "{message}");
    assert_eq!(field(message, "format"), "wav", "{message}");
}

/// A crash before any of the caller's audio reached the disk (the caller
/// is silent here, so none ever does): the call was answered and its
/// recording opened, so it is listed after the restart, as an empty
/// partial message, never dropped.
#[test]
fn kill9_before_any_audio_reached_the_disk_still_lists_the_call() {
    let mut server = Server::start(TestNet::allocate());
    let call = server.sipp_start(
        "uac_mute_wait_bye.xml",
        &["-s", "1001"],
        Duration::from_secs(40),
    );
    wait_recording_opened(&server);
    server.kill9();
    drop(call);

    server.restart();
    assert_one_empty_partial(&server.wait_messages(1, Duration::from_secs(10)));
    assert!(
        server.log().contains("recovered a message after a crash"),
        "{}",
        server.log_tail()
    );
}

/// A graceful stop ends a call the caller had not finished: what it
/// recorded is stored as partial however short it is (here nothing: the
/// caller is silent), not discarded as a hang-up under min_message_ms.
#[test]
fn sigterm_stores_a_call_it_cut_short_as_partial() {
    let mut server = Server::start(TestNet::allocate());
    let call = server.sipp_start(
        "uac_mute_wait_bye.xml",
        &["-s", "1001"],
        Duration::from_secs(40),
    );
    wait_recording_opened(&server);
    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    // The caller's scenario succeeds only if vmesh sent its BYE.
    call.wait().assert_success();
    assert_one_empty_partial(&server.messages());
}

#[test]
fn sigterm_on_an_idle_server_exits_0() {
    let mut server = Server::start(TestNet::allocate());
    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
}

/// A caller that no longer answers anything (its phone is gone) when the
/// server is told to stop: the message is stored at once, not after the
/// BYE's 32 s of retransmissions, and the server exits 0.
#[test]
fn sigterm_stores_the_message_of_a_caller_that_no_longer_answers() {
    use common::dialog::Dialog;
    use common::media::{sdp, sdp_audio_addr, RtpSender};
    let mut server = Server::start(TestNet::allocate());
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let mut rtp = RtpSender::bind(server.net.peer_ip);
    let invite = request(
        "INVITE",
        &format!("sip:1001@{}", server.net.sip_addr()),
        udp.local_addr(),
        "UDP",
        &["Content-Type: application/sdp"],
        &sdp(rtp.local_addr(), &[(0, "PCMU/8000")]),
    );
    let ok = udp
        .transact(&invite, Duration::from_secs(3))
        .expect("an answer to the INVITE");
    assert_eq!(ok.status, 200, "{}", ok.raw);
    let media = sdp_audio_addr(&ok.body).expect("an audio address in the answer");
    udp.send(
        Dialog::from_2xx(&ok, udp.local_addr(), "UDP")
            .ack(None)
            .as_bytes(),
    );
    let mut speech = common::audio::read_wav_data(&testdata(common::SPEECH_SHORT_ULAW));
    speech.truncate(3 * 8000);
    rtp.stream(media, 0, &speech);
    // From here on the caller is silent and answers nothing.
    let stopped = std::time::Instant::now();
    server.send_sigterm();
    let messages = server.wait_messages(1, Duration::from_secs(8));
    assert_eq!(
        messages.len(),
        1,
        "stored without waiting for the BYE's answer: {messages:?}\n{}",
        server.log_tail()
    );
    let listed_ms = number(&messages[0], "duration_ms");
    assert!((2000..=3100).contains(&listed_ms), "listed {listed_ms} ms");
    let status = server.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(12),
        "stopping took {:?}",
        stopped.elapsed()
    );
}

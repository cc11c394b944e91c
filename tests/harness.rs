//! Checks of the test kit itself (no server): if these fail, the
//! end-to-end results mean nothing.

mod common;

use common::audio::{alaw_to_linear, ulaw_to_linear};
use common::raw_sip::{request, SipResponse};
use common::{aligned_correlation, read_wav_mono_i16, testdata, MAX_LAG_SAMPLES, SPEECH_MS};

#[test]
fn testdata_has_the_documented_lengths_and_formats() {
    for (name, ms) in [
        ("speech-8k.wav", SPEECH_MS),
        ("speech-ulaw.wav", SPEECH_MS),
        ("speech-alaw.wav", SPEECH_MS),
        ("speech-short-8k.wav", 3_000),
        ("speech-short-ulaw.wav", 3_000),
    ] {
        let (rate, samples) = read_wav_mono_i16(&testdata(name));
        assert_eq!(rate, 8000, "{name}");
        assert_eq!(samples.len() as u64, ms * 8, "{name}");
    }
}

#[test]
fn g711_expansion_matches_the_reference_points() {
    // ITU-T G.711: 0xFF/0x7F are μ-law zero, 0x00 the negative maximum;
    // A-law 0xD5 is +8 and 0x2A is the negative maximum.
    assert_eq!(ulaw_to_linear(0xFF), 0);
    assert_eq!(ulaw_to_linear(0x7F), 0);
    assert_eq!(ulaw_to_linear(0x00), -32124);
    assert_eq!(ulaw_to_linear(0x80), 32124);
    assert_eq!(alaw_to_linear(0xD5), 8);
    assert_eq!(alaw_to_linear(0x55), -8);
    assert_eq!(alaw_to_linear(0x2A), -32256);
}

#[test]
fn g711_files_decode_to_the_reference_speech() {
    let (_, reference) = read_wav_mono_i16(&testdata("speech-8k.wav"));
    for name in ["speech-ulaw.wav", "speech-alaw.wav"] {
        let (_, decoded) = read_wav_mono_i16(&testdata(name));
        let (lag, ncc) = aligned_correlation(&reference, &decoded, MAX_LAG_SAMPLES);
        assert_eq!(lag, 0, "{name}");
        assert!(ncc > 0.99, "{name}: NCC {ncc}");
    }
}

#[test]
fn correlation_finds_a_shift_and_rejects_other_speech() {
    let (_, reference) = read_wav_mono_i16(&testdata("speech-8k.wav"));
    // The recording starts 1000 samples late (125 ms of silence in front)
    // and stops 2 s early.
    let mut delayed = vec![0i16; 1000];
    delayed.extend_from_slice(&reference[..reference.len() - 16_000]);
    let (lag, ncc) = aligned_correlation(&reference, &delayed, MAX_LAG_SAMPLES);
    assert_eq!(lag, 1000);
    assert!(ncc > 0.999, "NCC {ncc}");

    // A recording that starts 600 samples into the message.
    let (lag, _) = aligned_correlation(&reference, &reference[600..], MAX_LAG_SAMPLES);
    assert_eq!(lag, -600);

    // Other speech does not correlate.
    let (_, other) = read_wav_mono_i16(&testdata("speech-short-8k.wav"));
    let (_, ncc) = aligned_correlation(&reference, &other, MAX_LAG_SAMPLES);
    assert!(ncc < 0.5, "unrelated speech gave NCC {ncc}");
}

#[test]
fn responses_parse_with_compact_headers() {
    let text = "SIP/2.0 405 Method Not Allowed\r\nv: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKx\r\n\
                t: <sip:1001@h>;tag=abc\r\nAllow: INVITE, ACK\r\nAllow: BYE,CANCEL,OPTIONS\r\nl: 0\r\n\r\n";
    let response = SipResponse::parse(text).expect("parses");
    assert_eq!(response.status, 405);
    assert_eq!(response.reason, "Method Not Allowed");
    assert_eq!(response.to_tag().as_deref(), Some("abc"));
    assert!(response.lists("Allow", "cancel"));
    assert!(!response.lists("Allow", "FOO"));
    assert!(response.header("Via").is_some());
    assert!(SipResponse::parse("INVITE sip:x SIP/2.0\r\n\r\n").is_none());
}

#[test]
fn requests_are_well_formed() {
    let local = "127.0.0.2:5070".parse().expect("address");
    let text = request(
        "OPTIONS",
        "sip:127.0.0.1",
        local,
        "UDP",
        &["Accept: application/sdp"],
        "",
    );
    assert!(text.starts_with("OPTIONS sip:127.0.0.1 SIP/2.0\r\n"));
    assert!(text.contains("\r\nCSeq: 1 OPTIONS\r\n"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
}

#[test]
fn requests_the_server_sent_before_a_response_are_noted() {
    // A stand-in server on loopback sends a BYE of its own, then the 200
    // to ours.
    let net = common::TestNet::allocate();
    let server = std::net::UdpSocket::bind(net.sip_addr()).expect("bind the stand-in");
    let client = common::SipUdp::bind(net.peer_ip, net.sip_addr());
    let ours = request(
        "BYE",
        &format!("sip:1001@{}", net.sip_addr()),
        client.local_addr(),
        "UDP",
        &[],
        "",
    );
    let theirs = request(
        "BYE",
        &format!("sip:caller@{}", client.local_addr()),
        net.sip_addr(),
        "UDP",
        &[],
        "",
    );
    let responder = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let (n, from) = server.recv_from(&mut buf).expect("our BYE");
        let bye = common::raw_sip::SipRequest::parse(&String::from_utf8_lossy(&buf[..n]))
            .expect("a request");
        server.send_to(theirs.as_bytes(), from).unwrap();
        server
            .send_to(bye.response(200, "OK").as_bytes(), from)
            .unwrap();
    });
    let (requests, response) =
        client.transact_noting_requests(&ours, std::time::Duration::from_secs(2));
    responder.join().unwrap();
    assert_eq!(response.map(|r| r.status), Some(200));
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "BYE");
}

#[test]
fn the_digest_check_recomputes_a_response() {
    // RFC 7616 §3.9.1's SHA-256 example, as a SIP client would send it.
    let challenge = common::digest::Challenge::parse(
        "Digest realm=\"http-auth@example.org\", qop=\"auth\", algorithm=SHA-256, \
         nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\"",
    );
    let sent = "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
                uri=\"/dir/index.html\", algorithm=SHA-256, \
                nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
                cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
                response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\"";
    challenge.check(sent, "Mufasa", "Circle of Life", "GET");
    let wrong = std::panic::catch_unwind(|| challenge.check(sent, "Mufasa", "guess", "GET"));
    assert!(wrong.is_err(), "a wrong password must fail the check");
}

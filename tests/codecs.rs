//! Wideband calls end to end: a caller that offers only G.722, or only Opus
//! (RFC 7587), sends 10 s of real speech encoded by the project's own
//! encoders as paced RTP, hangs up, and the stored message must be as long
//! as what was sent and sound like it, at 16 kHz.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::dialog::Dialog;
use common::media::{sdp_audio_addr, sdp_rtpmap};
use common::raw_sip::request;
use common::{
    aligned_correlation, assert_duration_close, duration_ms, field, read_wav_mono_i16, testdata,
    Server, ServerConfig, SipUdp, TestNet,
};
use vmesh::audio::resample;
use vmesh::media::{Codec, Encoder, OpusRate};

/// How long an answer may take.
const ANSWER: Duration = Duration::from_secs(2);
/// How long a stored message may take to appear after the call ends.
const STORE_WAIT: Duration = Duration::from_secs(5);
/// The speech sent: the first 10 s of testdata/speech-8k.wav.
const SENT_MS: u64 = 10_000;
/// The recording rate of a wideband call.
const WIDEBAND: u32 = 16_000;
/// Lags searched when aligning: ±400 ms at 16 kHz.
const MAX_LAG: usize = 6_400;
/// The payload type the caller offers Opus on (any dynamic one will do).
const OPUS_PT: u8 = 102;
/// The caller's telephone-event types, one per clock rate.
const EVENTS_8K: u8 = 101;
const EVENTS_48K: u8 = 100;

/// The reference speech: 10 s of the 8 kHz test file, upsampled to 16 kHz.
fn speech_16k() -> Vec<i16> {
    let (rate, mut speech) = read_wav_mono_i16(&testdata("speech-8k.wav"));
    speech.truncate((SENT_MS * u64::from(rate) / 1000) as usize);
    resample(&speech, rate, WIDEBAND).expect("upsample the speech to 16 kHz")
}

/// An SDP offer of one codec plus the telephone-event of its clock rate.
fn offer(rtp: SocketAddr, codec: Codec, payload_type: u8) -> String {
    let (events, rate) = match codec {
        Codec::Opus(_) => (EVENTS_48K, 48_000),
        _ => (EVENTS_8K, 8000),
    };
    let mut body = format!(
        "v=0\r\no=- 7 7 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {payload_type} {events}\r\n",
        ip = rtp.ip(),
        port = rtp.port(),
    );
    match codec {
        Codec::Opus(_) => body.push_str(&format!(
            "a=rtpmap:{payload_type} opus/48000/2\r\n\
             a=fmtp:{payload_type} useinbandfec=1; maxplaybackrate=16000; sprop-maxcapturerate=16000; stereo=0\r\n"
        )),
        _ => body.push_str(&format!("a=rtpmap:{payload_type} G722/8000\r\n")),
    }
    body.push_str(&format!(
        "a=rtpmap:{events} telephone-event/{rate}\r\na=fmtp:{events} 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    ));
    body
}

/// Sends `pcm` (16 kHz) encoded in `codec` as RTP paced on the wall clock
/// at 20 ms, each packet at its own time from the first so the stream
/// does not drift. Returns the audio time sent.
fn stream(
    socket: &UdpSocket,
    dest: SocketAddr,
    codec: Codec,
    payload_type: u8,
    pcm: &[i16],
) -> u64 {
    let mut encoder = Encoder::new(codec).expect("an encoder for the call's codec");
    let (ssrc, mut seq, mut ts) = (0x0C0D_EC00_u32, 4000u16, 0x1234_5678u32);
    let start = Instant::now();
    let mut frames = 0u64;
    let mut payload = Vec::new();
    for (i, frame) in pcm.chunks_exact(encoder.frame_samples()).enumerate() {
        let due = start + Duration::from_millis(20 * i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        payload.clear();
        encoder.encode(frame, &mut payload).expect("encode a frame");
        let marker = if i == 0 { 0x80 } else { 0 };
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80);
        packet.push(marker | payload_type);
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&ts.to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(&payload);
        socket.send_to(&packet, dest).expect("send an RTP packet");
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(encoder.frame_timestamp_step());
        frames += 1;
    }
    frames * 20
}

/// A server whose profile records at once (no greeting or beep).
fn server(codecs: &[&str]) -> Server {
    Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            codecs: codecs.iter().map(|c| (*c).to_owned()).collect(),
            prompts: false,
            ..ServerConfig::default()
        },
    )
}

/// Calls mailbox 1001 offering only `codec`, streams the speech, hangs up
/// and checks the stored message. Returns (duration in ms, NCC).
fn call_with(codec: Codec, payload_type: u8, answer_name: &str, min_ncc: f64) -> (u64, f64) {
    let server = server(&["OPUS", "G722", "PCMU", "PCMA"]);
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let rtp = UdpSocket::bind((server.net.peer_ip, 0)).expect("bind the caller's RTP socket");
    let uri = format!("sip:1001@{}", server.net.sip_addr());
    let body = offer(rtp.local_addr().expect("RTP address"), codec, payload_type);
    let invite = request(
        "INVITE",
        &uri,
        udp.local_addr(),
        "UDP",
        &["Content-Type: application/sdp"],
        &body,
    );
    let response = udp
        .transact(&invite, ANSWER)
        .unwrap_or_else(|| panic!("no final response to the INVITE:\n{invite}"));
    assert_eq!(response.status, 200, "{}", response.raw);
    assert_eq!(
        sdp_rtpmap(&response.body, answer_name),
        Some(payload_type),
        "the answer keeps our payload type: {}",
        response.body
    );
    let media = sdp_audio_addr(&response.body).expect("an audio address in the answer");
    let dialog = Dialog::from_2xx(&response, udp.local_addr(), "UDP");
    udp.send(dialog.ack(None).as_bytes());

    let speech = speech_16k();
    let sent_ms = stream(&rtp, media, codec, payload_type, &speech);
    assert_eq!(sent_ms, SENT_MS);
    udp.send(dialog.bye().as_bytes());
    assert_eq!(
        udp.final_response_to("BYE", ANSWER)
            .expect("a final response to BYE")
            .status,
        200
    );

    let messages = server.wait_messages(1, STORE_WAIT);
    assert_eq!(messages.len(), 1, "want exactly one message: {messages:?}");
    let message = &messages[0];
    assert!(
        field(message, "codec").eq_ignore_ascii_case(codec.name()),
        "{message}"
    );
    let exported = server.export(field(message, "id"));
    let (rate, recorded) = read_wav_mono_i16(&exported);
    assert_eq!(rate, WIDEBAND, "a wideband call is recorded at 16 kHz");
    let recorded_ms = duration_ms(recorded.len(), rate);
    assert_duration_close("recorded audio", recorded_ms, SENT_MS, 0.03);
    let (lag, ncc) = aligned_correlation(&speech, &recorded, MAX_LAG);
    eprintln!(
        "{}: {recorded_ms} ms recorded for {SENT_MS} ms sent, NCC {ncc:.4} at lag {lag} samples",
        codec.name()
    );
    assert!(
        ncc > min_ncc,
        "{} recording does not match the speech: NCC {ncc:.3} at lag {lag} (want > {min_ncc})",
        codec.name()
    );
    (recorded_ms, ncc)
}

#[test]
fn a_g722_call_is_recorded_at_16_khz() {
    call_with(Codec::G722, 9, "G722", 0.9);
}

#[test]
fn an_opus_call_is_recorded_at_16_khz() {
    call_with(Codec::Opus(OpusRate::Wideband), OPUS_PT, "opus", 0.8);
}

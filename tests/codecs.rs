//! Every codec vmesh answers, from a real softphone: baresip (see
//! tests/common/baresip.rs for how it is set up) calls mailbox 1001
//! offering one codec only (Opus RFC 7587, G.722, PCMU or PCMA, each with
//! RFC 4733 telephone-event), plays 14.5 s of speech as its microphone and
//! hangs up at the end of the file. The stored message must name the
//! codec of the call, be as long as the speech, and sound like it: the
//! export is compared with the speech baresip played by aligned normalized
//! cross-correlation. Nothing here encodes or decodes with vmesh's own
//! codecs: baresip encodes, sox makes the files it plays, and the export
//! is read as plain PCM.
//!
//! The profile has every codec (`OPUS`, `G722`, `PCMU`, `PCMA`) and no
//! greeting or beep (`media.prompts = false`), so recording starts when
//! the call is answered, as baresip starts playing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::baresip::{Softphone, SoftphoneConfig, TracedSip};
use common::media::sdp_rtpmap;
use common::{
    assert_audio_matches, assert_duration_close, audio::ncc_at, field, number, read_wav_mono_i16,
    testdata, Server, ServerConfig, TestNet,
};

/// The speech baresip plays: 14.5 s, at 8 kHz for G.711 and 16 kHz for
/// the wideband codecs.
const SPEECH_8K: &str = "speech-8k.wav";
const SPEECH_16K: &str = "speech-16k.wav";
const SPEECH_MS: u64 = 14_500;
/// How long baresip may take to get its call answered.
const ANSWER: Duration = Duration::from_secs(5);
/// How long after the end of its file baresip must have hung up.
const HANGUP: Duration = Duration::from_secs(5);
/// How long a stored message may take to appear after the call ends.
const STORE_WAIT: Duration = Duration::from_secs(5);
/// The duration tolerance of every speech call in the suite.
const DURATION_TOLERANCE: f64 = 0.03;

/// The least NCC of a wideband recording's 4-8 kHz band against the
/// speech's, at the lag that aligns the whole band. G.722 codes this band
/// with 2 bits a sample (ITU-T G.722 §1.4): ffmpeg's own G.722 round trip
/// of this speech gives 0.92 there, a decoder that drops it about 0.
const MIN_HIGH_BAND_NCC: f64 = 0.7;

/// One codec's call: what baresip offers, what vmesh must store.
struct CodecCall {
    /// The codec as baresip's account names it, NAME/RATE/CHANNELS with
    /// the sampling rate (G.722 is "G722/16000/1" there, not its RTP clock
    /// rate 8000). A name it does not know makes baresip offer every codec,
    /// which the test catches.
    offer: &'static str,
    /// The codec name vmesh stores (compared ignoring case).
    stored: &'static str,
    /// The rate vmesh records this codec at.
    rate: u32,
    /// The least NCC of the recording against the speech (measured: G.711
    /// 0.9999, G.722 0.999, Opus at 32 kbit/s 0.995).
    min_ncc: f64,
}

/// Writes `speech` (a testdata file) as the 16-bit WAV baresip's `aufile`
/// needs for a codec of `rate` and `channels`, with sox.
fn microphone_file(speech: &str, rate: u32, channels: u32, dir: &Path) -> PathBuf {
    let out = dir.join(format!("microphone-{rate}-{channels}.wav"));
    let status = Command::new("sox")
        .args(["-V1", "-D"])
        .arg(testdata(speech))
        .args([
            "-r",
            &rate.to_string(),
            "-c",
            &channels.to_string(),
            "-b",
            "16",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("run sox ({e}): the softphone tests need it (Debian package sox)")
        });
    assert!(status.success(), "sox could not make {}", out.display());
    out
}

/// The 4-8 kHz band of a 16 kHz WAV file, filtered by sox.
fn high_band(wav: &Path, dir: &Path) -> Vec<i16> {
    let out = dir.join(format!(
        "high-band-{}",
        wav.file_name().expect("a file name").to_string_lossy()
    ));
    let status = Command::new("sox")
        .args(["-V1", "-D"])
        .arg(wav)
        .arg(&out)
        .args(["sinc", "4500"])
        .status()
        .unwrap_or_else(|e| panic!("run sox ({e})"));
    assert!(status.success(), "sox could not filter {}", wav.display());
    read_wav_mono_i16(&out).1
}

/// The messages in baresip's SIP trace it sent (`sent`) or received.
fn traced<'a>(trace: &'a [TracedSip], phone: &Softphone, sent: bool) -> Vec<&'a TracedSip> {
    let me = phone.sip_addr().to_string();
    trace.iter().filter(|m| (m.from == me) == sent).collect()
}

/// The encoding names of an SDP's audio formats, in the m= line's order,
/// lower case.
fn offered_codecs(sip: &str) -> Vec<String> {
    let formats: Vec<&str> = sip
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .map(|m| m.split_whitespace().skip(2).collect())
        .unwrap_or_default();
    formats
        .iter()
        .map(|pt| {
            let prefix = format!("a=rtpmap:{pt} ");
            sip.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|map| map.split('/').next())
                .unwrap_or(pt)
                .to_ascii_lowercase()
        })
        .collect()
}

/// Calls 1001 from baresip offering `call.offer` with the speech as its
/// microphone and checks the call and the stored message; prints what it
/// measured.
fn softphone_call(call: CodecCall) {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            codecs: ["OPUS", "G722", "PCMU", "PCMA"].map(String::from).to_vec(),
            prompts: false,
            ..ServerConfig::default()
        },
    );
    // The file baresip plays and the reference it is compared with.
    let (speech, source) = match call.offer {
        "opus/48000/2" => (
            SPEECH_16K,
            microphone_file(SPEECH_16K, 48_000, 2, server.dir()),
        ),
        "G722/16000/1" => (SPEECH_16K, testdata(SPEECH_16K)),
        _ => (SPEECH_8K, testdata(SPEECH_8K)),
    };
    let (reference_rate, reference) = read_wav_mono_i16(&testdata(speech));
    assert_eq!(
        reference_rate, call.rate,
        "the reference is at the recording rate"
    );

    let mut phone = Softphone::start(
        SoftphoneConfig {
            ip: server.net.peer_ip,
            codec: call.offer.to_owned(),
            source,
            user: "5551234".into(),
            display_name: "Test Softphone".into(),
            max_run: Duration::from_millis(SPEECH_MS) + Duration::from_secs(30),
        },
        &server.dir().join("baresip"),
    );
    phone.dial(&format!("sip:1001@{}", server.net.sip_addr()));
    let established = phone.wait_event("CALL_ESTABLISHED", ANSWER);
    let closed = phone.wait_event("CALL_CLOSED", Duration::from_millis(SPEECH_MS) + HANGUP);
    assert_eq!(
        closed.param, "end of file",
        "baresip must hang up itself, at the end of its file"
    );
    let played = closed.at - established.at;
    assert!(
        played >= Duration::from_millis(SPEECH_MS - 100),
        "baresip hung up after {played:?}, before its {SPEECH_MS} ms file ended"
    );
    assert!(phone.quit().success(), "baresip exit status");

    // On the wire: one codec offered from the test's address only, the
    // same codec answered, baresip's BYE answered 200.
    let trace = phone.sip_trace();
    let sent = traced(&trace, &phone, true);
    let received = traced(&trace, &phone, false);
    let invite = sent
        .iter()
        .find(|m| m.start_line().starts_with("INVITE "))
        .expect("baresip sent an INVITE");
    let codec_name = call.offer.split('/').next().expect("a codec name");
    assert_eq!(
        offered_codecs(&invite.text),
        [codec_name.to_ascii_lowercase(), "telephone-event".into()],
        "baresip offers the codec under test and RFC 4733 events only"
    );
    let own_address = format!("c=IN IP4 {}", server.net.peer_ip);
    assert!(
        invite.text.lines().any(|l| l == own_address),
        "the offer's media address is the test's: {}",
        invite.text
    );
    assert!(
        trace.iter().all(|m| {
            let ours = [
                phone.sip_addr().to_string(),
                server.net.sip_addr().to_string(),
            ];
            ours.contains(&m.from) && ours.contains(&m.to)
        }),
        "baresip used an address other than the test's"
    );
    let answer = received
        .iter()
        .find(|m| m.start_line().starts_with("SIP/2.0 200") && m.cseq_method() == Some("INVITE"))
        .expect("vmesh answered the INVITE with 200");
    // RFC 3264 §6.1: the answer keeps the offer's payload type.
    let offered = sdp_rtpmap(&invite.text, codec_name).expect("the offer maps its codec");
    assert_eq!(
        sdp_rtpmap(&answer.text, codec_name),
        Some(offered),
        "vmesh answers {codec_name} on the offer's payload type: {}",
        answer.text
    );
    assert!(
        sent.iter().any(|m| m.start_line().starts_with("BYE ")),
        "baresip sent the BYE"
    );
    assert!(
        received
            .iter()
            .any(|m| m.start_line().starts_with("SIP/2.0 200") && m.cseq_method() == Some("BYE")),
        "vmesh answered baresip's BYE with 200"
    );

    let messages = server.wait_messages(1, STORE_WAIT);
    assert_eq!(messages.len(), 1, "want exactly one message: {messages:?}");
    let message = &messages[0];
    assert!(
        field(message, "codec").eq_ignore_ascii_case(call.stored),
        "the stored codec is the call's ({}): {message}",
        call.stored
    );
    assert_eq!(number(message, "sample_rate"), u64::from(call.rate));
    assert!(field(message, "caller").contains("5551234"), "{message}");
    assert_eq!(field(message, "caller_name"), "Test Softphone");
    let checked = assert_audio_matches(
        &server,
        message,
        call.rate,
        &reference,
        DURATION_TOLERANCE,
        call.min_ncc,
    );
    assert_duration_close(
        "duration_ms",
        number(message, "duration_ms"),
        checked.expected_ms,
        DURATION_TOLERANCE,
    );
    if call.rate == 16_000 {
        // Wideband means the 4-8 kHz band is kept too, not only the
        // telephone band that carries most of the energy and so the NCC.
        let band = high_band(&server.export(field(message, "id")), server.dir());
        let reference_band = high_band(&testdata(speech), server.dir());
        let ncc = ncc_at(&reference_band, &band, checked.lag);
        eprintln!("{}: 4-8 kHz band NCC {ncc:.4}", call.stored);
        assert!(
            ncc > MIN_HIGH_BAND_NCC,
            "{}: the 4-8 kHz band of the recording does not match the speech's: \
             NCC {ncc:.3} (want > {MIN_HIGH_BAND_NCC})",
            call.stored
        );
    }
    eprintln!(
        "{}: {} ms recorded ({} ms listed) for {} ms of speech, NCC {:.4} at lag {}",
        call.stored,
        checked.recorded_ms,
        number(message, "duration_ms"),
        checked.expected_ms,
        checked.ncc,
        checked.lag
    );
}

#[test]
fn an_opus_call_from_a_softphone_is_recorded_at_16_khz() {
    softphone_call(CodecCall {
        offer: "opus/48000/2",
        stored: "OPUS",
        rate: 16_000,
        min_ncc: 0.95,
    });
}

#[test]
fn a_g722_call_from_a_softphone_is_recorded_at_16_khz() {
    softphone_call(CodecCall {
        offer: "G722/16000/1",
        stored: "G722",
        rate: 16_000,
        min_ncc: 0.98,
    });
}

#[test]
fn a_pcmu_call_from_a_softphone_is_recorded_at_8_khz() {
    softphone_call(CodecCall {
        offer: "PCMU/8000/1",
        stored: "PCMU",
        rate: 8_000,
        min_ncc: 0.98,
    });
}

#[test]
fn a_pcma_call_from_a_softphone_is_recorded_at_8_khz() {
    softphone_call(CodecCall {
        offer: "PCMA/8000/1",
        stored: "PCMA",
        rate: 8_000,
        min_ncc: 0.98,
    });
}

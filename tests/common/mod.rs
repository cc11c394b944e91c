//! The end-to-end test kit: a vmesh server per test on loopback addresses
//! of its own, SIPp scenarios against it, a raw SIP client for malformed
//! traffic, the CLI, and audio comparison of what was recorded with what
//! was sent.
//!
//! Each integration test file includes this module and uses a part of it,
//! so unused items are expected.
#![allow(dead_code, unused_imports)]

pub mod audio;
pub mod baresip;
pub mod dialog;
pub mod digest;
pub mod media;
pub mod memory;
pub mod mesh;
pub mod net;
pub mod netns;
pub mod phone;
pub mod process;
pub mod raw_sip;
pub mod relay;
pub mod server;
pub mod sipp;
pub mod tls_sip;
pub mod transfer;

use std::path::PathBuf;
use std::time::Duration;

pub use audio::{aligned_correlation, assert_duration_close, duration_ms, read_wav_mono_i16};
pub use net::TestNet;
pub use raw_sip::{SipResponse, SipTcp, SipUdp};
pub use server::{cli, Server, ServerConfig};
pub use sipp::SippOutcome;

/// The speech reference streamed by uac_speech.xml, as sent on the wire.
pub const SPEECH_ULAW: &str = "speech-ulaw.wav";
/// Its length in milliseconds (scripts/make-testdata.sh makes it exact).
pub const SPEECH_MS: u64 = 14_500;
/// The short speech file of the 3 s scenarios.
pub const SPEECH_SHORT_ULAW: &str = "speech-short-ulaw.wav";
/// Its length in milliseconds.
pub const SPEECH_SHORT_MS: u64 = 3_000;
/// Lags searched when aligning a recording with what was sent: ±400 ms.
pub const MAX_LAG_SAMPLES: usize = 3_200;

/// The repository root (tests/sipp and testdata live under it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under testdata/.
pub fn testdata(name: &str) -> PathBuf {
    repo_root().join("testdata").join(name)
}

/// A generous bound for one SIPp call of `audio_ms` of speech.
pub fn call_timeout(audio_ms: u64) -> Duration {
    Duration::from_millis(audio_ms + 20_000)
}

/// The string field `key` of a message object from `messages list --json`.
pub fn field<'a>(message: &'a serde_json::Value, key: &str) -> &'a str {
    message
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("message has no string field {key}: {message}"))
}

/// The integer field `key` of a message object.
pub fn number(message: &serde_json::Value, key: &str) -> u64 {
    message
        .get(key)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("message has no integer field {key}: {message}"))
}

/// Checks a stored message against audio that was sent: the export is a
/// 16-bit mono 8 kHz WAV, its duration is within `tolerance` of
/// `sent_ms`, and aligned against the μ-law-decoded `sent_wav` (only its
/// first `sent_ms`) its NCC exceeds `min_ncc`. Returns (lag, ncc).
pub fn assert_recording_matches(
    server: &Server,
    message: &serde_json::Value,
    sent_wav: &str,
    sent_ms: u64,
    tolerance: f64,
    min_ncc: f64,
) -> (i64, f64) {
    let (rate, mut reference) = read_wav_mono_i16(&testdata(sent_wav));
    reference.truncate((sent_ms * u64::from(rate) / 1000) as usize);
    let checked = assert_audio_matches(server, message, rate, &reference, tolerance, min_ncc);
    (checked.lag, checked.ncc)
}

/// [`assert_recording_matches`] for a message left by one of the 3 s
/// speech scenarios (`testdata/speech-short-ulaw.wav`): its length within
/// 5% and an NCC above 0.9.
pub fn assert_short_speech_recorded(server: &Server, message: &serde_json::Value) -> (i64, f64) {
    assert_recording_matches(
        server,
        message,
        SPEECH_SHORT_ULAW,
        SPEECH_SHORT_MS,
        0.05,
        0.9,
    )
}

/// What [`assert_audio_matches`] measured.
#[derive(Clone, Copy, Debug)]
pub struct AudioMatch {
    /// The exported recording's length.
    pub recorded_ms: u64,
    /// What it should be: the reference up to the end of its speech.
    pub expected_ms: u64,
    /// The aligning lag in samples (positive: the recording starts late).
    pub lag: i64,
    /// The normalized cross-correlation at that lag.
    pub ncc: f64,
}

/// Checks a stored message against the 16-bit PCM `reference` at `rate`
/// that was sent: the export is a 16-bit mono WAV at `rate`, its duration
/// is within `tolerance` of the reference's up to the end of its speech,
/// and aligned (lags of ±400 ms) its NCC exceeds `min_ncc`.
pub fn assert_audio_matches(
    server: &Server,
    message: &serde_json::Value,
    rate: u32,
    reference: &[i16],
    tolerance: f64,
    min_ncc: f64,
) -> AudioMatch {
    let id = field(message, "id");
    let exported = server.export(id);
    let spec = hound::WavReader::open(&exported)
        .unwrap_or_else(|e| panic!("export of {id} is not a WAV file: {e}"))
        .spec();
    assert_eq!(
        (spec.channels, spec.bits_per_sample, spec.sample_rate),
        (1, 16, rate),
        "export of {id}: want 16-bit mono {rate} Hz, got {spec:?}"
    );
    let (_, recorded) = read_wav_mono_i16(&exported);
    // vmesh trims a message's trailing silence (keeping a short hangover),
    // so what it should keep is what was sent up to the end of the speech.
    let trailing = vmesh::audio::silence::trailing_silence(
        reference,
        rate,
        vmesh::audio::silence::DEFAULT_THRESHOLD_DBFS,
    );
    let expected_ms = duration_ms(reference.len() - trailing, rate);
    let recorded_ms = duration_ms(recorded.len(), rate);
    assert_duration_close("recorded audio", recorded_ms, expected_ms, tolerance);
    let max_lag = (rate as usize) * 400 / 1000;
    let (lag, ncc) = aligned_correlation(reference, &recorded, max_lag);
    assert!(
        ncc > min_ncc,
        "recording {id} does not match what was sent: NCC {ncc:.3} at lag {lag} samples (want > {min_ncc})"
    );
    eprintln!(
        "recording {id}: {recorded_ms} ms for {expected_ms} ms sent ({:+.2}%), NCC {ncc:.4} at lag {lag} samples",
        (recorded_ms as f64 - expected_ms as f64) * 100.0 / expected_ms as f64
    );
    AudioMatch {
        recorded_ms,
        expected_ms,
        lag,
        ncc,
    }
}

//! Hand-made voicemail transfers (the wire contract of src/mesh/wire.rs),
//! written without vmesh's own code: a test tone as WAV, its metadata, and
//! the MESSAGE that carries them.

use std::io::Write as _;
use std::net::SocketAddr;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::field;
use super::raw_sip::unique_token;

/// A 0.5 s WAV (8 kHz, 16-bit, mono) of a 1 kHz tone: the audio of the
/// hand-made transfers, the same bytes as the SIPp scenario's attachment.
/// `periods` of 8 samples each (500 for 0.5 s).
pub fn tone_wav(periods: usize) -> Vec<u8> {
    const PERIOD: [i16; 8] = [0, 5793, 8192, 5793, 0, -5793, -8192, -5793];
    let data: Vec<u8> = PERIOD
        .iter()
        .cycle()
        .take(8 * periods)
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    wav
}

/// Transfer metadata for `audio` (the wire contract of src/mesh/wire.rs).
pub fn transfer_meta(id: &str, mailbox: &str, origin: &str, audio: &[u8]) -> Value {
    json!({
        "id": id,
        "mailbox": mailbox,
        "caller": "sip:5550100@pbx.example.com",
        "caller_name": "Raw Transfer",
        "called": format!("sip:{mailbox}@pbx.example.com"),
        "reason": "user-busy",
        "received_at": "2026-01-15T10:00:00Z",
        "duration_ms": (audio.len().saturating_sub(44) / 16) as u64,
        "codec": "PCMU",
        "format": "wav",
        "sample_rate": 8000,
        "size_bytes": audio.len(),
        "sha256": hex::encode(Sha256::digest(audio)),
        "origin": origin,
        "partial": false,
        "call_id": format!("{id}@pbx.example.com"),
    })
}

/// A transfer MESSAGE from `local` to `server`, written by hand: the JSON
/// part, then the audio as raw octets (Content-Transfer-Encoding: binary).
pub fn transfer_request(
    local: SocketAddr,
    server: SocketAddr,
    transport: &str,
    meta: &Value,
    audio: &[u8],
) -> Vec<u8> {
    let param = transport.to_ascii_lowercase();
    let boundary = "raw-transfer-7c41d09a";
    let mut body = Vec::new();
    write!(
        body,
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Type: audio/wav\r\n\
         Content-Disposition: attachment; filename=\"{}.wav\"\r\n\
         Content-Transfer-Encoding: binary\r\n\r\n",
        serde_json::to_string_pretty(meta).expect("metadata as JSON"),
        field(meta, "id"),
    )
    .expect("write to a Vec");
    body.extend_from_slice(audio);
    write!(body, "\r\n--{boundary}--\r\n").expect("write to a Vec");
    let token = unique_token();
    let mut request = format!(
        "MESSAGE sip:{server};transport={param} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{token}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:peer@{ip}>;tag=t{token}\r\n\
         To: <sip:{server};transport={param}>\r\n\
         Call-ID: {token}@{ip}\r\n\
         CSeq: 1 MESSAGE\r\n\
         Message-Context: voice-message\r\n\
         Content-Type: multipart/mixed; boundary={boundary}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len(),
        ip = local.ip(),
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}
/// A two-part body (the JSON metadata, the audio as raw octets) with
/// boundary `b`.
pub fn body(meta: &Value, audio: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--b\r\nContent-Type: application/json\r\n\r\n{meta}\r\n\
         --b\r\nContent-Type: audio/wav\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(audio);
    body.extend_from_slice(b"\r\n--b--\r\n");
    body
}

/// A MESSAGE over TCP from `local` to `server` carrying `body` as
/// `multipart/mixed; boundary=b`.
pub fn request(local: SocketAddr, server: SocketAddr, body: &[u8]) -> Vec<u8> {
    let token = unique_token();
    let mut request = format!(
        "MESSAGE sip:{server};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK{token}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:peer@{ip}>;tag=t{token}\r\n\
         To: <sip:{server};transport=tcp>\r\n\
         Call-ID: {token}@{ip}\r\n\
         CSeq: 1 MESSAGE\r\n\
         Message-Context: voice-message\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\
         Content-Length: {}\r\n\r\n",
        body.len(),
        ip = local.ip(),
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

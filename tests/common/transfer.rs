//! Hand-made transfer MESSAGEs (the wire format of src/mesh/wire.rs), for
//! the tests that send a server what a peer (or an attacker holding a
//! peer's address) might: good transfers, bad metadata, hostile bodies.

use std::net::SocketAddr;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::raw_sip::unique_token;

/// Metadata of a transfer of `audio` recorded at `origin` for `mailbox`.
pub fn meta(id: &str, mailbox: &str, origin: &str, audio: &[u8]) -> Value {
    json!({
        "id": id,
        "mailbox": mailbox,
        "caller": "sip:5550100@pbx.example.com",
        "caller_name": "Hand Made",
        "called": format!("sip:{mailbox}@pbx.example.com"),
        "reason": "user-busy",
        "received_at": "2026-01-15T10:00:00Z",
        "duration_ms": 500,
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

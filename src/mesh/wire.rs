//! The transfer wire format: one voicemail as the body of one SIP MESSAGE.
//!
//! A server hands a message to the mailbox's home server in a SIP `MESSAGE`
//! (RFC 3428) sent over TCP or TLS, with `Message-Context: voice-message`
//! (RFC 3458 §4.1, [`MESSAGE_CONTEXT`]). The body is `multipart/mixed`
//! (RFC 2046 §5.1.3) with exactly two parts:
//!
//! 1. `application/json`: the [`TransferMeta`] record. Its field names are the
//!    wire contract. It is written pretty-printed with CRLF line breaks and
//!    every non-ASCII character escaped as `\uXXXX` (RFC 8259 §7), so the
//!    part is 7-bit text with short lines and needs no transfer encoding
//!    (RFC 2045 §2.7, §6.2).
//! 2. the audio (`audio/wav` or `audio/ogg`) as an attachment (RFC 2183)
//!    named after the message id, sent as raw octets
//!    (`Content-Transfer-Encoding: binary`, RFC 2045 §6.2): SIP bodies are
//!    8-bit clean, so base64 would only add a third to a 16 MiB body.
//!
//! Because the audio is arbitrary binary, the boundary is 40 random
//! alphanumerics after a `vmesh-` prefix and is drawn again if it occurs in
//! any part, as RFC 2046 §5.1.1 requires ("the boundary delimiter MUST NOT
//! appear inside any of the encapsulated parts").
//!
//! A complete body (SIP headers shown for context, audio elided):
//!
//! ```text
//! MESSAGE sip:127.0.0.12:5060;transport=tcp SIP/2.0
//! ...
//! Message-Context: voice-message
//! Content-Type: multipart/mixed; boundary=vmesh-3kQ9x7LmZp2Rt8VwYc4Nb6Hd1Fg5Js0AeUo7Ki3T
//! Content-Length: 232922
//!
//! --vmesh-3kQ9x7LmZp2Rt8VwYc4Nb6Hd1Fg5Js0AeUo7Ki3T
//! Content-Type: application/json
//!
//! {
//!   "id": "0b5f3c9e-3d1a-4c57-9a51-2f8e6a7c1d42",
//!   "mailbox": "2001",
//!   "caller": "sip:5551234@pbx-a.example.com",
//!   "caller_name": "Test Caller",
//!   "called": "sip:2001@pbx-a.example.com",
//!   "reason": "no-answer",
//!   "received_at": "2026-11-26T00:28:49.512Z",
//!   "duration_ms": 14500,
//!   "codec": "PCMU",
//!   "format": "wav",
//!   "sample_rate": 8000,
//!   "size_bytes": 232044,
//!   "sha256": "9f2c4e0b7a1d3c5e8f6a2b4d0c9e7f1a3b5d7c9e1f3a5b7d9c1e3f5a7b9d1c3e",
//!   "origin": "site-a",
//!   "partial": false,
//!   "call_id": "a84b4c76e66710@pbx-a.example.com"
//! }
//! --vmesh-3kQ9x7LmZp2Rt8VwYc4Nb6Hd1Fg5Js0AeUo7Ki3T
//! Content-Type: audio/wav
//! Content-Disposition: attachment; filename="0b5f3c9e-3d1a-4c57-9a51-2f8e6a7c1d42.wav"
//! Content-Transfer-Encoding: binary
//!
//! <232044 octets of the WAV file, byte for byte>
//! --vmesh-3kQ9x7LmZp2Rt8VwYc4Nb6Hd1Fg5Js0AeUo7Ki3T--
//! ```
//!
//! Every line break above is CRLF. The CRLF before each delimiter belongs to
//! the delimiter, not to the part (RFC 2046 §5.1.1), so the audio part holds
//! exactly the file's octets.
//!
//! Parsing accepts what ordinary MIME tools write: preamble, epilogue,
//! transport padding after delimiters, bare-LF line breaks, and `base64` or
//! `quoted-printable` parts. The body is split here, on its raw bytes with
//! `memchr`'s substring search, into slices of the received body; each
//! part's headers are parsed by the `mailparse` crate and its content
//! decoded by it when it has a transfer encoding. Not by `mailparse::
//! parse_mail` as a whole: it needs the body copied behind a header, copies
//! each part's content again, and builds a tree node for every part, so a
//! 16 MiB body of 2.4 million empty parts cost 800 MB. Here the audio of a
//! `binary` part is never copied, at most [`MAX_PARTS`] parts are looked
//! for, and a part's headers may take [`MAX_PART_HEADER_BYTES`]; nested
//! multiparts are not parsed at all (a part must be JSON or audio). This
//! module also checks what a transfer needs: a valid boundary, a close
//! delimiter (a truncated body is refused rather than read as a shorter
//! recording), and a known transfer encoding.
//! Building is written here: it is a few lines, and it must stream the audio
//! unchanged, which general MIME builders (that re-encode or re-wrap lines)
//! do not promise.

use std::borrow::Cow;
use std::fmt::Write as _;

use mailparse::body::Body;
use mailparse::{parse_content_disposition, parse_content_type, MailHeaderMap};
use memchr::memmem;
use rand::distr::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The `Message-Context` header value (RFC 3458 §4.1) that marks a SIP
/// MESSAGE as a voicemail transfer rather than an instant message.
pub const MESSAGE_CONTEXT: &str = "voice-message";

/// Prefix of the boundaries we draw; makes our own bodies easy to spot in traces.
const BOUNDARY_PREFIX: &str = "vmesh-";

/// Random characters after the prefix: 62^40 choices, so a clash with the
/// audio is astronomically rare, and it is still checked.
const BOUNDARY_RANDOM_LEN: usize = 40;

/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const BOUNDARY_MAX_LEN: usize = 70;

/// Parts looked for at most. A transfer has two; a few more are counted so
/// that a body from an ordinary MIME tool with an extra part is refused
/// with its count, but a body of millions of empty parts (16 MiB of them is
/// 2.4 million) costs no more than these.
pub const MAX_PARTS: usize = 16;

/// Longest header block of one part. vmesh writes about 150 bytes.
pub const MAX_PART_HEADER_BYTES: usize = 8192;

/// The JSON metadata part: the store's [`IncomingMessage`], so what is sent
/// and what the receiving store checks are one type. Field names are the
/// wire contract. It mirrors the stored message row, plus what the receiver
/// needs to check and store the audio without opening it (`size_bytes`,
/// `sha256`). Unknown fields are ignored on decode so that a newer sender
/// can add fields; the two `Option` fields and `partial` may be absent.
pub use crate::store::IncomingMessage as TransferMeta;

/// A decoded transfer body: the metadata and the audio exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceMessageBody<'a> {
    /// The metadata part.
    pub meta: TransferMeta,
    /// The audio part's octets, transfer encoding undone: a slice of the
    /// received body itself when it had none (`binary`, as vmesh sends).
    pub audio: Cow<'a, [u8]>,
    /// The audio part's media type, lower-cased, without parameters
    /// (e.g. `audio/wav`).
    pub audio_content_type: String,
    /// The `filename` of the audio part's Content-Disposition, if any.
    /// Untrusted peer input: never use it as a path.
    pub filename: Option<String>,
}

impl VoiceMessageBody<'_> {
    /// The same body holding its own copy of the audio.
    pub fn into_owned(self) -> VoiceMessageBody<'static> {
        VoiceMessageBody {
            meta: self.meta,
            audio: Cow::Owned(self.audio.into_owned()),
            audio_content_type: self.audio_content_type,
            filename: self.filename,
        }
    }
}

/// Why a transfer body was refused. Each variant says what was wrong so the
/// receiver can answer 400 with a reason the sender's operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body's Content-Type is not `multipart/mixed` (the media type found).
    #[error("transfer body must be multipart/mixed, got {0:?}")]
    NotMultipart(String),
    /// `multipart/mixed` without the mandatory boundary (RFC 2046 §5.1.1).
    #[error("multipart/mixed Content-Type has no boundary parameter (RFC 2046 §5.1.1)")]
    MissingBoundary,
    /// The multipart structure itself is broken (what was wrong).
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    /// Not exactly two parts (the number found).
    #[error("transfer body must have 2 parts (metadata, audio), found {0}")]
    PartCount(usize),
    /// Far more parts than a transfer has (the limit): refused before
    /// they are looked at.
    #[error("transfer body has more than {0} parts; it must have 2 (metadata, audio)")]
    TooManyParts(usize),
    /// Part 1 is not `application/json` (the media type found).
    #[error("part 1 must be application/json, got {0:?}")]
    MetadataType(String),
    /// Part 1 is not a valid metadata record (the JSON error).
    #[error("invalid transfer metadata: {0}")]
    Metadata(String),
    /// Part 2 is not `audio/*` (the media type found).
    #[error("part 2 must be audio/*, got {0:?}")]
    AudioType(String),
}

/// Lower-case hex SHA-256 of `bytes`: the `sha256` field of [`TransferMeta`].
///
/// Shared by sender and receiver so both spell the digest the same way.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Builds the body; returns (Content-Type header value incl. boundary, body bytes).
///
/// Draws the boundary from the thread's random generator; see
/// [`encode_with_rng`] to supply the randomness.
pub fn encode(
    meta: &TransferMeta,
    audio: &[u8],
    audio_content_type: &str,
    filename: &str,
) -> (String, Vec<u8>) {
    encode_with_rng(meta, audio, audio_content_type, filename, &mut rand::rng())
}

/// [`encode`] with the boundary drawn from `rng`, so tests are reproducible.
///
/// `audio_content_type` and `filename` come from our own store; characters
/// that cannot appear in a header (controls, non-ASCII, and in the quoted
/// filename `"` and `\`) are replaced by `_` so the body stays well-formed
/// whatever they hold.
pub fn encode_with_rng<R: Rng + ?Sized>(
    meta: &TransferMeta,
    audio: &[u8],
    audio_content_type: &str,
    filename: &str,
    rng: &mut R,
) -> (String, Vec<u8>) {
    let metadata = format!(
        "Content-Type: application/json\r\n\r\n{}",
        metadata_json(meta)
    );
    let audio_headers = format!(
        "Content-Type: {}\r\n\
         Content-Disposition: attachment; filename=\"{}\"\r\n\
         Content-Transfer-Encoding: binary\r\n\r\n",
        header_text(audio_content_type, &[]),
        header_text(filename, &['"', '\\']),
    );
    let boundary = loop {
        let candidate = draw_boundary(rng);
        let needle = candidate.as_bytes();
        if !contains(metadata.as_bytes(), needle)
            && !contains(audio_headers.as_bytes(), needle)
            && !contains(audio, needle)
        {
            break candidate;
        }
    };

    let delimiter = format!("--{boundary}");
    let mut body = Vec::with_capacity(
        metadata.len() + audio_headers.len() + audio.len() + 3 * (delimiter.len() + 4),
    );
    // RFC 2046 §5.1.1: each delimiter is CRLF "--" boundary, the close
    // delimiter adds "--"; the CRLF before a delimiter is not part content.
    let chunks: [&[u8]; 11] = [
        delimiter.as_bytes(),
        b"\r\n",
        metadata.as_bytes(),
        b"\r\n",
        delimiter.as_bytes(),
        b"\r\n",
        audio_headers.as_bytes(),
        audio,
        b"\r\n",
        delimiter.as_bytes(),
        b"--\r\n",
    ];
    for chunk in chunks {
        body.extend_from_slice(chunk);
    }
    (format!("multipart/mixed; boundary={boundary}"), body)
}

/// Parses a body given its Content-Type header value.
///
/// Refuses anything that is not a two-part `multipart/mixed` body with JSON
/// metadata first and audio second. Does not check the audio against
/// `meta.sha256`: the receiver does, to answer 400 with that reason. The
/// audio borrows from `body` unless it had a transfer encoding to undo.
pub fn decode<'a>(content_type: &str, body: &'a [u8]) -> Result<VoiceMessageBody<'a>, WireError> {
    let boundary = multipart_boundary(content_type)?;
    let mut parts = split_parts(&boundary, body)?;
    if parts.len() != 2 {
        return Err(WireError::PartCount(parts.len()));
    }
    let audio = parts.pop().ok_or(WireError::PartCount(1))?;
    let metadata = parts.pop().ok_or(WireError::PartCount(0))?;

    let metadata = part_of(metadata)?;
    if metadata.media_type != "application/json" {
        return Err(WireError::MetadataType(metadata.media_type));
    }
    let meta: TransferMeta = serde_json::from_slice(&metadata.content)
        .map_err(|e| WireError::Metadata(e.to_string()))?;

    let audio = part_of(audio)?;
    if audio.media_type.len() <= "audio/".len() || !audio.media_type.starts_with("audio/") {
        return Err(WireError::AudioType(audio.media_type));
    }
    Ok(VoiceMessageBody {
        meta,
        audio: audio.content,
        audio_content_type: audio.media_type,
        filename: audio.filename,
    })
}

/// One body part with its headers interpreted and its transfer encoding undone.
#[derive(Debug)]
struct Part<'a> {
    /// Lower-cased media type without parameters; `text/plain` when the part
    /// has no Content-Type (RFC 2046 §5.1.1 default).
    media_type: String,
    /// The Content-Disposition `filename` parameter.
    filename: Option<String>,
    /// Decoded content: the body's own bytes unless an encoding was undone.
    content: Cow<'a, [u8]>,
}

/// Checks the top-level Content-Type and returns its boundary.
fn multipart_boundary(content_type: &str) -> Result<String, WireError> {
    let parsed = parse_content_type(content_type);
    if parsed.mimetype != "multipart/mixed" {
        return Err(WireError::NotMultipart(parsed.mimetype));
    }
    let boundary = parsed
        .params
        .get("boundary")
        .ok_or(WireError::MissingBoundary)?;
    if !valid_boundary(boundary) {
        return Err(WireError::Malformed(format!(
            "boundary {boundary:?} is not 1 to 70 RFC 2046 §5.1.1 bchars"
        )));
    }
    Ok(boundary.clone())
}

/// RFC 2046 §5.1.1 `boundary := 0*69<bchars> bcharsnospace`.
fn valid_boundary(boundary: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    (1..=BOUNDARY_MAX_LEN).contains(&boundary.len())
        && boundary.chars().all(allowed)
        && !boundary.ends_with(' ')
}

/// Splits `body` into its parts along `boundary` (RFC 2046 §5.1.1), as
/// slices of `body`: a delimiter is `--boundary` at the start of the body
/// or of a line, then optional transport padding (spaces and tabs) and the
/// line end; `--boundary--` closes. The line break before a delimiter
/// belongs to it. Bare LF line breaks are accepted like CRLF. At most
/// [`MAX_PARTS`] parts are looked for: a body of millions of empty parts
/// is refused after the first few, before anything is built for them.
fn split_parts<'a>(boundary: &str, body: &'a [u8]) -> Result<Vec<&'a [u8]>, WireError> {
    let dash_boundary = format!("--{boundary}");
    let finder = memmem::Finder::new(dash_boundary.as_bytes());
    let mut parts = Vec::new();
    // The content of the part being read starts here, once a delimiter
    // has been seen.
    let mut open: Option<usize> = None;
    let mut from = 0;
    while let Some(found) = finder.find(&body[from..]) {
        let at = from + found;
        from = at + 1;
        if at > 0 && body[at - 1] != b'\n' {
            continue;
        }
        let after = at + dash_boundary.len();
        let close = body[after..].starts_with(b"--");
        let rest = if close { after + 2 } else { after };
        let Some(next_line) = end_of_padding_line(body, rest, close) else {
            continue;
        };
        if let Some(start) = open {
            let end = line_break_start(body, start, at);
            parts.push(&body[start..end]);
            if parts.len() > MAX_PARTS {
                return Err(WireError::TooManyParts(MAX_PARTS));
            }
        }
        if close {
            return Ok(parts);
        }
        open = Some(next_line);
        from = next_line;
    }
    if open.is_some() {
        return Err(WireError::Malformed(
            "no close delimiter; the body is truncated (RFC 2046 §5.1.1)".to_string(),
        ));
    }
    Ok(parts)
}

/// Where the line after a delimiter begins: past transport padding (spaces,
/// tabs) and the CRLF or LF; `None` if anything else follows the boundary
/// (then it was not a delimiter). After a close delimiter the body may also
/// simply end.
fn end_of_padding_line(body: &[u8], from: usize, close: bool) -> Option<usize> {
    let mut i = from;
    while matches!(body.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match (body.get(i), body.get(i + 1)) {
        (Some(b'\r'), Some(b'\n')) => Some(i + 2),
        (Some(b'\n'), _) => Some(i + 1),
        (None, _) if close => Some(i),
        _ => None,
    }
}

/// Where the line break before a delimiter at `at` starts (it belongs to
/// the delimiter), never before `start`.
fn line_break_start(body: &[u8], start: usize, at: usize) -> usize {
    let mut end = at;
    if end > start && body[end - 1] == b'\n' {
        end -= 1;
        if end > start && body[end - 1] == b'\r' {
            end -= 1;
        }
    }
    end
}

/// The length of a part's header block, blank line included, if it ends
/// within [`MAX_PART_HEADER_BYTES`].
fn header_block_len(part: &[u8]) -> Result<usize, WireError> {
    if part.starts_with(b"\r\n") {
        return Ok(2);
    }
    if part.starts_with(b"\n") {
        return Ok(1);
    }
    let window = &part[..part.len().min(MAX_PART_HEADER_BYTES)];
    let crlf = memmem::find(window, b"\r\n\r\n").map(|i| i + 4);
    let lf = memmem::find(window, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Ok(a.min(b)),
        (Some(a), None) | (None, Some(a)) => Ok(a),
        (None, None) if part.len() <= MAX_PART_HEADER_BYTES => Ok(part.len()),
        (None, None) => Err(WireError::Malformed(format!(
            "part headers longer than {MAX_PART_HEADER_BYTES} bytes"
        ))),
    }
}

/// Interprets one part: its headers (parsed by `mailparse`), then its
/// content with the transfer encoding undone. Only base64 and
/// quoted-printable content is copied (decoded); anything else is the
/// body's own bytes.
fn part_of(raw: &[u8]) -> Result<Part<'_>, WireError> {
    let head_len = header_block_len(raw)?;
    let (headers, _) = mailparse::parse_headers(&raw[..head_len])
        .map_err(|e| WireError::Malformed(format!("cannot parse part headers: {e}")))?;
    let content = &raw[head_len..];
    let ctype = headers
        .get_first_value("Content-Type")
        .map(|v| parse_content_type(&v))
        .unwrap_or_default();
    let encoding = headers
        .get_first_value("Content-Transfer-Encoding")
        .map(|e| e.trim().to_ascii_lowercase());
    let content =
        match encoding.as_deref() {
            None | Some("7bit" | "8bit" | "binary") => Cow::Borrowed(content),
            Some("base64" | "quoted-printable") => {
                let decoded = match Body::new(content, &ctype, &encoding) {
                    Body::Base64(b) | Body::QuotedPrintable(b) => b.get_decoded(),
                    _ => Ok(content.to_vec()),
                };
                Cow::Owned(decoded.map_err(|e| {
                    WireError::Malformed(format!("cannot decode part content: {e}"))
                })?)
            }
            Some(other) => {
                return Err(WireError::Malformed(format!(
                    "unsupported Content-Transfer-Encoding {other:?} (RFC 2045 §6.1)"
                )))
            }
        };
    let filename = headers
        .get_first_value("Content-Disposition")
        .map(|v| parse_content_disposition(&v))
        .and_then(|d| d.params.get("filename").cloned());
    Ok(Part {
        media_type: ctype.mimetype,
        filename,
        content,
    })
}

/// The metadata as pretty JSON with non-ASCII escaped (RFC 8259 §7) and
/// CRLF line breaks, so the part is 7-bit text needing no transfer encoding.
fn metadata_json(meta: &TransferMeta) -> String {
    let json = serde_json::to_string_pretty(meta)
        .expect("TransferMeta holds only strings, integers and booleans");
    // Outside strings serde_json writes only ASCII, so every non-ASCII char
    // is inside a string, where its \u escape means the same; and every
    // line feed is structural (strings escape theirs), so it may become the
    // CRLF that 7-bit MIME text requires (RFC 2045 §2.7).
    let mut ascii = String::with_capacity(json.len());
    for c in json.chars() {
        if c == '\n' {
            ascii.push_str("\r\n");
        } else if c.is_ascii() {
            ascii.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(ascii, "\\u{unit:04x}");
            }
        }
    }
    ascii
}

/// `value` with controls, non-ASCII and `forbidden` replaced by `_`, so it
/// can stand in a header line (RFC 5322 §2.2) or a quoted string.
fn header_text(value: &str, forbidden: &[char]) -> String {
    value
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && !forbidden.contains(&c)) || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A fresh boundary: fixed prefix and random alphanumerics (RFC 2046 bchars).
fn draw_boundary<R: Rng + ?Sized>(rng: &mut R) -> String {
    let random: String = (0..BOUNDARY_RANDOM_LEN)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect();
    format!("{BOUNDARY_PREFIX}{random}")
}

/// True if `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;

//! Ogg Opus files of stored messages (RFC 7845), written with
//! [`crate::audio::OggOpusWriter`] and read back for recovery and export.
//!
//! The `OpusTags` header carries the message's metadata as comments
//! (RFC 7845 §5.2), so a file copied out of the store still says who
//! called whom and when: `MAILBOX`, `CALLER`, `CALLER_NAME`, `CALLED`,
//! `REASON`, `RECEIVED_AT`, `MESSAGE_ID`, `ORIGIN`, `CODEC`.

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Cursor};
use std::path::Path;

use crate::audio::{read_ogg_opus, OggOpusAudio, OggOpusWriter};

use super::error::StoreError;
use super::sidecar::Sidecar;

/// Input rates the Opus encoder takes (RFC 6716 §2).
const OPUS_INPUT_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// Output buffer of the file writer: pages come a second of audio at a
/// time, a few kilobytes each.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Whether a recording at `rate` can be encoded to Opus as it is.
pub fn supports_rate(rate: u32) -> bool {
    OPUS_INPUT_RATES.contains(&rate)
}

/// The message's metadata as `OpusTags` comments; absent fields are left
/// out rather than written empty.
pub fn tags(sidecar: &Sidecar) -> Vec<(String, String)> {
    let tags = [
        ("MAILBOX", Some(sidecar.mailbox.clone())),
        ("CALLER", Some(sidecar.caller_uri.clone())),
        ("CALLER_NAME", sidecar.caller_name.clone()),
        ("CALLED", Some(sidecar.called_uri.clone())),
        ("REASON", sidecar.reason.clone()),
        ("RECEIVED_AT", Some(sidecar.received_at.clone())),
        ("MESSAGE_ID", Some(sidecar.id.to_string())),
        ("ORIGIN", Some(sidecar.origin.clone())),
        ("CODEC", Some(sidecar.codec.clone())),
    ];
    tags.into_iter()
        .filter_map(|(key, value)| value.map(|v| (key.to_owned(), v)))
        .collect()
}

/// Encodes `pcm` (mono, `rate` Hz) into a new Ogg Opus file at `path`,
/// replacing any file left there, and fsyncs it. The caller renames it
/// into place; until then a crash leaves a temporary file that recovery
/// removes.
pub fn write_ogg_opus(
    path: &Path,
    pcm: &[i16],
    rate: u32,
    bitrate: u32,
    tags: &[(String, String)],
) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(StoreError::io("create", path))?;
    let encode_err = |source| StoreError::Audio {
        what: "encode Ogg Opus",
        path: path.to_owned(),
        source,
    };
    let out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let mut writer = OggOpusWriter::new(out, rate, bitrate, tags).map_err(encode_err)?;
    writer.write_pcm(pcm).map_err(encode_err)?;
    let out = writer.finish().map_err(encode_err)?;
    let file = out
        .into_inner()
        .map_err(|e| StoreError::io("write", path)(e.into_error()))?;
    file.sync_all().map_err(StoreError::io("fsync", path))
}

/// Decodes a whole Ogg Opus file (pre-skip and end trimming applied).
pub fn read_file(path: &Path) -> Result<OggOpusAudio, StoreError> {
    let bytes = fs::read(path).map_err(StoreError::io("read", path))?;
    decode(bytes, path)
}

/// Decodes the Ogg Opus bytes of the file at `path`, already read.
pub fn decode(bytes: Vec<u8>, path: &Path) -> Result<OggOpusAudio, StoreError> {
    read_ogg_opus(Cursor::new(bytes)).map_err(|source| StoreError::Audio {
        what: "decode Ogg Opus",
        path: path.to_owned(),
        source,
    })
}

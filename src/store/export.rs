//! `vmesh messages export`: a stored message as a WAV file, whatever its
//! stored format, for any player and for tools that expect PCM.

use std::fs;
use std::path::Path;

use hound::WavWriter;

use crate::audio::resample;

use super::encode;
use super::error::StoreError;
use super::message::{Message, FORMAT_OPUS, FORMAT_WAV};
use super::recording::wav_spec;
use super::Store;

impl Store {
    /// Writes `msg` to `out` as 16-bit mono PCM WAV. A WAV message is
    /// copied byte for byte; an Ogg Opus one is decoded (RFC 7845 pre-skip
    /// and end trimming applied) at the message's sample rate. The stored
    /// bytes are checked against the row's SHA-256 first, so a damaged file
    /// is reported rather than exported.
    pub fn export_wav(&self, msg: &Message, out: &Path) -> Result<(), StoreError> {
        let bytes = self.read_audio(msg)?;
        match msg.format.as_str() {
            FORMAT_WAV => fs::write(out, &bytes).map_err(StoreError::io("write", out)),
            FORMAT_OPUS => {
                let source = self.audio_path(msg);
                let audio = encode::decode(bytes, &source)?;
                // A peer's file may name no input rate (decoded at 48 kHz)
                // or another one than its metadata; the row's rate wins.
                let rate = if msg.sample_rate == 0 {
                    audio.sample_rate
                } else {
                    msg.sample_rate
                };
                let pcm = if audio.sample_rate == rate {
                    audio.pcm
                } else {
                    resample(&audio.pcm, audio.sample_rate, rate).map_err(|source_err| {
                        StoreError::Audio {
                            what: "resample decoded Ogg Opus",
                            path: source,
                            source: source_err,
                        }
                    })?
                };
                write_wav(out, rate, &pcm)
            }
            other => Err(StoreError::InvalidMetadata {
                id: msg.id.clone(),
                field: "format",
                reason: format!("{other:?} is not wav or opus"),
            }),
        }
    }
}

/// Writes mono 16-bit PCM at `rate` to a new WAV file at `path`.
fn write_wav(path: &Path, rate: u32, pcm: &[i16]) -> Result<(), StoreError> {
    let mut writer = WavWriter::create(path, wav_spec(rate)).map_err(StoreError::wav(path))?;
    for &sample in pcm {
        writer.write_sample(sample).map_err(StoreError::wav(path))?;
    }
    writer.finalize().map_err(StoreError::wav(path))
}

//! `vmesh messages export`: a stored message as a WAV file, whatever its
//! stored format, for any player and for tools that expect PCM.

use std::io::Cursor;

use hound::WavWriter;

use crate::audio::resample;

use super::encode;
use super::error::StoreError;
use super::message::{Message, FORMAT_OPUS, FORMAT_WAV};
use super::recording::wav_spec;
use super::Store;

impl Store {
    /// `msg` as a 16-bit mono PCM WAV file, in memory (a maximal message is
    /// a few megabytes): a WAV message byte for byte; an Ogg Opus one
    /// decoded (RFC 7845 pre-skip and end trimming applied) at the
    /// message's sample rate. The stored bytes are checked against the
    /// row's SHA-256 first, so a damaged file is reported rather than
    /// exported. Writing the result is the caller's: where it goes (and
    /// whether an existing file may be replaced) is the user's decision.
    pub fn export_wav(&self, msg: &Message) -> Result<Vec<u8>, StoreError> {
        let bytes = self.read_audio(msg)?;
        match msg.format.as_str() {
            FORMAT_WAV => Ok(bytes),
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
                            path: source.clone(),
                            source: source_err,
                        }
                    })?
                };
                wav_bytes(rate, &pcm).map_err(StoreError::wav(source))
            }
            other => Err(StoreError::InvalidMetadata {
                id: msg.id.clone(),
                field: "format",
                reason: format!("{other:?} is not wav or opus"),
            }),
        }
    }
}

/// Mono 16-bit PCM at `rate` as the bytes of a WAV file.
fn wav_bytes(rate: u32, pcm: &[i16]) -> Result<Vec<u8>, hound::Error> {
    let mut out = Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    let mut writer = WavWriter::new(&mut out, wav_spec(rate))?;
    for &sample in pcm {
        writer.write_sample(sample)?;
    }
    writer.finalize()?;
    Ok(out.into_inner())
}

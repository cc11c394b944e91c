//! A stored message's audio as PCM, whatever its stored format: for
//! `vmesh messages export` (a WAV file for any player and for tools that
//! expect PCM) and for the owner's phone menu, which plays it.

use std::io::Cursor;

use hound::{WavReader, WavWriter};

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
        if msg.format == FORMAT_WAV {
            return self.read_audio(msg);
        }
        let (pcm, rate) = self.message_pcm(msg)?;
        wav_bytes(rate, &pcm).map_err(StoreError::wav(self.audio_path(msg)))
    }

    /// `msg`'s audio as mono 16-bit PCM and its rate: the samples of a WAV
    /// message; an Ogg Opus one decoded (RFC 7845 pre-skip and end
    /// trimming applied) at the message's sample rate. The stored bytes
    /// are checked against the row's SHA-256 first, so a damaged file is
    /// reported rather than played.
    pub fn message_pcm(&self, msg: &Message) -> Result<(Vec<i16>, u32), StoreError> {
        let bytes = self.read_audio(msg)?;
        let source = self.audio_path(msg);
        match msg.format.as_str() {
            FORMAT_WAV => {
                let mut reader =
                    WavReader::new(Cursor::new(bytes)).map_err(StoreError::wav(&source))?;
                let spec = reader.spec();
                if spec != wav_spec(spec.sample_rate) {
                    return Err(StoreError::InvalidMetadata {
                        id: msg.id.clone(),
                        field: "format",
                        reason: format!("a WAV message must be 16-bit mono PCM, not {spec:?}"),
                    });
                }
                let pcm = reader
                    .samples::<i16>()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::wav(&source))?;
                Ok((pcm, spec.sample_rate))
            }
            FORMAT_OPUS => {
                let audio = encode::decode(bytes, &source)?;
                // A peer's file may name no input rate (decoded at 48 kHz)
                // or another one than its metadata; the row's rate wins.
                let rate = if msg.sample_rate == 0 {
                    audio.sample_rate
                } else {
                    msg.sample_rate
                };
                if audio.sample_rate == rate {
                    return Ok((audio.pcm, rate));
                }
                let pcm = resample(&audio.pcm, audio.sample_rate, rate).map_err(|source_err| {
                    StoreError::Audio {
                        what: "resample decoded Ogg Opus",
                        path: source.clone(),
                        source: source_err,
                    }
                })?;
                Ok((pcm, rate))
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

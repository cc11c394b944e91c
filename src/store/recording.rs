//! The in-progress recording: 16-bit PCM appended to `recording/<id>.wav`.
//!
//! The file is made when the first audio goes to the kernel, not when the
//! recording starts: the sidecar, written durably at the ACK, is the one
//! record that an answered call exists, and until a second of audio has
//! gathered a crash loses none of it either way (the buffer is in memory).
//! A call that ends before that (a hang-up during the greeting, most short
//! calls) thus makes no audio file, and its sidecar is a spent one
//! overwritten (`spare.rs`): on a busy server the file system's work per
//! call is much of what bounds the call rate (see BENCHMARKS.md, "Fifth
//! round"). Recovery lists a sidecar without audio as the answered call it
//! is (`recovery.rs`).
//!
//! This is the hot path (thousands of concurrent calls), so a write only
//! converts PCM to little-endian bytes in a buffer; there is no fsync and
//! no database work until [`super::Store::finish`]. About once a second of
//! audio the buffer is appended to the file with one `write(2)` and the
//! header's two sizes are brought up to date with one positioned write
//! (`pwrite(2)`, no seek), so if the process dies the file is a valid WAV
//! up to the last second; recovery rebuilds the header from the file
//! length anyway, which also covers a machine crash.
//!
//! The media engine hands the call's task a second of audio at a time
//! (`media::engine`), which goes out at once: it is converted in a scratch
//! buffer of the thread's, and a call holds a buffer of its own only while
//! smaller pieces gather, so thousands of calls do not each keep a second
//! of bytes that is written anyway.
//!
//! The header is the canonical 44-byte one that hound writes for the spec
//! ([`super::wav_header`]); the samples are written here directly rather
//! than through hound's per-sample writer, which cost more than the rest
//! of the media path's work per packet together (see BENCHMARKS.md,
//! "Performance work").

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hound::{SampleFormat, WavSpec};
use uuid::Uuid;

use super::error::StoreError;
use super::sidecar::Sidecar;
use super::wav_header::{canonical_header, set_sizes};

/// Bytes per stored sample: 16-bit PCM.
pub const BYTES_PER_SAMPLE: u64 = 2;

/// Size of the canonical header hound writes for 16-bit mono PCM
/// (RIFF + WAVE + 16-byte `fmt ` chunk + `data` chunk header).
pub const WAV_HEADER_LEN: u64 = 44;

/// Largest data chunk a RIFF file can describe (32-bit sizes).
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - WAV_HEADER_LEN;

/// The WAV layout every recording uses: mono 16-bit PCM at the codec's rate.
pub fn wav_spec(sample_rate: u32) -> WavSpec {
    WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    }
}

/// Appends `samples` to `bytes` as 16-bit little-endian PCM.
fn append_le(bytes: &mut Vec<u8>, samples: &[i16]) {
    let start = bytes.len();
    bytes.resize(start + samples.len() * 2, 0);
    for (pair, sample) in bytes[start..].chunks_exact_mut(2).zip(samples) {
        pair.copy_from_slice(&sample.to_le_bytes());
    }
}

/// Duration of `samples` mono samples at `sample_rate`.
pub fn samples_duration(samples: u64, sample_rate: u32) -> Duration {
    if sample_rate == 0 {
        return Duration::ZERO;
    }
    let nanos = u128::from(samples) * 1_000_000_000 / u128::from(sample_rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The recording's WAV file in `slot`, made at `path` and given `header`
/// (sizes zero until the first flush) if this is its first audio.
fn made<'a>(
    slot: &'a mut Option<File>,
    path: &Path,
    header: &[u8],
) -> Result<&'a mut File, StoreError> {
    if let Some(file) = slot {
        return Ok(file);
    }
    let mut file = File::create(path).map_err(StoreError::io("create", path))?;
    file.write_all(header)
        .map_err(StoreError::io("write", path))?;
    Ok(slot.insert(file))
}

/// A message being recorded. Obtain one from [`super::Store::start_recording`],
/// feed it decoded PCM with [`Recording::write`], and hand it back to
/// [`super::Store::finish`]. If it is dropped instead (a panic, a bug), its
/// files stay in `recording/` and the next start-up's recovery lists them.
pub struct Recording {
    sidecar: Sidecar,
    wav_path: PathBuf,
    /// The WAV file, once audio has gone to it ([`made`]).
    file: Option<File>,
    /// The file's header, whose sizes are updated at each flush.
    header: Vec<u8>,
    /// Audio not yet handed to the kernel, as little-endian bytes: less
    /// than a second of it, gathered from pieces smaller than a second.
    buffer: Vec<u8>,
    samples_written: u64,
}

/// `samples` as the WAV file's little-endian bytes: the samples' own
/// memory on a little-endian machine (no copy), `scratch` filled with
/// them elsewhere.
fn le_bytes<'a>(samples: &'a [i16], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if cfg!(target_endian = "little") {
        zerocopy::IntoBytes::as_bytes(samples)
    } else {
        scratch.clear();
        append_le(scratch, samples);
        scratch
    }
}

/// What [`Recording::close`] leaves for the commit step.
pub struct ClosedRecording {
    /// Metadata of the message.
    pub sidecar: Sidecar,
    /// `recording/<id>.wav`, complete and closed (not yet fsynced); absent
    /// when no audio was recorded (`samples` is 0).
    pub wav_path: PathBuf,
    /// Mono samples in the file.
    pub samples: u64,
}

impl Recording {
    /// A recording whose sidecar is already durable; its WAV file is made
    /// with the first audio that goes to the kernel.
    pub(super) fn create(sidecar: Sidecar, wav_path: PathBuf) -> Result<Recording, StoreError> {
        let header = canonical_header(&wav_path, sidecar.sample_rate, 0)?;
        Ok(Recording {
            sidecar,
            wav_path,
            file: None,
            header,
            buffer: Vec::new(),
            samples_written: 0,
        })
    }

    /// The message id chosen when the recording started.
    pub fn id(&self) -> Uuid {
        self.sidecar.id
    }

    /// Path of the in-progress WAV file (made with the first audio).
    pub fn path(&self) -> &Path {
        &self.wav_path
    }

    /// Appends decoded mono PCM. Buffered: about once per second of audio
    /// the buffer goes to the kernel and the header is updated (no fsync).
    pub fn write(&mut self, samples: &[i16]) -> Result<(), StoreError> {
        let total = self.samples_written + samples.len() as u64;
        if total * BYTES_PER_SAMPLE > MAX_DATA_BYTES {
            return Err(StoreError::CorruptRecording {
                path: self.wav_path.clone(),
                reason: format!(
                    "recording would exceed the WAV size limit of {MAX_DATA_BYTES} bytes"
                ),
            });
        }
        let second = self.sidecar.sample_rate as usize * BYTES_PER_SAMPLE as usize;
        if self.buffer.is_empty() && samples.len() * BYTES_PER_SAMPLE as usize >= second {
            // A second or more at once: to the kernel now, as a flush of a
            // full buffer would. Audio the file refused stays buffered,
            // exactly as a failed flush leaves it, so closing tries it
            // again and a full disk is seen there too.
            let mut scratch = Vec::new();
            let path = &self.wav_path;
            let written = made(&mut self.file, path, &self.header).and_then(|file| {
                file.write_all(le_bytes(samples, &mut scratch))
                    .map_err(StoreError::io("write", path))
            });
            if written.is_err() {
                append_le(&mut self.buffer, samples);
            }
            self.samples_written = total;
            written?;
            return self.flush();
        }
        append_le(&mut self.buffer, samples);
        self.samples_written = total;
        if self.buffer.len() >= second {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands buffered audio to the kernel and brings the header up to date,
    /// as [`Recording::write`] does every second. Call it at hang-up when
    /// [`super::Store::finish`] may wait for a worker: a process crash in
    /// the meantime then loses nothing of the call.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let path = &self.wav_path;
        if !self.buffer.is_empty() {
            made(&mut self.file, path, &self.header)?
                .write_all(&self.buffer)
                .map_err(StoreError::io("write", path))?;
            // Given back: the next second most likely comes whole.
            self.buffer = Vec::new();
        }
        // No audio yet, so no file and no header to bring up to date.
        let Some(file) = &self.file else {
            return Ok(());
        };
        // `write` keeps the data within the RIFF limit, so it fits 32 bits.
        let data_bytes = u32::try_from(self.samples_written * BYTES_PER_SAMPLE).unwrap_or(u32::MAX);
        set_sizes(&mut self.header, data_bytes);
        file.write_all_at(&self.header, 0)
            .map_err(StoreError::io("write header of", path))
    }

    /// Records the codec the call settled on when it differs from the one
    /// known when recording started: an INVITE without SDP learns it only
    /// from the answer in the ACK (RFC 3264 §5), and a re-INVITE may change
    /// it. The sidecar is rewritten durably, so recovery sees it too.
    pub fn set_codec(&mut self, codec: &str) -> Result<(), StoreError> {
        if self.sidecar.codec == codec {
            return Ok(());
        }
        self.sidecar.codec = codec.to_string();
        self.sidecar.write(&self.wav_path.with_extension("json"))
    }

    /// Audio recorded so far, from the sample count.
    pub fn duration(&self) -> Duration {
        samples_duration(self.samples_written, self.sidecar.sample_rate)
    }

    /// Writes the final header and closes the file.
    pub(super) fn close(mut self) -> Result<ClosedRecording, StoreError> {
        self.flush()?;
        let Recording {
            sidecar,
            wav_path,
            samples_written,
            ..
        } = self;
        Ok(ClosedRecording {
            sidecar,
            wav_path,
            samples: samples_written,
        })
    }
}

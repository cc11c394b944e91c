//! The in-progress recording: a hound WAV writer on `recording/<id>.wav`.
//!
//! This is the hot path (up to a thousand concurrent calls, one frame every
//! 20 ms each), so a write only copies samples into a per-call `BufWriter`;
//! there is no fsync and no database work until [`super::Store::finish`].
//! About once a second of audio the WAV header is rewritten and the buffer
//! handed to the kernel (`WavWriter::flush`), so if the process dies the file
//! is a valid WAV up to the last second; recovery rebuilds the header from
//! the file length anyway, which also covers a machine crash.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hound::{SampleFormat, WavSpec, WavWriter};
use uuid::Uuid;

use super::error::StoreError;
use super::sidecar::Sidecar;

/// Bytes per stored sample: 16-bit PCM.
pub const BYTES_PER_SAMPLE: u64 = 2;

/// Size of the canonical header hound writes for 16-bit mono PCM
/// (RIFF + WAVE + 16-byte `fmt ` chunk + `data` chunk header).
pub const WAV_HEADER_LEN: u64 = 44;

/// Per-call write buffer: a second of 16 kHz audio, so at most one write
/// system call per second per call at the rates we record.
const WRITE_BUFFER_BYTES: usize = 32 * 1024;

/// Samples handed to hound's 16-bit writer at once; bounds its scratch buffer.
const CHUNK_SAMPLES: usize = 4096;

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

/// Duration of `samples` mono samples at `sample_rate`.
pub fn samples_duration(samples: u64, sample_rate: u32) -> Duration {
    if sample_rate == 0 {
        return Duration::ZERO;
    }
    let nanos = u128::from(samples) * 1_000_000_000 / u128::from(sample_rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A message being recorded. Obtain one from [`super::Store::start_recording`],
/// feed it decoded PCM with [`Recording::write`], and hand it back to
/// [`super::Store::finish`]. If it is dropped instead (a panic, a bug), its
/// files stay in `recording/` and the next start-up's recovery lists them.
pub struct Recording {
    sidecar: Sidecar,
    wav_path: PathBuf,
    writer: WavWriter<BufWriter<File>>,
    samples_written: u64,
    samples_since_flush: u64,
}

/// What [`Recording::close`] leaves for the commit step.
pub struct ClosedRecording {
    /// Metadata of the message.
    pub sidecar: Sidecar,
    /// `recording/<id>.wav`, complete and closed (not yet fsynced).
    pub wav_path: PathBuf,
    /// Mono samples in the file.
    pub samples: u64,
}

impl Recording {
    /// Creates the WAV file and puts its header on disk. The sidecar must
    /// already be durable.
    pub(super) fn create(sidecar: Sidecar, wav_path: PathBuf) -> Result<Recording, StoreError> {
        let file = File::create(&wav_path).map_err(StoreError::io("create", &wav_path))?;
        let buffered = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let mut writer = WavWriter::new(buffered, wav_spec(sidecar.sample_rate))
            .map_err(StoreError::wav(&wav_path))?;
        // Header on disk now, so even a crash before the first second of
        // audio leaves a recognizable file.
        writer.flush().map_err(StoreError::wav(&wav_path))?;
        Ok(Recording {
            sidecar,
            wav_path,
            writer,
            samples_written: 0,
            samples_since_flush: 0,
        })
    }

    /// The message id chosen when the recording started.
    pub fn id(&self) -> Uuid {
        self.sidecar.id
    }

    /// Path of the in-progress WAV file.
    pub fn path(&self) -> &Path {
        &self.wav_path
    }

    /// Appends decoded mono PCM. Buffered: about once per second of audio the
    /// header is updated and the buffer flushed to the kernel (no fsync).
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
        for chunk in samples.chunks(CHUNK_SAMPLES) {
            // A chunk is at most CHUNK_SAMPLES long, which fits u32.
            let mut out = self.writer.get_i16_writer(chunk.len() as u32);
            for &sample in chunk {
                out.write_sample(sample);
            }
            out.flush().map_err(StoreError::wav(&self.wav_path))?;
        }
        self.samples_written = total;
        self.samples_since_flush += samples.len() as u64;
        if self.samples_since_flush >= u64::from(self.sidecar.sample_rate) {
            self.writer
                .flush()
                .map_err(StoreError::wav(&self.wav_path))?;
            self.samples_since_flush = 0;
        }
        Ok(())
    }

    /// Brings the header up to date and hands buffered audio to the kernel,
    /// as [`Recording::write`] does every second. Call it at hang-up when
    /// [`super::Store::finish`] may wait for a worker: a process crash in
    /// the meantime then loses nothing of the call.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.samples_since_flush = 0;
        self.writer.flush().map_err(StoreError::wav(&self.wav_path))
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
    pub(super) fn close(self) -> Result<ClosedRecording, StoreError> {
        let Recording {
            sidecar,
            wav_path,
            writer,
            samples_written,
            ..
        } = self;
        writer.finalize().map_err(StoreError::wav(&wav_path))?;
        Ok(ClosedRecording {
            sidecar,
            wav_path,
            samples: samples_written,
        })
    }
}

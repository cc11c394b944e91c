//! Audio below the call: codecs, containers, resampling and silence.
//!
//! Everything here is sans-IO and synchronous: it turns samples into bytes
//! and back, and never touches a socket, a clock or a file by name (the Ogg
//! reader and writer take any `Read`/`Write`). The call path and the storage
//! layer decide where the bytes go.
//!
//! - [`g722`]: ITU-T G.722 at 64 kbit/s, the wideband codec of desk phones;
//! - [`opus`]: Opus (RFC 6716) through libopus, for calls and storage;
//! - [`ogg_opus`]: Ogg Opus files (RFC 7845), how messages are stored;
//! - [`resample`]: mono rate conversion between the rates codecs use;
//! - [`silence`]: an energy detector for the silence cut-off and trimming.
//!
//! All PCM is mono, signed 16-bit, at the rate each function names.

pub mod g722;
pub mod ogg_opus;
pub mod opus;
pub mod resample;
pub mod silence;

#[cfg(test)]
mod external_tools;
#[cfg(test)]
mod test_signals;

pub use self::g722::{G722Decoder, G722Encoder};
pub use self::ogg_opus::{read_ogg_opus, read_ogg_opus_at, OggOpusAudio, OggOpusWriter};
pub use self::opus::{OpusDecoder, OpusEncoder};
pub use self::resample::{resample, Resampler};
pub use self::silence::{
    is_all_silence, trailing_silence, SilenceState, SilenceTracker, DEFAULT_THRESHOLD_DBFS,
};

/// Why an audio operation failed, with what the caller needs to report it:
/// the rate or frame size that was refused, the libopus call that failed,
/// or what is wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// A codec or converter was asked for a sample rate it cannot run at.
    #[error("{what} does not support a sample rate of {rate} Hz")]
    UnsupportedRate {
        /// The component that refused the rate, e.g. "Opus encoder".
        what: &'static str,
        /// The rate asked for, in Hz.
        rate: u32,
    },
    /// An Opus frame was not of the length the encoder was set up for.
    #[error("Opus frame has {got} samples, expected {expected} (20 ms)")]
    FrameLength {
        /// Samples per frame at the encoder's rate.
        expected: usize,
        /// Samples that were passed.
        got: usize,
    },
    /// libopus refused a call; `operation` names which one.
    #[error("Opus {operation} failed: {source}")]
    Opus {
        /// The libopus operation, e.g. "encode" or "set bitrate".
        operation: &'static str,
        /// The error libopus reported.
        #[source]
        source: audiopus::Error,
    },
    /// The resampler could not be built or run for this pair of rates.
    #[error("resampling from {from} Hz to {to} Hz failed: {reason}")]
    Resample {
        /// Input rate in Hz.
        from: u32,
        /// Output rate in Hz.
        to: u32,
        /// What the resampler reported.
        reason: String,
    },
    /// The Ogg container could not be read (bad capture pattern, CRC, ...).
    #[error("Ogg stream is unreadable: {0}")]
    Ogg(#[from] ogg::OggReadError),
    /// The stream is Ogg but not a valid Ogg Opus stream (RFC 7845 §5).
    #[error("not a valid Ogg Opus stream: {0}")]
    NotOggOpus(String),
    /// A metadata key cannot be written as an Ogg Opus comment, whose keys
    /// are printable ASCII without `=` (RFC 7845 §5.2).
    #[error("tag key {key:?} must be printable ASCII without '='")]
    InvalidTag {
        /// The key that was refused.
        key: String,
    },
    /// Writing the output failed.
    #[error("writing audio failed: {0}")]
    Io(#[from] std::io::Error),
}

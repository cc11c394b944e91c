//! Mailbox greetings: what a caller hears before the beep.
//!
//! As in Asterisk, a mailbox has up to three greetings, one per
//! [`GreetingKind`]: `unavailable` (no answer), `busy` (the call was
//! diverted because the user was busy) and `temporary` (an "I am away this
//! week" greeting that overrides both while it is set). A mailbox without
//! the one it needs gets the built-in default, a short spoken sentence made
//! by `scripts/make-greetings.sh` and compiled into the binary, so a fresh
//! install works without any file.
//!
//! Greetings are stored as `<data_dir>/greetings/<mailbox>/<kind>.wav`,
//! mono 16-bit PCM at 16 kHz: wideband codecs (G.722, Opus) play them as
//! they are and 8 kHz calls get them downsampled, so one file serves every
//! call. Whatever WAV the operator supplies (any common rate, mono or
//! stereo, integer or float samples) is converted once, when it is set,
//! with the band-limited resampler of [`crate::audio::resample`]. Files are
//! written to a temporary name, fsynced and renamed, so a crash leaves the
//! old greeting or the new one, never half of one.

use std::fmt;
use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::audio::{resample, AudioError};

/// The rate greetings are stored at: wideband, as G.722 and Opus calls use.
pub const GREETING_RATE: u32 = 16_000;

/// The longest greeting accepted, in seconds: longer files are almost
/// certainly a mistake (a whole recording), and callers hang up anyway.
pub const MAX_GREETING_SECONDS: u32 = 300;

/// The built-in default greeting ("The person you are calling is not
/// available. Please leave a message after the tone."), a 16 kHz mono
/// 16-bit WAV made by `scripts/make-greetings.sh`.
const DEFAULT_WAV: &[u8] = include_bytes!("../../sip-profiles/greetings/default.wav");

/// The Diversion reason (RFC 5806 §3) under which the busy greeting plays;
/// mailbox resolution maps SIP cause 486 (History-Info) to it as well.
const BUSY_REASON: &str = "user-busy";

/// Which of a mailbox's greetings; see the module documentation for when
/// each one plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GreetingKind {
    /// For calls that were not answered (and any reason but busy).
    Unavailable,
    /// For calls diverted because the user was busy.
    Busy,
    /// Overrides the other two while it is set.
    Temporary,
}

impl GreetingKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [GreetingKind; 3] = [
        GreetingKind::Unavailable,
        GreetingKind::Busy,
        GreetingKind::Temporary,
    ];

    /// The kind's name, as on the command line and in file names.
    pub const fn name(self) -> &'static str {
        match self {
            GreetingKind::Unavailable => "unavailable",
            GreetingKind::Busy => "busy",
            GreetingKind::Temporary => "temporary",
        }
    }
}

impl fmt::Display for GreetingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GreetingKind {
    type Err = GreetingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GreetingKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| GreetingError::UnknownKind(s.to_string()))
    }
}

/// The greeting a call plays, as chosen by [`Greetings::choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// One of the mailbox's own greetings.
    Stored {
        /// Which one.
        kind: GreetingKind,
        /// Its file.
        path: PathBuf,
    },
    /// The built-in spoken greeting.
    Default,
}

/// A stored greeting, as listed and as reported after it is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreetingInfo {
    /// The mailbox it belongs to.
    pub mailbox: String,
    /// Which greeting it is.
    pub kind: GreetingKind,
    /// Its file.
    pub path: PathBuf,
    /// Its length in milliseconds.
    pub duration_ms: u64,
    /// Its sample rate in Hz (always [`GREETING_RATE`] for files vmesh wrote).
    pub sample_rate: u32,
    /// The file's size in bytes.
    pub size_bytes: u64,
}

/// Why a greeting could not be set, cleared, listed or loaded; each names
/// the mailbox or file involved.
#[derive(Debug, thiserror::Error)]
pub enum GreetingError {
    /// Mailboxes are 1 to 32 ASCII digits; anything else is refused before
    /// it can become part of a path.
    #[error("invalid mailbox {0:?}: expected 1 to 32 digits")]
    InvalidMailbox(String),
    /// Not one of `unavailable`, `busy`, `temporary`.
    #[error("unknown greeting kind {0:?}: expected unavailable, busy or temporary")]
    UnknownKind(String),
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file is not a WAV file vmesh can read (for example compressed
    /// WAV, or not WAV at all).
    #[error("{path}: unsupported audio ({reason}); expected a PCM or float WAV file")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// What the WAV reader or the resampler reported.
        reason: String,
    },
    /// The file holds no audio.
    #[error("{path}: the WAV file holds no audio")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is longer than [`MAX_GREETING_SECONDS`].
    #[error("{path}: {seconds:.1} s is longer than the {max} s a greeting may last")]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its length.
        seconds: f64,
        /// The limit.
        max: u32,
    },
    /// Storing or removing the greeting failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// The greetings of every mailbox of one data directory.
#[derive(Debug, Clone)]
pub struct Greetings {
    root: PathBuf,
}

impl Greetings {
    /// The greetings kept under `data_dir/greetings`. Nothing is touched
    /// until a greeting is set.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Greetings {
            root: data_dir.as_ref().join("greetings"),
        }
    }

    /// Where `mailbox`'s `kind` greeting is stored.
    pub fn path_of(&self, mailbox: &str, kind: GreetingKind) -> Result<PathBuf, GreetingError> {
        let mailbox = valid_mailbox(mailbox)?;
        Ok(self.root.join(mailbox).join(format!("{}.wav", kind.name())))
    }

    /// Sets `mailbox`'s `kind` greeting from the WAV file `input`, converted
    /// to mono 16 kHz 16-bit, replacing any previous one atomically.
    pub fn set(
        &self,
        mailbox: &str,
        kind: GreetingKind,
        input: &Path,
    ) -> Result<GreetingInfo, GreetingError> {
        let target = self.path_of(mailbox, kind)?;
        let file = fs::File::open(input).map_err(|source| GreetingError::Unreadable {
            path: input.to_path_buf(),
            source,
        })?;
        let (pcm, rate) = decode_wav(io::BufReader::new(file), input)?;
        let pcm = resample(&pcm, rate, GREETING_RATE).map_err(|e| unsupported(input, &e))?;
        let bytes = encode_wav(&pcm).map_err(|reason| GreetingError::UnsupportedFormat {
            path: input.to_path_buf(),
            reason,
        })?;
        write_atomically(&target, &bytes)?;
        Ok(GreetingInfo {
            mailbox: mailbox.to_string(),
            kind,
            path: target,
            duration_ms: duration_ms(pcm.len() as u64, GREETING_RATE),
            sample_rate: GREETING_RATE,
            size_bytes: bytes.len() as u64,
        })
    }

    /// Removes `mailbox`'s `kind` greeting; `Ok(false)` when there was none.
    pub fn clear(&self, mailbox: &str, kind: GreetingKind) -> Result<bool, GreetingError> {
        let path = self.path_of(mailbox, kind)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(GreetingError::Write { path, source }),
        }
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(true)
    }

    /// The greetings `mailbox` has, in [`GreetingKind::ALL`] order.
    pub fn list(&self, mailbox: &str) -> Result<Vec<GreetingInfo>, GreetingError> {
        let mut list = Vec::new();
        for kind in GreetingKind::ALL {
            let path = self.path_of(mailbox, kind)?;
            if !path.is_file() {
                continue;
            }
            list.push(info_of(mailbox, kind, path)?);
        }
        Ok(list)
    }

    /// The greeting a call for `mailbox` plays, given the call's diversion
    /// `reason` (RFC 5806 token): the temporary greeting if set; else the
    /// busy one when the reason is `user-busy` and it is set; else the
    /// unavailable one if set; else the built-in default. An invalid
    /// mailbox gets the default.
    pub fn choose(&self, mailbox: &str, reason: Option<&str>) -> Greeting {
        let busy = reason.is_some_and(|r| r.trim().eq_ignore_ascii_case(BUSY_REASON));
        let wanted = [
            (GreetingKind::Temporary, true),
            (GreetingKind::Busy, busy),
            (GreetingKind::Unavailable, true),
        ];
        for (kind, applies) in wanted {
            if !applies {
                continue;
            }
            match self.path_of(mailbox, kind) {
                Ok(path) if path.is_file() => return Greeting::Stored { kind, path },
                Ok(_) => {}
                Err(_) => return Greeting::Default,
            }
        }
        Greeting::Default
    }
}

/// The audio of `greeting` as mono 16-bit PCM at `rate` Hz, the call's
/// audio rate (8000 for G.711, 16000 for G.722 and wideband Opus).
///
/// A stored greeting that cannot be read (deleted meanwhile, damaged) is an
/// error; the call should then play [`Greeting::Default`], which always
/// loads.
pub fn load_pcm(greeting: &Greeting, rate: u32) -> Result<Vec<i16>, GreetingError> {
    let (pcm, from, path) = match greeting {
        Greeting::Stored { path, .. } => {
            let file = fs::File::open(path).map_err(|source| GreetingError::Unreadable {
                path: path.clone(),
                source,
            })?;
            let (pcm, from) = decode_wav(io::BufReader::new(file), path)?;
            (pcm, from, path.clone())
        }
        Greeting::Default => return default_pcm(rate),
    };
    resample(&pcm, from, rate).map_err(|e| unsupported(&path, &e))
}

/// The built-in greeting at `rate`, decoded and resampled (calls share
/// one copy per rate: [`super::greeting_cache`]).
fn default_pcm(rate: u32) -> Result<Vec<i16>, GreetingError> {
    let path = PathBuf::from("(built-in default greeting)");
    let (pcm, from) = decode_wav(Cursor::new(DEFAULT_WAV), &path)?;
    resample(&pcm, from, rate).map_err(|e| unsupported(&path, &e))
}

/// Checks that `mailbox` is 1 to 32 ASCII digits, the form mailbox
/// resolution accepts, and so a safe single path component.
pub fn valid_mailbox(mailbox: &str) -> Result<&str, GreetingError> {
    if crate::config::is_valid_mailbox(mailbox) {
        Ok(mailbox)
    } else {
        Err(GreetingError::InvalidMailbox(mailbox.to_string()))
    }
}

/// Reads a whole WAV stream as mono 16-bit PCM at its own rate: channels
/// are averaged, integer samples of 8 to 32 bits scaled to 16, float
/// samples clamped to full scale.
fn decode_wav<R: Read>(input: R, path: &Path) -> Result<(Vec<i16>, u32), GreetingError> {
    let reader = hound::WavReader::new(input).map_err(|e| hound_error(path, e))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let frames = u64::from(reader.duration());
    if frames == 0 {
        return Err(GreetingError::Empty {
            path: path.to_path_buf(),
        });
    }
    let seconds = frames as f64 / f64::from(spec.sample_rate.max(1));
    if seconds > f64::from(MAX_GREETING_SECONDS) {
        return Err(GreetingError::TooLong {
            path: path.to_path_buf(),
            seconds,
            max: MAX_GREETING_SECONDS,
        });
    }
    // Every sample as a float in [-1, 1], whatever the stored format.
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| hound_error(path, e))?,
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| hound_error(path, e))?
        }
        (format, bits) => {
            return Err(GreetingError::UnsupportedFormat {
                path: path.to_path_buf(),
                reason: format!("{bits}-bit {format:?} samples"),
            })
        }
    };
    let mono = samples
        .chunks(channels)
        .map(|frame| {
            let mean = frame.iter().sum::<f32>() / channels as f32;
            (mean * 32768.0).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    Ok((mono, spec.sample_rate))
}

/// A WAV file, in memory, of mono 16-bit PCM at [`GREETING_RATE`].
fn encode_wav(pcm: &[i16]) -> Result<Vec<u8>, String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: GREETING_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::with_capacity(44 + 2 * pcm.len()));
    let mut writer = hound::WavWriter::new(&mut bytes, spec).map_err(|e| e.to_string())?;
    for &sample in pcm {
        writer.write_sample(sample).map_err(|e| e.to_string())?;
    }
    writer.finalize().map_err(|e| e.to_string())?;
    Ok(bytes.into_inner())
}

/// Writes `bytes` to `target` through a temporary file in the same
/// directory: written, fsynced, renamed over the target, and the directory
/// fsynced, so the new name survives a crash.
fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), GreetingError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GreetingError::Write { path, source }
    };
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(failed(dir))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, target)
    })();
    if let Err(source) = written {
        // Best effort: the temporary file is garbage either way.
        let _ = fs::remove_file(&temp);
        return Err(GreetingError::Write {
            path: target.to_path_buf(),
            source,
        });
    }
    sync_dir(dir)
}

/// Fsyncs a directory, making a rename or removal in it durable.
fn sync_dir(dir: &Path) -> Result<(), GreetingError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| GreetingError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// What [`Greetings::list`] reports for one stored file.
fn info_of(
    mailbox: &str,
    kind: GreetingKind,
    path: PathBuf,
) -> Result<GreetingInfo, GreetingError> {
    let size_bytes = fs::metadata(&path)
        .map_err(|source| GreetingError::Unreadable {
            path: path.clone(),
            source,
        })?
        .len();
    let reader = hound::WavReader::open(&path).map_err(|e| hound_error(&path, e))?;
    let spec = reader.spec();
    Ok(GreetingInfo {
        mailbox: mailbox.to_string(),
        kind,
        duration_ms: duration_ms(u64::from(reader.duration()), spec.sample_rate),
        sample_rate: spec.sample_rate,
        path,
        size_bytes,
    })
}

/// `frames` samples at `rate` Hz, in whole milliseconds.
fn duration_ms(frames: u64, rate: u32) -> u64 {
    frames * 1000 / u64::from(rate.max(1))
}

/// Maps a WAV reader error: I/O failures are unreadable files, the rest
/// unsupported or malformed content.
fn hound_error(path: &Path, error: hound::Error) -> GreetingError {
    match error {
        hound::Error::IoError(source) => GreetingError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
        other => GreetingError::UnsupportedFormat {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// A resampler refusal (a rate outside 1–384 kHz) as an unsupported file.
fn unsupported(path: &Path, error: &AudioError) -> GreetingError {
    GreetingError::UnsupportedFormat {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
#[path = "greetings_tests.rs"]
mod tests;

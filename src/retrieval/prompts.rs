//! The prompt folder of one language: clip name → PCM at a call's rate.
//!
//! A language is a folder of Ogg Opus files (RFC 7845), one per
//! [`Clip`] name, as `scripts/make-prompts.sh` makes them: mono, 16 kHz
//! input, about 16 kbit/s. English is compiled into the binary (a fresh
//! install speaks without any file); a site adds a language as
//! `<retrieval.prompts_dir>/<language>/`, checked clip by clip when the
//! profile is loaded (`vmesh check`, `vmesh serve`), so a missing file is
//! an error at start-up rather than silence in a call.
//!
//! Each clip is decoded once per rate and kept (about 5 MB of PCM for the
//! whole English set at 16 kHz): prompts are the most played audio of the
//! server. Decoding uses [`crate::audio::ogg_opus`], straight at the call's
//! rate when Opus decodes at it (8 and 16 kHz: the decoder band-limits as
//! it goes, at a fraction of a resampler's cost); other rates go through
//! the band-limited resampler of [`crate::audio::resample()`].

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::clip::{Clip, PAUSE_MS};
use crate::audio::{read_ogg_opus_at, AudioError};
use crate::config::{RetrievalConfig, DEFAULT_LANGUAGE};

/// The rate `scripts/make-prompts.sh` records clips at.
pub const PROMPT_RATE: u32 = 16_000;

/// The file extension of prompt clips.
pub const PROMPT_EXTENSION: &str = "opus";

/// Declares the built-in English clips, compiled in from
/// `sip-profiles/prompts/en/`.
macro_rules! built_in {
    ($($name:literal,)*) => {
        &[$(($name, include_bytes!(concat!("../../sip-profiles/prompts/en/", $name, ".opus")))),*]
    };
}

/// The English set: (clip name, Ogg Opus file).
const BUILT_IN_EN: &[(&str, &[u8])] = built_in![
    "you-have",
    "new",
    "old",
    "and",
    "no",
    "message",
    "messages",
    "message-number",
    "received",
    "at",
    "from",
    "from-unknown-caller",
    "oh",
    "hundred",
    "thousand",
    "am",
    "pm",
    "enter-mailbox",
    "enter-pin",
    "login-incorrect",
    "too-many-attempts",
    "goodbye",
    "invalid-option",
    "main-menu",
    "main-help",
    "message-options",
    "message-help",
    "message-deleted",
    "message-saved",
    "no-more-messages",
    "no-previous-message",
    "mailbox-options",
    "temporary-greeting-on",
    "temporary-greeting-removed",
    "record-unavailable",
    "record-busy",
    "record-temporary",
    "recording-too-short",
    "review-greeting",
    "greeting-saved",
    "greeting-not-changed",
    "enter-new-pin",
    "reenter-new-pin",
    "pins-differ",
    "pin-refused",
    "pin-changed",
    "pin-not-changed",
    "number-0",
    "number-1",
    "number-2",
    "number-3",
    "number-4",
    "number-5",
    "number-6",
    "number-7",
    "number-8",
    "number-9",
    "number-10",
    "number-11",
    "number-12",
    "number-13",
    "number-14",
    "number-15",
    "number-16",
    "number-17",
    "number-18",
    "number-19",
    "number-20",
    "number-30",
    "number-40",
    "number-50",
    "number-60",
    "number-70",
    "number-80",
    "number-90",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Why a prompt could not be played or a prompt folder is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The profile asks for a language that is not built in, without a
    /// prompts folder to find it in.
    #[error("no built-in prompts for language {language:?}; set retrieval.prompts_dir to a folder holding {language}/")]
    UnknownLanguage {
        /// The language asked for.
        language: String,
    },
    /// The language's folder lacks a clip (or cannot read it).
    #[error("prompt {clip}: cannot read {path}: {source}")]
    Unreadable {
        /// The clip.
        clip: String,
        /// Its file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A clip's file is not Ogg Opus audio vmesh can decode.
    #[error("prompt {clip} ({origin}): {source}")]
    Undecodable {
        /// The clip.
        clip: String,
        /// Its file, or "built-in".
        origin: String,
        /// The decoder's or resampler's error.
        #[source]
        source: AudioError,
    },
}

/// Decoded clips by (clip, rate).
type ClipCache = HashMap<(Clip, u32), Arc<[i16]>>;

/// Where a language's clips come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// The English set compiled into vmesh.
    BuiltIn,
    /// A folder of `<name>.opus` files.
    Folder(PathBuf),
}

/// The clips of one language, decoded on first use and cached per rate.
/// `Send + Sync`: one per server, shared by every call.
#[derive(Debug)]
pub struct Prompts {
    source: PromptSource,
    cache: Mutex<ClipCache>,
}

impl Prompts {
    /// The built-in English prompts.
    pub fn built_in() -> Prompts {
        Prompts::new(PromptSource::BuiltIn)
    }

    /// The prompts of a folder; nothing is read until [`Prompts::check`]
    /// or the first clip.
    pub fn folder(dir: impl Into<PathBuf>) -> Prompts {
        Prompts::new(PromptSource::Folder(dir.into()))
    }

    /// The prompts a profile asks for (`retrieval.language`, and
    /// `retrieval.prompts_dir` when set), checked to be complete.
    pub fn for_profile(config: &RetrievalConfig) -> Result<Prompts, PromptError> {
        let prompts = match &config.prompts_dir {
            Some(dir) => Prompts::folder(dir.join(&config.language)),
            None if config.language == DEFAULT_LANGUAGE => Prompts::built_in(),
            None => {
                return Err(PromptError::UnknownLanguage {
                    language: config.language.clone(),
                })
            }
        };
        prompts.check()?;
        Ok(prompts)
    }

    fn new(source: PromptSource) -> Prompts {
        Prompts {
            source,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Where the clips come from.
    pub fn source(&self) -> &PromptSource {
        &self.source
    }

    /// Decodes every clip of [`Clip::all`] at its own rate: a complete,
    /// readable folder passes, anything else names the first bad clip.
    pub fn check(&self) -> Result<(), PromptError> {
        for clip in Clip::all() {
            self.decode(clip)?;
        }
        Ok(())
    }

    /// One clip as mono 16-bit PCM at `rate` Hz ([`Clip::Pause`] is
    /// silence).
    pub fn clip(&self, clip: Clip, rate: u32) -> Result<Arc<[i16]>, PromptError> {
        if let Some(pcm) = self.lock().get(&(clip, rate)) {
            return Ok(Arc::clone(pcm));
        }
        let pcm: Arc<[i16]> = match clip {
            Clip::Pause => vec![0; (PAUSE_MS * rate / 1000) as usize].into(),
            _ => self.decode_at(clip, Some(rate))?.0.into(),
        };
        self.lock().insert((clip, rate), Arc::clone(&pcm));
        Ok(pcm)
    }

    /// A whole sentence: its clips one after the other, at `rate` Hz.
    pub fn render(&self, clips: &[Clip], rate: u32) -> Result<Vec<i16>, PromptError> {
        let mut pcm = Vec::new();
        for &clip in clips {
            pcm.extend_from_slice(&self.clip(clip, rate)?);
        }
        Ok(pcm)
    }

    /// Reads and decodes a clip's file at its own rate.
    fn decode(&self, clip: Clip) -> Result<(Vec<i16>, u32), PromptError> {
        self.decode_at(clip, None)
    }

    /// Reads and decodes a clip's file at `rate` (`None`: its own); its
    /// PCM and rate.
    fn decode_at(&self, clip: Clip, rate: Option<u32>) -> Result<(Vec<i16>, u32), PromptError> {
        let Some(name) = clip.name() else {
            return Ok((Vec::new(), PROMPT_RATE));
        };
        let bytes: Vec<u8> = match &self.source {
            PromptSource::BuiltIn => BUILT_IN_EN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, bytes)| bytes.to_vec())
                .ok_or_else(|| PromptError::Unreadable {
                    clip: name.clone(),
                    path: PathBuf::from(format!("(built-in)/{name}.{PROMPT_EXTENSION}")),
                    source: std::io::ErrorKind::NotFound.into(),
                })?,
            PromptSource::Folder(dir) => {
                let path = clip_path(dir, &name);
                std::fs::read(&path).map_err(|source| PromptError::Unreadable {
                    clip: name.clone(),
                    path,
                    source,
                })?
            }
        };
        let audio =
            read_ogg_opus_at(Cursor::new(bytes), rate).map_err(|e| self.undecodable(clip, e))?;
        Ok((audio.pcm, audio.sample_rate))
    }

    fn undecodable(&self, clip: Clip, source: AudioError) -> PromptError {
        let name = clip.name().unwrap_or_default();
        let origin = match &self.source {
            PromptSource::BuiltIn => "built-in".to_owned(),
            PromptSource::Folder(dir) => clip_path(dir, &name).display().to_string(),
        };
        PromptError::Undecodable {
            clip: name,
            origin,
            source,
        }
    }

    /// The cache; a panic elsewhere cannot leave a half-written entry, so a
    /// poisoned lock is taken over.
    fn lock(&self) -> std::sync::MutexGuard<'_, ClipCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `<dir>/<name>.opus`.
fn clip_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{PROMPT_EXTENSION}"))
}

#[cfg(test)]
#[path = "prompts_tests.rs"]
mod tests;

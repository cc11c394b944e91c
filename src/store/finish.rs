//! Ending a recording: trailing silence trimmed, silent or too-short
//! messages discarded, and the audio kept in the profile's format.
//!
//! Calls are recorded losslessly to WAV on the media path (`recording.rs`);
//! everything here runs after hang-up, on a blocking thread, so neither
//! reading the recording back nor encoding it can delay a call. Encoding
//! to Opus costs real CPU, so the server runs [`Store::finish`] on an
//! [`super::EncodePool`] that bounds how many run at once.
//!
//! The judgement is made on the whole recording in memory (a 180 s message
//! at 16 kHz is 5.8 MB), because the silence detector looks back from the
//! end: it cannot know what is trailing silence until the recording is
//! over. The pool's size bounds the memory this takes.
//!
//! The ordered steps that make the result durable are in `commit.rs`; a
//! crash at any point leaves the recording and its sidecar, or a final
//! file, for [`Store::recover`] to finish.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use hound::WavReader;

use crate::audio::{is_all_silence, trailing_silence};

use super::encode;
use super::error::StoreError;
use super::message::{validate_peer, Message, FORMAT_OPUS, FORMAT_WAV};
use super::outbox::Route;
use super::recording::{samples_duration, ClosedRecording, Recording};
use super::reserve;
use super::wav_header;
use super::Store;

/// The container a profile stores messages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFormat {
    /// 16-bit PCM WAV, exactly as recorded: no encoding cost, about 0.96 MB
    /// per minute at 8 kHz, 1.9 MB at 16 kHz.
    Wav,
    /// Ogg Opus (RFC 7845), encoded after hang-up: about 0.18 MB per minute
    /// at the default 24 kbit/s. Recordings at a rate Opus cannot take as
    /// input (other than 8, 12, 16, 24 or 48 kHz) are kept as WAV instead.
    Opus {
        /// Encoder bitrate in bits per second.
        bitrate: u32,
    },
}

/// How the end of a recording is judged by its sound, with the energy
/// detector of [`crate::audio::silence`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SilenceRules {
    /// Frames quieter than this (RMS, dBFS) are silence.
    pub threshold_dbfs: f64,
    /// Discard a message that is silence from start to end (a caller who
    /// never spoke). When false such a message is kept whole, untrimmed.
    pub discard_silent: bool,
}

/// What a profile asks of a finished recording: the minimum length, the
/// stored format and the silence rules. Built once from the profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoragePolicy {
    /// Messages shorter than this, after trimming, are discarded (a hang-up
    /// during the greeting). Not applied by [`Store::recover`]: audio cut
    /// by a crash is kept however short.
    pub min_duration: Duration,
    /// The container of stored messages.
    pub format: StoreFormat,
    /// Trailing silence is trimmed (and all-silent messages discarded, if
    /// asked) when set; the audio is kept as recorded when `None`.
    pub silence: Option<SilenceRules>,
}

impl StoragePolicy {
    /// WAV, no silence processing: what the store did before formats and
    /// silence rules existed.
    pub fn wav(min_duration: Duration) -> Self {
        StoragePolicy {
            min_duration,
            format: StoreFormat::Wav,
            silence: None,
        }
    }

    /// The policy for a partial recording of `samples` samples: one the
    /// server cut (a crash, a shutdown, a full disk), not the caller. Its
    /// format and trimming stay, but nothing is discarded: the minimum
    /// length and the silence discard judge a caller's own hang-up, and
    /// this caller was answered and believes a message was left. A
    /// recording with no audio at all (a crash in the call's first second,
    /// before any audio left the write buffer) is kept as an empty WAV,
    /// which needs no encoder: its owner still learns who called, and when.
    pub fn for_partial(&self, samples: u64) -> StoragePolicy {
        StoragePolicy {
            min_duration: Duration::ZERO,
            format: if samples == 0 {
                StoreFormat::Wav
            } else {
                self.format
            },
            silence: self.silence.map(|rules| SilenceRules {
                discard_silent: false,
                ..rules
            }),
        }
    }
}

/// Why [`Store::finish`] kept nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    /// Shorter than the minimum duration once trailing silence was trimmed.
    TooShort,
    /// Silence from start to end, and the policy discards such messages.
    Silent,
}

/// Outcome of [`Store::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per call and matched at once; boxing buys nothing"
)]
pub enum Finished {
    /// The message is durable and listed.
    Stored(Message),
    /// Nothing was kept: both files were removed and nothing was listed.
    Discarded {
        /// The audio that was judged: the trimmed length for
        /// [`DiscardReason::TooShort`], the whole recording for
        /// [`DiscardReason::Silent`].
        duration: Duration,
        /// Why it was discarded.
        reason: DiscardReason,
    },
}

/// What to do with a recording, from its samples alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Keep the first `samples` samples.
    Keep { samples: u64 },
    /// Keep nothing; `samples` is the length that was judged.
    Discard { reason: DiscardReason, samples: u64 },
}

/// Judges a whole recording: silence first (all-silent, then the trailing
/// silence to trim), then the minimum length of what is left.
pub(super) fn judge(
    pcm: &[i16],
    rate: u32,
    silence: Option<&SilenceRules>,
    min_duration: Duration,
) -> Verdict {
    let len = pcm.len() as u64;
    let Some(rules) = silence else {
        return length_verdict(len, rate, min_duration);
    };
    // The detector works in f32; a threshold is a few dB, well within it.
    let threshold = rules.threshold_dbfs as f32;
    if is_all_silence(pcm, rate, threshold) {
        if rules.discard_silent {
            return Verdict::Discard {
                reason: DiscardReason::Silent,
                samples: len,
            };
        }
        // Trimming would leave nothing of a message the policy keeps.
        return length_verdict(len, rate, min_duration);
    }
    let trailing = trailing_silence(pcm, rate, threshold) as u64;
    length_verdict(len.saturating_sub(trailing), rate, min_duration)
}

/// Keeps `samples` unless they last less than `min_duration`.
pub(super) fn length_verdict(samples: u64, rate: u32, min_duration: Duration) -> Verdict {
    if samples_duration(samples, rate) < min_duration {
        Verdict::Discard {
            reason: DiscardReason::TooShort,
            samples,
        }
    } else {
        Verdict::Keep { samples }
    }
}

impl Store {
    /// Ends a recording and applies `policy`: trailing silence is trimmed,
    /// a silent or (after trimming) too-short message is discarded with
    /// both files removed ([`Finished::Discarded`]); otherwise the audio is
    /// stored in the policy's format (Opus encoded here, inline), moved to
    /// `messages/<mailbox>/<id>.<wav|opus>` and indexed with `partial`
    /// (true when the server cut the call: a `partial` recording is never
    /// discarded, see [`StoragePolicy::for_partial`]). With [`Route::Forward`] the
    /// message is queued for its home peer in the same transaction that
    /// lists it; with [`Route::Home`] it never is.
    ///
    /// Blocking, and CPU-heavy for Opus (about 0.3 s of one core per
    /// minute of 8 kHz speech, 0.6 s at 16 kHz): run it on an
    /// [`super::EncodePool`]. On error the files stay where they are and
    /// the next [`Store::recover`] lists them.
    pub fn finish(
        &self,
        rec: Recording,
        policy: &StoragePolicy,
        partial: bool,
        route: &Route,
    ) -> Result<Finished, StoreError> {
        if let Route::Forward { peer } = route {
            validate_peer(peer)?;
        }
        let id = rec.id().to_string();
        let finished = rec
            .close()
            .and_then(|closed| self.settle(&closed, policy, policy.min_duration, partial, route));
        match finished {
            Err(error) if error.is_disk_full() => {
                tracing::warn!(%id, %error, "disk full: storing the call with what fits");
                self.finish_what_fits(&id, policy, route)
            }
            other => other,
        }
    }

    /// Stores what a recording holds on disk after the file system filled
    /// up under it: the space reserve is given back (see `reserve.rs`), a
    /// half-made Opus file removed, and the recording finished the way
    /// recovery finishes one cut by a crash (header rebuilt from the file's
    /// length, listed as `partial`), as WAV, which needs no new space. The
    /// message is listed now, not after a restart.
    fn finish_what_fits(
        &self,
        id: &str,
        policy: &StoragePolicy,
        route: &Route,
    ) -> Result<Finished, StoreError> {
        reserve::release(&self.data_dir);
        let route = route.clone();
        match self.recover_as_wav(&self.sidecar_path(id), &|_| route.clone(), policy)? {
            Some(message) => Ok(Finished::Stored(message)),
            None => Ok(Finished::Discarded {
                duration: Duration::ZERO,
                reason: DiscardReason::TooShort,
            }),
        }
    }

    /// Judges a closed recording and stores or discards it; shared by
    /// [`Store::finish`] and recovery, which passes a zero minimum. A
    /// `partial` recording is judged by [`StoragePolicy::for_partial`].
    pub(super) fn settle(
        &self,
        closed: &ClosedRecording,
        policy: &StoragePolicy,
        min_duration: Duration,
        partial: bool,
        route: &Route,
    ) -> Result<Finished, StoreError> {
        let (policy, min_duration) = if partial {
            (&policy.for_partial(closed.samples), Duration::ZERO)
        } else {
            (policy, min_duration)
        };
        let rate = closed.sidecar.sample_rate;
        let id = closed.sidecar.id.to_string();
        let bitrate = match policy.format {
            StoreFormat::Opus { bitrate } if encode::supports_rate(rate) => Some(bitrate),
            StoreFormat::Opus { .. } => {
                tracing::warn!(%id, rate, "Opus cannot encode this sample rate; stored as WAV");
                None
            }
            StoreFormat::Wav => None,
        };
        let pcm = if policy.silence.is_some() || bitrate.is_some() {
            Some(match closed.samples {
                // No audio, and perhaps no file ([`ClosedRecording`]).
                0 => Vec::new(),
                _ => read_pcm(&closed.wav_path)?,
            })
        } else {
            None
        };
        let verdict = match &pcm {
            Some(pcm) => judge(pcm, rate, policy.silence.as_ref(), min_duration),
            None => length_verdict(closed.samples, rate, min_duration),
        };
        let kept = match verdict {
            Verdict::Keep { samples } => samples,
            Verdict::Discard { reason, samples } => {
                self.discard(closed)?;
                return Ok(Finished::Discarded {
                    duration: samples_duration(samples, rate),
                    reason,
                });
            }
        };
        let message = match (bitrate, &pcm) {
            (Some(bitrate), Some(pcm)) => {
                let audio = pcm.get(..kept as usize).unwrap_or(pcm);
                let tmp = self.encode_tmp_path(&id);
                encode::write_ogg_opus(&tmp, audio, rate, bitrate, &encode::tags(&closed.sidecar))?;
                self.publish(&closed.sidecar, &tmp, kept, FORMAT_OPUS, partial, route)?
            }
            _ => {
                if closed.samples == 0 {
                    // Kept with no audio (a partial call): the file may
                    // never have been made.
                    wav_header::write_empty(&closed.wav_path, rate)?;
                } else if kept < closed.samples {
                    wav_header::truncate(&closed.wav_path, rate, kept)?;
                }
                let wav = &closed.wav_path;
                self.publish(&closed.sidecar, wav, kept, FORMAT_WAV, partial, route)?
            }
        };
        Ok(Finished::Stored(message))
    }

    /// Removes a discarded recording: the sidecar first, since recovery
    /// lists a sidecar without audio as an answered call whose audio never
    /// reached the disk; a crash in between leaves audio without a sidecar,
    /// which recovery removes. A recording with no audio made no file.
    fn discard(&self, closed: &ClosedRecording) -> Result<(), StoreError> {
        let sidecar = self.sidecar_path(&closed.sidecar.id.to_string());
        self.spares
            .retire(&sidecar)
            .map_err(StoreError::io("remove", &sidecar))?;
        if closed.samples == 0 {
            return Ok(());
        }
        if let Err(error) = fs::remove_file(&closed.wav_path) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %closed.wav_path.display(), %error, "cannot remove a discarded recording; recovery will");
            }
        }
        Ok(())
    }
}

/// The samples of a closed 16-bit mono recording.
fn read_pcm(path: &Path) -> Result<Vec<i16>, StoreError> {
    WavReader::open(path)
        .map_err(StoreError::wav(path))?
        .samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(StoreError::wav(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::DEFAULT_THRESHOLD_DBFS;

    const RATE: u32 = 8000;
    const MIN: Duration = Duration::from_secs(1);

    fn rules(discard_silent: bool) -> SilenceRules {
        SilenceRules {
            threshold_dbfs: f64::from(DEFAULT_THRESHOLD_DBFS),
            discard_silent,
        }
    }

    /// A 440 Hz tone at -23 dBFS: speech to the detector.
    fn tone(len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| (3277.0 * (n as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin()) as i16)
            .collect()
    }

    #[test]
    fn trailing_silence_is_trimmed_before_the_length_check() {
        let mut pcm = tone(16_000);
        pcm.extend(vec![0; 24_000]);
        // 2 s of tone, then the 300 ms hangover kept, 2.7 s trimmed.
        assert_eq!(
            judge(&pcm, RATE, Some(&rules(true)), MIN),
            Verdict::Keep { samples: 18_400 }
        );
        assert_eq!(
            judge(&pcm, RATE, None, MIN),
            Verdict::Keep { samples: 40_000 }
        );
        let mut short = tone(4000);
        short.extend(vec![0; 40_000]);
        assert_eq!(
            judge(&short, RATE, Some(&rules(true)), MIN),
            Verdict::Discard {
                reason: DiscardReason::TooShort,
                samples: 6400
            }
        );
    }

    #[test]
    fn all_silence_is_discarded_only_when_asked() {
        let silent = vec![0i16; 40_000];
        assert_eq!(
            judge(&silent, RATE, Some(&rules(true)), MIN),
            Verdict::Discard {
                reason: DiscardReason::Silent,
                samples: 40_000
            }
        );
        assert_eq!(
            judge(&silent, RATE, Some(&rules(false)), MIN),
            Verdict::Keep { samples: 40_000 }
        );
    }

    #[test]
    fn the_minimum_is_inclusive() {
        assert_eq!(
            length_verdict(8000, RATE, MIN),
            Verdict::Keep { samples: 8000 }
        );
        assert_eq!(
            length_verdict(7999, RATE, MIN),
            Verdict::Discard {
                reason: DiscardReason::TooShort,
                samples: 7999
            }
        );
    }
}

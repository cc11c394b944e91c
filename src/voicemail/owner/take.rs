//! A greeting recorded by phone before its owner accepts it: a temporary
//! WAV file beside the mailbox's greetings.
//!
//! The take is written at the call's rate (mono 16-bit PCM) into
//! `<data_dir>/greetings/<mailbox>/.<kind>.<call>.take.wav`, a hidden name
//! that listings and the greeting choice never see, unique per call so two
//! owners' calls to one mailbox cannot overwrite each other's take. It is
//! played back from that file; accepting it goes through
//! [`Greetings::set`], which converts it to the greetings' 16 kHz and
//! replaces the greeting atomically (temporary file, fsync, rename); then
//! the take is removed. Discarding removes it. Trailing silence (the pause
//! before the owner reaches for `#`) is trimmed, as it is from messages.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audio::silence::trailing_silence;
use crate::retrieval::menu::GreetingKind as MenuGreetingKind;
use crate::voicemail::greetings::{
    load_pcm, Greeting, GreetingError, GreetingInfo, GreetingKind, Greetings,
};

/// The greeting kind of the store's greetings for a menu's kind: the two
/// enums name the same three greetings ([`MenuGreetingKind::name`]).
pub fn greeting_kind(kind: MenuGreetingKind) -> GreetingKind {
    match kind {
        MenuGreetingKind::Unavailable => GreetingKind::Unavailable,
        MenuGreetingKind::Busy => GreetingKind::Busy,
        MenuGreetingKind::Temporary => GreetingKind::Temporary,
    }
}

/// One call's take of one greeting.
#[derive(Debug, Clone)]
pub struct Take {
    greetings: Greetings,
    mailbox: String,
    kind: GreetingKind,
    path: PathBuf,
}

impl Take {
    /// The take of `mailbox`'s `kind` greeting on the call named `call`
    /// (a token of letters and digits).
    pub fn new(
        data_dir: &Path,
        mailbox: &str,
        kind: MenuGreetingKind,
        call: &str,
    ) -> Result<Take, GreetingError> {
        let greetings = Greetings::new(data_dir);
        let kind = greeting_kind(kind);
        let target = greetings.path_of(mailbox, kind)?;
        let dir = target.parent().unwrap_or(Path::new("."));
        let path = dir.join(format!(".{}.{call}.take.wav", kind.name()));
        Ok(Take {
            greetings,
            mailbox: mailbox.to_owned(),
            kind,
            path,
        })
    }

    /// The temporary file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the recorded `pcm` (at `rate`), without its trailing silence
    /// (below `threshold_dbfs`); returns the length kept.
    pub fn save(
        &self,
        pcm: &[i16],
        rate: u32,
        threshold_dbfs: f32,
    ) -> Result<Duration, GreetingError> {
        let kept = &pcm[..pcm.len() - trailing_silence(pcm, rate, threshold_dbfs)];
        let failed = |source| GreetingError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(failed)?;
        }
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let as_io = |e: hound::Error| match e {
            hound::Error::IoError(e) => e,
            other => io::Error::other(other.to_string()),
        };
        let written = (|| {
            let mut writer = hound::WavWriter::create(&self.path, spec)?;
            for &sample in kept {
                writer.write_sample(sample)?;
            }
            writer.finalize()
        })();
        written.map_err(|e| failed(as_io(e)))?;
        Ok(Duration::from_secs_f64(
            kept.len() as f64 / f64::from(rate.max(1)),
        ))
    }

    /// The take as PCM at `rate`, to play it back.
    pub fn load(&self, rate: u32) -> Result<Vec<i16>, GreetingError> {
        let take = Greeting::Stored {
            kind: self.kind,
            path: self.path.clone(),
        };
        load_pcm(&take, rate)
    }

    /// Makes the take the mailbox's greeting, then removes it.
    pub fn accept(&self) -> Result<GreetingInfo, GreetingError> {
        let info = self.greetings.set(&self.mailbox, self.kind, &self.path)?;
        self.discard()?;
        Ok(info)
    }

    /// Removes the take (no error when there is none).
    pub fn discard(&self) -> Result<(), GreetingError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(GreetingError::Write {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, ms: u32) -> Vec<i16> {
        (0..rate * ms / 1000)
            .map(|i| {
                let t = f64::from(i) / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn a_take_is_saved_trimmed_played_back_and_accepted_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let take = Take::new(dir.path(), "1001", MenuGreetingKind::Busy, "c1").unwrap();
        let mut pcm = tone(8000, 1500);
        pcm.extend(vec![0; 8000 * 2]);
        let length = take.save(&pcm, 8000, -45.0).unwrap();
        assert!(
            (1500..1900).contains(&length.as_millis()),
            "silence trimmed to a short hangover: {length:?}"
        );
        let greetings = Greetings::new(dir.path());
        assert!(
            greetings.list("1001").unwrap().is_empty(),
            "a take is no greeting"
        );
        let heard = take.load(8000).unwrap();
        assert_eq!(heard.len() as u128, length.as_millis() * 8);

        let info = take.accept().unwrap();
        assert_eq!(info.kind, GreetingKind::Busy);
        assert_eq!(info.sample_rate, 16_000);
        assert!(!take.path().exists(), "the take is gone once accepted");
        assert_eq!(
            greetings.choose("1001", Some("user-busy")),
            Greeting::Stored {
                kind: GreetingKind::Busy,
                path: greetings.path_of("1001", GreetingKind::Busy).unwrap()
            }
        );
    }

    #[test]
    fn a_discarded_take_leaves_the_greeting_alone() {
        let dir = tempfile::tempdir().unwrap();
        let take = Take::new(dir.path(), "1001", MenuGreetingKind::Unavailable, "c2").unwrap();
        take.save(&tone(16_000, 1200), 16_000, -45.0).unwrap();
        take.discard().unwrap();
        take.discard().unwrap();
        assert!(!take.path().exists());
        assert_eq!(
            Greetings::new(dir.path()).choose("1001", None),
            Greeting::Default
        );
        assert!(Take::new(dir.path(), "../x", MenuGreetingKind::Busy, "c").is_err());
    }
}

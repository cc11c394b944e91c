//! Greetings decoded once and shared by the calls that play them.
//!
//! Every deposit plays a greeting, and most short calls (a caller who hangs
//! up during it) do little else. Read, decoded and resampled for each call,
//! the greeting cost a hand-off to a blocking thread and back, the file's
//! reads, and a copy of its samples per call (BENCHMARKS.md, "Sixth
//! round"). Here the samples at a call's rate are kept as one shared
//! `Arc<[i16]>` and handed to each call without a copy.
//!
//! A stored greeting can be replaced at any time, by the owner's phone
//! menu or by `vmesh mailbox greeting` in another process, so a cached copy is
//! used only while its file is the one it was read from: same inode (a
//! greeting is replaced by a rename, which gives it a new one), size and
//! modification time, checked with one `stat` per call, as choosing the
//! greeting already does. A changed file is read again by the next call.
//! The built-in greeting never changes. The copies kept are bounded by
//! [`MAX_CACHED_SAMPLES`]; beyond it older ones are dropped and read again
//! when next needed.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::greetings::{load_pcm, Greeting, GreetingError};

/// Samples kept at most across every cached greeting: 32 MiB, about 35
/// minutes of greetings at 8 kHz.
pub const MAX_CACHED_SAMPLES: usize = 16 * 1024 * 1024;

/// What identifies the content of a greeting's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = fs::metadata(path).ok()?;
        Some(Stamp {
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }
}

/// The stamp a copy of `greeting` must carry: `Some(None)` for the
/// built-in greeting, `None` when a stored one's file cannot be found.
fn stamp_of(greeting: &Greeting) -> Option<Option<Stamp>> {
    match greeting {
        Greeting::Stored { path, .. } => Stamp::of(path).map(Some),
        Greeting::Default => Some(None),
    }
}

/// A key: the greeting (`None` for the built-in one) at a rate.
type Key = (Option<PathBuf>, u32);

fn key(greeting: &Greeting, rate: u32) -> Key {
    match greeting {
        Greeting::Stored { path, .. } => (Some(path.clone()), rate),
        Greeting::Default => (None, rate),
    }
}

/// Decoded greetings, shared. [`GreetingCache::global`] is the server's.
pub struct GreetingCache {
    max_samples: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, (Option<Stamp>, Arc<[i16]>)>,
    samples: usize,
}

impl GreetingCache {
    /// A cache keeping at most `max_samples` samples.
    pub fn new(max_samples: usize) -> Self {
        GreetingCache {
            max_samples,
            state: Mutex::default(),
        }
    }

    /// The process's cache, bounded by [`MAX_CACHED_SAMPLES`].
    pub fn global() -> &'static GreetingCache {
        static GLOBAL: OnceLock<GreetingCache> = OnceLock::new();
        GLOBAL.get_or_init(|| GreetingCache::new(MAX_CACHED_SAMPLES))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `greeting` at `rate` when a decoded copy is kept and its file has
    /// not changed since; `None` when it must be read ([`Self::shared`]).
    /// Costs one `stat` for a stored greeting, no I/O for the built-in one.
    pub fn cached(&self, greeting: &Greeting, rate: u32) -> Option<Arc<[i16]>> {
        self.lookup(greeting, rate, stamp_of(greeting)?)
    }

    /// `greeting` at `rate` ([`load_pcm`]), kept for the calls after this
    /// one. Blocking: reads and decodes the file unless a copy is kept.
    pub fn shared(&self, greeting: &Greeting, rate: u32) -> Result<Arc<[i16]>, GreetingError> {
        // Stamped before the read: a file replaced meanwhile is kept
        // under the old stamp, and so read again by the next call.
        let stamp = stamp_of(greeting);
        if let Some(pcm) = stamp.and_then(|stamp| self.lookup(greeting, rate, stamp)) {
            return Ok(pcm);
        }
        let pcm: Arc<[i16]> = load_pcm(greeting, rate)?.into();
        if let Some(stamp) = stamp {
            self.keep(key(greeting, rate), stamp, Arc::clone(&pcm));
        }
        Ok(pcm)
    }

    /// The copy kept of `greeting` at `rate`, if it carries `stamp`.
    fn lookup(&self, greeting: &Greeting, rate: u32, stamp: Option<Stamp>) -> Option<Arc<[i16]>> {
        let state = self.state();
        let (kept, pcm) = state.entries.get(&key(greeting, rate))?;
        (*kept == stamp).then(|| Arc::clone(pcm))
    }

    /// Keeps `pcm` under `key`, dropping other copies while the bound
    /// would be passed. One larger than the whole bound is not kept.
    fn keep(&self, key: Key, stamp: Option<Stamp>, pcm: Arc<[i16]>) {
        if pcm.len() > self.max_samples {
            return;
        }
        let mut state = self.state();
        if let Some((_, old)) = state.entries.remove(&key) {
            state.samples -= old.len();
        }
        while state.samples + pcm.len() > self.max_samples {
            let Some(victim) = state.entries.keys().next().cloned() else {
                break;
            };
            if let Some((_, old)) = state.entries.remove(&victim) {
                state.samples -= old.len();
            }
        }
        state.samples += pcm.len();
        state.entries.insert(key, (stamp, pcm));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voicemail::greetings::{GreetingKind, Greetings};

    fn tone_wav(path: &Path, seconds: u32, value: i16) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for _ in 0..16_000 * seconds {
            writer.write_sample(value).unwrap();
        }
        writer.finalize().unwrap();
    }

    fn set(greetings: &Greetings, dir: &Path, seconds: u32, value: i16) -> Greeting {
        let input = dir.join("input.wav");
        tone_wav(&input, seconds, value);
        greetings
            .set("1001", GreetingKind::Unavailable, &input)
            .unwrap();
        greetings.choose("1001", None)
    }

    #[test]
    fn a_stored_greeting_is_shared_until_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let greetings = Greetings::new(dir.path());
        let chosen = set(&greetings, dir.path(), 1, 1000);
        assert!(matches!(chosen, Greeting::Stored { .. }));
        let cache = GreetingCache::new(MAX_CACHED_SAMPLES);
        assert!(cache.cached(&chosen, 8000).is_none(), "not read yet");

        let first = cache.shared(&chosen, 8000).unwrap();
        assert_eq!(first.len(), 8000);
        let again = cache
            .cached(&chosen, 8000)
            .expect("kept after the first read");
        assert!(Arc::ptr_eq(&first, &again), "the same samples, not a copy");
        assert!(cache.cached(&chosen, 16_000).is_none(), "kept per rate");

        // Replaced (as `vmesh greeting set` does, from another process):
        // the next call hears the new greeting.
        let replaced = set(&greetings, dir.path(), 2, -1000);
        assert_eq!(replaced, chosen, "same file name");
        assert!(
            cache.cached(&chosen, 8000).is_none(),
            "the old copy is stale"
        );
        let fresh = cache.shared(&chosen, 8000).unwrap();
        assert_eq!(fresh.len(), 16_000);
        assert!(fresh[4000] < 0, "the new greeting's samples");

        // Removed: nothing stale is played either.
        assert!(greetings.clear("1001", GreetingKind::Unavailable).unwrap());
        assert!(cache.cached(&chosen, 8000).is_none());
        assert!(cache.shared(&chosen, 8000).is_err());
    }

    #[test]
    fn the_built_in_greeting_is_decoded_once_per_rate() {
        let cache = GreetingCache::new(MAX_CACHED_SAMPLES);
        let first = cache.shared(&Greeting::Default, 8000).unwrap();
        let kept = cache.cached(&Greeting::Default, 8000).unwrap();
        assert!(Arc::ptr_eq(&first, &kept));
        assert_eq!(*first, *load_pcm(&Greeting::Default, 8000).unwrap());
    }

    #[test]
    fn the_copies_kept_stay_within_the_bound() {
        let cache = GreetingCache::new(3000);
        for i in 0..4 {
            let key = (Some(PathBuf::from(format!("/g/{i}.wav"))), 8000);
            cache.keep(key, None, vec![7i16; 1001].into());
            let state = cache.state();
            let held: usize = state.entries.values().map(|(_, pcm)| pcm.len()).sum();
            assert_eq!(held, state.samples);
            assert!(state.samples <= 3000);
            assert_eq!(
                state.entries.len(),
                (i + 1).min(2),
                "a third would pass the bound"
            );
        }
        cache.keep((None, 1), None, vec![0; 3001].into());
        assert!(!cache.state().entries.contains_key(&(None, 1)));
    }
}

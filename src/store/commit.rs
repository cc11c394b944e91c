//! Publishing a finished message: the ordered steps that make it either
//! fully listed or not listed at all.
//!
//! 1. fsync the final audio (and hash it in the same pass): the recording
//!    WAV itself, or the Ogg Opus file encoded from it into
//!    `recording/<id>.opus.tmp`;
//! 2. rename it to `messages/<mailbox>/<id>.<wav|opus>` and fsync both
//!    directories (a partial message first marks its sidecar so, since
//!    recovery lists a final file without a row by its sidecar);
//! 3. insert the index row, and the outbox row when the message's home is a
//!    peer (one SQLite transaction, WAL, `synchronous=FULL`);
//! 4. remove what is left in `recording/`: the recording WAV (still there
//!    when it was encoded to Opus), then the sidecar.
//!
//! A crash before 2 leaves the recording in `recording/` (and perhaps a
//! temporary Opus file), after 2 a final file without a row, after 3 stray
//! leftovers; recovery finishes each case from the sidecar, so no step can
//! lose a message or list a missing one. Since row and outbox row commit
//! together, a forwarded message is never listed without being queued.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use rusqlite::TransactionBehavior;
use sha2::{Digest, Sha256};

use super::durable;
use super::error::StoreError;
use super::index;
use super::message::{self, Message};
use super::outbox::{self, Route};
use super::recording::samples_duration;
use super::sidecar::{AudioFacts, Sidecar};
use super::Store;

impl Store {
    /// Moves the final audio at `audio_path` (`samples` long, in `format`)
    /// into its mailbox and indexes it.
    pub(super) fn publish(
        &self,
        sidecar: &Sidecar,
        audio_path: &Path,
        samples: u64,
        format: &'static str,
        partial: bool,
        route: &Route,
    ) -> Result<Message, StoreError> {
        let facts = sync_and_measure(audio_path, samples, sidecar.sample_rate, format)?;
        if partial && !sidecar.partial {
            // Recovery indexes a final file by its sidecar alone.
            let marked = Sidecar {
                partial: true,
                ..sidecar.clone()
            };
            marked.write(&self.sidecar_path(&sidecar.id.to_string()))?;
        }
        let final_path = self.message_path(&sidecar.mailbox, &sidecar.id.to_string(), format);
        if let Some(mailbox_dir) = final_path.parent() {
            durable::create_dir(mailbox_dir)?;
        }
        durable::rename(audio_path, &final_path)?;
        self.index_and_release(sidecar, facts, partial, route)
    }

    /// Inserts the row for a message whose audio is already final (and its
    /// outbox row when `route` forwards it) in one transaction, then
    /// removes what is left of its recording.
    pub(super) fn index_and_release(
        &self,
        sidecar: &Sidecar,
        facts: AudioFacts,
        partial: bool,
        route: &Route,
    ) -> Result<Message, StoreError> {
        let message = sidecar.to_message(facts, partial, route);
        let what = format!("insert message {}", message.id);
        {
            let mut conn = self.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(self.db_err(what.clone()))?;
            index::insert(&tx, &message).map_err(self.db_err(what.clone()))?;
            if let Route::Forward { peer } = route {
                let (queued_ms, queued_at) = message::now_unix_ms();
                outbox::insert(&tx, &message, peer, queued_ms, &queued_at)
                    .map_err(self.db_err(format!("queue message {} for {peer}", message.id)))?;
            }
            tx.commit().map_err(self.db_err(what))?;
        }
        self.signal_change();
        self.release(&message.id);
        Ok(message)
    }

    /// Removes the recording WAV of a committed message, if it is still in
    /// `recording/` (it was encoded to another format), then its sidecar.
    /// In this order, a crash in between leaves a sidecar whose row exists,
    /// which recovery removes. Failures are only logged: the message is
    /// already committed.
    pub(super) fn release(&self, id: &str) {
        let recording = self.recording_path(id);
        if let Err(error) = fs::remove_file(&recording) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %recording.display(), %error, "cannot remove a stored message's recording");
                return;
            }
        }
        self.remove_sidecar(id);
    }

    /// Retires `recording/<id>.json` (a spare for the next recording, see
    /// `spare.rs`). Failure is only logged: recovery removes a sidecar
    /// whose row exists.
    pub(super) fn remove_sidecar(&self, id: &str) {
        let path = self.sidecar_path(id);
        if let Err(error) = self.spares.retire(&path) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), %error, "cannot remove recording sidecar");
            }
        }
    }
}

/// Fsyncs a closed audio file and returns its size, hash and duration.
///
/// Hashing reads the file back once; it is done here, off the audio path,
/// because the sum must describe exactly the bytes that are on disk.
pub(super) fn sync_and_measure(
    path: &Path,
    samples: u64,
    sample_rate: u32,
    format: &'static str,
) -> Result<AudioFacts, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io("open", path))?;
    let mut hasher = Sha256::new();
    let size_bytes = io::copy(&mut file, &mut hasher).map_err(StoreError::io("read", path))?;
    file.sync_all().map_err(StoreError::io("fsync", path))?;
    let duration = samples_duration(samples, sample_rate);
    Ok(AudioFacts {
        format,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        size_bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

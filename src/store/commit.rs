//! Publishing a finished recording: the ordered steps that make a message
//! either fully listed or not listed at all.
//!
//! 1. fsync the audio file (and hash it in the same pass);
//! 2. rename it into `messages/<mailbox>/` and fsync both directories;
//! 3. insert the index row (one SQLite transaction, WAL, `synchronous=FULL`);
//! 4. remove the sidecar.
//!
//! A crash before 2 leaves the file in `recording/`, after 2 a final file
//! without a row, after 3 a stray sidecar; recovery finishes each case from
//! the sidecar, so no step can lose a message or list a missing one.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::durable;
use super::error::StoreError;
use super::index;
use super::message::Message;
use super::recording::samples_duration;
use super::sidecar::{AudioFacts, Sidecar};
use super::Store;

impl Store {
    /// Moves a closed recording at `wav_path` into its mailbox and indexes it.
    pub(super) fn publish(
        &self,
        sidecar: &Sidecar,
        wav_path: &Path,
        samples: u64,
        partial: bool,
    ) -> Result<Message, StoreError> {
        let facts = sync_and_measure(wav_path, samples, sidecar.sample_rate)?;
        let final_path = self.message_path(&sidecar.mailbox, &sidecar.id.to_string());
        if let Some(mailbox_dir) = final_path.parent() {
            durable::create_dir(mailbox_dir)?;
        }
        durable::rename(wav_path, &final_path)?;
        self.index_and_release(sidecar, facts, partial)
    }

    /// Inserts the row for a message whose audio is already final, then
    /// removes its sidecar.
    pub(super) fn index_and_release(
        &self,
        sidecar: &Sidecar,
        facts: AudioFacts,
        partial: bool,
    ) -> Result<Message, StoreError> {
        let message = sidecar.to_message(facts, partial);
        {
            let conn = self.lock();
            index::insert(&conn, &message)
                .map_err(self.db_err(format!("insert message {}", message.id)))?;
        }
        self.remove_sidecar(&sidecar.id.to_string());
        Ok(message)
    }

    /// Removes `recording/<id>.json`. Failure is only logged: the message is
    /// already committed, and recovery removes a sidecar whose row exists.
    pub(super) fn remove_sidecar(&self, id: &str) {
        let path = self.sidecar_path(id);
        if let Err(error) = fs::remove_file(&path) {
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
) -> Result<AudioFacts, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io("open", path))?;
    let mut hasher = Sha256::new();
    let size_bytes = io::copy(&mut file, &mut hasher).map_err(StoreError::io("read", path))?;
    file.sync_all().map_err(StoreError::io("fsync", path))?;
    let duration = samples_duration(samples, sample_rate);
    Ok(AudioFacts {
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        size_bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

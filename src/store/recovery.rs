//! Start-up recovery: finish whatever a crash interrupted, so that every
//! recording that reached the disk ends up listed and nothing listed lacks
//! a reason to be.
//!
//! The states a crash can leave, keyed by the sidecar (see `commit.rs`):
//!
//! | on disk                                               | action                                  |
//! |-------------------------------------------------------|-----------------------------------------|
//! | `recording/<id>.opus.tmp`                             | an encode cut short: remove it          |
//! | `recording/<id>.tmp` (sidecar never renamed)          | remove it                               |
//! | sidecar + row                                         | remove the recording WAV, then sidecar  |
//! | sidecar + `messages/<mb>/<id>.{wav,opus}`, no row     | index it (`partial` as the sidecar says)|
//! | sidecar + `recording/<id>.wav`, no row, no final file | repair header, finish again, `partial`  |
//! |                                                       | (kept even if empty, short or silent)   |
//! | sidecar alone (no audio had reached the disk)         | list as an empty `partial` message      |
//! | any of the four above, mailbox homed on a peer        | also queue it, in the same transaction  |
//! | `recording/<id>.wav` without sidecar                  | a discard cut short: remove it          |
//! | row without its file                                  | keep the row, warn                      |
//! | `messages/<mb>/<id>.{wav,opus}`, no row, no sidecar   | an interrupted delete: remove it        |
//! | `messages/<mb>/<id>.tmp`                              | a receipt cut short: remove it          |
//! | `recording/<id>.spare`                                | a spent sidecar: kept for reuse         |
//!
//! A final file is only ever renamed into `messages/` complete and fsynced,
//! after the recording it came from was closed, so one without a row is a
//! whole message whose commit was lost: it is indexed as it is, even when
//! the recording WAV it was encoded from is still there. A recording
//! without a final file is finished again under the current
//! [`StoragePolicy`] (silence trimmed, encoded) and listed as `partial`: a
//! call cut by the crash cannot be told from one that had ended and was
//! waiting to be encoded, and `partial` errs on the side of saying so.
//! Like every partial message it is kept whatever it holds, even nothing
//! (a crash in the call's first second leaves no audio on disk, and no
//! WAV file, which is made with the first audio): the sidecar exists only
//! once the ACK confirmed the call, so the caller was answered and the
//! owner sees the call (see [`StoragePolicy::for_partial`]). A discarded
//! recording loses its sidecar first, so audio without a sidecar is one
//! whose discard a crash cut short, and is removed.
//!
//! A message received from a peer is never acknowledged before its row is
//! committed, so removing a received file that has no row is safe: the
//! sender still holds the message and sends it again. A listed message
//! always has its outbox row when it needs one (they commit together), so
//! nothing is left to re-queue. Every step is idempotent, so a crash
//! during recovery is handled by the next run.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hound::WavReader;

use super::commit::sync_and_measure;
use super::durable::TMP_EXTENSION;
use super::encode;
use super::error::StoreError;
use super::finish::{Finished, StoragePolicy, StoreFormat};
use super::index;
use super::message::{format_extension, validate_mailbox, Message, FORMAT_OPUS, FORMAT_WAV};
use super::outbox::Route;
use super::recording::ClosedRecording;
use super::sidecar::Sidecar;
use super::spare::SPARE_EXTENSION;
use super::wav_header::repair_header;
use super::{Store, MESSAGES_DIR, RECORDING_DIR};

impl Store {
    /// Repairs and lists what a crash left in the data directory; returns
    /// the messages it added to the index. `route_of` answers, per mailbox,
    /// whether a recovered message stays here or is queued for its home
    /// peer (as [`Store::finish`] would have). A recording cut by the crash
    /// is finished under `policy` (format, silence rules) but kept however
    /// short: the minimum duration is not applied to it.
    ///
    /// Run it once at start-up before any recording starts or message is
    /// received (it treats every file in `recording/` and every `.tmp` file
    /// as abandoned). Idempotent. A file that cannot be recovered is logged
    /// and left in place for the operator; only database failures and a
    /// full disk abort.
    pub fn recover(
        &self,
        route_of: &dyn Fn(&str) -> Route,
        policy: &StoragePolicy,
    ) -> Result<Vec<Message>, StoreError> {
        let recording_dir = self.data_dir.join(RECORDING_DIR);
        let files = dir_files(&recording_dir)?;
        // Temporary files first: an encode redone below reuses its name.
        for path in files.iter().filter(|p| extension(p) == Some(TMP_EXTENSION)) {
            remove_logged(path, "unfinished sidecar or encode");
        }
        for path in files
            .iter()
            .filter(|p| extension(p) == Some(SPARE_EXTENSION))
        {
            if !self.spares.adopt(path.clone()) {
                remove_logged(path, "spare sidecar beyond those kept");
            }
        }
        let mut recovered = Vec::new();
        for path in files.iter().filter(|p| extension(p) == Some("json")) {
            match self.recover_sidecar_or_wav(path, route_of, policy) {
                Ok(Some(message)) => recovered.push(message),
                Ok(None) => {}
                // A full disk is no fault of the file: the caller may
                // make room and run recovery again.
                Err(error)
                    if matches!(error, StoreError::Database { .. }) || error.is_disk_full() =>
                {
                    return Err(error)
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "cannot recover recording; left in place");
                }
            }
        }
        let pending = self.pending_ids(&recording_dir)?;
        self.check_rows_have_files()?;
        self.complete_interrupted_deletes(&pending)?;
        Ok(recovered)
    }

    /// [`Store::recover_sidecar`]; when encoding it to Ogg Opus fails for
    /// want of space, the recording is listed as the WAV it already is
    /// ([`Store::recover_as_wav`]) instead of staying unlisted until the
    /// disk has room and the server restarts.
    fn recover_sidecar_or_wav(
        &self,
        path: &Path,
        route_of: &dyn Fn(&str) -> Route,
        policy: &StoragePolicy,
    ) -> Result<Option<Message>, StoreError> {
        match self.recover_sidecar(path, route_of, policy) {
            Err(error) if error.is_disk_full() && policy.format != StoreFormat::Wav => {
                tracing::warn!(path = %path.display(), %error, "disk full: recovered as WAV, not encoded");
                self.recover_as_wav(path, route_of, policy)
            }
            other => other,
        }
    }

    /// Lists the recording of sidecar `path` as the WAV it is, which needs
    /// no new space: a half-made Opus file of it is removed first. For a
    /// full disk, at hang-up ([`Store::finish`]) as at recovery.
    pub(super) fn recover_as_wav(
        &self,
        path: &Path,
        route_of: &dyn Fn(&str) -> Route,
        policy: &StoragePolicy,
    ) -> Result<Option<Message>, StoreError> {
        if let Some(id) = path.file_stem().and_then(|s| s.to_str()) {
            let _ = fs::remove_file(self.encode_tmp_path(id));
        }
        let wav = StoragePolicy {
            format: StoreFormat::Wav,
            ..*policy
        };
        self.recover_sidecar(path, route_of, &wav)
    }

    /// Handles one sidecar; `Some` when a message was added to the index.
    pub(super) fn recover_sidecar(
        &self,
        sidecar_path: &Path,
        route_of: &dyn Fn(&str) -> Route,
        policy: &StoragePolicy,
    ) -> Result<Option<Message>, StoreError> {
        let sidecar = Sidecar::read(sidecar_path)?;
        let id = sidecar.id.to_string();
        if stem(sidecar_path) != Some(id.as_str()) {
            return Err(StoreError::CorruptRecording {
                path: sidecar_path.to_owned(),
                reason: format!("sidecar names message {id}, not its file name"),
            });
        }
        let row = {
            let conn = self.lock();
            index::by_id(&conn, &id).map_err(self.db_err(format!("get message {id}")))?
        };
        if row.is_some() {
            // Crash after commit, before the recording was cleared away.
            self.release(&id);
            return Ok(None);
        }
        let route = route_of(&sidecar.mailbox);
        if let Route::Forward { peer } = &route {
            super::message::validate_peer(peer)?;
        }
        if let Some(message) = self.index_final_file(&sidecar, &route)? {
            tracing::info!(%id, "indexed a stored message whose commit a crash interrupted");
            return Ok(Some(message));
        }
        let recording = self.recording_path(&id);
        self.refinish(sidecar, recording, policy, &route)
    }

    /// Indexes `messages/<mailbox>/<id>.{wav,opus}` if there is one: a
    /// complete final file whose commit was lost.
    fn index_final_file(
        &self,
        sidecar: &Sidecar,
        route: &Route,
    ) -> Result<Option<Message>, StoreError> {
        let id = sidecar.id.to_string();
        for format in [FORMAT_WAV, FORMAT_OPUS] {
            let path = self.message_path(&sidecar.mailbox, &id, format);
            if !path.exists() {
                continue;
            }
            let samples = if format == FORMAT_OPUS {
                encode::read_file(&path)?.pcm.len() as u64
            } else {
                u64::from(
                    WavReader::open(&path)
                        .map_err(StoreError::wav(&path))?
                        .duration(),
                )
            };
            let facts = sync_and_measure(&path, samples, sidecar.sample_rate, format)?;
            return self
                .index_and_release(sidecar, facts, sidecar.partial, route)
                .map(Some);
        }
        Ok(None)
    }

    /// Finishes a recording a crash left in `recording/`, as `partial`;
    /// with no WAV file (no audio had reached the disk), as an empty one.
    fn refinish(
        &self,
        sidecar: Sidecar,
        wav_path: PathBuf,
        policy: &StoragePolicy,
        route: &Route,
    ) -> Result<Option<Message>, StoreError> {
        let id = sidecar.id.to_string();
        let samples = match wav_path.exists() {
            true => repair_header(&wav_path, sidecar.sample_rate)?,
            false => 0,
        };
        let closed = ClosedRecording {
            sidecar,
            wav_path,
            samples,
        };
        match self.settle(&closed, policy, Duration::ZERO, true, route)? {
            Finished::Stored(message) => {
                tracing::warn!(%id, duration_ms = message.duration_ms, format = %message.format, "recovered a recording cut by a crash (partial)");
                Ok(Some(message))
            }
            Finished::Discarded { reason, .. } => {
                tracing::warn!(%id, ?reason, "recording cut by a crash discarded by the storage policy");
                Ok(None)
            }
        }
    }

    /// Ids that still have a sidecar after recovery (unreadable ones);
    /// recordings without a sidecar, discards a crash cut short, are
    /// removed.
    fn pending_ids(&self, recording_dir: &Path) -> Result<HashSet<String>, StoreError> {
        let mut pending = HashSet::new();
        for path in dir_files(recording_dir)? {
            if let Some(id) = stem(&path) {
                match extension(&path) {
                    Some("json") => {
                        pending.insert(id.to_owned());
                    }
                    Some(FORMAT_WAV) if !self.sidecar_path(id).exists() => {
                        remove_logged(&path, "recording of a discarded message");
                    }
                    _ => {}
                }
            }
        }
        Ok(pending)
    }

    /// Warns about rows whose audio is gone; the row is kept, since it is
    /// the only trace of the message left.
    fn check_rows_have_files(&self) -> Result<(), StoreError> {
        let rows = {
            let conn = self.lock();
            index::all(&conn).map_err(self.db_err("list messages".into()))?
        };
        for message in rows {
            let path = self.audio_path(&message);
            if !path.exists() {
                tracing::warn!(id = %message.id, path = %path.display(), "listed message has no audio file");
            }
        }
        Ok(())
    }

    /// Removes files in `messages/` that have neither a row nor a sidecar.
    /// Only the purges ([`Store::purge_deleted`], [`Store::purge_delivered`]: row first,
    /// then file) or a receipt cut before its commit can leave one, so this
    /// completes a delete or drops an unacknowledged copy.
    fn complete_interrupted_deletes(&self, pending: &HashSet<String>) -> Result<(), StoreError> {
        let messages_dir = self.data_dir.join(MESSAGES_DIR);
        for mailbox_dir in dir_entries(&messages_dir)? {
            let mailbox_ok = mailbox_dir.is_dir()
                && mailbox_dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| validate_mailbox(n).is_ok());
            if !mailbox_ok {
                continue;
            }
            for path in dir_files(&mailbox_dir)? {
                let Some(id) = stem(&path) else { continue };
                let ext = extension(&path);
                if ext == Some(TMP_EXTENSION) {
                    remove_logged(&path, "audio of a receipt cut short");
                    continue;
                }
                if ext.and_then(format_extension).is_none() || pending.contains(id) {
                    continue;
                }
                let row = {
                    let conn = self.lock();
                    index::by_id(&conn, id).map_err(self.db_err(format!("get message {id}")))?
                };
                if row.is_none() {
                    remove_logged(&path, "audio of a deleted message");
                }
            }
        }
        Ok(())
    }
}

/// Entries of `dir`, sorted so recovery is deterministic.
fn dir_entries(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(StoreError::io("read directory", dir))? {
        paths.push(entry.map_err(StoreError::io("read directory", dir))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Regular files of `dir`, sorted.
fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    Ok(dir_entries(dir)?
        .into_iter()
        .filter(|p| p.is_file())
        .collect())
}

fn extension(path: &Path) -> Option<&str> {
    path.extension().and_then(|e| e.to_str())
}

fn stem(path: &Path) -> Option<&str> {
    path.file_stem().and_then(|s| s.to_str())
}

fn remove_logged(path: &Path, what: &str) {
    match fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed {what}"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(path = %path.display(), %error, "cannot remove {what}"),
    }
}

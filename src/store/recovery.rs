//! Start-up recovery: finish whatever a crash interrupted, so that every
//! recording that reached the disk ends up listed and nothing listed lacks
//! a reason to be.
//!
//! The states a crash can leave, keyed by the sidecar (see `commit.rs`):
//!
//! | on disk                                          | action                                 |
//! |--------------------------------------------------|----------------------------------------|
//! | sidecar + `recording/<id>.wav`                   | repair header, publish, `partial`      |
//! | sidecar + `messages/<mb>/<id>.wav`, no row       | index it (`partial = false`)           |
//! | either of the two above, mailbox homed on a peer | also queue it, in the same transaction |
//! | sidecar + row                                    | remove the sidecar                     |
//! | sidecar alone                                    | remove it, warn                        |
//! | `recording/<id>.tmp` (sidecar never renamed)     | remove it                              |
//! | row without its file                             | keep the row, warn                     |
//! | `messages/<mb>/<id>.wav`, no row, no sidecar     | an interrupted delete: remove it       |
//! | `messages/<mb>/<id>.opus`, no row                | the same                               |
//! | `messages/<mb>/<id>.tmp`                         | a receipt cut short: remove it         |
//!
//! A message received from a peer is never acknowledged before its row is
//! committed, so removing a received file that has no row is safe: the
//! sender still holds the message and sends it again. A listed message
//! always has its outbox row when it needs one (they commit together), so
//! nothing is left to re-queue.
//!
//! The WAV header of a recording cut by a crash holds the sizes of its last
//! flush (or zero). hound cannot be told the real length (its append mode
//! trusts the stale header), so the header is rebuilt here: hound writes the
//! canonical 44-byte header for the sidecar's spec, and the two RIFF size
//! fields are set from the file length. Every step is idempotent, so a crash
//! during recovery is handled by the next run.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hound::{WavReader, WavWriter};

use super::commit::sync_and_measure;
use super::durable::TMP_EXTENSION;
use super::error::StoreError;
use super::index;
use super::message::{format_extension, validate_mailbox, Message, FORMAT_WAV};
use super::outbox::Route;
use super::recording::{wav_spec, BYTES_PER_SAMPLE, WAV_HEADER_LEN};
use super::sidecar::Sidecar;
use super::{Store, MESSAGES_DIR, RECORDING_DIR};

/// Offset of the RIFF chunk size field.
const RIFF_SIZE_OFFSET: usize = 4;
/// Offset of the `data` chunk id and of its size field in the 44-byte header.
const DATA_ID_OFFSET: usize = 36;
const DATA_SIZE_OFFSET: usize = 40;

impl Store {
    /// Repairs and lists what a crash left in the data directory; returns
    /// the messages it added to the index. `route_of` answers, per mailbox,
    /// whether a recovered message stays here or is queued for its home
    /// peer (as [`Store::finish`] would have). Run it once at start-up
    /// before any recording starts or message is received (it treats every
    /// file in `recording/` and every `.tmp` file as abandoned).
    /// Idempotent. A file that cannot be recovered is logged and left in
    /// place for the operator; only database failures abort.
    pub fn recover(&self, route_of: &dyn Fn(&str) -> Route) -> Result<Vec<Message>, StoreError> {
        let recording_dir = self.data_dir.join(RECORDING_DIR);
        let mut recovered = Vec::new();
        for path in dir_files(&recording_dir)? {
            match extension(&path) {
                Some("json") => match self.recover_sidecar(&path, route_of) {
                    Ok(Some(message)) => recovered.push(message),
                    Ok(None) => {}
                    Err(error @ StoreError::Database { .. }) => return Err(error),
                    Err(error) => {
                        tracing::error!(path = %path.display(), %error, "cannot recover recording; left in place");
                    }
                },
                Some(TMP_EXTENSION) => remove_logged(&path, "unfinished sidecar"),
                _ => {}
            }
        }
        let pending = self.pending_ids(&recording_dir)?;
        self.check_rows_have_files()?;
        self.complete_interrupted_deletes(&pending)?;
        Ok(recovered)
    }

    /// Handles one sidecar; `Some` when a message was added to the index.
    fn recover_sidecar(
        &self,
        sidecar_path: &Path,
        route_of: &dyn Fn(&str) -> Route,
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
            // Crash after commit, before the sidecar was removed.
            self.remove_sidecar(&id);
            return Ok(None);
        }
        let route = route_of(&sidecar.mailbox);
        if let Route::Forward { peer } = &route {
            super::message::validate_peer(peer)?;
        }
        let recording = self.recording_path(&id);
        if recording.exists() {
            let samples = repair_header(&recording, sidecar.sample_rate)?;
            if samples == 0 {
                tracing::warn!(%id, path = %recording.display(), "recording cut by a crash holds no audio; removed");
                fs::remove_file(&recording).map_err(StoreError::io("remove", &recording))?;
                self.remove_sidecar(&id);
                return Ok(None);
            }
            let message = self.publish(&sidecar, &recording, samples, true, &route)?;
            tracing::warn!(%id, duration_ms = message.duration_ms, "recovered a recording cut by a crash (partial)");
            return Ok(Some(message));
        }
        let final_path = self.message_path(&sidecar.mailbox, &id, FORMAT_WAV);
        if final_path.exists() {
            let samples = WavReader::open(&final_path)
                .map_err(StoreError::wav(&final_path))?
                .duration();
            let facts = sync_and_measure(&final_path, u64::from(samples), sidecar.sample_rate)?;
            let message = self.index_and_release(&sidecar, facts, false, &route)?;
            tracing::info!(%id, "indexed a stored message whose commit a crash interrupted");
            return Ok(Some(message));
        }
        tracing::warn!(%id, path = %sidecar_path.display(), "sidecar without audio; removed");
        self.remove_sidecar(&id);
        Ok(None)
    }

    /// Ids that still have a sidecar after recovery (unreadable ones).
    fn pending_ids(&self, recording_dir: &Path) -> Result<HashSet<String>, StoreError> {
        let mut pending = HashSet::new();
        for path in dir_files(recording_dir)? {
            if let Some(id) = stem(&path) {
                match extension(&path) {
                    Some("json") => {
                        pending.insert(id.to_owned());
                    }
                    Some(FORMAT_WAV) if !self.sidecar_path(id).exists() => {
                        tracing::warn!(path = %path.display(), "recording without sidecar; left in place");
                        pending.insert(id.to_owned());
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
            index::list(&conn, None).map_err(self.db_err("list messages".into()))?
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
    /// Only [`Store::delete`] and [`Store::purge_delivered`] (row first,
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

/// Rebuilds the header of a 16-bit mono recording from its length and
/// returns the number of samples it holds. A trailing odd byte (half a
/// sample) is cut off. A file shorter than a header holds no audio.
pub(super) fn repair_header(path: &Path, sample_rate: u32) -> Result<u64, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(StoreError::io("open", path))?;
    let len = file.metadata().map_err(StoreError::io("stat", path))?.len();
    if len <= WAV_HEADER_LEN {
        return Ok(0);
    }
    let data_bytes = (len - WAV_HEADER_LEN) / BYTES_PER_SAMPLE * BYTES_PER_SAMPLE;
    let header = canonical_header(path, sample_rate, data_bytes)?;
    if WAV_HEADER_LEN + data_bytes != len {
        file.set_len(WAV_HEADER_LEN + data_bytes)
            .map_err(StoreError::io("truncate", path))?;
    }
    let mut on_disk = vec![0u8; header.len()];
    file.read_exact(&mut on_disk)
        .map_err(StoreError::io("read header of", path))?;
    if on_disk != header {
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header))
            .map_err(StoreError::io("rewrite header of", path))?;
    }
    Ok(data_bytes / BYTES_PER_SAMPLE)
}

/// The header hound writes for `sample_rate`, with sizes for `data_bytes`.
fn canonical_header(path: &Path, sample_rate: u32, data_bytes: u64) -> Result<Vec<u8>, StoreError> {
    let corrupt = |reason: String| StoreError::CorruptRecording {
        path: path.to_owned(),
        reason,
    };
    let data_size = u32::try_from(data_bytes)
        .ok()
        .filter(|n| n.checked_add(36).is_some())
        .ok_or_else(|| corrupt(format!("{data_bytes} bytes of audio exceed the WAV limit")))?;
    let mut header = Vec::new();
    WavWriter::new(Cursor::new(&mut header), wav_spec(sample_rate))
        .and_then(WavWriter::finalize)
        .map_err(StoreError::wav(path))?;
    let layout_ok = header.len() as u64 == WAV_HEADER_LEN
        && header.get(DATA_ID_OFFSET..DATA_SIZE_OFFSET) == Some(b"data".as_slice());
    if !layout_ok {
        return Err(corrupt("unexpected WAV header layout".into()));
    }
    header[RIFF_SIZE_OFFSET..RIFF_SIZE_OFFSET + 4].copy_from_slice(&(data_size + 36).to_le_bytes());
    header[DATA_SIZE_OFFSET..DATA_SIZE_OFFSET + 4].copy_from_slice(&data_size.to_le_bytes());
    Ok(header)
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

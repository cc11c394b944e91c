//! Durable voicemail storage: message files (WAV or Ogg Opus) plus an
//! SQLite index.
//!
//! Layout of the data directory:
//!
//! ```text
//! vmesh.db                      index (WAL, synchronous=FULL), schema in schema.rs
//! recording/<id>.json           sidecar: metadata, durable before the first audio byte
//! recording/<id>.spare          a spent sidecar, kept to be overwritten (`spare.rs`)
//! recording/<id>.wav            audio being recorded (lossless, whatever the format)
//! recording/<id>.opus.tmp       Ogg Opus being encoded after hang-up
//! messages/<mailbox>/<id>.wav   stored messages (`.opus` for Ogg Opus ones)
//! ```
//!
//! A call is always recorded to WAV; at hang-up [`Store::finish`] trims
//! trailing silence, discards what the [`StoragePolicy`] says to, and
//! encodes to Ogg Opus when the profile stores Opus (`finish.rs`), on an
//! [`EncodePool`] so encoding never competes with calls for threads.
//!
//! The contract: a message is either fully listed (row committed, file
//! durable and matching its size and SHA-256) or not listed at all, and
//! audio that reached the disk before a crash is never silently dropped;
//! [`Store::recover`] finishes what a crash interrupted. See `commit.rs`
//! for the order of the steps and `recovery.rs` for each crash state.
//!
//! For the mesh, a message recorded for a peer's mailbox is queued for
//! that peer in the transaction that lists it (`outbox.rs`), a message from
//! a peer is stored idempotently by id (`received.rs`), and peer health is
//! kept for `vmesh peers` (`peers.rs`).
//!
//! Each message is in a folder (`folder.rs`): new, old, saved, or deleted
//! (soft, restorable) until purged (`tombstone.rs`, which keeps the ids of
//! purged messages so a late copy from a peer is not stored again). Every
//! change to a mailbox's messages, by any process, is recorded by SQLite
//! triggers in a change log that the server watches (`changes.rs`) to keep
//! message-waiting lamps current; the lamps' subscriptions are kept here
//! too (`subscriptions.rs`).
//!
//! The store is synchronous (std files, rusqlite): callers on an async
//! runtime run [`Store::finish`] on an [`EncodePool`], and
//! [`Store::recover`] and the queries on a blocking thread;
//! [`Recording::write`] is cheap enough for the media path.

mod changes;
mod commit;
mod durable;
mod encode;
mod error;
mod export;
mod finish;
mod folder;
mod index;
mod mailboxes;
mod message;
mod outbox;
mod peers;
mod pool;
mod received;
mod recording;
mod recovery;
mod reserve;
mod schema;
mod sidecar;
mod spare;
mod subscriptions;
mod tombstone;
mod wav_header;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use uuid::Uuid;

pub use changes::ChangeWatcher;
pub use error::StoreError;
pub use finish::{DiscardReason, Finished, SilenceRules, StoragePolicy, StoreFormat};
pub use folder::{Folder, FolderChange, MailboxCounts};
pub use mailboxes::MailboxRecord;
pub use message::{
    format_unix_ms, now_unix_ms, validate_mailbox, validate_peer, Message, NewMessage,
    DELIVERY_DELIVERED, DELIVERY_FAILED, DELIVERY_HOME, DELIVERY_QUEUED, FORMAT_OPUS, FORMAT_WAV,
};
pub use outbox::{OutboxEntry, Route, OUTBOX_DELIVERED, OUTBOX_FAILED, OUTBOX_WAITING};
pub use peers::{PeerRecord, PEER_DOWN, PEER_UNKNOWN, PEER_UP};
pub use pool::EncodePool;
pub use received::{IncomingMessage, Received};
pub use recording::Recording;
pub use subscriptions::SubscriptionRecord;

use sidecar::Sidecar;

/// File name of the index inside the data directory.
pub const DB_FILE: &str = "vmesh.db";
/// Directory of in-progress recordings and their sidecars.
pub const RECORDING_DIR: &str = "recording";
/// Directory of stored messages, one subdirectory per mailbox.
pub const MESSAGES_DIR: &str = "messages";

/// How long a writer waits for another process (the CLI, a second server
/// instance by mistake) holding the database lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Shortest id prefix accepted by [`Store::get`]; shorter prefixes collide
/// too easily to be safe for `delete`.
pub const MIN_ID_PREFIX: usize = 8;

/// Most matches reported in [`StoreError::Ambiguous`].
const AMBIGUOUS_REPORT_LIMIT: u32 = 10;

/// The message store of one data directory. `Send + Sync`; share it with
/// `Arc`. Queries serialize on one SQLite connection; recordings write their
/// files without taking the lock.
pub struct Store {
    data_dir: PathBuf,
    db_path: PathBuf,
    conn: Mutex<Connection>,
    /// Serializes [`Store::store_received`], so that two copies of one
    /// message arriving at once (a sender's retry racing its first try)
    /// cannot both pass the duplicate check and write the same file.
    receiving: Mutex<()>,
    /// Raised after every commit of this process that changes a mailbox's
    /// messages, so a [`ChangeWatcher`]'s owner can look at once instead
    /// of at its next poll (other processes' commits are seen by polling).
    changed: Arc<Notify>,
    /// When [`Store::has_room`] last found room, and for what minimum.
    room_seen: Mutex<Option<(std::time::Instant, u64)>>,
    /// Spent sidecars, overwritten by the next recordings (`spare.rs`).
    spares: spare::Spares,
}

/// How long a finding of room stands for [`Store::had_room_lately`].
const ROOM_STANDS: std::time::Duration = std::time::Duration::from_secs(1);

impl Store {
    /// Whether [`Store::has_room`] found room for `min_free` within the last
    /// second: a server taking hundreds of calls a second need not ask the
    /// file system for each (a blocking thread's round trip per call). A
    /// full disk is never remembered, so room coming back is seen at the
    /// next call; a disk filling within the second is what the space
    /// reserve is for.
    pub fn had_room_lately(&self, min_free: u64) -> bool {
        let seen = *self
            .room_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.is_some_and(|(at, min)| min >= min_free && at.elapsed() < ROOM_STANDS)
    }

    /// Whether the data directory has at least `min_free` bytes free (and,
    /// if a full disk took it, the space reserve back): new calls are
    /// refused before they are answered when it has not (see `reserve.rs`).
    pub fn has_room(&self, min_free: u64) -> bool {
        let room = self.check_room(min_free);
        *self
            .room_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            room.then(|| (std::time::Instant::now(), min_free));
        room
    }

    fn check_room(&self, min_free: u64) -> bool {
        match reserve::free_bytes(&self.data_dir) {
            Ok(free) if free >= min_free.saturating_add(reserve::RESERVE_BYTES as u64) => {
                if let Err(error) = reserve::take(&self.data_dir) {
                    tracing::warn!(%error, "cannot take the space reserve back");
                }
                true
            }
            Ok(free) => free >= min_free && self.holds_reserve(),
            Err(error) => {
                tracing::warn!(%error, "cannot tell the free space; assuming there is room");
                true
            }
        }
    }

    /// Sets space aside for finishing calls when the disk fills; the server
    /// does it at start-up (the CLI never does).
    pub fn hold_reserve(&self) -> Result<(), StoreError> {
        reserve::take(&self.data_dir)
    }

    fn holds_reserve(&self) -> bool {
        self.data_dir.join(reserve::RESERVE_FILE).exists()
    }
}

/// How a user-typed message id is looked up (see [`Store::get`]).
enum IdQuery {
    /// A full UUID, in its canonical hyphenated lower-case form.
    Full(String),
    /// At least [`MIN_ID_PREFIX`] hex digits (hyphens allowed), lower case.
    Prefix(String),
}

/// Parses a full UUID (either form, any case) or a prefix of at least
/// [`MIN_ID_PREFIX`] hex digits, as the CLI shows short ids. The prefix is
/// hex digits and hyphens only, so it carries no LIKE wildcards.
fn id_query(id: &str) -> Result<IdQuery, StoreError> {
    let wanted = id.trim().to_ascii_lowercase();
    if let Ok(uuid) = Uuid::try_parse(&wanted) {
        return Ok(IdQuery::Full(uuid.to_string()));
    }
    let hex_digits = wanted.bytes().filter(u8::is_ascii_hexdigit).count();
    let well_formed = wanted.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !well_formed || hex_digits < MIN_ID_PREFIX {
        return Err(StoreError::InvalidId { id: id.to_owned() });
    }
    Ok(IdQuery::Prefix(wanted))
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`: directories, the
    /// database in WAL mode with `synchronous=FULL`, and pending schema
    /// migrations. Call [`Store::recover`] before taking calls.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        for dir in [
            data_dir.to_owned(),
            data_dir.join(RECORDING_DIR),
            data_dir.join(MESSAGES_DIR),
        ] {
            durable::create_dir(&dir)?;
        }
        let db_path = data_dir.join(DB_FILE);
        let db_err = |what: &str| {
            let path = db_path.clone();
            let what = what.to_owned();
            move |source| StoreError::Database { path, what, source }
        };
        let mut conn = Connection::open(&db_path).map_err(db_err("open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(db_err("set busy timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(db_err("set journal_mode=WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(db = %db_path.display(), %mode, "database did not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err("set synchronous=FULL"))?;
        // Enforces that an outbox row always names a listed message.
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err("set foreign_keys=ON"))?;
        schema::migrate(&mut conn, &db_path)?;
        Ok(Store {
            data_dir: data_dir.to_owned(),
            db_path,
            conn: Mutex::new(conn),
            receiving: Mutex::new(()),
            changed: Arc::new(Notify::new()),
            room_seen: Mutex::new(None),
            spares: spare::Spares::default(),
        })
    }

    /// Opens the store for `vmesh serve`, recovers what a crash left
    /// ([`Store::recover`]), then sets the space reserve aside; returns the
    /// store and the messages recovery listed. When the disk is too full
    /// for SQLite to make its write-ahead log and index, or for recovery to
    /// list what a crash left (the server stopped or crashed while the
    /// disk was full), the reserve's space is given up first: the server
    /// then starts, lists every recording and refuses new calls with 503
    /// until there is room, instead of not starting at all. The reserve is
    /// taken after recovery, which needs the space more: no call is in
    /// progress yet.
    pub fn open_for_serving(
        data_dir: &Path,
        route_of: &dyn Fn(&str) -> Route,
        policy: &StoragePolicy,
    ) -> Result<(Store, Vec<Message>), StoreError> {
        let store = reserve::or_release(data_dir, "open the store", || Store::open(data_dir))?;
        let recovered = reserve::or_release(data_dir, "recover what a crash left", || {
            store.recover(route_of, policy)
        })?;
        if let Err(error) = store.hold_reserve() {
            tracing::warn!(%error, "no space reserve for finishing calls when the disk fills");
        }
        Ok((store, recovered))
    }

    /// Starts recording a message: validates the metadata and writes the
    /// sidecar durably (over a spent one when there is one, `spare.rs`);
    /// `recording/<id>.wav` is made with the first audio. After this
    /// returns, a crash can no longer lose the call: recovery lists it,
    /// with whatever audio reached the disk.
    ///
    /// The call was answered when the disk had room; if it filled up since
    /// (the sidecar cannot be made), the space reserve is given up for it
    /// and the sidecar made again, as for a call the disk fills under, so
    /// an answered call is never lost to a full disk.
    pub fn start_recording(&self, meta: NewMessage) -> Result<Recording, StoreError> {
        let sidecar = Sidecar::from_new(meta)?;
        match self.create_recording(sidecar.clone()) {
            Err(e) if e.is_disk_full() && reserve::release(&self.data_dir) => {
                tracing::warn!(error = %e, "disk full: the space reserve is given up to record an answered call");
                let id = sidecar.id.to_string();
                let sidecar_path = self.sidecar_path(&id);
                for path in [
                    sidecar_path.with_extension(durable::TMP_EXTENSION),
                    sidecar_path,
                    self.recording_path(&id),
                ] {
                    let _ = fs::remove_file(path);
                }
                self.create_recording(sidecar)
            }
            other => other,
        }
    }

    fn create_recording(&self, sidecar: Sidecar) -> Result<Recording, StoreError> {
        let id = sidecar.id.to_string();
        let sidecar_path = self.sidecar_path(&id);
        let wav_path = self.recording_path(&id);
        if sidecar_path.exists() || wav_path.exists() {
            return Err(StoreError::Io {
                op: "start recording",
                path: sidecar_path,
                source: io::Error::new(io::ErrorKind::AlreadyExists, "id already recording"),
            });
        }
        self.spares
            .write_sidecar(&sidecar_path, &sidecar.to_bytes(&sidecar_path)?)?;
        Recording::create(sidecar, wav_path)
    }

    /// All messages but deleted ones, or those of one mailbox, newest
    /// first ([`Store::list_in`] for one folder).
    pub fn list(&self, mailbox: Option<&str>) -> Result<Vec<Message>, StoreError> {
        if let Some(mailbox) = mailbox {
            validate_mailbox(mailbox)?;
        }
        let conn = self.lock();
        index::list(&conn, mailbox).map_err(self.db_err("list messages".into()))
    }

    /// One message by full UUID (either form, any case) or by a unique
    /// prefix of at least [`MIN_ID_PREFIX`] hex digits, as the CLI shows
    /// short ids.
    pub fn get(&self, id: &str) -> Result<Message, StoreError> {
        let wanted = match id_query(id)? {
            IdQuery::Full(full) => {
                let conn = self.lock();
                return index::by_id(&conn, &full)
                    .map_err(self.db_err(format!("get message {full}")))?
                    .ok_or(StoreError::NotFound { id: id.to_owned() });
            }
            IdQuery::Prefix(prefix) => prefix,
        };
        let conn = self.lock();
        let mut found = index::by_prefix(&conn, &wanted, AMBIGUOUS_REPORT_LIMIT)
            .map_err(self.db_err(format!("find message by prefix {wanted}")))?;
        match found.len() {
            0 => Err(StoreError::NotFound { id: id.to_owned() }),
            1 => Ok(found.remove(0)),
            _ => Err(StoreError::Ambiguous {
                prefix: id.to_owned(),
                matches: found.into_iter().map(|m| m.id).collect(),
            }),
        }
    }

    /// Where a stored message's audio lives. The mailbox was validated when
    /// the row was written, so it is a safe path component; the extension
    /// follows the format (`.wav`, `.opus`).
    pub fn audio_path(&self, msg: &Message) -> PathBuf {
        let ext = message::format_extension(&msg.format).unwrap_or(FORMAT_WAV);
        self.message_path(&msg.mailbox, &msg.id, ext)
    }

    /// A stored message's audio, checked against the SHA-256 in its row so
    /// that a file damaged on disk is reported here, by name, rather than
    /// forwarded to a peer that would refuse it.
    pub fn read_audio(&self, msg: &Message) -> Result<Vec<u8>, StoreError> {
        let path = self.audio_path(msg);
        let bytes = fs::read(&path).map_err(StoreError::io("read", &path))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&msg.sha256) {
            return Err(StoreError::Checksum {
                id: msg.id.clone(),
                expected: msg.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Schema version of the index (`PRAGMA user_version`), for diagnostics
    /// such as `vmesh check`.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        schema::current_version(&conn, &self.db_path)
    }

    /// The signal raised after each commit (by this process) that changes
    /// a mailbox's messages: stored, received, moved between folders,
    /// purged. It carries no mailbox; a [`ChangeWatcher`] says which.
    pub fn change_signal(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Raises [`Store::change_signal`].
    pub(crate) fn signal_change(&self) {
        self.changed.notify_one();
    }

    /// The data directory this store was opened on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The index connection. A panic while holding the lock cannot leave
    /// SQLite inconsistent (an open transaction rolls back), so a poisoned
    /// lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Maps an SQLite error to [`StoreError::Database`] naming this index.
    fn db_err(&self, what: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let path = self.db_path.clone();
        move |source| StoreError::Database { path, what, source }
    }

    /// `messages/<mailbox>/<id>.<ext>`; `mailbox` must be validated and
    /// `ext` one of [`message::format_extension`]'s answers.
    fn message_path(&self, mailbox: &str, id: &str, ext: &str) -> PathBuf {
        self.data_dir
            .join(MESSAGES_DIR)
            .join(mailbox)
            .join(format!("{id}.{ext}"))
    }

    fn recording_path(&self, id: &str) -> PathBuf {
        self.data_dir
            .join(RECORDING_DIR)
            .join(format!("{id}.{FORMAT_WAV}"))
    }

    fn sidecar_path(&self, id: &str) -> PathBuf {
        self.data_dir.join(RECORDING_DIR).join(format!("{id}.json"))
    }

    /// `recording/<id>.opus.tmp`: an Ogg Opus file being encoded, renamed
    /// into `messages/` once complete and fsynced.
    fn encode_tmp_path(&self, id: &str) -> PathBuf {
        self.data_dir
            .join(RECORDING_DIR)
            .join(format!("{id}.{FORMAT_OPUS}.{}", durable::TMP_EXTENSION))
    }
}

#[cfg(test)]
mod finish_tests;
#[cfg(test)]
mod folder_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
mod received_tests;
#[cfg(test)]
mod spare_tests;
#[cfg(test)]
mod tests;

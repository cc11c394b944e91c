//! The one error type of the store boundary.
//!
//! Every variant names what an operator needs to act on it: the file, the
//! message id, the mailbox or the database operation that failed.

use std::io;
use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The mailbox is not 1..=32 ASCII digits. It becomes a directory name,
    /// so anything else (for example `../x`) is refused before touching disk.
    #[error("invalid mailbox {mailbox:?}: expected 1 to 32 ASCII digits")]
    InvalidMailbox {
        /// The rejected value.
        mailbox: String,
    },

    /// The id is neither a UUID nor a prefix of at least 8 hex digits.
    #[error("invalid message id {id:?}: expected a UUID or a prefix of at least 8 hex digits")]
    InvalidId {
        /// The rejected value.
        id: String,
    },

    /// No message has this id (or id prefix).
    #[error("no message with id {id:?}")]
    NotFound {
        /// The id or prefix looked up.
        id: String,
    },

    /// The prefix matches more than one message; the caller must type more.
    #[error("message id prefix {prefix:?} is ambiguous: matches {matches:?}")]
    Ambiguous {
        /// The prefix looked up.
        prefix: String,
        /// Some of the ids it matches (at most ten).
        matches: Vec<String>,
    },

    /// A folder name that is not new, old, saved or deleted.
    #[error("invalid folder {folder:?}: expected new, old, saved or deleted")]
    InvalidFolder {
        /// The rejected value.
        folder: String,
    },

    /// The message is deleted: only `restore` applies to it.
    #[error("message {id} is deleted; restore it first")]
    Deleted {
        /// The message id.
        id: String,
    },

    /// `restore` was asked for a message that is not deleted.
    #[error("message {id} is not deleted, so there is nothing to restore")]
    NotDeleted {
        /// The message id.
        id: String,
    },

    /// A recording was started with a sample rate of zero.
    #[error("invalid sample rate {sample_rate} for message {id}")]
    InvalidSampleRate {
        /// The message being started.
        id: String,
        /// The rejected rate.
        sample_rate: u32,
    },

    /// The receive time cannot be written as RFC 3339 (year out of range).
    #[error("cannot format receive time of message {id} as RFC 3339: {source}")]
    Timestamp {
        /// The message being started.
        id: String,
        /// Why formatting failed.
        #[source]
        source: time::error::Format,
    },

    /// A receive time that is valid RFC 3339 but whose UTC form has no
    /// four-digit year (RFC 3339 §5.6), so it cannot be stored.
    #[error("receive time {time} of message {id} is outside the years 0000 to 9999 in UTC")]
    TimeOutOfRange {
        /// The message.
        id: String,
        /// The time as given.
        time: String,
    },

    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `rename to`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Writing or reading a WAV file failed.
    #[error("WAV file {}: {source}", path.display())]
    Wav {
        /// The audio file.
        path: PathBuf,
        /// hound's error.
        #[source]
        source: hound::Error,
    },

    /// Encoding a message to Ogg Opus, or decoding one, failed.
    #[error("{what} {}: {source}", path.display())]
    Audio {
        /// What was being done, e.g. `encode Ogg Opus`.
        what: &'static str,
        /// The audio file.
        path: PathBuf,
        /// The codec or container error.
        #[source]
        source: crate::audio::AudioError,
    },

    /// A recording file cannot be used, even after header repair.
    #[error("recording {} is unusable: {reason}", path.display())]
    CorruptRecording {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A recording sidecar (`recording/<id>.json`) cannot be read or written.
    #[error("sidecar {}: {source}", path.display())]
    Sidecar {
        /// The sidecar file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// An SQLite operation on the index failed.
    #[error("database {}: {what}: {source}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// The operation, naming the message where there is one.
        what: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// Metadata of a message received from a peer is unusable (an id that
    /// is not a UUID, an unknown format, an unparsable time...). The sender
    /// must fix it; retrying the same bytes cannot succeed.
    #[error("message {id}: invalid {field}: {reason}")]
    InvalidMetadata {
        /// The message id as sent.
        id: String,
        /// The metadata field at fault, e.g. `received_at`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// Audio bytes do not hash to the SHA-256 their metadata (or the index)
    /// promises: corrupted in transit or on disk.
    #[error("audio of message {id} has sha256 {actual}, expected {expected}")]
    Checksum {
        /// The message.
        id: String,
        /// The SHA-256 the metadata or index row names.
        expected: String,
        /// The SHA-256 of the bytes at hand.
        actual: String,
    },

    /// A peer sent a message whose id this store already holds with other
    /// audio. Message ids are UUIDs chosen at recording time, so this is a
    /// bug or tampering; the stored copy is kept untouched.
    #[error("message {id} is already stored with sha256 {existing}, refusing a copy with sha256 {incoming}")]
    Conflict {
        /// The message id.
        id: String,
        /// SHA-256 of the stored copy.
        existing: String,
        /// SHA-256 of the refused copy.
        incoming: String,
    },

    /// A transfer outcome was reported for a message whose delivery is
    /// already confirmed; delivery is final, so the report is refused.
    #[error("message {id} is already delivered to its home server")]
    AlreadyDelivered {
        /// The message id.
        id: String,
    },

    /// A route or peer record names a peer with an unusable name.
    #[error("invalid peer name {name:?}: expected 1 to 64 letters, digits, '-', '_' or '.'")]
    InvalidPeer {
        /// The rejected name.
        name: String,
    },

    /// A store call handed to a blocking thread did not complete (the
    /// thread panicked or the runtime is shutting down), so the operation
    /// may or may not have run; async callers map their join error here.
    #[error("store task did not complete: {0}")]
    Task(String),

    /// The index was written by a newer vmesh; refusing to touch it protects
    /// the newer schema from being misread.
    #[error(
        "database {} has schema version {found}, newer than the {supported} this vmesh knows",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// `vmesh mailbox add` for a mailbox that is already there.
    #[error("mailbox {mailbox} already exists")]
    MailboxExists {
        /// The mailbox.
        mailbox: String,
    },

    /// A mailbox operation named a mailbox that was never added.
    #[error("no mailbox {mailbox} (add it with `vmesh mailbox add {mailbox}`)")]
    UnknownMailbox {
        /// The mailbox.
        mailbox: String,
    },
}

impl StoreError {
    /// True when the input itself is at fault (a bad mailbox, id, metadata
    /// field or checksum): repeating the same request cannot succeed, so a
    /// receiver answers 400 rather than a retryable 5xx.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            StoreError::InvalidMailbox { .. }
                | StoreError::InvalidId { .. }
                | StoreError::InvalidFolder { .. }
                | StoreError::InvalidSampleRate { .. }
                | StoreError::InvalidMetadata { .. }
                | StoreError::TimeOutOfRange { .. }
                | StoreError::InvalidPeer { .. }
                | StoreError::Checksum { .. }
        )
    }

    /// True when the file system is out of space (ENOSPC) or quota
    /// (EDQUOT): nothing is wrong with the request, so it may be tried
    /// again once space is freed.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Wav {
                source: hound::Error::IoError(source),
                ..
            } => Some(source),
            // The Ogg Opus file of a finished message could not be written.
            StoreError::Audio {
                source: crate::audio::AudioError::Io(source),
                ..
            } => Some(source),
            _ => None,
        };
        if let Some(e) = io {
            return matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
                || e.kind() == io::ErrorKind::StorageFull;
        }
        match self {
            // SQLITE_FULL; or the WAL index (`-shm`) could not be made or
            // grown, which on Unix fails only for want of space.
            StoreError::Database {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => {
                e.code == rusqlite::ErrorCode::DiskFull
                    || e.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE
            }
            _ => false,
        }
    }

    /// Builds an [`StoreError::Io`] for `op` on `path`; used with `map_err`.
    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    /// Builds a [`StoreError::Wav`] for `path`; used with `map_err`.
    pub(super) fn wav(path: impl Into<PathBuf>) -> impl FnOnce(hound::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Wav { path, source }
    }
}

//! Message folders: what the mailbox owner has done with each message.
//!
//! ```text
//!            heard                    save
//!   new ───────────────▶ old ───────────────▶ saved
//!    ▲ ◀─────────────────┘ ◀──────────────────┘ │
//!    └──────────────── mark new ────────────────┘
//!   new | old | saved ──delete──▶ deleted ──restore──▶ the folder it left
//!                                    └──retention──▶ purged (tombstone kept)
//! ```
//!
//! Deletion is soft: a deleted message keeps its row and its audio, with
//! the time it was deleted and the folder it came from, so `restore` puts
//! it back exactly where it was; `tombstone.rs` purges it for good after
//! `storage.deleted_retention_days`. Every move is one immediate SQLite
//! transaction, so a move is whole or not at all and two processes (the
//! server and the CLI) never interleave half-moves.
//!
//! The counts behind the message-waiting lamp (RFC 3842 §5.2) are taken
//! from the folders of the messages stored at their home here: `new` are
//! the unheard messages, `old` the heard ones that are kept (`old` and
//! `saved`). A message waiting at this server for its home peer counts
//! nowhere: its mailbox's lamp is the home's business.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::index;
use super::message::{format_unix_ms, now_unix_ms, validate_mailbox, Message};
use super::Store;

/// The folder a message is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Folder {
    /// Not heard yet: lights the message-waiting lamp.
    #[default]
    New,
    /// Heard (played to its end, or marked heard).
    Old,
    /// Kept on purpose by the owner.
    Saved,
    /// Deleted, restorable until purged.
    Deleted,
}

impl Folder {
    /// Every folder, in the order the CLI documents them.
    pub const ALL: [Folder; 4] = [Folder::New, Folder::Old, Folder::Saved, Folder::Deleted];

    /// The name used in the index, the JSON and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Folder::New => "new",
            Folder::Old => "old",
            Folder::Saved => "saved",
            Folder::Deleted => "deleted",
        }
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Folder {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Folder::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| StoreError::InvalidFolder {
                folder: s.to_owned(),
            })
    }
}

impl ToSql for Folder {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Folder {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        text.parse()
            .map_err(|e: StoreError| FromSqlError::Other(Box::new(e)))
    }
}

/// How many messages a mailbox holds in each folder (stored at their home
/// here). Urgency is not recorded, so the urgent counts are always 0; they
/// are kept so the message-summary body has them (RFC 3842 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MailboxCounts {
    /// Unheard messages.
    pub new: u32,
    /// Heard messages in `old`.
    pub old: u32,
    /// Messages in `saved`.
    pub saved: u32,
    /// Deleted messages not yet purged.
    pub deleted: u32,
    /// Unheard urgent messages (always 0).
    pub urgent_new: u32,
    /// Heard urgent messages (always 0).
    pub urgent_old: u32,
}

impl MailboxCounts {
    /// The heard messages the owner keeps (`old` and `saved`): the "old"
    /// of a message summary and of "You have N new and M old messages".
    pub fn heard(&self) -> u32 {
        self.old + self.saved
    }
}

/// What a folder change did: the message as it is now, and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderChange {
    /// The message after the change.
    pub message: Message,
    /// Its folder before the change (equal to `message.folder` when the
    /// request changed nothing, e.g. marking a heard message heard).
    pub from: Folder,
}

impl FolderChange {
    /// Whether the folder changed.
    pub fn changed(&self) -> bool {
        self.from != self.message.folder
    }
}

/// What a request asks of one message's folder.
#[derive(Debug, Clone, Copy)]
enum Move {
    /// Into this folder (not `deleted`).
    To(Folder),
    /// `new` becomes `old`; other folders stay as they are.
    Heard,
    /// Into `deleted`, remembering where from.
    Delete,
    /// Out of `deleted`, back where it was.
    Restore,
}

impl Store {
    /// The messages of one folder, or of every folder but `deleted` when
    /// `folder` is `None`, for all mailboxes or one; newest first.
    pub fn list_in(
        &self,
        mailbox: Option<&str>,
        folder: Option<Folder>,
    ) -> Result<Vec<Message>, StoreError> {
        if let Some(mailbox) = mailbox {
            validate_mailbox(mailbox)?;
        }
        let conn = self.lock();
        index::list_in(&conn, mailbox, folder).map_err(self.db_err("list messages".into()))
    }

    /// A mailbox's messages in the order an owner listens to them: the new
    /// ones oldest first, then the heard ones (`old` and `saved`) oldest
    /// first. Only messages stored at their home here; never deleted ones.
    pub fn listening_order(&self, mailbox: &str) -> Result<Vec<Message>, StoreError> {
        validate_mailbox(mailbox)?;
        let conn = self.lock();
        index::listening_order(&conn, mailbox)
            .map_err(self.db_err(format!("list messages of mailbox {mailbox}")))
    }

    /// The folder counts of a mailbox, over the messages stored at their
    /// home here (what its message-waiting lamp shows).
    pub fn counts(&self, mailbox: &str) -> Result<MailboxCounts, StoreError> {
        validate_mailbox(mailbox)?;
        let conn = self.lock();
        counts(&conn, mailbox).map_err(self.db_err(format!("count messages of mailbox {mailbox}")))
    }

    /// Moves a message (id rules of [`Store::get`]) into `new`, `old` or
    /// `saved`; [`Folder::Deleted`] is [`Store::delete`]. A deleted message
    /// must be restored first ([`StoreError::Deleted`]).
    pub fn move_to(&self, id: &str, folder: Folder) -> Result<FolderChange, StoreError> {
        match folder {
            Folder::Deleted => self.delete(id),
            other => self.apply(id, Move::To(other)),
        }
    }

    /// Marks a message heard: `new` becomes `old`; a message already heard
    /// (`old`, `saved`) stays where it is.
    pub fn mark_heard(&self, id: &str) -> Result<FolderChange, StoreError> {
        self.apply(id, Move::Heard)
    }

    /// Marks a message unheard again: it goes back to `new`.
    pub fn mark_new(&self, id: &str) -> Result<FolderChange, StoreError> {
        self.apply(id, Move::To(Folder::New))
    }

    /// Deletes a message softly: it moves to `deleted`, keeping its audio
    /// and the folder it came from, until [`Store::restore`] or the purge.
    /// Deleting a deleted message changes nothing. A message still waiting
    /// for its home peer is not sent while deleted.
    pub fn delete(&self, id: &str) -> Result<FolderChange, StoreError> {
        self.apply(id, Move::Delete)
    }

    /// Puts a deleted message back in the folder it was deleted from
    /// ([`StoreError::NotDeleted`] if it is not deleted).
    pub fn restore(&self, id: &str) -> Result<FolderChange, StoreError> {
        self.apply(id, Move::Restore)
    }

    /// Resolves `id`, then decides and writes the move in one immediate
    /// transaction, reading the row inside it so a concurrent move by
    /// another process is never overwritten with stale state.
    fn apply(&self, id: &str, request: Move) -> Result<FolderChange, StoreError> {
        let full = self.get(id)?.id;
        let what = format!("move message {full}");
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.db_err(what.clone()))?;
        let current = index::by_id(&tx, &full)
            .map_err(self.db_err(what.clone()))?
            .ok_or_else(|| StoreError::NotFound { id: id.to_owned() })?;
        let from = current.folder;
        let restore_to: Option<Folder> = tx
            .query_row(
                "SELECT restore_folder FROM messages WHERE id = ?1",
                [&full],
                |row| row.get(0),
            )
            .map_err(self.db_err(what.clone()))?;
        let target = match (request, from) {
            (Move::Restore, Folder::Deleted) => restore_to.unwrap_or(Folder::New),
            (Move::Restore, _) => return Err(StoreError::NotDeleted { id: full }),
            (Move::Delete, _) => Folder::Deleted,
            (_, Folder::Deleted) => return Err(StoreError::Deleted { id: full }),
            (Move::Heard, Folder::New) => Folder::Old,
            (Move::Heard, other) => other,
            (Move::To(folder), _) => folder,
        };
        if target != from {
            write_folder(&tx, &full, from, target).map_err(self.db_err(what.clone()))?;
        }
        let message = index::by_id(&tx, &full)
            .map_err(self.db_err(what.clone()))?
            .ok_or_else(|| StoreError::NotFound { id: id.to_owned() })?;
        tx.commit().map_err(self.db_err(what))?;
        if target != from {
            self.signal_change();
        }
        Ok(FolderChange { message, from })
    }
}

/// Writes a folder change: into `deleted` with the time and the folder it
/// left, anywhere else with both cleared.
fn write_folder(conn: &Connection, id: &str, from: Folder, to: Folder) -> rusqlite::Result<()> {
    if to == Folder::Deleted {
        let (now_ms, _) = now_unix_ms();
        conn.execute(
            "UPDATE messages SET folder = ?2, deleted_ms = ?3, restore_folder = ?4 WHERE id = ?1",
            params![id, to, now_ms, from],
        )?;
    } else {
        conn.execute(
            "UPDATE messages SET folder = ?2, deleted_ms = NULL, restore_folder = NULL \
             WHERE id = ?1",
            params![id, to],
        )?;
    }
    Ok(())
}

/// Counts per folder of `mailbox`'s messages stored at their home here.
fn counts(conn: &Connection, mailbox: &str) -> rusqlite::Result<MailboxCounts> {
    let mut stmt = conn.prepare(
        "SELECT folder, COUNT(*) FROM messages WHERE mailbox = ?1 AND home IS NULL \
         GROUP BY folder",
    )?;
    let mut rows = stmt.query([mailbox])?;
    let mut counts = MailboxCounts::default();
    while let Some(row) = rows.next()? {
        let n: i64 = row.get(1)?;
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match row.get::<_, Folder>(0)? {
            Folder::New => counts.new = n,
            Folder::Old => counts.old = n,
            Folder::Saved => counts.saved = n,
            Folder::Deleted => counts.deleted = n,
        }
    }
    Ok(counts)
}

/// The `deleted_at` of a row: its `deleted_ms` in RFC 3339.
pub(super) fn deleted_at(deleted_ms: Option<i64>) -> Option<String> {
    deleted_ms.and_then(format_unix_ms)
}

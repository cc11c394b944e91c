//! Purging deleted messages, and the tombstones that keep them purged.
//!
//! A deleted message stays restorable for `storage.deleted_retention_days`
//! (`folder.rs`); then [`Store::purge_deleted`] removes it for good. The
//! order is the store's usual one for removals: in one transaction the row
//! goes and a tombstone (id, mailbox, sha256) takes its place; only then is
//! the audio file removed, so a crash in between leaves an unlisted file
//! that recovery removes, never a listed message without audio.
//!
//! The tombstone is what keeps a message deleted at its home from coming
//! back. The origin of a transferred message sends it again until it sees a
//! 200 (a lost answer, a restart), possibly long after the owner deleted
//! it. While the row is soft-deleted, the receiver finds the id and answers
//! as for any duplicate; after the purge it finds the tombstone and does
//! the same ([`super::Received::Purged`]): 200, nothing stored. Tombstones
//! are a few dozen bytes each and are never removed, since a sender may
//! retry a failed transfer at any time (`vmesh queue retry`).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::index;
use super::message::{format_extension, FORMAT_WAV};
use super::{Store, StoreError};

/// A purged message as its tombstone remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tombstone {
    pub(super) mailbox: String,
    pub(super) sha256: String,
}

/// The tombstone of message `id`, if it was purged here.
pub(super) fn find(conn: &Connection, id: &str) -> rusqlite::Result<Option<Tombstone>> {
    conn.query_row(
        "SELECT mailbox, sha256 FROM tombstones WHERE id = ?1",
        [id],
        |row| {
            Ok(Tombstone {
                mailbox: row.get(0)?,
                sha256: row.get(1)?,
            })
        },
    )
    .optional()
}

impl Store {
    /// Removes, for good, the messages deleted before `older_than_ms`
    /// (Unix epoch milliseconds; the retention period is the caller's):
    /// rows out and tombstones in, in one transaction, then the files.
    /// Returns the ids purged.
    pub fn purge_deleted(&self, older_than_ms: i64) -> Result<Vec<String>, StoreError> {
        let (now_ms, _) = super::message::now_unix_ms();
        let victims = {
            let mut conn = self.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(self.db_err("begin purge of deleted messages".into()))?;
            let victims = deleted_before(&tx, older_than_ms)
                .map_err(self.db_err("list deleted messages".into()))?;
            for v in &victims {
                tx.execute(
                    "INSERT OR IGNORE INTO tombstones (id, mailbox, sha256, deleted_ms, purged_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![v.id, v.mailbox, v.sha256, v.deleted_ms, now_ms],
                )
                .map_err(self.db_err(format!("keep tombstone of {}", v.id)))?;
                index::delete(&tx, &v.id)
                    .map_err(self.db_err(format!("purge message {}", v.id)))?;
            }
            tx.commit()
                .map_err(self.db_err("commit purge of deleted messages".into()))?;
            victims
        };
        if !victims.is_empty() {
            self.signal_change();
        }
        let mut ids = Vec::with_capacity(victims.len());
        for v in victims {
            let ext = format_extension(&v.format).unwrap_or(FORMAT_WAV);
            let path = self.message_path(&v.mailbox, &v.id, ext);
            if let Err(error) = std::fs::remove_file(&path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %error, "cannot remove a purged message's audio; recovery will");
                }
            }
            ids.push(v.id);
        }
        Ok(ids)
    }

    /// Whether message `id` (a full UUID) was deleted here and purged.
    pub fn is_tombstoned(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        find(&conn, id)
            .map(|t| t.is_some())
            .map_err(self.db_err(format!("look up tombstone of {id}")))
    }
}

/// A deleted message due for purging.
struct Victim {
    id: String,
    mailbox: String,
    format: String,
    sha256: String,
    deleted_ms: i64,
}

fn deleted_before(conn: &Connection, older_than_ms: i64) -> rusqlite::Result<Vec<Victim>> {
    let mut stmt = conn.prepare(
        "SELECT id, mailbox, format, sha256, deleted_ms FROM messages \
         WHERE folder = 'deleted' AND deleted_ms < ?1 ORDER BY deleted_ms, id",
    )?;
    let rows = stmt.query_map([older_than_ms], |row| {
        Ok(Victim {
            id: row.get(0)?,
            mailbox: row.get(1)?,
            format: row.get(2)?,
            sha256: row.get(3)?,
            deleted_ms: row.get(4)?,
        })
    })?;
    rows.collect()
}

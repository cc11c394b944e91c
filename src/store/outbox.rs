//! The outbox: messages recorded here for a mailbox whose home is a peer,
//! waiting for that peer to confirm durable storage (issue 3,
//! store-and-forward).
//!
//! A message enters the outbox in the same SQLite transaction that lists it
//! (see `commit.rs`), so no crash can leave a forwarded message listed but
//! not queued. Each entry is in one of three states:
//!
//! ```text
//! waiting ──200──▶ delivered ──retention──▶ purged (file + rows removed)
//!    ▲ │
//!    │ └──refused──▶ failed ──`vmesh queue retry`──▶ waiting
//!    └─ retry later (attempts + 1, next attempt time)
//! ```
//!
//! A message deleted here while it waits is not sent while it stays
//! deleted (restoring it puts it back in line); once purged, its entry
//! goes with it. The store only records decisions; the retry policy (backoff, which
//! responses park a message) belongs to the mesh. Times are Unix epoch
//! milliseconds from the caller, so schedules survive restarts.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;
use uuid::Uuid;

use super::error::StoreError;
use super::index;
use super::message::{format_extension, format_unix_ms, Message, FORMAT_WAV};
use super::{id_query, IdQuery, Store, AMBIGUOUS_REPORT_LIMIT};

/// Where a new message belongs, decided by the caller from the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The mailbox is one of this server's own: stored here, never queued.
    Home,
    /// The mailbox's home is this peer: the message is queued for it.
    Forward {
        /// The peer's server name, as in the topology.
        peer: String,
    },
}

/// Outbox row state: due for (another) transfer attempt.
pub const OUTBOX_WAITING: &str = "waiting";
/// Outbox row state: parked after a refusal, until an operator retries it.
pub const OUTBOX_FAILED: &str = "failed";
/// Outbox row state: the home server answered 200; kept until purged.
pub const OUTBOX_DELIVERED: &str = "delivered";

/// One outbox entry: the transfer of one message to its home peer. Also the
/// JSON shape of `vmesh queue --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    /// Message id.
    pub id: String,
    /// The message's mailbox.
    pub mailbox: String,
    /// The home peer it goes to.
    pub peer: String,
    /// [`OUTBOX_WAITING`], [`OUTBOX_FAILED`] or [`OUTBOX_DELIVERED`].
    pub state: String,
    /// Transfer attempts that ended without a 200.
    pub attempts: u32,
    /// When the next attempt is due, RFC 3339 UTC; `None` unless waiting.
    pub next_attempt_at: Option<String>,
    /// The same time as Unix epoch milliseconds, for the scheduler.
    pub next_attempt_ms: Option<i64>,
    /// Why the last attempt failed, as the mesh reported it.
    pub last_error: Option<String>,
    /// When the message was queued, RFC 3339 UTC.
    pub queued_at: String,
}

/// Keeps out the entries of messages deleted here: a message deleted
/// before it reached its home is not sent while it stays deleted, and goes
/// back in line if it is restored (`folder.rs`).
const NOT_DELETED: &str = "id NOT IN (SELECT id FROM messages WHERE folder = 'deleted')";

/// Columns in the order [`entry_from_row`] reads them.
const ENTRY_COLUMNS: &str =
    "id, mailbox, peer, state, attempts, next_attempt_ms, last_error, queued_at";

/// Queues `message` for `peer`, due at once (at `queued_ms`). Runs inside
/// the transaction that inserts the message row.
pub(super) fn insert(
    conn: &Connection,
    message: &Message,
    peer: &str,
    queued_ms: i64,
    queued_at: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO outbox (id, mailbox, peer, state, attempts, next_attempt_ms, queued_at, \
         queued_ms) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?5)",
        params![
            message.id,
            message.mailbox,
            peer,
            OUTBOX_WAITING,
            queued_ms,
            queued_at
        ],
    )?;
    Ok(())
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let attempts: i64 = row.get(4)?;
    let next_attempt_ms: Option<i64> = row.get(5)?;
    Ok(OutboxEntry {
        id: row.get(0)?,
        mailbox: row.get(1)?,
        peer: row.get(2)?,
        state: row.get(3)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: next_attempt_ms.and_then(format_unix_ms),
        next_attempt_ms,
        last_error: row.get(6)?,
        queued_at: row.get(7)?,
    })
}

fn entries(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<OutboxEntry>> {
    let mut stmt = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM outbox {filter}"))?;
    let rows = stmt.query_map(args, entry_from_row)?;
    rows.collect()
}

impl Store {
    /// Waiting entries for `peer` whose next attempt is due at `now_ms`,
    /// oldest queued first, at most `limit`. Passing `i64::MAX` as `now_ms`
    /// returns every waiting entry, for when a peer comes back up and its
    /// messages should move at once rather than at their scheduled time.
    pub fn outbox_due(
        &self,
        peer: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.lock();
        entries(
            &conn,
            &format!(
                "WHERE peer = ?1 AND state = ?2 AND next_attempt_ms <= ?3 AND {NOT_DELETED} \
                 ORDER BY queued_ms, rowid LIMIT ?4"
            ),
            params![peer, OUTBOX_WAITING, now_ms, limit],
        )
        .map_err(self.db_err(format!("list due outbox entries for {peer}")))
    }

    /// The earliest next attempt among `peer`'s waiting entries, so the
    /// mesh can sleep until then; `None` when nothing waits for it.
    pub fn outbox_next_due(&self, peer: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            &format!(
                "SELECT MIN(next_attempt_ms) FROM outbox WHERE peer = ?1 AND state = ?2 \
                 AND {NOT_DELETED}"
            ),
            params![peer, OUTBOX_WAITING],
            |row| row.get(0),
        )
        .map_err(self.db_err(format!("find next outbox attempt for {peer}")))
    }

    /// How many entries wait for each peer (peers with none are absent),
    /// sorted by peer; the mesh pings such peers at the short interval.
    pub fn outbox_waiting_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.lock();
        let count = || -> rusqlite::Result<Vec<(String, u64)>> {
            let mut stmt = conn.prepare(&format!(
                "SELECT peer, COUNT(*) FROM outbox WHERE state = ?1 AND {NOT_DELETED} \
                     GROUP BY peer ORDER BY peer"
            ))?;
            let rows = stmt.query_map([OUTBOX_WAITING], |row| {
                let n: i64 = row.get(1)?;
                Ok((row.get(0)?, u64::try_from(n).unwrap_or(0)))
            })?;
            rows.collect()
        };
        count().map_err(self.db_err("count waiting outbox entries".into()))
    }

    /// Records the home server's 200: the message is delivered for good
    /// (later reports of failure for it are refused). Repeating it keeps
    /// the first delivery time, which starts the retention period.
    pub fn outbox_delivered(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        let conn = self.lock();
        let changed = conn
            .execute(
                "UPDATE outbox SET state = ?2, next_attempt_ms = NULL, \
                 delivered_ms = COALESCE(delivered_ms, ?3) WHERE id = ?1",
                params![id, OUTBOX_DELIVERED, now_ms],
            )
            .map_err(self.db_err(format!("mark {id} delivered")))?;
        if changed == 0 {
            return Err(StoreError::NotFound { id: id.to_owned() });
        }
        Ok(())
    }

    /// Records a failed attempt that is worth repeating (timeout, 5xx, lost
    /// connection): one more attempt counted, next one due at
    /// `next_attempt_ms`, `error` kept for `vmesh queue`.
    pub fn outbox_retry_later(
        &self,
        id: &str,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.record_failure(id, OUTBOX_WAITING, Some(next_attempt_ms), error)
    }

    /// Records a refusal that retrying cannot fix (a 4xx such as 404 or
    /// 403): one more attempt counted and the entry parked as failed until
    /// an operator runs `vmesh queue retry`.
    pub fn outbox_failed(&self, id: &str, error: &str) -> Result<(), StoreError> {
        self.record_failure(id, OUTBOX_FAILED, None, error)
    }

    /// Puts a failed (or waiting) entry back in line, due at `now_ms`;
    /// `id_or_prefix` follows the rules of [`Store::get`]. The attempt
    /// count and last error are kept as history. [`StoreError::NotFound`]
    /// when no such message is queued (including one already delivered).
    pub fn outbox_retry(&self, id_or_prefix: &str, now_ms: i64) -> Result<OutboxEntry, StoreError> {
        let query = id_query(id_or_prefix)?;
        let mut conn = self.lock();
        let not_found = || StoreError::NotFound {
            id: id_or_prefix.to_owned(),
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.db_err("begin queue retry".into()))?;
        let (filter, pattern) = match &query {
            IdQuery::Full(id) => ("id = ?2", id.clone()),
            IdQuery::Prefix(prefix) => ("id LIKE ?2 || '%'", prefix.clone()),
        };
        let mut found = entries(
            &tx,
            &format!("WHERE state != ?1 AND {filter} ORDER BY id LIMIT ?3"),
            params![OUTBOX_DELIVERED, pattern, AMBIGUOUS_REPORT_LIMIT],
        )
        .map_err(self.db_err(format!("find queued message {id_or_prefix}")))?;
        let entry = match found.len() {
            0 => return Err(not_found()),
            1 => found.remove(0),
            _ => {
                return Err(StoreError::Ambiguous {
                    prefix: id_or_prefix.to_owned(),
                    matches: found.into_iter().map(|e| e.id).collect(),
                })
            }
        };
        tx.execute(
            "UPDATE outbox SET state = ?2, next_attempt_ms = ?3 WHERE id = ?1",
            params![entry.id, OUTBOX_WAITING, now_ms],
        )
        .map_err(self.db_err(format!("requeue {}", entry.id)))?;
        let updated = entries(&tx, "WHERE id = ?1", [&entry.id])
            .map_err(self.db_err(format!("read outbox entry {}", entry.id)))?
            .pop()
            .ok_or_else(not_found)?;
        tx.commit()
            .map_err(self.db_err(format!("commit requeue of {}", entry.id)))?;
        Ok(updated)
    }

    /// Waiting and failed entries (not delivered ones), oldest queued
    /// first: what `vmesh queue` shows.
    pub fn outbox_list(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let conn = self.lock();
        entries(
            &conn,
            "WHERE state != ?1 ORDER BY queued_ms, rowid",
            [OUTBOX_DELIVERED],
        )
        .map_err(self.db_err("list outbox".into()))
    }

    /// Removes this server's copies of messages delivered before
    /// `older_than_ms` (the retention period is the caller's): rows first,
    /// in one transaction, then files, so a crash in between leaves unlisted
    /// files that recovery removes. Returns the ids removed.
    pub fn purge_delivered(&self, older_than_ms: i64) -> Result<Vec<String>, StoreError> {
        let victims = {
            let mut conn = self.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(self.db_err("begin purge".into()))?;
            let victims = delivered_before(&tx, older_than_ms)
                .map_err(self.db_err("list delivered messages".into()))?;
            for (id, _, _) in &victims {
                index::delete(&tx, id).map_err(self.db_err(format!("purge message {id}")))?;
            }
            tx.commit().map_err(self.db_err("commit purge".into()))?;
            victims
        };
        let mut ids = Vec::with_capacity(victims.len());
        for (id, mailbox, format) in victims {
            let ext = format_extension(&format).unwrap_or(FORMAT_WAV);
            let path = self.message_path(&mailbox, &id, ext);
            if let Err(error) = std::fs::remove_file(&path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %error, "cannot remove a purged message's audio; recovery will");
                }
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// The outbox entry of one message, if it has one.
    pub fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        let full = match Uuid::try_parse(id.trim()) {
            Ok(uuid) => uuid.to_string(),
            Err(_) => return Ok(None),
        };
        let conn = self.lock();
        conn.query_row(
            &format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE id = ?1"),
            [&full],
            entry_from_row,
        )
        .optional()
        .map_err(self.db_err(format!("read outbox entry {full}")))
    }

    /// Shared by the two failure reports: counts the attempt and moves the
    /// entry to `state`, unless it is delivered (delivery is final).
    fn record_failure(
        &self,
        id: &str,
        state: &str,
        next_attempt_ms: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        let changed = conn
            .execute(
                "UPDATE outbox SET state = ?2, next_attempt_ms = ?3, last_error = ?4, \
                 attempts = attempts + 1 WHERE id = ?1 AND state != ?5",
                params![id, state, next_attempt_ms, error, OUTBOX_DELIVERED],
            )
            .map_err(self.db_err(format!("record failed transfer of {id}")))?;
        if changed > 0 {
            return Ok(());
        }
        let exists: Option<String> = conn
            .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(self.db_err(format!("read outbox entry {id}")))?;
        match exists {
            Some(_) => Err(StoreError::AlreadyDelivered { id: id.to_owned() }),
            None => Err(StoreError::NotFound { id: id.to_owned() }),
        }
    }
}

/// `(id, mailbox, format)` of messages delivered before `older_than_ms`.
fn delivered_before(
    conn: &Connection,
    older_than_ms: i64,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT m.id, m.mailbox, m.format FROM outbox o JOIN messages m ON m.id = o.id \
         WHERE o.state = ?1 AND o.delivered_ms < ?2 ORDER BY o.delivered_ms, m.id",
    )?;
    let rows = stmt.query_map(params![OUTBOX_DELIVERED, older_than_ms], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })?;
    rows.collect()
}

//! SQL over the `messages` table: the queries behind list/get and the
//! folders, and the insert that makes a message visible.
//!
//! Functions take a `&Connection` so the caller decides the locking and the
//! transaction; a statement outside a transaction is one implicit
//! transaction, which with WAL and `synchronous=FULL` is durable when it
//! returns. A message's delivery state is read from its `outbox` row (see
//! `schema.rs`), so every query joins it.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::folder::{deleted_at, Folder};
use super::message::{
    Message, DELIVERY_DELIVERED, DELIVERY_FAILED, DELIVERY_HOME, DELIVERY_QUEUED,
};

/// Columns in the order [`from_row`] reads them, over `messages m LEFT JOIN
/// outbox o`. The CASE maps the outbox state to [`Message::delivery`].
fn select() -> String {
    format!(
        "SELECT m.id, m.mailbox, m.caller_uri, m.caller_name, m.called_uri, m.reason, \
         m.received_at, m.duration_ms, m.codec, m.format, m.sample_rate, m.size_bytes, \
         m.sha256, m.folder, m.partial, m.origin, m.call_id, m.home, m.deleted_ms, \
         CASE o.state WHEN 'waiting' THEN '{DELIVERY_QUEUED}' \
                      WHEN 'failed' THEN '{DELIVERY_FAILED}' \
                      WHEN 'delivered' THEN '{DELIVERY_DELIVERED}' \
                      ELSE '{DELIVERY_HOME}' END \
         FROM messages m LEFT JOIN outbox o ON o.id = m.id"
    )
}

/// Adds a message row. Fails on a duplicate id (primary key). The delivery
/// state is not stored here: it follows from the outbox row, if any.
pub fn insert(conn: &Connection, m: &Message) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO messages (id, mailbox, caller_uri, caller_name, called_uri, reason, \
         received_at, duration_ms, codec, format, sample_rate, size_bytes, sha256, folder, \
         partial, origin, call_id, home) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            m.id,
            m.mailbox,
            m.caller,
            m.caller_name,
            m.called,
            m.reason,
            m.received_at,
            // SQLite integers are i64; a u64 above i64::MAX is not a real
            // duration or size, so saturate instead of wrapping.
            i64::try_from(m.duration_ms).unwrap_or(i64::MAX),
            super::message::codec_spelling(&m.codec),
            m.format,
            m.sample_rate,
            i64::try_from(m.size_bytes).unwrap_or(i64::MAX),
            m.sha256,
            m.folder,
            m.partial,
            m.origin,
            m.call_id,
            m.home,
        ],
    )?;
    Ok(())
}

/// The message with exactly this id, if any.
pub fn by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<Message>> {
    conn.query_row(&format!("{} WHERE m.id = ?1", select()), [id], from_row)
        .optional()
}

/// Up to `limit` messages whose id starts with `prefix`. The prefix must be
/// hex digits and hyphens only, so it carries no LIKE wildcards.
pub fn by_prefix(conn: &Connection, prefix: &str, limit: u32) -> rusqlite::Result<Vec<Message>> {
    let mut stmt = conn.prepare(&format!(
        "{} WHERE m.id LIKE ?1 || '%' ORDER BY m.id LIMIT ?2",
        select()
    ))?;
    let rows = stmt.query_map(params![prefix, limit], from_row)?;
    rows.collect()
}

/// All messages but deleted ones, or one mailbox's, newest first (ties
/// broken by id so the order is stable).
pub fn list(conn: &Connection, mailbox: Option<&str>) -> rusqlite::Result<Vec<Message>> {
    list_in(conn, mailbox, None)
}

/// Like [`list`], in one folder (`None`: every folder but `deleted`).
pub fn list_in(
    conn: &Connection,
    mailbox: Option<&str>,
    folder: Option<Folder>,
) -> rusqlite::Result<Vec<Message>> {
    let folder_filter = match folder {
        Some(_) => "m.folder = ?2",
        None => "m.folder != 'deleted'",
    };
    let mailbox_filter = match mailbox {
        Some(_) => "m.mailbox = ?1",
        None => "?1 IS NULL",
    };
    let mut stmt = conn.prepare(&format!(
        "{} WHERE {mailbox_filter} AND {folder_filter} ORDER BY m.received_at DESC, m.id DESC",
        select()
    ))?;
    let rows = match folder {
        Some(folder) => stmt.query_map(params![mailbox, folder], from_row)?,
        None => stmt.query_map(params![mailbox], from_row)?,
    };
    rows.collect()
}

/// Every row, deleted ones included, for recovery's checks.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<Message>> {
    let mut stmt = conn.prepare(&format!("{} ORDER BY m.received_at, m.id", select()))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// `mailbox`'s messages stored at their home here, as an owner hears
/// them: new ones oldest first, then heard ones (old and saved) oldest
/// first.
pub fn listening_order(conn: &Connection, mailbox: &str) -> rusqlite::Result<Vec<Message>> {
    let mut stmt = conn.prepare(&format!(
        "{} WHERE m.mailbox = ?1 AND m.home IS NULL AND m.folder != 'deleted' \
         ORDER BY CASE m.folder WHEN 'new' THEN 0 ELSE 1 END, m.received_at, m.id",
        select()
    ))?;
    let rows = stmt.query_map([mailbox], from_row)?;
    rows.collect()
}

/// Removes a row and its outbox row, if any, for good (a purge); returns
/// whether the message existed. The caller runs it in a transaction when
/// both must go together (the schema's `ON DELETE CASCADE` is a second
/// guard, active only with `PRAGMA foreign_keys`).
pub fn delete(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
    Ok(conn.execute("DELETE FROM messages WHERE id = ?1", [id])? > 0)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let duration_ms: i64 = row.get(7)?;
    let size_bytes: i64 = row.get(11)?;
    Ok(Message {
        id: row.get(0)?,
        mailbox: row.get(1)?,
        caller: row.get(2)?,
        caller_name: row.get(3)?,
        called: row.get(4)?,
        reason: row.get(5)?,
        received_at: row.get(6)?,
        duration_ms: u64::try_from(duration_ms).unwrap_or(0),
        codec: row.get(8)?,
        format: row.get(9)?,
        sample_rate: row.get(10)?,
        size_bytes: u64::try_from(size_bytes).unwrap_or(0),
        sha256: row.get(12)?,
        folder: row.get(13)?,
        partial: row.get(14)?,
        origin: row.get(15)?,
        call_id: row.get(16)?,
        home: row.get(17)?,
        deleted_at: deleted_at(row.get(18)?),
        delivery: row.get(19)?,
    })
}

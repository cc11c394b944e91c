//! SQL over the `messages` table: the queries behind list/get/delete and
//! the insert that makes a message visible.
//!
//! Functions take a `&Connection` so the caller decides the locking; each
//! statement is one implicit transaction, which with WAL and
//! `synchronous=FULL` is durable when it returns.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::message::Message;

/// Columns in the order [`from_row`] reads them.
const COLUMNS: &str = "id, mailbox, caller_uri, caller_name, called_uri, reason, received_at, \
     duration_ms, codec, format, sample_rate, size_bytes, sha256, state, partial, origin, call_id";

/// Adds a message row. Fails on a duplicate id (primary key).
pub fn insert(conn: &Connection, m: &Message) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO messages ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ),
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
            m.codec,
            m.format,
            m.sample_rate,
            i64::try_from(m.size_bytes).unwrap_or(i64::MAX),
            m.sha256,
            m.state,
            m.partial,
            m.origin,
            m.call_id,
        ],
    )?;
    Ok(())
}

/// The message with exactly this id, if any.
pub fn by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<Message>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// Up to `limit` messages whose id starts with `prefix`. The prefix must be
/// hex digits and hyphens only, so it carries no LIKE wildcards.
pub fn by_prefix(conn: &Connection, prefix: &str, limit: u32) -> rusqlite::Result<Vec<Message>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM messages WHERE id LIKE ?1 || '%' ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![prefix, limit], from_row)?;
    rows.collect()
}

/// All messages, or one mailbox's, newest first (ties broken by id so the
/// order is stable).
pub fn list(conn: &Connection, mailbox: Option<&str>) -> rusqlite::Result<Vec<Message>> {
    let order = "ORDER BY received_at DESC, id DESC";
    match mailbox {
        Some(mailbox) => {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM messages WHERE mailbox = ?1 {order}"
            ))?;
            let rows = stmt.query_map([mailbox], from_row)?;
            rows.collect()
        }
        None => {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM messages {order}"))?;
            let rows = stmt.query_map([], from_row)?;
            rows.collect()
        }
    }
}

/// Removes a row; returns whether it existed.
pub fn delete(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
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
        state: row.get(13)?,
        partial: row.get(14)?,
        origin: row.get(15)?,
        call_id: row.get(16)?,
    })
}

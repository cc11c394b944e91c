//! Versioned schema of the message index.
//!
//! The schema version lives in SQLite's `PRAGMA user_version` (0 for a new
//! file). [`MIGRATIONS`] is append-only: entry `n` moves the schema from
//! version `n` to `n + 1`. Each step runs in its own immediate transaction
//! together with the version bump, so a crash mid-upgrade leaves the database
//! at the previous version, and two processes opening the same file at once
//! (server and CLI) do not both apply a step.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::error::StoreError;

/// Ordered migrations; never edit a released entry, only append.
const MIGRATIONS: &[&str] = &[
    // 1: the message index.
    "CREATE TABLE messages (
        id          TEXT PRIMARY KEY NOT NULL,
        mailbox     TEXT NOT NULL,
        caller_uri  TEXT NOT NULL,
        caller_name TEXT,
        called_uri  TEXT NOT NULL,
        reason      TEXT,
        received_at TEXT NOT NULL,
        duration_ms INTEGER NOT NULL,
        codec       TEXT NOT NULL,
        format      TEXT NOT NULL,
        sample_rate INTEGER NOT NULL,
        size_bytes  INTEGER NOT NULL,
        sha256      TEXT NOT NULL,
        state       TEXT NOT NULL,
        partial     INTEGER NOT NULL,
        origin      TEXT NOT NULL,
        call_id     TEXT NOT NULL
    );
    CREATE INDEX messages_by_received ON messages (received_at DESC, id DESC);
    CREATE INDEX messages_by_mailbox ON messages (mailbox, received_at DESC, id DESC);",
    // 2: store-and-forward. `messages.home` names the peer that is the
    // mailbox's home (NULL: this server). A message waiting for, or
    // delivered to, its home has one `outbox` row, inserted in the same
    // transaction as its message row; its delivery state is read from
    // there, so it has one source of truth. Times in `*_ms` columns are
    // Unix epoch milliseconds (wall clock: they must survive a restart).
    // `peers` keeps the health of each peer for `vmesh peers`.
    "ALTER TABLE messages ADD COLUMN home TEXT;
    CREATE TABLE outbox (
        id              TEXT PRIMARY KEY NOT NULL
                        REFERENCES messages (id) ON DELETE CASCADE,
        mailbox         TEXT NOT NULL,
        peer            TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('waiting', 'failed', 'delivered')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER,
        last_error      TEXT,
        queued_at       TEXT NOT NULL,
        queued_ms       INTEGER NOT NULL,
        delivered_ms    INTEGER
    );
    CREATE INDEX outbox_due ON outbox (peer, state, next_attempt_ms);
    CREATE INDEX outbox_delivered ON outbox (state, delivered_ms);
    CREATE TABLE peers (
        name        TEXT PRIMARY KEY NOT NULL,
        state       TEXT NOT NULL,
        last_seen   TEXT,
        rtt_ms      REAL,
        failures    INTEGER NOT NULL,
        last_error  TEXT,
        updated_at  TEXT NOT NULL
    );",
    // 3: mailbox owners' PINs for retrieval by phone. `pin_hash` is an
    // argon2id PHC string (never the PIN), NULL for a mailbox without a
    // PIN, which cannot be logged into. Times are RFC 3339 UTC.
    "CREATE TABLE mailboxes (
        mailbox     TEXT PRIMARY KEY NOT NULL,
        pin_hash    TEXT,
        created_at  TEXT NOT NULL,
        pin_set_at  TEXT
    );",
    // 4: folders, soft deletion, tombstones, the change log, and
    // message-waiting subscriptions. `state` (always 'new' until now)
    // becomes `folder`: new, old, saved or deleted. A deleted message keeps
    // its row with `deleted_ms` and the folder to restore it to, until it
    // is purged; then `tombstones` keeps its id, so a late copy from its
    // origin is answered 200 and not stored again. The triggers record in
    // `mailbox_changes` every insert, folder change and removal of a
    // message, whoever makes it (server or CLI), with the sequence number
    // of the mailbox's latest change; the server watches it to keep
    // message-waiting lamps current. `mwi_subscriptions` holds each
    // RFC 6665 subscription's dialog so that it survives a restart.
    "ALTER TABLE messages RENAME COLUMN state TO folder;
    ALTER TABLE messages ADD COLUMN deleted_ms INTEGER;
    ALTER TABLE messages ADD COLUMN restore_folder TEXT;
    CREATE INDEX messages_by_folder ON messages (mailbox, folder, received_at, id);
    CREATE INDEX messages_deleted ON messages (deleted_ms) WHERE deleted_ms IS NOT NULL;
    CREATE TABLE tombstones (
        id          TEXT PRIMARY KEY NOT NULL,
        mailbox     TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        deleted_ms  INTEGER NOT NULL,
        purged_ms   INTEGER NOT NULL
    );
    CREATE TABLE mailbox_changes (
        mailbox     TEXT PRIMARY KEY NOT NULL,
        seq         INTEGER NOT NULL
    );
    CREATE INDEX mailbox_changes_by_seq ON mailbox_changes (seq);
    INSERT INTO mailbox_changes (mailbox, seq)
        SELECT mailbox, ROW_NUMBER() OVER (ORDER BY mailbox)
        FROM (SELECT DISTINCT mailbox FROM messages);
    CREATE TRIGGER messages_inserted AFTER INSERT ON messages BEGIN
        INSERT INTO mailbox_changes (mailbox, seq)
            VALUES (NEW.mailbox, (SELECT COALESCE(MAX(seq), 0) + 1 FROM mailbox_changes))
            ON CONFLICT (mailbox) DO UPDATE SET seq = excluded.seq;
    END;
    CREATE TRIGGER messages_moved AFTER UPDATE OF folder ON messages
        WHEN OLD.folder IS NOT NEW.folder BEGIN
        INSERT INTO mailbox_changes (mailbox, seq)
            VALUES (NEW.mailbox, (SELECT COALESCE(MAX(seq), 0) + 1 FROM mailbox_changes))
            ON CONFLICT (mailbox) DO UPDATE SET seq = excluded.seq;
    END;
    CREATE TRIGGER messages_removed AFTER DELETE ON messages BEGIN
        INSERT INTO mailbox_changes (mailbox, seq)
            VALUES (OLD.mailbox, (SELECT COALESCE(MAX(seq), 0) + 1 FROM mailbox_changes))
            ON CONFLICT (mailbox) DO UPDATE SET seq = excluded.seq;
    END;
    CREATE TABLE mwi_subscriptions (
        id            TEXT PRIMARY KEY NOT NULL,
        mailbox       TEXT NOT NULL,
        call_id       TEXT NOT NULL,
        local_tag     TEXT NOT NULL,
        remote_tag    TEXT NOT NULL,
        event_id      TEXT,
        local_uri     TEXT NOT NULL,
        remote_uri    TEXT NOT NULL,
        remote_target TEXT NOT NULL,
        route_set     TEXT NOT NULL,
        transport     TEXT NOT NULL,
        local_addr    TEXT NOT NULL,
        account       TEXT NOT NULL,
        local_cseq    INTEGER NOT NULL,
        remote_cseq   INTEGER NOT NULL,
        expires_ms    INTEGER NOT NULL,
        UNIQUE (call_id, local_tag, remote_tag)
    );",
    // 5: codec names in one spelling, upper-case as profiles write them
    // ("OPUS", "G722", "PCMU", "PCMA"); rows before it said "opus".
    "UPDATE messages SET codec = upper(codec) WHERE codec <> upper(codec);",
];

/// The schema version this build writes and understands.
pub fn latest_version() -> i64 {
    // A list of a few entries always fits an i64.
    MIGRATIONS.len() as i64
}

/// Reads `PRAGMA user_version`.
pub fn current_version(conn: &Connection, db_path: &Path) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| StoreError::Database {
            path: db_path.to_owned(),
            what: "read user_version".into(),
            source,
        })
}

/// Applies every migration newer than the database's version; returns how
/// many were applied (0 when already current).
pub fn migrate(conn: &mut Connection, db_path: &Path) -> Result<usize, StoreError> {
    let db_err = |what: String| {
        let path = db_path.to_owned();
        move |source| StoreError::Database { path, what, source }
    };
    let mut applied = 0;
    for (from, sql) in MIGRATIONS.iter().enumerate() {
        let to = from as i64 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err(format!("begin migration to version {to}")))?;
        // Read inside the write lock so a concurrent opener cannot race us.
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(db_err("read user_version".into()))?;
        if version > latest_version() {
            return Err(StoreError::SchemaTooNew {
                path: db_path.to_owned(),
                found: version,
                supported: latest_version(),
            });
        }
        if version >= to {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(db_err(format!("migrate to version {to}")))?;
        tx.pragma_update(None, "user_version", to)
            .map_err(db_err(format!("set user_version {to}")))?;
        tx.commit()
            .map_err(db_err(format!("commit migration to version {to}")))?;
        tracing::info!(db = %db_path.display(), version = to, "applied schema migration");
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_then_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(current_version(&conn, &path).unwrap(), 0);
        assert_eq!(migrate(&mut conn, &path).unwrap(), MIGRATIONS.len());
        assert_eq!(current_version(&conn, &path).unwrap(), latest_version());
        // A second run must not re-create tables (which would fail).
        assert_eq!(migrate(&mut conn, &path).unwrap(), 0);
    }

    #[test]
    fn codec_names_of_old_rows_are_rewritten_upper_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = Connection::open(&path).unwrap();
        // Up to the schema that stored "opus" as SDP spells it.
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        for (id, codec) in [("a", "opus"), ("b", "PCMU"), ("c", "g722")] {
            conn.execute(
                "INSERT INTO messages VALUES (?1, '1001', 'sip:c', NULL, 'sip:d', NULL, \
                 '2026-01-01T00:00:00.000Z', 1000, ?2, 'wav', 16000, 44, 'x', 'new', 0, \
                 'vmesh', 'call', NULL)",
                [id, codec],
            )
            .unwrap();
        }
        migrate(&mut conn, &path).unwrap();
        let codecs: Vec<String> = conn
            .prepare("SELECT codec FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(codecs, ["OPUS", "PCMU", "G722"]);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn, &path),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}

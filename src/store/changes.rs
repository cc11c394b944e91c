//! Noticing changes to mailboxes made by any process.
//!
//! The message-waiting lamps must follow every change to a mailbox's
//! folders: a message recorded or received by the server, but also one
//! marked heard or deleted with the CLI, which is another process writing
//! the same SQLite file. Rather than trusting every writer to announce its
//! changes, SQLite triggers (schema version 3) record each insert, folder
//! change and removal of a message in `mailbox_changes`: one row per
//! mailbox with the sequence number of its latest change, the highest
//! number being the latest change of all.
//!
//! A [`ChangeWatcher`] has a connection of its own, which lets it use
//! `PRAGMA data_version`: the value changes exactly when another
//! connection (the server's own store connection, or the CLI's) has
//! committed since the last look, and reading it touches no table. So a
//! watcher can look every few hundred milliseconds at nearly no cost, and
//! only when something was committed does it read which mailboxes changed
//! since the sequence number it last saw. It never writes.

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};

use super::{Store, StoreError, BUSY_TIMEOUT};

/// Reports the mailboxes whose messages changed since it last looked.
pub struct ChangeWatcher {
    conn: Connection,
    db_path: PathBuf,
    data_version: i64,
    seq: i64,
}

impl Store {
    /// A watcher that starts caught up: it reports changes committed after
    /// this call (take the state you start from after creating it, so no
    /// change falls between the two).
    pub fn change_watcher(&self) -> Result<ChangeWatcher, StoreError> {
        let db_err = |what: &str| {
            let path = self.db_path.clone();
            let what = what.to_owned();
            move |source| StoreError::Database { path, what, source }
        };
        let conn = Connection::open_with_flags(
            &self.db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err("open a change watcher"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(db_err("set busy timeout"))?;
        let data_version = data_version(&conn).map_err(db_err("read data_version"))?;
        let seq = conn
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM mailbox_changes",
                [],
                |row| row.get(0),
            )
            .map_err(db_err("read the change log"))?;
        Ok(ChangeWatcher {
            conn,
            db_path: self.db_path.clone(),
            data_version,
            seq,
        })
    }

    /// Every mailbox that has ever held a message here, in order: what a
    /// server re-announces after a restart.
    pub fn known_mailboxes(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let read = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = conn.prepare("SELECT mailbox FROM mailbox_changes ORDER BY mailbox")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            rows.collect()
        };
        read().map_err(self.db_err("list known mailboxes".into()))
    }
}

impl ChangeWatcher {
    /// The mailboxes changed since the last call, each once, oldest change
    /// first; empty (after one cheap PRAGMA) when nothing was committed.
    pub fn changed(&mut self) -> Result<Vec<String>, StoreError> {
        let version = data_version(&self.conn).map_err(self.db_err("read data_version"))?;
        if version == self.data_version {
            return Ok(Vec::new());
        }
        self.data_version = version;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT mailbox, seq FROM mailbox_changes WHERE seq > ?1 ORDER BY seq")
            .map_err(self.db_err("read the change log"))?;
        let rows = stmt
            .query_map([self.seq], |row| {
                Ok((row.get::<_, String>(0)?, row.get(1)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(String, i64)>>>())
            .map_err(|source| StoreError::Database {
                path: self.db_path.clone(),
                what: "read the change log".into(),
                source,
            })?;
        drop(stmt);
        if let Some((_, last)) = rows.last() {
            self.seq = *last;
        }
        Ok(rows.into_iter().map(|(mailbox, _)| mailbox).collect())
    }

    fn db_err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let path = self.db_path.clone();
        let what = what.to_owned();
        move |source| StoreError::Database { path, what, source }
    }
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |row| row.get(0))
}

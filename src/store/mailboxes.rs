//! Mailbox owners: which mailboxes can be logged into by phone, and their
//! PIN hashes.
//!
//! Deposits need no row here (any mailbox the profile accepts takes
//! messages); a row makes a mailbox known to retrieval, and a PIN hash
//! makes it possible to log in. The store keeps the hash as given (an
//! argon2id PHC string made by `retrieval::pin`), never a PIN, and never
//! shows it: [`MailboxRecord`], the shape `vmesh mailbox list --json`
//! prints, says only whether there is one and when it was set.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::error::StoreError;
use super::message::{now_unix_ms, validate_mailbox};
use super::Store;

/// A mailbox as listed; also the JSON of `vmesh mailbox list --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxRecord {
    /// The mailbox number.
    pub mailbox: String,
    /// Whether it has a PIN (without one it cannot be logged into).
    pub has_pin: bool,
    /// When it was added, RFC 3339 UTC.
    pub created_at: String,
    /// When its PIN was last set, RFC 3339 UTC.
    pub pin_set_at: Option<String>,
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<MailboxRecord> {
    let pin_hash: Option<String> = row.get(1)?;
    Ok(MailboxRecord {
        mailbox: row.get(0)?,
        has_pin: pin_hash.is_some(),
        created_at: row.get(2)?,
        pin_set_at: row.get(3)?,
    })
}

const SELECT: &str = "SELECT mailbox, pin_hash, created_at, pin_set_at FROM mailboxes";

impl Store {
    /// Adds a mailbox, with a PIN hash or without; an existing mailbox is
    /// an error and is left as it is.
    pub fn add_mailbox(
        &self,
        mailbox: &str,
        pin_hash: Option<&str>,
    ) -> Result<MailboxRecord, StoreError> {
        validate_mailbox(mailbox)?;
        let (_, now) = now_unix_ms();
        let pin_set_at = pin_hash.map(|_| now.clone());
        let conn = self.lock();
        let inserted = conn
            .execute(
                "INSERT INTO mailboxes (mailbox, pin_hash, created_at, pin_set_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (mailbox) DO NOTHING",
                params![mailbox, pin_hash, now, pin_set_at],
            )
            .map_err(self.db_err(format!("add mailbox {mailbox}")))?;
        if inserted == 0 {
            return Err(StoreError::MailboxExists {
                mailbox: mailbox.to_owned(),
            });
        }
        Ok(MailboxRecord {
            mailbox: mailbox.to_owned(),
            has_pin: pin_hash.is_some(),
            created_at: now,
            pin_set_at,
        })
    }

    /// Replaces a mailbox's PIN hash.
    pub fn set_pin_hash(&self, mailbox: &str, pin_hash: &str) -> Result<MailboxRecord, StoreError> {
        validate_mailbox(mailbox)?;
        let (_, now) = now_unix_ms();
        let conn = self.lock();
        let what = format!("set the PIN of mailbox {mailbox}");
        let updated = conn
            .execute(
                "UPDATE mailboxes SET pin_hash = ?2, pin_set_at = ?3 WHERE mailbox = ?1",
                params![mailbox, pin_hash, now],
            )
            .map_err(self.db_err(what.clone()))?;
        if updated == 0 {
            return Err(StoreError::UnknownMailbox {
                mailbox: mailbox.to_owned(),
            });
        }
        conn.query_row(
            &format!("{SELECT} WHERE mailbox = ?1"),
            [mailbox],
            record_from_row,
        )
        .map_err(self.db_err(what))
    }

    /// Every mailbox, by number.
    pub fn mailboxes(&self) -> Result<Vec<MailboxRecord>, StoreError> {
        let conn = self.lock();
        let what = || "list mailboxes".to_owned();
        let mut stmt = conn
            .prepare(&format!("{SELECT} ORDER BY length(mailbox), mailbox"))
            .map_err(self.db_err(what()))?;
        let rows = stmt
            .query_map([], record_from_row)
            .map_err(self.db_err(what()))?;
        rows.collect::<Result<_, _>>().map_err(self.db_err(what()))
    }

    /// One mailbox, if it was added.
    pub fn mailbox(&self, mailbox: &str) -> Result<Option<MailboxRecord>, StoreError> {
        validate_mailbox(mailbox)?;
        let conn = self.lock();
        conn.query_row(
            &format!("{SELECT} WHERE mailbox = ?1"),
            [mailbox],
            record_from_row,
        )
        .optional()
        .map_err(self.db_err(format!("get mailbox {mailbox}")))
    }

    /// The PIN hash to check a login against: `None` when the mailbox was
    /// never added or has no PIN (the login fails either way). A mailbox
    /// that is not 1 to 32 digits has none.
    pub fn pin_hash(&self, mailbox: &str) -> Result<Option<String>, StoreError> {
        if validate_mailbox(mailbox).is_err() {
            return Ok(None);
        }
        let conn = self.lock();
        conn.query_row(
            "SELECT pin_hash FROM mailboxes WHERE mailbox = ?1",
            [mailbox],
            |row| row.get::<_, Option<String>>(0),
        )
        .optional()
        .map(Option::flatten)
        .map_err(self.db_err(format!("get the PIN hash of mailbox {mailbox}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_are_added_once_and_keep_only_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let added = store.add_mailbox("1001", None).unwrap();
        assert!(!added.has_pin && added.pin_set_at.is_none());
        assert_eq!(store.pin_hash("1001").unwrap(), None);
        assert!(matches!(
            store.add_mailbox("1001", Some("$argon2id$x")),
            Err(StoreError::MailboxExists { .. })
        ));
        assert_eq!(store.pin_hash("1001").unwrap(), None, "left as it was");

        let set = store.set_pin_hash("1001", "$argon2id$v=19$hash").unwrap();
        assert!(set.has_pin && set.pin_set_at.is_some());
        assert_eq!(
            store.pin_hash("1001").unwrap().as_deref(),
            Some("$argon2id$v=19$hash")
        );
        assert!(matches!(
            store.set_pin_hash("1002", "h"),
            Err(StoreError::UnknownMailbox { .. })
        ));
        assert!(matches!(
            store.add_mailbox("../x", None),
            Err(StoreError::InvalidMailbox { .. })
        ));
        assert_eq!(store.pin_hash("../x").unwrap(), None);

        store.add_mailbox("999", Some("h2")).unwrap();
        store.add_mailbox("10000", None).unwrap();
        let listed: Vec<(String, bool)> = store
            .mailboxes()
            .unwrap()
            .into_iter()
            .map(|m| (m.mailbox, m.has_pin))
            .collect();
        assert_eq!(
            listed,
            [
                ("999".into(), true),
                ("1001".into(), true),
                ("10000".into(), false)
            ]
        );
        assert_eq!(store.mailbox("1002").unwrap(), None);
        let json = serde_json::to_string(&store.mailbox("1001").unwrap().unwrap()).unwrap();
        assert!(
            !json.contains("argon2") && !json.contains("hash\""),
            "{json}"
        );

        // A second opener (the CLI while the server runs) sees the same.
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.mailboxes().unwrap().len(), 3);
    }
}

//! Message-waiting subscriptions (RFC 6665 dialogs for the RFC 3842
//! `message-summary` event), kept so that they survive a restart.
//!
//! A subscription is a dialog: to send it a NOTIFY after a restart the
//! server needs everything RFC 3261 §12 keeps as dialog state (Call-ID,
//! both tags, both URIs, the remote target and the route set, the local
//! CSeq) plus where to send from. Each NOTIFY takes the next local CSeq
//! here, durably, before it is sent, so CSeq numbers keep increasing
//! across restarts as §12.2.1.1 requires. The store only keeps the
//! records; what they mean is the `mwi` module's.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::message::validate_mailbox;
use super::{Store, StoreError};

/// One subscription's dialog and lifetime, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Our identifier (a UUID), stable across restarts.
    pub id: String,
    /// The subscribed mailbox.
    pub mailbox: String,
    /// The dialog's Call-ID.
    pub call_id: String,
    /// Our tag (the To tag of our 200, the From tag of our NOTIFYs).
    pub local_tag: String,
    /// The subscriber's tag (the From tag of its SUBSCRIBE).
    pub remote_tag: String,
    /// The `id` parameter of the Event header, if the subscriber gave one
    /// (RFC 6665 §8.2.1); repeated in every NOTIFY.
    pub event_id: Option<String>,
    /// Our URI (the SUBSCRIBE's To URI; the From of our NOTIFYs).
    pub local_uri: String,
    /// The subscriber's URI (the SUBSCRIBE's From URI).
    pub remote_uri: String,
    /// Where NOTIFYs go: the SUBSCRIBE's Contact URI.
    pub remote_target: String,
    /// Record-Route URIs of the SUBSCRIBE, in order; our NOTIFYs carry
    /// them as Route headers (RFC 3261 §12.1.1).
    pub route_set: Vec<String>,
    /// `udp` or `tcp`: the transport the SUBSCRIBE came on.
    pub transport: String,
    /// The local socket the SUBSCRIBE arrived on (`ip:port`), which our
    /// NOTIFYs leave from.
    pub local_addr: String,
    /// The Message-Account URI of its summaries (RFC 3842 §5.2).
    pub account: String,
    /// The CSeq of the last NOTIFY we sent.
    pub local_cseq: u32,
    /// The highest CSeq of a SUBSCRIBE seen in this dialog.
    pub remote_cseq: u32,
    /// When it expires, Unix epoch milliseconds (wall clock, so it means
    /// the same after a restart).
    pub expires_ms: i64,
}

const COLUMNS: &str = "id, mailbox, call_id, local_tag, remote_tag, event_id, local_uri, \
    remote_uri, remote_target, route_set, transport, local_addr, account, local_cseq, \
    remote_cseq, expires_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<SubscriptionRecord> {
    let route_set: String = row.get(9)?;
    let local_cseq: i64 = row.get(13)?;
    let remote_cseq: i64 = row.get(14)?;
    Ok(SubscriptionRecord {
        id: row.get(0)?,
        mailbox: row.get(1)?,
        call_id: row.get(2)?,
        local_tag: row.get(3)?,
        remote_tag: row.get(4)?,
        event_id: row.get(5)?,
        local_uri: row.get(6)?,
        remote_uri: row.get(7)?,
        remote_target: row.get(8)?,
        route_set: serde_json::from_str(&route_set).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(9, rusqlite::types::Type::Text, Box::new(e))
        })?,
        transport: row.get(10)?,
        local_addr: row.get(11)?,
        account: row.get(12)?,
        local_cseq: u32::try_from(local_cseq).unwrap_or(u32::MAX),
        remote_cseq: u32::try_from(remote_cseq).unwrap_or(u32::MAX),
        expires_ms: row.get(15)?,
    })
}

fn upsert(conn: &Connection, r: &SubscriptionRecord) -> rusqlite::Result<()> {
    let route_set = serde_json::to_string(&r.route_set)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        &format!(
            "INSERT INTO mwi_subscriptions ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
             ON CONFLICT (id) DO UPDATE SET remote_cseq = excluded.remote_cseq, \
             expires_ms = excluded.expires_ms, remote_target = excluded.remote_target"
        ),
        params![
            r.id,
            r.mailbox,
            r.call_id,
            r.local_tag,
            r.remote_tag,
            r.event_id,
            r.local_uri,
            r.remote_uri,
            r.remote_target,
            route_set,
            r.transport,
            r.local_addr,
            r.account,
            r.local_cseq,
            r.remote_cseq,
            r.expires_ms,
        ],
    )?;
    Ok(())
}

impl Store {
    /// Saves a new subscription, or a refresh of one (its remote CSeq,
    /// expiry and remote target; RFC 6665 §4.1.2.2 lets a refresh update
    /// the target).
    pub fn save_subscription(&self, record: &SubscriptionRecord) -> Result<(), StoreError> {
        validate_mailbox(&record.mailbox)?;
        let conn = self.lock();
        upsert(&conn, record).map_err(self.db_err(format!("save subscription {}", record.id)))
    }

    /// Forgets a subscription (ended, expired, or its subscriber gone).
    pub fn remove_subscription(&self, id: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute("DELETE FROM mwi_subscriptions WHERE id = ?1", [id])
            .map(|_| ())
            .map_err(self.db_err(format!("remove subscription {id}")))
    }

    /// Every subscription, oldest expiry first.
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let conn = self.lock();
        let read = || -> rusqlite::Result<Vec<SubscriptionRecord>> {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM mwi_subscriptions ORDER BY expires_ms, id"
            ))?;
            let rows = stmt.query_map([], from_row)?;
            rows.collect()
        };
        read().map_err(self.db_err("list subscriptions".into()))
    }

    /// The subscription of a dialog (Call-ID and both tags), if any.
    pub fn subscription_of_dialog(
        &self,
        call_id: &str,
        local_tag: &str,
        remote_tag: &str,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM mwi_subscriptions \
                 WHERE call_id = ?1 AND local_tag = ?2 AND remote_tag = ?3"
            ),
            params![call_id, local_tag, remote_tag],
            from_row,
        )
        .optional()
        .map_err(self.db_err(format!("find subscription of dialog {call_id}")))
    }

    /// Takes the next local CSeq of a subscription's dialog, durably, for
    /// the NOTIFY about to be sent; `None` when the subscription is gone.
    pub fn next_notify_cseq(&self, id: &str) -> Result<Option<u32>, StoreError> {
        let conn = self.lock();
        let next: Option<i64> = conn
            .query_row(
                "UPDATE mwi_subscriptions SET local_cseq = local_cseq + 1 WHERE id = ?1 \
                 RETURNING local_cseq",
                [id],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.db_err(format!("take the next CSeq of subscription {id}")))?;
        Ok(next.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

//! Storing a message a peer transferred to this server, its home
//! (issue 3; the transfer itself is the mesh's SIP MESSAGE).
//!
//! The receiver answers 200 only once the message is durable, and the
//! sender sends again until it sees that 200, so the same message can
//! arrive more than once; storing is therefore idempotent by message id.
//! The steps mirror `commit.rs`: the audio is written to
//! `messages/<mailbox>/<id>.tmp`, fsynced, renamed to its final name and
//! the directory fsynced; only then is the row committed. A crash before
//! the commit leaves an unlisted file that recovery removes; the sender,
//! which never saw a 200, sends the message again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::durable;
use super::error::StoreError;
use super::folder::Folder;
use super::index;
use super::message::{
    format_extension, format_received_at, validate_mailbox, validate_peer, Message, DELIVERY_HOME,
};
use super::tombstone;
use super::Store;

/// A message's metadata as a peer sends it: the JSON part of a transfer
/// (`mesh::wire` uses this type as its metadata, so the wire contract and
/// what the store checks cannot drift apart). Field names are the wire
/// contract. Checked in full by [`Store::store_received`]: it comes from
/// the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingMessage {
    /// Message id, a UUID chosen when it was recorded.
    pub id: String,
    /// Mailbox (1..=32 ASCII digits).
    pub mailbox: String,
    /// Caller URI.
    pub caller: String,
    /// Caller display name.
    pub caller_name: Option<String>,
    /// Originally called URI.
    pub called: String,
    /// Diversion reason (RFC 5806).
    pub reason: Option<String>,
    /// Receive time at the recording server, RFC 3339 as sent.
    pub received_at: String,
    /// Audio length in milliseconds.
    pub duration_ms: u64,
    /// Codec the call used.
    pub codec: String,
    /// Container: `wav` or `opus`.
    pub format: String,
    /// Sample rate of the audio.
    pub sample_rate: u32,
    /// Length of the audio in octets.
    pub size_bytes: u64,
    /// Hex SHA-256 of the audio bytes.
    pub sha256: String,
    /// The server that recorded it (the sender).
    pub origin: String,
    /// True when the recording was cut short.
    #[serde(default)]
    pub partial: bool,
    /// SIP Call-ID of the original call.
    pub call_id: String,
}

/// Outcome of [`Store::store_received`]; each means "durably stored here"
/// (or deleted here by its owner, which is final), so the receiver answers
/// 200 to any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Stored now.
    Stored(Message),
    /// Already held with the same audio (a retransmission); nothing
    /// changed, whatever folder it is in (a deleted message stays deleted).
    Duplicate(Message),
    /// Deleted here and purged since: its tombstone absorbs the copy and
    /// nothing is stored, so a message its owner deleted never comes back.
    Purged {
        /// The message id.
        id: String,
        /// Its mailbox.
        mailbox: String,
    },
}

/// Longest text field of received metadata (a URI, a display name, a
/// Call-ID): far above any real one, and it bounds what one transfer can
/// make the index hold.
const MAX_TEXT_FIELD_BYTES: usize = 4096;

impl IncomingMessage {
    /// The free-text fields, by their wire names.
    fn text_fields(&self) -> [(&'static str, &str); 6] {
        [
            ("caller", &self.caller),
            (
                "caller_name",
                self.caller_name.as_deref().unwrap_or_default(),
            ),
            ("called", &self.called),
            ("reason", self.reason.as_deref().unwrap_or_default()),
            ("codec", &self.codec),
            ("call_id", &self.call_id),
        ]
    }

    /// The index row this metadata describes, for `size_bytes` of audio.
    /// Every field that reaches a path, an ordering or a later check is
    /// validated: id, mailbox, format, time, sample rate, hash, origin.
    fn to_message(&self, size_bytes: u64) -> Result<Message, StoreError> {
        let invalid = |field: &'static str, reason: String| StoreError::InvalidMetadata {
            id: self.id.clone(),
            field,
            reason,
        };
        let uuid =
            Uuid::try_parse(&self.id).map_err(|e| invalid("id", format!("not a UUID: {e}")))?;
        validate_mailbox(&self.mailbox)?;
        validate_peer(&self.origin)?;
        let format = format_extension(&self.format)
            .ok_or_else(|| invalid("format", format!("{:?} is not wav or opus", self.format)))?;
        let at = OffsetDateTime::parse(&self.received_at, &Rfc3339)
            .map_err(|e| invalid("received_at", format!("not RFC 3339: {e}")))?;
        if self.sample_rate == 0 {
            return Err(invalid("sample_rate", "must not be zero".into()));
        }
        // SQLite integers are signed 64-bit: a larger duration is no real
        // one and could not be stored as sent.
        if i64::try_from(self.duration_ms).is_err() {
            return Err(invalid("duration_ms", "over 2^63-1".into()));
        }
        for (field, value) in self.text_fields() {
            if value.len() > MAX_TEXT_FIELD_BYTES {
                return Err(invalid(
                    field,
                    format!("{} bytes, over {MAX_TEXT_FIELD_BYTES}", value.len()),
                ));
            }
        }
        if self.size_bytes != size_bytes {
            return Err(invalid(
                "size_bytes",
                format!("{} but the audio has {size_bytes} octets", self.size_bytes),
            ));
        }
        let sha256 = self.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("sha256", "expected 64 hex digits".into()));
        }
        Ok(Message {
            id: uuid.to_string(),
            mailbox: self.mailbox.clone(),
            caller: self.caller.clone(),
            caller_name: self.caller_name.clone(),
            called: self.called.clone(),
            reason: self.reason.clone(),
            // Rewritten in the index's fixed-width UTC form, which sorts.
            received_at: format_received_at(&uuid, at)
                .map_err(|e| invalid("received_at", e.to_string()))?,
            duration_ms: self.duration_ms,
            codec: self.codec.clone(),
            format: format.to_owned(),
            sample_rate: self.sample_rate,
            size_bytes,
            sha256,
            folder: Folder::New,
            deleted_at: None,
            partial: self.partial,
            origin: self.origin.clone(),
            call_id: self.call_id.clone(),
            home: None,
            delivery: DELIVERY_HOME.to_owned(),
        })
    }
}

impl Store {
    /// Stores a message transferred by a peer: checks the metadata and that
    /// `audio` hashes to its `sha256` ([`StoreError::Checksum`]), then
    /// either finds the id already held ([`Received::Duplicate`], nothing
    /// changed; [`StoreError::Conflict`] if held with other audio), or
    /// finds its tombstone ([`Received::Purged`], nothing stored), or writes
    /// the file durably and commits its row ([`Received::Stored`]). When it
    /// returns `Ok`, the message survives a crash: the receiver may answer
    /// 200. Never queues: this server is the message's home.
    pub fn store_received(
        &self,
        incoming: &IncomingMessage,
        audio: &[u8],
    ) -> Result<Received, StoreError> {
        let message = incoming.to_message(audio.len() as u64)?;
        let actual = hex::encode(Sha256::digest(audio));
        if actual != message.sha256 {
            return Err(StoreError::Checksum {
                id: message.id,
                expected: message.sha256,
                actual,
            });
        }
        let _one_at_a_time = self
            .receiving
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (existing, tombstone) = {
            let conn = self.lock();
            let what = || format!("get message {}", message.id);
            (
                index::by_id(&conn, &message.id).map_err(self.db_err(what()))?,
                tombstone::find(&conn, &message.id).map_err(self.db_err(what()))?,
            )
        };
        if let Some(existing) = existing {
            if existing.sha256.eq_ignore_ascii_case(&message.sha256) {
                return Ok(Received::Duplicate(existing));
            }
            return Err(StoreError::Conflict {
                id: message.id,
                existing: existing.sha256,
                incoming: message.sha256,
            });
        }
        if let Some(tombstone) = tombstone {
            if tombstone.sha256.eq_ignore_ascii_case(&message.sha256) {
                return Ok(Received::Purged {
                    id: message.id,
                    mailbox: tombstone.mailbox,
                });
            }
            return Err(StoreError::Conflict {
                id: message.id,
                existing: tombstone.sha256,
                incoming: message.sha256,
            });
        }
        let path = self.message_path(&message.mailbox, &message.id, &message.format);
        if let Some(mailbox_dir) = path.parent() {
            durable::create_dir(mailbox_dir)?;
        }
        durable::write_atomic(&path, audio)?;
        let inserted = {
            let conn = self.lock();
            index::insert(&conn, &message)
        };
        if let Err(source) = inserted {
            // Not listed, so not acknowledged: the copy is useless, and the
            // sender will send it again.
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "cannot remove an unindexed received message; recovery will");
            }
            return Err(self
                .db_err(format!("insert received message {}", message.id))(
                source
            ));
        }
        self.signal_change();
        Ok(Received::Stored(message))
    }
}

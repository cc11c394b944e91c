//! The recording sidecar, `recording/<id>.json`: a message's metadata,
//! written durably before the first audio byte.
//!
//! It exists from the start of a recording until the message row is
//! committed, so after a crash every piece of audio on disk can be matched
//! with who called whom, and be listed instead of lost.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::durable;
use super::error::StoreError;
use super::folder::Folder;
use super::message::{self, Message, NewMessage, DELIVERY_HOME, DELIVERY_QUEUED};
use super::outbox::Route;
use super::spare;

/// Layout version of the sidecar JSON, for future readers.
const SIDECAR_VERSION: u32 = 1;

/// A [`NewMessage`] in the form it is persisted (time already formatted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    /// Layout version ([`SIDECAR_VERSION`]).
    pub version: u32,
    /// Message id.
    pub id: Uuid,
    /// Validated mailbox.
    pub mailbox: String,
    /// Caller URI.
    pub caller_uri: String,
    /// Caller display name.
    pub caller_name: Option<String>,
    /// Called URI.
    pub called_uri: String,
    /// Diversion reason.
    pub reason: Option<String>,
    /// RFC 3339 UTC receive time, as stored in the index.
    pub received_at: String,
    /// Codec name.
    pub codec: String,
    /// PCM sample rate of the recording.
    pub sample_rate: u32,
    /// Recording server.
    pub origin: String,
    /// SIP Call-ID.
    pub call_id: String,
    /// Set (durably) before a partial message's audio is moved into
    /// `messages/`, so a crash before its row is committed cannot make
    /// recovery list it as whole. Absent in sidecars written before.
    #[serde(default)]
    pub partial: bool,
}

/// What the finished audio file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFacts {
    /// Container format ([`message::FORMAT_WAV`] or [`message::FORMAT_OPUS`]).
    pub format: &'static str,
    /// Length from the sample count.
    pub duration_ms: u64,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

impl Sidecar {
    /// Validates `meta` (mailbox, sample rate, time) and converts it.
    pub fn from_new(meta: NewMessage) -> Result<Sidecar, StoreError> {
        message::validate_mailbox(&meta.mailbox)?;
        if meta.sample_rate == 0 {
            return Err(StoreError::InvalidSampleRate {
                id: meta.id.to_string(),
                sample_rate: meta.sample_rate,
            });
        }
        let received_at = message::format_received_at(&meta.id, meta.received_at)?;
        Ok(Sidecar {
            version: SIDECAR_VERSION,
            id: meta.id,
            mailbox: meta.mailbox,
            caller_uri: meta.caller_uri,
            caller_name: meta.caller_name,
            called_uri: meta.called_uri,
            reason: meta.reason,
            received_at,
            codec: message::codec_spelling(&meta.codec),
            sample_rate: meta.sample_rate,
            origin: meta.origin,
            call_id: meta.call_id,
            partial: false,
        })
    }

    /// The sidecar as written to `path`: pretty JSON, padded to a block
    /// ([`spare::padded`]).
    pub fn to_bytes(&self, path: &Path) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec_pretty(self)
            .map(spare::padded)
            .map_err(|source| StoreError::Sidecar {
                path: path.to_owned(),
                source,
            })
    }

    /// Writes the sidecar atomically and durably to `path`, replacing the
    /// one there.
    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        durable::write_atomic(path, &self.to_bytes(path)?)
    }

    /// Reads a sidecar and re-validates its mailbox (the file is input from
    /// disk, so it is not trusted to build paths unchecked).
    pub fn read(path: &Path) -> Result<Sidecar, StoreError> {
        let bytes = fs::read(path).map_err(StoreError::io("read", path))?;
        let sidecar: Sidecar =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Sidecar {
                path: path.to_owned(),
                source,
            })?;
        message::validate_mailbox(&sidecar.mailbox)?;
        Ok(sidecar)
    }

    /// The index row for this recording once its audio is final; `route`
    /// says whether it stays here or is queued for its home peer.
    pub fn to_message(&self, audio: AudioFacts, partial: bool, route: &Route) -> Message {
        let (home, delivery) = match route {
            Route::Home => (None, DELIVERY_HOME),
            Route::Forward { peer } => (Some(peer.clone()), DELIVERY_QUEUED),
        };
        Message {
            id: self.id.to_string(),
            mailbox: self.mailbox.clone(),
            caller: self.caller_uri.clone(),
            caller_name: self.caller_name.clone(),
            called: self.called_uri.clone(),
            reason: self.reason.clone(),
            received_at: self.received_at.clone(),
            duration_ms: audio.duration_ms,
            codec: self.codec.clone(),
            format: audio.format.to_owned(),
            sample_rate: self.sample_rate,
            size_bytes: audio.size_bytes,
            sha256: audio.sha256,
            folder: Folder::New,
            deleted_at: None,
            partial,
            origin: self.origin.clone(),
            call_id: self.call_id.clone(),
            home,
            delivery: delivery.to_owned(),
        }
    }
}

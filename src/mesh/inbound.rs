//! Receiving a voicemail from a peer: the home server's side of a transfer.
//!
//! The checks run in the order of the contract, each with its answer: the
//! sender must be a server of our topology, authenticated by its connection
//! (its certificate, or the address of an `insecure` server's TCP
//! connection; [`crate::sip::identity`]), never by anything the request
//! says (403, nothing stored); the body must be a
//! voice-message multipart (400, or 413 over the limit); we must be the home
//! of its mailbox (404); the audio must match its sha256 (400). Then the
//! message is stored durably (file fsynced and renamed, row committed) and
//! only then answered 200, the SMTP 250 of this protocol. A message id we
//! already hold gets 200 again and changes nothing, so a retransmission
//! after a lost 200 is absorbed; so does one its owner deleted here, even
//! after the purge (the store keeps a tombstone of its id).

use std::sync::Arc;

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tracing::{info, warn, Instrument};

use super::wire;
use crate::config::Topology;
use crate::sip::identity::Identity;
use crate::sip::responses;
use crate::store::{Received, Store, StoreError};

/// Seconds a sender should wait before sending again when this server
/// cannot store (its disk is full) or is busy.
pub const RETRY_AFTER_S: u32 = 30;

/// What a receiver needs.
pub struct Receiver {
    pub topology: Topology,
    pub self_name: String,
    pub store: Arc<Store>,
    pub max_body: usize,
}

/// A refusal: status and a reason for the Warning header.
struct Refusal(StatusCode, String);

impl Receiver {
    /// Answers one incoming MESSAGE transaction.
    pub async fn handle(&self, mut tx: Transaction, sender: Identity) {
        let call_id = tx
            .original
            .call_id_header()
            .map(|c| c.value().to_string())
            .unwrap_or_default();
        let span = tracing::info_span!("receive", %call_id, id = tracing::field::Empty);
        async {
            let (status, warning) = match self.receive(&tx, &sender).await {
                Ok(()) => (StatusCode::OK, None),
                Err(Refusal(status, why)) => {
                    warn!(%status, reason = %why, "transfer refused");
                    (status, Some(why))
                }
            };
            let mut headers: Vec<Header> = warning
                .map(|w| vec![responses::warning(&w)])
                .unwrap_or_default();
            if status == StatusCode::ServiceUnavailable {
                // RFC 3261 §21.5.4: when to try again; the sender's retry
                // policy honours it.
                headers.push(responses::retry_after(RETRY_AFTER_S));
            }
            if let Err(e) = tx.reply_with(status, headers, None).await {
                warn!(error = %e, "cannot answer the transfer");
            }
        }
        .instrument(span)
        .await
    }

    async fn receive(&self, tx: &Transaction, sender: &Identity) -> Result<(), Refusal> {
        let sender = self.sender(sender)?;
        let req = &tx.original;
        if req.body.len() > self.max_body {
            return Err(Refusal(
                StatusCode::RequestEntityTooLarge,
                format!(
                    "body of {} bytes over the limit of {}",
                    req.body.len(),
                    self.max_body
                ),
            ));
        }
        let content_type = req
            .headers
            .iter()
            .find_map(|h| match h {
                Header::ContentType(c) => Some(c.value().to_string()),
                _ => None,
            })
            .ok_or_else(|| Refusal(StatusCode::BadRequest, "no Content-Type".into()))?;
        let body = wire::decode(&content_type, &req.body)
            .map_err(|e| Refusal(StatusCode::BadRequest, e.to_string()))?;
        let meta = body.meta;
        tracing::Span::current().record("id", meta.id.as_str());
        match self.topology.home_of(&meta.mailbox) {
            Some(home) if home.name == self.self_name => {}
            Some(home) => {
                return Err(Refusal(
                    StatusCode::NotFound,
                    format!("mailbox {} is homed at {}", meta.mailbox, home.name),
                ))
            }
            None => {
                return Err(Refusal(
                    StatusCode::NotFound,
                    format!("mailbox {} is homed nowhere", meta.mailbox),
                ))
            }
        }
        // The store checks the audio against `sha256` before it writes
        // anything; a mismatch is invalid input, answered 400 below.
        if meta.origin != sender {
            return Err(Refusal(
                StatusCode::Forbidden,
                format!("origin {} sent by {sender}", meta.origin),
            ));
        }
        // The audio is a slice of the request's body (no copy of up to
        // 16 MiB), so the blocking store runs in place on this worker
        // rather than on a thread that would need its own copy.
        let stored = tokio::task::block_in_place(|| self.store.store_received(&meta, &body.audio));
        match stored {
            Ok(Received::Stored(m)) => {
                info!(from = %sender, mailbox = %m.mailbox, duration_ms = m.duration_ms, "message received and stored")
            }
            Ok(Received::Duplicate(m)) => {
                info!(from = %sender, mailbox = %m.mailbox, "message already held; duplicate absorbed")
            }
            Ok(Received::Purged { mailbox, .. }) => {
                info!(from = %sender, %mailbox, "message deleted here and purged; copy absorbed")
            }
            Err(e @ StoreError::Conflict { .. }) => {
                return Err(Refusal(StatusCode::Conflict, e.to_string()))
            }
            // Metadata that cannot be stored as sent (a time outside RFC
            // 3339's years, an unknown format...): the same bytes can never
            // succeed, so 400 makes the sender park it instead of retrying.
            Err(e) if e.is_invalid_input() => {
                return Err(Refusal(StatusCode::BadRequest, e.to_string()))
            }
            Err(e) if e.is_disk_full() => {
                return Err(Refusal(StatusCode::ServiceUnavailable, e.to_string()))
            }
            Err(e) => return Err(Refusal(StatusCode::ServerInternalError, e.to_string())),
        }
        Ok(())
    }

    /// The topology server the request's connection authenticated; 403
    /// for anyone else (or ourselves).
    fn sender(&self, identity: &Identity) -> Result<String, Refusal> {
        match identity.peer() {
            Some(name) if name != self.self_name && self.topology.server(name).is_some() => {
                Ok(name.to_string())
            }
            _ => Err(Refusal(
                StatusCode::Forbidden,
                "the sender is not an authenticated peer of this mesh".into(),
            )),
        }
    }
}

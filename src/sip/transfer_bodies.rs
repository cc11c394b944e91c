//! The bodies of large MESSAGE requests, kept aside from the transaction
//! layer so a transfer of many megabytes is not copied on its way in.
//!
//! rsipstack clones every new request into its server transaction (and
//! keeps the original until the transaction is built), so a 16 MiB
//! transfer would be held twice for nothing: the transaction needs the
//! headers to answer, never the body. Its message inspector
//! (`MessageInspector::after_received`) runs on every received message
//! before that clone; [`BodyStash`] is one, and moves the body of a
//! MESSAGE over [`STASH_FROM_BYTES`] out of the request into a table keyed
//! by the transaction key (RFC 3261 §17.2.3). The server loop moves it back
//! into the transaction it hands to the mesh ([`BodyStash::restore`]), or
//! drops it when it refuses the request ([`BodyStash::discard`]). Nothing
//! is copied either way.
//!
//! Bounded: at most [`MAX_STASHED`] bodies are kept (beyond that a body
//! simply stays in its request), and a body nobody claimed (its transaction
//! was absorbed as a retransmission) is dropped after [`STASH_LIFETIME`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rsipstack::sip::{Method, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;

/// Bodies smaller than this stay in their request: copying them costs
/// nothing worth avoiding.
pub const STASH_FROM_BYTES: usize = 64 * 1024;

/// Bodies kept aside at most.
pub const MAX_STASHED: usize = 64;

/// How long an unclaimed body is kept: a transaction's 64·T1.
pub const STASH_LIFETIME: Duration = Duration::from_secs(32);

/// The table of bodies kept aside; share it with `Arc`.
#[derive(Debug, Default)]
pub struct BodyStash {
    bodies: Mutex<HashMap<TransactionKey, (Instant, Vec<u8>)>>,
}

impl BodyStash {
    /// An empty stash.
    pub fn new() -> Arc<BodyStash> {
        Arc::new(BodyStash::default())
    }

    /// The inspector to give rsipstack's endpoint builder.
    pub fn inspector(self: &Arc<Self>) -> Box<dyn MessageInspector> {
        Box::new(Inspector(self.clone()))
    }

    /// Puts the body kept aside for `tx` back into its request.
    pub fn restore(&self, tx: &mut Transaction) {
        if let Some((_, body)) = self.lock().remove(&tx.key) {
            tx.original.body = body;
        }
    }

    /// Drops the body kept aside for `tx`, if any.
    pub fn discard(&self, tx: &Transaction) {
        self.lock().remove(&tx.key);
    }

    /// Bodies kept aside now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no body is kept aside.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves a large MESSAGE body out of `message` into the table at `now`.
    fn keep_aside(&self, message: SipMessage, now: Instant) -> SipMessage {
        let SipMessage::Request(mut req) = message else {
            return message;
        };
        if req.method != Method::Message || req.body.len() < STASH_FROM_BYTES {
            return SipMessage::Request(req);
        }
        let Ok(key) = TransactionKey::from_request(&req, TransactionRole::Server) else {
            return SipMessage::Request(req);
        };
        let mut bodies = self.lock();
        bodies.retain(|_, (at, _)| now.saturating_duration_since(*at) < STASH_LIFETIME);
        if bodies.len() < MAX_STASHED {
            bodies.insert(key, (now, std::mem::take(&mut req.body)));
        }
        SipMessage::Request(req)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TransactionKey, (Instant, Vec<u8>)>> {
        self.bodies.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inspector(Arc<BodyStash>);

impl MessageInspector for Inspector {
    fn before_send(&self, msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        msg
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        self.0.keep_aside(msg, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body_len: usize, branch: &str) -> SipMessage {
        let head = format!(
            "MESSAGE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bK{branch}\r\n\
             From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c{branch}\r\n\
             CSeq: 1 MESSAGE\r\nContent-Length: {body_len}\r\n\r\n"
        );
        let mut raw = head.into_bytes();
        raw.extend(std::iter::repeat_n(b'x', body_len));
        SipMessage::try_from(raw.as_slice()).unwrap()
    }

    fn body_len(m: &SipMessage) -> usize {
        match m {
            SipMessage::Request(r) => r.body.len(),
            SipMessage::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn large_message_bodies_are_kept_aside_small_ones_stay() {
        let stash = BodyStash::new();
        let t0 = Instant::now();
        let small = stash.keep_aside(message(100, "s"), t0);
        assert_eq!(body_len(&small), 100);
        assert!(stash.is_empty());
        let large = stash.keep_aside(message(STASH_FROM_BYTES, "l"), t0);
        assert_eq!(body_len(&large), 0);
        assert_eq!(stash.len(), 1);
    }

    #[test]
    fn the_stash_is_bounded_and_forgets_unclaimed_bodies() {
        let stash = BodyStash::new();
        let t0 = Instant::now();
        for i in 0..MAX_STASHED + 5 {
            stash.keep_aside(message(STASH_FROM_BYTES, &i.to_string()), t0);
        }
        assert_eq!(stash.len(), MAX_STASHED);
        let later = t0 + STASH_LIFETIME;
        let kept = stash.keep_aside(message(STASH_FROM_BYTES, "late"), later);
        assert_eq!(body_len(&kept), 0);
        assert_eq!(stash.len(), 1);
    }
}

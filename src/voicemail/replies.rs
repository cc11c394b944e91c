//! Answers the server loop sends without waiting for them.
//!
//! Sending a response can take as long as the client lets it: on TCP a
//! client that stops reading fills its socket buffer, and the write waits.
//! The server loop must never wait for that, or one such client would hold
//! up every other request (call admission included). So each answer the
//! loop gives itself (OPTIONS, 403, 405, 481, 503) is sent from a task of
//! its own, under a budget: at most [`MAX_IN_FLIGHT`] answers on their way
//! at once, at most [`MAX_PER_SOURCE`] of them to one source address, and
//! each given [`SEND_TIMEOUT`]. Past the budget an answer is not sent: the
//! client retransmits (UDP) or is not reading anyway (TCP). So one client
//! that stops reading can only ever hold up its own answers. An answer cut
//! by the timeout may leave part of a response on that client's
//! connection; it was not reading it anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tracing::debug;

use super::callers::caller_source;

/// Answers on their way at once, from all sources.
pub const MAX_IN_FLIGHT: usize = 4096;

/// Answers on their way at once to one source address.
pub const MAX_PER_SOURCE: usize = 64;

/// How long one answer may take to leave.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts of answers in flight, in total and per source.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_source: HashMap<Option<IpAddr>, usize>,
}

/// The budget of answers in flight; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Replies {
    counts: Arc<Mutex<Counts>>,
}

/// One answer's place in the budget, given back when dropped.
struct Slot {
    replies: Replies,
    source: Option<IpAddr>,
}

impl Replies {
    /// A new, empty budget.
    pub fn new() -> Self {
        Replies::default()
    }

    /// Sends `status` (with `headers`) on `tx` from a task of its own, if
    /// the budget allows; never waits.
    pub fn answer(&self, mut tx: Transaction, status: StatusCode, headers: Vec<Header>) {
        let source = caller_source(&tx);
        let Some(slot) = self.take(source) else {
            debug!(?source, %status, "answer budget spent; not answering");
            return;
        };
        tokio::spawn(async move {
            let sent = tokio::time::timeout(SEND_TIMEOUT, tx.reply_with(status, headers, None));
            match sent.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "cannot send answer"),
                Err(_) => debug!(?source, "answer not sent in time; given up"),
            }
            drop(slot);
        });
    }

    /// Answers in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().total
    }

    fn take(&self, source: Option<IpAddr>) -> Option<Slot> {
        let mut counts = self.lock();
        let mine = counts.per_source.get(&source).copied().unwrap_or(0);
        if counts.total >= MAX_IN_FLIGHT || mine >= MAX_PER_SOURCE {
            return None;
        }
        counts.total += 1;
        counts.per_source.insert(source, mine + 1);
        Some(Slot {
            replies: self.clone(),
            source,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.replies.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.per_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_cannot_spend_the_whole_budget() {
        let replies = Replies::new();
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        let held: Vec<Slot> = (0..MAX_PER_SOURCE)
            .map(|_| replies.take(a).unwrap())
            .collect();
        assert!(replies.take(a).is_none());
        let other = replies.take(b).expect("another source still gets answers");
        assert_eq!(replies.in_flight(), MAX_PER_SOURCE + 1);
        drop(held);
        drop(other);
        assert_eq!(replies.in_flight(), 0);
        assert!(replies.lock().per_source.is_empty());
        assert!(replies.take(a).is_some());
    }
}

//! Answers the server loop sends without waiting for them.
//!
//! Sending a response can take as long as the client lets it: on TCP a
//! client that stops reading fills its socket buffer, and the write waits.
//! The server loop must never wait for that, or one such client would hold
//! up every other request (call admission included). So each answer the
//! loop gives itself (OPTIONS, 403, 405, 481, 503) is sent from a task of
//! its flow (one per TCP connection or UDP source with answers on their
//! way, so a connection gets its answers in the order of its requests),
//! under a budget: at most [`MAX_IN_FLIGHT`] answers on their way
//! at once, at most [`MAX_PER_SOURCE`] of them to one source address, and
//! each given [`SEND_TIMEOUT`]. Past the budget an answer is not sent: the
//! client retransmits (UDP) or is not reading anyway (TCP). So one client
//! that stops reading can only ever hold up its own answers. An answer cut
//! by the timeout may leave part of a response on that client's
//! connection; it was not reading it anyway.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tracing::debug;

use super::callers::caller_source;

/// Answers on their way at once, from all sources.
pub const MAX_IN_FLIGHT: usize = 4096;

/// Answers on their way at once to one source address.
pub const MAX_PER_SOURCE: usize = 64;

/// How long one answer may take to leave.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where answers go in order: one TCP connection, or one UDP source host.
type Flow = (Option<IpAddr>, Option<SocketAddr>);

/// One answer waiting to leave.
struct Job {
    tx: Transaction,
    status: StatusCode,
    headers: Vec<Header>,
    slot: Slot,
}

/// Counts of answers in flight, in total and per source, and the queue of
/// each flow that has answers on their way.
#[derive(Default)]
struct State {
    total: usize,
    per_source: HashMap<Option<IpAddr>, usize>,
    flows: HashMap<Flow, mpsc::UnboundedSender<Job>>,
}

/// The budget of answers in flight; cheap to clone.
#[derive(Clone, Default)]
pub struct Replies {
    state: Arc<Mutex<State>>,
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

    /// Sends `status` (with `headers`) on `tx` if the budget allows, after
    /// the answers already on their way to the same flow (so one TCP
    /// connection gets its answers in the order of its requests); never
    /// waits.
    pub fn answer(&self, tx: Transaction, status: StatusCode, headers: Vec<Header>) {
        let source = caller_source(&tx);
        let connection = tx
            .connection
            .as_ref()
            .and_then(|c| c.get_remote_addr())
            .and_then(|a| a.get_socketaddr().ok());
        let Some(slot) = self.take(source) else {
            debug!(?source, %status, "answer budget spent; not answering");
            return;
        };
        let job = Job {
            tx,
            status,
            headers,
            slot,
        };
        let flow = (source, connection);
        let mut state = self.lock();
        let job = match state.flows.get(&flow) {
            Some(queue) => match queue.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (queue, jobs) = mpsc::unbounded_channel();
        // Cannot fail: the receiver is alive.
        let _ = queue.send(job);
        state.flows.insert(flow, queue);
        tokio::spawn(self.clone().drain(flow, jobs));
    }

    /// Sends a flow's answers one after the other until its queue is empty.
    async fn drain(self, flow: Flow, mut jobs: mpsc::UnboundedReceiver<Job>) {
        loop {
            let job = match jobs.try_recv() {
                Ok(job) => job,
                Err(_) => {
                    // Under the lock no answer can be queued meanwhile.
                    let mut state = self.lock();
                    match jobs.try_recv() {
                        Ok(job) => job,
                        Err(_) => {
                            state.flows.remove(&flow);
                            return;
                        }
                    }
                }
            };
            let Job {
                mut tx,
                status,
                headers,
                slot,
            } = job;
            let sent = tokio::time::timeout(SEND_TIMEOUT, tx.reply_with(status, headers, None));
            match sent.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "cannot send answer"),
                Err(_) => debug!(source = ?flow.0, "answer not sent in time; given up"),
            }
            drop(slot);
        }
    }

    /// Answers in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().total
    }

    fn take(&self, source: Option<IpAddr>) -> Option<Slot> {
        let mut state = self.lock();
        let mine = state.per_source.get(&source).copied().unwrap_or(0);
        if state.total >= MAX_IN_FLIGHT || mine >= MAX_PER_SOURCE {
            return None;
        }
        state.total += 1;
        state.per_source.insert(source, mine + 1);
        Some(Slot {
            replies: self.clone(),
            source,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.replies.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                state.per_source.remove(&self.source);
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
        assert!(replies.lock().flows.is_empty());
        assert!(replies.take(a).is_some());
    }
}

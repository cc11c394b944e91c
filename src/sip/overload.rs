//! Bounds on the transaction layer: how many requests may wait for the
//! server loop or be in progress, and what the others get.
//!
//! rsipstack queues every new server transaction on an unbounded channel
//! and keeps each one in its transaction table until it ends, then its last
//! response for 64·T1 (32 s) to absorb retransmissions (RFC 3261 §17.2).
//! Nothing in it says "enough": a flood of requests would grow both without
//! limit. So before a request that would start a new server transaction
//! reaches rsipstack, the sizes of those tables are checked against
//! [`Limits`]; beyond them the request is answered at once with 503 and
//! Retry-After (RFC 3261 §21.5.4) and never becomes a transaction (nor a
//! queued one, since every queued transaction is already in the table).
//! Retransmissions, ACKs and CANCELs of existing transactions always pass,
//! so calls in progress are never cut by someone else's flood.

use rsipstack::sip::{Method, Request};
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};

/// Server transactions in progress or waiting for the server loop at most
/// (every call holds one until it is answered).
pub const MAX_LIVE_TRANSACTIONS: usize = 4096;

/// Ended transactions whose last response is kept for retransmissions at
/// most; past this, new requests wait until old ones expire (32 s).
///
/// The bound is what a steady load fills, not a burst: rsipstack keeps
/// each ended transaction for 64·T1 (32 s) and a call leaves two (its
/// INVITE's and its BYE's), so R calls/s hold 64·R of them. 131,072 lets
/// about 2,000 calls/s through, above what one server sets up on two cores
/// (BENCHMARKS.md, "Call set-up"); 32,768 capped a steady load at 512
/// calls/s whatever the CPU. Each costs about 2.7 KB (the stored response
/// and its key), so a flood holds at most about 350 MB here.
pub const MAX_ENDED_TRANSACTIONS: usize = 131_072;

/// Seconds a client is asked to wait when the server is overloaded.
pub const OVERLOAD_RETRY_AFTER_S: u32 = 5;

/// The bounds, with the numbers above by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub live: usize,
    pub ended: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            live: MAX_LIVE_TRANSACTIONS,
            ended: MAX_ENDED_TRANSACTIONS,
        }
    }
}

/// What the transaction tables hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub live: usize,
    pub ended: usize,
}

impl Limits {
    /// Whether a new server transaction may start under `load`.
    pub fn admits(&self, load: Load) -> bool {
        load.live < self.live && load.ended < self.ended
    }
}

/// Whether `req` would start a new server transaction at `endpoint` (not a
/// retransmission, ACK or CANCEL of one that exists).
pub fn starts_transaction(endpoint: &EndpointInner, req: &Request) -> bool {
    if matches!(req.method, Method::Ack | Method::Cancel) {
        return false;
    }
    match TransactionKey::from_request(req, TransactionRole::Server) {
        Ok(key) => {
            !endpoint.transactions.contains_key(&key)
                && !endpoint.finished_transactions.contains_key(&key)
        }
        Err(_) => false,
    }
}

/// The current sizes of `endpoint`'s tables.
pub fn load_of(endpoint: &EndpointInner) -> Load {
    Load {
        live: endpoint.transactions.len(),
        ended: endpoint.finished_transactions.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_table_at_its_bound_refuses() {
        let limits = Limits {
            live: 10,
            ended: 100,
        };
        assert!(limits.admits(Load { live: 9, ended: 99 }));
        assert!(!limits.admits(Load { live: 10, ended: 0 }));
        assert!(!limits.admits(Load {
            live: 0,
            ended: 100
        }));
        assert_eq!(Limits::default().live, MAX_LIVE_TRANSACTIONS);
    }

    #[test]
    fn a_steady_thousand_calls_a_second_fits_the_ended_table() {
        // Two ended transactions per call (INVITE, BYE), each kept 64·T1.
        let steady = 2 * 32 * 1000;
        assert!(Limits::default().admits(Load {
            live: 0,
            ended: steady
        }));
    }
}

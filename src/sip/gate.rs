//! Which requests only a mesh peer may send, and the log of refusals.
//!
//! A MESSAGE is a voicemail transfer and an OPTIONS is a peer's health
//! ping; a server that takes either from a stranger can be made to store a
//! forged voicemail or to believe a dead peer is alive. So in a mesh both
//! are taken only from an authenticated peer ([`super::identity`]); anyone
//! else gets 403 Forbidden and nothing is stored. A MESSAGE over UDP is
//! never a peer's (RFC 3428 section 4 keeps large bodies off UDP, and a
//! datagram authenticates nothing). A server without a topology has no
//! peers: it refuses every MESSAGE and answers OPTIONS as any SIP server
//! does (RFC 3261 section 11).
//!
//! The gate runs in the transports, before the transaction layer, where the
//! real source of every request is known; its answer is stateless, so a
//! flood of refused requests costs no transaction state. Refusals are
//! logged once per source address and minute ([`RefusalLog`]), with the
//! count of those not logged, so a flood cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rsipstack::sip::{Method, Transport};
use tracing::warn;

use super::identity::Origin;

/// How often one source's refusals are logged.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Sources remembered by the refusal log at once; beyond, refusals are only
/// counted until old entries expire.
const LOG_SOURCES: usize = 4096;

/// The request gate of one server.
#[derive(Debug)]
pub struct Gate {
    mesh: bool,
    log: Mutex<RefusalLog>,
}

impl Gate {
    /// `mesh`: whether this server has a topology (and so peers).
    pub fn new(mesh: bool) -> Gate {
        Gate {
            mesh,
            log: Mutex::new(RefusalLog::new(LOG_INTERVAL, LOG_SOURCES)),
        }
    }

    /// `None` when the request may go on; else why it gets 403. Logs the
    /// refusal (rate-limited).
    pub fn check(&self, method: &Method, origin: &Origin, now: Instant) -> Option<String> {
        let why = self.verdict(method, origin)?;
        if let (Ok(mut log), Some(source)) = (self.log.lock(), origin.source) {
            if let Some(unlogged) = log.should_log(source.ip(), now) {
                warn!(%source, transport = %origin.transport, %method, reason = %why,
                      unlogged_since_last = unlogged, "request refused (403)");
            }
        }
        Some(why)
    }

    fn verdict(&self, method: &Method, origin: &Origin) -> Option<String> {
        match method {
            Method::Message if origin.transport == Transport::Udp => {
                Some("MESSAGE is taken from mesh peers over TLS (or insecure TCP) only".into())
            }
            Method::Message if !self.mesh => {
                Some("this server has no mesh peers; it takes no MESSAGE".into())
            }
            Method::Message | Method::Options if self.mesh => match origin.identity.peer() {
                Some(_) => None,
                None => Some(format!(
                    "{method} is answered to authenticated mesh peers only"
                )),
            },
            _ => None,
        }
    }
}

/// Rate-limits log lines per source: the first refusal of a source is
/// logged, later ones within the interval only counted, and the count is
/// reported with the next line logged for that source. Sans-IO: time is
/// handed in.
#[derive(Debug)]
pub struct RefusalLog {
    interval: Duration,
    capacity: usize,
    sources: HashMap<IpAddr, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    logged_at: Instant,
    suppressed: u64,
}

impl RefusalLog {
    pub fn new(interval: Duration, capacity: usize) -> RefusalLog {
        RefusalLog {
            interval,
            capacity: capacity.max(1),
            sources: HashMap::new(),
        }
    }

    /// Whether to log a refusal from `source` at `now`: `Some(n)` with the
    /// refusals of that source not logged since its last line, or `None`
    /// to stay quiet.
    pub fn should_log(&mut self, source: IpAddr, now: Instant) -> Option<u64> {
        let source = source.to_canonical();
        if let Some(entry) = self.sources.get_mut(&source) {
            if now.saturating_duration_since(entry.logged_at) < self.interval {
                entry.suppressed += 1;
                return None;
            }
            let unlogged = entry.suppressed;
            *entry = Entry {
                logged_at: now,
                suppressed: 0,
            };
            return Some(unlogged);
        }
        if self.sources.len() >= self.capacity {
            let interval = self.interval;
            self.sources
                .retain(|_, e| now.saturating_duration_since(e.logged_at) < interval);
            if self.sources.len() >= self.capacity {
                return None;
            }
        }
        self.sources.insert(
            source,
            Entry {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::identity::Identity;

    fn origin(transport: Transport, identity: Identity) -> Origin {
        Origin {
            source: Some("127.0.0.9:5070".parse().unwrap()),
            transport,
            identity,
        }
    }

    #[test]
    fn in_a_mesh_only_peers_send_message_and_options() {
        let gate = Gate::new(true);
        let peer = Identity::Peer("site-b".into());
        for method in [Method::Message, Method::Options] {
            assert_eq!(
                gate.verdict(&method, &origin(Transport::Tls, peer.clone())),
                None
            );
            assert!(gate
                .verdict(&method, &origin(Transport::Tls, Identity::Anonymous))
                .is_some());
            assert!(gate
                .verdict(&method, &origin(Transport::Tcp, Identity::Anonymous))
                .is_some());
        }
        // Never over UDP, whoever it claims to be.
        assert!(gate
            .verdict(&Method::Message, &origin(Transport::Udp, peer))
            .is_some());
        // Calls are not the gate's business.
        for method in [Method::Invite, Method::Bye, Method::Ack] {
            assert_eq!(
                gate.verdict(&method, &origin(Transport::Udp, Identity::Anonymous)),
                None
            );
        }
    }

    #[test]
    fn without_a_mesh_options_is_answered_and_message_refused() {
        let gate = Gate::new(false);
        let anyone = origin(Transport::Udp, Identity::Anonymous);
        assert_eq!(gate.verdict(&Method::Options, &anyone), None);
        assert!(gate.verdict(&Method::Message, &anyone).is_some());
        let tcp = origin(Transport::Tcp, Identity::Anonymous);
        assert!(gate.verdict(&Method::Message, &tcp).is_some());
    }

    #[test]
    fn one_line_per_source_and_minute_with_the_count_of_the_rest() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(LOG_INTERVAL, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(log.should_log(a, t0), Some(0));
        for i in 1..=500 {
            assert_eq!(log.should_log(a, t0 + Duration::from_millis(i * 100)), None);
        }
        assert_eq!(log.should_log(b, t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(log.should_log(a, t0 + LOG_INTERVAL), Some(500));
        assert_eq!(log.should_log(a, t0 + LOG_INTERVAL), None);
    }

    #[test]
    fn the_log_remembers_a_bounded_number_of_sources() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(LOG_INTERVAL, 10);
        let ip = |n: u32| IpAddr::from(n.to_be_bytes());
        let logged = (0..10_000).filter(|n| log.should_log(ip(*n), t0).is_some());
        assert_eq!(logged.count(), 10);
        assert!(log.sources.len() <= 10);
        // After the interval, old sources make room again.
        assert_eq!(log.should_log(ip(20_000), t0 + LOG_INTERVAL), Some(0));
    }
}

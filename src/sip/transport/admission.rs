//! Who may open a stream connection, and how many: the connection limits
//! of the TCP and TLS listeners, as a sans-IO core.
//!
//! Each open connection costs a descriptor, a task and buffers, so they are
//! bounded twice: per source address (`sip.max_connections_per_source`), so
//! one host cannot take them all, and in total for sources that are not
//! servers of the topology (`sip.max_connections`). Mesh peers draw on room
//! of their own, their per-source share each, so that no flood from any
//! number of other addresses can refuse a peer's connection and make it look
//! down to its courier. The pool is chosen by the connection's real source
//! address when it is accepted, before any handshake; that decides only
//! where the connection counts, never who it is: a TLS peer is still known
//! by its certificate alone, and a connection from a peer's address that
//! fails to authenticate is closed like any other.

use std::collections::HashMap;
use std::net::IpAddr;

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections one source address may hold.
    pub per_source: usize,
    /// Connections all non-peer sources may hold together.
    pub total: usize,
}

/// Which room a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// From the address of a server of the topology.
    Peer,
    /// From anywhere else.
    General,
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source already holds `per_source` connections.
    SourceFull,
    /// Non-peer sources already hold `total` connections.
    GeneralFull,
}

/// The open connections, counted per source and per pool.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    per_source: HashMap<IpAddr, usize>,
    general: usize,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            per_source: HashMap::new(),
            general: 0,
        }
    }

    /// Counts a new connection from `source` in `pool`, or refuses it.
    pub fn open(&mut self, source: IpAddr, pool: Pool) -> Result<(), Refusal> {
        let source = source.to_canonical();
        let held = self.per_source.get(&source).copied().unwrap_or(0);
        if held >= self.limits.per_source {
            return Err(Refusal::SourceFull);
        }
        if pool == Pool::General {
            if self.general >= self.limits.total {
                return Err(Refusal::GeneralFull);
            }
            self.general += 1;
        }
        self.per_source.insert(source, held + 1);
        Ok(())
    }

    /// A connection counted by [`Admission::open`] closed.
    pub fn close(&mut self, source: IpAddr, pool: Pool) {
        let source = source.to_canonical();
        if let Some(held) = self.per_source.get_mut(&source) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.per_source.remove(&source);
            }
        }
        if pool == Pool::General {
            self.general = self.general.saturating_sub(1);
        }
    }

    /// Connections open from non-peer sources.
    pub fn general(&self) -> usize {
        self.general
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_source_cannot_take_more_than_its_share() {
        let mut a = Admission::new(AdmissionLimits {
            per_source: 3,
            total: 100,
        });
        for _ in 0..3 {
            assert_eq!(a.open(ip(1), Pool::General), Ok(()));
        }
        assert_eq!(a.open(ip(1), Pool::General), Err(Refusal::SourceFull));
        assert_eq!(a.open(ip(2), Pool::General), Ok(()));
        a.close(ip(1), Pool::General);
        assert_eq!(a.open(ip(1), Pool::General), Ok(()));
    }

    #[test]
    fn a_flood_from_everywhere_leaves_the_peers_their_room() {
        let mut a = Admission::new(AdmissionLimits {
            per_source: 2,
            total: 10,
        });
        let mut accepted = 0;
        for last in 0..=255 {
            for _ in 0..2 {
                if a.open(ip(last), Pool::General).is_ok() {
                    accepted += 1;
                }
            }
        }
        assert_eq!(accepted, 10);
        assert_eq!(
            a.open(IpAddr::from([10, 0, 0, 1]), Pool::General),
            Err(Refusal::GeneralFull)
        );
        // A peer is still let in, up to its own share.
        let peer = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(a.open(peer, Pool::Peer), Ok(()));
        assert_eq!(a.open(peer, Pool::Peer), Ok(()));
        assert_eq!(a.open(peer, Pool::Peer), Err(Refusal::SourceFull));
        a.close(peer, Pool::Peer);
        assert_eq!(a.general(), 10, "a peer's connection never counted there");
    }

    #[test]
    fn ipv4_mapped_addresses_are_one_source() {
        let mut a = Admission::new(AdmissionLimits {
            per_source: 1,
            total: 10,
        });
        let v4 = IpAddr::from([192, 0, 2, 1]);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(a.open(v4, Pool::General), Ok(()));
        assert_eq!(a.open(mapped, Pool::General), Err(Refusal::SourceFull));
        a.close(mapped, Pool::General);
        assert_eq!(a.open(v4, Pool::General), Ok(()));
    }
}

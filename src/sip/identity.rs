//! Who sent a request: the mesh peer its connection authenticated, or
//! nobody in particular.
//!
//! A peer is the topology server whose name is in the certificate it
//! presented on a mutual-TLS connection (its client certificate on a
//! connection it opened, its server certificate checked against its name on
//! one we opened), or, for a server the topology marks `insecure`, the one
//! whose address a plain TCP connection really comes from. Nothing written
//! in a message counts: not Via `received`, not From, not the transfer's
//! metadata. A UDP datagram never comes from a peer.
//!
//! The transports record each live connection's identity here by the
//! connection's remote socket address (the key rsipstack hands back with
//! each transaction); the record goes when the connection closes. Should two
//! live connections ever share a remote address with different identities,
//! neither is trusted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rsipstack::sip::Transport;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipConnection;

/// Who is at the far end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The topology server of this name, authenticated.
    Peer(String),
    /// Anyone else: a PBX, a phone, a stranger, a datagram.
    Anonymous,
}

impl Identity {
    /// The peer's name, if this is one.
    pub fn peer(&self) -> Option<&str> {
        match self {
            Identity::Peer(name) => Some(name),
            Identity::Anonymous => None,
        }
    }
}

/// Where a request came from and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The connection's (or datagram's) real source address.
    pub source: Option<SocketAddr>,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// The authenticated sender.
    pub identity: Identity,
}

type Key = (Transport, SocketAddr);

/// The identities of the live stream connections.
#[derive(Debug, Default)]
pub struct Identities {
    next: AtomicU64,
    live: Mutex<HashMap<Key, Vec<(u64, Identity)>>>,
}

/// Keeps a connection's identity recorded; dropping it removes the record.
#[derive(Debug)]
pub struct Registration {
    identities: Arc<Identities>,
    key: Key,
    id: u64,
}

impl Identities {
    /// Records the identity of a connection from `remote` over `transport`
    /// for as long as the returned registration lives.
    pub fn register(
        self: &Arc<Self>,
        transport: Transport,
        remote: SocketAddr,
        identity: Identity,
    ) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let key = (transport, canonical(remote));
        if let Ok(mut live) = self.live.lock() {
            live.entry(key).or_default().push((id, identity));
        }
        Registration {
            identities: self.clone(),
            key,
            id,
        }
    }

    /// The identity of the live connection from `remote` over `transport`:
    /// Anonymous when there is none, or when connections that share that
    /// address disagree.
    pub fn lookup(&self, transport: Transport, remote: SocketAddr) -> Identity {
        let Ok(live) = self.live.lock() else {
            return Identity::Anonymous;
        };
        let Some(entries) = live.get(&(transport, canonical(remote))) else {
            return Identity::Anonymous;
        };
        match entries.split_first() {
            Some(((_, first), rest)) if rest.iter().all(|(_, i)| i == first) => first.clone(),
            _ => Identity::Anonymous,
        }
    }

    /// Where a server transaction's request came from, and who sent it.
    pub fn origin_of(&self, tx: &Transaction) -> Origin {
        let Some(connection) = tx.connection.as_ref() else {
            return Origin {
                source: None,
                transport: Transport::Udp,
                identity: Identity::Anonymous,
            };
        };
        match connection {
            // Our stream connections (see `transport::stream`) carry their
            // transport and real remote address in their channel address.
            SipConnection::Channel(channel) => {
                let addr = channel.get_addr();
                let transport = addr.r#type.unwrap_or(Transport::Tcp);
                match addr.get_socketaddr() {
                    Ok(remote) => Origin {
                        source: Some(remote),
                        transport,
                        identity: self.lookup(transport, remote),
                    },
                    Err(_) => Origin {
                        source: None,
                        transport,
                        identity: Identity::Anonymous,
                    },
                }
            }
            // A datagram: its source is the address the transaction layer
            // answers (never a Via parameter the sender wrote).
            other => Origin {
                source: other
                    .get_remote_addr()
                    .and_then(|a| a.get_socketaddr().ok())
                    .or_else(|| {
                        tx.destination
                            .as_ref()
                            .and_then(|d| d.get_socketaddr().ok())
                    }),
                transport: other.transport(),
                identity: Identity::Anonymous,
            },
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut live) = self.identities.live.lock() {
            if let Some(entries) = live.get_mut(&self.key) {
                entries.retain(|(id, _)| *id != self.id);
                if entries.is_empty() {
                    live.remove(&self.key);
                }
            }
        }
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_registration_lives_as_long_as_its_connection() {
        let ids = Arc::new(Identities::default());
        let a = addr("127.0.0.12:40000");
        assert_eq!(ids.lookup(Transport::Tls, a), Identity::Anonymous);
        let reg = ids.register(Transport::Tls, a, Identity::Peer("site-b".into()));
        assert_eq!(
            ids.lookup(Transport::Tls, a),
            Identity::Peer("site-b".into())
        );
        assert_eq!(
            ids.lookup(Transport::Tcp, a),
            Identity::Anonymous,
            "another transport is another connection"
        );
        assert_eq!(
            ids.lookup(Transport::Tls, addr("127.0.0.12:40001")),
            Identity::Anonymous
        );
        drop(reg);
        assert_eq!(ids.lookup(Transport::Tls, a), Identity::Anonymous);
    }

    #[test]
    fn disagreeing_connections_on_one_address_are_trusted_by_neither() {
        let ids = Arc::new(Identities::default());
        let a = addr("127.0.0.12:40000");
        let peer = ids.register(Transport::Tcp, a, Identity::Peer("site-b".into()));
        let stranger = ids.register(Transport::Tcp, a, Identity::Anonymous);
        assert_eq!(ids.lookup(Transport::Tcp, a), Identity::Anonymous);
        drop(stranger);
        assert_eq!(
            ids.lookup(Transport::Tcp, a),
            Identity::Peer("site-b".into())
        );
        drop(peer);
    }
}

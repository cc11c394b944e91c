//! Where the SIP endpoint listens: `transport:ip:port` (`[sip] listen`).
//!
//! The transport comes first so one list can say both what to bind and how
//! (RFC 3261 section 18: UDP and TCP are mandatory; TLS is the `sips`
//! transport). IPv6 addresses are written in brackets, `udp:[::1]:5060`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A SIP transport a server can listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenTransport {
    /// Datagrams; what most PBXs send calls over (RFC 3261 section 18.1.1).
    Udp,
    /// A stream; needed for large messages, e.g. transfers between servers.
    Tcp,
    /// TCP with TLS (RFC 3261 section 26.2).
    Tls,
}

impl ListenTransport {
    /// Whether the transport runs over TCP: two such listeners cannot share
    /// one IP and port, whatever the transport name.
    pub fn is_stream(self) -> bool {
        matches!(self, ListenTransport::Tcp | ListenTransport::Tls)
    }

    /// The lower-case name used in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenTransport::Udp => "udp",
            ListenTransport::Tcp => "tcp",
            ListenTransport::Tls => "tls",
        }
    }
}

impl fmt::Display for ListenTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One listening socket of the SIP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    /// How SIP messages are carried on this socket.
    pub transport: ListenTransport,
    /// The local address to bind.
    pub addr: SocketAddr,
}

/// Why a `listen` entry is not `transport:ip:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenAddrError {
    /// No `transport:` in front of the address.
    #[error("{0:?} lacks a transport; write e.g. \"udp:127.0.0.1:5060\"")]
    MissingTransport(String),
    /// A transport other than udp, tcp or tls.
    #[error("unknown transport {0:?}; expected udp, tcp or tls")]
    UnknownTransport(String),
    /// The part after the transport is not `ip:port`.
    #[error("{0:?} is not ip:port (write IPv6 as [::1]:5060)")]
    BadAddress(String),
    /// Port 0 would bind a random port that no PBX could be told about.
    #[error("port 0 is not allowed; give the port the PBX sends to")]
    PortZero,
}

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (transport, addr) = s
            .split_once(':')
            .ok_or_else(|| ListenAddrError::MissingTransport(s.to_owned()))?;
        let transport = match transport.to_ascii_lowercase().as_str() {
            "udp" => ListenTransport::Udp,
            "tcp" => ListenTransport::Tcp,
            "tls" => ListenTransport::Tls,
            _ if addr.parse::<SocketAddr>().is_err() && s.parse::<SocketAddr>().is_ok() => {
                return Err(ListenAddrError::MissingTransport(s.to_owned()));
            }
            other => return Err(ListenAddrError::UnknownTransport(other.to_owned())),
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| ListenAddrError::BadAddress(addr.to_owned()))?;
        if addr.port() == 0 {
            return Err(ListenAddrError::PortZero);
        }
        Ok(ListenAddr { transport, addr })
    }
}

impl fmt::Display for ListenAddr {
    /// The profile form, `udp:127.0.0.1:5060`, so what is printed can be
    /// pasted back into a profile.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_transport_and_round_trips() {
        for s in ["udp:127.0.0.1:5060", "tcp:0.0.0.0:5060", "tls:[::1]:5061"] {
            let a: ListenAddr = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        let a: ListenAddr = "TLS:10.0.0.1:5061".parse().unwrap();
        assert_eq!(a.transport, ListenTransport::Tls);
        assert_eq!(a.addr, "10.0.0.1:5061".parse().unwrap());
    }

    #[test]
    fn refuses_malformed_entries() {
        assert_eq!(
            "sctp:127.0.0.1:5060".parse::<ListenAddr>(),
            Err(ListenAddrError::UnknownTransport("sctp".into()))
        );
        assert_eq!(
            "127.0.0.1:5060".parse::<ListenAddr>(),
            Err(ListenAddrError::MissingTransport("127.0.0.1:5060".into()))
        );
        assert_eq!(
            "udp".parse::<ListenAddr>(),
            Err(ListenAddrError::MissingTransport("udp".into()))
        );
        assert_eq!(
            "udp:localhost:5060".parse::<ListenAddr>(),
            Err(ListenAddrError::BadAddress("localhost:5060".into()))
        );
        assert_eq!(
            "udp:127.0.0.1".parse::<ListenAddr>(),
            Err(ListenAddrError::BadAddress("127.0.0.1".into()))
        );
        assert_eq!(
            "udp:::1:5060".parse::<ListenAddr>(),
            Err(ListenAddrError::BadAddress("::1:5060".into()))
        );
        assert_eq!(
            "udp:127.0.0.1:0".parse::<ListenAddr>(),
            Err(ListenAddrError::PortZero)
        );
        assert_eq!(
            "udp:127.0.0.1:70000".parse::<ListenAddr>(),
            Err(ListenAddrError::BadAddress("127.0.0.1:70000".into()))
        );
    }

    #[test]
    fn tcp_and_tls_are_streams() {
        assert!(ListenTransport::Tcp.is_stream());
        assert!(ListenTransport::Tls.is_stream());
        assert!(!ListenTransport::Udp.is_stream());
    }
}

//! The SIP URI that reaches a server of the mesh: `sip:IP:PORT;transport=tls`
//! (or `tcp`, for a server the topology marks `insecure`).
//!
//! Transfers between servers carry whole recordings in one MESSAGE, which
//! RFC 3428 section 4 keeps off UDP, so a peer must be reachable by TCP or
//! TLS and the URI must say which (RFC 3261 section 19.1.1, the `transport`
//! parameter). The host is an IP address literal for now: an `insecure`
//! peer is identified by the source address of its connection, and every
//! peer's connections are admitted by it, which a name would hide (a TLS
//! peer is identified by its certificate, whatever its address).
//!
//! Hand-written rather than rsipstack's URI parser, which is lenient by
//! design (it trims, strips angle brackets, accepts a missing scheme and
//! ignores text after an IPv6 bracket): right for messages from the wire,
//! wrong for a configuration file, where a typo must be an error.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use super::listen::ListenTransport;

/// Port used when a `tcp` URI gives none (RFC 3261 section 19.1.2).
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// Port used when a `tls` URI gives none (RFC 3261 section 19.1.2).
pub const DEFAULT_SIPS_PORT: u16 = 5061;

/// Where and how a peer is reached, read from its URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerUri {
    /// The peer's IP and port.
    pub addr: SocketAddr,
    /// [`ListenTransport::Tcp`] or [`ListenTransport::Tls`], never UDP.
    pub transport: ListenTransport,
}

/// Why a peer URI cannot be used; the messages name the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerUriError {
    /// Not `sip:` or `sips:`.
    #[error("{0:?} is not a SIP URI; write e.g. \"sip:192.0.2.10:5060;transport=tcp\"")]
    NotSip(String),
    /// A user part (`sip:vm@host`): a peer URI names a server, not a user.
    #[error("{0:?} has a user part; a peer URI names a server: \"sip:IP:PORT;transport=tcp\"")]
    HasUser(String),
    /// URI headers (`?...`), which have no meaning here.
    #[error("{0:?} has URI headers ('?'); remove them")]
    HasHeaders(String),
    /// The host is not an IP address literal.
    #[error("host {0:?} is not an IP address; peers are identified by IP, so write the address (IPv6 in brackets)")]
    HostNotIp(String),
    /// The port is not a number from 1 to 65535.
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    /// No `transport` parameter.
    #[error("lacks ;transport=tcp or ;transport=tls; a peer must be reachable by TCP or TLS")]
    MissingTransport,
    /// `transport=udp` or an unknown transport.
    #[error("transport={0} is refused; a peer must be reachable by TCP or TLS, since a transfer is too large for UDP (RFC 3428 section 4)")]
    NotStream(String),
    /// A `transport` parameter given twice.
    #[error("the transport parameter is given twice")]
    DuplicateTransport,
    /// `sips:` with a transport other than TLS.
    #[error("a sips: URI is reached over TLS; write ;transport=tls or use sip:")]
    SipsWithoutTls,
}

impl FromStr for PeerUri {
    type Err = PeerUriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| PeerUriError::NotSip(s.to_owned()))?;
        let sips = match scheme.to_ascii_lowercase().as_str() {
            "sip" => false,
            "sips" => true,
            _ => return Err(PeerUriError::NotSip(s.to_owned())),
        };
        if rest.contains('?') {
            return Err(PeerUriError::HasHeaders(s.to_owned()));
        }
        let (host_port, params) = rest.split_once(';').unwrap_or((rest, ""));
        if host_port.contains('@') {
            return Err(PeerUriError::HasUser(s.to_owned()));
        }
        let transport = transport_param(params)?;
        if sips && transport != ListenTransport::Tls {
            return Err(PeerUriError::SipsWithoutTls);
        }
        let (ip, port) = split_host_port(host_port)?;
        let port = match port {
            None if transport == ListenTransport::Tls => DEFAULT_SIPS_PORT,
            None => DEFAULT_SIP_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(PeerUriError::BadPort(p.to_owned())),
            },
        };
        Ok(PeerUri {
            addr: SocketAddr::new(ip, port),
            transport,
        })
    }
}

/// Splits `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`; the port is returned
/// unparsed so its error can quote it.
fn split_host_port(s: &str) -> Result<(IpAddr, Option<&str>), PeerUriError> {
    let not_ip = || PeerUriError::HostNotIp(s.to_owned());
    if let Some(bracketed) = s.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(not_ip)?;
        let ip = host.parse::<IpAddr>().map_err(|_| not_ip())?;
        return match after {
            "" => Ok((ip, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((ip, Some(port))),
                None => Err(not_ip()),
            },
        };
    }
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    // Only IPv4 outside brackets: an IPv6 address would be cut at its first ':'.
    let ip = host.parse::<Ipv4Addr>().map_err(|_| not_ip())?;
    Ok((IpAddr::V4(ip), port))
}

/// The transport named by the URI parameters (`;transport=tcp;lr`); other
/// parameters are left alone.
fn transport_param(params: &str) -> Result<ListenTransport, PeerUriError> {
    let mut found = None;
    for param in params.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if !name.eq_ignore_ascii_case("transport") {
            continue;
        }
        if found.is_some() {
            return Err(PeerUriError::DuplicateTransport);
        }
        found = Some(match value.to_ascii_lowercase().as_str() {
            "tcp" => ListenTransport::Tcp,
            "tls" => ListenTransport::Tls,
            _ => return Err(PeerUriError::NotStream(value.to_owned())),
        });
    }
    found.ok_or(PeerUriError::MissingTransport)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> PeerUri {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_tcp_and_tls_with_and_without_port() {
        let u = ok("sip:127.0.0.11:5060;transport=tcp");
        assert_eq!(u.addr, "127.0.0.11:5060".parse().unwrap());
        assert_eq!(u.transport, ListenTransport::Tcp);
        assert_eq!(ok("sip:10.0.0.1;transport=TCP").addr.port(), 5060);
        let tls = ok("sip:10.0.0.1;transport=tls");
        assert_eq!(
            (tls.addr.port(), tls.transport),
            (5061, ListenTransport::Tls)
        );
        assert_eq!(ok("SIPS:10.0.0.1:5071;transport=tls").addr.port(), 5071);
        let v6 = ok("sip:[::1]:5062;lr;transport=tcp");
        assert_eq!(v6.addr, "[::1]:5062".parse().unwrap());
        assert_eq!(ok("sip:[2001:db8::1];transport=tcp").addr.port(), 5060);
    }

    #[test]
    fn refuses_what_a_peer_cannot_use() {
        use PeerUriError::*;
        let cases: &[(&str, PeerUriError)] = &[
            ("127.0.0.1:5060", NotSip("127.0.0.1:5060".into())),
            ("tel:+15551234", NotSip("tel:+15551234".into())),
            ("sip127.0.0.1", NotSip("sip127.0.0.1".into())),
            (
                "sip:vm@127.0.0.1;transport=tcp",
                HasUser("sip:vm@127.0.0.1;transport=tcp".into()),
            ),
            ("sip:127.0.0.1?x=y", HasHeaders("sip:127.0.0.1?x=y".into())),
            (
                "sip:vm.example.com;transport=tcp",
                HostNotIp("vm.example.com".into()),
            ),
            ("sip:::1;transport=tcp", HostNotIp("::1".into())),
            ("sip:[::1;transport=tcp", HostNotIp("[::1".into())),
            ("sip:[::1]x;transport=tcp", HostNotIp("[::1]x".into())),
            ("sip:127.0.0.1:0;transport=tcp", BadPort("0".into())),
            ("sip:127.0.0.1:+80;transport=tcp", BadPort("+80".into())),
            ("sip:127.0.0.1:70000;transport=tcp", BadPort("70000".into())),
            ("sip:127.0.0.1:;transport=tcp", BadPort("".into())),
            ("sip:127.0.0.1:5060", MissingTransport),
            ("sip:127.0.0.1:5060;transport=udp", NotStream("udp".into())),
            ("sip:127.0.0.1:5060;transport", NotStream("".into())),
            (
                "sip:127.0.0.1;transport=tcp;transport=tcp",
                DuplicateTransport,
            ),
            ("sips:127.0.0.1;transport=tcp", SipsWithoutTls),
        ];
        for (s, expected) in cases {
            assert_eq!(s.parse::<PeerUri>().as_ref(), Err(expected), "{s}");
        }
        let e = "sip:127.0.0.1;transport=udp"
            .parse::<PeerUri>()
            .unwrap_err();
        assert!(e.to_string().contains("reachable by TCP or TLS"), "{e}");
    }
}

//! The SIP URI of a registrar or outbound proxy: `sip:HOST[:PORT][;transport=udp|tcp|tls]`.
//!
//! A REGISTER's Request-URI names the domain of the registrar and carries
//! no user part (RFC 3261 §10.2); the user goes into the address of record
//! instead (`user` in the profile). The host may be an IP address or a
//! domain name, since a PBX is usually known by name. The transport comes
//! from the `transport` parameter (RFC 3261 §19.1.1): UDP when absent for
//! `sip:`, TLS for `sips:`; the port defaults to 5060, or 5061 for TLS
//! (§19.1.2). A name is resolved to its A/AAAA records when a REGISTER is
//! sent; RFC 3263 NAPTR/SRV lookups are not made, so give the port (or an
//! outbound proxy) when the PBX's domain relies on SRV records.
//!
//! Hand-written like [`super::PeerUri`] rather than taken from rsipstack's
//! lenient parser: in a configuration file a typo must be an error that
//! names the fix, not a guess.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use super::listen::ListenTransport;
use super::peer_uri::{DEFAULT_SIPS_PORT, DEFAULT_SIP_PORT};

/// Longest host name accepted (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 253;

/// The host of a registrar URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegistrarHost {
    /// An IP address literal.
    Ip(IpAddr),
    /// A domain name, lower-cased (host names are case-insensitive).
    Name(String),
}

impl fmt::Display for RegistrarHost {
    /// The URI form: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrarHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            RegistrarHost::Ip(ip) => write!(f, "{ip}"),
            RegistrarHost::Name(name) => f.write_str(name),
        }
    }
}

/// Where and how a registrar (or an outbound proxy) is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistrarUri {
    /// The host, an IP address or a name.
    pub host: RegistrarHost,
    /// The port as written, if any.
    pub port: Option<u16>,
    /// The transport the REGISTER goes over.
    pub transport: ListenTransport,
}

impl RegistrarUri {
    /// The port REGISTERs go to: the one given, or the transport's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.transport {
            ListenTransport::Tls => DEFAULT_SIPS_PORT,
            _ => DEFAULT_SIP_PORT,
        })
    }

    /// `host[:port]` as written in a URI.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.to_string(),
        }
    }
}

impl fmt::Display for RegistrarUri {
    /// The canonical URI: `sips:` for TLS, the transport parameter for TCP,
    /// nothing for UDP (its default).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            ListenTransport::Udp => write!(f, "sip:{}", self.host_port()),
            ListenTransport::Tcp => write!(f, "sip:{};transport=tcp", self.host_port()),
            ListenTransport::Tls => write!(f, "sips:{}", self.host_port()),
        }
    }
}

/// Why a registrar URI cannot be used; the messages name the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarUriError {
    /// Not `sip:` or `sips:`.
    #[error("{0:?} is not a SIP URI; write e.g. \"sip:pbx.example.com\" or \"sip:192.0.2.10:5060;transport=tcp\"")]
    NotSip(String),
    /// A user part: the Request-URI of a REGISTER names a domain only.
    #[error("{0:?} has a user part; a registrar URI names the registrar only (RFC 3261 section 10.2): put the user in `user`")]
    HasUser(String),
    /// URI headers (`?...`), which have no meaning here.
    #[error("{0:?} has URI headers ('?'); remove them")]
    HasHeaders(String),
    /// The host is neither an IP address nor a host name.
    #[error("host {0:?} is neither an IP address (IPv6 in brackets) nor a host name")]
    BadHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    /// A transport other than udp, tcp or tls.
    #[error("transport={0} is unknown; use udp, tcp or tls")]
    UnknownTransport(String),
    /// A `transport` parameter given twice.
    #[error("the transport parameter is given twice")]
    DuplicateTransport,
    /// `sips:` with a transport other than TLS.
    #[error("a sips: URI is reached over TLS; write ;transport=tls or use sip:")]
    SipsWithoutTls,
    /// A URI parameter other than `transport` and `lr`.
    #[error("URI parameter {0:?} is not used here; only transport (and lr) are")]
    UnknownParam(String),
}

impl FromStr for RegistrarUri {
    type Err = RegistrarUriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| RegistrarUriError::NotSip(s.to_owned()))?;
        let sips = match scheme.to_ascii_lowercase().as_str() {
            "sip" => false,
            "sips" => true,
            _ => return Err(RegistrarUriError::NotSip(s.to_owned())),
        };
        if rest.contains('?') {
            return Err(RegistrarUriError::HasHeaders(s.to_owned()));
        }
        let (host_port, params) = rest.split_once(';').unwrap_or((rest, ""));
        if host_port.contains('@') {
            return Err(RegistrarUriError::HasUser(s.to_owned()));
        }
        let transport = match transport_param(params)? {
            Some(ListenTransport::Tls) | None if sips => ListenTransport::Tls,
            Some(_) if sips => return Err(RegistrarUriError::SipsWithoutTls),
            Some(t) => t,
            None => ListenTransport::Udp,
        };
        let (host, port) = split_host_port(host_port)?;
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return Err(RegistrarUriError::BadPort(p.to_owned())),
            },
        };
        Ok(RegistrarUri {
            host,
            port,
            transport,
        })
    }
}

/// Splits `HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`; the port is
/// returned unparsed so its error can quote it.
fn split_host_port(s: &str) -> Result<(RegistrarHost, Option<&str>), RegistrarUriError> {
    let bad_host = || RegistrarUriError::BadHost(s.to_owned());
    if let Some(bracketed) = s.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(bad_host)?;
        let ip = host.parse::<Ipv6Addr>().map_err(|_| bad_host())?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad_host)?),
        };
        return Ok((RegistrarHost::Ip(IpAddr::V6(ip)), port));
    }
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((RegistrarHost::Ip(ip), port));
    }
    if is_host_name(host) {
        return Ok((RegistrarHost::Name(host.to_ascii_lowercase()), port));
    }
    Err(RegistrarUriError::BadHost(host.to_owned()))
}

/// A host name (RFC 3261 §25.1 `hostname`, RFC 1123 §2.1): dot-separated
/// labels of letters, digits and inner hyphens; a trailing dot is allowed.
/// A name of digits and dots only is a mistyped IPv4 address, not a name.
fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    labels_ok && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The transport named by the URI parameters, if any. `lr` (RFC 3261
/// §19.1.1), which an outbound proxy URI often carries, is accepted and
/// needs no value; any other parameter is refused.
fn transport_param(params: &str) -> Result<Option<ListenTransport>, RegistrarUriError> {
    let mut found = None;
    for param in params.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.eq_ignore_ascii_case("lr") {
            continue;
        }
        if !name.eq_ignore_ascii_case("transport") {
            return Err(RegistrarUriError::UnknownParam(name.to_owned()));
        }
        if found.is_some() {
            return Err(RegistrarUriError::DuplicateTransport);
        }
        found = Some(match value.to_ascii_lowercase().as_str() {
            "udp" => ListenTransport::Udp,
            "tcp" => ListenTransport::Tcp,
            "tls" => ListenTransport::Tls,
            _ => return Err(RegistrarUriError::UnknownTransport(value.to_owned())),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> RegistrarUri {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn reads_names_addresses_ports_and_transports() {
        let u = ok("sip:PBX.Example.com");
        assert_eq!(u.host, RegistrarHost::Name("pbx.example.com".into()));
        assert_eq!((u.port, u.port_or_default()), (None, 5060));
        assert_eq!(u.transport, ListenTransport::Udp);
        assert_eq!(u.to_string(), "sip:pbx.example.com");

        let u = ok("sip:192.0.2.10:5080;transport=TCP");
        assert_eq!(u.host, RegistrarHost::Ip("192.0.2.10".parse().unwrap()));
        assert_eq!(u.port_or_default(), 5080);
        assert_eq!(u.transport, ListenTransport::Tcp);
        assert_eq!(u.to_string(), "sip:192.0.2.10:5080;transport=tcp");

        let u = ok("sips:pbx.example.com");
        assert_eq!(
            (u.transport, u.port_or_default()),
            (ListenTransport::Tls, 5061)
        );
        assert_eq!(ok("sip:pbx;transport=tls").to_string(), "sips:pbx");

        let u = ok("sip:[2001:db8::1]:5062;lr;transport=udp");
        assert_eq!(u.host_port(), "[2001:db8::1]:5062");
        assert_eq!(u.to_string(), "sip:[2001:db8::1]:5062");
        assert_eq!(ok("sip:pbx.example.com.").host_port(), "pbx.example.com.");
    }

    #[test]
    fn refuses_what_a_registrar_uri_cannot_be() {
        use RegistrarUriError::*;
        let cases: &[(&str, RegistrarUriError)] = &[
            ("pbx.example.com", NotSip("pbx.example.com".into())),
            ("tel:+15551234", NotSip("tel:+15551234".into())),
            ("sip:vm@pbx", HasUser("sip:vm@pbx".into())),
            ("sip:pbx?x=y", HasHeaders("sip:pbx?x=y".into())),
            ("sip:pbx_1.example", BadHost("pbx_1.example".into())),
            ("sip:-pbx", BadHost("-pbx".into())),
            ("sip:", BadHost("".into())),
            ("sip:1.2.3.256", BadHost("1.2.3.256".into())),
            ("sip:[::1", BadHost("[::1".into())),
            ("sip:[::1]x", BadHost("[::1]x".into())),
            ("sip:pbx:0", BadPort("0".into())),
            ("sip:pbx:+80", BadPort("+80".into())),
            ("sip:pbx:", BadPort("".into())),
            ("sip:pbx;transport=sctp", UnknownTransport("sctp".into())),
            ("sip:pbx;transport=udp;transport=tcp", DuplicateTransport),
            ("sips:pbx;transport=tcp", SipsWithoutTls),
            ("sip:pbx;maddr=10.0.0.1", UnknownParam("maddr".into())),
        ];
        for (s, expected) in cases {
            assert_eq!(s.parse::<RegistrarUri>().as_ref(), Err(expected), "{s}");
        }
    }
}

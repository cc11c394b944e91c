//! The `[sip]` section: the SIP endpoint's sockets and limits.

use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use super::callers::CallerPolicy;
use super::listen::ListenAddr;
use super::reader::{Node, Reader};

/// Default listeners: UDP and TCP on the loopback port 5060 (RFC 3261
/// section 19.1.2), so a fresh install is reachable only from this host.
pub const DEFAULT_LISTEN: [&str; 2] = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"];

/// Default largest SIP request accepted for calls, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 65_536;

/// Smallest `max_message_bytes`: below this an ordinary INVITE with SDP
/// would not fit.
pub const MIN_MAX_MESSAGE_BYTES: u64 = 1024;

/// Largest `max_message_bytes`, 16 MiB, so one request cannot exhaust memory.
pub const MAX_MAX_MESSAGE_BYTES: u64 = 16 * 1024 * 1024;

/// Default idle time after which a TCP connection is closed.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default number of concurrent calls.
pub const DEFAULT_MAX_CALLS: usize = 1000;

/// Default time a request on a stream may take from its first byte to its
/// last: generous for any PBX, short enough that trickled requests cannot
/// hold connections open.
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(20);

/// Default stream connections one source address may hold open at once.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 64;

/// Default stream connections open at once from sources that are not mesh
/// peers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The SIP endpoint of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// Sockets to listen on; never empty, no entry twice.
    pub listen: Vec<ListenAddr>,
    /// The `User-Agent`/`Server` header value (RFC 3261 sections 20.35, 20.41).
    pub user_agent: String,
    /// Largest SIP request accepted on UDP/TCP for calls; larger ones get
    /// 413 (RFC 3261 section 21.4.11) or, on UDP, are dropped.
    pub max_message_bytes: usize,
    /// A TCP connection with no traffic for this long is closed, so idle or
    /// abandoned connections do not pile up.
    pub tcp_idle_timeout: Duration,
    /// Concurrent calls; above this new INVITEs get 503 with Retry-After
    /// (RFC 3261 section 21.5.4) so the PBX can try elsewhere.
    pub max_calls: usize,
    /// How long to ring (180 Ringing) before answering; zero answers at once.
    pub answer_delay: Duration,
    /// A request on TCP or TLS must arrive whole within this long of its
    /// first byte, however it trickles in.
    pub request_deadline: Duration,
    /// Stream connections one source address may hold open at once.
    pub max_connections_per_source: usize,
    /// Stream connections open at once from sources that are not mesh
    /// peers (peers have room of their own).
    pub max_connections: usize,
    /// Who may call: `allow`, `[[sip.auth]]` and the digest settings
    /// (`callers.rs`).
    pub callers: CallerPolicy,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: default_listen(),
            user_agent: default_user_agent(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            max_calls: DEFAULT_MAX_CALLS,
            answer_delay: Duration::ZERO,
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            callers: CallerPolicy::default(),
        }
    }
}

/// `vmesh/<version>`: tells a PBX's logs which build answered.
pub fn default_user_agent() -> String {
    format!("vmesh/{}", env!("CARGO_PKG_VERSION"))
}

fn default_listen() -> Vec<ListenAddr> {
    DEFAULT_LISTEN
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

impl SipConfig {
    /// Reads `[sip]`; relative paths in it are relative to `base_dir`.
    pub(super) fn read(reader: &mut Reader<'_>, table: &DeTable<'_>, base_dir: &Path) -> Self {
        let mut sip = SipConfig::default();
        for (name, node) in table.iter() {
            let key = format!("sip.{}", name.get_ref());
            match name.get_ref().as_ref() {
                "listen" => {
                    if let Some(listen) = read_listen(reader, &key, node) {
                        sip.listen = listen;
                    }
                }
                "user_agent" => {
                    if let Some(s) = reader.string(&key, node) {
                        if s.is_empty() || s.chars().any(char::is_control) {
                            reader.error(&key, node.span(), "must be non-empty text on one line");
                        } else {
                            sip.user_agent = s.to_owned();
                        }
                    }
                }
                "max_message_bytes" => {
                    let range = MIN_MAX_MESSAGE_BYTES..=MAX_MAX_MESSAGE_BYTES;
                    if let Some(n) = reader.integer(&key, node, range) {
                        sip.max_message_bytes = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                "tcp_idle_timeout_s" => {
                    if let Some(n) = reader.integer(&key, node, 1..=86_400) {
                        sip.tcp_idle_timeout = Duration::from_secs(n);
                    }
                }
                "max_calls" => {
                    if let Some(n) = reader.integer(&key, node, 1..=100_000) {
                        sip.max_calls = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                "answer_delay_ms" => {
                    if let Some(n) = reader.integer(&key, node, 0..=60_000) {
                        sip.answer_delay = Duration::from_millis(n);
                    }
                }
                "request_deadline_s" => {
                    if let Some(n) = reader.integer(&key, node, 1..=3600) {
                        sip.request_deadline = Duration::from_secs(n);
                    }
                }
                "max_connections_per_source" => {
                    if let Some(n) = reader.integer(&key, node, 1..=65_536) {
                        sip.max_connections_per_source = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                "max_connections" => {
                    if let Some(n) = reader.integer(&key, node, 1..=1_000_000) {
                        sip.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                other => {
                    if !sip.callers.read_key(reader, other, node, base_dir) {
                        reader.unknown_key(&key, name.span());
                    }
                }
            }
        }
        sip
    }
}

/// Reads `listen`, reporting each bad or duplicate entry by its index.
/// Returns `None` when nothing usable was given, so the default stays.
fn read_listen(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<Vec<ListenAddr>> {
    let entries = reader.strings(key, node)?;
    if entries.is_empty() {
        reader.error(key, node.span(), "must list at least one transport:ip:port");
        return None;
    }
    let mut listen: Vec<ListenAddr> = Vec::with_capacity(entries.len());
    for entry in entries {
        let addr = match entry.value.parse::<ListenAddr>() {
            Ok(addr) => addr,
            Err(e) => {
                reader.error(&entry.key, entry.span, e.to_string());
                continue;
            }
        };
        if let Some(clash) = listen.iter().find(|l| clashes(l, &addr)) {
            let message = if *clash == addr {
                format!("{addr} is listed twice")
            } else {
                format!("{addr} and {clash} would both bind TCP {}", addr.addr)
            };
            reader.error(&entry.key, entry.span, message);
            continue;
        }
        listen.push(addr);
    }
    Some(listen)
}

/// Whether two listeners would bind the same socket: the same entry twice,
/// or TCP and TLS on one IP and port.
fn clashes(a: &ListenAddr, b: &ListenAddr) -> bool {
    a.addr == b.addr
        && (a.transport == b.transport || (a.transport.is_stream() && b.transport.is_stream()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listen_is_udp_and_tcp_on_loopback() {
        let listen: Vec<String> = default_listen().iter().map(ToString::to_string).collect();
        assert_eq!(listen, DEFAULT_LISTEN);
    }

    #[test]
    fn tcp_and_tls_on_one_port_clash_but_udp_and_tcp_do_not() {
        let udp: ListenAddr = "udp:127.0.0.1:5060".parse().unwrap();
        let tcp: ListenAddr = "tcp:127.0.0.1:5060".parse().unwrap();
        let tls: ListenAddr = "tls:127.0.0.1:5060".parse().unwrap();
        let tls_other: ListenAddr = "tls:127.0.0.1:5061".parse().unwrap();
        assert!(!clashes(&udp, &tcp));
        assert!(clashes(&tcp, &tls));
        assert!(clashes(&udp, &udp));
        assert!(!clashes(&tls, &tls_other));
    }
}

//! The `[[register]]` entries: PBXs that vmesh registers with as a user.
//!
//! A PBX that routes calls to a registered user rather than to a fixed
//! address (Asterisk's registration-based endpoints, FreeSWITCH users,
//! Kamailio's `lookup()`) learns where vmesh is from vmesh's REGISTER (RFC
//! 3261 §10). Each entry names the registrar, the user vmesh registers as,
//! the digest credentials it answers a challenge with (RFC 3261 §22.2,
//! RFC 8760) and the registration's lifetime; the `register` module keeps
//! the registration alive.
//!
//! The Contact vmesh registers is its own listen address for the transport
//! the REGISTER goes over (that of the outbound proxy when there is one,
//! else the registrar's): so every such transport needs a `sip.listen`
//! entry, and an entry that listens on every address (`0.0.0.0`) registers
//! `media.rtp_ip` instead, the address vmesh already tells the PBX to send
//! media to. Passwords may be kept out of the profile in a file of their
//! own (`password_file`, relative to the profile, read by `secret.rs`), and
//! never appear in logs or debug output.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::listen::{ListenAddr, ListenTransport};
use super::reader::{Node, Reader};
use super::registrar_uri::RegistrarUri;
use super::secret::{Password, PasswordKeys};

/// Default lifetime asked for a registration: the value Asterisk and
/// FreeSWITCH phones commonly use; RFC 3261 §10.2.1.1 suggests 3600 when
/// nothing is asked, but a shorter one lets the PBX notice a dead vmesh
/// sooner.
pub const DEFAULT_REGISTER_EXPIRES: Duration = Duration::from_secs(600);

/// Shortest lifetime that may be asked for, in seconds: anything shorter
/// would make vmesh refresh more often than a registrar is built for.
pub const MIN_REGISTER_EXPIRES_S: u64 = 10;

/// Longest lifetime that may be asked for, in seconds (one day).
pub const MAX_REGISTER_EXPIRES_S: u64 = 86_400;

/// Longest `user` accepted.
const MAX_USER_LEN: usize = 64;

/// One registration with a PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterConfig {
    /// The registrar: the Request-URI of every REGISTER and the domain of
    /// the address of record.
    pub registrar: RegistrarUri,
    /// The user vmesh registers as: the address of record is
    /// `sip:USER@REGISTRAR-HOST`, and the Contact carries it too.
    pub user: String,
    /// The digest username (RFC 3261 §22.4), when the PBX gives one that
    /// differs from `user` (an Asterisk `auth` object's `username`).
    pub auth_user: String,
    /// The digest password; `None` for a registrar that does not challenge.
    pub password: Option<Password>,
    /// The lifetime asked for (RFC 3261 §10.2.1.1); the registrar may grant
    /// less, or ask for more with 423 (§10.2.8).
    pub expires: Duration,
    /// Where REGISTERs are sent instead of the registrar, with a Route
    /// header naming it (RFC 3261 §8.1.2).
    pub outbound_proxy: Option<RegistrarUri>,
    /// The listen socket REGISTERs leave from and the Contact names.
    pub local: ListenAddr,
    /// The IP in the Contact: the listen IP, or `media.rtp_ip` when the
    /// socket listens on every address.
    pub contact_ip: IpAddr,
}

impl RegisterConfig {
    /// Where REGISTERs are sent: the outbound proxy, else the registrar.
    pub fn next_hop(&self) -> &RegistrarUri {
        self.outbound_proxy.as_ref().unwrap_or(&self.registrar)
    }

    /// The address of record, `sip:USER@HOST` (RFC 3261 §10.2.1: To and
    /// From of the REGISTER).
    pub fn address_of_record(&self) -> String {
        format!("sip:{}@{}", self.user, self.registrar.host)
    }

    /// The Contact URI registered: where the PBX sends calls for the user.
    pub fn contact_uri(&self) -> String {
        let host = match self.contact_ip {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let transport = match self.local.transport {
            ListenTransport::Udp => "",
            ListenTransport::Tcp => ";transport=tcp",
            ListenTransport::Tls => ";transport=tls",
        };
        format!(
            "sip:{}@{host}:{}{transport}",
            self.user,
            self.local.addr.port()
        )
    }
}

impl fmt::Display for RegisterConfig {
    /// `USER at REGISTRAR`, the name used in logs and the CLI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.user, self.registrar)
    }
}

/// What reading one entry needs from the rest of the profile.
pub(super) struct RegisterContext<'a> {
    /// The profile's directory: `password_file` is relative to it.
    pub base_dir: &'a Path,
    /// `sip.listen`: the Contact is one of these.
    pub listen: &'a [ListenAddr],
    /// `media.rtp_ip`: the Contact's IP for a wildcard listener.
    pub rtp_ip: IpAddr,
}

/// Reads `register`, which must be an array of tables (`[[register]]`).
pub(super) fn read_register(
    reader: &mut Reader<'_>,
    node: &Node<'_>,
    context: &RegisterContext<'_>,
) -> Vec<RegisterConfig> {
    let DeValue::Array(items) = node.get_ref() else {
        reader.error(
            "register",
            node.span(),
            "must be written [[register]], one such table per registration",
        );
        return Vec::new();
    };
    let mut entries: Vec<RegisterConfig> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let key = format!("register[{index}]");
        let Some(table) = reader.table(&key, item) else {
            continue;
        };
        let Some(entry) = read_entry(reader, &key, item, table, context) else {
            continue;
        };
        if let Some(first) = entries
            .iter()
            .position(|e| e.user == entry.user && e.registrar == entry.registrar)
        {
            reader.error(
                &key,
                item.span(),
                format!("registers {entry} again; register[{first}] already does"),
            );
            continue;
        }
        entries.push(entry);
    }
    entries
}

/// The keys of one entry as written, before they are checked together.
#[derive(Default)]
struct Keys {
    registrar: Option<RegistrarUri>,
    user: Option<String>,
    auth_user: Option<String>,
    password: PasswordKeys,
    expires: Option<Duration>,
    outbound_proxy: Option<RegistrarUri>,
}

fn read_entry(
    reader: &mut Reader<'_>,
    key: &str,
    item: &Node<'_>,
    table: &DeTable<'_>,
    context: &RegisterContext<'_>,
) -> Option<RegisterConfig> {
    let mut keys = Keys::default();
    let mut proxy_span = None;
    let mut registrar_span = None;
    for (name, node) in table.iter() {
        let field = format!("{key}.{}", name.get_ref());
        match name.get_ref().as_ref() {
            "registrar" => {
                registrar_span = Some(node.span());
                keys.registrar = read_uri(reader, &field, node);
            }
            "outbound_proxy" => {
                proxy_span = Some(node.span());
                keys.outbound_proxy = read_uri(reader, &field, node);
            }
            "user" => keys.user = read_user(reader, &field, node),
            "auth_user" => keys.auth_user = read_auth_user(reader, &field, node),
            "expires" => {
                let range = MIN_REGISTER_EXPIRES_S..=MAX_REGISTER_EXPIRES_S;
                keys.expires = reader.integer(&field, node, range).map(Duration::from_secs);
            }
            other => {
                if !keys
                    .password
                    .read_key(reader, &field, other, node, context.base_dir)
                {
                    reader.unknown_key(&field, name.span());
                }
            }
        }
    }
    let missing = |reader: &mut Reader<'_>, name: &str, what: &str| {
        reader.error(
            &format!("{key}.{name}"),
            item.span(),
            format!("is missing; {what}"),
        )
    };
    if registrar_span.is_none() {
        missing(
            reader,
            "registrar",
            "give the registrar's SIP URI, e.g. \"sip:pbx.example.com\"",
        );
    }
    if keys.user.is_none() && !reader.has_error_within(&format!("{key}.user")) {
        missing(
            reader,
            "user",
            "give the user vmesh registers as, e.g. \"voicemail\"",
        );
    }
    let registrar = keys.registrar?;
    let user = keys.user?;
    if proxy_span.is_some() && keys.outbound_proxy.is_none() {
        return None;
    }
    let (hop, hop_key, hop_span) = match (&keys.outbound_proxy, proxy_span) {
        (Some(proxy), Some(span)) => (proxy, "outbound_proxy", span),
        _ => (
            &registrar,
            "registrar",
            registrar_span.unwrap_or(item.span()),
        ),
    };
    let local = local_for(reader, &format!("{key}.{hop_key}"), hop_span, hop, context)?;
    let contact_ip = if local.addr.ip().is_unspecified() {
        context.rtp_ip
    } else {
        local.addr.ip()
    };
    Some(RegisterConfig {
        registrar,
        auth_user: keys.auth_user.unwrap_or_else(|| user.clone()),
        user,
        password: keys.password.into_password(),
        expires: keys.expires.unwrap_or(DEFAULT_REGISTER_EXPIRES),
        outbound_proxy: keys.outbound_proxy,
        local,
        contact_ip,
    })
}

/// The listen entry REGISTERs to `hop` leave from: the first one of the
/// hop's transport. TLS is refused until vmesh has a TLS transport.
fn local_for(
    reader: &mut Reader<'_>,
    key: &str,
    span: std::ops::Range<usize>,
    hop: &RegistrarUri,
    context: &RegisterContext<'_>,
) -> Option<ListenAddr> {
    if hop.transport == ListenTransport::Tls {
        reader.error(
            key,
            span,
            "registering over TLS is not supported yet; use a sip: URI with transport=udp or transport=tcp",
        );
        return None;
    }
    let local = context
        .listen
        .iter()
        .find(|l| l.transport == hop.transport)
        .copied();
    if local.is_none() {
        reader.error(
            key,
            span,
            format!(
                "REGISTER over {t} needs a {t}: entry in sip.listen, whose address becomes the Contact",
                t = hop.transport
            ),
        );
    }
    local
}

fn read_uri(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<RegistrarUri> {
    let text = reader.string(key, node)?;
    match text.parse::<RegistrarUri>() {
        Ok(uri) => Some(uri),
        Err(e) => {
            reader.error(key, node.span(), e.to_string());
            None
        }
    }
}

/// A SIP user part (RFC 3261 §25.1 `user`), kept to the characters that
/// need no escaping in a URI: letters, digits and `-_.!~*'()+&=$,`.
fn read_user(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<String> {
    let text = reader.string(key, node)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()+&=$,".contains(c);
    if text.is_empty() || text.len() > MAX_USER_LEN || !text.chars().all(allowed) {
        reader.error(
            key,
            node.span(),
            format!(
                "{text:?} is not a SIP user: 1 to {MAX_USER_LEN} letters, digits or -_.!~*'()+&=$,"
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

/// A digest username travels as a quoted string (RFC 7616 §3.4): any
/// printable text without `"` or `\`.
fn read_auth_user(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<String> {
    let text = reader.string(key, node)?;
    if text.is_empty()
        || text
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        reader.error(
            key,
            node.span(),
            "must be non-empty text without control characters, '\"' or '\\'",
        );
        return None;
    }
    Some(text.to_owned())
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;

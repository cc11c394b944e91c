//! Who may call: the `[sip]` keys that say which sources may send INVITEs
//! and which credentials they must present.
//!
//! - `sip.allow`: source addresses or CIDR blocks (the PBXs). An INVITE
//!   from anywhere else gets 403. Left out, any source may call, so
//!   existing profiles keep working; `vmesh check` and `vmesh serve` then
//!   warn about a listener that is not on loopback (see
//!   [`SipConfig::open_listeners`]).
//! - `[[sip.auth]]` entries (`user` and `password` or `password_file`):
//!   when any is given, every new INVITE must carry SIP digest credentials
//!   of one of them (RFC 3261 §22), with the algorithms of
//!   `sip.auth_algorithms` (RFC 8760 SHA-256 first, MD5 for old PBXs), in
//!   the realm `sip.auth_realm` (the server's name by default), with
//!   nonces good for `sip.nonce_lifetime_s`.
//!
//! Both apply when both are given: an allowed source that must also
//! authenticate.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use toml::de::{DeTable, DeValue};

use super::listen::ListenAddr;
use super::reader::{Node, Reader};
use super::secret::{Password, PasswordKeys};
use super::sip::SipConfig;

/// Default lifetime of a digest nonce: long enough for a PBX to answer the
/// 401 (it does at once) and to reuse the nonce on the next calls for a
/// while, short enough that a captured nonce is soon worthless.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(30);

/// The digest algorithms offered by default, preferred first.
pub const DEFAULT_AUTH_ALGORITHMS: [&str; 2] = ["SHA-256", "MD5"];

/// One `[[sip.auth]]` entry: a client that may authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The digest user name.
    pub user: String,
    /// Its password.
    pub password: Password,
}

/// The `[sip]` keys about callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerPolicy {
    /// Sources that may send INVITEs; `None` for any.
    pub allow: Option<Vec<IpNet>>,
    /// Clients that may authenticate; empty for no digest authentication.
    pub auth: Vec<AuthUser>,
    /// The digest realm; `None` for the server's name.
    pub auth_realm: Option<String>,
    /// Digest algorithm tokens offered, preferred first.
    pub auth_algorithms: Vec<String>,
    /// How long a nonce may be used after it is issued.
    pub nonce_lifetime: Duration,
}

impl Default for CallerPolicy {
    fn default() -> Self {
        CallerPolicy {
            allow: None,
            auth: Vec::new(),
            auth_realm: None,
            auth_algorithms: DEFAULT_AUTH_ALGORITHMS.map(String::from).to_vec(),
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
        }
    }
}

impl CallerPolicy {
    /// Whether `ip` may send INVITEs by `sip.allow`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&ip)))
    }

    /// Reads one of this module's keys of `[sip]`; false if `name` is not
    /// one of them. Relative `password_file` paths are resolved against
    /// `base_dir` (the profile's directory).
    pub(super) fn read_key(
        &mut self,
        reader: &mut Reader<'_>,
        name: &str,
        node: &Node<'_>,
        base_dir: &Path,
    ) -> bool {
        let key = format!("sip.{name}");
        match name {
            "allow" => self.allow = read_allow(reader, &key, node).or(self.allow.take()),
            "auth" => self.auth = read_auth(reader, &key, node, base_dir),
            "auth_realm" => {
                if let Some(s) = reader.string(&key, node) {
                    if s.is_empty() || s.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                        reader.error(&key, node.span(), "must be non-empty text without quotes");
                    } else {
                        self.auth_realm = Some(s.to_owned());
                    }
                }
            }
            "auth_algorithms" => {
                if let Some(list) = read_algorithms(reader, &key, node) {
                    self.auth_algorithms = list;
                }
            }
            "nonce_lifetime_s" => {
                if let Some(n) = reader.integer(&key, node, 1..=3600) {
                    self.nonce_lifetime = Duration::from_secs(n);
                }
            }
            _ => return false,
        }
        true
    }
}

impl SipConfig {
    /// The listeners that any host may reach and nothing guards: not on
    /// loopback, with neither `sip.allow` nor digest authentication. Any
    /// host that can reach one can leave messages (and fill the disk), so
    /// `vmesh check` and `vmesh serve` warn about each.
    pub fn open_listeners(&self) -> Vec<&ListenAddr> {
        if self.callers.allow.is_some() || !self.callers.auth.is_empty() {
            return Vec::new();
        }
        self.listen
            .iter()
            .filter(|l| !l.addr.ip().is_loopback())
            .collect()
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
/// reports for an IPv4 peer) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `sip.allow`: addresses (a host) or CIDR blocks.
fn read_allow(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<Vec<IpNet>> {
    let entries = reader.strings(key, node)?;
    if entries.is_empty() {
        reader.error(
            key,
            node.span(),
            "must list at least one address or CIDR; leave the key out to accept any source",
        );
        return None;
    }
    let mut nets = Vec::with_capacity(entries.len());
    for entry in entries {
        let value = entry.value.trim();
        let parsed = value
            .parse::<IpNet>()
            .or_else(|_| value.parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => nets.push(net),
            Err(_) => reader.error(
                &entry.key,
                entry.span,
                format!(
                    "{value:?} is not an IP address or CIDR block (e.g. 192.0.2.10 or 10.1.0.0/16)"
                ),
            ),
        }
    }
    Some(nets)
}

/// `[[sip.auth]]`: each entry `user` and exactly one of `password` and
/// `password_file`.
fn read_auth(
    reader: &mut Reader<'_>,
    key: &str,
    node: &Node<'_>,
    base_dir: &Path,
) -> Vec<AuthUser> {
    let DeValue::Array(items) = node.get_ref() else {
        reader.error(
            key,
            node.span(),
            "expected [[sip.auth]] tables (user, password or password_file)",
        );
        return Vec::new();
    };
    let mut users: Vec<AuthUser> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let entry_key = format!("{key}[{index}]");
        let Some(table) = reader.table(&entry_key, item) else {
            continue;
        };
        if let Some(user) = read_auth_entry(reader, &entry_key, item, table, base_dir) {
            if users.iter().any(|u| u.user == user.user) {
                reader.error(
                    &entry_key,
                    item.span(),
                    format!("user {:?} is listed twice", user.user),
                );
                continue;
            }
            users.push(user);
        }
    }
    users
}

fn read_auth_entry(
    reader: &mut Reader<'_>,
    key: &str,
    node: &Node<'_>,
    table: &DeTable<'_>,
    base_dir: &Path,
) -> Option<AuthUser> {
    let mut user = None;
    let mut password = PasswordKeys::default();
    for (name, value) in table.iter() {
        let field = format!("{key}.{}", name.get_ref());
        match name.get_ref().as_ref() {
            "user" => {
                user = reader
                    .string(&field, value)
                    .map(|s| (s.to_owned(), field, value.span()))
            }
            other => {
                if !password.read_key(reader, &field, other, value, base_dir) {
                    reader.unknown_key(&field, name.span());
                }
            }
        }
    }
    let Some((user, user_key, user_span)) = user else {
        reader.error(key, node.span(), "needs a user");
        return None;
    };
    if user.is_empty()
        || user
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        reader.error(
            &user_key,
            user_span,
            "must be non-empty text without quotes",
        );
        return None;
    }
    if !password.given() {
        reader.error(key, node.span(), "needs a password or a password_file");
        return None;
    }
    Some(AuthUser {
        user,
        password: password.into_password()?,
    })
}

/// `sip.auth_algorithms`: a non-empty list of SHA-256 and MD5.
fn read_algorithms(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<Vec<String>> {
    let entries = reader.strings(key, node)?;
    if entries.is_empty() {
        reader.error(key, node.span(), "must list SHA-256, MD5 or both");
        return None;
    }
    let mut list: Vec<String> = Vec::new();
    for entry in entries {
        let token = entry.value.to_ascii_uppercase();
        if !DEFAULT_AUTH_ALGORITHMS.contains(&token.as_str()) {
            reader.error(
                &entry.key,
                entry.span,
                format!("{:?} is not SHA-256 or MD5", entry.value),
            );
        } else if list.contains(&token) {
            reader.error(&entry.key, entry.span, format!("{token} is listed twice"));
        } else {
            list.push(token);
        }
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::super::{Profile, ProfileOrigin};
    use super::*;

    fn parse(text: &str, dir: &Path) -> Result<Profile, super::super::ConfigErrors> {
        Profile::parse(text, ProfileOrigin::File(dir.join("p.toml")))
    }

    #[test]
    fn allow_takes_addresses_and_cidrs_of_both_families() {
        let dir = tempfile::tempdir().unwrap();
        let p = parse(
            "[sip]\nallow = [\"192.0.2.10\", \"10.1.0.0/16\", \"2001:db8::/32\", \"::1\"]\n",
            dir.path(),
        )
        .unwrap();
        let callers = &p.sip.callers;
        for ok in [
            "192.0.2.10",
            "10.1.255.3",
            "2001:db8::5",
            "::1",
            "::ffff:10.1.0.9",
        ] {
            assert!(callers.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in ["192.0.2.11", "10.2.0.1", "2001:db9::1", "127.0.0.1"] {
            assert!(!callers.allows(no.parse().unwrap()), "{no}");
        }
        assert!(CallerPolicy::default().allows("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn bad_allow_entries_are_reported_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let e = parse(
            "[sip]\nallow = [\"10.0.0.0/8\", \"pbx.example.com\", \"10.0.0.0/33\"]\n",
            dir.path(),
        )
        .unwrap_err();
        assert!(
            e.has_key("sip.allow[1]") && e.has_key("sip.allow[2]"),
            "{e}"
        );
        assert!(!e.has_key("sip.allow[0]"));
        let e = parse("[sip]\nallow = []\n", dir.path()).unwrap_err();
        assert!(e.has_key("sip.allow"), "{e}");
    }

    #[test]
    fn auth_entries_take_a_password_or_a_file_beside_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pbx-b.secret"), "from-file\n").unwrap();
        let p = parse(
            "[sip]\nauth_realm = \"vm.example.com\"\nauth_algorithms = [\"md5\"]\n\
             nonce_lifetime_s = 10\n\
             [[sip.auth]]\nuser = \"pbx-a\"\npassword = \"inline\"\n\
             [[sip.auth]]\nuser = \"pbx-b\"\npassword_file = \"pbx-b.secret\"\n",
            dir.path(),
        )
        .unwrap();
        let c = &p.sip.callers;
        assert_eq!(c.auth.len(), 2);
        assert_eq!(
            (c.auth[0].user.as_str(), c.auth[0].password.expose()),
            ("pbx-a", "inline")
        );
        assert_eq!(
            (c.auth[1].user.as_str(), c.auth[1].password.expose()),
            ("pbx-b", "from-file")
        );
        assert_eq!(c.auth_realm.as_deref(), Some("vm.example.com"));
        assert_eq!(c.auth_algorithms, ["MD5"]);
        assert_eq!(c.nonce_lifetime, Duration::from_secs(10));
        // Never printed.
        assert!(!format!("{p:?}").contains("inline"));
    }

    #[test]
    fn bad_auth_entries_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[[sip.auth]]\npassword = \"x\"\n", "sip.auth[0]"),
            ("[[sip.auth]]\nuser = \"a\"\n", "sip.auth[0]"),
            ("[[sip.auth]]\nuser = \"a\"\npassword = \"x\"\npassword_file = \"f\"\n", "sip.auth[0].password_file"),
            ("[[sip.auth]]\nuser = \"a\"\npassword_file = \"missing\"\n", "sip.auth[0].password_file"),
            ("[[sip.auth]]\nuser = \"a\"\npassword = \"\"\n", "sip.auth[0].password"),
            ("[[sip.auth]]\nuser = \"a\"\npassword = \"x\"\ncolour = 1\n", "sip.auth[0].colour"),
            ("[[sip.auth]]\nuser = \"a\"\npassword = \"x\"\n[[sip.auth]]\nuser = \"a\"\npassword = \"y\"\n", "sip.auth[1]"),
            ("[sip]\nauth = \"a:b\"\n", "sip.auth"),
            ("[sip]\nauth_algorithms = [\"SHA-512\"]\n", "sip.auth_algorithms[0]"),
            ("[sip]\nauth_algorithms = []\n", "sip.auth_algorithms"),
            ("[sip]\nnonce_lifetime_s = 0\n", "sip.nonce_lifetime_s"),
            ("[sip]\nauth_realm = \"a\\\"b\"\n", "sip.auth_realm"),
        ];
        for (text, key) in cases {
            let e = parse(text, dir.path()).unwrap_err();
            assert!(e.has_key(key), "{text}: want {key}, got {e}");
        }
    }

    #[test]
    fn open_listeners_are_those_off_loopback_without_allow_or_auth() {
        let dir = tempfile::tempdir().unwrap();
        let listen = "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"udp:0.0.0.0:5070\", \"tcp:192.0.2.1:5060\"]\n";
        let p = parse(
            &format!("{listen}[media]\nrtp_ip = \"192.0.2.1\"\n"),
            dir.path(),
        )
        .unwrap();
        let open: Vec<String> = p
            .sip
            .open_listeners()
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(open, ["udp:0.0.0.0:5070", "tcp:192.0.2.1:5060"]);
        let p = parse(
            &format!("{listen}allow = [\"192.0.2.0/24\"]\n[media]\nrtp_ip = \"192.0.2.1\"\n"),
            dir.path(),
        )
        .unwrap();
        assert!(p.sip.open_listeners().is_empty());
        let p = parse(
            &format!("{listen}[[sip.auth]]\nuser = \"a\"\npassword = \"b\"\n[media]\nrtp_ip = \"192.0.2.1\"\n"),
            dir.path(),
        )
        .unwrap();
        assert!(p.sip.open_listeners().is_empty());
        assert!(Profile::embedded_default().sip.open_listeners().is_empty());
    }
}

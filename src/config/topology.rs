//! The mesh topology: every server of the mesh, how to reach it, and the
//! mailboxes it is home to.
//!
//! One file is shared by all servers (each profile points at it with
//! `server.topology`), so they agree on where each mailbox lives:
//!
//! ```toml
//! [tls]
//! ca = "certs/ca.pem"          # the mesh CA, relative to this file
//!
//! [[server]]
//! name = "site-a"
//! uri = "sip:127.0.0.11:5061;transport=tls"
//! mailboxes = ["1000-1999"]
//! ```
//!
//! Validation makes the file safe to route by: names are unique, every URI
//! reaches its server by TCP or TLS at an IP address no other server has,
//! and no mailbox has two homes ([`super::MailboxPattern::overlaps`]).
//! Servers are reached over mutual TLS and known by the name in their
//! certificate, issued by the mesh CA that `[tls] ca` names; plain TCP is
//! allowed only for a server marked `insecure = true` (tests, demos, a
//! trusted LAN), and such a server is known by the source address of its
//! connections. Errors name the topology file and keys such as
//! `server[1].mailboxes[0]`, all at once, as for profiles.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigErrors};
use super::listen::ListenTransport;
use super::mailbox_set::{read_patterns, MailboxSet, PlacedPattern};
use super::peer_uri::PeerUri;
use super::reader::{Node, Reader};
use super::server::check_name;

/// Every server of the mesh; only ever built valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The file it was read from, named in errors and by `vmesh check`.
    pub path: PathBuf,
    /// The servers, in file order; names, IPs and mailboxes are disjoint.
    pub servers: Vec<TopologyServer>,
    /// The mesh CA (`[tls] ca`), resolved against the topology's directory;
    /// present whenever a server is reached by TLS.
    pub ca: Option<PathBuf>,
}

/// One server of the mesh, as its peers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyServer {
    /// Its name, unique in the topology; the same rule as `server.name`.
    pub name: String,
    /// Its SIP URI as written in the file, for display and as the
    /// Request-URI of requests sent to it.
    pub uri: String,
    /// The IP and port the URI names.
    pub addr: SocketAddr,
    /// How it is reached: [`ListenTransport::Tcp`] or [`ListenTransport::Tls`].
    pub transport: ListenTransport,
    /// The mailboxes it is home to; possibly none (a server that only takes
    /// calls for others while they are away).
    pub mailboxes: MailboxSet,
    /// `insecure = true`: reached by plain TCP and known by its source
    /// address instead of a certificate.
    pub insecure: bool,
}

impl Topology {
    /// Reads and validates the topology at `path`. A file that cannot be read
    /// is reported like any other error, naming the path.
    pub fn load(path: &Path) -> Result<Topology, ConfigErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => Topology::parse(&text, path),
            Err(e) => Err(ConfigErrors(vec![ConfigError::new(
                path.display().to_string(),
                "",
                format!("cannot read topology: {e}"),
            )])),
        }
    }

    /// Parses and validates topology text; `path` is what errors name.
    pub fn parse(text: &str, path: &Path) -> Result<Topology, ConfigErrors> {
        let mut reader = Reader::new(path.display().to_string(), text);
        let (document, syntax_errors) = DeTable::parse_recoverable(text);
        for error in &syntax_errors {
            reader.syntax_error(error);
        }
        let base_dir = path.parent().unwrap_or(Path::new(""));
        let (servers, ca) = if syntax_errors.is_empty() {
            let ca = read_tls(&mut reader, document.get_ref(), base_dir);
            let servers = read_servers(&mut reader, document.get_ref(), ca.is_some());
            (servers, ca)
        } else {
            (Vec::new(), None)
        };
        let errors = reader.finish();
        if errors.is_empty() {
            Ok(Topology {
                path: path.to_path_buf(),
                servers,
                ca,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The home server of `mailbox`: the one whose mailboxes contain it.
    /// `None` for a mailbox homed nowhere (calls for it get 404) or not a
    /// valid mailbox id.
    pub fn home_of(&self, mailbox: &str) -> Option<&TopologyServer> {
        self.servers.iter().find(|s| s.mailboxes.contains(mailbox))
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&TopologyServer> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// The server at `ip`, whatever its transport: the pool a connection
    /// from there draws on. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`,
    /// as a dual-stack socket reports IPv4 peers) is the IPv4 address.
    pub fn by_ip(&self, ip: IpAddr) -> Option<&TopologyServer> {
        let ip = ip.to_canonical();
        self.servers
            .iter()
            .find(|s| s.addr.ip().to_canonical() == ip)
    }

    /// Every mailbox of the topology: what each server takes calls for,
    /// its own and its peers', so a caller gets voicemail while the home
    /// server is away.
    pub fn all_mailboxes(&self) -> MailboxSet {
        MailboxSet::from_patterns(
            self.servers
                .iter()
                .flat_map(|s| s.mailboxes.patterns().iter().cloned())
                .collect(),
        )
    }
}

/// A server entry as read, before the checks across entries.
struct Entry {
    key: String,
    name: Option<(String, Range<usize>)>,
    uri: Option<(String, PeerUri, Range<usize>)>,
    mailboxes: Option<Vec<PlacedPattern>>,
    insecure: Option<(bool, Range<usize>)>,
}

/// Reads `[[server]]` tables, checks them against each other and returns
/// the complete ones (all of them when no error was recorded).
fn read_servers(
    reader: &mut Reader<'_>,
    document: &DeTable<'_>,
    has_ca: bool,
) -> Vec<TopologyServer> {
    let mut entries = Vec::new();
    let mut listed = false;
    for (name, node) in document.iter() {
        let key = name.get_ref().as_ref();
        if key == "tls" {
            continue;
        }
        if key != "server" {
            reader.error(
                key,
                name.span(),
                "unknown key; a topology holds a [tls] table and [[server]] tables",
            );
            continue;
        }
        listed = true;
        let DeValue::Array(items) = node.get_ref() else {
            reader.error(
                key,
                node.span(),
                "expected [[server]] tables (an array of tables)",
            );
            continue;
        };
        if items.is_empty() {
            reader.error(key, node.span(), "lists no server");
        }
        for (index, item) in items.iter().enumerate() {
            entries.extend(read_entry(reader, index, item));
        }
    }
    if !listed {
        reader.error_unplaced(
            "server",
            "lists no server; add one [[server]] table per vmesh server",
        );
    }
    check_unique_names(reader, &entries);
    check_unique_ips(reader, &entries);
    check_no_overlap(reader, &entries);
    check_transports(reader, &entries, has_ca);
    entries.into_iter().filter_map(complete).collect()
}

/// Reads one `[[server]]` table, reporting bad and missing keys.
fn read_entry(reader: &mut Reader<'_>, index: usize, node: &Node<'_>) -> Option<Entry> {
    let key = format!("server[{index}]");
    let table = reader.table(&key, node)?;
    let mut entry = Entry {
        key: key.clone(),
        name: None,
        uri: None,
        mailboxes: None,
        insecure: None,
    };
    let (mut has_name, mut has_uri, mut has_mailboxes) = (false, false, false);
    for (name, value) in table.iter() {
        let item_key = format!("{key}.{}", name.get_ref());
        match name.get_ref().as_ref() {
            "name" => {
                has_name = true;
                let Some(s) = reader.string(&item_key, value) else {
                    continue;
                };
                match check_name(s) {
                    Ok(()) => entry.name = Some((s.to_owned(), value.span())),
                    Err(message) => reader.error(&item_key, value.span(), message),
                }
            }
            "uri" => {
                has_uri = true;
                let Some(s) = reader.string(&item_key, value) else {
                    continue;
                };
                match s.parse::<PeerUri>() {
                    Ok(uri) => entry.uri = Some((s.to_owned(), uri, value.span())),
                    Err(e) => reader.error(&item_key, value.span(), e.to_string()),
                }
            }
            "mailboxes" => {
                has_mailboxes = true;
                entry.mailboxes = reader
                    .strings(&item_key, value)
                    .map(|entries| read_patterns(reader, entries));
            }
            "insecure" => {
                if let Some(b) = reader.boolean(&item_key, value) {
                    entry.insecure = Some((b, value.span()));
                }
            }
            _ => reader.unknown_key(&item_key, name.span()),
        }
    }
    for (present, field, what) in [
        (has_name, "name", "its name, e.g. name = \"site-a\""),
        (
            has_uri,
            "uri",
            "the URI that reaches it, e.g. uri = \"sip:192.0.2.10:5060;transport=tcp\"",
        ),
        (
            has_mailboxes,
            "mailboxes",
            "the mailboxes it is home to, e.g. mailboxes = [\"1000-1999\"] (or [])",
        ),
    ] {
        if !present {
            reader.error(
                &format!("{key}.{field}"),
                node.span(),
                format!("missing; every server needs {what}"),
            );
        }
    }
    Some(entry)
}

/// Names are how profiles and peers refer to servers: two servers may not
/// share one, even in different case, which would only confuse operators.
fn check_unique_names(reader: &mut Reader<'_>, entries: &[Entry]) {
    for (later, entry) in entries.iter().enumerate() {
        let Some((name, span)) = &entry.name else {
            continue;
        };
        let first = entries[..later].iter().find(|e| {
            e.name
                .as_ref()
                .is_some_and(|(other, _)| other.eq_ignore_ascii_case(name))
        });
        if let Some(first) = first {
            reader.error(
                &format!("{}.name", entry.key),
                span.clone(),
                format!("server name {name:?} is already used by {}", first.key),
            );
        }
    }
}

/// An `insecure` server is known by its source IP, and every server's
/// connections count in the peers' pool by their IP, so no two servers may
/// share an IP.
fn check_unique_ips(reader: &mut Reader<'_>, entries: &[Entry]) {
    for (later, entry) in entries.iter().enumerate() {
        let Some((_, uri, span)) = &entry.uri else {
            continue;
        };
        let ip = uri.addr.ip().to_canonical();
        let first = entries[..later].iter().find(|e| {
            e.uri
                .as_ref()
                .is_some_and(|(_, other, _)| other.addr.ip().to_canonical() == ip)
        });
        if let Some(first) = first {
            reader.error(
                &format!("{}.uri", entry.key),
                span.clone(),
                format!(
                    "IP {ip} is already {}'s; peers are told apart by IP, so each server needs its own",
                    first.key
                ),
            );
        }
    }
}

/// No mailbox may have two homes: each pattern is checked against every
/// pattern before it, of any server, and reported at its first overlap.
fn check_no_overlap(reader: &mut Reader<'_>, entries: &[Entry]) {
    let placed: Vec<(usize, &PlacedPattern)> = entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.mailboxes.iter().flatten().map(move |p| (i, p)))
        .collect();
    for (later, (server, pattern)) in placed.iter().enumerate() {
        let Some((first_server, first)) = placed[..later]
            .iter()
            .find(|(_, earlier)| earlier.pattern.overlaps(&pattern.pattern))
        else {
            continue;
        };
        let message = if first_server == server {
            format!(
                "{:?} overlaps {:?} ({}) of the same server; list each mailbox once",
                pattern.pattern.to_string(),
                first.pattern.to_string(),
                first.key
            )
        } else {
            format!(
                "{:?} overlaps {:?} ({}) of server {}; a mailbox can have only one home",
                pattern.pattern.to_string(),
                first.pattern.to_string(),
                first.key,
                label(&entries[*first_server])
            )
        };
        reader.error(&pattern.key, pattern.span.clone(), message);
    }
}

/// A server's name for messages, or its key when the name is unusable.
fn label(entry: &Entry) -> String {
    match &entry.name {
        Some((name, _)) => format!("{name:?}"),
        None => entry.key.clone(),
    }
}

/// The server an entry describes, if every part of it was valid.
fn complete(entry: Entry) -> Option<TopologyServer> {
    let (name, _) = entry.name?;
    let (uri, peer, _) = entry.uri?;
    let patterns = entry.mailboxes?.into_iter().map(|p| p.pattern).collect();
    Some(TopologyServer {
        name,
        uri,
        addr: peer.addr,
        transport: peer.transport,
        mailboxes: MailboxSet::from_patterns(patterns),
        insecure: entry.insecure.is_some_and(|(b, _)| b),
    })
}

/// Reads `[tls]`: the mesh CA, resolved against `base_dir`.
fn read_tls(reader: &mut Reader<'_>, document: &DeTable<'_>, base_dir: &Path) -> Option<PathBuf> {
    let (_, node) = document.iter().find(|(k, _)| k.get_ref() == "tls")?;
    let table = reader.table("tls", node)?;
    let mut ca = None;
    for (name, value) in table.iter() {
        let key = format!("tls.{}", name.get_ref());
        if name.get_ref() != "ca" {
            reader.unknown_key(&key, name.span());
            continue;
        }
        if let Some(s) = reader.string(&key, value) {
            if s.is_empty() {
                reader.error(&key, value.span(), "must not be empty");
            } else {
                ca = Some(base_dir.join(s));
            }
        }
    }
    ca
}

/// Plain TCP only where the file says `insecure = true`, never together
/// with TLS; and a CA whenever a server is reached by TLS.
fn check_transports(reader: &mut Reader<'_>, entries: &[Entry], has_ca: bool) {
    let mut first_tls = None;
    for entry in entries {
        let Some((_, uri, uri_span)) = &entry.uri else {
            continue;
        };
        let insecure = entry.insecure.clone();
        match (uri.transport, insecure) {
            (ListenTransport::Tls, Some((true, span))) => reader.error(
                &format!("{}.insecure", entry.key),
                span,
                "this server is reached by TLS; insecure = true is for transport=tcp servers only",
            ),
            (ListenTransport::Tls, _) => {
                first_tls.get_or_insert(uri_span.clone());
            }
            (_, Some((true, _))) => {}
            _ => reader.error(
                &format!("{}.uri", entry.key),
                uri_span.clone(),
                "plain TCP carries voicemail unauthenticated and unencrypted; use \
                 transport=tls, or set insecure = true for this server (it is then known \
                 by its IP address alone)",
            ),
        }
    }
    if let (Some(span), false) = (first_tls, has_ca) {
        reader.error(
            "tls.ca",
            span,
            "missing; servers reached by transport=tls need the mesh CA: add \
             [tls] ca = \"certs/ca.pem\" (make one with vmesh certs init)",
        );
    }
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;

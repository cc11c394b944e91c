//! How a profile fits the topology it names.
//!
//! A topology is shared; each profile says which of its servers it is
//! (`server.name`). For the mesh to work, that server must be listed, and it
//! must listen where its peers will connect: on the transport, IP and port of
//! its topology URI (or on the unspecified address with that port). Without
//! an explicit `[mailboxes] accept`, it takes calls for every mailbox of the
//! topology, its own and its peers', which is what lets it stand in for a
//! peer that is away.

use std::net::IpAddr;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::listen::ListenAddr;
use super::reader::Reader;
use super::topology::{Topology, TopologyServer};

/// Checks that the server named `name` is in `topology` and listens on
/// `listen` where its peers reach it. Errors are reported at `server.name`
/// and `sip.listen` of the profile, unless those keys are already in error
/// (a name that failed to parse would otherwise also be "missing").
pub(super) fn check_membership(
    reader: &mut Reader<'_>,
    document: &DeTable<'_>,
    name: &str,
    listen: &[ListenAddr],
    topology: &Topology,
) {
    if reader.has_error_within("server.name") {
        return;
    }
    let Some(me) = topology.server(name) else {
        let known: Vec<&str> = topology.servers.iter().map(|s| s.name.as_str()).collect();
        let message = format!(
            "server {name:?} is not in the topology {} (it lists {}); \
             set server.name to this server's entry",
            topology.path.display(),
            known.join(", ")
        );
        report(reader, document, "server", "name", message);
        return;
    };
    if reader.has_error_within("sip.listen") || listen.iter().any(|l| reaches(l, me)) {
        return;
    }
    let unspecified = match me.addr.ip() {
        IpAddr::V4(_) => "0.0.0.0".to_owned(),
        IpAddr::V6(_) => "[::]".to_owned(),
    };
    let message = format!(
        "the topology reaches {:?} at {}, but no listener is {}:{} or {}:{unspecified}:{}; \
         peers could not reach this server",
        me.name,
        me.uri,
        me.transport,
        me.addr,
        me.transport,
        me.addr.port()
    );
    report(reader, document, "sip", "listen", message);
}

/// Whether a peer connecting to `server`'s URI lands on `listener`.
fn reaches(listener: &ListenAddr, server: &TopologyServer) -> bool {
    let (ip, target) = (listener.addr.ip(), server.addr.ip());
    listener.transport == server.transport
        && listener.addr.port() == server.addr.port()
        && (ip == target || (ip.is_unspecified() && ip.is_ipv4() == target.is_ipv4()))
}

/// Records an error at `section.key`, placed at the key's value when the
/// profile states it, unplaced when the key was left at its default.
fn report(
    reader: &mut Reader<'_>,
    document: &DeTable<'_>,
    section: &str,
    key: &str,
    message: String,
) {
    let dotted = format!("{section}.{key}");
    match value_span(document, section, key) {
        Some(span) => reader.error(&dotted, span, message),
        None => reader.error_unplaced(&dotted, message),
    }
}

/// Where `[section] key = ...` has its value, if it is written.
fn value_span(document: &DeTable<'_>, section: &str, key: &str) -> Option<Range<usize>> {
    let (_, table) = document.iter().find(|(k, _)| k.get_ref() == section)?;
    let DeValue::Table(table) = table.get_ref() else {
        return None;
    };
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v.span())
}

//! The mesh topology file (TOML) through `Topology::parse`.
//!
//! The input is the file's text. Checked beyond "no panic", for every
//! topology that loads: server names and IP addresses are unique, and no
//! mailbox has two homes: every mailbox a pattern is built around (an
//! exact mailbox, a prefix and its extensions, a range's bounds and where
//! a prefix or another range meets it) and every mailbox of up to three
//! digits is homed at one server at most, the one `home_of` names; and
//! `by_ip` finds each server at its own address. For every file refused,
//! each error's position lies within the text.

#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vmesh::config::{MailboxPattern, Topology};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A relative path: `[tls] ca` is resolved against it, not read.
    match Topology::parse(text, Path::new("mesh/topology.toml")) {
        Ok(topology) => check(&topology),
        Err(errors) => {
            let lines = text.split('\n').count();
            for e in &errors.0 {
                if let Some(p) = e.position {
                    assert!(p.line >= 1 && p.line <= lines, "{e}");
                }
            }
        }
    }
});

fn check(topology: &Topology) {
    let mut names = HashSet::new();
    let mut ips = HashSet::new();
    for s in &topology.servers {
        assert!(
            names.insert(s.name.as_str()),
            "two servers named {}",
            s.name
        );
        assert!(
            ips.insert(s.addr.ip().to_canonical()),
            "two servers at {}",
            s.addr
        );
        assert_eq!(topology.by_ip(s.addr.ip()).map(|f| &f.name), Some(&s.name));
    }
    let patterns: Vec<&MailboxPattern> = topology
        .servers
        .iter()
        .flat_map(|s| s.mailboxes.patterns())
        .collect();
    let mut candidates: Vec<String> = Vec::new();
    for p in &patterns {
        match p {
            MailboxPattern::Any => {}
            MailboxPattern::Exact(m) => candidates.push(m.clone()),
            MailboxPattern::Prefix(p) => {
                candidates.extend([p.clone(), format!("{p}0"), format!("{p}9")]);
                for q in &patterns {
                    if let MailboxPattern::Range { first, last } = q {
                        if p.len() <= first.len() {
                            let low = format!("{p:0<width$}", width = first.len());
                            let high = format!("{p:9<width$}", width = first.len());
                            candidates.push(low.max(first.clone()));
                            candidates.push(high.min(last.clone()));
                        }
                    }
                }
            }
            MailboxPattern::Range { first, last } => {
                candidates.extend([first.clone(), last.clone()]);
            }
        }
    }
    for digits in 1..=3u32 {
        for n in 0..10u32.pow(digits) {
            candidates.push(format!("{n:0width$}", width = digits as usize));
        }
    }
    for mailbox in candidates
        .iter()
        .filter(|m| vmesh::config::is_valid_mailbox(m))
    {
        let homes: Vec<&str> = topology
            .servers
            .iter()
            .filter(|s| s.mailboxes.contains(mailbox))
            .map(|s| s.name.as_str())
            .collect();
        assert!(homes.len() <= 1, "mailbox {mailbox} has homes {homes:?}");
        assert_eq!(
            topology.home_of(mailbox).map(|s| s.name.as_str()),
            homes.first().copied()
        );
    }
}

//! `vmesh peers` and `vmesh queue`: the mesh as this server sees it.

use super::terminal::{escape, escape_or};
use super::{CliError, QueueCommand, StateArgs};
use crate::mesh::courier::now_ms;
use crate::store::{OutboxEntry, PeerRecord};

/// `vmesh peers [--json]`: each peer's health as last recorded.
pub fn peers(json: bool, state: &StateArgs) -> Result<(), CliError> {
    let store = super::open_store(&state.data_dir()?)?;
    let peers = store.peers()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&peers)?);
    } else {
        print_peers(&peers);
    }
    Ok(())
}

/// `vmesh queue [--json]` and `vmesh queue retry ID`.
pub fn queue(command: Option<QueueCommand>, json: bool, state: &StateArgs) -> Result<(), CliError> {
    let store = super::open_store(&state.data_dir()?)?;
    match command {
        Some(QueueCommand::Retry { id }) => {
            let entry = store.outbox_retry(&id, now_ms())?;
            eprintln!(
                "{} (mailbox {}) will be sent to {} at once",
                escape(&entry.id),
                escape(&entry.mailbox),
                escape(&entry.peer)
            );
        }
        None => {
            let entries = store.outbox_list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                print_queue(&entries);
            }
        }
    }
    Ok(())
}

fn print_peers(peers: &[PeerRecord]) {
    println!(
        "{:<16}  {:<8}  {:<25}  {:>8}  {:>8}  LAST ERROR",
        "PEER", "STATE", "LAST SEEN (UTC)", "RTT ms", "FAILURES"
    );
    for p in peers {
        println!(
            "{:<16}  {:<8}  {:<25}  {:>8}  {:>8}  {}",
            escape(&p.name),
            escape(&p.state),
            escape_or(p.last_seen.as_deref(), "never"),
            p.rtt_ms
                .map(|r| format!("{r:.1}"))
                .unwrap_or_else(|| "-".into()),
            p.failures,
            escape_or(p.last_error.as_deref(), "-")
        );
    }
    println!("{} peer(s)", peers.len());
}

fn print_queue(entries: &[OutboxEntry]) {
    println!(
        "{:<36}  {:<8}  {:<16}  {:<8}  {:>8}  {:<25}  LAST ERROR",
        "ID", "MAILBOX", "PEER", "STATE", "ATTEMPTS", "NEXT ATTEMPT (UTC)"
    );
    for e in entries {
        println!(
            "{:<36}  {:<8}  {:<16}  {:<8}  {:>8}  {:<25}  {}",
            escape(&e.id),
            escape(&e.mailbox),
            escape(&e.peer),
            escape(&e.state),
            e.attempts,
            escape_or(e.next_attempt_at.as_deref(), "-"),
            escape_or(e.last_error.as_deref(), "-")
        );
    }
    println!("{} message(s) waiting or failed", entries.len());
}

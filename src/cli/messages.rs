//! `vmesh messages list|show|export|delete`.

use super::{CliError, MessagesCommand};
use crate::store::{Message, Store};

pub fn run(command: MessagesCommand) -> Result<(), CliError> {
    match command {
        MessagesCommand::List {
            mailbox,
            json,
            state,
        } => {
            let store = super::open_store(&state.data_dir()?)?;
            let list = store.list(mailbox.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&list);
            }
        }
        MessagesCommand::Show { id, json, state } => {
            let store = super::open_store(&state.data_dir()?)?;
            let m = store.get(&id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                print_one(&m, &store);
            }
        }
        MessagesCommand::Export { id, out, state } => {
            let store = super::open_store(&state.data_dir()?)?;
            let m = store.get(&id)?;
            let from = store.audio_path(&m);
            std::fs::copy(&from, &out).map_err(|source| CliError::Io {
                path: from.clone(),
                source,
            })?;
            eprintln!(
                "exported {} ({} ms) to {}",
                m.id,
                m.duration_ms,
                out.display()
            );
        }
        MessagesCommand::Delete { id, state } => {
            let store = super::open_store(&state.data_dir()?)?;
            let m = store.delete(&id)?;
            eprintln!("deleted {} (mailbox {})", m.id, m.mailbox);
        }
    }
    Ok(())
}

fn print_table(list: &[Message]) {
    println!(
        "{:<36}  {:<8}  {:<20}  {:>8}  {:<13}  {:<8}  {:<12}  {:<10}  CALLER",
        "ID", "MAILBOX", "RECEIVED (UTC)", "SECONDS", "REASON", "STATE", "ORIGIN", "DELIVERY"
    );
    for m in list {
        let caller = match &m.caller_name {
            Some(name) => format!("\"{name}\" <{}>", m.caller),
            None => m.caller.clone(),
        };
        let state = if m.partial {
            format!("{}*", m.state)
        } else {
            m.state.clone()
        };
        println!(
            "{:<36}  {:<8}  {:<20}  {:>8.1}  {:<13}  {:<8}  {:<12}  {:<10}  {}",
            m.id,
            m.mailbox,
            m.received_at
                .get(..19)
                .unwrap_or(&m.received_at)
                .replace('T', " "),
            m.duration_ms as f64 / 1000.0,
            m.reason.as_deref().unwrap_or("-"),
            state,
            m.origin,
            m.delivery,
            caller
        );
    }
    if list.iter().any(|m| m.partial) {
        println!("(* partial: the recording was cut by a crash and recovered)");
    }
    println!("{} message(s)", list.len());
}

fn print_one(m: &Message, store: &Store) {
    let rows = [
        ("id", m.id.clone()),
        ("mailbox", m.mailbox.clone()),
        ("caller", m.caller.clone()),
        ("caller name", m.caller_name.clone().unwrap_or_default()),
        ("called", m.called.clone()),
        ("reason", m.reason.clone().unwrap_or_default()),
        ("received at", m.received_at.clone()),
        (
            "duration",
            format!("{:.2} s", m.duration_ms as f64 / 1000.0),
        ),
        ("codec", m.codec.clone()),
        ("format", format!("{} {} Hz", m.format, m.sample_rate)),
        ("size", format!("{} bytes", m.size_bytes)),
        ("sha256", m.sha256.clone()),
        ("state", m.state.clone()),
        ("partial", m.partial.to_string()),
        ("origin", m.origin.clone()),
        ("home", m.home.clone().unwrap_or_default()),
        ("delivery", m.delivery.clone()),
        ("call id", m.call_id.clone()),
        ("file", store.audio_path(m).display().to_string()),
    ];
    for (k, v) in rows {
        println!("{k:<12} {v}");
    }
}

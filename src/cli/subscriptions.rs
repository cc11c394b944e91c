//! `vmesh subscriptions`: the message-waiting subscriptions this server
//! keeps (RFC 6665 dialogs for the `message-summary` event), which phone or
//! PBX asked for which mailbox and until when.

use serde::Serialize;

use super::{CliError, StateArgs};
use crate::store::{format_unix_ms, SubscriptionRecord};

/// One subscription as `--json` prints it.
#[derive(Debug, Serialize)]
struct Shown {
    id: String,
    mailbox: String,
    subscriber: String,
    contact: String,
    transport: String,
    expires_at: Option<String>,
    call_id: String,
}

impl From<SubscriptionRecord> for Shown {
    fn from(r: SubscriptionRecord) -> Shown {
        Shown {
            id: r.id,
            mailbox: r.mailbox,
            subscriber: r.remote_uri,
            contact: r.remote_target,
            transport: r.transport,
            expires_at: format_unix_ms(r.expires_ms),
            call_id: r.call_id,
        }
    }
}

/// `vmesh subscriptions [--json]`.
pub fn run(json: bool, state: &StateArgs) -> Result<(), CliError> {
    let store = super::open_store(&state.data_dir()?)?;
    let shown: Vec<Shown> = store
        .subscriptions()?
        .into_iter()
        .map(Shown::from)
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    println!(
        "{:<8}  {:<25}  {:<40}  {:<5}  SUBSCRIBER",
        "MAILBOX", "EXPIRES (UTC)", "CONTACT", "VIA"
    );
    for s in &shown {
        println!(
            "{:<8}  {:<25}  {:<40}  {:<5}  {}",
            s.mailbox,
            s.expires_at.as_deref().unwrap_or("-"),
            s.contact,
            s.transport,
            s.subscriber
        );
    }
    println!("{} subscription(s)", shown.len());
    Ok(())
}

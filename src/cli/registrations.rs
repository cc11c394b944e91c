//! `vmesh registrations`: the registrations with PBXs as the server last
//! recorded them (`registrations.json` in the data directory).

use super::{CliError, StateArgs};
use crate::register::status::{self, seconds_until, RegistrationStatus};

/// `vmesh registrations [--json]`.
pub fn run(json: bool, state: &StateArgs) -> Result<(), CliError> {
    let dir = state.data_dir()?;
    if !dir.is_dir() {
        return Err(CliError::NoData(dir));
    }
    let wall = time::OffsetDateTime::now_utc();
    let statuses: Vec<RegistrationStatus> = status::read(&dir)?
        .into_iter()
        .map(|s| s.as_seen_at(wall))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        print_table(&statuses, wall);
    }
    Ok(())
}

fn print_table(statuses: &[RegistrationStatus], wall: time::OffsetDateTime) {
    if statuses.is_empty() {
        println!("no registrations (no [[register]] entries, or no server has run on this data)");
        return;
    }
    let relative = |at: &Option<String>| match at.as_deref().and_then(|t| seconds_until(t, wall)) {
        Some(s) if s >= 0 => format!("in {s} s"),
        Some(s) => format!("{} s ago", -s),
        None => "-".to_owned(),
    };
    println!(
        "{:<16}  {:<32}  {:<13}  {:<18}  {:<13}  {:>4}  LAST ERROR",
        "USER", "REGISTRAR", "STATE", "EXPIRES", "NEXT ATTEMPT", "LAST"
    );
    for s in statuses {
        let expires = match s.expires_s {
            Some(granted) => format!("{} ({granted} s)", relative(&s.expires_at)),
            None => "-".to_owned(),
        };
        println!(
            "{:<16}  {:<32}  {:<13}  {:<18}  {:<13}  {:>4}  {}",
            s.user,
            s.registrar,
            s.state,
            expires,
            relative(&s.next_attempt_at),
            s.last_status.map_or("-".to_owned(), |c| c.to_string()),
            s.last_error.as_deref().unwrap_or("-"),
        );
    }
    println!("{} registration(s)", statuses.len());
}

//! `vmesh mailbox greeting|greetings`: a mailbox's greetings; `add`,
//! `set-pin` and `list` (its owner's access by phone) are in `owner.rs`.
//!
//! Greetings live in the data directory (see
//! [`crate::voicemail::greetings`]), so these commands take `--profile FILE`
//! or `--data DIR` like the others. The directory must exist: a typo in
//! `--data` is reported rather than creating a stray tree that the server
//! never reads.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::terminal::escape;
use super::{CliError, StateArgs};
use crate::voicemail::greetings::{valid_mailbox, GreetingInfo, GreetingKind, Greetings};

/// `vmesh mailbox ...`
#[derive(Debug, Subcommand)]
pub enum MailboxCommand {
    /// Set a mailbox's greeting from a WAV file (any rate, mono or stereo,
    /// 16-bit or float), or remove it with --clear.
    Greeting {
        /// Mailbox number (1 to 32 digits).
        mailbox: String,
        /// Which greeting: temporary overrides the others while set; busy
        /// plays for user-busy diversions; unavailable otherwise.
        #[arg(long, value_parser = parse_kind, value_name = "unavailable|busy|temporary")]
        kind: GreetingKind,
        /// The WAV file to use.
        #[arg(value_name = "FILE.wav", required_unless_present = "clear")]
        file: Option<PathBuf>,
        /// Remove this greeting instead (the default greeting plays again).
        #[arg(long, conflicts_with = "file")]
        clear: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List a mailbox's greetings.
    Greetings {
        /// Mailbox number (1 to 32 digits).
        mailbox: String,
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Add a mailbox its owner can log into by phone.
    Add {
        /// Mailbox number (1 to 32 digits).
        mailbox: String,
        /// Give it a PIN now: one line on standard input when that is not a
        /// terminal, else asked twice (never on the command line).
        #[arg(long)]
        pin: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Set a mailbox's PIN (4 to 12 digits): one line on standard input
    /// when that is not a terminal, else asked twice.
    SetPin {
        /// Mailbox number.
        mailbox: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List the mailboxes owners can log into, and whether each has a PIN.
    List {
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// Runs one `vmesh mailbox` command.
pub fn run(command: MailboxCommand) -> Result<(), CliError> {
    match command {
        MailboxCommand::Greeting {
            mailbox,
            kind,
            file,
            clear,
            state,
        } => {
            valid_mailbox(&mailbox)?;
            let greetings = Greetings::new(existing_data_dir(&state)?);
            if clear {
                if greetings.clear(&mailbox, kind)? {
                    println!("cleared the {kind} greeting of mailbox {mailbox}");
                } else {
                    println!("mailbox {mailbox} had no {kind} greeting");
                }
                return Ok(());
            }
            // clap requires FILE unless --clear, so this is always present.
            let Some(file) = file else {
                return Ok(());
            };
            let info = greetings.set(&mailbox, kind, &file)?;
            println!(
                "stored the {} greeting of mailbox {}: {:.2} s, {} Hz mono 16-bit, {} bytes, {}",
                info.kind,
                info.mailbox,
                info.duration_ms as f64 / 1000.0,
                info.sample_rate,
                info.size_bytes,
                escape(&info.path.display().to_string())
            );
        }
        MailboxCommand::Greetings {
            mailbox,
            json,
            state,
        } => {
            valid_mailbox(&mailbox)?;
            let greetings = Greetings::new(existing_data_dir(&state)?);
            let list = greetings.list(&mailbox)?;
            if json {
                let list: Vec<_> = list.iter().map(to_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&mailbox, &list);
            }
        }
        MailboxCommand::Add {
            mailbox,
            pin,
            state,
        } => super::owner::add(&mailbox, pin, &state)?,
        MailboxCommand::SetPin { mailbox, state } => super::owner::set_pin(&mailbox, &state)?,
        MailboxCommand::List { json, state } => super::owner::list(json, &state)?,
    }
    Ok(())
}

/// Parses `--kind` with the greetings module's own names.
fn parse_kind(s: &str) -> Result<GreetingKind, String> {
    s.parse()
        .map_err(|e: crate::voicemail::greetings::GreetingError| e.to_string())
}

/// The data directory the arguments name, which must exist.
fn existing_data_dir(state: &StateArgs) -> Result<PathBuf, CliError> {
    let dir = state.data_dir()?;
    if !Path::new(&dir).is_dir() {
        return Err(CliError::NoData(dir));
    }
    Ok(dir)
}

/// One greeting as a JSON object (`greetings --json`).
fn to_json(info: &GreetingInfo) -> serde_json::Value {
    serde_json::json!({
        "mailbox": info.mailbox,
        "kind": info.kind.name(),
        "duration_ms": info.duration_ms,
        "sample_rate": info.sample_rate,
        "size_bytes": info.size_bytes,
        "path": info.path.display().to_string(),
    })
}

/// The human listing: one row per greeting, or a note that the default plays.
fn print_table(mailbox: &str, list: &[GreetingInfo]) {
    if list.is_empty() {
        println!("mailbox {mailbox} has no greetings of its own: callers hear the default");
        return;
    }
    println!("{:<12}  {:>8}  {:>6}  FILE", "KIND", "SECONDS", "RATE");
    for g in list {
        println!(
            "{:<12}  {:>8.2}  {:>6}  {}",
            g.kind.name(),
            g.duration_ms as f64 / 1000.0,
            g.sample_rate,
            escape(&g.path.display().to_string())
        );
    }
    println!("{} greeting(s)", list.len());
}

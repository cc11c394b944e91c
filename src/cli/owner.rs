//! `vmesh mailbox add|set-pin|list`: the mailboxes owners log into by
//! phone, and their PINs.
//!
//! A PIN never comes from the command line, where `ps` and shell history
//! would show it: it is read as one line from standard input when that is
//! not a terminal (`echo 2580 | vmesh mailbox set-pin 1001`, scripts), and
//! otherwise asked for twice without echo (rpassword, from the terminal).
//! It must be 4 to 12 digits and not trivial ([`check_new_pin`]); it is
//! stored only as an argon2id hash ([`crate::retrieval::pin`]).

use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;

use super::{CliError, StateArgs};
use crate::retrieval::pin::{self, check_new_pin, HashError, PinRejection};
use crate::store::{MailboxRecord, Store};
use crate::voicemail::greetings::valid_mailbox;

/// Why a PIN could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PinInputError {
    /// The PIN breaks a rule.
    #[error("refusing the PIN for mailbox {mailbox}: {reason}")]
    Refused {
        /// The mailbox.
        mailbox: String,
        /// The rule.
        reason: PinRejection,
    },
    /// The two entries at the terminal differ.
    #[error("the two PINs typed differ; nothing was changed")]
    Mismatch,
    /// Standard input ended before a line.
    #[error("no PIN on standard input (expected one line of 4 to 12 digits)")]
    Missing,
    /// Reading the PIN failed.
    #[error("cannot read the PIN: {0}")]
    Read(io::Error),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Adds a mailbox, with a PIN when `with_pin`.
pub fn add(mailbox: &str, with_pin: bool, state: &StateArgs) -> Result<(), CliError> {
    valid_mailbox(mailbox)?;
    let store = open_or_create(state)?;
    if store.mailbox(mailbox)?.is_some() {
        // Before asking for a PIN that would be thrown away.
        return Err(crate::store::StoreError::MailboxExists {
            mailbox: mailbox.to_owned(),
        }
        .into());
    }
    let hash = if with_pin {
        Some(pin::hash(&read_new_pin(mailbox)?).map_err(PinInputError::from)?)
    } else {
        None
    };
    let record = store.add_mailbox(mailbox, hash.as_deref())?;
    if record.has_pin {
        println!("added mailbox {mailbox} with a PIN: its owner can log in by phone");
    } else {
        println!(
            "added mailbox {mailbox} without a PIN: set one with `vmesh mailbox set-pin {mailbox}` \
             before its owner can log in by phone"
        );
    }
    Ok(())
}

/// Sets (or replaces) a mailbox's PIN.
pub fn set_pin(mailbox: &str, state: &StateArgs) -> Result<(), CliError> {
    valid_mailbox(mailbox)?;
    let store = open_or_create(state)?;
    if store.mailbox(mailbox)?.is_none() {
        return Err(crate::store::StoreError::UnknownMailbox {
            mailbox: mailbox.to_owned(),
        }
        .into());
    }
    let hash = pin::hash(&read_new_pin(mailbox)?).map_err(PinInputError::from)?;
    store.set_pin_hash(mailbox, &hash)?;
    println!("set the PIN of mailbox {mailbox}");
    Ok(())
}

/// Lists the mailboxes (never their PIN hashes).
pub fn list(json: bool, state: &StateArgs) -> Result<(), CliError> {
    let store = open_or_create(state)?;
    let list = store.mailboxes()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print_table(&list);
    }
    Ok(())
}

/// The store of an existing data directory (the index is created if the
/// server has not run there yet; a mistyped directory is an error).
fn open_or_create(state: &StateArgs) -> Result<Store, CliError> {
    let dir: PathBuf = state.data_dir()?;
    if !dir.is_dir() {
        return Err(CliError::NoData(dir));
    }
    Ok(Store::open(&dir)?)
}

/// Reads a new PIN for `mailbox` and checks it.
fn read_new_pin(mailbox: &str) -> Result<pin::Pin, PinInputError> {
    let text = if io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New PIN for mailbox {mailbox}: "))
            .map_err(PinInputError::Read)?;
        let again =
            rpassword::prompt_password("The same PIN again: ").map_err(PinInputError::Read)?;
        if first != again {
            return Err(PinInputError::Mismatch);
        }
        first
    } else {
        let mut line = String::new();
        let read = io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(PinInputError::Read)?;
        if read == 0 {
            return Err(PinInputError::Missing);
        }
        line
    };
    let text = text.trim_end_matches(['\r', '\n']);
    check_new_pin(text, mailbox).map_err(|reason| PinInputError::Refused {
        mailbox: mailbox.to_owned(),
        reason,
    })
}

/// The human listing.
fn print_table(list: &[MailboxRecord]) {
    if list.is_empty() {
        println!("no mailboxes: add one with `vmesh mailbox add M --pin`");
        return;
    }
    println!(
        "{:<12}  {:<3}  {:<24}  ADDED (UTC)",
        "MAILBOX", "PIN", "PIN SET (UTC)"
    );
    for m in list {
        println!(
            "{:<12}  {:<3}  {:<24}  {}",
            m.mailbox,
            if m.has_pin { "yes" } else { "no" },
            m.pin_set_at.as_deref().unwrap_or("-"),
            m.created_at
        );
    }
    println!("{} mailbox(es)", list.len());
}

//! Logging in: the mailbox (from the caller, or typed), then the PIN.
//!
//! `*97`-style pilots take the caller's own mailbox when it exists; `*98`
//! (and any caller without a mailbox) is asked "Please enter your mailbox
//! number, then the pound key". The PIN ends with `#` (or a pause). After
//! a wrong PIN the menu asks for the PIN again, not the mailbox; after
//! `login_attempts` wrong ones it says goodbye and hangs up. The menu does
//! not know which mailboxes exist or have PINs: an unknown mailbox, one
//! without a PIN and a wrong PIN all get the same "Login incorrect", so a
//! caller learns nothing about which mailboxes there are. A lockout
//! (too many failures from this address) ends the call at once.

use std::time::Instant;

use super::listen::sort_for_listening;
use super::prompt::{Entered, Entry};
use super::{Action, Folder, Input, MailboxContents, Menu, Owner, PinVerdict, Start, State};
use crate::config::PilotKind;
use crate::retrieval::clip::{Clip, Phrase};
use crate::retrieval::pin::Pin;
use crate::retrieval::sentence::message_counts;

impl Menu {
    /// The first prompt of the call.
    pub(super) fn begin(&mut self, start: Start) -> State {
        match (start.pilot, start.caller_mailbox) {
            (PilotKind::CallerMailbox, Some(mailbox)) => self.ask_pin_again(mailbox, 0, Vec::new()),
            _ => {
                State::AskMailbox(self.entry(Vec::new(), vec![Clip::Phrase(Phrase::EnterMailbox)]))
            }
        }
    }

    /// Waiting for the mailbox number.
    pub(super) fn ask_mailbox(&mut self, entry: Entry, input: Input, now: Instant) -> State {
        match self.await_entry(entry, input, now) {
            Entered::Complete(mailbox) => self.ask_pin_again(mailbox, 0, Vec::new()),
            // `*` starts the number over.
            Entered::Star => {
                State::AskMailbox(self.entry(Vec::new(), vec![Clip::Phrase(Phrase::EnterMailbox)]))
            }
            Entered::Waiting(entry) => State::AskMailbox(entry),
            Entered::Exhausted => self.leave(Vec::new(), now),
        }
    }

    /// Waiting for the PIN of `mailbox`.
    pub(super) fn ask_pin(
        &mut self,
        mailbox: String,
        entry: Entry,
        failures: u8,
        input: Input,
        now: Instant,
    ) -> State {
        match self.await_entry(entry, input, now) {
            Entered::Complete(digits) => match Pin::parse(&digits) {
                Ok(pin) => {
                    self.actions.push_back(Action::VerifyPin {
                        mailbox: mailbox.clone(),
                        pin,
                    });
                    State::Verifying { mailbox, failures }
                }
                // Not even the form of a PIN: wrong, without asking anyone.
                Err(_) => self.login_failed(mailbox, failures, now),
            },
            Entered::Star => self.ask_pin_again(mailbox, failures, Vec::new()),
            Entered::Waiting(entry) => State::AskPin {
                mailbox,
                entry,
                failures,
            },
            Entered::Exhausted => self.leave(Vec::new(), now),
        }
    }

    /// Waiting for the verdict on a PIN.
    pub(super) fn verifying(
        &mut self,
        mailbox: String,
        failures: u8,
        input: Input,
        now: Instant,
    ) -> State {
        match input {
            Input::Verdict(PinVerdict::Accepted) => {
                tracing::info!(mailbox, "owner logged in");
                self.actions.push_back(Action::LoadMailbox {
                    mailbox: mailbox.clone(),
                });
                State::Loading { mailbox }
            }
            Input::Verdict(PinVerdict::Rejected) => self.login_failed(mailbox, failures, now),
            Input::Verdict(PinVerdict::Locked) => {
                tracing::warn!(mailbox, "login refused: locked after too many failures");
                self.leave(vec![Clip::Phrase(Phrase::TooManyAttempts)], now)
            }
            // Keys typed while the PIN is checked are not for anything.
            _ => State::Verifying { mailbox, failures },
        }
    }

    /// Waiting for the mailbox's contents; then the counts and the main
    /// menu.
    pub(super) fn loading(&mut self, mailbox: String, input: Input, now: Instant) -> State {
        match input {
            Input::Loaded(contents) => {
                let owner = owner_of(mailbox, contents);
                let new = owner
                    .messages
                    .iter()
                    .filter(|m| m.folder == Folder::New)
                    .count();
                let old = owner.messages.len() - new;
                let mut counts = message_counts(
                    u32::try_from(new).unwrap_or(u32::MAX),
                    u32::try_from(old).unwrap_or(u32::MAX),
                );
                counts.push(Clip::Pause);
                self.go_to_main_menu(owner, counts)
            }
            Input::Unavailable => {
                tracing::warn!(mailbox, "mailbox contents unavailable; ending the call");
                self.leave(Vec::new(), now)
            }
            _ => State::Loading { mailbox },
        }
    }

    /// A wrong PIN: again, or goodbye after the last attempt.
    fn login_failed(&mut self, mailbox: String, failures: u8, now: Instant) -> State {
        let failures = failures.saturating_add(1);
        tracing::info!(mailbox, failures, "login incorrect");
        if failures >= self.config.login_attempts {
            return self.leave(vec![Clip::Phrase(Phrase::LoginIncorrect)], now);
        }
        self.ask_pin_again(
            mailbox,
            failures,
            vec![Clip::Phrase(Phrase::LoginIncorrect)],
        )
    }

    /// Says `before`, then asks for the PIN of `mailbox`.
    fn ask_pin_again(&mut self, mailbox: String, failures: u8, before: Vec<Clip>) -> State {
        let entry = self.entry(before, vec![Clip::Phrase(Phrase::EnterPin)]);
        State::AskPin {
            mailbox,
            entry,
            failures,
        }
    }
}

/// The owner's mailbox, its messages in listening order.
fn owner_of(mailbox: String, contents: MailboxContents) -> Owner {
    let mut messages = contents.messages;
    sort_for_listening(&mut messages);
    Owner {
        mailbox,
        messages,
        temporary_greeting: contents.temporary_greeting,
    }
}

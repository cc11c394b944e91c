//! Listening: each message after its envelope, and the keys that act on
//! it while or after it plays.
//!
//! | key | while the envelope or message plays | after the message |
//! |---|---|---|
//! | 3 | the envelope again | the envelope again |
//! | 4 | the previous message | the previous message |
//! | 5 | the message again | the message again |
//! | 6 | the next message | the next message |
//! | 7 | delete it, go on to the next | same |
//! | 9 | save it, go on to the next | same |
//! | `#` | skip to the end of the message | back to the main menu |
//! | `*` | help | help |
//!
//! A new message becomes old (heard) when it plays to its end, or when the
//! owner moves on with 6 or `#` after `heard_after` (5 s) of it has played,
//! as voicemail systems have always done: a glance at a message is not
//! listening to it. Other keys do not interrupt a message.

use std::time::Instant;

use super::prompt::{Awaited, Prompt};
use super::{
    logged_in, Action, Folder, Input, Menu, MessageSummary, Owner, PlaybackId, Screen, State,
};
use crate::retrieval::clip::{Clip, Phrase};
use crate::retrieval::sentence::{envelope, message_counts};

/// Where the current message is.
#[derive(Debug)]
pub(super) enum Listen {
    /// Its envelope plays (after any notice, "Message deleted."); the
    /// message follows when it ends.
    Envelope(PlaybackId),
    /// The message plays, since `started`.
    Message {
        playback: PlaybackId,
        started: Instant,
    },
    /// The message has ended (or was skipped): waiting for a key.
    After(Prompt),
}

impl Listen {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            Listen::After(prompt) => prompt.deadline(),
            Listen::Envelope(_) | Listen::Message { .. } => None,
        }
    }
}

/// Keys that act on the current message.
fn is_command(key: char) -> bool {
    matches!(key, '3' | '4' | '5' | '6' | '7' | '9' | '#' | '*')
}

impl Menu {
    /// 1 from the main menu: the first message, or "You have no messages".
    pub(super) fn start_listening(&mut self, mut owner: Owner) -> State {
        // Messages heard or saved since the last time have changed group.
        sort_for_listening(&mut owner.messages);
        if owner.messages.is_empty() {
            let mut before = message_counts(0, 0);
            before.push(Clip::Pause);
            return self.go_to_main_menu(owner, before);
        }
        self.present(owner, 0, Vec::new())
    }

    /// One input while listening to message `cursor`.
    pub(super) fn listening(
        &mut self,
        owner: Owner,
        cursor: usize,
        phase: Listen,
        input: Input,
        now: Instant,
    ) -> State {
        match phase {
            Listen::Envelope(playback) => match input {
                Input::Finished(id) if id == playback => self.play_message(owner, cursor, now),
                Input::Key(key) if is_command(key) => {
                    self.actions.push_back(Action::StopPlayback);
                    self.message_key(owner, cursor, key, None, now)
                }
                _ => logged_in_at(owner, cursor, Listen::Envelope(playback)),
            },
            Listen::Message { playback, started } => match input {
                Input::Finished(id) if id == playback => {
                    let mut owner = owner;
                    self.heard(&mut owner, cursor);
                    self.after_message(owner, cursor, Vec::new())
                }
                Input::Key(key) if is_command(key) => {
                    self.actions.push_back(Action::StopPlayback);
                    self.message_key(owner, cursor, key, Some(started), now)
                }
                _ => logged_in_at(owner, cursor, Listen::Message { playback, started }),
            },
            Listen::After(prompt) => match self.await_key(prompt, input, now) {
                Awaited::Key('#') => self.go_to_main_menu(owner, Vec::new()),
                Awaited::Key(key) if is_command(key) => {
                    self.message_key(owner, cursor, key, None, now)
                }
                Awaited::Key(_) => {
                    self.after_message(owner, cursor, vec![Clip::Phrase(Phrase::InvalidOption)])
                }
                Awaited::Waiting(prompt) => logged_in_at(owner, cursor, Listen::After(prompt)),
                Awaited::Exhausted => self.leave(Vec::new(), now),
            },
        }
    }

    /// A command key about message `cursor`; `playing_since` is when its
    /// audio started, if it was playing.
    fn message_key(
        &mut self,
        mut owner: Owner,
        cursor: usize,
        key: char,
        playing_since: Option<Instant>,
        now: Instant,
    ) -> State {
        let heard_enough = playing_since.is_some_and(|started| {
            now.saturating_duration_since(started) >= self.config.heard_after
        });
        match key {
            '3' => {
                let mut say = self.envelope_of(&owner, cursor);
                say.push(Clip::Pause);
                self.after_message(owner, cursor, say)
            }
            '4' if cursor == 0 => {
                self.after_message(owner, cursor, vec![Clip::Phrase(Phrase::NoPreviousMessage)])
            }
            '4' => self.present(owner, cursor - 1, Vec::new()),
            '5' => self.play_message(owner, cursor, now),
            '6' => {
                if heard_enough {
                    self.heard(&mut owner, cursor);
                }
                self.present(owner, cursor + 1, Vec::new())
            }
            '7' => {
                let message = owner.messages.remove(cursor);
                tracing::info!(
                    mailbox = owner.mailbox,
                    id = message.id,
                    "message deleted by its owner"
                );
                self.actions.push_back(Action::Delete { id: message.id });
                self.present(
                    owner,
                    cursor,
                    vec![Clip::Phrase(Phrase::MessageDeleted), Clip::Pause],
                )
            }
            '9' => {
                let message = &mut owner.messages[cursor];
                if message.folder != Folder::Saved {
                    message.folder = Folder::Saved;
                    self.actions.push_back(Action::Save {
                        id: message.id.clone(),
                    });
                }
                self.present(
                    owner,
                    cursor + 1,
                    vec![Clip::Phrase(Phrase::MessageSaved), Clip::Pause],
                )
            }
            '#' => {
                if heard_enough {
                    self.heard(&mut owner, cursor);
                }
                self.after_message(owner, cursor, Vec::new())
            }
            _ => {
                let prompt = self.prompt_with_repeat(
                    vec![Clip::Phrase(Phrase::MessageHelp)],
                    vec![Clip::Phrase(Phrase::MessageOptions)],
                );
                logged_in_at(owner, cursor, Listen::After(prompt))
            }
        }
    }

    /// Says `before`, then the envelope of message `cursor`, whose audio
    /// follows; past the last message, "There are no more messages" and
    /// the main menu.
    fn present(&mut self, owner: Owner, cursor: usize, mut before: Vec<Clip>) -> State {
        if cursor >= owner.messages.len() {
            before.extend([Clip::Phrase(Phrase::NoMoreMessages), Clip::Pause]);
            return self.go_to_main_menu(owner, before);
        }
        before.extend(self.envelope_of(&owner, cursor));
        before.push(Clip::Pause);
        let playback = self.play(before);
        logged_in_at(owner, cursor, Listen::Envelope(playback))
    }

    /// Plays message `cursor` from its start.
    fn play_message(&mut self, owner: Owner, cursor: usize, now: Instant) -> State {
        let playback = self.next_id();
        self.actions.push_back(Action::PlayMessage {
            playback,
            id: owner.messages[cursor].id.clone(),
        });
        logged_in_at(
            owner,
            cursor,
            Listen::Message {
                playback,
                started: now,
            },
        )
    }

    /// Says `before`, then the message options, and waits for a key.
    fn after_message(&mut self, owner: Owner, cursor: usize, before: Vec<Clip>) -> State {
        let prompt = self.prompt(before, vec![Clip::Phrase(Phrase::MessageOptions)]);
        logged_in_at(owner, cursor, Listen::After(prompt))
    }

    /// The envelope of message `cursor`, numbered from 1.
    fn envelope_of(&self, owner: &Owner, cursor: usize) -> Vec<Clip> {
        let message = &owner.messages[cursor];
        envelope(
            cursor + 1,
            message.received_at,
            &self.config.time_zone,
            message.caller.as_deref(),
        )
    }

    /// Message `cursor` was heard: a new one moves to the old folder.
    fn heard(&mut self, owner: &mut Owner, cursor: usize) {
        let message = &mut owner.messages[cursor];
        if message.folder == Folder::New {
            message.folder = Folder::Old;
            self.actions.push_back(Action::MarkHeard {
                id: message.id.clone(),
            });
        }
    }
}

/// Listening order: new messages oldest first, then old ones, then saved
/// ones, each oldest first.
pub(super) fn sort_for_listening(messages: &mut [MessageSummary]) {
    let rank = |folder: Folder| match folder {
        Folder::New => 0,
        Folder::Old => 1,
        Folder::Saved => 2,
    };
    messages.sort_by(|a, b| {
        (rank(a.folder), a.received_at, &a.id).cmp(&(rank(b.folder), b.received_at, &b.id))
    });
}

/// Listening to message `cursor`, in `phase`.
fn logged_in_at(owner: Owner, cursor: usize, phase: Listen) -> State {
    logged_in(owner, Screen::Listening { cursor, phase })
}

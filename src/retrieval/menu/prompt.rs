//! Waiting for the caller: a prompt that plays, then waits for a key,
//! re-prompts when none comes, and gives up after the allowed re-prompts;
//! and digit entry (a mailbox number, a PIN) on top of it.
//!
//! Barge-in lives here: a key that arrives while the prompt plays stops it
//! ([`Action::StopPlayback`]) and is handed to the screen as input, as
//! callers of every voicemail system expect.

use std::time::Instant;

use super::{Action, Input, Menu, PlaybackId};
use crate::retrieval::clip::Clip;

/// Longest number an entry keeps: a mailbox is at most 32 digits, a PIN
/// 12; anything longer is typed in vain and fails as it should.
pub(super) const MAX_ENTRY_DIGITS: usize = 32;

/// A prompt the menu is waiting on.
#[derive(Debug)]
pub(super) struct Prompt {
    /// What a re-prompt says.
    repeat: Vec<Clip>,
    status: Status,
    /// Re-prompts played so far.
    reprompts: u8,
}

/// Whether the prompt still plays.
#[derive(Debug)]
enum Status {
    Playing(PlaybackId),
    /// Finished (or interrupted); waiting for a key until the deadline.
    Waiting(Instant),
}

impl Prompt {
    /// When the wait ends, once the prompt has finished playing.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.status {
            Status::Playing(_) => None,
            Status::Waiting(deadline) => Some(deadline),
        }
    }
}

/// What waiting on a prompt gave.
#[derive(Debug)]
pub(super) enum Awaited {
    /// A key (the prompt was stopped if it was playing).
    Key(char),
    /// Nothing decisive: keep waiting on this prompt.
    Waiting(Prompt),
    /// Re-prompted as often as allowed, and still nothing.
    Exhausted,
}

/// A number being typed after a prompt.
#[derive(Debug)]
pub(super) struct Entry {
    prompt: Prompt,
    digits: String,
}

impl Entry {
    /// When the wait for the next digit (or the first) ends.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.prompt.deadline()
    }
}

/// What waiting on an entry gave.
#[derive(Debug)]
pub(super) enum Entered {
    /// `#`, or a pause after some digits: the number.
    Complete(String),
    /// `*`.
    Star,
    /// Keep waiting.
    Waiting(Entry),
    /// Nothing typed after every re-prompt.
    Exhausted,
}

impl Menu {
    /// Plays `before` then `repeat`, and waits; a re-prompt says `repeat`.
    pub(super) fn prompt(&mut self, mut before: Vec<Clip>, repeat: Vec<Clip>) -> Prompt {
        before.extend(repeat.iter().copied());
        self.prompt_with_repeat(before, repeat)
    }

    /// Plays `say` and waits; a re-prompt says `repeat` instead (a help
    /// text is followed by the short menu, not by the help again).
    pub(super) fn prompt_with_repeat(&mut self, say: Vec<Clip>, repeat: Vec<Clip>) -> Prompt {
        let playback = self.play(say);
        Prompt {
            repeat,
            status: Status::Playing(playback),
            reprompts: 0,
        }
    }

    /// Plays `before` then `repeat`, and waits for digits.
    pub(super) fn entry(&mut self, before: Vec<Clip>, repeat: Vec<Clip>) -> Entry {
        Entry {
            prompt: self.prompt(before, repeat),
            digits: String::new(),
        }
    }

    /// Feeds one input to a prompt.
    pub(super) fn await_key(&mut self, mut prompt: Prompt, input: Input, now: Instant) -> Awaited {
        match input {
            Input::Key(key) => {
                self.barge_in(&mut prompt, now);
                Awaited::Key(key)
            }
            Input::Finished(id) => {
                self.finished(&mut prompt, id, now);
                Awaited::Waiting(prompt)
            }
            Input::Timeout => match self.reprompt(prompt) {
                Some(prompt) => Awaited::Waiting(prompt),
                None => Awaited::Exhausted,
            },
            _ => Awaited::Waiting(prompt),
        }
    }

    /// Feeds one input to a digit entry.
    pub(super) fn await_entry(&mut self, mut entry: Entry, input: Input, now: Instant) -> Entered {
        match input {
            Input::Key('*') => {
                self.barge_in(&mut entry.prompt, now);
                Entered::Star
            }
            Input::Key('#') if entry.digits.is_empty() => {
                self.barge_in(&mut entry.prompt, now);
                self.reprompt_entry(entry)
            }
            Input::Key('#') => {
                self.barge_in(&mut entry.prompt, now);
                Entered::Complete(entry.digits)
            }
            Input::Key(digit) => {
                self.barge_in(&mut entry.prompt, now);
                if entry.digits.len() < MAX_ENTRY_DIGITS {
                    entry.digits.push(digit);
                }
                entry.prompt.status = Status::Waiting(now + self.config.digit_timeout);
                Entered::Waiting(entry)
            }
            Input::Timeout if !entry.digits.is_empty() => Entered::Complete(entry.digits),
            Input::Timeout => self.reprompt_entry(entry),
            Input::Finished(id) => {
                self.finished(&mut entry.prompt, id, now);
                Entered::Waiting(entry)
            }
            _ => Entered::Waiting(entry),
        }
    }

    /// The prompt's playback `id` ran to its end: the wait for a key
    /// starts. A report about another playback changes nothing.
    fn finished(&self, prompt: &mut Prompt, id: PlaybackId, now: Instant) {
        if matches!(prompt.status, Status::Playing(playing) if playing == id) {
            prompt.status = Status::Waiting(now + self.config.input_timeout);
        }
    }

    /// Stops the prompt if it is still playing; the wait starts now.
    fn barge_in(&mut self, prompt: &mut Prompt, now: Instant) {
        if let Status::Playing(_) = prompt.status {
            self.actions.push_back(Action::StopPlayback);
        }
        prompt.status = Status::Waiting(now + self.config.input_timeout);
    }

    /// Plays the prompt again, or `None` when it has been repeated enough.
    fn reprompt(&mut self, prompt: Prompt) -> Option<Prompt> {
        if prompt.reprompts >= self.config.reprompts {
            return None;
        }
        let playback = self.play(prompt.repeat.clone());
        Some(Prompt {
            repeat: prompt.repeat,
            status: Status::Playing(playback),
            reprompts: prompt.reprompts + 1,
        })
    }

    fn reprompt_entry(&mut self, entry: Entry) -> Entered {
        match self.reprompt(entry.prompt) {
            Some(prompt) => Entered::Waiting(Entry {
                prompt,
                digits: String::new(),
            }),
            None => Entered::Exhausted,
        }
    }
}

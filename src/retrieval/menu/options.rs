//! Mailbox options: recording greetings and changing the PIN.
//!
//! 1 records the unavailable greeting, 2 the busy one, 4 the temporary one
//! (when one is set: "press 1 to remove it, or 2 to record a new one"), 5
//! changes the PIN, `*` (or `#`) returns to the main menu.
//!
//! A greeting is recorded into a temporary file after the tone, until `#`
//! (any key), silence or `max_greeting`; it is played back and kept only
//! when the owner presses 1 ("press 1 to accept this greeting, 2 to record
//! it again, or star to cancel"). A new PIN is typed twice and must pass
//! the same rules as the CLI's ([`check_new_pin`]).

use std::time::Instant;

use super::prompt::{Awaited, Entered, Entry, Prompt};
use super::{logged_in, Action, GreetingKind, Input, Menu, Owner, PlaybackId, Screen, State};
use crate::retrieval::clip::{Clip, Phrase};
use crate::retrieval::pin::{check_new_pin, Pin};

/// Where a greeting recording is.
#[derive(Debug)]
pub(super) enum GreetingStep {
    /// "Record your ... greeting after the tone."
    Instructions(PlaybackId),
    /// Recording, until a key or the deadline.
    Recording { deadline: Instant },
    /// Asked to stop; waiting for the recording's end.
    Stopping,
    /// The recording plays back.
    Playback(PlaybackId),
    /// "Press 1 to accept, 2 to record again, star to cancel."
    Review(Prompt),
}

impl GreetingStep {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            GreetingStep::Recording { deadline } => Some(*deadline),
            GreetingStep::Review(prompt) => prompt.deadline(),
            GreetingStep::Instructions(_) | GreetingStep::Stopping | GreetingStep::Playback(_) => {
                None
            }
        }
    }

    /// True while the media path records.
    pub(super) fn is_recording(&self) -> bool {
        matches!(self, GreetingStep::Recording { .. })
    }

    /// True once a recording exists (or is being made) that is not
    /// accepted: a hang-up must discard it.
    pub(super) fn holds_recording(&self) -> bool {
        !matches!(self, GreetingStep::Instructions(_))
    }
}

/// Where choosing a new PIN is.
#[derive(Debug)]
pub(super) enum PinStep {
    /// "Please enter your new PIN."
    First(Entry),
    /// "Please enter your new PIN again."
    Confirm { first: Pin, entry: Entry },
    /// Waiting for [`super::Event::PinSaved`].
    Saving,
}

impl PinStep {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            PinStep::First(entry) | PinStep::Confirm { entry, .. } => entry.deadline(),
            PinStep::Saving => None,
        }
    }
}

impl Menu {
    /// The options menu.
    pub(super) fn options(
        &mut self,
        owner: Owner,
        prompt: Prompt,
        input: Input,
        now: Instant,
    ) -> State {
        match self.await_key(prompt, input, now) {
            Awaited::Key('1') => self.instruct(owner, GreetingKind::Unavailable, Vec::new()),
            Awaited::Key('2') => self.instruct(owner, GreetingKind::Busy, Vec::new()),
            Awaited::Key('4') if owner.temporary_greeting => {
                let prompt =
                    self.prompt(Vec::new(), vec![Clip::Phrase(Phrase::TemporaryGreetingOn)]);
                logged_in(owner, Screen::Temporary(prompt))
            }
            Awaited::Key('4') => self.instruct(owner, GreetingKind::Temporary, Vec::new()),
            Awaited::Key('5') => self.new_pin_entry(owner, 0, Vec::new()),
            Awaited::Key('*' | '#') => self.go_to_main_menu(owner, Vec::new()),
            Awaited::Key(_) => self.go_to_options(owner, vec![Clip::Phrase(Phrase::InvalidOption)]),
            Awaited::Waiting(prompt) => logged_in(owner, Screen::Options(prompt)),
            Awaited::Exhausted => self.leave(Vec::new(), now),
        }
    }

    /// The temporary greeting is set: 1 removes it, 2 records a new one.
    pub(super) fn temporary(
        &mut self,
        mut owner: Owner,
        prompt: Prompt,
        input: Input,
        now: Instant,
    ) -> State {
        match self.await_key(prompt, input, now) {
            Awaited::Key('1') => {
                self.actions.push_back(Action::RemoveTemporaryGreeting {
                    mailbox: owner.mailbox.clone(),
                });
                owner.temporary_greeting = false;
                self.go_to_options(
                    owner,
                    vec![Clip::Phrase(Phrase::TemporaryGreetingRemoved), Clip::Pause],
                )
            }
            Awaited::Key('2') => self.instruct(owner, GreetingKind::Temporary, Vec::new()),
            Awaited::Key('*' | '#') => self.go_to_options(owner, Vec::new()),
            Awaited::Key(_) => {
                let prompt = self.prompt(
                    vec![Clip::Phrase(Phrase::InvalidOption)],
                    vec![Clip::Phrase(Phrase::TemporaryGreetingOn)],
                );
                logged_in(owner, Screen::Temporary(prompt))
            }
            Awaited::Waiting(prompt) => logged_in(owner, Screen::Temporary(prompt)),
            Awaited::Exhausted => self.leave(Vec::new(), now),
        }
    }

    /// One input while recording a greeting.
    pub(super) fn greeting(
        &mut self,
        owner: Owner,
        kind: GreetingKind,
        step: GreetingStep,
        input: Input,
        now: Instant,
    ) -> State {
        let at = |owner, step| logged_in(owner, Screen::Greeting { kind, step });
        match (step, input) {
            (GreetingStep::Instructions(id), Input::Finished(done)) if id == done => {
                self.start_recording(owner, kind, now)
            }
            (GreetingStep::Instructions(_), Input::Key('*')) => {
                self.actions.push_back(Action::StopPlayback);
                self.go_to_options(
                    owner,
                    vec![Clip::Phrase(Phrase::GreetingNotChanged), Clip::Pause],
                )
            }
            // Any other key skips the instructions.
            (GreetingStep::Instructions(_), Input::Key(_)) => {
                self.actions.push_back(Action::StopPlayback);
                self.start_recording(owner, kind, now)
            }
            (GreetingStep::Recording { .. }, Input::Key(_) | Input::Timeout) => {
                self.actions.push_back(Action::StopRecording);
                at(owner, GreetingStep::Stopping)
            }
            (GreetingStep::Recording { .. } | GreetingStep::Stopping, Input::Recorded(length)) => {
                if length < self.config.min_greeting {
                    self.discard(&owner, kind);
                    return self.instruct(
                        owner,
                        kind,
                        vec![Clip::Phrase(Phrase::RecordingTooShort)],
                    );
                }
                let playback = self.next_id();
                self.actions
                    .push_back(Action::PlayRecordedGreeting { playback, kind });
                at(owner, GreetingStep::Playback(playback))
            }
            (GreetingStep::Playback(id), Input::Finished(done)) if id == done => {
                let prompt = self.prompt(Vec::new(), vec![Clip::Phrase(Phrase::ReviewGreeting)]);
                at(owner, GreetingStep::Review(prompt))
            }
            (GreetingStep::Playback(_), Input::Key(key)) => {
                self.actions.push_back(Action::StopPlayback);
                self.review_key(owner, kind, key)
            }
            (GreetingStep::Review(prompt), input) => match self.await_key(prompt, input, now) {
                Awaited::Key(key) => self.review_key(owner, kind, key),
                Awaited::Waiting(prompt) => at(owner, GreetingStep::Review(prompt)),
                Awaited::Exhausted => {
                    self.discard(&owner, kind);
                    self.leave(Vec::new(), now)
                }
            },
            (step, _) => at(owner, step),
        }
    }

    /// A key after hearing the recorded greeting.
    fn review_key(&mut self, mut owner: Owner, kind: GreetingKind, key: char) -> State {
        match key {
            '1' => {
                tracing::info!(
                    mailbox = owner.mailbox,
                    kind = kind.name(),
                    "greeting recorded by phone"
                );
                self.actions.push_back(Action::AcceptGreeting {
                    mailbox: owner.mailbox.clone(),
                    kind,
                });
                if kind == GreetingKind::Temporary {
                    owner.temporary_greeting = true;
                }
                self.go_to_options(
                    owner,
                    vec![Clip::Phrase(Phrase::GreetingSaved), Clip::Pause],
                )
            }
            '2' => {
                self.discard(&owner, kind);
                self.instruct(owner, kind, Vec::new())
            }
            '*' => {
                self.discard(&owner, kind);
                self.go_to_options(
                    owner,
                    vec![Clip::Phrase(Phrase::GreetingNotChanged), Clip::Pause],
                )
            }
            _ => {
                let prompt = self.prompt(
                    vec![Clip::Phrase(Phrase::InvalidOption)],
                    vec![Clip::Phrase(Phrase::ReviewGreeting)],
                );
                logged_in(
                    owner,
                    Screen::Greeting {
                        kind,
                        step: GreetingStep::Review(prompt),
                    },
                )
            }
        }
    }

    /// Says `before`, then how to record the `kind` greeting.
    fn instruct(&mut self, owner: Owner, kind: GreetingKind, mut before: Vec<Clip>) -> State {
        before.push(Clip::Phrase(match kind {
            GreetingKind::Unavailable => Phrase::RecordUnavailable,
            GreetingKind::Busy => Phrase::RecordBusy,
            GreetingKind::Temporary => Phrase::RecordTemporary,
        }));
        let playback = self.play(before);
        logged_in(
            owner,
            Screen::Greeting {
                kind,
                step: GreetingStep::Instructions(playback),
            },
        )
    }

    fn start_recording(&mut self, owner: Owner, kind: GreetingKind, now: Instant) -> State {
        self.actions.push_back(Action::StartRecording {
            mailbox: owner.mailbox.clone(),
            kind,
        });
        let deadline = now + self.config.max_greeting;
        logged_in(
            owner,
            Screen::Greeting {
                kind,
                step: GreetingStep::Recording { deadline },
            },
        )
    }

    fn discard(&mut self, owner: &Owner, kind: GreetingKind) {
        self.actions.push_back(Action::DiscardGreeting {
            mailbox: owner.mailbox.clone(),
            kind,
        });
    }

    /// One input while choosing a new PIN.
    pub(super) fn new_pin(
        &mut self,
        owner: Owner,
        step: PinStep,
        failures: u8,
        input: Input,
        now: Instant,
    ) -> State {
        let at = |owner, step| logged_in(owner, Screen::NewPin { step, failures });
        match step {
            PinStep::First(entry) => match self.await_entry(entry, input, now) {
                Entered::Complete(digits) => match check_new_pin(&digits, &owner.mailbox) {
                    Ok(first) => {
                        let entry =
                            self.entry(Vec::new(), vec![Clip::Phrase(Phrase::ReenterNewPin)]);
                        at(owner, PinStep::Confirm { first, entry })
                    }
                    Err(_) => self.pin_refused(owner, failures, Phrase::PinRefused),
                },
                Entered::Star => self.go_to_options(
                    owner,
                    vec![Clip::Phrase(Phrase::PinNotChanged), Clip::Pause],
                ),
                Entered::Waiting(entry) => at(owner, PinStep::First(entry)),
                Entered::Exhausted => self.leave(Vec::new(), now),
            },
            PinStep::Confirm { first, entry } => match self.await_entry(entry, input, now) {
                Entered::Complete(digits) if digits == first.digits() => {
                    self.actions.push_back(Action::SetPin {
                        mailbox: owner.mailbox.clone(),
                        pin: first,
                    });
                    at(owner, PinStep::Saving)
                }
                Entered::Complete(_) => self.pin_refused(owner, failures, Phrase::PinsDiffer),
                Entered::Star => self.go_to_options(
                    owner,
                    vec![Clip::Phrase(Phrase::PinNotChanged), Clip::Pause],
                ),
                Entered::Waiting(entry) => at(owner, PinStep::Confirm { first, entry }),
                Entered::Exhausted => self.leave(Vec::new(), now),
            },
            PinStep::Saving => match input {
                Input::PinSaved(true) => {
                    tracing::info!(mailbox = owner.mailbox, "PIN changed by phone");
                    self.go_to_options(owner, vec![Clip::Phrase(Phrase::PinChanged), Clip::Pause])
                }
                Input::PinSaved(false) => self.go_to_options(
                    owner,
                    vec![Clip::Phrase(Phrase::PinNotChanged), Clip::Pause],
                ),
                _ => at(owner, PinStep::Saving),
            },
        }
    }

    /// A refused or mismatched new PIN: ask again, or give up after
    /// `new_pin_attempts`.
    fn pin_refused(&mut self, owner: Owner, failures: u8, why: Phrase) -> State {
        let failures = failures.saturating_add(1);
        let mut before = vec![Clip::Phrase(why), Clip::Pause];
        if failures >= self.config.new_pin_attempts {
            before.extend([Clip::Phrase(Phrase::PinNotChanged), Clip::Pause]);
            return self.go_to_options(owner, before);
        }
        self.new_pin_entry(owner, failures, before)
    }

    /// Says `before`, then asks for a new PIN.
    fn new_pin_entry(&mut self, owner: Owner, failures: u8, before: Vec<Clip>) -> State {
        let entry = self.entry(before, vec![Clip::Phrase(Phrase::EnterNewPin)]);
        logged_in(
            owner,
            Screen::NewPin {
                step: PinStep::First(entry),
                failures,
            },
        )
    }

    /// Says `before`, then the options menu, and waits there.
    fn go_to_options(&mut self, owner: Owner, before: Vec<Clip>) -> State {
        let prompt = self.prompt(before, vec![Clip::Phrase(Phrase::MailboxOptions)]);
        logged_in(owner, Screen::Options(prompt))
    }
}

//! The owner's menu: login, listening, mailbox options, as a sans-IO state
//! machine.
//!
//! The keys are the ones Asterisk users already know: after login the
//! counts ("You have 2 new and 1 old messages"), then 1 to listen (new
//! messages oldest first, then old ones, each after its envelope; 3
//! envelope, 4 previous, 5 repeat, 6 next, 7 delete, 9 save, `#` skip to
//! the end, `*` help) and 0 for mailbox options (1 unavailable greeting,
//! 2 busy, 4 temporary, 5 PIN). A digit pressed during a prompt interrupts
//! it and counts as input (barge-in); a prompt left unanswered is repeated
//! twice, then the menu says goodbye and hangs up.
//!
//! Shape (quinn-proto, str0m): [`Menu::new`] starts an answered call and
//! asks for its first prompt, [`Menu::handle`] takes an [`Event`] with the
//! time it happened, [`Menu::handle_timeout`] fires the deadline
//! [`Menu::poll_timeout`] announced, and [`Menu::poll_action`] yields the [`Action`]s to carry out, in order. The
//! menu never reads a clock, touches a socket or a file, or waits: PIN
//! checks, mailbox contents and recordings are asked for as actions and
//! come back as events. So every session is a deterministic test.
//!
//! Playback is identified: each [`Action::Play`], [`Action::PlayMessage`]
//! and [`Action::PlayRecordedGreeting`] carries a fresh [`PlaybackId`], and
//! [`Event::PlaybackFinished`] names the one that ran to its end. A new
//! playback replaces whatever is playing; one that was stopped or replaced
//! is never reported, and a late report of one is ignored, so a race
//! between a key press and the end of a prompt cannot be misread.
//!
//! Layout: `interface.rs` holds what goes in and out; this file the
//! dispatch; `prompt.rs` the waiting-for-a-key machinery (timeouts,
//! re-prompts, digit entry); `login.rs`, `listen.rs` and `options.rs` one
//! part of the menu each.

mod interface;
mod listen;
mod login;
mod options;
mod prompt;

use std::collections::VecDeque;
use std::mem;
use std::time::{Duration, Instant};

use super::clip::{Clip, Phrase};

pub use self::interface::{
    Action, Event, Folder, GreetingKind, MailboxContents, MenuConfig, MessageSummary, PinVerdict,
    PlaybackId, Start,
};

use self::listen::Listen;
use self::options::{GreetingStep, PinStep};
use self::prompt::{Awaited, Entry, Prompt};

/// The logged-in owner's mailbox, as the menu keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    mailbox: String,
    /// In listening order: new oldest first, then old, then saved.
    messages: Vec<MessageSummary>,
    temporary_greeting: bool,
}

/// Where the call is.
#[derive(Debug)]
enum State {
    /// Asking for the mailbox number.
    AskMailbox(Entry),
    /// Asking for the PIN of `mailbox`, after `failures` wrong ones.
    AskPin {
        mailbox: String,
        entry: Entry,
        failures: u8,
    },
    /// Waiting for [`Event::PinVerdict`].
    Verifying { mailbox: String, failures: u8 },
    /// Waiting for [`Event::MailboxLoaded`].
    Loading { mailbox: String },
    /// Logged in, on one screen.
    LoggedIn { owner: Owner, screen: Screen },
    /// Saying goodbye; hang up when it ends (or at the deadline, if its
    /// end is never reported).
    Leaving {
        playback: PlaybackId,
        deadline: Instant,
    },
    /// Over: nothing more happens.
    Ended,
}

/// The screens after login.
#[derive(Debug)]
enum Screen {
    /// 1 listen, 0 options, `*` help, `#` goodbye.
    Main(Prompt),
    /// Listening to the message at `cursor` of the owner's list.
    Listening { cursor: usize, phase: Listen },
    /// 1, 2, 4 greetings, 5 PIN, `*` back.
    Options(Prompt),
    /// The temporary greeting is set: 1 remove it, 2 record a new one.
    Temporary(Prompt),
    /// Recording a greeting.
    Greeting {
        kind: GreetingKind,
        step: GreetingStep,
    },
    /// Choosing a new PIN.
    NewPin { step: PinStep, failures: u8 },
}

/// The inputs the parts of the menu react to: the events, and the
/// deadline of the current state.
#[derive(Debug)]
enum Input {
    Key(char),
    Finished(PlaybackId),
    Recorded(Duration),
    Verdict(PinVerdict),
    Loaded(MailboxContents),
    Unavailable,
    PinSaved(bool),
    Timeout,
}

/// Longest a goodbye may take before the menu hangs up anyway.
const GOODBYE_LIMIT: Duration = Duration::from_secs(15);

/// One owner's call to their voicemail.
#[derive(Debug)]
pub struct Menu {
    config: MenuConfig,
    state: State,
    actions: VecDeque<Action>,
    next_playback: u64,
}

impl Menu {
    /// A call has been answered: the menu asks for the PIN (the caller's
    /// own mailbox, on a pilot that allows it) or for the mailbox number.
    pub fn new(config: MenuConfig, start: Start) -> Menu {
        let mut menu = Menu {
            config,
            state: State::Ended,
            actions: VecDeque::new(),
            next_playback: 0,
        };
        menu.state = menu.begin(start);
        menu
    }

    /// Takes an event that happened at `now`.
    pub fn handle(&mut self, event: Event, now: Instant) {
        let input = match event {
            Event::Digit(key) if matches!(key, '0'..='9' | '*' | '#') => Input::Key(key),
            Event::Digit(_) => return,
            Event::PlaybackFinished(id) => Input::Finished(id),
            Event::RecordingFinished { length } => Input::Recorded(length),
            Event::PinVerdict(verdict) => Input::Verdict(verdict),
            Event::MailboxLoaded(contents) => Input::Loaded(contents),
            Event::MailboxUnavailable => Input::Unavailable,
            Event::PinSaved(saved) => Input::PinSaved(saved),
            Event::HungUp => {
                let state = mem::replace(&mut self.state, State::Ended);
                self.hung_up(state);
                return;
            }
        };
        self.step(input, now);
    }

    /// Fires the deadline of [`Menu::poll_timeout`] if `now` has reached it.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.step(Input::Timeout, now);
        }
    }

    /// When [`Menu::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::AskMailbox(entry) | State::AskPin { entry, .. } => entry.deadline(),
            State::LoggedIn { screen, .. } => match screen {
                Screen::Main(p) | Screen::Options(p) | Screen::Temporary(p) => p.deadline(),
                Screen::Listening { phase, .. } => phase.deadline(),
                Screen::Greeting { step, .. } => step.deadline(),
                Screen::NewPin { step, .. } => step.deadline(),
            },
            State::Leaving { deadline, .. } => Some(*deadline),
            State::Verifying { .. } | State::Loading { .. } | State::Ended => None,
        }
    }

    /// The next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True once the call is over (hung up by either side).
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// The logged-in mailbox, for logs and for the call layer's span.
    pub fn mailbox(&self) -> Option<&str> {
        match &self.state {
            State::LoggedIn { owner, .. } => Some(&owner.mailbox),
            _ => None,
        }
    }

    /// Runs one input through the current state.
    fn step(&mut self, input: Input, now: Instant) {
        let state = mem::replace(&mut self.state, State::Ended);
        self.state = match state {
            State::AskMailbox(entry) => self.ask_mailbox(entry, input, now),
            State::AskPin {
                mailbox,
                entry,
                failures,
            } => self.ask_pin(mailbox, entry, failures, input, now),
            State::Verifying { mailbox, failures } => self.verifying(mailbox, failures, input, now),
            State::Loading { mailbox } => self.loading(mailbox, input, now),
            State::LoggedIn { owner, screen } => self.logged_in(owner, screen, input, now),
            State::Leaving { playback, deadline } => match input {
                Input::Finished(id) if id == playback => self.hang_up(),
                Input::Timeout => self.hang_up(),
                _ => State::Leaving { playback, deadline },
            },
            State::Ended => State::Ended,
        };
    }

    /// Dispatches to the screen's part of the menu.
    fn logged_in(&mut self, owner: Owner, screen: Screen, input: Input, now: Instant) -> State {
        match screen {
            Screen::Main(prompt) => self.main_menu(owner, prompt, input, now),
            Screen::Listening { cursor, phase } => self.listening(owner, cursor, phase, input, now),
            Screen::Options(prompt) => self.options(owner, prompt, input, now),
            Screen::Temporary(prompt) => self.temporary(owner, prompt, input, now),
            Screen::Greeting { kind, step } => self.greeting(owner, kind, step, input, now),
            Screen::NewPin { step, failures } => self.new_pin(owner, step, failures, input, now),
        }
    }

    /// The main menu: 1 listen, 0 options, `*` help, `#` goodbye.
    fn main_menu(&mut self, owner: Owner, prompt: Prompt, input: Input, now: Instant) -> State {
        match self.await_key(prompt, input, now) {
            Awaited::Key('1') => self.start_listening(owner),
            Awaited::Key('0') => {
                let prompt = self.prompt(Vec::new(), vec![Clip::Phrase(Phrase::MailboxOptions)]);
                logged_in(owner, Screen::Options(prompt))
            }
            Awaited::Key('*') => {
                let prompt = self.prompt_with_repeat(
                    vec![Clip::Phrase(Phrase::MainHelp)],
                    vec![Clip::Phrase(Phrase::MainMenu)],
                );
                logged_in(owner, Screen::Main(prompt))
            }
            Awaited::Key('#') | Awaited::Exhausted => self.leave(Vec::new(), now),
            Awaited::Key(_) => {
                self.go_to_main_menu(owner, vec![Clip::Phrase(Phrase::InvalidOption)])
            }
            Awaited::Waiting(prompt) => logged_in(owner, Screen::Main(prompt)),
        }
    }

    /// Plays `before`, then the main menu, and waits there.
    fn go_to_main_menu(&mut self, owner: Owner, before: Vec<Clip>) -> State {
        let prompt = self.prompt(before, vec![Clip::Phrase(Phrase::MainMenu)]);
        logged_in(owner, Screen::Main(prompt))
    }

    /// Says `before` and goodbye, then hangs up.
    fn leave(&mut self, mut before: Vec<Clip>, now: Instant) -> State {
        before.push(Clip::Phrase(Phrase::Goodbye));
        let playback = self.play(before);
        State::Leaving {
            playback,
            deadline: now + GOODBYE_LIMIT,
        }
    }

    fn hang_up(&mut self) -> State {
        self.actions.push_back(Action::HangUp);
        State::Ended
    }

    /// The caller left: clean up what only this call knew about.
    fn hung_up(&mut self, state: State) {
        if let State::LoggedIn {
            owner,
            screen: Screen::Greeting { kind, step },
        } = state
        {
            if step.is_recording() {
                self.actions.push_back(Action::StopRecording);
            }
            if step.holds_recording() {
                self.actions.push_back(Action::DiscardGreeting {
                    mailbox: owner.mailbox,
                    kind,
                });
            }
        }
    }

    /// Emits a playback of `clips`; returns its id.
    fn play(&mut self, clips: Vec<Clip>) -> PlaybackId {
        let playback = self.next_id();
        self.actions.push_back(Action::Play { playback, clips });
        playback
    }

    fn next_id(&mut self) -> PlaybackId {
        self.next_playback += 1;
        PlaybackId(self.next_playback)
    }
}

/// A logged-in state on `screen`.
fn logged_in(owner: Owner, screen: Screen) -> State {
    State::LoggedIn { owner, screen }
}

#[cfg(test)]
mod tests;

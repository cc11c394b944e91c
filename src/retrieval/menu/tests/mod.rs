//! Whole sessions through the menu, with injected time.
//!
//! [`Call`] plays the call layer: it records what the menu asks for, says
//! when the current playback ends, presses keys and moves the clock. What
//! the caller hears is checked as clip names, in order.

mod listen;
mod login;
mod options;
mod session;

use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::*;
use crate::config::PilotKind;
pub(super) use crate::retrieval::pin::Pin;

/// The PIN the tests' owner has.
pub(super) const PIN: &str = "4862";

/// A call in progress, as the call layer would drive it.
pub(super) struct Call {
    pub menu: Menu,
    pub now: Instant,
    /// The playback in progress, if any.
    pub playing: Option<PlaybackId>,
    /// Every action of the call so far.
    pub log: Vec<Action>,
}

impl Call {
    /// A call to a pilot of `pilot`'s kind from a caller whose mailbox is
    /// `caller_mailbox`.
    pub fn start(pilot: PilotKind, caller_mailbox: Option<&str>) -> (Call, Vec<Action>) {
        Call::with_config(MenuConfig::default(), pilot, caller_mailbox)
    }

    pub fn with_config(
        config: MenuConfig,
        pilot: PilotKind,
        caller_mailbox: Option<&str>,
    ) -> (Call, Vec<Action>) {
        let menu = Menu::new(
            config,
            Start {
                pilot,
                caller_mailbox: caller_mailbox.map(str::to_owned),
            },
        );
        let mut call = Call {
            menu,
            now: Instant::now(),
            playing: None,
            log: Vec::new(),
        };
        let actions = call.drain();
        (call, actions)
    }

    /// Logged in to mailbox 1001 holding `contents`; returns the actions
    /// after the mailbox was loaded (the counts and the main menu).
    pub fn logged_in(contents: MailboxContents) -> (Call, Vec<Action>) {
        let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
        call.finish();
        let actions = call.press(&format!("{PIN}#"));
        assert_eq!(
            actions,
            [Action::VerifyPin {
                mailbox: "1001".into(),
                pin: Pin::parse(PIN).unwrap()
            }]
        );
        let actions = call.event(Event::PinVerdict(PinVerdict::Accepted));
        assert_eq!(
            actions,
            [Action::LoadMailbox {
                mailbox: "1001".into()
            }]
        );
        let actions = call.event(Event::MailboxLoaded(contents));
        (call, actions)
    }

    /// Feeds an event now.
    pub fn event(&mut self, event: Event) -> Vec<Action> {
        self.menu.handle(event, self.now);
        self.drain()
    }

    /// Presses each key in turn, now.
    pub fn press(&mut self, keys: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.extend(self.event(Event::Digit(key)));
        }
        actions
    }

    /// The playback in progress runs to its end.
    pub fn finish(&mut self) -> Vec<Action> {
        let playback = self.playing.take().expect("something is playing");
        self.event(Event::PlaybackFinished(playback))
    }

    /// Moves the clock by `by`, firing every deadline on the way at its
    /// own instant.
    pub fn wait(&mut self, by: Duration) -> Vec<Action> {
        let end = self.now + by;
        let mut actions = Vec::new();
        while let Some(deadline) = self.menu.poll_timeout().filter(|d| *d <= end) {
            self.now = self.now.max(deadline);
            self.menu.handle_timeout(self.now);
            actions.extend(self.drain());
        }
        self.now = end;
        actions
    }

    /// The actions the menu asked for, keeping track of playback.
    fn drain(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(action) = self.menu.poll_action() {
            match &action {
                Action::Play { playback, clips } => {
                    assert!(!clips.is_empty(), "an empty playback");
                    self.playing = Some(*playback);
                }
                Action::PlayMessage { playback, .. }
                | Action::PlayRecordedGreeting { playback, .. } => self.playing = Some(*playback),
                Action::StopPlayback => {
                    assert!(self.playing.take().is_some(), "stopped nothing");
                }
                _ => {}
            }
            self.log.push(action.clone());
            actions.push(action);
        }
        actions
    }
}

/// What the caller hears from `actions`: each Play's clips by name (pauses
/// as ","), a message as `<message ID>`, a recorded greeting as
/// `<greeting KIND>`, joined by " | " between playbacks.
pub(super) fn heard(actions: &[Action]) -> String {
    let mut spoken = Vec::new();
    for action in actions {
        match action {
            Action::Play { clips, .. } => spoken.push(
                clips
                    .iter()
                    .map(|c| c.name().unwrap_or_else(|| ",".into()))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Action::PlayMessage { id, .. } => spoken.push(format!("<message {id}>")),
            Action::PlayRecordedGreeting { kind, .. } => {
                spoken.push(format!("<greeting {}>", kind.name()))
            }
            _ => {}
        }
    }
    spoken.join(" | ")
}

/// The actions that are not playback, for asserting on effects.
pub(super) fn effects(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| {
            !matches!(
                a,
                Action::Play { .. }
                    | Action::PlayMessage { .. }
                    | Action::PlayRecordedGreeting { .. }
                    | Action::StopPlayback
            )
        })
        .cloned()
        .collect()
}

/// A message received at `at` (RFC 3339) from `caller`.
pub(super) fn message(id: &str, folder: Folder, at: &str, caller: Option<&str>) -> MessageSummary {
    MessageSummary {
        id: id.to_owned(),
        folder,
        received_at: at.parse::<Timestamp>().unwrap(),
        caller: caller.map(str::to_owned),
    }
}

/// A mailbox with two new messages and one old one, given out of order:
/// `n1` (new, oldest), `n2` (new), `o1` (old), and one saved, `s1`.
pub(super) fn mailbox() -> MailboxContents {
    MailboxContents {
        messages: vec![
            message("o1", Folder::Old, "2026-11-20T08:00:00Z", Some("5550001")),
            message("n2", Folder::New, "2026-11-30T14:41:00Z", Some("5551234")),
            message("s1", Folder::Saved, "2026-11-01T08:00:00Z", None),
            message("n1", Folder::New, "2026-11-29T09:05:00Z", Some("42")),
        ],
        temporary_greeting: false,
    }
}

/// The input timeout of the default configuration.
pub(super) fn input_timeout() -> Duration {
    MenuConfig::default().input_timeout
}

//! What goes in and out of the menu: its configuration, the [`Event`]s the
//! call layer reports and the [`Action`]s it carries out, and the data
//! they carry. This is the whole contract between the menu and the call
//! (media, store, PIN checks).

use std::fmt;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::config::{PilotKind, RetrievalConfig};
use crate::retrieval::clip::Clip;
use crate::retrieval::pin::Pin;

/// Timing and limits of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuConfig {
    /// Wait for a key after a prompt has finished.
    pub input_timeout: Duration,
    /// Wait for the next digit of a number being typed; then the number
    /// is taken as complete, as if `#` had been pressed.
    pub digit_timeout: Duration,
    /// Times an unanswered prompt is repeated before goodbye.
    pub reprompts: u8,
    /// Wrong PINs before goodbye.
    pub login_attempts: u8,
    /// Failed tries at choosing a new PIN before giving up.
    pub new_pin_attempts: u8,
    /// A new message skipped (6 or `#`) after this much of it has played
    /// counts as heard.
    pub heard_after: Duration,
    /// Shorter greetings are refused ("The recording was too short").
    pub min_greeting: Duration,
    /// Recording a greeting stops after this long.
    pub max_greeting: Duration,
    /// The zone envelopes are spoken in.
    pub time_zone: TimeZone,
}

impl Default for MenuConfig {
    fn default() -> Self {
        MenuConfig {
            input_timeout: crate::config::DEFAULT_INPUT_TIMEOUT,
            digit_timeout: Duration::from_secs(4),
            reprompts: 2,
            login_attempts: 3,
            new_pin_attempts: 3,
            heard_after: Duration::from_secs(5),
            min_greeting: Duration::from_secs(1),
            max_greeting: Duration::from_secs(120),
            time_zone: TimeZone::UTC,
        }
    }
}

impl MenuConfig {
    /// The menu a profile's `[retrieval]` section describes.
    pub fn from_config(config: &RetrievalConfig) -> MenuConfig {
        MenuConfig {
            input_timeout: config.input_timeout,
            time_zone: config.timezone.clone(),
            ..MenuConfig::default()
        }
    }
}

/// How the call began: which kind of pilot was called, and the mailbox of
/// the caller's identity when that mailbox exists (the call layer looks it
/// up; `None` otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The pilot's kind.
    pub pilot: PilotKind,
    /// The caller's own mailbox, if it has one.
    pub caller_mailbox: Option<String>,
}

/// Identifies one playback, so its end can be told from another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlaybackId(pub(super) u64);

impl fmt::Display for PlaybackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "playback-{}", self.0)
    }
}

/// The folder a message is in (RFC 3842's new and old, and saved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    /// Not heard yet.
    New,
    /// Heard.
    Old,
    /// Kept on purpose (counted with the old ones).
    Saved,
}

/// What the menu needs of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// The message id.
    pub id: String,
    /// Its folder.
    pub folder: Folder,
    /// When it was received.
    pub received_at: Timestamp,
    /// The caller's number, digits only (see
    /// [`crate::retrieval::sentence::caller_number`]); `None` when unknown.
    pub caller: Option<String>,
}

/// A mailbox's contents, in answer to [`Action::LoadMailbox`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailboxContents {
    /// Its messages in the new, old and saved folders, in any order.
    pub messages: Vec<MessageSummary>,
    /// Whether a temporary greeting is set.
    pub temporary_greeting: bool,
}

/// The outcome of [`Action::VerifyPin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinVerdict {
    /// The PIN is the mailbox's.
    Accepted,
    /// Wrong PIN, unknown mailbox, or a mailbox without a PIN: the caller
    /// cannot tell which.
    Rejected,
    /// This (mailbox, source address) pair is locked after too many
    /// failures; nothing was checked.
    Locked,
}

/// A mailbox greeting the owner records: the same three kinds as the
/// greetings callers hear (`voicemail::greetings::GreetingKind`, which
/// sits above this module); [`GreetingKind::name`] is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GreetingKind {
    /// Played when the owner does not answer.
    Unavailable,
    /// Played when the owner is busy.
    Busy,
    /// Overrides both while set.
    Temporary,
}

impl GreetingKind {
    /// `unavailable`, `busy` or `temporary`.
    pub const fn name(self) -> &'static str {
        match self {
            GreetingKind::Unavailable => "unavailable",
            GreetingKind::Busy => "busy",
            GreetingKind::Temporary => "temporary",
        }
    }
}

/// What happened, as the call layer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key: `0`-`9`, `*`, `#` (RFC 4733 events 0-11, or SIP INFO).
    /// Others (`A`-`D`) are ignored.
    Digit(char),
    /// A playback ran to its end.
    PlaybackFinished(PlaybackId),
    /// The greeting recording asked for by [`Action::StartRecording`]
    /// ended (on [`Action::StopRecording`] or by itself), this long.
    RecordingFinished {
        /// Length of what was recorded.
        length: Duration,
    },
    /// The answer to [`Action::VerifyPin`].
    PinVerdict(PinVerdict),
    /// The answer to [`Action::LoadMailbox`].
    MailboxLoaded(MailboxContents),
    /// [`Action::LoadMailbox`] failed (the store could not be read).
    MailboxUnavailable,
    /// The answer to [`Action::SetPin`]: whether the new PIN was stored.
    PinSaved(bool),
    /// The caller hung up: the menu ends, discarding an unaccepted
    /// greeting.
    HungUp,
}

/// What the call layer must do, in the order polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these clips one after the other, replacing anything playing;
    /// report [`Event::PlaybackFinished`] when the last one ends.
    Play {
        /// This playback.
        playback: PlaybackId,
        /// What to say.
        clips: Vec<Clip>,
    },
    /// Play a stored message, replacing anything playing.
    PlayMessage {
        /// This playback.
        playback: PlaybackId,
        /// The message.
        id: String,
    },
    /// Play the greeting just recorded (not yet accepted).
    PlayRecordedGreeting {
        /// This playback.
        playback: PlaybackId,
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Stop what is playing (a key interrupted it); nothing is reported.
    StopPlayback,
    /// Play the recording tone, then record the owner's `kind` greeting
    /// for `mailbox` into a temporary file, until [`Action::StopRecording`]
    /// (or silence, or the call's limits); report
    /// [`Event::RecordingFinished`].
    StartRecording {
        /// The mailbox.
        mailbox: String,
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Stop the greeting recording.
    StopRecording,
    /// Make the recorded greeting the mailbox's `kind` greeting.
    AcceptGreeting {
        /// The mailbox.
        mailbox: String,
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Throw the recorded greeting away; the old one stays.
    DiscardGreeting {
        /// The mailbox.
        mailbox: String,
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Remove the mailbox's temporary greeting.
    RemoveTemporaryGreeting {
        /// The mailbox.
        mailbox: String,
    },
    /// Check a PIN (after the lockout check; slow: on a blocking thread)
    /// and report [`Event::PinVerdict`].
    VerifyPin {
        /// The mailbox typed or taken from the caller (digits, unchecked).
        mailbox: String,
        /// The PIN typed.
        pin: Pin,
    },
    /// Read the mailbox's messages and greetings; report
    /// [`Event::MailboxLoaded`] (or [`Event::MailboxUnavailable`]).
    LoadMailbox {
        /// The mailbox, now logged in.
        mailbox: String,
    },
    /// Move a new message to the old folder (it was heard).
    MarkHeard {
        /// The message.
        id: String,
    },
    /// Move a message to the saved folder.
    Save {
        /// The message.
        id: String,
    },
    /// Delete a message (soft: restorable from the CLI).
    Delete {
        /// The message.
        id: String,
    },
    /// Store a new PIN (hashed; slow) and report [`Event::PinSaved`].
    SetPin {
        /// The mailbox.
        mailbox: String,
        /// The new PIN, already checked against the trivial ones.
        pin: Pin,
    },
    /// End the call (BYE).
    HangUp,
}

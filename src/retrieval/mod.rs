//! The owner's side of voicemail: calling in to listen, by phone.
//!
//! Everything here but the prompt loader is sans-IO, in the shape of
//! quinn-proto and str0m: the
//! menu ([`menu::Menu`]) is fed keys, playback and recording events, store
//! answers and timeouts, each with an explicit `now`, and is polled for
//! actions (play these clips, play this message, verify this PIN, hang
//! up); it never touches a socket, a file or a clock, so whole sessions are
//! tested in microseconds with injected time. The call layer
//! (`voicemail`) runs the actions against the media path and the store.
//!
//! - [`menu`]: the menu itself (login, listening, mailbox options);
//! - [`clip`]: the vocabulary of the prompts, one file per clip and language;
//! - [`sentence`]: how counts, numbers, dates and envelopes are spoken;
//! - [`prompts`]: a language's folder of clips, decoded and cached per rate;
//! - [`pin`]: what a PIN may be, argon2id hashing and verification;
//! - [`lockout`]: failed-login rate limiting per (mailbox, source address).
//!
//! Whether a call is a retrieval call at all is decided with the other
//! facts read from the INVITE, in [`crate::call::access`].

pub mod clip;
pub mod lockout;
pub mod menu;
pub mod pin;
pub mod prompts;
pub mod sentence;

pub use clip::{Clip, Phrase};
pub use lockout::{Admission, LockoutPolicy, LoginLockout};
pub use menu::{Action, Event, Menu, MenuConfig, Start};
pub use pin::{Pin, PinRejection};
pub use prompts::{PromptError, PromptSource, Prompts};

//! Profiles: the TOML files that configure one vmesh server.
//!
//! A profile has four sections, `[server]`, `[sip]`, `[mailboxes]` and
//! `[media]`, and every key has a default, so a small file (or none: see
//! [`Profile::embedded_default`]) is a complete profile. Loading validates
//! everything and reports every problem with its file, key and line
//! ([`ConfigErrors`]), which is what `vmesh check` prints and why
//! `vmesh serve` refuses to start on an invalid profile.
//!
//! The reference for every key is `sip-profiles/default.toml`, the embedded
//! default profile itself.
//!
//! Layout: [`Profile`] ties the sections together (`profile.rs`); each section
//! has its own file (`server.rs`, `sip.rs`, `media.rs`), as do listen
//! addresses (`listen.rs`) and mailbox patterns (`mailbox_set.rs`);
//! `reader.rs` walks the parsed TOML collecting errors, `error.rs` holds them.

mod error;
mod listen;
mod mailbox_set;
mod media;
mod profile;
mod reader;
mod server;
mod sip;

pub use error::{ConfigError, ConfigErrors, TextPosition};
pub use listen::{ListenAddr, ListenAddrError, ListenTransport};
pub use mailbox_set::{is_valid_mailbox, MailboxPattern, MailboxSet, MAX_MAILBOX_DIGITS};
pub use media::{
    MediaConfig, DEFAULT_JITTER, DEFAULT_MAX_MESSAGE, DEFAULT_MIN_MESSAGE, DEFAULT_RTP_PORTS,
    DEFAULT_RTP_TIMEOUT, KNOWN_CODECS,
};
pub use profile::{Profile, ProfileOrigin, DEFAULT_PROFILE_TOML};
pub use server::{ServerConfig, DEFAULT_DATA_DIR, DEFAULT_SERVER_NAME};
pub use sip::{
    default_user_agent, SipConfig, DEFAULT_LISTEN, DEFAULT_MAX_CALLS, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TCP_IDLE_TIMEOUT, MAX_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES,
};

#[cfg(test)]
mod tests;

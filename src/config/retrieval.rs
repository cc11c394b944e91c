//! The `[retrieval]` section: how mailbox owners call in to listen.
//!
//! A call whose Request-URI user is one of the `pilots` (and that carries no
//! redirection information) is an owner calling in; every other call is a
//! deposit. Pilots listed in `ask_mailbox_pilots` always ask for the mailbox
//! number (`*98` in the Asterisk tradition); the others take it from the
//! caller's identity when that is a mailbox with a PIN.
//!
//! The prompts come from one folder per language: the built-in English set,
//! or `<prompts_dir>/<language>/` when a site adds its own. Envelopes speak
//! times in `timezone`, an IANA zone name checked against the time zone
//! database compiled into vmesh (jiff's bundled copy), so `vmesh check`
//! reports a misspelt zone and the result does not depend on the host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use toml::de::DeTable;

use super::reader::Reader;

/// Default retrieval pilots: Asterisk's `*97` (own mailbox) and `*98` (any
/// mailbox), and a named pilot for PBXs that route by name.
pub const DEFAULT_PILOTS: [&str; 3] = ["*97", "*98", "voicemail-main"];

/// Default pilots that always ask for the mailbox number.
pub const DEFAULT_ASK_MAILBOX_PILOTS: [&str; 1] = ["*98"];

/// Default prompt language: the built-in English set.
pub const DEFAULT_LANGUAGE: &str = "en";

/// Default time zone envelopes are spoken in.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// Default wait for a key after a prompt has finished, before re-prompting.
pub const DEFAULT_INPUT_TIMEOUT: Duration = Duration::from_secs(6);

/// Default failed logins of one (mailbox, source address) pair that lock it.
pub const DEFAULT_LOCKOUT_FAILURES: u32 = 5;

/// Default window in which those failures are counted.
pub const DEFAULT_LOCKOUT_WINDOW: Duration = Duration::from_secs(600);

/// Default time a locked pair stays locked.
pub const DEFAULT_LOCKOUT: Duration = Duration::from_secs(600);

/// Longest pilot user part accepted (a SIP user part, kept short for logs).
const MAX_PILOT_LEN: usize = 64;

/// How a retrieval pilot finds the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PilotKind {
    /// The caller's own mailbox, from its identity (P-Asserted-Identity,
    /// then From) when that mailbox exists; otherwise the menu asks.
    CallerMailbox,
    /// Always asks for the mailbox number.
    AskMailbox,
}

/// One retrieval pilot: the Request-URI user that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pilot {
    /// The user part, compared exactly (`*97`, `voicemail-main`).
    pub user: String,
    /// How it finds the mailbox.
    pub kind: PilotKind,
}

/// Owners' access by phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievalConfig {
    /// Every retrieval pilot, with its kind.
    pub pilots: Vec<Pilot>,
    /// The prompt language: a folder name.
    pub language: String,
    /// Where site prompt folders live (`<dir>/<language>/`); `None` for the
    /// built-in set. Relative paths are resolved against the profile's
    /// directory.
    pub prompts_dir: Option<PathBuf>,
    /// The zone envelopes are spoken in.
    pub timezone: TimeZone,
    /// Wait for a key after a prompt, before re-prompting (twice, then
    /// goodbye).
    pub input_timeout: Duration,
    /// Failed logins of one (mailbox, source address) pair that lock it.
    pub lockout_failures: u32,
    /// The window those failures are counted in.
    pub lockout_window: Duration,
    /// How long a locked pair stays locked.
    pub lockout: Duration,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            pilots: pilots_of(&DEFAULT_PILOTS, &DEFAULT_ASK_MAILBOX_PILOTS),
            language: DEFAULT_LANGUAGE.to_owned(),
            prompts_dir: None,
            timezone: TimeZone::UTC,
            input_timeout: DEFAULT_INPUT_TIMEOUT,
            lockout_failures: DEFAULT_LOCKOUT_FAILURES,
            lockout_window: DEFAULT_LOCKOUT_WINDOW,
            lockout: DEFAULT_LOCKOUT,
        }
    }
}

impl RetrievalConfig {
    /// The pilot whose user part is `user`, if any.
    pub fn pilot(&self, user: &str) -> Option<&Pilot> {
        self.pilots.iter().find(|p| p.user == user)
    }

    /// The zone's IANA name, as the profile gave it (`UTC` by default).
    pub fn timezone_name(&self) -> &str {
        self.timezone.iana_name().unwrap_or(DEFAULT_TIMEZONE)
    }

    /// Reads `[retrieval]`; `base_dir` is the directory a relative
    /// `prompts_dir` is resolved against.
    pub(super) fn read(reader: &mut Reader<'_>, table: &DeTable<'_>, base_dir: &Path) -> Self {
        let mut config = RetrievalConfig::default();
        let mut pilots: Vec<String> = DEFAULT_PILOTS.iter().map(|s| s.to_string()).collect();
        let mut asking: Vec<String> = DEFAULT_ASK_MAILBOX_PILOTS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut asking_span = None;
        for (name, node) in table.iter() {
            let key = format!("retrieval.{}", name.get_ref());
            match name.get_ref().as_ref() {
                "pilots" => {
                    if let Some(list) = read_pilots(reader, &key, node) {
                        if list.is_empty() {
                            reader.error(&key, node.span(), "must list at least one pilot");
                        } else {
                            pilots = list;
                        }
                    }
                }
                "ask_mailbox_pilots" => {
                    asking_span = Some(node.span());
                    if let Some(list) = read_pilots(reader, &key, node) {
                        asking = list;
                    }
                }
                "language" => {
                    if let Some(s) = reader.string(&key, node) {
                        match check_language(s) {
                            Ok(()) => config.language = s.to_owned(),
                            Err(message) => reader.error(&key, node.span(), message),
                        }
                    }
                }
                "prompts_dir" => {
                    if let Some(s) = reader.string(&key, node) {
                        if s.is_empty() {
                            reader.error(
                                &key,
                                node.span(),
                                "must not be empty; leave the key out for the built-in prompts",
                            );
                        } else {
                            config.prompts_dir = Some(base_dir.join(s));
                        }
                    }
                }
                "timezone" => {
                    if let Some(s) = reader.string(&key, node) {
                        match TimeZone::get(s) {
                            Ok(tz) => config.timezone = tz,
                            Err(_) => reader.error(
                                &key,
                                node.span(),
                                format!(
                                    "{s:?} is not a time zone of the IANA database; \
                                     use a name such as \"UTC\" or \"America/New_York\""
                                ),
                            ),
                        }
                    }
                }
                "input_timeout_s" => {
                    if let Some(n) = reader.integer(&key, node, 1..=60) {
                        config.input_timeout = Duration::from_secs(n);
                    }
                }
                "lockout_failures" => {
                    if let Some(n) = reader.integer(&key, node, 1..=1000) {
                        config.lockout_failures = u32::try_from(n).unwrap_or(u32::MAX);
                    }
                }
                "lockout_window_s" => {
                    if let Some(n) = reader.integer(&key, node, 1..=86_400) {
                        config.lockout_window = Duration::from_secs(n);
                    }
                }
                "lockout_s" => {
                    if let Some(n) = reader.integer(&key, node, 1..=86_400) {
                        config.lockout = Duration::from_secs(n);
                    }
                }
                _ => reader.unknown_key(&key, name.span()),
            }
        }
        if let Some(stray) = asking.iter().find(|a| !pilots.contains(a)) {
            let key = "retrieval.ask_mailbox_pilots";
            let message = format!("{stray:?} is not one of retrieval.pilots");
            match asking_span {
                Some(span) => reader.error(key, span, message),
                None => reader.error_unplaced(key, message),
            }
        }
        config.pilots = pilots_of(&pilots, &asking);
        config
    }
}

/// Reads a list of pilot user parts, reporting each bad entry.
fn read_pilots(
    reader: &mut Reader<'_>,
    key: &str,
    node: &super::reader::Node<'_>,
) -> Option<Vec<String>> {
    let entries = reader.strings(key, node)?;
    let mut list: Vec<String> = Vec::with_capacity(entries.len());
    for entry in entries {
        match check_pilot(entry.value) {
            Ok(()) if list.iter().any(|p| p == entry.value) => {
                reader.error(&entry.key, entry.span, "is listed twice")
            }
            Ok(()) => list.push(entry.value.to_owned()),
            Err(message) => reader.error(&entry.key, entry.span, message),
        }
    }
    Some(list)
}

/// The pilots, each with its kind.
fn pilots_of<S: AsRef<str>>(pilots: &[S], asking: &[S]) -> Vec<Pilot> {
    pilots
        .iter()
        .map(|user| {
            let user = user.as_ref();
            let kind = if asking.iter().any(|a| a.as_ref() == user) {
                PilotKind::AskMailbox
            } else {
                PilotKind::CallerMailbox
            };
            Pilot {
                user: user.to_owned(),
                kind,
            }
        })
        .collect()
}

/// A pilot is a SIP user part (RFC 3261 §25.1 `user`): unreserved
/// characters and the user-unreserved marks, so it compares with the
/// Request-URI user as received. `*97` and `voicemail-main` qualify.
fn check_pilot(user: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > MAX_PILOT_LEN {
        return Err(format!("must be 1 to {MAX_PILOT_LEN} characters"));
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '_'
                    | '.'
                    | '!'
                    | '~'
                    | '*'
                    | '\''
                    | '('
                    | ')'
                    | '&'
                    | '='
                    | '+'
                    | '$'
                    | ','
                    | ';'
                    | '?'
                    | '/'
            )
    };
    match user.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!("contains {c:?}, which a SIP user part cannot hold")),
        None => Ok(()),
    }
}

/// A language is a folder name: letters, digits, `-` and `_` (`en`,
/// `fr-CA`), never a path.
fn check_language(language: &str) -> Result<(), String> {
    let valid = (1..=32).contains(&language.len())
        && language
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{language:?} is not a language folder name; use letters, digits, '-' or '_' (e.g. \"en\")"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pilots_are_sip_user_parts() {
        assert!(check_pilot("*97").is_ok());
        assert!(check_pilot("voicemail-main").is_ok());
        assert!(check_pilot("").is_err());
        assert!(check_pilot("a b").is_err());
        assert!(check_pilot("x@y").is_err());
        assert!(check_pilot("a\r\nB").is_err());
    }

    #[test]
    fn languages_are_folder_names() {
        assert!(check_language("en").is_ok());
        assert!(check_language("fr-CA").is_ok());
        assert!(check_language("../en").is_err());
        assert!(check_language("").is_err());
    }

    #[test]
    fn default_pilots_have_their_kinds() {
        let config = RetrievalConfig::default();
        let kind = |u: &str| config.pilot(u).map(|p| p.kind);
        assert_eq!(kind("*97"), Some(PilotKind::CallerMailbox));
        assert_eq!(kind("voicemail-main"), Some(PilotKind::CallerMailbox));
        assert_eq!(kind("*98"), Some(PilotKind::AskMailbox));
        assert_eq!(kind("voicemail"), None);
        assert_eq!(config.timezone_name(), "UTC");
    }
}

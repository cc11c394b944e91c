//! The `[mwi]` section: message-waiting lamps (RFC 3842).
//!
//! Phones and PBXs SUBSCRIBE to a mailbox's `message-summary`; the
//! expiry bounds here apply to them. PBXs that take NOTIFYs without a
//! subscription (Asterisk's `incoming_mwi_mailbox`, FreeSWITCH, many
//! phones) are listed in `notify` as URI templates, `{mailbox}` standing
//! for the mailbox, with `username` and `password` (or `password_file`,
//! read by `secret.rs`) for a digest challenge.

use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use super::mailbox_set::{read_patterns, MailboxSet};
use super::reader::Reader;
use super::secret::{Password, PasswordKeys};

/// What `{mailbox}` in a `notify` template stands for.
pub const MAILBOX_PLACEHOLDER: &str = "{mailbox}";

/// Default shortest subscription accepted (shorter ones get 423).
pub const DEFAULT_MIN_EXPIRES: Duration = Duration::from_secs(60);
/// Default longest subscription granted; also the duration of one that
/// asks for none (RFC 3842 §3.4: one hour).
pub const DEFAULT_MAX_EXPIRES: Duration = Duration::from_secs(3600);
/// Default attempts per NOTIFY.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// Default delay before a NOTIFY's second attempt.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(2);
/// Default NOTIFYs on the wire at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;
/// Default interval at which changes by other processes (the CLI) are
/// looked for.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// One `notify` entry: a SIP URI with `{mailbox}` where the mailbox goes
/// (or none: then every mailbox's NOTIFY goes to that one URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTemplate(String);

impl NotifyTemplate {
    /// Checks a template: only `{mailbox}` between braces, and with a
    /// mailbox put in, a `sip:` URI with a host, over UDP or TCP.
    pub fn parse(text: &str) -> Result<NotifyTemplate, String> {
        let rest = text.replace(MAILBOX_PLACEHOLDER, "");
        if rest.contains('{') || rest.contains('}') {
            return Err(format!(
                "{text:?}: the only placeholder is {MAILBOX_PLACEHOLDER}"
            ));
        }
        let sample = text.replace(MAILBOX_PLACEHOLDER, "1001");
        let uri = rsipstack::sip::Uri::try_from(sample.as_str())
            .map_err(|e| format!("{text:?} is not a SIP URI: {e}"))?;
        if uri.scheme != Some(rsipstack::sip::Scheme::Sip) {
            return Err(format!("{text:?}: expected a sip: URI"));
        }
        if uri.host_with_port.host.to_string().is_empty() {
            return Err(format!("{text:?}: the URI has no host"));
        }
        let transport = uri.params.iter().find_map(|p| match p {
            rsipstack::sip::Param::Transport(t) => Some(*t),
            _ => None,
        });
        match transport {
            None | Some(rsipstack::sip::Transport::Udp) | Some(rsipstack::sip::Transport::Tcp) => {}
            Some(other) => {
                return Err(format!(
                    "{text:?}: transport {other} is not supported for NOTIFY; use udp or tcp"
                ))
            }
        }
        Ok(NotifyTemplate(text.to_owned()))
    }

    /// The URI for `mailbox`.
    pub fn expand(&self, mailbox: &str) -> String {
        self.0.replace(MAILBOX_PLACEHOLDER, mailbox)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Credentials that answer a PBX's digest challenge (RFC 3261 §22.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    /// The digest user name.
    pub username: String,
    /// The password.
    pub password: Password,
}

/// Message-waiting settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MwiConfig {
    /// Unsolicited NOTIFY destinations.
    pub notify: Vec<NotifyTemplate>,
    /// The mailboxes unsolicited NOTIFYs are sent for, among those homed
    /// here; `None`: all of them.
    pub mailboxes: Option<MailboxSet>,
    /// For a 401/407 to an unsolicited NOTIFY.
    pub credentials: Option<DigestCredentials>,
    /// The host of `Message-Account` URIs; `None`: the host the
    /// subscriber addressed (its Request-URI), or the notify URI's host.
    pub domain: Option<String>,
    /// Shortest subscription accepted.
    pub min_expires: Duration,
    /// Longest subscription granted (and the default).
    pub max_expires: Duration,
    /// Attempts per NOTIFY, the first included.
    pub retry_attempts: u32,
    /// Delay before a NOTIFY's second attempt; doubles after.
    pub retry_initial: Duration,
    /// NOTIFYs on the wire at once.
    pub max_in_flight: usize,
    /// How often changes by other processes are looked for.
    pub poll_interval: Duration,
}

impl Default for MwiConfig {
    fn default() -> Self {
        MwiConfig {
            notify: Vec::new(),
            mailboxes: None,
            credentials: None,
            domain: None,
            min_expires: DEFAULT_MIN_EXPIRES,
            max_expires: DEFAULT_MAX_EXPIRES,
            retry_attempts: DEFAULT_RETRY_ATTEMPTS,
            retry_initial: DEFAULT_RETRY_INITIAL,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

impl MwiConfig {
    /// Reads `[mwi]`, then checks the keys that go together; a relative
    /// `password_file` is relative to `base_dir`.
    pub(super) fn read(reader: &mut Reader<'_>, table: &DeTable<'_>, base_dir: &Path) -> Self {
        let mut mwi = MwiConfig::default();
        let mut username = None;
        let mut password = PasswordKeys::default();
        // Where each was written, for the errors of one without the other.
        let (mut username_span, mut password_at) = (None, None);
        for (name, node) in table.iter() {
            let key = format!("mwi.{}", name.get_ref());
            let secs = |reader: &mut Reader<'_>, max| {
                reader.integer(&key, node, 1..=max).map(Duration::from_secs)
            };
            match name.get_ref().as_ref() {
                "notify" => {
                    let Some(entries) = reader.strings(&key, node) else {
                        continue;
                    };
                    for entry in entries {
                        match NotifyTemplate::parse(entry.value) {
                            Ok(t) => mwi.notify.push(t),
                            Err(message) => reader.error(&entry.key, entry.span, message),
                        }
                    }
                }
                "mailboxes" => {
                    let Some(entries) = reader.strings(&key, node) else {
                        continue;
                    };
                    mwi.mailboxes = Some(MailboxSet::from_placed(read_patterns(reader, entries)));
                }
                "username" => {
                    username_span = Some(node.span());
                    username = reader.string(&key, node).map(str::to_owned);
                }
                "domain" => {
                    if let Some(domain) = reader.string(&key, node) {
                        let ok = !domain.is_empty()
                            && domain
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
                        if ok {
                            mwi.domain = Some(domain.to_owned());
                        } else {
                            reader.error(
                                &key,
                                node.span(),
                                format!("{domain:?} is not a host name or address"),
                            );
                        }
                    }
                }
                "min_expires_s" => {
                    if let Some(d) = secs(reader, 86_400) {
                        mwi.min_expires = d;
                    }
                }
                "max_expires_s" => {
                    if let Some(d) = secs(reader, 7 * 86_400) {
                        mwi.max_expires = d;
                    }
                }
                "retry_attempts" => {
                    if let Some(n) = reader.integer(&key, node, 1..=10) {
                        mwi.retry_attempts = u32::try_from(n).unwrap_or(DEFAULT_RETRY_ATTEMPTS);
                    }
                }
                "retry_initial_s" => {
                    if let Some(d) = secs(reader, 3600) {
                        mwi.retry_initial = d;
                    }
                }
                "max_in_flight" => {
                    if let Some(n) = reader.integer(&key, node, 1..=10_000) {
                        mwi.max_in_flight = usize::try_from(n).unwrap_or(DEFAULT_MAX_IN_FLIGHT);
                    }
                }
                "poll_ms" => {
                    if let Some(n) = reader.integer(&key, node, 10..=60_000) {
                        mwi.poll_interval = Duration::from_millis(n);
                    }
                }
                other => {
                    if password.read_key(reader, &key, other, node, base_dir) {
                        password_at.get_or_insert((key.clone(), node.span()));
                    } else {
                        reader.unknown_key(&key, name.span());
                    }
                }
            }
        }
        let password_given = password.given();
        match (username, password.into_password()) {
            (Some(username), Some(password)) => {
                mwi.credentials = Some(DigestCredentials { username, password })
            }
            (None, None) if !password_given => {}
            (Some(_), None) if password_given => {}
            (Some(_), None) => {
                let message = "a username needs a password";
                match username_span {
                    Some(span) => reader.error("mwi.username", span, message),
                    None => reader.error_unplaced("mwi.username", message),
                }
            }
            (None, _) => {
                let message = "a password needs a username";
                match password_at {
                    Some((key, span)) => reader.error(&key, span, message),
                    None => reader.error_unplaced("mwi.password", message),
                }
            }
        }
        if mwi.max_expires < mwi.min_expires {
            reader.error_unplaced(
                "mwi.max_expires_s",
                format!(
                    "{} s is below min_expires_s ({} s)",
                    mwi.max_expires.as_secs(),
                    mwi.min_expires.as_secs()
                ),
            );
        }
        mwi
    }
}

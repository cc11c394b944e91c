//! Mailbox resolution: who is this call for?
//!
//! A PBX redirects an unanswered call to vmesh, usually to a pilot user such
//! as `sip:voicemail@vm`, and says whose mailbox it is in one of several
//! places. [`resolve`] looks at them in this order and takes the first one
//! that names a valid mailbox:
//!
//! 1. the `target` parameter of the Request-URI (RFC 4458 §3.1),
//! 2. History-Info, the original called party (RFC 7044),
//! 3. Diversion, the original diverting party (RFC 5806),
//! 4. the To user,
//! 5. the Request-URI user.
//!
//! Because the mailbox later names a directory and a SQLite key, nothing from
//! a SIP field is trusted: after percent-decoding, a mailbox is 1..=32 ASCII
//! digits and nothing else ([`is_valid_mailbox`]). A source that names
//! something else (a pilot user, a path, an alias) is skipped, never
//! "cleaned up" into a mailbox.
//!
//! URIs and name-addr header entries are parsed with `rsipstack::sip`. Two
//! small pieces are hand-written: splitting a header value into its
//! comma-separated entries (`split_entries`), because rsipstack keeps its
//! splitter private and its whole-header parsers reject a header if any one
//! entry is malformed or (for History-Info) lacks an `index`; and recovering a
//! telephone-subscriber user part such as `sip:5551234;phone-context=+1212@gw`
//! (RFC 3261 §19.1.1 allows `;` inside the user part), which rsipstack splits
//! at the first `;` and so reads as a host with parameters.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use percent_encoding::percent_decode_str;
use rsipstack::sip::typed::{DiversionEntry, DiversionReason, HistoryInfoEntry, To};
use rsipstack::sip::{Param, Scheme, Uri};

/// Longest Request-URI copied into [`MailboxError`], so that a hostile
/// request cannot make the log line arbitrarily long.
const MAX_ERROR_URI_LEN: usize = 256;

/// The parts of an incoming INVITE that can name the mailbox.
///
/// Header values are passed exactly as received (one slice element per header
/// line), so this core needs no SIP message type and tests can feed it
/// literal strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct MailboxRequest<'a> {
    /// The Request-URI, e.g. `sip:voicemail@vm;target=sip:1001%40pbx;cause=486`.
    pub request_uri: &'a str,
    /// The To header value, if the request had one.
    pub to: Option<&'a str>,
    /// Every History-Info header value, top to bottom.
    pub history_info: &'a [&'a str],
    /// Every Diversion header value, top to bottom.
    pub diversion: &'a [&'a str],
}

/// The mailbox a call is for, and why the call came to voicemail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxTarget {
    /// The mailbox number: 1..=32 ASCII digits, safe to use as a path
    /// component and index key.
    pub mailbox: String,
    /// Why the call was diverted, as an RFC 5806 `reason` token
    /// (`user-busy`, `no-answer`, `unconditional`, ...), when the source
    /// said so. Greetings and message metadata can differ by reason.
    pub reason: Option<String>,
    /// Which part of the request named the mailbox, for logs and debugging
    /// of PBX configurations.
    pub source: TargetSource,
    /// The URI (or number) that named the mailbox: the originally called
    /// party, which a message records as `called` (for a call to a pilot
    /// user, the diverted-from party rather than the pilot).
    pub party: String,
}

/// Which part of the request named the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetSource {
    /// The RFC 4458 `target` parameter of the Request-URI.
    RequestUriTarget,
    /// The original called party in History-Info (RFC 7044).
    HistoryInfo,
    /// The original diverting party in Diversion (RFC 5806).
    Diversion,
    /// The user part of the To header.
    To,
    /// The user part of the Request-URI.
    RequestUri,
}

impl fmt::Display for TargetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RequestUriTarget => "request-uri-target",
            Self::HistoryInfo => "history-info",
            Self::Diversion => "diversion",
            Self::To => "to",
            Self::RequestUri => "request-uri",
        })
    }
}

/// Why no mailbox could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// No source named a valid mailbox; the caller answers 404 Not Found.
    /// Carries the Request-URI (truncated to 256 bytes) so the log shows
    /// which pilot or PBX route is misconfigured.
    #[error("no mailbox in request {request_uri} (need 1..=32 digits in the Request-URI target, History-Info, Diversion, To or Request-URI)")]
    NoMailbox { request_uri: String },
}

/// Finds the mailbox a call is for, trying each source in precedence order
/// (see the module documentation) and skipping those that do not name a
/// valid mailbox.
pub fn resolve(req: &MailboxRequest) -> Result<MailboxTarget, MailboxError> {
    let request_uri = Uri::try_from(req.request_uri).ok();
    let found = request_uri
        .as_ref()
        .and_then(from_request_uri_target)
        .or_else(|| from_history_info(req.history_info))
        .or_else(|| from_diversion(req.diversion))
        .or_else(|| req.to.and_then(from_to))
        .or_else(|| request_uri.as_ref().and_then(from_request_uri_user));
    found.ok_or_else(|| MailboxError::NoMailbox {
        request_uri: truncate(req.request_uri, MAX_ERROR_URI_LEN).to_string(),
    })
}

/// True when `s` is a mailbox: 1..=32 ASCII digits, nothing else.
///
/// A mailbox is 1..=32 ASCII digits: the one rule, kept by the profile
/// module, since a mailbox becomes a path component.
pub use crate::config::is_valid_mailbox;

/// RFC 4458 §3.1: `sip:voicemail@vm;target=sip:1001%40pbx;cause=486`.
fn from_request_uri_target(uri: &Uri) -> Option<MailboxTarget> {
    let target = other_param(&uri.params, "target")?;
    let decoded = percent_decode_str(target).decode_utf8().ok()?;
    // A bare number (`target=1001`, `target=+1-555-0100`) has no scheme.
    let mailbox = if decoded.contains(':') || decoded.contains('@') {
        subscriber(&Uri::try_from(decoded.as_ref()).ok()?)?
    } else {
        Some(telephone_digits(&decoded)).filter(|m| is_valid_mailbox(m))?
    };
    Some(MailboxTarget {
        mailbox,
        reason: cause_reason(uri),
        source: TargetSource::RequestUriTarget,
        party: decoded.into_owned(),
    })
}

/// RFC 7044: the original called party is the entry with the smallest index
/// (received order when entries carry no index) that names a valid mailbox.
fn from_history_info(headers: &[&str]) -> Option<MailboxTarget> {
    let mut entries: Vec<(Option<Vec<u32>>, Uri)> = headers
        .iter()
        .flat_map(|h| split_entries(h))
        .filter_map(parse_history_entry)
        .collect();
    entries.sort_by(|a, b| compare_index(a.0.as_deref(), b.0.as_deref()));
    entries.iter().enumerate().find_map(|(i, (_, uri))| {
        let mailbox = subscriber(uri)?;
        // The reason the call left this target is the RFC 4458 cause on the
        // next hop's URI, or an escaped Reason header on this entry
        // (RFC 7044 §4.3.1).
        let reason = entries
            .get(i + 1)
            .and_then(|(_, next)| cause_reason(next))
            .or_else(|| escaped_reason(uri));
        Some(MailboxTarget {
            mailbox,
            reason,
            source: TargetSource::HistoryInfo,
            party: uri.to_string(),
        })
    })
}

/// Parses one hi-entry into its index (as numbers per level) and URI. An
/// entry without the mandatory `index` is still read as a name-addr (the To
/// grammar), so a sloppy PBX is served in received order.
fn parse_history_entry(entry: &str) -> Option<(Option<Vec<u32>>, Uri)> {
    match HistoryInfoEntry::parse(entry) {
        Ok(e) => Some((parse_index(&e.index), e.uri)),
        Err(_) => To::parse(entry).ok().map(|to| (None, to.uri)),
    }
}

/// `1.2.1` -> `[1, 2, 1]`; `None` when any level is not a number.
fn parse_index(index: &str) -> Option<Vec<u32>> {
    index.split('.').map(|p| p.trim().parse().ok()).collect()
}

/// Orders hi-entries by index, level by level (`1` < `1.1` < `1.2` < `1.10`),
/// with entries lacking a usable index after all indexed ones.
fn compare_index(a: Option<&[u32]>, b: Option<&[u32]>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// RFC 5806 §2: each diversion adds an entry on top, so the original
/// diverting party is the last entry overall. Entries are tried from the
/// original towards the most recent until one names a valid mailbox.
fn from_diversion(headers: &[&str]) -> Option<MailboxTarget> {
    let entries: Vec<DiversionEntry> = headers
        .iter()
        .flat_map(|h| split_entries(h))
        .filter_map(|e| DiversionEntry::parse(e).ok())
        .collect();
    entries.iter().rev().find_map(|entry| {
        Some(MailboxTarget {
            mailbox: subscriber(&entry.uri)?,
            reason: entry.reason.as_ref().and_then(diversion_reason),
            source: TargetSource::Diversion,
            party: entry.uri.to_string(),
        })
    })
}

/// Normalizes a Diversion `reason`: rsipstack keeps a quoted value
/// (`reason="no-answer"`) with its quotes, which RFC 5806 §3 allows.
fn diversion_reason(reason: &DiversionReason) -> Option<String> {
    let unquoted = reason.as_str().trim().trim_matches('"');
    reason_token(DiversionReason::parse(unquoted).as_str())
}

fn from_to(to: &str) -> Option<MailboxTarget> {
    let uri = To::parse(to).ok()?.uri;
    Some(MailboxTarget {
        mailbox: subscriber(&uri)?,
        reason: None,
        source: TargetSource::To,
        party: uri.to_string(),
    })
}

fn from_request_uri_user(uri: &Uri) -> Option<MailboxTarget> {
    Some(MailboxTarget {
        mailbox: subscriber(uri)?,
        reason: cause_reason(uri),
        source: TargetSource::RequestUri,
        party: uri.to_string(),
    })
}

/// The mailbox a URI names, if any: the percent-decoded user part of a
/// sip/sips URI or the number of a tel URI, after removing telephone-number
/// decoration where the URI is a telephone number.
fn subscriber(uri: &Uri) -> Option<String> {
    let (raw, telephone) = match (&uri.scheme, &uri.auth) {
        (Some(Scheme::Other(s)), _) if s.eq_ignore_ascii_case("tel") => {
            (uri.host().to_string(), true)
        }
        (Some(Scheme::Other(_)), _) => return None,
        (_, Some(auth)) => (auth.user.clone(), has_user_phone(uri)),
        (_, None) if has_subscriber_param(uri) => (uri.host().to_string(), true),
        (_, None) => return None,
    };
    let decoded = percent_decode_str(&raw).decode_utf8().ok()?;
    let number = if telephone || decoded.starts_with('+') {
        Cow::Owned(telephone_digits(&decoded))
    } else {
        decoded
    };
    is_valid_mailbox(&number).then(|| number.into_owned())
}

/// RFC 3966 §5.1.1: a telephone number may carry a leading `+` and visual
/// separators; RFC 3261 §19.1.1 puts its parameters (`;phone-context=...`)
/// in the user part. Drops all of that; anything else stays and so fails
/// validation.
fn telephone_digits(number: &str) -> String {
    let number = number.split(';').next().unwrap_or_default();
    let number = number.strip_prefix('+').unwrap_or(number);
    number
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect()
}

/// `;user=phone` marks the user part as a telephone number (RFC 3261 §19.1.1).
fn has_user_phone(uri: &Uri) -> bool {
    uri.params
        .iter()
        .any(|p| matches!(p, Param::User(u) if u.value().eq_ignore_ascii_case("phone")))
}

/// True when rsipstack split a telephone-subscriber user part at its first
/// `;` (`sip:5551234;phone-context=+1212@gw`): then the "host" it found is
/// the number and an RFC 3966 parameter swallowed the real `@host`.
fn has_subscriber_param(uri: &Uri) -> bool {
    const RFC3966_PARAMS: [&str; 4] = ["phone-context", "isub", "ext", "postd"];
    uri.params.iter().any(|p| match p {
        Param::Other(name, Some(value)) => {
            RFC3966_PARAMS
                .iter()
                .any(|n| name.value().eq_ignore_ascii_case(n))
                && value.value().contains('@')
        }
        _ => false,
    })
}

/// The value of a URI parameter that rsipstack has no dedicated variant for.
fn other_param<'u>(params: &'u [Param], name: &str) -> Option<&'u str> {
    params.iter().find_map(|p| match p {
        Param::Other(n, Some(v)) if n.value().eq_ignore_ascii_case(name) => Some(v.value()),
        _ => None,
    })
}

/// The reason named by an RFC 4458 `cause` URI parameter.
fn cause_reason(uri: &Uri) -> Option<String> {
    let cause = other_param(&uri.params, "cause")?.trim().parse().ok()?;
    reason_for_cause(cause).map(str::to_string)
}

/// The reason named by an escaped Reason header in a History-Info URI
/// (`<sip:1001@pbx?Reason=SIP%3Bcause%3D486>`, RFC 7044 §4.3.1, RFC 3326).
/// Only the SIP protocol's causes are SIP status codes; Q.850 ones are not.
fn escaped_reason(uri: &Uri) -> Option<String> {
    uri.headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("reason"))
        .find_map(|(_, value)| {
            let value = percent_decode_str(value).decode_utf8().ok()?;
            let mut parts = value.split(';').map(str::trim);
            if !parts.next()?.eq_ignore_ascii_case("SIP") {
                return None;
            }
            let cause = parts.find_map(|p| {
                let (name, v) = p.split_once('=')?;
                name.trim().eq_ignore_ascii_case("cause").then_some(v)
            })?;
            reason_for_cause(cause.trim().parse().ok()?).map(str::to_string)
        })
}

/// RFC 4458 §3.1 maps redirecting reasons to SIP status codes in `cause`;
/// this maps them back to RFC 5806 `reason` tokens.
fn reason_for_cause(cause: u16) -> Option<&'static str> {
    Some(match cause {
        404 => "unknown",
        486 => "user-busy",
        408 | 480 => "no-answer",
        302 => "unconditional",
        487 => "deflection",
        503 => "unavailable",
        _ => return None,
    })
}

/// Keeps a reason only if it is a plain token, so that whatever a PBX puts
/// there cannot smuggle text into logs or stored metadata.
fn reason_token(reason: &str) -> Option<String> {
    let valid = (1..=32).contains(&reason.len())
        && reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| reason.to_ascii_lowercase())
}

/// Splits a header value into its comma-separated entries (RFC 3261 §7.3.1),
/// ignoring commas inside `<...>` and quoted strings (with `\` escapes).
fn split_entries(value: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let (mut start, mut angle, mut quoted, mut escaped) = (0, 0usize, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle += 1,
            '>' if !quoted => angle = angle.saturating_sub(1),
            ',' if !quoted && angle == 0 => {
                entries.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&value[start..]);
    entries
        .into_iter()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[path = "mailbox_tests.rs"]
mod tests;

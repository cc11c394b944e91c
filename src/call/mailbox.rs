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

/// Longest mailbox accepted: long enough for any E.164 number with an
/// extension, short enough to be a safe file name and index key.
const MAX_MAILBOX_LEN: usize = 32;

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
/// This is the one gate between SIP fields and the file system, so it is
/// deliberately narrow: no signs, separators, dots or slashes.
pub fn is_valid_mailbox(s: &str) -> bool {
    (1..=MAX_MAILBOX_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

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
    Some(MailboxTarget {
        mailbox: subscriber(&To::parse(to).ok()?.uri)?,
        reason: None,
        source: TargetSource::To,
    })
}

fn from_request_uri_user(uri: &Uri) -> Option<MailboxTarget> {
    Some(MailboxTarget {
        mailbox: subscriber(uri)?,
        reason: cause_reason(uri),
        source: TargetSource::RequestUri,
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
mod tests {
    use super::*;

    fn request<'a>(
        request_uri: &'a str,
        to: Option<&'a str>,
        history_info: &'a [&'a str],
        diversion: &'a [&'a str],
    ) -> MailboxRequest<'a> {
        MailboxRequest {
            request_uri,
            to,
            history_info,
            diversion,
        }
    }

    fn target(mailbox: &str, reason: Option<&str>, source: TargetSource) -> MailboxTarget {
        MailboxTarget {
            mailbox: mailbox.to_string(),
            reason: reason.map(str::to_string),
            source,
        }
    }

    #[test]
    fn valid_mailbox_is_one_to_32_digits() {
        assert!(is_valid_mailbox("1"));
        assert!(is_valid_mailbox("1001"));
        assert!(is_valid_mailbox(&"9".repeat(32)));
        assert!(!is_valid_mailbox(""));
        assert!(!is_valid_mailbox(&"9".repeat(33)));
        assert!(!is_valid_mailbox("+1001"));
        assert!(!is_valid_mailbox("10 01"));
        assert!(!is_valid_mailbox("../1001"));
        assert!(!is_valid_mailbox("１００１"));
        assert!(!is_valid_mailbox("voicemail"));
    }

    #[test]
    fn plain_request_uri_user() {
        let r = resolve(&request("sip:1001@vm", None, &[], &[])).unwrap();
        assert_eq!(r, target("1001", None, TargetSource::RequestUri));
    }

    #[test]
    fn to_only_when_request_uri_is_a_pilot() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            Some("\"Alice\" <sip:1002@pbx.example.com>;tag=abc"),
            &[],
            &[],
        ))
        .unwrap();
        assert_eq!(r, target("1002", None, TargetSource::To));
    }

    #[test]
    fn pilot_with_diversion_user_busy() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            Some("<sip:voicemail@vm>"),
            &[],
            &["<sip:1001@pbx>;reason=user-busy;counter=1"],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("user-busy"), TargetSource::Diversion)
        );
    }

    #[test]
    fn diversion_original_is_last_entry_in_one_header() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            None,
            &[],
            &["<sip:2002@pbx>;reason=no-answer;counter=2, <sip:1001@pbx>;reason=user-busy;counter=1"],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("user-busy"), TargetSource::Diversion)
        );
    }

    #[test]
    fn diversion_original_is_last_entry_across_headers() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            None,
            &[],
            &[
                "<sip:3003@pbx>;reason=deflection",
                "<sip:2002@pbx>;reason=no-answer, <sip:1001@pbx>;reason=unconditional",
            ],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("unconditional"), TargetSource::Diversion)
        );
    }

    #[test]
    fn diversion_skips_an_original_that_is_not_a_mailbox() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            None,
            &[],
            &["<sip:2002@pbx>;reason=no-answer, <sip:sales@pbx>;reason=unconditional"],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("2002", Some("no-answer"), TargetSource::Diversion)
        );
    }

    #[test]
    fn diversion_display_name_with_comma_and_quoted_reason() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            None,
            &[],
            &["\"Smith, John\" <sip:1001@pbx;user=phone>;reason=\"no-answer\";counter=1;privacy=off"],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("no-answer"), TargetSource::Diversion)
        );
    }

    #[test]
    fn diversion_busy_alias_is_canonical_user_busy() {
        let r = resolve(&request(
            "sip:vm@vm",
            None,
            &[],
            &["<sip:1001@pbx>;reason=BUSY"],
        ))
        .unwrap();
        assert_eq!(r.reason.as_deref(), Some("user-busy"));
    }

    #[test]
    fn diversion_junk_reason_is_dropped_not_stored() {
        let r = resolve(&request(
            "sip:vm@vm",
            None,
            &[],
            &["<sip:1001@pbx>;reason=\"no answer/../x\""],
        ))
        .unwrap();
        assert_eq!(r, target("1001", None, TargetSource::Diversion));
    }

    #[test]
    fn history_info_index_1_with_cause_in_retargeted_entry() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            None,
            &["<sip:1001@pbx>;index=1, <sip:voicemail@vm;cause=486>;index=1.1"],
            &[],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("user-busy"), TargetSource::HistoryInfo)
        );
    }

    #[test]
    fn history_info_across_two_headers_out_of_order() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            None,
            &[
                "<sip:voicemail@vm;cause=408>;index=1.1",
                "<sip:1001@pbx>;index=1",
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("no-answer"), TargetSource::HistoryInfo)
        );
    }

    #[test]
    fn history_info_escaped_reason_header() {
        let r = resolve(&request(
            "sip:voicemail@vm",
            None,
            &["<sip:1001@pbx?Reason=SIP%3Bcause%3D486%3Btext%3D%22Busy%20Here%22>;index=1,<sip:voicemail@vm>;index=1.1"],
            &[],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("user-busy"), TargetSource::HistoryInfo)
        );
    }

    #[test]
    fn history_info_q850_reason_is_not_a_sip_status() {
        let r = resolve(&request(
            "sip:vm@vm",
            None,
            &["<sip:1001@pbx?Reason=Q.850%3Bcause%3D486>;index=1"],
            &[],
        ))
        .unwrap();
        assert_eq!(r, target("1001", None, TargetSource::HistoryInfo));
    }

    #[test]
    fn history_info_smallest_valid_index_wins() {
        // Index 1 is a pilot alias; 1.1 is the first real mailbox, 1.1.1 later.
        let r = resolve(&request(
            "sip:voicemail@vm",
            None,
            &["<sip:sales@pbx>;index=1, <sip:3003@pbx>;index=1.1.1;mp=1.1, <sip:2002@pbx>;index=1.1;rc=1, <sip:vm@vm;cause=302>;index=1.2"],
            &[],
        ))
        .unwrap();
        assert_eq!(r.mailbox, "2002");
        assert_eq!(r.source, TargetSource::HistoryInfo);
    }

    #[test]
    fn history_info_index_compares_numerically_per_level() {
        let r = resolve(&request(
            "sip:vm@vm",
            None,
            &["<sip:1010@pbx>;index=1.10, <sip:1002@pbx>;index=1.2"],
            &[],
        ))
        .unwrap();
        assert_eq!(r.mailbox, "1002");
    }

    #[test]
    fn history_info_without_indexes_uses_first_entry() {
        let r = resolve(&request(
            "sip:vm@vm",
            None,
            &["<sip:1001@pbx>, <sip:1002@pbx;cause=480>"],
            &[],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("no-answer"), TargetSource::HistoryInfo)
        );
    }

    #[test]
    fn request_uri_target_from_the_issue() {
        let uri = "sip:voicemail@host;target=sip:1001%40host;cause=486";
        let parsed = Uri::try_from(uri).unwrap();
        assert_eq!(parsed.user(), Some("voicemail"));
        assert_eq!(
            other_param(&parsed.params, "target"),
            Some("sip:1001%40host")
        );
        let r = resolve(&request(uri, None, &[], &[])).unwrap();
        assert_eq!(
            r,
            target("1001", Some("user-busy"), TargetSource::RequestUriTarget)
        );
    }

    #[test]
    fn request_uri_target_cause_408_is_no_answer() {
        let r = resolve(&request(
            "sip:voicemail@vm;target=sip:1001%40pbx;cause=408",
            None,
            &[],
            &[],
        ))
        .unwrap();
        assert_eq!(
            r,
            target("1001", Some("no-answer"), TargetSource::RequestUriTarget)
        );
    }

    #[test]
    fn request_uri_cause_table() {
        for (cause, reason) in [
            ("404", Some("unknown")),
            ("486", Some("user-busy")),
            ("408", Some("no-answer")),
            ("480", Some("no-answer")),
            ("302", Some("unconditional")),
            ("487", Some("deflection")),
            ("503", Some("unavailable")),
            ("500", None),
            ("busy", None),
        ] {
            let uri = format!("sip:vm@vm;target=1001;cause={cause}");
            let r = resolve(&request(&uri, None, &[], &[])).unwrap();
            assert_eq!(r.reason.as_deref(), reason, "cause={cause}");
        }
    }

    #[test]
    fn request_uri_target_unescaped_tel_and_plain_forms() {
        for uri in [
            "sip:voicemail@vm;target=sip:1001@pbx;cause=486",
            "sip:voicemail@vm;target=tel:1001;cause=486",
            "sip:voicemail@vm;target=tel%3A%2B1001;cause=486",
            "sip:voicemail@vm;target=1001;cause=486",
            "sip:voicemail@vm;target=sip:%2B1001%40pbx%3Buser%3Dphone;cause=486",
        ] {
            let r = resolve(&request(uri, None, &[], &[])).unwrap();
            assert_eq!(
                r,
                target("1001", Some("user-busy"), TargetSource::RequestUriTarget),
                "{uri}"
            );
        }
    }

    #[test]
    fn request_uri_target_that_is_not_a_mailbox_falls_through() {
        let r = resolve(&request(
            "sip:voicemail@vm;target=sip:sales%40pbx",
            Some("<sip:1002@vm>"),
            &[],
            &[],
        ))
        .unwrap();
        assert_eq!(r, target("1002", None, TargetSource::To));
    }

    #[test]
    fn precedence_target_history_info_diversion_to_request_uri() {
        let hi: &[&str] = &["<sip:2002@pbx>;index=1"];
        let div: &[&str] = &["<sip:3003@pbx>;reason=no-answer"];
        let to = Some("<sip:4004@vm>");
        let with_target = "sip:5005@vm;target=sip:1001%40pbx";
        let without_target = "sip:5005@vm";

        let r = resolve(&request(with_target, to, hi, div)).unwrap();
        assert_eq!(
            (r.mailbox.as_str(), r.source),
            ("1001", TargetSource::RequestUriTarget)
        );
        let r = resolve(&request(without_target, to, hi, div)).unwrap();
        assert_eq!(
            (r.mailbox.as_str(), r.source),
            ("2002", TargetSource::HistoryInfo)
        );
        let r = resolve(&request(without_target, to, &[], div)).unwrap();
        assert_eq!(
            (r.mailbox.as_str(), r.source),
            ("3003", TargetSource::Diversion)
        );
        let r = resolve(&request(without_target, to, &[], &[])).unwrap();
        assert_eq!((r.mailbox.as_str(), r.source), ("4004", TargetSource::To));
        let r = resolve(&request(without_target, None, &[], &[])).unwrap();
        assert_eq!(
            (r.mailbox.as_str(), r.source),
            ("5005", TargetSource::RequestUri)
        );
    }

    #[test]
    fn no_digits_anywhere_is_no_mailbox() {
        let err = resolve(&request(
            "sip:voicemail@vm;target=sip:sales%40pbx",
            Some("<sip:voicemail@vm>"),
            &["<sip:support@pbx>;index=1"],
            &["<sip:reception@pbx>;reason=no-answer"],
        ))
        .unwrap_err();
        assert_eq!(
            err,
            MailboxError::NoMailbox {
                request_uri: "sip:voicemail@vm;target=sip:sales%40pbx".to_string()
            }
        );
        assert!(err.to_string().contains("sip:voicemail@vm"));
    }

    #[test]
    fn error_request_uri_is_truncated() {
        let long = format!("sip:{}@vm", "é".repeat(400));
        let MailboxError::NoMailbox { request_uri } =
            resolve(&request(&long, None, &[], &[])).unwrap_err();
        assert!(request_uri.len() <= MAX_ERROR_URI_LEN);
        assert!(long.starts_with(&request_uri));
    }

    #[test]
    fn path_traversal_is_skipped_everywhere() {
        for bad in [
            "sip:..%2F..%2Fetc@x",
            "sip:1001/..@x",
            "sip:../1001@x",
            "sip:1001%2F..@x",
            "sip:%2E%2E@x",
            "sip:1001%00@x",
            "sip:1001%@x",
        ] {
            let quoted = format!("<{bad}>");
            let target = format!("sip:vm@vm;target={}", bad.replace('@', "%40"));
            let hi = [format!("{quoted};index=1")];
            let hi: Vec<&str> = hi.iter().map(String::as_str).collect();
            let div = [quoted.as_str()];
            assert!(resolve(&request(bad, None, &[], &[])).is_err(), "{bad}");
            assert!(
                resolve(&request(&target, None, &[], &[])).is_err(),
                "{target}"
            );
            assert!(
                resolve(&request("sip:vm@vm", Some(&quoted), &hi, &div)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn percent_encoded_digits_are_the_same_user() {
        // RFC 3261 §19.1.4: escaped and unescaped user characters are equal.
        let r = resolve(&request("sip:%31%30%30%31@vm", None, &[], &[])).unwrap();
        assert_eq!(r.mailbox, "1001");
    }

    #[test]
    fn tel_uris_and_telephone_number_users() {
        let cases = [
            ("<tel:+1-555-0100;phone-context=example.com>", "15550100"),
            ("<tel:(555)0100>", "5550100"),
            ("<sip:+1.555.0100@pbx>", "15550100"),
            ("<sip:555-0100@pbx;user=phone>", "5550100"),
            ("<sip:5550100;phone-context=+1212@gw;user=phone>", "5550100"),
        ];
        for (div, mailbox) in cases {
            let r = resolve(&request("sip:vm@vm", None, &[], &[div])).unwrap();
            assert_eq!(
                (r.mailbox.as_str(), r.source),
                (mailbox, TargetSource::Diversion),
                "{div}"
            );
        }
    }

    #[test]
    fn separators_are_not_removed_from_plain_sip_users() {
        // Without `+`, `user=phone` or a tel: URI the user is not a
        // telephone number, so `10.0.0.1` must not become mailbox 10001.
        assert!(resolve(&request("sip:10.0.0.1@vm", None, &[], &[])).is_err());
        assert!(resolve(&request("sip:555-0100@vm", None, &[], &[])).is_err());
        assert!(resolve(&request("sip:10.0.0.1;target=sip:x@h", None, &[], &[])).is_err());
    }

    #[test]
    fn other_schemes_never_name_a_mailbox() {
        assert!(resolve(&request("mailto:1001@example.com", None, &[], &[])).is_err());
        assert!(resolve(&request("sip:vm@vm", Some("<http://1001@x>"), &[], &[])).is_err());
    }

    #[test]
    fn split_entries_respects_quotes_and_angles() {
        assert_eq!(
            split_entries(r#""a, \"b\", c" <sip:1@x;p=a,b>;r=1 , <sip:2@x>,,"#),
            vec![r#""a, \"b\", c" <sip:1@x;p=a,b>;r=1"#, "<sip:2@x>"]
        );
        assert!(split_entries("  ").is_empty());
    }

    #[test]
    fn target_source_display() {
        assert_eq!(
            TargetSource::RequestUriTarget.to_string(),
            "request-uri-target"
        );
        assert_eq!(TargetSource::HistoryInfo.to_string(), "history-info");
        assert_eq!(TargetSource::Diversion.to_string(), "diversion");
        assert_eq!(TargetSource::To.to_string(), "to");
        assert_eq!(TargetSource::RequestUri.to_string(), "request-uri");
    }

    /// xorshift64*: a fixed-seed generator so the fuzz run is reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn mangle(rng: &mut Rng, seed: &str) -> String {
        const ALPHABET: &[char] = &[
            '<',
            '>',
            '"',
            '\\',
            ',',
            ';',
            '=',
            '@',
            ':',
            '%',
            '?',
            '&',
            '[',
            ']',
            '.',
            '/',
            '+',
            '-',
            '1',
            '0',
            'a',
            ' ',
            '\t',
            '\0',
            'é',
            '€',
            '\u{10FFFF}',
        ];
        let mut chars: Vec<char> = seed.chars().collect();
        for _ in 0..=rng.below(6) {
            let at = rng.below(chars.len() + 1);
            match rng.below(4) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => chars.truncate(at),
                _ => chars.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
            }
        }
        chars.into_iter().collect()
    }

    #[test]
    fn mangled_header_values_never_panic_and_results_stay_valid() {
        let seeds = [
            "sip:voicemail@host;target=sip:1001%40host;cause=486",
            "\"Smith, John\" <sip:1001@pbx;user=phone>;reason=\"no-answer\";counter=1",
            "<sip:1001@pbx?Reason=SIP%3Bcause%3D486>;index=1, <sip:vm@vm;cause=408>;index=1.1",
            "<tel:+1-555-0100;phone-context=example.com>",
            "sip:5550100;phone-context=+1212@gw;user=phone",
            "sip:[::1]:5060;transport=tcp",
            "<sip:a:b@[2001:db8::1]:5060;lr>;tag=x",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut resolved = 0;
        for _ in 0..2000 {
            let values: Vec<String> = (0..4)
                .map(|_| {
                    let seed = seeds[rng.below(seeds.len())];
                    mangle(&mut rng, seed)
                })
                .collect();
            let hi = [values[2].as_str()];
            let div = [values[3].as_str()];
            let req = request(&values[0], Some(&values[1]), &hi, &div);
            if let Ok(t) = resolve(&req) {
                resolved += 1;
                assert!(is_valid_mailbox(&t.mailbox), "{req:?} -> {t:?}");
                if let Some(reason) = &t.reason {
                    assert!(reason_token(reason).is_some(), "{req:?} -> {t:?}");
                }
            }
        }
        // Most mangles keep some valid mailbox somewhere; if none resolved,
        // the fuzz would be exercising only the error path.
        assert!(resolved > 500, "only {resolved} resolved");
    }
}

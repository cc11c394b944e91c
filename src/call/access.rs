//! Deposit or retrieval: is this caller leaving a message, or an owner
//! calling in to listen?
//!
//! Decided by the INVITE alone. A call whose Request-URI user is one of the
//! profile's retrieval pilots (`retrieval.pilots`, default `*97`, `*98`,
//! `voicemail-main`) and that carries no redirection information is a
//! retrieval call; every other call is a deposit, as before. Redirection
//! information is what a PBX adds when it forwards a call to voicemail on
//! someone's behalf: the RFC 4458 `target` URI parameter (§3.1), a
//! Diversion header (RFC 5806), or History-Info (RFC 7044) naming a target
//! other than the pilot. A forwarded call that happens to reach a pilot
//! user is still a deposit for the forwarding party, never a way into
//! their mailbox.
//!
//! For `*97`-style pilots the mailbox is the caller's own: the first
//! P-Asserted-Identity (RFC 3325 §9.1) that names a mailbox, else the From
//! user ([`caller_mailbox`]). Whether that mailbox exists is the caller's
//! (the call layer's) question; P-Asserted-Identity is only as trustworthy
//! as the PBX in front of vmesh, and the PIN is asked for in any case.
//!
//! Like mailbox resolution, the core works on header values as text so it
//! is tested without a SIP stack; [`purpose_of`] and [`caller_mailbox_of`]
//! bridge from an rsipstack request.

use percent_encoding::percent_decode_str;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::typed::To;
use rsipstack::sip::{Header, Param, Request, Scheme, Uri};

use super::parties::Redirections;
use crate::config::{is_valid_mailbox, PilotKind, RetrievalConfig};

/// The parts of an INVITE that decide its purpose.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessRequest<'a> {
    /// The Request-URI.
    pub request_uri: &'a str,
    /// Every History-Info header value, top to bottom.
    pub history_info: &'a [&'a str],
    /// Every Diversion header value, top to bottom.
    pub diversion: &'a [&'a str],
}

/// What a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPurpose {
    /// Leave a message (mailbox resolution decides for whom).
    Deposit,
    /// An owner calling in, through a pilot of this kind.
    Retrieval(PilotKind),
}

/// Classifies a call by its Request-URI user and redirection headers.
pub fn classify(req: &AccessRequest<'_>, config: &RetrievalConfig) -> CallPurpose {
    let Ok(uri) = Uri::try_from(req.request_uri) else {
        return CallPurpose::Deposit;
    };
    let Some(user) = uri_user(&uri) else {
        return CallPurpose::Deposit;
    };
    let Some(pilot) = config.pilot(&user) else {
        return CallPurpose::Deposit;
    };
    let redirected = has_target_param(&uri)
        || req.diversion.iter().any(|d| !d.trim().is_empty())
        || history_names_another_target(req.history_info, &user);
    if redirected {
        CallPurpose::Deposit
    } else {
        CallPurpose::Retrieval(pilot.kind)
    }
}

/// The mailbox of the caller's identity: the first P-Asserted-Identity
/// entry that names a mailbox, else the From URI's, else none. A `tel:`
/// URI or a `sip:` URI whose user is a telephone number names the number
/// (a leading `+` and visual separators removed).
pub fn caller_mailbox(p_asserted_identity: &[&str], from: Option<&str>) -> Option<String> {
    p_asserted_identity
        .iter()
        .flat_map(|h| h.split(','))
        .chain(from)
        .filter_map(|entry| To::parse(entry.trim()).ok())
        .find_map(|addr| mailbox_of_uri(&addr.uri))
}

/// [`classify`] for a parsed INVITE.
pub fn purpose_of(req: &Request, config: &RetrievalConfig) -> CallPurpose {
    let request_uri = req.uri.to_string();
    let found = Redirections::of(req);
    let history_info: Vec<&str> = found.history_info.iter().map(String::as_str).collect();
    let diversion: Vec<&str> = found.diversion.iter().map(String::as_str).collect();
    classify(
        &AccessRequest {
            request_uri: &request_uri,
            history_info: &history_info,
            diversion: &diversion,
        },
        config,
    )
}

/// [`caller_mailbox`] for a parsed INVITE.
pub fn caller_mailbox_of(req: &Request) -> Option<String> {
    let mut asserted = Vec::new();
    for header in req.headers.iter() {
        match header {
            Header::PAssertedIdentity(h) => asserted.push(h.value().to_string()),
            Header::Other(name, value) if name.eq_ignore_ascii_case("p-asserted-identity") => {
                asserted.push(value.clone())
            }
            _ => {}
        }
    }
    let asserted: Vec<&str> = asserted.iter().map(String::as_str).collect();
    let from = req.from_header().ok().map(|f| f.value().to_string());
    caller_mailbox(&asserted, from.as_deref())
}

/// The percent-decoded user part of a sip/sips URI.
fn uri_user(uri: &Uri) -> Option<String> {
    if matches!(uri.scheme, Some(Scheme::Other(_))) {
        return None;
    }
    let auth = uri.auth.as_ref()?;
    percent_decode_str(&auth.user)
        .decode_utf8()
        .ok()
        .map(|u| u.into_owned())
}

/// RFC 4458 §3.1: `sip:voicemail@vm;target=...`.
fn has_target_param(uri: &Uri) -> bool {
    uri.params
        .iter()
        .any(|p| matches!(p, Param::Other(name, _) if name.value().eq_ignore_ascii_case("target")))
}

/// True when History-Info names any target but the pilot itself: a PBX
/// may record the request it sent (one entry, the pilot) without having
/// retargeted anything.
fn history_names_another_target(history_info: &[&str], pilot_user: &str) -> bool {
    history_info
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            let uri = To::parse(entry).ok().map(|to| to.uri);
            uri.as_ref().and_then(uri_user).as_deref() != Some(pilot_user)
        })
}

/// The mailbox a URI names, if its user part (or `tel:` number) is one.
fn mailbox_of_uri(uri: &Uri) -> Option<String> {
    let number = match &uri.scheme {
        Some(Scheme::Other(s)) if s.eq_ignore_ascii_case("tel") => uri.host().to_string(),
        Some(Scheme::Other(_)) => return None,
        _ => uri_user(uri)?,
    };
    let number = number.split(';').next().unwrap_or_default();
    let number = number.strip_prefix('+').unwrap_or(number);
    let digits: String = number
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    is_valid_mailbox(&digits).then_some(digits)
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;

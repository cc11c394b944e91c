//! Deciding what a SUBSCRIBE asks for and what to answer (RFC 6665
//! §4.2.1), from the facts of the request alone: no I/O, no clock.
//!
//! - `Event` must name `message-summary` (RFC 3842 §3.1), else 489 Bad
//!   Event with `Allow-Events` (RFC 6665 §4.2.1, §8.2.2). Its `id`
//!   parameter, if any, names the subscription within the dialog (§8.2.1).
//! - `Accept`, if present, must allow `application/simple-message-summary`,
//!   else 406 (§4.2.1.1 lets a notifier refuse a body it cannot send).
//! - `Expires`: none means the package's default, one hour (RFC 3842
//!   §3.4); a notifier may shorten a duration but not lengthen it, and
//!   answers 423 with `Min-Expires` to one below its minimum (§4.2.1.1).
//!   Zero ends the subscription (an unsubscribe, §4.1.2.3) or, outside a
//!   dialog, asks for the state once (a fetch, §4.4.3).
//! - The mailbox is the user part of the Request-URI (RFC 3842 §3.7), or
//!   of To when that is not a mailbox.

use std::time::Duration;

use super::summary::{CONTENT_TYPE, EVENT_PACKAGE};
use crate::config::is_valid_mailbox;

/// The parts of a SUBSCRIBE that decide its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeFacts {
    /// The `Event` header value (`message-summary;id=1`), if any.
    pub event: Option<String>,
    /// The `Expires` header value, if any, as sent.
    pub expires: Option<String>,
    /// Every `Accept` header value.
    pub accept: Vec<String>,
    /// The user part of the Request-URI.
    pub request_user: Option<String>,
    /// The user part of the To URI.
    pub to_user: Option<String>,
}

/// The notifier's expiry bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryBounds {
    /// Shorter (non-zero) requests get 423.
    pub min: Duration,
    /// Longer requests, and requests without `Expires`, get this.
    pub max: Duration,
}

/// A refusal and the headers that explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: a malformed `Expires`.
    BadRequest(String),
    /// 404: no mailbox named.
    NoMailbox,
    /// 406: the subscriber accepts no body we can send.
    NotAcceptable,
    /// 423 with `Min-Expires`.
    IntervalTooBrief { min_expires: u64 },
    /// 489 with `Allow-Events: message-summary`.
    BadEvent,
}

impl Refusal {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::NoMailbox => 404,
            Refusal::NotAcceptable => 406,
            Refusal::IntervalTooBrief { .. } => 423,
            Refusal::BadEvent => 489,
        }
    }
}

/// What a well-formed SUBSCRIBE asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The mailbox.
    pub mailbox: String,
    /// The `id` of the Event header, if any.
    pub event_id: Option<String>,
    /// Granted duration; zero: unsubscribe (or fetch).
    pub duration: Duration,
}

/// Checks a SUBSCRIBE's facts and says what it asks for.
pub fn evaluate(facts: &SubscribeFacts, bounds: ExpiryBounds) -> Result<SubscribeRequest, Refusal> {
    let event_id = event_id(facts.event.as_deref()).ok_or(Refusal::BadEvent)?;
    if !facts.accept.is_empty() && !accepts_summary(&facts.accept) {
        return Err(Refusal::NotAcceptable);
    }
    let mailbox = [&facts.request_user, &facts.to_user]
        .into_iter()
        .flatten()
        .find(|u| is_valid_mailbox(u))
        .cloned()
        .ok_or(Refusal::NoMailbox)?;
    let duration = match facts.expires.as_deref().map(str::trim) {
        None => bounds.max,
        Some(text) => {
            let secs: u64 = text
                .parse()
                .map_err(|_| Refusal::BadRequest(format!("Expires {text:?} is not a number")))?;
            let asked = Duration::from_secs(secs);
            if secs == 0 {
                Duration::ZERO
            } else if asked < bounds.min {
                return Err(Refusal::IntervalTooBrief {
                    min_expires: bounds.min.as_secs(),
                });
            } else {
                asked.min(bounds.max)
            }
        }
    };
    Ok(SubscribeRequest {
        mailbox,
        event_id,
        duration,
    })
}

/// `Some(id)` when the Event header names this package (its `id`
/// parameter, if any), `None` otherwise.
fn event_id(event: Option<&str>) -> Option<Option<String>> {
    let mut parts = event?.split(';');
    let package = parts.next()?.trim();
    if !package.eq_ignore_ascii_case(EVENT_PACKAGE) {
        return None;
    }
    let id = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("id")
            .then(|| value.trim().to_owned())
    });
    Some(id)
}

/// Whether Accept values allow the summary body (a wildcard does).
fn accepts_summary(accept: &[String]) -> bool {
    let (kind, sub) = CONTENT_TYPE.split_once('/').unwrap_or((CONTENT_TYPE, ""));
    accept
        .iter()
        .flat_map(|v| v.split(','))
        .map(|range| range.split(';').next().unwrap_or("").trim())
        .any(|range| {
            let (k, s) = range.split_once('/').unwrap_or((range, ""));
            (k == "*" || k.eq_ignore_ascii_case(kind)) && (s == "*" || s.eq_ignore_ascii_case(sub))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: ExpiryBounds = ExpiryBounds {
        min: Duration::from_secs(60),
        max: Duration::from_secs(3600),
    };

    fn facts(event: &str, expires: Option<&str>) -> SubscribeFacts {
        SubscribeFacts {
            event: Some(event.into()),
            expires: expires.map(Into::into),
            accept: vec![],
            request_user: Some("1001".into()),
            to_user: Some("1001".into()),
        }
    }

    #[test]
    fn a_subscription_for_a_mailbox_is_granted_within_the_bounds() {
        let granted = evaluate(&facts("message-summary", Some("600")), BOUNDS).unwrap();
        assert_eq!(
            granted,
            SubscribeRequest {
                mailbox: "1001".into(),
                event_id: None,
                duration: Duration::from_secs(600),
            }
        );
        // None asked: the package's hour. Too long: shortened.
        for asked in [None, Some("86400")] {
            assert_eq!(
                evaluate(&facts("message-summary", asked), BOUNDS)
                    .unwrap()
                    .duration,
                Duration::from_secs(3600)
            );
        }
        // Zero: unsubscribe or fetch.
        assert_eq!(
            evaluate(&facts("Message-Summary ; id=7", Some("0")), BOUNDS).unwrap(),
            SubscribeRequest {
                mailbox: "1001".into(),
                event_id: Some("7".into()),
                duration: Duration::ZERO,
            }
        );
    }

    #[test]
    fn refusals_carry_the_status_rfc_6665_gives_them() {
        let refused = |f: SubscribeFacts| evaluate(&f, BOUNDS).unwrap_err();
        assert_eq!(refused(facts("presence", None)), Refusal::BadEvent);
        assert_eq!(refused(facts("presence", None)).status(), 489);
        let mut none = facts("x", None);
        none.event = None;
        assert_eq!(refused(none).status(), 489);
        assert_eq!(
            refused(facts("message-summary", Some("30"))),
            Refusal::IntervalTooBrief { min_expires: 60 }
        );
        assert_eq!(
            refused(facts("message-summary", Some("soon"))).status(),
            400
        );
        let mut xml_only = facts("message-summary", None);
        xml_only.accept = vec!["application/pidf+xml".into()];
        assert_eq!(refused(xml_only), Refusal::NotAcceptable);
        let mut nobody = facts("message-summary", None);
        nobody.request_user = Some("voicemail".into());
        nobody.to_user = None;
        assert_eq!(refused(nobody), Refusal::NoMailbox);
    }

    #[test]
    fn accept_and_mailbox_sources() {
        let mut f = facts("message-summary", None);
        f.accept = vec!["application/pidf+xml, application/simple-message-summary;q=0.5".into()];
        assert!(evaluate(&f, BOUNDS).is_ok());
        f.accept = vec!["application/*".into()];
        assert!(evaluate(&f, BOUNDS).is_ok());
        // A pilot Request-URI, the mailbox in To.
        f.request_user = Some("voicemail".into());
        f.to_user = Some("2002".into());
        assert_eq!(evaluate(&f, BOUNDS).unwrap().mailbox, "2002");
    }
}

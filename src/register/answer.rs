//! Reading a REGISTER's final response into what the state machine needs.
//!
//! The interesting part is the granted lifetime (RFC 3261 §10.2.4): a 2xx
//! lists every binding of the address of record, other devices' too, each
//! with its `expires` parameter; ours is the one whose URI matches the
//! Contact we sent (§19.1.4 comparison: scheme, user, host, port and
//! transport, with the defaults filled in). Without an `expires` parameter
//! the Expires header applies, and without that the lifetime we asked
//! for. A 2xx that lists bindings but not ours did not keep us.

use std::time::Duration;

use rsipstack::sip::prelude::{HasHeaders, HeadersExt};
use rsipstack::sip::{Header, Param, Response, Scheme, Transport, Uri};

use super::machine::Answer;
use crate::sip::digest::Challenge;

/// The [`Answer`] carried by `response` to the REGISTER with CSeq `cseq`,
/// which registered `contact` asking for `requested` seconds.
pub fn answer_of(response: &Response, cseq: u32, contact: &Uri, requested: u32) -> Answer {
    let status = response.status_code.code();
    let reason = response
        .wire_reason
        .clone()
        .unwrap_or_else(|| response.status_code.text().to_string());
    let challenge = Challenge::of_response(response).map(|(_, challenge)| challenge);
    let expires_header = response
        .expires_header()
        .and_then(|h| leading_number(h.value()));
    let granted = if (200..300).contains(&status) {
        granted(response, contact, expires_header.unwrap_or(requested))
    } else {
        None
    };
    Answer {
        cseq,
        status,
        reason,
        granted,
        min_expires: response
            .min_expires_header()
            .and_then(|h| leading_number(h.value())),
        retry_after: response
            .headers()
            .iter()
            .find_map(|h| match h {
                Header::RetryAfter(v) => leading_number(v.value()),
                _ => None,
            })
            .map(|s| Duration::from_secs(u64::from(s))),
        challenge,
    }
}

/// The lifetime the registrar granted our binding: `None` when it lists
/// bindings and ours is not among them.
fn granted(response: &Response, contact: &Uri, default: u32) -> Option<Duration> {
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    let bindings = response.typed_contact_headers().unwrap_or_default();
    if bindings.is_empty() {
        return Some(secs(default));
    }
    bindings
        .iter()
        .filter(|b| same_binding(&b.uri, contact))
        .map(|b| b.expires().unwrap_or(default))
        .min()
        .map(secs)
}

/// Whether two Contact URIs name the same binding (RFC 3261 §10.3 step 6
/// compares them by §19.1.4).
fn same_binding(a: &Uri, b: &Uri) -> bool {
    let scheme = |u: &Uri| u.scheme.clone().unwrap_or(Scheme::Sip);
    let user = |u: &Uri| u.auth.as_ref().map(|a| a.user.clone());
    let transport = |u: &Uri| {
        u.params
            .iter()
            .find_map(|p| match p {
                Param::Transport(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(match scheme(u) {
                Scheme::Sips => Transport::Tls,
                _ => Transport::Udp,
            })
    };
    let port = |u: &Uri| {
        u.host_with_port
            .port
            .as_ref()
            .map(|p| p.value())
            .unwrap_or(match scheme(u) {
                Scheme::Sips => 5061,
                _ => 5060,
            })
    };
    scheme(a) == scheme(b)
        && user(a) == user(b)
        && a.host_with_port
            .host
            .to_string()
            .eq_ignore_ascii_case(&b.host_with_port.host.to_string())
        && port(a) == port(b)
        && transport(a) == transport(b)
}

/// The number a header value starts with (`120`, `120 (busy)`,
/// `120;duration=60`).
fn leading_number(value: &str) -> Option<u32> {
    let digits: String = value
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::ChallengeError;

    fn response(status_line: &str, extra: &str) -> Response {
        format!(
            "SIP/2.0 {status_line}\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n\
             From: <sip:vm@127.0.0.9>;tag=a\r\n\
             To: <sip:vm@127.0.0.9>;tag=b\r\n\
             Call-ID: reg-1\r\n\
             CSeq: 4 REGISTER\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n"
        )
        .as_str()
        .try_into()
        .unwrap()
    }

    fn ours() -> Uri {
        Uri::try_from("sip:vm@127.0.0.1:5060").unwrap()
    }

    fn granted_in(extra: &str) -> Option<Duration> {
        answer_of(&response("200 OK", extra), 4, &ours(), 600).granted
    }

    #[test]
    fn finds_our_binding_among_others() {
        let two = "Contact: <sip:vm@127.0.0.7:5060>;expires=30, <sip:vm@127.0.0.1>;expires=300\r\n";
        assert_eq!(granted_in(two), Some(Duration::from_secs(300)));
        let separate = "Contact: <sip:vm@127.0.0.7:5060>;expires=30\r\n\
                        Contact: <sip:VM@127.0.0.1:5060;transport=udp>;expires=120\r\n";
        // The user part is case-sensitive: VM is another binding.
        assert_eq!(granted_in(separate), None);
        let kamailio =
            "Contact: <sip:vm@127.0.0.1:5060>;expires=600;received=\"sip:127.0.0.1:5060\"\r\n";
        assert_eq!(granted_in(kamailio), Some(Duration::from_secs(600)));
    }

    #[test]
    fn falls_back_to_the_expires_header_then_the_request() {
        let no_param = "Contact: <sip:vm@127.0.0.1:5060>\r\nExpires: 90\r\n";
        assert_eq!(granted_in(no_param), Some(Duration::from_secs(90)));
        assert_eq!(
            granted_in("Contact: <sip:vm@127.0.0.1:5060>\r\n"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(granted_in(""), Some(Duration::from_secs(600)));
        let tcp = "Contact: <sip:vm@127.0.0.1:5060;transport=tcp>;expires=60\r\n";
        assert_eq!(
            granted_in(tcp),
            None,
            "another transport is another binding"
        );
    }

    #[test]
    fn reads_challenges_min_expires_and_retry_after() {
        let a = answer_of(
            &response(
                "401 Unauthorized",
                "WWW-Authenticate: Digest realm=\"r\", nonce=\"a\", algorithm=SHA-512\r\n\
                 WWW-Authenticate: Digest realm=\"r\", nonce=\"b\", algorithm=SHA-256, qop=\"auth\"\r\n",
            ),
            4,
            &ours(),
            600,
        );
        assert_eq!((a.status, a.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(a.challenge.unwrap().nonce, "b");
        let a = answer_of(
            &response(
                "407 Proxy Authentication Required",
                "Proxy-Authenticate: Digest realm=\"p\", nonce=\"c\"\r\n",
            ),
            4,
            &ours(),
            600,
        );
        assert_eq!(a.challenge.unwrap().realm, "p");
        let a = answer_of(
            &response("423 Interval Too Brief", "Min-Expires: 1800\r\n"),
            4,
            &ours(),
            60,
        );
        assert_eq!(a.min_expires, Some(1800));
        assert_eq!(a.granted, None);
        let a = answer_of(
            &response("503 Maintenance", "Retry-After: 120 (back soon)\r\n"),
            4,
            &ours(),
            600,
        );
        assert_eq!(a.retry_after, Some(Duration::from_secs(120)));
        assert_eq!(a.reason, "Maintenance");
        assert_eq!(a.challenge, Err(ChallengeError::NoChallenge));
    }
}

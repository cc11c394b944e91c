//! The parties of a call, read from an rsipstack INVITE.
//!
//! Mailbox resolution ([`super::mailbox`]) works on header values as text so
//! that it can be tested without a SIP stack; this module is the bridge that
//! collects those values (every History-Info and Diversion header, in order)
//! and the caller's identity from a parsed request.

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Request};

use super::mailbox::{resolve, MailboxError, MailboxRequest, MailboxTarget};

/// The caller as the message index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The From URI, e.g. `sip:alice@pbx.example`.
    pub uri: String,
    /// The From display name, unquoted, if any.
    pub display_name: Option<String>,
}

/// The redirection headers of a request as text, each in order from the
/// top: History-Info (RFC 7044) and Diversion (RFC 5806) values, typed by
/// rsipstack or not.
#[derive(Debug, Default)]
pub struct Redirections {
    pub history_info: Vec<String>,
    pub diversion: Vec<String>,
}

impl Redirections {
    /// Those of `req`.
    pub fn of(req: &Request) -> Redirections {
        let mut found = Redirections::default();
        for header in req.headers.iter() {
            match header {
                Header::HistoryInfo(h) => found.history_info.push(h.value().to_string()),
                Header::Diversion(d) => found.diversion.push(d.value().to_string()),
                Header::Other(name, value) if name.eq_ignore_ascii_case("history-info") => {
                    found.history_info.push(value.clone())
                }
                Header::Other(name, value) if name.eq_ignore_ascii_case("diversion") => {
                    found.diversion.push(value.clone())
                }
                _ => {}
            }
        }
        found
    }
}

/// Resolves the mailbox an INVITE is for (RFC 4458, RFC 7044, RFC 5806, To,
/// Request-URI, in that order).
pub fn mailbox_of(req: &Request) -> Result<MailboxTarget, MailboxError> {
    let request_uri = req.uri.to_string();
    let to = req.to_header().ok().map(|t| t.value().to_string());
    let found = Redirections::of(req);
    let history_info: Vec<&str> = found.history_info.iter().map(String::as_str).collect();
    let diversion: Vec<&str> = found.diversion.iter().map(String::as_str).collect();
    resolve(&MailboxRequest {
        request_uri: &request_uri,
        to: to.as_deref(),
        history_info: &history_info,
        diversion: &diversion,
    })
}

/// The caller of an INVITE, from its From header.
pub fn caller_of(req: &Request) -> Caller {
    let Ok(from) = req.from_header() else {
        return Caller {
            uri: String::new(),
            display_name: None,
        };
    };
    let Ok(typed) = from.typed() else {
        return Caller {
            uri: from.value().to_string(),
            display_name: None,
        };
    };
    let display_name = typed
        .display_name
        .map(|d| d.trim().trim_matches('"').to_string())
        .filter(|d| !d.is_empty());
    let uri = typed.uri.to_string();
    Caller { uri, display_name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::SipMessage;

    fn invite(extra: &str, ruri: &str) -> Request {
        let raw = format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
             From: \"Alice Smith\" <sip:alice@pbx.example>;tag=1\r\n\
             To: <sip:voicemail@vm.example>\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match SipMessage::try_from(raw.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn pilot_user_with_diversion() {
        let req = invite(
            "Diversion: <sip:1001@pbx.example>;reason=user-busy;counter=1\r\n",
            "sip:voicemail@vm.example",
        );
        let t = mailbox_of(&req).expect("mailbox");
        assert_eq!(t.mailbox, "1001");
        assert_eq!(t.reason.as_deref(), Some("user-busy"));
    }

    #[test]
    fn history_info_headers_are_collected_in_order() {
        let req = invite(
            "History-Info: <sip:2002@pbx.example>;index=1\r\n\
             History-Info: <sip:voicemail@vm.example;cause=408>;index=1.1\r\n",
            "sip:voicemail@vm.example",
        );
        let t = mailbox_of(&req).expect("mailbox");
        assert_eq!(t.mailbox, "2002");
        assert_eq!(t.reason.as_deref(), Some("no-answer"));
    }

    #[test]
    fn rfc4458_target() {
        let req = invite(
            "",
            "sip:voicemail@vm.example;target=sip:1001%40vm.example;cause=486",
        );
        let t = mailbox_of(&req).expect("mailbox");
        assert_eq!(t.mailbox, "1001");
        assert_eq!(t.reason.as_deref(), Some("user-busy"));
    }

    #[test]
    fn caller_identity() {
        let req = invite("", "sip:1001@vm.example");
        let c = caller_of(&req);
        assert_eq!(c.uri, "sip:alice@pbx.example");
        assert_eq!(c.display_name.as_deref(), Some("Alice Smith"));
    }
}

//! The REGISTER request itself (RFC 3261 §10.2).
//!
//! - Request-URI: the registrar, without user part (§10.2).
//! - To and From: the address of record, `sip:USER@REGISTRAR-HOST`; a new
//!   From tag per request (each REGISTER is its own transaction, outside
//!   any dialog).
//! - Call-ID: one per registration for the life of the process, with CSeq
//!   increasing by one per request, so the registrar orders them (§10.2.4).
//! - Contact: vmesh's own listen address, where the PBX will send calls
//!   for the user, with `transport=tcp` when that is how to reach it.
//! - Expires: the lifetime asked for, or 0 to remove the binding (§10.2.2).
//! - Route: the outbound proxy, when there is one (§8.1.2, loose routing).
//! - Allow: what vmesh answers, so the PBX knows before calling.
//! - Authorization / Proxy-Authorization: the digest answers, if any.
//!
//! Built as text and parsed back with rsipstack's parser, so the message
//! that leaves is exactly one the parser (and so any peer) accepts, and the
//! tests can read it as a PBX would.

use rsipstack::sip::Request;

use super::authorizer::AuthorizationHeader;
use super::machine::Register;
use crate::config::{ListenTransport, RegisterConfig};
use crate::sip::responses::allow_line;

/// What identifies one REGISTER besides the entry and the machine's
/// decision: the per-registration Call-ID, and per-request tokens.
#[derive(Debug, Clone, Copy)]
pub struct Identifiers<'a> {
    pub call_id: &'a str,
    pub from_tag: &'a str,
    pub branch: &'a str,
    pub user_agent: &'a str,
}

/// The REGISTER's Request-URI: the registrar's URI as written in the
/// profile's canonical form.
pub fn request_uri(entry: &RegisterConfig) -> String {
    entry.registrar.to_string()
}

/// The text of the REGISTER `register` for `entry`.
pub fn register_text(entry: &RegisterConfig, register: &Register, ids: &Identifiers<'_>) -> String {
    let transport = match entry.local.transport {
        ListenTransport::Udp => "UDP",
        ListenTransport::Tcp => "TCP",
        ListenTransport::Tls => "TLS",
    };
    let sent_by = match entry.contact_ip {
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", entry.local.addr.port()),
        ip => format!("{ip}:{}", entry.local.addr.port()),
    };
    let aor = entry.address_of_record();
    let mut text = format!(
        "REGISTER {uri} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {sent_by};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <{aor}>;tag={tag}\r\n\
         To: <{aor}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <{contact}>\r\n\
         Expires: {expires}\r\n\
         {allow}\r\n\
         User-Agent: {user_agent}\r\n",
        uri = request_uri(entry),
        branch = ids.branch,
        tag = ids.from_tag,
        call_id = ids.call_id,
        cseq = register.cseq,
        contact = entry.contact_uri(),
        expires = register.expires,
        allow = allow_line(),
        user_agent = ids.user_agent,
    );
    if let Some(proxy) = &entry.outbound_proxy {
        text.push_str(&format!("Route: <{proxy};lr>\r\n"));
    }
    for AuthorizationHeader { kind, value } in &register.authorization {
        text.push_str(&format!("{}: {value}\r\n", kind.answer_name()));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}

/// The REGISTER as a request for the transaction layer.
pub fn register_request(
    entry: &RegisterConfig,
    register: &Register,
    ids: &Identifiers<'_>,
) -> Result<Request, String> {
    let text = register_text(entry, register, ids);
    Request::try_from(text.as_str()).map_err(|e| format!("cannot build the REGISTER: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Profile, ProfileOrigin};
    use crate::sip::digest::ChallengeKind;

    fn entry(extra: &str) -> RegisterConfig {
        let text = format!(
            "[sip]\nlisten = [\"udp:127.0.0.5:5060\", \"tcp:127.0.0.5:5062\"]\n\
             [[register]]\nregistrar = \"sip:127.0.0.9:5080\"\nuser = \"voicemail\"\n{extra}"
        );
        let profile = Profile::parse(&text, ProfileOrigin::Embedded).unwrap();
        profile.register[0].clone()
    }

    const IDS: Identifiers<'static> = Identifiers {
        call_id: "c1@127.0.0.5",
        from_tag: "t1",
        branch: "z9hG4bKb1",
        user_agent: "vmesh/test",
    };

    #[test]
    fn a_first_register_names_the_aor_the_contact_and_the_lifetime() {
        let register = Register {
            cseq: 1,
            expires: 600,
            authorization: vec![],
        };
        let request = register_request(&entry(""), &register, &IDS).unwrap();
        let text = request.to_string();
        assert!(
            text.starts_with("REGISTER sip:127.0.0.9:5080 SIP/2.0\r\n"),
            "{text}"
        );
        for line in [
            "Via: SIP/2.0/UDP 127.0.0.5:5060;branch=z9hG4bKb1;rport",
            "From: <sip:voicemail@127.0.0.9>;tag=t1",
            "To: <sip:voicemail@127.0.0.9>",
            "Call-ID: c1@127.0.0.5",
            "CSeq: 1 REGISTER",
            "Contact: <sip:voicemail@127.0.0.5:5060>",
            "Expires: 600",
            "User-Agent: vmesh/test",
        ] {
            assert!(
                text.contains(&format!("{line}\r\n")),
                "no {line:?} in\n{text}"
            );
        }
        assert!(text.contains("\r\nAllow: INVITE"), "{text}");
        assert!(!text.contains("Authorization"));
        assert!(!text.contains("Route:"));
    }

    #[test]
    fn tcp_proxies_and_credentials_show_in_the_request() {
        let entry = entry("outbound_proxy = \"sip:127.0.0.8;transport=tcp;lr\"\n");
        let register = Register {
            cseq: 7,
            expires: 0,
            authorization: vec![
                AuthorizationHeader {
                    kind: ChallengeKind::Www,
                    value: "Digest username=\"voicemail\", realm=\"r\"".into(),
                },
                AuthorizationHeader {
                    kind: ChallengeKind::Proxy,
                    value: "Digest username=\"voicemail\", realm=\"p\"".into(),
                },
            ],
        };
        let text = register_text(&entry, &register, &IDS);
        Request::try_from(text.as_str()).unwrap();
        for line in [
            "Via: SIP/2.0/TCP 127.0.0.5:5062;branch=z9hG4bKb1;rport",
            "Contact: <sip:voicemail@127.0.0.5:5062;transport=tcp>",
            "Route: <sip:127.0.0.8;transport=tcp;lr>",
            "Expires: 0",
            "Authorization: Digest username=\"voicemail\", realm=\"r\"",
            "Proxy-Authorization: Digest username=\"voicemail\", realm=\"p\"",
        ] {
            assert!(
                text.contains(&format!("{line}\r\n")),
                "no {line:?} in\n{text}"
            );
        }
    }
}

//! DTMF digits carried in SIP INFO bodies, the fallback PBXs use when
//! RFC 4733 telephone-events are not negotiated (FreeSWITCH's
//! `dtmf_type=info`, Asterisk's `dtmf_mode=info`, Cisco gateways).
//!
//! Two bodies are in use, neither standardised beyond vendor practice
//! (RFC 2976 and RFC 6086's "legacy INFO usage" carry them):
//! - `application/dtmf-relay`: `key=value` lines, `Signal=5` and
//!   `Duration=160` (milliseconds), as Cisco defined it;
//! - `application/dtmf`: the bare key, `5`.
//!
//! Either names the key by its character (`0`-`9`, `*`, `#`, `A`-`D`) or,
//! for some senders, by its RFC 4733 §3.2 event code (`10` for `*`, `11`
//! for `#`). A digit parsed here is handed to the call's media core, which
//! treats it exactly like a telephone-event digit (see
//! [`super::CallMedia::signalled_digit`]). Sans-IO: a content type and a
//! body in, a digit out.

use std::time::Duration;

use super::dtmf::event_to_digit;

/// The content type of Cisco-style `Signal=` bodies.
pub const DTMF_RELAY: &str = "application/dtmf-relay";
/// The content type of bare-key bodies.
pub const DTMF: &str = "application/dtmf";

/// One key press reported by SIP INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    /// The key: `0`-`9`, `*`, `#` or `A`-`D`.
    pub digit: char,
    /// How long the key was held, when the body says (`Duration=`).
    pub duration: Option<Duration>,
}

/// Why an INFO body is not a DTMF key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoDtmfError {
    /// The content type is not one of the two DTMF bodies: the request
    /// is not DTMF at all (answered 415 with the types we accept).
    #[error("content type {0:?} is not a DTMF body")]
    NotDtmf(String),
    /// A DTMF content type whose body names no key (answered 400).
    #[error("DTMF body names no key: {0:?}")]
    Malformed(String),
}

/// Whether a Content-Type value (parameters and case ignored, RFC 3261
/// §7.3.1 and RFC 2045 §5.1) is one of the DTMF bodies.
pub fn is_dtmf_content_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    media.eq_ignore_ascii_case(DTMF_RELAY) || media.eq_ignore_ascii_case(DTMF)
}

/// Parses the body of an INFO request whose Content-Type is
/// `content_type`.
pub fn parse_info_dtmf(content_type: &str, body: &[u8]) -> Result<InfoDigit, InfoDtmfError> {
    let media = media_type(content_type);
    let text = String::from_utf8_lossy(body);
    let malformed = || InfoDtmfError::Malformed(text.chars().take(80).collect());
    if media.eq_ignore_ascii_case(DTMF_RELAY) {
        let mut digit = None;
        let mut duration = None;
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "signal" => digit = key_of(value),
                "duration" => duration = value.parse::<u64>().ok().map(Duration::from_millis),
                _ => {}
            }
        }
        let digit = digit.ok_or_else(malformed)?;
        Ok(InfoDigit { digit, duration })
    } else if media.eq_ignore_ascii_case(DTMF) {
        let digit = key_of(text.trim()).ok_or_else(malformed)?;
        Ok(InfoDigit {
            digit,
            duration: None,
        })
    } else {
        Err(InfoDtmfError::NotDtmf(media.to_owned()))
    }
}

/// The media type of a Content-Type value, without parameters.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// A key by its character or its RFC 4733 event code (0-15).
fn key_of(value: &str) -> Option<char> {
    let mut chars = value.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return match c.to_ascii_uppercase() {
            c @ ('0'..='9' | '*' | '#' | 'A'..='D') => Some(c),
            _ => None,
        };
    }
    value.parse::<u8>().ok().and_then(event_to_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_as_freeswitch_and_cisco_send_it() {
        let body = b"Signal=#\r\nDuration=160\r\n";
        assert_eq!(
            parse_info_dtmf("application/dtmf-relay", body),
            Ok(InfoDigit {
                digit: '#',
                duration: Some(Duration::from_millis(160))
            })
        );
        // Spaces around '=', LF line ends, other keys, any case.
        let body = b"signal = 5\nduration = 250\nx-extra=1\n";
        assert_eq!(
            parse_info_dtmf("Application/DTMF-Relay; charset=utf-8", body)
                .unwrap()
                .digit,
            '5'
        );
        // Event codes for the keys that are not digits.
        for (code, key) in [("10", '*'), ("11", '#'), ("12", 'A'), ("15", 'D')] {
            let body = format!("Signal={code}\r\nDuration=100\r\n");
            assert_eq!(
                parse_info_dtmf(DTMF_RELAY, body.as_bytes()).unwrap().digit,
                key
            );
        }
        assert_eq!(parse_info_dtmf(DTMF_RELAY, b"Signal=b").unwrap().digit, 'B');
    }

    #[test]
    fn bare_dtmf_bodies() {
        assert_eq!(
            parse_info_dtmf("application/dtmf", b"#").unwrap().digit,
            '#'
        );
        assert_eq!(parse_info_dtmf(DTMF, b" 7\r\n").unwrap().digit, '7');
        assert_eq!(parse_info_dtmf(DTMF, b"11").unwrap().digit, '#');
        assert_eq!(parse_info_dtmf(DTMF, b"11").unwrap().duration, None);
    }

    #[test]
    fn bodies_that_name_no_key_are_malformed() {
        for body in [
            &b""[..],
            b"Duration=160",
            b"Signal=",
            b"Signal=16",
            b"Signal=E",
        ] {
            assert!(
                matches!(
                    parse_info_dtmf(DTMF_RELAY, body),
                    Err(InfoDtmfError::Malformed(_))
                ),
                "{body:?}"
            );
        }
        assert!(matches!(
            parse_info_dtmf(DTMF, b"55"),
            Err(InfoDtmfError::Malformed(_))
        ));
        assert!(matches!(
            parse_info_dtmf(DTMF, &[0xFF, 0xFE]),
            Err(InfoDtmfError::Malformed(_))
        ));
    }

    #[test]
    fn other_content_types_are_not_dtmf() {
        assert!(is_dtmf_content_type("application/dtmf-relay"));
        assert!(is_dtmf_content_type("APPLICATION/DTMF ; x=y"));
        assert!(!is_dtmf_content_type("application/media_control+xml"));
        assert_eq!(
            parse_info_dtmf("application/sdp", b"Signal=1"),
            Err(InfoDtmfError::NotDtmf("application/sdp".into()))
        );
    }
}

//! Client side of SIP digest authentication (RFC 3261 §22.2, RFC 7616,
//! RFC 8760): reading a 401/407 challenge and answering it.
//!
//! A registrar (or proxy) that wants credentials answers 401 with
//! WWW-Authenticate, or 407 with Proxy-Authenticate, one challenge per
//! header; the client repeats the request with an Authorization (or
//! Proxy-Authorization) whose `response` proves it knows the password.
//! RFC 8760 brings RFC 7616's SHA-256 and SHA-512/256 to SIP: a server may
//! offer several challenges, most preferred first, and the client uses the
//! topmost one whose algorithm it supports (§2.4). The `-sess` variants
//! (RFC 7616 §3.4.2) and both qop values (`auth`, and `auth-int` over the
//! body) are supported; `auth` is chosen when both are offered.
//!
//! The hashing is [`super::algorithm`]'s, shared with the server side.
//! Written here rather than taken from rsipstack (`dialog::authenticate`),
//! whose algorithm type spells SHA-256 as `SHA256` both when parsing a
//! challenge and when answering it (RFC 7616 §3.3 and the IANA registry
//! spell `SHA-256`, which Kamailio and Asterisk send and expect), which
//! quotes `qop` in credentials (RFC 7616 §3.4 makes it a token), has no
//! SHA-512/256, computes `-sess` like the plain algorithm, and answers
//! only the first challenge of a response. The header's parameters are
//! split by rsipstack's `AuthTokenizer`.
//!
//! Everything here is a pure function of its inputs (the client nonce
//! included), so responses are checked against RFC 7616's examples.

use std::fmt;

use rsipstack::sip::typed::tokenizers::AuthTokenizer;
use rsipstack::sip::{Header, Response};

use super::algorithm::DigestInputs;
pub use super::algorithm::{DigestAlgorithm, DigestHash, Qop};

/// Who asked for credentials, which decides the header that answers
/// (RFC 3261 §22.2, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// 401 with WWW-Authenticate, answered by Authorization (a registrar
    /// or user agent).
    Www,
    /// 407 with Proxy-Authenticate, answered by Proxy-Authorization.
    Proxy,
}

impl ChallengeKind {
    /// The kind a 401 or 407 asks for.
    pub fn of_status(status: u16) -> Option<ChallengeKind> {
        match status {
            401 => Some(ChallengeKind::Www),
            407 => Some(ChallengeKind::Proxy),
            _ => None,
        }
    }

    /// The name of the header that answers this kind of challenge.
    pub fn answer_name(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }

    /// The header answering this kind of challenge with `value`.
    pub fn answer_header(self, value: String) -> Header {
        match self {
            ChallengeKind::Www => Header::Authorization(value.into()),
            ChallengeKind::Proxy => Header::ProxyAuthorization(value.into()),
        }
    }
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// A scheme other than Digest.
    #[error("authentication scheme {0:?} is not Digest")]
    NotDigest(String),
    /// The header could not be split into parameters.
    #[error("malformed challenge: {0}")]
    Malformed(String),
    /// A parameter every digest challenge needs.
    #[error("challenge lacks {0}")]
    Missing(&'static str),
    /// An algorithm vmesh does not implement.
    #[error(
        "digest algorithm {0} is not supported (MD5, SHA-256 and SHA-512-256 are, plain or -sess)"
    )]
    UnsupportedAlgorithm(String),
    /// A qop list with neither `auth` nor `auth-int`.
    #[error("qop {0:?} offers neither auth nor auth-int")]
    UnsupportedQop(String),
    /// A 401/407 that carried no challenge header at all.
    #[error("no challenge in the response")]
    NoChallenge,
}

/// One digest challenge (RFC 7616 §3.3), ready to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space; also what the password belongs to.
    pub realm: String,
    /// The server's nonce.
    pub nonce: String,
    /// Returned unchanged when present.
    pub opaque: Option<String>,
    /// The algorithm (MD5 when the challenge names none).
    pub algorithm: DigestAlgorithm,
    /// The qop chosen from those offered; `None` for an RFC 2069-style
    /// challenge without qop.
    pub qop: Option<Qop>,
    /// `stale=true`: the previous credentials were right, only the nonce
    /// was too old; retry with this one (RFC 7616 §3.3).
    pub stale: bool,
}

impl Challenge {
    /// Reads the value of one WWW-Authenticate or Proxy-Authenticate header.
    pub fn parse(value: &str) -> Result<Challenge, ChallengeError> {
        let tokens =
            AuthTokenizer::parse(value).map_err(|e| ChallengeError::Malformed(e.to_string()))?;
        if !tokens.scheme.eq_ignore_ascii_case("digest") {
            return Err(ChallengeError::NotDigest(tokens.scheme.to_owned()));
        }
        let param = |name: &str| {
            tokens
                .params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| *value)
        };
        let realm = param("realm").ok_or(ChallengeError::Missing("realm"))?;
        let nonce = param("nonce").ok_or(ChallengeError::Missing("nonce"))?;
        // These go back verbatim inside quotes in the Authorization; a
        // value that cannot stand there (an unquoted `realm=a"b`, a
        // control character) would be read back as another value.
        for (name, value) in [
            ("realm", Some(realm)),
            ("nonce", Some(nonce)),
            ("opaque", param("opaque")),
        ] {
            if value.is_some_and(|v| v.chars().any(|c| c == '"' || c == '\\' || c.is_control())) {
                return Err(ChallengeError::Malformed(format!(
                    "{name} {value:?} cannot be quoted back"
                )));
            }
        }
        let algorithm = match param("algorithm") {
            None => DigestAlgorithm::MD5,
            Some(token) => DigestAlgorithm::from_token(token)
                .ok_or_else(|| ChallengeError::UnsupportedAlgorithm(token.to_owned()))?,
        };
        let qop = match param("qop") {
            None => None,
            Some(list) => {
                let offered: Vec<Qop> = list
                    .split(',')
                    .filter_map(|q| Qop::from_token(q.trim()))
                    .collect();
                if offered.contains(&Qop::Auth) {
                    Some(Qop::Auth)
                } else if offered.contains(&Qop::AuthInt) {
                    Some(Qop::AuthInt)
                } else {
                    return Err(ChallengeError::UnsupportedQop(list.to_owned()));
                }
            }
        };
        Ok(Challenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            opaque: param("opaque").map(str::to_owned),
            algorithm,
            qop,
            stale: param("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The challenge to answer among those of one response, in header
    /// order: the first one vmesh can answer (RFC 8760 §2.4, the server
    /// lists its preferred first). When none can be, the first reason.
    pub fn select<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Challenge, ChallengeError> {
        let mut first_error = None;
        for value in values {
            match Challenge::parse(value) {
                Ok(challenge) => return Ok(challenge),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(ChallengeError::NoChallenge))
    }

    /// The challenge to answer in a 401 (its WWW-Authenticate headers) or
    /// a 407 (its Proxy-Authenticate headers), and which kind it is; any
    /// other response carries none.
    pub fn of_response(response: &Response) -> Result<(ChallengeKind, Challenge), ChallengeError> {
        let kind = ChallengeKind::of_status(response.status_code.code())
            .ok_or(ChallengeError::NoChallenge)?;
        let values = response.headers.iter().filter_map(|h| match (kind, h) {
            (ChallengeKind::Www, Header::WwwAuthenticate(v)) => Some(v.value()),
            (ChallengeKind::Proxy, Header::ProxyAuthenticate(v)) => Some(v.value()),
            _ => None,
        });
        Challenge::select(values).map(|challenge| (kind, challenge))
    }

    /// The Authorization (or Proxy-Authorization) header value answering
    /// this challenge for `request`, as the `nc`-th use of its nonce with
    /// client nonce `cnonce` (RFC 7616 §3.4).
    pub fn authorization(
        &self,
        credentials: &Credentials<'_>,
        request: &DigestRequest<'_>,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let nc = format!("{nc:08x}");
        let response = self.response(credentials, request, &nc, cnonce);
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            quoted(credentials.username),
            self.realm,
            self.nonce,
            quoted(request.uri),
            self.algorithm,
        );
        if self.qop.is_some() || self.algorithm.session {
            value.push_str(&format!(", cnonce=\"{}\"", quoted(cnonce)));
        }
        if let Some(qop) = self.qop {
            value.push_str(&format!(", qop={}, nc={nc}", qop.token()));
        }
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        value
    }

    /// The `response` value (RFC 7616 §3.4.1), `nc` in its 8 hex digits.
    fn response(
        &self,
        credentials: &Credentials<'_>,
        request: &DigestRequest<'_>,
        nc: &str,
        cnonce: &str,
    ) -> String {
        DigestInputs {
            algorithm: self.algorithm,
            username: credentials.username,
            realm: &self.realm,
            password: credentials.password,
            method: request.method,
            uri: request.uri,
            body: request.body,
            nonce: &self.nonce,
            qop: self.qop,
            nc,
            cnonce,
        }
        .response()
    }
}

/// Who is authenticating.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The digest username.
    pub username: &'a str,
    /// The password.
    pub password: &'a str,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, <redacted>)", self.username)
    }
}

/// What is being authorized: the request's method, its Request-URI exactly
/// as sent (the `uri` parameter), and its body (for `auth-int`).
#[derive(Debug, Clone, Copy)]
pub struct DigestRequest<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub body: &'a [u8],
}

/// `text` escaped for a quoted-string (RFC 3261 §25.1 `quoted-pair`).
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

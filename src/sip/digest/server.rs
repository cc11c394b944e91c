//! SIP digest authentication of requests, the server's side (RFC 3261 §22
//! with the algorithms of RFC 8760 and the semantics of RFC 7616).
//!
//! A request without acceptable credentials is answered 401 with one
//! `WWW-Authenticate` challenge per algorithm, SHA-256 first and MD5 for
//! older PBXs, in order of preference as RFC 8760 §2.4 asks; all carry
//! `qop="auth"` and one nonce. The nonce is bound to its issue time and a
//! secret of this process: it is the issue time, random bytes and an
//! HMAC-SHA256 over both (RFC 7616 §3.3 suggests such a construction), so
//! any server instance can check a nonce it issued without keeping it, and
//! none can be forged. A nonce older than the lifetime is refused with
//! `stale=true` (the credentials were right, only the nonce is old), and so
//! is a replay: for `qop=auth` the nonce count must grow with every use of
//! a nonce (RFC 7616 §3.4), and without qop (RFC 2069 clients) a nonce is
//! good once. Only the nonces that authorized a request are tracked, so
//! strangers asking for challenges cost nothing; the table is bounded, and
//! when it is full every nonce issued so far is retired at once (clients
//! re-authenticate after one `stale=true`), so no replay ever passes.
//!
//! The request-digest is [`super::algorithm`]'s, the same computation the
//! client side answers challenges with.
//!
//! Sans-IO: the module sees the request's method, Request-URI and
//! Authorization values and an explicit `now`, and answers with a
//! [`Verdict`]; the caller turns it into a response.
//!
//! rsipstack has `verify_digest`/`compute_digest`, reused here only for
//! parsing (`AuthTokenizer`, which keeps the client's exact `uri` text, the
//! one that was hashed): its digest writes the nonce count in decimal where
//! RFC 7616 §3.4.1 hashes the 8 hexadecimal digits as sent, and its typed
//! `Authorization` holds the count in a `u8`, so the 256th use of a nonce
//! would fail to parse.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rsipstack::sip::headers::typed::tokenizers::AuthTokenizer;
use rsipstack::sip::Uri;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub use super::algorithm::DigestAlgorithm;
use super::algorithm::{DigestInputs, Qop};

/// What the authenticator needs to know, from the profile.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// The protection space named in challenges (RFC 7616 §3.3 `realm`).
    pub realm: String,
    /// User name and password of each client allowed in.
    pub users: Vec<(String, String)>,
    /// Algorithms offered, in order of preference.
    pub algorithms: Vec<DigestAlgorithm>,
    /// How long a nonce may be used after it was issued.
    pub nonce_lifetime: Duration,
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are good and fresh: the request may proceed.
    Authorized {
        /// Who the client is.
        user: String,
    },
    /// Answer 401 with [`DigestAuthenticator::challenge`].
    Challenge {
        /// `stale=true`: the response was right, only the nonce (its age or
        /// its reuse) was not, so the client may retry without asking anyone
        /// for a password (RFC 7616 §3.3).
        stale: bool,
        /// Why, for the log and the Warning header.
        reason: String,
    },
    /// The credentials are malformed or are for another request (RFC 7616
    /// §3.4.6: a `uri` that is not the Request-URI): answer 400.
    BadRequest(String),
}

/// Nonces tracked at most; see the module doc for what happens beyond.
const MAX_TRACKED_NONCES: usize = 65_536;

/// Bytes of the nonce: issue time (8), random (8), truncated HMAC (16).
const NONCE_BYTES: usize = 32;

/// One nonce that has authorized requests, and the highest count used.
#[derive(Debug, Clone, Copy)]
struct NonceUse {
    issued_ms: u64,
    last_nc: u32,
}

/// The server side of digest authentication for one realm.
pub struct DigestAuthenticator {
    settings: DigestSettings,
    secret: [u8; 32],
    origin: Instant,
    used: HashMap<String, NonceUse>,
    /// Bound of `used`.
    capacity: usize,
    /// Nonces issued at or before this time (ms since `origin`) are retired.
    retired_until_ms: Option<u64>,
}

impl DigestAuthenticator {
    /// An authenticator whose nonces are keyed with `secret` and timed from
    /// `origin` (any instant at or before the first request).
    pub fn new(settings: DigestSettings, secret: [u8; 32], origin: Instant) -> Self {
        DigestAuthenticator {
            settings,
            secret,
            origin,
            used: HashMap::new(),
            capacity: MAX_TRACKED_NONCES,
            retired_until_ms: None,
        }
    }

    /// The `WWW-Authenticate` values of a 401 at `now`: one per algorithm,
    /// in order of preference, sharing one fresh nonce.
    pub fn challenge(&self, stale: bool, now: Instant) -> Vec<String> {
        let nonce = self.issue_nonce(now);
        self.settings
            .algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={a}, qop=\"auth\"{}",
                    self.settings.realm,
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Checks the credentials of a request: `authorizations` are the values
    /// of its Authorization headers (those for other realms or schemes are
    /// ignored, RFC 3261 §22.3).
    pub fn verify(
        &mut self,
        method: &str,
        request_uri: &Uri,
        authorizations: &[&str],
        now: Instant,
    ) -> Verdict {
        let credentials = authorizations
            .iter()
            .filter_map(|value| AuthTokenizer::parse(value).ok())
            .find(|t| {
                t.scheme.eq_ignore_ascii_case("Digest")
                    && param(&t.params, "realm") == Some(self.settings.realm.as_str())
            });
        let Some(credentials) = credentials else {
            return Verdict::Challenge {
                stale: false,
                reason: "no credentials for this realm".into(),
            };
        };
        let fields = match Presented::from_params(&credentials.params) {
            Ok(f) => f,
            Err(why) => return Verdict::BadRequest(why),
        };
        match Uri::try_from(fields.uri) {
            Ok(uri) if names_request_uri(&uri, request_uri) => {}
            _ => {
                return Verdict::BadRequest(format!(
                    "digest uri {:?} is not the Request-URI",
                    fields.uri
                ))
            }
        }
        let Some(algorithm) = self.offered(fields.algorithm) else {
            return Verdict::Challenge {
                stale: false,
                reason: format!("algorithm {} not offered", fields.algorithm),
            };
        };
        if !self.response_matches(&fields, algorithm, method) {
            return Verdict::Challenge {
                stale: false,
                reason: format!("wrong credentials for user {:?}", fields.username),
            };
        }
        // The password is right from here on: a nonce problem is `stale`.
        let now_ms = self.ms_since_origin(now);
        let issued_ms = match self.check_nonce(fields.nonce, now_ms) {
            Ok(issued) => issued,
            Err(reason) => {
                return Verdict::Challenge {
                    stale: true,
                    reason,
                }
            }
        };
        // RFC 2069 style (no qop): the nonce is good for one request.
        let nc = fields.nonce_count.unwrap_or(1);
        if let Err(reason) = self.record_use(fields.nonce, issued_ms, nc, now_ms) {
            return Verdict::Challenge {
                stale: true,
                reason,
            };
        }
        Verdict::Authorized {
            user: fields.username.to_string(),
        }
    }

    fn offered(&self, token: &str) -> Option<DigestAlgorithm> {
        DigestAlgorithm::from_token(token).filter(|a| self.settings.algorithms.contains(a))
    }

    /// Compares in constant time; an unknown user is checked against a
    /// password nobody has, so the time taken does not tell users apart.
    fn response_matches(
        &self,
        fields: &Presented<'_>,
        algorithm: DigestAlgorithm,
        method: &str,
    ) -> bool {
        let known = self
            .settings
            .users
            .iter()
            .find(|(user, _)| user == fields.username);
        let password = known.map_or("\u{0}no such user\u{0}", |(_, p)| p.as_str());
        let (qop, nc, cnonce) = match fields.qop {
            Some((nc, cnonce)) => (Some(Qop::Auth), nc, cnonce),
            None => (None, "", ""),
        };
        let expected = DigestInputs {
            algorithm,
            username: fields.username,
            realm: &self.settings.realm,
            password,
            method,
            uri: fields.uri,
            body: b"",
            nonce: fields.nonce,
            qop,
            nc,
            cnonce,
        }
        .response();
        let given = fields.response.to_ascii_lowercase();
        known.is_some() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }

    fn ms_since_origin(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    fn issue_nonce(&self, now: Instant) -> String {
        let mut bytes = [0u8; NONCE_BYTES];
        bytes[..8].copy_from_slice(&self.ms_since_origin(now).to_be_bytes());
        bytes[8..16].copy_from_slice(&rand::random::<[u8; 8]>());
        let tag = self.tag(&bytes[..16]);
        bytes[16..].copy_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn tag(&self, data: &[u8]) -> [u8; 32] {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// The issue time of a nonce of ours that is still fresh.
    fn check_nonce(&self, nonce: &str, now_ms: u64) -> Result<u64, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .filter(|b| b.len() == NONCE_BYTES)
            .ok_or_else(|| "nonce not issued here".to_string())?;
        let tag = self.tag(&bytes[..16]);
        if !bool::from(tag[..16].ct_eq(&bytes[16..])) {
            return Err("nonce not issued here (or before a restart)".into());
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&bytes[..8]);
        let issued_ms = u64::from_be_bytes(issued);
        let lifetime = u64::try_from(self.settings.nonce_lifetime.as_millis()).unwrap_or(u64::MAX);
        if issued_ms > now_ms || now_ms - issued_ms > lifetime {
            return Err("nonce expired".into());
        }
        if self
            .retired_until_ms
            .is_some_and(|until| issued_ms <= until)
        {
            return Err("nonce retired".into());
        }
        Ok(issued_ms)
    }

    /// Records that `nonce` was used with count `nc`; refuses a count that
    /// does not exceed every earlier one (a replay).
    fn record_use(
        &mut self,
        nonce: &str,
        issued_ms: u64,
        nc: u32,
        now_ms: u64,
    ) -> Result<(), String> {
        if let Some(used) = self.used.get_mut(nonce) {
            if nc <= used.last_nc {
                return Err(format!(
                    "nonce count {nc:08x} already used (last {:08x}): a replay",
                    used.last_nc
                ));
            }
            used.last_nc = nc;
            return Ok(());
        }
        if self.used.len() >= self.capacity {
            let lifetime =
                u64::try_from(self.settings.nonce_lifetime.as_millis()).unwrap_or(u64::MAX);
            self.used
                .retain(|_, u| now_ms.saturating_sub(u.issued_ms) <= lifetime);
        }
        if self.used.len() >= self.capacity {
            // Forgetting one would let its replay pass: retire them all.
            self.used.clear();
            self.retired_until_ms = Some(now_ms);
            return Err("too many nonces in use; all retired".into());
        }
        self.used.insert(
            nonce.to_string(),
            NonceUse {
                issued_ms,
                last_nc: nc,
            },
        );
        Ok(())
    }

    /// Nonces currently tracked (for tests of the bound).
    pub fn tracked(&self) -> usize {
        self.used.len()
    }
}

/// The parameters of one Digest credentials value (RFC 7616 §3.4), as
/// presented by the client.
struct Presented<'a> {
    username: &'a str,
    nonce: &'a str,
    uri: &'a str,
    response: &'a str,
    algorithm: &'a str,
    /// `(nc, cnonce)` when `qop=auth`.
    qop: Option<(&'a str, &'a str)>,
    /// `nc` as a number: 8 hex digits, not zero (RFC 7616 §3.4).
    nonce_count: Option<u32>,
}

impl<'a> Presented<'a> {
    fn from_params(params: &[(&'a str, &'a str)]) -> Result<Self, String> {
        let required = |name: &str| param(params, name).ok_or(format!("credentials lack {name}"));
        let qop = match param(params, "qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                Some((required("nc")?, required("cnonce")?))
            }
            Some(q) => return Err(format!("qop {q:?} not offered")),
        };
        let nonce_count = match qop {
            Some((nc, _)) => match u32::from_str_radix(nc, 16) {
                Ok(n) if n > 0 && nc.len() == 8 => Some(n),
                _ => return Err(format!("nonce count {nc:?} is not 8 hex digits")),
            },
            None => None,
        };
        Ok(Presented {
            nonce_count,
            username: required("username")?,
            nonce: required("nonce")?,
            uri: required("uri")?,
            response: required("response")?,
            // RFC 7616 §3.4: MD5 when absent.
            algorithm: param(params, "algorithm").unwrap_or("MD5"),
            qop,
        })
    }
}

/// Whether the digest `uri` names the Request-URI (RFC 7616 §3.4.6):
/// the same URI, or the same scheme, host and port without a user part
/// (what SIPp and some UAs send for every request). Each credential is
/// single-use anyway (the nonce count), so the looser form lets no
/// captured credential through that the strict one would stop.
fn names_request_uri(uri: &Uri, request_uri: &Uri) -> bool {
    uri == request_uri
        || (uri.auth.is_none()
            && uri.scheme == request_uri.scheme
            && uri.host_with_port == request_uri.host_with_port)
}

fn param<'a>(params: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

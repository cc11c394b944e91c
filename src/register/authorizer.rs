//! The digest credentials of one registration and the nonces it holds.
//!
//! After a challenge is answered, the same nonce is used again for the
//! refreshes that follow (RFC 3261 §22.3 lets a UAC pre-emptively send
//! credentials; RFC 7616 §3.4 counts each use in `nc`), which saves the
//! registrar a challenge round per refresh. When the registrar no longer
//! takes the nonce it challenges again, usually with `stale=true`, and the
//! new challenge is adopted. A registrar (401) and an outbound proxy (407)
//! may both challenge; each keeps its own nonce, and both headers go out.

use rand::Rng;

use crate::config::Password;
use crate::sip::digest::{Challenge, ChallengeKind, Credentials, DigestRequest};

/// One credentials header for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    /// Authorization or Proxy-Authorization.
    pub kind: ChallengeKind,
    /// The header value.
    pub value: String,
}

/// A challenge adopted, and how often its nonce was used.
#[derive(Debug, Clone)]
struct NonceInUse {
    challenge: Challenge,
    count: u32,
}

/// Answers challenges for one registration.
#[derive(Debug, Clone)]
pub struct Authorizer {
    username: String,
    password: Password,
    /// The REGISTER's Request-URI exactly as sent: the digest `uri`.
    request_uri: String,
    www: Option<NonceInUse>,
    proxy: Option<NonceInUse>,
}

impl Authorizer {
    /// Credentials for requests to `request_uri`.
    pub fn new(username: &str, password: Password, request_uri: &str) -> Authorizer {
        Authorizer {
            username: username.to_owned(),
            password,
            request_uri: request_uri.to_owned(),
            www: None,
            proxy: None,
        }
    }

    /// The digest username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Adopts a fresh challenge: its nonce is used from the next request on.
    pub fn adopt(&mut self, kind: ChallengeKind, challenge: Challenge) {
        let slot = match kind {
            ChallengeKind::Www => &mut self.www,
            ChallengeKind::Proxy => &mut self.proxy,
        };
        *slot = Some(NonceInUse {
            challenge,
            count: 0,
        });
    }

    /// The credentials headers for the next REGISTER: one per nonce held,
    /// each use counted, with a fresh client nonce from `rng`.
    pub fn headers(&mut self, rng: &mut impl Rng) -> Vec<AuthorizationHeader> {
        let credentials = Credentials {
            username: &self.username,
            password: self.password.expose(),
        };
        let request = DigestRequest {
            method: "REGISTER",
            uri: &self.request_uri,
            body: b"",
        };
        let mut headers = Vec::new();
        for (kind, slot) in [
            (ChallengeKind::Www, &mut self.www),
            (ChallengeKind::Proxy, &mut self.proxy),
        ] {
            if let Some(nonce) = slot {
                nonce.count = nonce.count.saturating_add(1);
                let cnonce = format!("{:032x}", rng.random::<u128>());
                let value =
                    nonce
                        .challenge
                        .authorization(&credentials, &request, nonce.count, &cnonce);
                headers.push(AuthorizationHeader { kind, value });
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_nonce_is_reused_with_a_growing_count() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut auth = Authorizer::new("vm", Password::new("pw"), "sip:10.0.0.1");
        assert!(
            auth.headers(&mut rng).is_empty(),
            "nothing before a challenge"
        );
        let challenge = Challenge::parse("Digest realm=\"r\", nonce=\"n1\", qop=\"auth\"").unwrap();
        auth.adopt(ChallengeKind::Www, challenge);
        let first = auth.headers(&mut rng);
        let second = auth.headers(&mut rng);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, ChallengeKind::Www);
        assert!(first[0].value.contains("nc=00000001"), "{first:?}");
        assert!(second[0].value.contains("nc=00000002"), "{second:?}");
        assert!(first[0].value.contains("uri=\"sip:10.0.0.1\""));
        let proxy = Challenge::parse("Digest realm=\"p\", nonce=\"n2\"").unwrap();
        auth.adopt(ChallengeKind::Proxy, proxy);
        let both = auth.headers(&mut rng);
        let kinds: Vec<_> = both.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, [ChallengeKind::Www, ChallengeKind::Proxy]);
    }
}

//! SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), both
//! sides: a registrar's or PBX's challenge through `Challenge::parse` and
//! the Authorization we answer it with, and a PBX's Authorization through
//! `DigestAuthenticator::verify`.
//!
//! The input is text lines: a challenge (a WWW-Authenticate value), an
//! Authorization value, and optionally a user name, a password and a
//! Request-URI. Checked beyond "no panic":
//! - the Authorization we write for an accepted challenge parses back (by
//!   rsipstack's tokenizer, as a registrar reads it) to the same realm,
//!   nonce, user, URI and algorithm, and holds no line break;
//! - an Authorization the client was not given a nonce for never
//!   authorizes;
//! - our own challenge, answered by our own client code with the input's
//!   user, password and Request-URI, authorizes once, and the same
//!   credentials again are a replay (`stale`).

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rsipstack::sip::headers::typed::tokenizers::AuthTokenizer;
use rsipstack::sip::Uri;
use vmesh::sip::digest::server::{self, DigestAuthenticator, DigestSettings, Verdict};
use vmesh::sip::digest::{Challenge, Credentials, DigestRequest};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let challenge = lines.next().unwrap_or_default();
    let authorization = lines.next().unwrap_or_default();
    let username = lines.next().filter(|u| !u.is_empty()).unwrap_or("1001");
    let password = lines.next().unwrap_or("secret");
    let uri = lines.next().unwrap_or("sip:vm.example");
    // Header values and profile settings hold no line breaks.
    if [challenge, authorization, username, password, uri]
        .iter()
        .any(|l| l.contains('\r'))
    {
        return;
    }

    if let Ok(parsed) = Challenge::parse(challenge) {
        answer(&parsed, username, password, uri);
    }
    let _ = Challenge::select([challenge, authorization]);

    let Ok(request_uri) = Uri::try_from(uri) else {
        return;
    };
    let origin = Instant::now();
    let mut digest = DigestAuthenticator::new(
        DigestSettings {
            realm: "vm.example".into(),
            users: vec![(username.to_string(), password.to_string())],
            algorithms: vec![
                server::DigestAlgorithm::Sha256,
                server::DigestAlgorithm::Md5,
            ],
            nonce_lifetime: Duration::from_secs(300),
        },
        [3; 32],
        origin,
    );
    let forged = digest.verify("INVITE", &request_uri, &[authorization], origin);
    assert!(
        !matches!(forged, Verdict::Authorized { .. }),
        "{authorization:?} authorized"
    );

    // Our challenge, answered by our client: authorized once, then a replay.
    let now = origin + Duration::from_secs(1);
    // One nonce for all algorithms: a client answering them in turn counts
    // its uses of that nonce (RFC 7616 §3.4).
    for (nc, value) in (1..).zip(digest.challenge(false, now)) {
        let challenge = Challenge::parse(&value).expect("our own challenge parses");
        let credentials = Credentials { username, password };
        let request = DigestRequest {
            method: "INVITE",
            uri,
            body: b"",
        };
        let answer = challenge.authorization(&credentials, &request, nc, "0a4f113b");
        let verdict = digest.verify("INVITE", &request_uri, &[&answer], now);
        if !plain(username) || !plain(uri) {
            // Quoted with escapes (RFC 3261 §25.1): not every peer reads
            // them back; nothing more to check.
            continue;
        }
        assert_eq!(
            verdict,
            Verdict::Authorized {
                user: username.to_string()
            },
            "{answer}"
        );
        let replay = digest.verify("INVITE", &request_uri, &[&answer], now);
        assert!(
            matches!(replay, Verdict::Challenge { stale: true, .. }),
            "{replay:?}"
        );
    }
});

/// Text that needs no escape inside a quoted string.
fn plain(s: &str) -> bool {
    !s.contains(['"', '\\'])
}

fn answer(challenge: &Challenge, username: &str, password: &str, uri: &str) {
    let credentials = Credentials { username, password };
    let request = DigestRequest {
        method: "REGISTER",
        uri,
        body: b"v=0\r\n",
    };
    let value = challenge.authorization(&credentials, &request, 1, "0a4f113b");
    assert!(!value.contains(['\r', '\n']), "a line break in {value:?}");
    let tokens = AuthTokenizer::parse(&value)
        .unwrap_or_else(|e| panic!("our Authorization does not parse ({e}): {value}"));
    let param = |name: &str| {
        tokens
            .params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    if !plain(username) || !plain(uri) {
        // Escaped (RFC 3261 §25.1 quoted-pair), which rsipstack's tokenizer
        // does not undo; registrars do. Our own settings, not the peer's.
        return;
    }
    assert_eq!(param("realm"), Some(challenge.realm.as_str()), "{value}");
    assert_eq!(param("nonce"), Some(challenge.nonce.as_str()), "{value}");
    assert_eq!(param("username"), Some(username), "{value}");
    assert_eq!(param("uri"), Some(uri), "{value}");
    assert_eq!(param("opaque"), challenge.opaque.as_deref(), "{value}");
    assert_eq!(
        param("algorithm").map(str::to_ascii_lowercase),
        Some(challenge.algorithm.to_string().to_ascii_lowercase()),
        "{value}"
    );
}

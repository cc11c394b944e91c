//! Tests of `server.rs`, with injected time.

use super::*;

const REALM: &str = "vm.example.com";
const URI: &str = "sip:1001@vm.example.com";

fn settings(algorithms: &[DigestAlgorithm]) -> DigestSettings {
    DigestSettings {
        realm: REALM.into(),
        users: vec![("pbx-a".into(), "s3cret".into())],
        algorithms: algorithms.to_vec(),
        nonce_lifetime: Duration::from_secs(30),
    }
}

fn authenticator() -> (DigestAuthenticator, Instant) {
    let origin = Instant::now();
    let both = [DigestAlgorithm::SHA_256, DigestAlgorithm::MD5];
    (
        DigestAuthenticator::new(settings(&both), [7; 32], origin),
        origin,
    )
}

/// The nonce of a challenge value.
fn nonce_of(challenge: &str) -> String {
    let t = AuthTokenizer::parse(challenge).unwrap();
    param(&t.params, "nonce").unwrap().to_string()
}

/// What a client sends: credentials computed as RFC 7616 §3.4.1 says.
fn credentials(
    algorithm: DigestAlgorithm,
    password: &str,
    nonce: &str,
    nc: Option<u32>,
    uri: &str,
) -> String {
    let nc_text = nc.map(|n| format!("{n:08x}"));
    let response = DigestInputs {
        algorithm,
        username: "pbx-a",
        realm: REALM,
        password,
        method: "INVITE",
        uri,
        body: b"",
        nonce,
        qop: nc.map(|_| Qop::Auth),
        nc: nc_text.as_deref().unwrap_or(""),
        cnonce: "0a4f113b",
    }
    .response();
    let mut value = format!(
        "Digest username=\"pbx-a\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={algorithm}"
    );
    if let Some(nc) = nc_text {
        value.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"0a4f113b\""));
    }
    value
}

fn uri() -> Uri {
    Uri::try_from(URI).unwrap()
}

fn authorized(v: &Verdict) -> bool {
    matches!(v, Verdict::Authorized { user } if user == "pbx-a")
}

fn stale(v: &Verdict) -> Option<bool> {
    match v {
        Verdict::Challenge { stale, .. } => Some(*stale),
        _ => None,
    }
}

#[test]
fn the_challenge_offers_sha_256_before_md5_with_one_nonce() {
    let (auth, origin) = authenticator();
    let values = auth.challenge(false, origin);
    assert_eq!(values.len(), 2);
    assert!(values[0].contains("algorithm=SHA-256"), "{}", values[0]);
    assert!(values[1].contains("algorithm=MD5"), "{}", values[1]);
    for v in &values {
        assert!(
            v.starts_with("Digest realm=\"vm.example.com\", nonce=\""),
            "{v}"
        );
        assert!(v.contains("qop=\"auth\""), "{v}");
        assert!(!v.contains("stale"), "{v}");
    }
    assert_eq!(nonce_of(&values[0]), nonce_of(&values[1]));
    assert!(auth.challenge(true, origin)[0].ends_with(", stale=true"));
    // Fresh nonces every time.
    assert_ne!(
        nonce_of(&auth.challenge(false, origin)[0]),
        nonce_of(&values[0])
    );
}

#[test]
fn good_credentials_pass_with_either_algorithm() {
    for algorithm in [DigestAlgorithm::SHA_256, DigestAlgorithm::MD5] {
        let (mut auth, t0) = authenticator();
        let nonce = nonce_of(&auth.challenge(false, t0)[0]);
        let value = credentials(algorithm, "s3cret", &nonce, Some(1), URI);
        let v = auth.verify("INVITE", &uri(), &[&value], t0 + Duration::from_secs(1));
        assert!(authorized(&v), "{algorithm:?}: {v:?}");
    }
}

#[test]
fn no_credentials_or_another_realm_get_a_plain_challenge() {
    let (mut auth, t0) = authenticator();
    assert_eq!(stale(&auth.verify("INVITE", &uri(), &[], t0)), Some(false));
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let other = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI)
        .replace(REALM, "elsewhere");
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&other], t0)),
        Some(false)
    );
}

#[test]
fn a_wrong_password_or_unknown_user_is_challenged_again_not_stale() {
    let (mut auth, t0) = authenticator();
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let wrong = credentials(DigestAlgorithm::SHA_256, "guess", &nonce, Some(1), URI);
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&wrong], t0)),
        Some(false)
    );
    let stranger = credentials(DigestAlgorithm::SHA_256, "s3cret", &nonce, Some(1), URI)
        .replace("username=\"pbx-a\"", "username=\"pbx-b\"");
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&stranger], t0)),
        Some(false)
    );
    // A failed attempt does not burn the nonce for its owner.
    let good = credentials(DigestAlgorithm::SHA_256, "s3cret", &nonce, Some(1), URI);
    assert!(authorized(&auth.verify("INVITE", &uri(), &[&good], t0)));
}

#[test]
fn an_expired_nonce_is_stale() {
    let (mut auth, t0) = authenticator();
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let value = credentials(DigestAlgorithm::SHA_256, "s3cret", &nonce, Some(1), URI);
    let late = t0 + Duration::from_secs(31);
    let v = auth.verify("INVITE", &uri(), &[&value], late);
    assert_eq!(stale(&v), Some(true), "{v:?}");
    // Right at the end of its lifetime it is still good.
    let (mut auth, t0) = authenticator();
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let value = credentials(DigestAlgorithm::SHA_256, "s3cret", &nonce, Some(1), URI);
    assert!(authorized(&auth.verify(
        "INVITE",
        &uri(),
        &[&value],
        t0 + Duration::from_secs(30)
    )));
}

#[test]
fn a_replayed_nonce_count_is_stale_and_a_higher_one_passes() {
    let (mut auth, t0) = authenticator();
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let first = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI);
    assert!(authorized(&auth.verify("INVITE", &uri(), &[&first], t0)));
    let replay = auth.verify("INVITE", &uri(), &[&first], t0);
    assert_eq!(stale(&replay), Some(true), "{replay:?}");
    let second = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(2), URI);
    assert!(authorized(&auth.verify("INVITE", &uri(), &[&second], t0)));
    let older = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI);
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&older], t0)),
        Some(true)
    );
    // Counts past 255 (rsipstack's typed header holds a u8) work.
    let big = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(0x1_0000), URI);
    assert!(authorized(&auth.verify("INVITE", &uri(), &[&big], t0)));
}

#[test]
fn without_qop_a_nonce_is_good_once() {
    let (mut auth, t0) = authenticator();
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let value = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, None, URI);
    assert!(authorized(&auth.verify("INVITE", &uri(), &[&value], t0)));
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&value], t0)),
        Some(true)
    );
}

#[test]
fn nonces_from_elsewhere_or_tampered_are_stale() {
    let (mut auth, t0) = authenticator();
    let other = DigestAuthenticator::new(settings(&[DigestAlgorithm::SHA_256]), [9; 32], t0);
    let foreign = nonce_of(&other.challenge(false, t0)[0]);
    let value = credentials(DigestAlgorithm::SHA_256, "s3cret", &foreign, Some(1), URI);
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&value], t0)),
        Some(true)
    );
    // A nonce moved forward in time by its holder fails its MAC.
    let mine = nonce_of(&auth.challenge(false, t0)[0]);
    let mut bytes = URL_SAFE_NO_PAD.decode(&mine).unwrap();
    bytes[7] ^= 0x40;
    let forged = URL_SAFE_NO_PAD.encode(bytes);
    let value = credentials(DigestAlgorithm::SHA_256, "s3cret", &forged, Some(1), URI);
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&value], t0)),
        Some(true)
    );
    for junk in ["", "x", "!!!!"] {
        let value = credentials(DigestAlgorithm::SHA_256, "s3cret", junk, Some(1), URI);
        assert_eq!(
            stale(&auth.verify("INVITE", &uri(), &[&value], t0)),
            Some(true)
        );
    }
}

#[test]
fn credentials_for_another_uri_or_malformed_are_a_bad_request() {
    let (mut auth, t0) = authenticator();
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let other_uri = "sip:2002@vm.example.com";
    let value = credentials(
        DigestAlgorithm::SHA_256,
        "s3cret",
        &nonce,
        Some(1),
        other_uri,
    );
    assert!(matches!(
        auth.verify("INVITE", &uri(), &[&value], t0),
        Verdict::BadRequest(_)
    ));
    let no_response =
        format!("Digest username=\"pbx-a\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{URI}\"");
    assert!(matches!(
        auth.verify("INVITE", &uri(), &[&no_response], t0),
        Verdict::BadRequest(_)
    ));
    let good = credentials(DigestAlgorithm::SHA_256, "s3cret", &nonce, Some(1), URI);
    let bad_nc = good.replace("nc=00000001", "nc=1");
    assert!(matches!(
        auth.verify("INVITE", &uri(), &[&bad_nc], t0),
        Verdict::BadRequest(_)
    ));
    let int = good.replace("qop=auth,", "qop=auth-int,");
    assert!(matches!(
        auth.verify("INVITE", &uri(), &[&int], t0),
        Verdict::BadRequest(_)
    ));
}

#[test]
fn an_algorithm_not_offered_is_refused() {
    let t0 = Instant::now();
    let mut auth = DigestAuthenticator::new(settings(&[DigestAlgorithm::SHA_256]), [1; 32], t0);
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let md5 = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI);
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&md5], t0)),
        Some(false)
    );
    let sha = credentials(DigestAlgorithm::SHA_256, "s3cret", &nonce, Some(1), URI);
    assert!(authorized(&auth.verify("INVITE", &uri(), &[&sha], t0)));
}

#[test]
fn the_replay_table_is_bounded_and_never_forgets_a_live_nonce() {
    const MAX_TRACKED_NONCES: usize = 500;
    let (mut auth, t0) = authenticator();
    auth.capacity = MAX_TRACKED_NONCES;
    let mut first = None;
    for i in 0..MAX_TRACKED_NONCES {
        let nonce = nonce_of(&auth.challenge(false, t0)[0]);
        let value = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI);
        assert!(
            authorized(&auth.verify("INVITE", &uri(), &[&value], t0)),
            "{i}"
        );
        first.get_or_insert(value);
    }
    assert_eq!(auth.tracked(), MAX_TRACKED_NONCES);
    // One more live nonce: the table is full of live ones, so every nonce
    // issued so far is retired rather than one forgotten.
    let nonce = nonce_of(&auth.challenge(false, t0)[0]);
    let value = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI);
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&value], t0)),
        Some(true)
    );
    assert!(auth.tracked() < MAX_TRACKED_NONCES);
    let replay = first.unwrap();
    assert_eq!(
        stale(&auth.verify("INVITE", &uri(), &[&replay], t0)),
        Some(true)
    );
    // A nonce issued afterwards works.
    let later = t0 + Duration::from_millis(5);
    let nonce = nonce_of(&auth.challenge(false, later)[0]);
    let value = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI);
    assert!(authorized(&auth.verify("INVITE", &uri(), &[&value], later)));
}

#[test]
fn expired_nonces_are_dropped_from_the_table() {
    const MAX_TRACKED_NONCES: usize = 500;
    let (mut auth, t0) = authenticator();
    auth.capacity = MAX_TRACKED_NONCES;
    for _ in 0..MAX_TRACKED_NONCES {
        let nonce = nonce_of(&auth.challenge(false, t0)[0]);
        let value = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI);
        assert!(authorized(&auth.verify("INVITE", &uri(), &[&value], t0)));
    }
    let later = t0 + Duration::from_secs(60);
    let nonce = nonce_of(&auth.challenge(false, later)[0]);
    let value = credentials(DigestAlgorithm::MD5, "s3cret", &nonce, Some(1), URI);
    assert!(authorized(&auth.verify("INVITE", &uri(), &[&value], later)));
    assert_eq!(auth.tracked(), 1);
}

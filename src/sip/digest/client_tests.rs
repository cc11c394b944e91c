//! Digest answers checked against RFC 7616 §3.9.1 and RFC 2617 §3.5, and
//! SIP cases against values computed independently with Python's hashlib.

use super::*;

/// The `response=` of an Authorization value.
fn response_of(authorization: &str) -> &str {
    let start = authorization.find("response=\"").expect("a response") + 10;
    let len = authorization[start..].find('"').expect("closing quote");
    &authorization[start..start + len]
}

const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

fn rfc7616(algorithm: &str) -> String {
    let challenge = Challenge::parse(&format!(
        "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
         algorithm={algorithm}, nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
    ))
    .unwrap();
    assert_eq!(challenge.qop, Some(Qop::Auth), "auth is preferred");
    let credentials = Credentials {
        username: "Mufasa",
        password: "Circle of Life",
    };
    let request = DigestRequest {
        method: "GET",
        uri: "/dir/index.html",
        body: b"",
    };
    challenge.authorization(&credentials, &request, 1, RFC7616_CNONCE)
}

#[test]
fn answers_rfc_7616_examples_with_md5_and_sha_256() {
    let md5 = rfc7616("MD5");
    assert_eq!(response_of(&md5), "8ca523f5e9506fed4657c9700eebdbec");
    let sha = rfc7616("SHA-256");
    assert_eq!(
        response_of(&sha),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(
        sha,
        format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             nonce=\"{RFC7616_NONCE}\", uri=\"/dir/index.html\", \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
             algorithm=SHA-256, cnonce=\"{RFC7616_CNONCE}\", qop=auth, nc=00000001, \
             opaque=\"{RFC7616_OPAQUE}\""
        )
    );
}

#[test]
fn answers_rfc_2617_example_without_an_algorithm() {
    let challenge = Challenge::parse(
        "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
         opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .unwrap();
    assert_eq!(challenge.algorithm, DigestAlgorithm::MD5);
    let auth = challenge.authorization(
        &Credentials {
            username: "Mufasa",
            password: "Circle Of Life",
        },
        &DigestRequest {
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        },
        1,
        "0a4f113b",
    );
    assert_eq!(response_of(&auth), "6629fae49393a05397450978507c4ef1");
}

/// A REGISTER's challenge answered as the 10th use of its nonce (nc is hex:
/// `0000000a`), with every algorithm, qop and -sess; expected values from
/// Python's hashlib.
#[test]
fn answers_sip_challenges_with_each_algorithm() {
    let cases = [
        ("MD5", "qop=auth", "0c615b9255086f4214caad5d9a2bf67a"),
        ("MD5", "", "4d0de32521b64d6da0ec0e7f8bf7d782"),
        (
            "SHA-256",
            "qop=auth",
            "39b9b372f94d4eb861acdfcfb2d35c1edb45e4b6b94cc944ada6c07bc10e5013",
        ),
        (
            "sha-256",
            "",
            "cc61fec7fa4ba2a7cb70c370c17b06a8803db86ccf4c711cd5671a6534565bd2",
        ),
        (
            "SHA-512-256",
            "qop=auth",
            "53d8d634482d76a717de5345b76917179e6c7e25c010507de0bc552d6b33de62",
        ),
        (
            "SHA-512-256",
            "",
            "5fb3e921eb43be1a7ea329354dfb86021627ebb2632ab1ec3d362eff2ade7e9b",
        ),
    ];
    for (algorithm, qop, expected) in cases {
        let challenge = Challenge::parse(&format!(
            "Digest realm=\"127.0.0.1\", nonce=\"abc123\", algorithm={algorithm}, {qop}"
        ))
        .unwrap();
        let auth = challenge.authorization(&vm(), &register(), 10, "xyz");
        assert_eq!(response_of(&auth), expected, "{algorithm} {qop}: {auth}");
        if qop.is_empty() {
            assert!(!auth.contains("nc="), "no nc without qop: {auth}");
        } else {
            assert!(auth.contains("qop=auth, nc=0000000a"), "{auth}");
        }
    }
}

#[test]
fn answers_sess_and_auth_int() {
    let cases = [
        ("MD5-sess", "auth", "ea0b43f2cb7180f259e92b8f806988a3"),
        ("MD5", "auth-int", "e53b22d18005753c4cd8eb0f66518de8"),
        (
            "SHA-256-sess",
            "auth",
            "bd986f8beb46575a111b100bb09615e4a1d468dffce69d022f7d3a2879c764b9",
        ),
        (
            "SHA-256",
            "auth-int",
            "9bcdf5678163232bd7ca1248ad0e1b597428790dee3836547bffe08b2fed5a58",
        ),
        (
            "SHA-512-256-sess",
            "auth",
            "2a212b668510c6f16bbec53fbda5d8293dc68b573b1cae4f6a34ee2b933719f0",
        ),
        (
            "SHA-512-256",
            "auth-int",
            "de23f23f4e90a19dbd01d31fce9e712afad8d31443e246aea94552567dece491",
        ),
    ];
    for (algorithm, qop, expected) in cases {
        let challenge = Challenge::parse(&format!(
            "Digest realm=\"127.0.0.1\", nonce=\"abc123\", algorithm={algorithm}, qop=\"{qop}\""
        ))
        .unwrap();
        let auth = challenge.authorization(&vm(), &register(), 1, "xyz");
        assert_eq!(response_of(&auth), expected, "{algorithm} {qop}");
        assert!(auth.contains(&format!("algorithm={algorithm}")), "{auth}");
    }
}

fn vm() -> Credentials<'static> {
    Credentials {
        username: "vm-auth",
        password: "s3cret",
    }
}

fn register() -> DigestRequest<'static> {
    DigestRequest {
        method: "REGISTER",
        uri: "sip:127.0.0.1:5080",
        body: b"",
    }
}

#[test]
fn picks_the_first_supported_challenge_in_header_order() {
    // RFC 8760 §2.4: the server lists its preferred algorithm first.
    let headers = [
        "Digest realm=\"r\", nonce=\"n1\", algorithm=SHA-512",
        "Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"",
        "Digest realm=\"r\", nonce=\"n3\", algorithm=MD5, qop=\"auth\"",
    ];
    let chosen = Challenge::select(headers).unwrap();
    assert_eq!(chosen.nonce, "n2");
    assert_eq!(chosen.algorithm.hash, DigestHash::Sha256);
    assert_eq!(
        Challenge::select(["Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512"]),
        Err(ChallengeError::UnsupportedAlgorithm("SHA-512".into()))
    );
    assert_eq!(
        Challenge::select(Vec::<&str>::new()),
        Err(ChallengeError::NoChallenge)
    );
}

#[test]
fn reads_stale_and_refuses_what_it_cannot_answer() {
    let stale =
        Challenge::parse("Digest realm=\"r\", nonce=\"n\", stale=TRUE, algorithm=MD5").unwrap();
    assert!(stale.stale);
    assert!(
        !Challenge::parse("Digest realm=\"r\", nonce=\"n\", stale=false")
            .unwrap()
            .stale
    );
    assert_eq!(
        Challenge::parse("Basic realm=\"r\""),
        Err(ChallengeError::NotDigest("Basic".into()))
    );
    assert_eq!(
        Challenge::parse("Digest nonce=\"n\""),
        Err(ChallengeError::Missing("realm"))
    );
    assert_eq!(
        Challenge::parse("Digest realm=\"r\""),
        Err(ChallengeError::Missing("nonce"))
    );
    assert_eq!(
        Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"token\""),
        Err(ChallengeError::UnsupportedQop("token".into()))
    );
}

#[test]
fn credentials_never_print_the_password() {
    assert!(!format!("{:?}", vm()).contains("s3cret"));
}

/// Found by the digest fuzz target's round trip: an unquoted `realm=a"b`
/// was taken, and the Authorization written for it (`realm="a"b"`) read
/// back as realm `a`.
#[test]
fn refuses_a_challenge_whose_values_cannot_be_quoted_back() {
    for value in [
        "Digest realm=a\"b, nonce=n1",
        "Digest realm=\"r\", nonce=n\\1",
        "Digest realm=\"r\", nonce=\"n\", opaque=o\"p",
        "Digest realm=\"r\", nonce=n\u{1}",
    ] {
        assert!(
            matches!(Challenge::parse(value), Err(ChallengeError::Malformed(_))),
            "{value}"
        );
    }
    // What is taken is written back as it came.
    let challenge = Challenge::parse("Digest realm=pbx.example.com, nonce=abc").unwrap();
    let value = challenge.authorization(&vm(), &register(), 1, "c");
    assert!(
        value.contains("realm=\"pbx.example.com\", nonce=\"abc\""),
        "{value}"
    );
}

//! SIP digest authentication written from RFC 7616 §3.4.1 for the tests,
//! independent of vmesh's own module: read a challenge, compute the
//! credentials a PBX would send, and check credentials vmesh sent.

use std::collections::HashMap;

use sha2::Digest as _;

/// The parameters of a `Digest ...` challenge or credentials value, names
/// lower-cased, values unquoted.
pub fn params(value: &str) -> HashMap<String, String> {
    let rest = value
        .trim()
        .strip_prefix("Digest")
        .unwrap_or_else(|| panic!("not a Digest header value: {value}"));
    rest.split(',')
        .filter_map(|part| part.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect()
}

/// `H(data)` in lower-case hex, for `MD5` or `SHA-256`.
fn hash(algorithm: &str, data: &str) -> String {
    if algorithm.eq_ignore_ascii_case("SHA-256") {
        hex::encode(sha2::Sha256::digest(data.as_bytes()))
    } else {
        assert!(algorithm.eq_ignore_ascii_case("MD5"), "{algorithm}");
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(data.as_bytes()))
    }
}

/// The `response` of RFC 7616 §3.4.1 for `method uri` as `user`/`password`
/// in `realm`: with `(nc, cnonce)` for qop=auth, else RFC 2069's form.
#[allow(clippy::too_many_arguments)]
pub fn response(
    algorithm: &str,
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = hash(algorithm, &format!("{user}:{realm}:{password}"));
    let ha2 = hash(algorithm, &format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => hash(
            algorithm,
            &format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"),
        ),
        None => hash(algorithm, &format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// One `WWW-Authenticate` challenge, its parameters unquoted.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: String,
    pub qop: Option<String>,
    pub stale: bool,
}

impl Challenge {
    /// Parses `Digest realm="..", nonce="..", ...`.
    pub fn parse(value: &str) -> Challenge {
        let params = params(value);
        let get = |k: &str| params.get(k).cloned();
        Challenge {
            realm: get("realm").expect("challenge realm"),
            nonce: get("nonce").expect("challenge nonce"),
            algorithm: get("algorithm").unwrap_or_else(|| "MD5".into()),
            qop: get("qop"),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        }
    }

    /// The Authorization value for `method uri` as `user`/`password`, with
    /// nonce count `nc` and qop=auth when the challenge offers it.
    pub fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
    ) -> String {
        let cnonce = "5f3a9c1e";
        let nc = format!("{nc:08x}");
        let qop = self.qop.as_ref().map(|_| (nc.as_str(), cnonce));
        let response = response(
            &self.algorithm,
            user,
            &self.realm,
            password,
            method,
            uri,
            &self.nonce,
            qop,
        );
        let mut value = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}",
            self.realm, self.nonce, self.algorithm
        );
        if qop.is_some() {
            value.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        value
    }

    /// Checks credentials a client sent to this challenge for `method` as
    /// `user`/`password`: the same realm, nonce and algorithm, qop=auth as
    /// a bare token with nc and cnonce when the challenge asked for it,
    /// and the response recomputed here. Panics saying what is wrong.
    pub fn check(&self, authorization: &str, user: &str, password: &str, method: &str) {
        let p = params(authorization);
        let get = |k: &str| {
            p.get(k)
                .map(String::as_str)
                .unwrap_or_else(|| panic!("no {k} in {authorization}"))
        };
        assert_eq!(get("username"), user, "{authorization}");
        assert_eq!(get("realm"), self.realm, "{authorization}");
        assert_eq!(get("nonce"), self.nonce, "{authorization}");
        assert_eq!(get("algorithm"), self.algorithm, "{authorization}");
        let qop = self.qop.as_ref().map(|_| {
            assert!(
                authorization.contains("qop=auth,") || authorization.ends_with("qop=auth"),
                "qop is a bare token in credentials (RFC 7616 §3.4): {authorization}"
            );
            (get("nc"), get("cnonce"))
        });
        let expected = response(
            &self.algorithm,
            user,
            &self.realm,
            password,
            method,
            get("uri"),
            &self.nonce,
            qop,
        );
        assert_eq!(get("response"), expected, "{authorization}");
    }
}

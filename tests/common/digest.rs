//! The client's half of SIP digest authentication, written from RFC 7616
//! §3.4.1 for the tests (independent of vmesh's own module): read a
//! challenge, compute the credentials a PBX would send.

use sha2::Digest as _;

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
        let rest = value
            .trim()
            .strip_prefix("Digest")
            .unwrap_or_else(|| panic!("not a Digest challenge: {value}"));
        let mut params = std::collections::HashMap::new();
        for part in rest.split(',') {
            if let Some((k, v)) = part.split_once('=') {
                params.insert(
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                );
            }
        }
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
        let h = |data: String| -> String {
            if self.algorithm.eq_ignore_ascii_case("SHA-256") {
                hex::encode(sha2::Sha256::digest(data.as_bytes()))
            } else {
                use md5::Digest as _;
                hex::encode(md5::Md5::digest(data.as_bytes()))
            }
        };
        let ha1 = h(format!("{user}:{}:{password}", self.realm));
        let ha2 = h(format!("{method}:{uri}"));
        let cnonce = "5f3a9c1e";
        match &self.qop {
            Some(_) => {
                let nc = format!("{nc:08x}");
                let response = h(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce));
                format!(
                    "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
                     response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
                    self.realm, self.nonce, self.algorithm
                )
            }
            None => {
                let response = h(format!("{ha1}:{}:{ha2}", self.nonce));
                format!(
                    "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
                     response=\"{response}\", algorithm={}",
                    self.realm, self.nonce, self.algorithm
                )
            }
        }
    }
}

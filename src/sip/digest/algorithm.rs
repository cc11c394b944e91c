//! The digest computation itself, shared by both sides of SIP digest
//! authentication (RFC 3261 §22.4, RFC 7616 §3.4.1, RFC 8760).
//!
//! The client ([`super::client`]) computes a `response` to prove it knows
//! the password; the server ([`super::server`]) computes the same value to
//! check it. Both must hash exactly the same strings, so the algorithm
//! names, the hashes and the request-digest live here once:
//!
//! ```text
//! HA1      = H(username:realm:password)             (plain)
//!          = H(H(username:realm:password):nonce:cnonce)   (-sess, §3.4.2)
//! HA2      = H(method:uri)                          (qop=auth or none)
//!          = H(method:uri:H(body))                  (qop=auth-int)
//! response = H(HA1:nonce:nc:cnonce:qop:HA2)         (with qop)
//!          = H(HA1:nonce:HA2)                       (RFC 2069, no qop)
//! ```
//!
//! `H` is MD5, SHA-256 or SHA-512/256 (RFC 7616 §3.3 and RFC 8760 §2 name
//! them `MD5`, `SHA-256`, `SHA-512-256`), each in lower-case hex. The hashes
//! are RustCrypto's; only the composition is written here, as RFC 7616
//! spells it.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// The hash of a digest algorithm (RFC 7616 §3.3, RFC 8760 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestHash {
    /// MD5: what every SIP server supports, and the default.
    Md5,
    /// SHA-256.
    Sha256,
    /// SHA-512/256 (SHA-512 truncated, with its own initial values).
    Sha512_256,
}

/// An algorithm as named in a challenge: a hash, plain or `-sess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestAlgorithm {
    /// The hash function.
    pub hash: DigestHash,
    /// `-sess`: HA1 also covers the nonces (RFC 7616 §3.4.2).
    pub session: bool,
}

impl DigestAlgorithm {
    /// MD5, the algorithm of a challenge that names none (RFC 7616 §3.3).
    pub const MD5: DigestAlgorithm = DigestAlgorithm {
        hash: DigestHash::Md5,
        session: false,
    };

    /// SHA-256 (RFC 8760 §2.2).
    pub const SHA_256: DigestAlgorithm = DigestAlgorithm {
        hash: DigestHash::Sha256,
        session: false,
    };

    /// Reads an `algorithm` token, case-insensitively; `None` when vmesh
    /// does not support it.
    pub fn from_token(token: &str) -> Option<DigestAlgorithm> {
        let lower = token.to_ascii_lowercase();
        let (name, session) = match lower.strip_suffix("-sess") {
            Some(name) => (name, true),
            None => (lower.as_str(), false),
        };
        let hash = match name {
            "md5" => DigestHash::Md5,
            "sha-256" => DigestHash::Sha256,
            "sha-512-256" => DigestHash::Sha512_256,
            _ => return None,
        };
        Some(DigestAlgorithm { hash, session })
    }

    /// `H(data)`: the lower-case hex digest of `data`.
    pub fn hex(&self, data: &[u8]) -> String {
        match self.hash {
            // md5 is on another `digest` major version than sha2.
            DigestHash::Md5 => hex::encode(<Md5 as md5::Digest>::digest(data)),
            DigestHash::Sha256 => hex::encode(Sha256::digest(data)),
            DigestHash::Sha512_256 => hex::encode(Sha512_256::digest(data)),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    /// The token as registered with IANA: `MD5`, `SHA-256-sess`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.hash {
            DigestHash::Md5 => "MD5",
            DigestHash::Sha256 => "SHA-256",
            DigestHash::Sha512_256 => "SHA-512-256",
        };
        let session = if self.session { "-sess" } else { "" };
        write!(f, "{name}{session}")
    }
}

/// The quality of protection (RFC 7616 §3.3 `qop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// Authentication only.
    Auth,
    /// Authentication with integrity of the body.
    AuthInt,
}

impl Qop {
    /// The token, as written in credentials (unquoted, RFC 7616 §3.4).
    pub fn token(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    /// The qop a token names (case-insensitive).
    pub fn from_token(token: &str) -> Option<Qop> {
        if token.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if token.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

/// Everything the request-digest covers (RFC 7616 §3.4.1), as the client
/// sent it or is about to send it.
#[derive(Clone, Copy)]
pub struct DigestInputs<'a> {
    /// The algorithm.
    pub algorithm: DigestAlgorithm,
    /// The digest username.
    pub username: &'a str,
    /// The realm of the challenge.
    pub realm: &'a str,
    /// The password.
    pub password: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The digest `uri`, exactly as written in the credentials.
    pub uri: &'a str,
    /// The request's body (hashed for `auth-int` only).
    pub body: &'a [u8],
    /// The server's nonce.
    pub nonce: &'a str,
    /// The qop used; `None` for an RFC 2069-style answer.
    pub qop: Option<Qop>,
    /// The nonce count exactly as written (8 hex digits); used with qop.
    pub nc: &'a str,
    /// The client nonce; used with qop and by `-sess`.
    pub cnonce: &'a str,
}

impl fmt::Debug for DigestInputs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DigestInputs({} {:?}@{:?}, <redacted>)",
            self.algorithm, self.username, self.realm
        )
    }
}

impl DigestInputs<'_> {
    /// The `response` value (RFC 7616 §3.4.1).
    pub fn response(&self) -> String {
        let h = |text: &str| self.algorithm.hex(text.as_bytes());
        let mut ha1 = h(&format!(
            "{}:{}:{}",
            self.username, self.realm, self.password
        ));
        if self.algorithm.session {
            ha1 = h(&format!("{ha1}:{}:{}", self.nonce, self.cnonce));
        }
        let ha2 = match self.qop {
            Some(Qop::AuthInt) => h(&format!(
                "{}:{}:{}",
                self.method,
                self.uri,
                self.algorithm.hex(self.body)
            )),
            _ => h(&format!("{}:{}", self.method, self.uri)),
        };
        match self.qop {
            Some(qop) => h(&format!(
                "{ha1}:{}:{}:{}:{}:{ha2}",
                self.nonce,
                self.nc,
                self.cnonce,
                qop.token()
            )),
            None => h(&format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc7616(algorithm: DigestAlgorithm) -> String {
        DigestInputs {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop: Some(Qop::Auth),
            nc: "00000001",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        }
        .response()
    }

    #[test]
    fn rfc_7616_example_digests() {
        // RFC 7616 §3.9.1: the same request with MD5 and with SHA-256.
        assert_eq!(
            rfc7616(DigestAlgorithm::MD5),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        assert_eq!(
            rfc7616(DigestAlgorithm::SHA_256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc_2617_example() {
        // RFC 2617 §3.5's example, qop=auth (the only published MD5 vector
        // besides RFC 7616's).
        let response = DigestInputs {
            algorithm: DigestAlgorithm::MD5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some(Qop::Auth),
            nc: "00000001",
            cnonce: "0a4f113b",
        }
        .response();
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn algorithm_tokens_read_and_print_as_registered() {
        for token in [
            "MD5",
            "MD5-sess",
            "SHA-256",
            "SHA-256-sess",
            "SHA-512-256",
            "SHA-512-256-sess",
        ] {
            let algorithm = DigestAlgorithm::from_token(token).unwrap();
            assert_eq!(algorithm.to_string(), token);
            assert_eq!(
                DigestAlgorithm::from_token(&token.to_ascii_lowercase()),
                Some(algorithm)
            );
        }
        // rsipstack's spelling, and SHA-512 (not in RFC 8760), are not ours.
        assert_eq!(DigestAlgorithm::from_token("SHA256"), None);
        assert_eq!(DigestAlgorithm::from_token("SHA-512"), None);
        assert_eq!(Qop::from_token("AUTH-INT"), Some(Qop::AuthInt));
        assert_eq!(Qop::from_token("token"), None);
    }

    #[test]
    fn inputs_never_print_the_password() {
        let inputs = DigestInputs {
            algorithm: DigestAlgorithm::MD5,
            username: "u",
            realm: "r",
            password: "s3cret",
            method: "INVITE",
            uri: "sip:1001@h",
            body: b"",
            nonce: "n",
            qop: None,
            nc: "",
            cnonce: "",
        };
        assert!(!format!("{inputs:?}").contains("s3cret"));
    }
}

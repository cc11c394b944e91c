//! Who may call: the gate every new INVITE passes before anything is spent
//! on it (no RTP port, no dialog, no file).
//!
//! First the source address against `sip.allow` (403 Forbidden, RFC 3261
//! §21.4.3, for anyone else), then, when the profile lists `[[sip.auth]]`
//! users, SIP digest credentials ([`crate::sip::digest`]): 401 with a
//! challenge when they are missing, wrong or stale, 400 when they are
//! malformed. Only new INVITEs come here; ACK, BYE, re-INVITE and CANCEL
//! belong to a call that already passed (RFC 3261 §22.1 lets a UAS
//! challenge any request, but challenging an ACK is impossible and
//! challenging a BYE would only keep a call up).
//!
//! The source is the address the request really came from: the TCP
//! connection's peer, or on UDP the top Via's `received` (written by our
//! transport from the datagram's source, RFC 3261 §18.2.1, after removing
//! any the client wrote) or, when there is none, its sent-by host, which
//! then is the datagram's source. A spoofed UDP source can pass `allow`,
//! but its 200 goes to the spoofed host, and it cannot pass digest
//! authentication without the password.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Request, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tracing::{debug, info};

use crate::config::{CallerPolicy, Profile};
use crate::sip::digest::server::{DigestAlgorithm, DigestAuthenticator, DigestSettings, Verdict};
use crate::sip::responses;

/// What to do with a new INVITE.
#[derive(Debug)]
pub enum Admission {
    /// Go on with the call; `user` is the authenticated client, if any.
    Admit { user: Option<String> },
    /// Answer with this status and these headers, and stop.
    Refuse {
        status: StatusCode,
        headers: Vec<Header>,
    },
}

/// The profile's caller policy and, with `[[sip.auth]]`, the digest state.
pub struct CallerGate {
    policy: CallerPolicy,
    digest: Option<Mutex<DigestAuthenticator>>,
}

impl CallerGate {
    /// The gate a profile describes; nonces are keyed with a fresh random
    /// secret, so they die with the process.
    pub fn new(profile: &Profile) -> Self {
        let policy = profile.sip.callers.clone();
        let digest = (!policy.auth.is_empty()).then(|| {
            let settings = DigestSettings {
                realm: policy
                    .auth_realm
                    .clone()
                    .unwrap_or_else(|| profile.server.name.clone()),
                users: policy
                    .auth
                    .iter()
                    .map(|u| (u.user.clone(), u.password.expose().to_owned()))
                    .collect(),
                algorithms: policy
                    .auth_algorithms
                    .iter()
                    .filter_map(|a| DigestAlgorithm::from_token(a))
                    .collect(),
                nonce_lifetime: policy.nonce_lifetime,
            };
            Mutex::new(DigestAuthenticator::new(
                settings,
                rand::random(),
                Instant::now(),
            ))
        });
        CallerGate { policy, digest }
    }

    /// Decides on a new INVITE at `now`.
    pub fn check(&self, tx: &Transaction, now: Instant) -> Admission {
        let source = caller_source(tx);
        let restricted = self.policy.allow.is_some();
        if restricted && !source.is_some_and(|ip| self.policy.allows(ip)) {
            debug!(source = ?source, "INVITE from a source outside sip.allow");
            return refuse(
                StatusCode::Forbidden,
                vec![responses::warning("source not allowed to call")],
            );
        }
        let Some(digest) = &self.digest else {
            return Admission::Admit { user: None };
        };
        let req = &tx.original;
        let values = authorizations(req);
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let mut digest = digest.lock().unwrap_or_else(|p| p.into_inner());
        match digest.verify(&req.method.to_string(), &req.uri, &values, now) {
            Verdict::Authorized { user } => {
                debug!(%user, "INVITE authenticated");
                Admission::Admit { user: Some(user) }
            }
            Verdict::Challenge { stale, reason } => {
                if !values.is_empty() {
                    info!(source = ?source, %reason, stale, "digest authentication failed");
                }
                let mut headers: Vec<Header> = digest
                    .challenge(stale, now)
                    .into_iter()
                    .map(|c| Header::WwwAuthenticate(c.into()))
                    .collect();
                if !values.is_empty() {
                    headers.push(responses::warning(&reason));
                }
                refuse(StatusCode::Unauthorized, headers)
            }
            Verdict::BadRequest(reason) => {
                info!(source = ?source, %reason, "malformed digest credentials");
                refuse(StatusCode::BadRequest, vec![responses::warning(&reason)])
            }
        }
    }
}

fn refuse(status: StatusCode, headers: Vec<Header>) -> Admission {
    Admission::Refuse { status, headers }
}

/// The values of every Authorization header of `req`.
fn authorizations(req: &Request) -> Vec<String> {
    req.headers
        .iter()
        .filter_map(|h| match h {
            Header::Authorization(a) => Some(a.value().to_string()),
            _ => None,
        })
        .collect()
}

/// The address the request came from (see the module doc).
pub fn caller_source(tx: &Transaction) -> Option<IpAddr> {
    let from_connection = tx
        .connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
        .map(|a| a.ip());
    from_connection.or_else(|| {
        let via = tx.original.via_header().ok()?.typed().ok()?;
        via.received()
            .and_then(Result::ok)
            .or_else(|| via.uri.host_with_port.host.to_string().parse().ok())
    })
}

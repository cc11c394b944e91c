//! The registration of one `[[register]]` entry as a sans-IO state machine.
//!
//! RFC 3261 §10.2 in the shape of quinn-proto: the machine never touches a
//! socket or a clock. The driver asks it for the next REGISTER
//! ([`Registration::poll_transmit`]), reports each final response
//! ([`Registration::on_response`]) or the lack of one
//! ([`Registration::on_transport_failure`]), wakes it at
//! [`Registration::poll_timeout`] ([`Registration::handle_timeout`]), and
//! asks it to unregister when the server stops ([`Registration::shutdown`]).
//!
//! ```text
//!            start / restart
//!                  │
//!   ┌──────── Registering ◀────────────── binding lapsed ───┐
//!   │ 2xx          │ 401/407: answer, 423: raise Expires   │
//!   ▼              ▼ (same state, next CSeq)               │
//! Registered ── refresh due ──▶ Refreshing ─── 2xx ──▶ Registered
//!   │                              │ failure
//!   │                              ▼
//!   │          Failing { failure, next attempt, binding while it holds }
//!   │                              │ next attempt due: Refreshing / Registering
//!   └─ shutdown ─▶ Unregistering (Expires: 0) ─ final answer ─▶ Unregistered
//! ```
//!
//! What it does with each answer:
//!
//! - **2xx**: registered for the lifetime the registrar granted our Contact
//!   (§10.2.4: its `expires` parameter, else the Expires header), counted
//!   from when the REGISTER was sent; refreshed
//!   [`super::snapshot::MAX_REFRESH_MARGIN`]
//!   before expiry, or half-way for short lifetimes, leaving room for a
//!   timed-out transaction and retries before the binding lapses.
//! - **401/407**: answered with the challenge's nonce at once (RFC 8760
//!   digest, [`super::authorizer`]). A second challenge to an answer made
//!   with a fresh nonce means the credentials are wrong, unless it says
//!   `stale=true` (answered twice in a row at most).
//! - **423 Interval Too Brief**: asked again at once with the Min-Expires
//!   the registrar requires (§10.2.8), which later REGISTERs keep.
//! - **anything else, a timeout or a transport error**: Failing, retried
//!   after the [`super::backoff`] delay of its kind (fast for transient
//!   failures, slow for refusals); a binding that still holds is kept
//!   until it expires.
//!
//! One REGISTER is in flight at a time (§10.2: a UA must not send a new
//! registration before the previous one's final response or timeout), all
//! with one Call-ID and increasing CSeq numbers (§10.2.4), so an answer to
//! an abandoned request is recognized by its CSeq and ignored.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::authorizer::{AuthorizationHeader, Authorizer};
use super::backoff::FailureKind;
pub use super::snapshot::{Binding, Failure, Phase, Snapshot};
use crate::config::MAX_REGISTER_EXPIRES_S;
use crate::sip::digest::{Challenge, ChallengeError, ChallengeKind};

/// `stale=true` challenges answered in a row before giving up.
const MAX_STALE_ROUNDS: u8 = 2;
/// 423 answers followed in a row before giving up.
const MAX_INTERVAL_ROUNDS: u8 = 3;

/// What a registration needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The lifetime asked for.
    pub expires: Duration,
    /// Digest credentials; `None` when the profile gives no password.
    pub authorizer: Option<Authorizer>,
    /// Seeds the jitter of retry delays and the client nonces.
    pub seed: u64,
}

/// A REGISTER to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Its CSeq number.
    pub cseq: u32,
    /// Its Expires header: the lifetime asked, 0 to unregister.
    pub expires: u32,
    /// Credentials headers (none before the first challenge).
    pub authorization: Vec<AuthorizationHeader>,
}

/// A final response to a REGISTER, reduced to what the machine needs
/// (`super::answer` builds it from a SIP response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The CSeq number it answers.
    pub cseq: u32,
    /// The status code.
    pub status: u16,
    /// The reason phrase, for logs and the CLI.
    pub reason: String,
    /// 2xx: the lifetime granted to our Contact; `None` when the registrar
    /// listed bindings but not ours.
    pub granted: Option<Duration>,
    /// 423: the Min-Expires header.
    pub min_expires: Option<u32>,
    /// The Retry-After header.
    pub retry_after: Option<Duration>,
    /// 401/407: the challenge to answer, or why none can be.
    pub challenge: Result<Challenge, ChallengeError>,
}

/// Nonces adopted from challenges to the current chain of requests: a
/// second challenge of the same kind means the answer was refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fresh {
    www: bool,
    proxy: bool,
}

impl Fresh {
    fn get(self, kind: ChallengeKind) -> bool {
        match kind {
            ChallengeKind::Www => self.www,
            ChallengeKind::Proxy => self.proxy,
        }
    }

    fn set(&mut self, kind: ChallengeKind) {
        match kind {
            ChallengeKind::Www => self.www = true,
            ChallengeKind::Proxy => self.proxy = true,
        }
    }
}

/// One REGISTER request and the answers that led to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attempt {
    cseq: u32,
    expires: u32,
    /// When it was handed to the driver; `None` until then.
    sent_at: Option<Instant>,
    fresh: Fresh,
    stale_rounds: u8,
    interval_rounds: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Registering(Attempt),
    Registered {
        binding: Binding,
    },
    Refreshing {
        binding: Binding,
        attempt: Attempt,
    },
    Failing {
        failure: Failure,
        next_attempt: Instant,
        binding: Option<Binding>,
    },
    Unregistering(Attempt),
    Unregistered {
        outcome: Option<Failure>,
    },
}

/// The registration state machine (see the module documentation).
#[derive(Debug, Clone)]
pub struct Registration {
    state: State,
    /// The lifetime asked for, in seconds.
    expires: u32,
    authorizer: Option<Authorizer>,
    cseq: u32,
    /// Consecutive failures, and their kind (a change of kind restarts it).
    failures: (FailureKind, u32),
    last_status: Option<u16>,
    rng: StdRng,
}

impl Registration {
    /// A registration whose first REGISTER is due at once: at start, and
    /// so after every restart.
    pub fn new(settings: Settings) -> Registration {
        let expires = u32::try_from(settings.expires.as_secs()).unwrap_or(u32::MAX);
        let mut registration = Registration {
            state: State::Unregistered { outcome: None },
            expires,
            authorizer: settings.authorizer,
            cseq: 0,
            failures: (FailureKind::Transient, 0),
            last_status: None,
            rng: StdRng::seed_from_u64(settings.seed),
        };
        let attempt = registration.attempt(expires, None);
        registration.state = State::Registering(attempt);
        registration
    }

    /// The REGISTER to send now, if one is due; each is returned once.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Register> {
        let attempt = match &mut self.state {
            State::Registering(a) | State::Unregistering(a) => a,
            State::Refreshing { attempt, .. } => attempt,
            _ => return None,
        };
        if attempt.sent_at.is_some() {
            return None;
        }
        attempt.sent_at = Some(now);
        let (cseq, expires) = (attempt.cseq, attempt.expires);
        let authorization = match self.authorizer.as_mut() {
            Some(authorizer) => authorizer.headers(&mut self.rng),
            None => Vec::new(),
        };
        Some(Register {
            cseq,
            expires,
            authorization,
        })
    }

    /// When [`Registration::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Registered { binding } => Some(binding.refresh_at),
            State::Refreshing { binding, .. } => Some(binding.expires_at),
            State::Failing {
                next_attempt,
                binding,
                ..
            } => Some(match binding {
                Some(b) => b.expires_at.min(*next_attempt),
                None => *next_attempt,
            }),
            _ => None,
        }
    }

    /// Acts on the time: a refresh or retry falls due, a binding lapses.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state.clone() {
            State::Registered { binding } if now >= binding.refresh_at => {
                let attempt = self.attempt(self.expires, None);
                self.state = State::Refreshing { binding, attempt };
            }
            State::Refreshing { binding, attempt } if now >= binding.expires_at => {
                self.state = State::Registering(attempt);
            }
            State::Failing {
                failure,
                next_attempt,
                binding,
            } => {
                let binding = binding.filter(|b| now < b.expires_at);
                if now < next_attempt {
                    self.state = State::Failing {
                        failure,
                        next_attempt,
                        binding,
                    };
                    return;
                }
                let attempt = self.attempt(self.expires, None);
                self.state = match binding {
                    Some(binding) => State::Refreshing { binding, attempt },
                    None => State::Registering(attempt),
                };
            }
            _ => {}
        }
    }

    /// A final response to the REGISTER in flight; answers to anything
    /// else (an abandoned request) are ignored.
    pub fn on_response(&mut self, answer: &Answer, now: Instant) {
        let Some(attempt) = self.in_flight().filter(|a| a.cseq == answer.cseq) else {
            return;
        };
        if answer.status < 200 {
            return;
        }
        self.last_status = Some(answer.status);
        let unregistering = matches!(self.state, State::Unregistering(_));
        match answer.status {
            200..=299 if unregistering => self.state = State::Unregistered { outcome: None },
            200..=299 => self.on_accepted(answer, attempt, now),
            401 | 407 => self.on_challenge(answer, attempt, now),
            423 if !unregistering => self.on_interval_too_brief(answer, attempt, now),
            status => {
                let failure = Failure {
                    status: Some(status),
                    reason: format!("{status} {}", answer.reason),
                    kind: FailureKind::of_status(status),
                };
                self.fail(failure, answer.retry_after, now);
            }
        }
    }

    /// The REGISTER in flight got no final response: a timeout or a
    /// transport error, described by `reason`.
    pub fn on_transport_failure(&mut self, reason: &str, now: Instant) {
        if self.in_flight().is_none() {
            return;
        }
        let failure = Failure {
            status: None,
            reason: reason.to_owned(),
            kind: FailureKind::Transient,
        };
        self.fail(failure, None, now);
    }

    /// The server is stopping: remove the binding (Expires: 0, RFC 3261
    /// §10.2.2) if there is or may be one, else stop at once. Whatever was
    /// in flight is abandoned.
    pub fn shutdown(&mut self) {
        match &self.state {
            State::Registering(_)
            | State::Registered { .. }
            | State::Refreshing { .. }
            | State::Failing {
                binding: Some(_), ..
            } => {
                let attempt = self.attempt(0, None);
                self.state = State::Unregistering(attempt);
            }
            State::Failing { binding: None, .. } => {
                self.state = State::Unregistered { outcome: None };
            }
            State::Unregistering(_) | State::Unregistered { .. } => {}
        }
    }

    /// True once nothing more will be sent.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Unregistered { .. })
    }

    /// Everything known, for the status file and logs.
    pub fn snapshot(&self) -> Snapshot {
        let (phase, binding, next_attempt, failure) = match &self.state {
            State::Registering(_) => (Phase::Registering, None, None, None),
            State::Registered { binding } | State::Refreshing { binding, .. } => {
                (Phase::Registered, Some(*binding), None, None)
            }
            State::Failing {
                failure,
                next_attempt,
                binding,
            } => (
                Phase::Failing,
                *binding,
                Some(*next_attempt),
                Some(failure.clone()),
            ),
            State::Unregistering(_) => (Phase::Unregistering, None, None, None),
            State::Unregistered { outcome } => (Phase::Unregistered, None, None, outcome.clone()),
        };
        Snapshot {
            phase,
            binding,
            next_attempt,
            last_status: self.last_status,
            last_failure: failure,
            failures: self.failures.1,
            requested: Duration::from_secs(u64::from(self.expires)),
        }
    }

    /// The attempt awaiting its answer, if one was sent.
    fn in_flight(&self) -> Option<Attempt> {
        match &self.state {
            State::Registering(a) | State::Unregistering(a) => Some(*a),
            State::Refreshing { attempt, .. } => Some(*attempt),
            _ => None,
        }
        .filter(|a| a.sent_at.is_some())
    }

    /// A new REGISTER (the next CSeq), continuing `after`'s chain of
    /// answers when given.
    fn attempt(&mut self, expires: u32, after: Option<Attempt>) -> Attempt {
        self.cseq = self.cseq.wrapping_add(1) & 0x7fff_ffff;
        let base = after.unwrap_or(Attempt {
            cseq: 0,
            expires,
            sent_at: None,
            fresh: Fresh::default(),
            stale_rounds: 0,
            interval_rounds: 0,
        });
        Attempt {
            cseq: self.cseq,
            expires,
            sent_at: None,
            ..base
        }
    }

    /// Replaces the attempt in flight by `next`, sent at once.
    fn retry_now(&mut self, next: Attempt) {
        match &mut self.state {
            State::Registering(a) | State::Unregistering(a) => *a = next,
            State::Refreshing { attempt, .. } => *attempt = next,
            _ => {}
        }
    }

    fn on_accepted(&mut self, answer: &Answer, attempt: Attempt, now: Instant) {
        let sent_at = attempt.sent_at.unwrap_or(now);
        let failure = |reason: String| Failure {
            status: Some(answer.status),
            reason,
            kind: FailureKind::Transient,
        };
        match answer.granted {
            Some(granted) if !granted.is_zero() => {
                self.failures = (FailureKind::Transient, 0);
                let binding = Binding::new(granted, sent_at, now);
                self.state = State::Registered { binding };
            }
            Some(_) => {
                let why = format!("{} {}, but with Expires 0", answer.status, answer.reason);
                self.fail(failure(why), answer.retry_after, now)
            }
            None => {
                let why = format!(
                    "{} {}, but our Contact is not among the bindings",
                    answer.status, answer.reason
                );
                self.fail(failure(why), answer.retry_after, now)
            }
        }
    }

    fn on_challenge(&mut self, answer: &Answer, attempt: Attempt, now: Instant) {
        let status = answer.status;
        let refused = |reason: String| Failure {
            status: Some(status),
            reason: format!("{status} {}: {reason}", answer.reason),
            kind: FailureKind::Rejected,
        };
        let Some(kind) = ChallengeKind::of_status(status) else {
            return;
        };
        let Some(username) = self.authorizer.as_ref().map(|a| a.username().to_owned()) else {
            let why =
                refused("the registrar asks for credentials and no password is configured".into());
            return self.fail(why, answer.retry_after, now);
        };
        let challenge = match &answer.challenge {
            Ok(challenge) => challenge.clone(),
            Err(e) => {
                let why = refused(format!("cannot answer the challenge: {e}"));
                return self.fail(why, answer.retry_after, now);
            }
        };
        if attempt.fresh.get(kind) && !challenge.stale {
            let why = refused(format!(
                "credentials rejected (challenged again after answering as {username:?}); check the password"
            ));
            return self.fail(why, answer.retry_after, now);
        }
        if attempt.fresh.get(kind) && attempt.stale_rounds >= MAX_STALE_ROUNDS {
            let why = Failure {
                status: Some(status),
                reason: format!(
                    "{status} {}: the nonce was stale {} times in a row",
                    answer.reason,
                    MAX_STALE_ROUNDS + 1
                ),
                kind: FailureKind::Transient,
            };
            return self.fail(why, answer.retry_after, now);
        }
        let mut next = self.attempt(attempt.expires, Some(attempt));
        if attempt.fresh.get(kind) {
            next.stale_rounds += 1;
        }
        next.fresh.set(kind);
        if let Some(authorizer) = self.authorizer.as_mut() {
            authorizer.adopt(kind, challenge);
        }
        self.retry_now(next);
    }

    fn on_interval_too_brief(&mut self, answer: &Answer, attempt: Attempt, now: Instant) {
        match answer.min_expires {
            Some(min)
                if min > attempt.expires
                    && u64::from(min) <= MAX_REGISTER_EXPIRES_S
                    && attempt.interval_rounds < MAX_INTERVAL_ROUNDS =>
            {
                self.expires = min;
                let mut next = self.attempt(min, Some(attempt));
                next.interval_rounds += 1;
                self.retry_now(next);
            }
            min => {
                let failure = Failure {
                    status: Some(423),
                    reason: format!(
                        "423 {}: asked {} s, Min-Expires {}",
                        answer.reason,
                        attempt.expires,
                        min.map_or("missing".into(), |m| format!("{m} s (not usable)"))
                    ),
                    kind: FailureKind::Rejected,
                };
                self.fail(failure, answer.retry_after, now);
            }
        }
    }

    /// The attempt failed: schedule the next after the backoff of its kind
    /// (or stop, when unregistering), keeping a binding that still holds.
    fn fail(&mut self, failure: Failure, retry_after: Option<Duration>, now: Instant) {
        if matches!(self.state, State::Unregistering(_)) {
            self.state = State::Unregistered {
                outcome: Some(failure),
            };
            return;
        }
        let count = match self.failures {
            (kind, n) if kind == failure.kind => n.saturating_add(1),
            _ => 1,
        };
        self.failures = (failure.kind, count);
        let jitter = self.rng.random::<f64>();
        let delay = failure.kind.backoff().delay(count, jitter, retry_after);
        let binding = match &self.state {
            State::Registered { binding } | State::Refreshing { binding, .. } => Some(*binding),
            State::Failing { binding, .. } => *binding,
            _ => None,
        }
        .filter(|b| now < b.expires_at);
        self.state = State::Failing {
            failure,
            next_attempt: now + delay,
            binding,
        };
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

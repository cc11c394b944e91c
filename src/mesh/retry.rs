//! What the sender does with each outcome of a voicemail transfer.
//!
//! A transfer is one SIP MESSAGE to the mailbox's home server, and only a
//! 200 means "durably stored at home" (the mesh's contract, like SMTP's
//! 250), so only a 200 marks the message delivered. A 202 Accepted is what
//! RFC 3428 §7 lets a store-and-forward relay answer: accepted for later
//! delivery, not delivered; no vmesh home ever answers it, so it means
//! something else holds the peer's address or stands in the path. It is
//! retried, not parked: the message stays queued and is sent again with
//! backoff until a real home answers 200 (which absorbs any copy the relay
//! delivers meanwhile, by the message id), whereas parking it would stall
//! delivery until an operator acted even once the path is right again. The
//! other 2xx codes are treated the same way. Everything that may
//! succeed later is retried with the message kept: a timeout, a lost
//! connection, 408 Request Timeout, 429 Too Many Requests (RFC 6585 §4),
//! 480 Temporarily Unavailable (RFC 3261 §21.4.18, temporary by
//! definition), 486 Busy Here (what a vmesh server over capacity answers)
//! and every 5xx except 513, a server-side problem that a restart or a
//! quieter moment cures. Everything that will fail the same way every time
//! parks the message as failed with the reason, for an operator to read in
//! `vmesh queue` and retry by hand: the other 4xx (403 not a peer, 404 not
//! the home, 400 bad checksum, 413 too large), 513 Message Too Large (the
//! same verdict as 413, from the server class), 3xx (the topology, not a
//! redirect, says where a mailbox lives) and 6xx (RFC 3261 §21.6, a global
//! refusal). Retrying is safe because the receiver is idempotent on the
//! message id.
//!
//! Retry delays grow exponentially up to a cap, with *equal jitter*: half
//! of the delay is fixed and the other half random. Full jitter (a delay
//! anywhere from zero) spreads retries a little better, but can retry a
//! peer that has just failed almost at once, again and again; equal jitter
//! keeps a floor that grows with every attempt while still keeping the
//! messages queued for one peer from retrying in lockstep. A Retry-After
//! header (RFC 3261 §20.33) replaces the computed delay: the server knows
//! best when it can take the message, but no value is honoured beyond an
//! hour, so a mistaken header cannot stall a queue for days.
//!
//! The policy is a pure function: the attempt count and the random jitter
//! come from the caller, so every decision can be tested exactly.

use std::fmt;
use std::time::Duration;

/// The longest Retry-After honoured; longer values are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// How long to wait before retrying a transfer.
///
/// The defaults (1 s, doubling, capped at 5 min) retry a brief glitch
/// within a second or two, and a peer down for hours about every 5 min;
/// the health checks start a peer's outbox at once when it comes back, so
/// the cap does not delay delivery after an outage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The delay after the first failed attempt, before jitter.
    pub initial: Duration,
    /// The largest delay, before jitter.
    pub max: Duration,
    /// The growth factor per attempt; values below 1 (or not finite) are
    /// taken as 1, a constant delay.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            multiplier: 2.0,
        }
    }
}

/// How one transfer attempt ended, as seen by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The peer answered with a final response.
    Response {
        /// The status code.
        status: u16,
        /// The reason phrase as sent by the peer.
        reason: String,
        /// The Retry-After header's delay, if the response carried one.
        retry_after: Option<Duration>,
    },
    /// No final response arrived in time (RFC 3261 §17.1.2.2, Timer F).
    Timeout,
    /// The connection to the peer failed or closed before the response.
    ConnectionLost(String),
}

/// The text `vmesh queue` shows as the last error, for example
/// `503 Service Unavailable (retry after 30 s)`, `timeout` or
/// `connection lost: connection reset by peer`.
impl fmt::Display for TransferOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferOutcome::Response {
                status,
                reason,
                retry_after,
            } => {
                write!(f, "{status}")?;
                let reason = reason.trim();
                if !reason.is_empty() {
                    write!(f, " {reason}")?;
                }
                if let Some(after) = retry_after {
                    write!(f, " (retry after {} s", after.as_secs())?;
                    if *after > MAX_RETRY_AFTER {
                        write!(f, ", capped at {} s", MAX_RETRY_AFTER.as_secs())?;
                    }
                    f.write_str(")")?;
                }
                Ok(())
            }
            TransferOutcome::Timeout => f.write_str("timeout"),
            TransferOutcome::ConnectionLost(why) => write!(f, "connection lost: {why}"),
        }
    }
}

/// What to do with the message after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// The home server stored it durably: mark it delivered.
    Delivered,
    /// Keep it and try again after `after`.
    Retry {
        /// The delay before the next attempt.
        after: Duration,
        /// The last error, for `vmesh queue`.
        error: String,
    },
    /// Park it as failed until an operator retries it.
    Failed {
        /// Why, for `vmesh queue`.
        error: String,
    },
}

/// Whether a response is worth retrying, by status code.
enum Class {
    Success,
    Transient,
    Permanent,
}

fn classify(status: u16) -> Class {
    match status {
        200 => Class::Success,
        // Accepted, or some other success, but not "stored at home".
        201..=299 => Class::Transient,
        // A provisional response is not an answer: the transfer never
        // completed, so it is as good as a timeout.
        100..=199 => Class::Transient,
        408 | 429 | 480 | 486 => Class::Transient,
        513 => Class::Permanent,
        500..=599 => Class::Transient,
        _ => Class::Permanent,
    }
}

impl RetryPolicy {
    /// Decides the fate of a message after an attempt. `attempts` counts
    /// the attempts so far including this one (0 is taken as 1); `jitter`
    /// is a random number in `0.0..=1.0` from the caller.
    pub fn decide(&self, outcome: &TransferOutcome, attempts: u32, jitter: f64) -> Disposition {
        let error = outcome.to_string();
        match outcome {
            TransferOutcome::Response {
                status,
                retry_after,
                ..
            } => match classify(*status) {
                Class::Success => Disposition::Delivered,
                Class::Permanent => Disposition::Failed { error },
                Class::Transient => Disposition::Retry {
                    after: match retry_after {
                        Some(after) => (*after).min(MAX_RETRY_AFTER),
                        None => self.backoff(attempts, jitter),
                    },
                    error,
                },
            },
            TransferOutcome::Timeout | TransferOutcome::ConnectionLost(_) => Disposition::Retry {
                after: self.backoff(attempts, jitter),
                error,
            },
        }
    }

    /// The delay after `attempts` failed attempts (0 is taken as 1):
    /// `d = min(initial * multiplier^(attempts-1), max)`, then equal jitter,
    /// `d/2 + jitter * d/2`, so the result lies in `d/2..=d`. A jitter
    /// outside `0.0..=1.0` is clamped (NaN counts as 0). Never panics, even
    /// for huge attempt counts or odd policies.
    pub fn backoff(&self, attempts: u32, jitter: f64) -> Duration {
        let max = self.max.as_secs_f64();
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        // Beyond 2^11 steps any multiplier above 1 has long passed the cap
        // (or reached infinity, which `min` also caps).
        let steps = attempts.saturating_sub(1).min(2048) as i32;
        let grown = self.initial.as_secs_f64() * multiplier.powi(steps);
        // NaN only comes from 0 * infinity: an initial delay of zero stays zero.
        let capped = if grown.is_nan() { 0.0 } else { grown.min(max) };
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let delay = capped / 2.0 + jitter * capped / 2.0;
        Duration::try_from_secs_f64(delay)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;

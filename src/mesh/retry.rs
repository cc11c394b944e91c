//! What the sender does with each outcome of a voicemail transfer.
//!
//! A transfer is one SIP MESSAGE to the mailbox's home server, and only a
//! 2xx means "durably stored at home" (the mesh's contract, like SMTP's
//! 250), so only a 2xx marks the message delivered. Everything that may
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
        200..=299 => Class::Success,
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
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn response(status: u16, reason: &str) -> TransferOutcome {
        TransferOutcome::Response {
            status,
            reason: reason.to_owned(),
            retry_after: None,
        }
    }

    fn decide(outcome: &TransferOutcome) -> Disposition {
        RetryPolicy::default().decide(outcome, 1, 1.0)
    }

    #[test]
    fn only_2xx_delivers() {
        for status in [200, 202, 299] {
            assert_eq!(decide(&response(status, "OK")), Disposition::Delivered);
        }
    }

    #[test]
    fn transient_responses_are_retried_with_backoff() {
        for (status, reason) in [
            (408, "Request Timeout"),
            (429, "Too Many Requests"),
            (480, "Temporarily Unavailable"),
            (486, "Busy Here"),
            (500, "Server Internal Error"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (504, "Server Time-out"),
            (180, "Ringing"),
        ] {
            assert_eq!(
                decide(&response(status, reason)),
                Disposition::Retry {
                    after: S,
                    error: format!("{status} {reason}"),
                },
            );
        }
    }

    #[test]
    fn permanent_responses_park_the_message() {
        for (status, reason) in [
            (400, "Bad Request"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (413, "Request Entity Too Large"),
            (415, "Unsupported Media Type"),
            (513, "Message Too Large"),
            (301, "Moved Permanently"),
            (302, "Moved Temporarily"),
            (603, "Decline"),
            (699, "Custom"),
            (0, "Nonsense"),
        ] {
            assert_eq!(
                decide(&response(status, reason)),
                Disposition::Failed {
                    error: format!("{status} {reason}"),
                },
            );
        }
    }

    #[test]
    fn timeouts_and_lost_connections_are_retried() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.decide(&TransferOutcome::Timeout, 3, 1.0),
            Disposition::Retry {
                after: 4 * S,
                error: "timeout".to_owned(),
            }
        );
        assert_eq!(
            policy.decide(
                &TransferOutcome::ConnectionLost("reset by peer".into()),
                2,
                0.0
            ),
            Disposition::Retry {
                after: S,
                error: "connection lost: reset by peer".to_owned(),
            }
        );
    }

    #[test]
    fn retry_after_overrides_the_backoff_and_is_capped() {
        let policy = RetryPolicy::default();
        let busy = |secs| TransferOutcome::Response {
            status: 503,
            reason: "Service Unavailable".into(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            policy.decide(&busy(30), 1, 0.5),
            Disposition::Retry {
                after: 30 * S,
                error: "503 Service Unavailable (retry after 30 s)".to_owned(),
            }
        );
        assert_eq!(
            policy.decide(&busy(0), 9, 0.5),
            Disposition::Retry {
                after: Duration::ZERO,
                error: "503 Service Unavailable (retry after 0 s)".to_owned(),
            }
        );
        assert_eq!(
            policy.decide(&busy(86_400), 1, 0.5),
            Disposition::Retry {
                after: MAX_RETRY_AFTER,
                error: "503 Service Unavailable (retry after 86400 s, capped at 3600 s)".to_owned(),
            }
        );
    }

    #[test]
    fn retry_after_on_a_permanent_response_does_not_retry() {
        let outcome = TransferOutcome::Response {
            status: 404,
            reason: "Not Found".into(),
            retry_after: Some(10 * S),
        };
        assert!(matches!(decide(&outcome), Disposition::Failed { .. }));
    }

    #[test]
    fn empty_reason_shows_the_status_alone() {
        assert_eq!(response(503, "  ").to_string(), "503");
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let full: Vec<u64> = (1..=11).map(|n| policy.backoff(n, 1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(policy.backoff(0, 1.0), S, "0 attempts counts as 1");
    }

    #[test]
    fn equal_jitter_stays_in_the_upper_half() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(4, 0.0), 4 * S);
        assert_eq!(policy.backoff(4, 0.5), 6 * S);
        assert_eq!(policy.backoff(4, 1.0), 8 * S);
        assert_eq!(policy.backoff(4, -3.0), 4 * S, "clamped");
        assert_eq!(policy.backoff(4, 7.0), 8 * S, "clamped");
        assert_eq!(policy.backoff(4, f64::NAN), 4 * S);
        for i in 0..=100 {
            let d = policy.backoff(30, f64::from(i) / 100.0);
            assert!(d >= policy.max / 2 && d <= policy.max, "{d:?}");
        }
    }

    #[test]
    fn huge_attempt_counts_and_odd_policies_never_panic() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(u32::MAX, 1.0), policy.max);
        let odd = [
            RetryPolicy {
                initial: Duration::MAX,
                max: Duration::MAX,
                multiplier: f64::INFINITY,
            },
            RetryPolicy {
                initial: Duration::ZERO,
                max: Duration::MAX,
                multiplier: f64::INFINITY,
            },
            RetryPolicy {
                initial: S,
                max: Duration::ZERO,
                multiplier: f64::NAN,
            },
            RetryPolicy {
                initial: 10 * S,
                max: S,
                multiplier: 0.5,
            },
        ];
        for policy in odd {
            for attempts in [0, 1, 2, 64, 1025, u32::MAX] {
                assert!(policy.backoff(attempts, 1.0) <= policy.max, "{policy:?}");
            }
        }
    }

    #[test]
    fn multiplier_below_one_is_a_constant_delay() {
        let policy = RetryPolicy {
            multiplier: 0.1,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.backoff(5, 1.0), S);
    }
}

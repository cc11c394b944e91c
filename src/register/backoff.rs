//! How long a failed registration waits before it tries again.
//!
//! Two kinds of failure, two paces. A registrar that cannot be reached,
//! times out, or answers 408, 480, 429 or 5xx (a restart, an overload, a
//! network cut) may answer the next REGISTER: retry soon, then back off
//! exponentially so a registrar that is down for hours sees a REGISTER
//! every five minutes, not a flood. A registrar that refuses (403, 404, a
//! password rejected after a fresh challenge, any other 4xx, 3xx or 6xx)
//! will refuse again until someone changes the PBX or the profile: retry
//! slowly, starting at five minutes and backing off to an hour, never in a
//! tight loop, yet without giving up, so that fixing the PBX is enough.
//!
//! Each delay is drawn between half and all of its nominal value (RFC 5626
//! §4.5 recommends this spread for registration recovery), so servers
//! restarted together do not REGISTER in lockstep. A Retry-After header
//! (RFC 3261 §20.33) lengthens the delay to what the registrar asked, up to
//! an hour.

use std::time::Duration;

/// Whether a failure may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer, a transport error, 408, 429, 480 or a 5xx (not 501).
    Transient,
    /// A refusal that repeats until the configuration changes.
    Rejected,
}

impl FailureKind {
    /// The kind of a final response that ends a REGISTER attempt; 401,
    /// 407 and 423 are answered rather than classified.
    pub fn of_status(status: u16) -> FailureKind {
        match status {
            408 | 429 | 480 => FailureKind::Transient,
            501 => FailureKind::Rejected,
            500..=599 => FailureKind::Transient,
            _ => FailureKind::Rejected,
        }
    }

    /// The backoff of this kind of failure.
    pub fn backoff(self) -> Backoff {
        match self {
            FailureKind::Transient => TRANSIENT,
            FailureKind::Rejected => REJECTED,
        }
    }
}

/// An exponential backoff: `initial`, doubling per consecutive failure, up
/// to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// After a transient failure: 2 s, 4 s, 8 s ... up to 5 minutes.
pub const TRANSIENT: Backoff = Backoff {
    initial: Duration::from_secs(2),
    max: Duration::from_secs(300),
};

/// After a refusal: 5 minutes, 10, 20, 40, then every hour.
pub const REJECTED: Backoff = Backoff {
    initial: Duration::from_secs(300),
    max: Duration::from_secs(3600),
};

/// The longest Retry-After honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl Backoff {
    /// The nominal delay after the `failures`-th consecutive failure
    /// (counting from 1).
    pub fn nominal(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The delay to wait: the nominal one scaled into its upper half by
    /// `jitter` (0 ≤ jitter < 1), and at least `retry_after` (capped at
    /// [`MAX_RETRY_AFTER`]) when the registrar sent one.
    pub fn delay(&self, failures: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let nominal = self.nominal(failures);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let spread = nominal / 2 + (nominal / 2).mul_f64(jitter);
        match retry_after {
            Some(asked) => spread.max(asked.min(MAX_RETRY_AFTER)),
            None => spread,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn transient_failures_back_off_from_seconds_to_five_minutes() {
        let nominal: Vec<u64> = (1..=10).map(|n| TRANSIENT.nominal(n).as_secs()).collect();
        assert_eq!(nominal, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(TRANSIENT.nominal(u32::MAX), S(300));
    }

    #[test]
    fn refusals_are_retried_slowly() {
        let nominal: Vec<u64> = (1..=6).map(|n| REJECTED.nominal(n).as_secs()).collect();
        assert_eq!(nominal, [300, 600, 1200, 2400, 3600, 3600]);
    }

    #[test]
    fn the_delay_is_spread_over_the_upper_half() {
        assert_eq!(TRANSIENT.delay(3, 0.0, None), S(4));
        assert_eq!(TRANSIENT.delay(3, 0.5, None), S(6));
        assert_eq!(TRANSIENT.delay(3, 0.999_999, None).as_secs(), 7);
        assert_eq!(TRANSIENT.delay(3, f64::NAN, None), S(4));
        assert_eq!(REJECTED.delay(1, 0.0, None), S(150));
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens_and_is_capped() {
        assert_eq!(TRANSIENT.delay(1, 0.0, Some(S(30))), S(30));
        assert_eq!(REJECTED.delay(1, 0.0, Some(S(5))), S(150));
        assert_eq!(TRANSIENT.delay(1, 0.0, Some(S(86_400))), S(3600));
    }

    #[test]
    fn statuses_are_classified() {
        use FailureKind::*;
        for (status, kind) in [
            (408, Transient),
            (429, Transient),
            (480, Transient),
            (500, Transient),
            (503, Transient),
            (504, Transient),
            (501, Rejected),
            (403, Rejected),
            (404, Rejected),
            (400, Rejected),
            (302, Rejected),
            (603, Rejected),
        ] {
            assert_eq!(FailureKind::of_status(status), kind, "{status}");
        }
    }
}

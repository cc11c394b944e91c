//! One stream of NOTIFYs to one destination: coalescing, pacing and retry.
//!
//! Each subscription, and each unsolicited target of each mailbox, has a
//! [`Delivery`]. It never has more than one NOTIFY in flight, so NOTIFYs of
//! a dialog reach the subscriber in CSeq order and a slow subscriber costs
//! one transaction at a time. A NOTIFY carries the state at the moment it
//! is sent, not at the moment of the change, so changes that come while one
//! is due or in flight are coalesced into the next one.
//!
//! Pacing: RFC 3842 §3.11 asks a notifier not to send NOTIFYs for a
//! subscription more than once per second, so a change within a second of
//! the last NOTIFY waits for the second to pass (and takes every further
//! change with it). The NOTIFYs RFC 6665 requires at once (the first one
//! after a SUBSCRIBE, after a refresh, the final one) are not held back.
//!
//! Failures (RFC 6665 §4.2.2, RFC 5057 §5): a timeout (Timer F), a
//! transport error or a 408/480/500/503/504 is worth a bounded number of
//! further attempts with a doubling delay; any other final failure is not.
//! The caller decides what giving up means: a subscription is dropped, an
//! unsolicited target waits for the next change.
//!
//! ```text
//! Idle ──request──▶ Due{at} ──at──▶ InFlight ──2xx──▶ Idle (or Due, if asked again meanwhile)
//!                   ▲                 │
//!                   └──retry later────┘──no more tries──▶ Idle (given up)
//! ```

use std::time::{Duration, Instant};

/// How failed NOTIFYs are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per NOTIFY, the first included (at least 1).
    pub attempts: u32,
    /// Delay before the second attempt; it doubles for each further one.
    pub initial: Duration,
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based).
    fn delay_after(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
    }
}

/// How one NOTIFY ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// A 2xx.
    Delivered,
    /// A final response other than 2xx, with its status code.
    Refused(u16),
    /// No final response: Timer F, or the transport failed.
    NoAnswer,
}

impl NotifyOutcome {
    /// Whether another attempt might succeed (RFC 5057 §5.1: these leave
    /// the usage in place).
    fn worth_retrying(self) -> bool {
        match self {
            NotifyOutcome::Delivered => false,
            NotifyOutcome::NoAnswer => true,
            NotifyOutcome::Refused(status) => matches!(status, 408 | 480 | 500 | 503 | 504),
        }
    }
}

/// What an outcome means for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Delivered,
    /// It will be tried again (the next attempt is scheduled).
    Retrying,
    /// No further attempt: refused for good, or out of attempts.
    GaveUp,
}

/// Where one NOTIFY stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Nothing to send.
    Idle,
    /// A NOTIFY is due at `at`; `attempt` is the attempt it will be.
    Due { at: Instant, attempt: u32 },
    /// A NOTIFY is on the wire. `again` is when the next one is due, if one
    /// was asked for since it left (it must wait for this one).
    InFlight {
        attempt: u32,
        again: Option<Instant>,
    },
}

/// One NOTIFY stream: its state and when its last NOTIFY left (pacing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    state: DeliveryState,
    last_sent: Option<Instant>,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            state: DeliveryState::Idle,
            last_sent: None,
        }
    }
}

impl Delivery {
    /// Where the stream stands.
    pub fn state(&self) -> DeliveryState {
        self.state
    }

    /// Asks for a NOTIFY because the state changed: at `now`, or a
    /// `min_interval` after the last one left if that is later.
    pub fn request_change(&mut self, now: Instant, min_interval: Duration) {
        let paced = self
            .last_sent
            .map_or(now, |sent| now.max(sent + min_interval));
        self.request(paced);
    }

    /// Asks for a NOTIFY as soon as the one in flight, if any, is answered
    /// (RFC 6665 requires these at once: first, refresh, final).
    pub fn request_now(&mut self, now: Instant) {
        self.request(now);
    }

    /// A NOTIFY already due earlier stays due then; a retry keeps its
    /// back-off (a failing peer is not hammered).
    fn request(&mut self, at: Instant) {
        self.state = match self.state {
            DeliveryState::Idle => DeliveryState::Due { at, attempt: 1 },
            DeliveryState::Due { at: due, attempt } => DeliveryState::Due {
                at: if attempt > 1 { due } else { due.min(at) },
                attempt,
            },
            DeliveryState::InFlight { attempt, again } => DeliveryState::InFlight {
                attempt,
                again: Some(again.map_or(at, |a| a.min(at))),
            },
        };
    }

    /// When this stream next wants to send, if it waits for a time.
    pub fn due(&self) -> Option<Instant> {
        match self.state {
            DeliveryState::Due { at, .. } => Some(at),
            _ => None,
        }
    }

    /// If a NOTIFY is due at `now`, puts it in flight and returns true.
    pub fn start(&mut self, now: Instant) -> bool {
        match self.state {
            DeliveryState::Due { at, attempt } if at <= now => {
                self.state = DeliveryState::InFlight {
                    attempt,
                    again: None,
                };
                self.last_sent = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Whether a NOTIFY is in flight.
    pub fn in_flight(&self) -> bool {
        matches!(self.state, DeliveryState::InFlight { .. })
    }

    /// Whether nothing is due or in flight.
    pub fn is_idle(&self) -> bool {
        self.state == DeliveryState::Idle
    }

    /// Records how the NOTIFY in flight ended.
    pub fn finish(&mut self, outcome: NotifyOutcome, now: Instant, retry: RetryPolicy) -> Verdict {
        let DeliveryState::InFlight { attempt, again } = self.state else {
            return Verdict::GaveUp;
        };
        if outcome == NotifyOutcome::Delivered {
            self.state = match again {
                Some(at) => DeliveryState::Due { at, attempt: 1 },
                None => DeliveryState::Idle,
            };
            return Verdict::Delivered;
        }
        if outcome.worth_retrying() && attempt < retry.attempts {
            let at = now + retry.delay_after(attempt);
            self.state = DeliveryState::Due {
                at: again.map_or(at, |a| a.max(at)),
                attempt: attempt + 1,
            };
            return Verdict::Retrying;
        }
        self.state = DeliveryState::Idle;
        Verdict::GaveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: RetryPolicy = RetryPolicy {
        attempts: 3,
        initial: Duration::from_secs(2),
    };
    const PACE: Duration = Duration::from_secs(1);

    #[test]
    fn changes_during_a_notify_are_coalesced_into_the_next_paced_one() {
        let t0 = Instant::now();
        let mut d = Delivery::default();
        d.request_change(t0, PACE);
        assert!(d.start(t0));
        // Three changes while it is on the wire make one more NOTIFY.
        for ms in [10, 20, 30] {
            d.request_change(t0 + Duration::from_millis(ms), PACE);
        }
        assert!(!d.start(t0 + Duration::from_millis(40)), "one at a time");
        let done = t0 + Duration::from_millis(50);
        assert_eq!(
            d.finish(NotifyOutcome::Delivered, done, RETRY),
            Verdict::Delivered
        );
        // Paced: a second after the previous one left.
        assert_eq!(d.due(), Some(t0 + PACE));
        assert!(!d.start(t0 + Duration::from_millis(999)));
        assert!(d.start(t0 + PACE));
        assert_eq!(
            d.finish(NotifyOutcome::Delivered, t0 + PACE, RETRY),
            Verdict::Delivered
        );
        assert!(d.is_idle());
        // A change long after the last NOTIFY goes at once.
        let later = t0 + 10 * PACE;
        d.request_change(later, PACE);
        assert_eq!(d.due(), Some(later));
    }

    #[test]
    fn required_notifies_are_not_paced_and_never_postponed() {
        let t0 = Instant::now();
        let mut d = Delivery::default();
        d.request_now(t0);
        assert!(d.start(t0));
        assert_eq!(
            d.finish(NotifyOutcome::Delivered, t0, RETRY),
            Verdict::Delivered
        );
        // A refresh right after: not held back by the pacing.
        let t1 = t0 + Duration::from_millis(100);
        d.request_change(t1, PACE);
        assert_eq!(d.due(), Some(t0 + PACE));
        d.request_now(t1);
        assert_eq!(d.due(), Some(t1));
        d.request_change(t1 + PACE, PACE);
        assert_eq!(d.due(), Some(t1));
    }

    #[test]
    fn timeouts_are_retried_with_doubling_delays_then_given_up() {
        let t0 = Instant::now();
        let mut d = Delivery::default();
        d.request_change(t0, PACE);
        assert!(d.start(t0));
        let t1 = t0 + Duration::from_secs(32);
        assert_eq!(
            d.finish(NotifyOutcome::NoAnswer, t1, RETRY),
            Verdict::Retrying
        );
        assert_eq!(d.due(), Some(t1 + Duration::from_secs(2)));
        // A change meanwhile does not cut the back-off short.
        d.request_now(t1);
        assert_eq!(d.due(), Some(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        assert!(d.start(t2));
        assert_eq!(
            d.finish(NotifyOutcome::Refused(503), t2, RETRY),
            Verdict::Retrying
        );
        assert_eq!(d.due(), Some(t2 + Duration::from_secs(4)));
        let t3 = t2 + Duration::from_secs(4);
        assert!(d.start(t3));
        assert_eq!(
            d.finish(NotifyOutcome::NoAnswer, t3, RETRY),
            Verdict::GaveUp
        );
        assert!(d.is_idle());
    }

    #[test]
    fn a_refusal_is_final() {
        let t0 = Instant::now();
        for status in [481, 489, 403, 404, 603, 302] {
            let mut d = Delivery::default();
            d.request_now(t0);
            assert!(d.start(t0));
            assert_eq!(
                d.finish(NotifyOutcome::Refused(status), t0, RETRY),
                Verdict::GaveUp,
                "{status}"
            );
        }
        // A stray outcome with nothing in flight changes nothing.
        let mut idle = Delivery::default();
        assert_eq!(
            idle.finish(NotifyOutcome::Delivered, t0, RETRY),
            Verdict::GaveUp
        );
        assert!(idle.is_idle());
    }
}

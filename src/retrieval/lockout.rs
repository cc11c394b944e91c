//! Failed-login rate limiting, per (mailbox, source address).
//!
//! A four-digit PIN falls to a patient dialler in hours unless failures
//! cost something. Each (mailbox, source IP address) pair may fail
//! `failures` times within `window`; the next failure locks the pair for
//! `lockout`, during which its logins are refused without checking the PIN
//! (and without spending argon2 time on it). Keying on the pair, not the
//! mailbox alone, means an attacker at one address cannot lock the owner
//! out from their own phone, and keying on the address (not the port or
//! the call) means a new call does not reset the count.
//!
//! Sans-IO: time comes in as `now`, so tests replay minutes in
//! microseconds. One [`LoginLockout`] serves the whole server; the call
//! layer asks [`LoginLockout::check`] before verifying a PIN and reports
//! the verdict with [`LoginLockout::failed`] or [`LoginLockout::succeeded`].
//! Memory is bounded by forgetting pairs whose failures have all aged out
//! ([`LoginLockout::handle_timeout`], driven by
//! [`LoginLockout::poll_timeout`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::RetrievalConfig;

/// The limits: `failures` within `window` lock the pair for `lockout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that lock a pair (at least 1).
    pub failures: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// How long a locked pair stays locked.
    pub lockout: Duration,
}

impl LockoutPolicy {
    /// The profile's `retrieval.lockout_*` keys.
    pub fn from_config(config: &RetrievalConfig) -> LockoutPolicy {
        LockoutPolicy {
            failures: config.lockout_failures.max(1),
            window: config.lockout_window,
            lockout: config.lockout,
        }
    }
}

/// Whether a login may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Verify the PIN.
    Allowed,
    /// Refuse without verifying, until this instant.
    Locked {
        /// When the lock ends.
        until: Instant,
    },
}

/// One pair's recent history.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PairState {
    /// Failures within the window, oldest first (never more than the
    /// policy's `failures`).
    Counting(VecDeque<Instant>),
    /// Locked until the instant.
    Locked { until: Instant },
}

/// The failed-login state of every (mailbox, address) pair of a server.
#[derive(Debug)]
pub struct LoginLockout {
    policy: LockoutPolicy,
    pairs: HashMap<(String, IpAddr), PairState>,
}

impl LoginLockout {
    /// No pair has failed yet.
    pub fn new(policy: LockoutPolicy) -> LoginLockout {
        LoginLockout {
            policy,
            pairs: HashMap::new(),
        }
    }

    /// Whether `mailbox` may be logged into from `source` at `now`.
    pub fn check(&mut self, mailbox: &str, source: IpAddr, now: Instant) -> Admission {
        let key = (mailbox.to_owned(), source);
        match self.pairs.get(&key) {
            Some(PairState::Locked { until }) if now < *until => {
                Admission::Locked { until: *until }
            }
            Some(PairState::Locked { .. }) => {
                // The lock has run out: a clean slate.
                self.pairs.remove(&key);
                Admission::Allowed
            }
            _ => Admission::Allowed,
        }
    }

    /// Records a failed login; returns the new lock when this failure
    /// locks the pair (and logs it).
    pub fn failed(&mut self, mailbox: &str, source: IpAddr, now: Instant) -> Option<Instant> {
        let policy = self.policy;
        let state = self
            .pairs
            .entry((mailbox.to_owned(), source))
            .or_insert_with(|| PairState::Counting(VecDeque::new()));
        if let PairState::Locked { until } = state {
            if now < *until {
                return None;
            }
            *state = PairState::Counting(VecDeque::new());
        }
        let PairState::Counting(failures) = state else {
            return None;
        };
        while failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= policy.window)
        {
            failures.pop_front();
        }
        failures.push_back(now);
        if failures.len() < policy.failures as usize {
            return None;
        }
        let until = now + policy.lockout;
        tracing::warn!(
            mailbox,
            %source,
            failures = failures.len(),
            window_s = policy.window.as_secs(),
            lockout_s = policy.lockout.as_secs(),
            "too many failed logins: locking this mailbox for this source address"
        );
        *state = PairState::Locked { until };
        Some(until)
    }

    /// Records a successful login: the pair's failures are forgotten.
    pub fn succeeded(&mut self, mailbox: &str, source: IpAddr) {
        self.pairs.remove(&(mailbox.to_owned(), source));
    }

    /// When the next pair can be forgotten (its lock ends or its newest
    /// failure leaves the window).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pairs.values().filter_map(|s| self.expiry(s)).min()
    }

    /// Forgets the pairs that no longer hold anything at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let policy = self.policy;
        self.pairs.retain(|_, state| match state {
            PairState::Locked { until } => now < *until,
            PairState::Counting(failures) => failures
                .back()
                .is_some_and(|&t| now.saturating_duration_since(t) < policy.window),
        });
    }

    /// Pairs currently remembered.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// When a pair's state stops mattering.
    fn expiry(&self, state: &PairState) -> Option<Instant> {
        match state {
            PairState::Locked { until } => Some(*until),
            PairState::Counting(failures) => failures.back().map(|&t| t + self.policy.window),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn lockout() -> LoginLockout {
        LoginLockout::new(LockoutPolicy {
            failures: 5,
            window: 10 * MINUTE,
            lockout: 10 * MINUTE,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_failures_in_ten_minutes_lock_the_pair_for_ten_minutes() {
        let mut l = lockout();
        let t0 = Instant::now();
        let attacker = ip("127.0.0.9");
        for i in 0..4 {
            let now = t0 + i * MINUTE;
            assert_eq!(l.check("1001", attacker, now), Admission::Allowed);
            assert_eq!(l.failed("1001", attacker, now), None);
        }
        let fifth = t0 + 4 * MINUTE;
        assert_eq!(l.failed("1001", attacker, fifth), Some(fifth + 10 * MINUTE));
        let until = fifth + 10 * MINUTE;
        assert_eq!(
            l.check("1001", attacker, fifth + MINUTE),
            Admission::Locked { until }
        );
        // Failures while locked do not extend the lock.
        assert_eq!(l.failed("1001", attacker, fifth + 2 * MINUTE), None);
        assert_eq!(
            l.check("1001", attacker, until - Duration::from_millis(1)),
            Admission::Locked { until }
        );
        // When it ends, the pair starts from zero.
        assert_eq!(l.check("1001", attacker, until), Admission::Allowed);
        for i in 0..4 {
            assert_eq!(l.failed("1001", attacker, until + i * MINUTE), None);
        }
    }

    #[test]
    fn another_source_or_mailbox_is_not_locked_out() {
        let mut l = lockout();
        let t0 = Instant::now();
        let attacker = ip("127.0.0.9");
        for _ in 0..5 {
            l.failed("1001", attacker, t0);
        }
        assert!(matches!(
            l.check("1001", attacker, t0),
            Admission::Locked { .. }
        ));
        assert_eq!(l.check("1001", ip("127.0.0.10"), t0), Admission::Allowed);
        assert_eq!(l.check("1001", ip("::1"), t0), Admission::Allowed);
        assert_eq!(l.check("1002", attacker, t0), Admission::Allowed);
    }

    #[test]
    fn failures_age_out_of_the_window() {
        let mut l = lockout();
        let t0 = Instant::now();
        let source = ip("127.0.0.9");
        // Four failures, then one every three minutes: never five within
        // ten minutes of each other... until they bunch up.
        for i in 0..4 {
            assert_eq!(l.failed("1001", source, t0 + i * 3 * MINUTE), None);
        }
        // At 12 min the failure at 0 is out: 3, 6, 9, 12 are four.
        assert_eq!(l.failed("1001", source, t0 + 12 * MINUTE), None);
        // At 13 min: 6, 9, 12, 13 plus 3? No, 3 is out too (10 min ago).
        assert_eq!(l.failed("1001", source, t0 + 13 * MINUTE), None);
        // At 14 min: 6, 9, 12, 13, 14 are five within ten minutes.
        assert!(l.failed("1001", source, t0 + 14 * MINUTE).is_some());
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let mut l = lockout();
        let t0 = Instant::now();
        let source = ip("127.0.0.9");
        for _ in 0..4 {
            l.failed("1001", source, t0);
        }
        l.succeeded("1001", source);
        for _ in 0..4 {
            assert_eq!(l.failed("1001", source, t0), None);
        }
    }

    #[test]
    fn memory_is_given_back_when_pairs_expire() {
        let mut l = lockout();
        let t0 = Instant::now();
        for i in 0..100u8 {
            l.failed(&format!("{}", 1000 + u32::from(i)), ip("127.0.0.9"), t0);
        }
        for _ in 0..5 {
            l.failed("2000", ip("127.0.0.8"), t0 + MINUTE);
        }
        assert_eq!(l.len(), 101);
        assert_eq!(l.poll_timeout(), Some(t0 + 10 * MINUTE));
        l.handle_timeout(t0 + 10 * MINUTE);
        assert_eq!(l.len(), 1, "only the locked pair is left");
        assert_eq!(l.poll_timeout(), Some(t0 + 11 * MINUTE));
        l.handle_timeout(t0 + 11 * MINUTE);
        assert!(l.is_empty());
        assert_eq!(l.poll_timeout(), None);
    }
}

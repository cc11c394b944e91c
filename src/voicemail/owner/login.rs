//! Checking a PIN typed on a call: the failed-login lockout first, then
//! argon2id on a blocking thread.
//!
//! The lockout ([`LoginLockout`], sans-IO) counts failures per (mailbox,
//! source address); a locked pair is refused without spending argon2 time
//! on it. Checks of one pair run one at a time: without that, a burst of
//! parallel calls from one address would all pass the lockout before the
//! first failure was counted, and a four-digit PIN would fall to a few
//! thousand simultaneous guesses. With it, the lock holds whatever the
//! burst: the sixth guess waits for the fifth's verdict and finds the pair
//! locked. Other pairs (another address, another mailbox) are never held
//! up. The per-pair turn is a tokio mutex created on demand and dropped
//! when nobody waits for it, so memory follows the calls in progress.
//!
//! An unknown mailbox, a mailbox without a PIN and a wrong PIN cost the
//! same argon2 work ([`verify_or_burn`]) and give the same verdict.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::{info, warn};

use crate::retrieval::menu::PinVerdict;
use crate::retrieval::pin::verify_or_burn;
use crate::retrieval::{Admission, LockoutPolicy, LoginLockout, Pin};
use crate::store::Store;

/// A (mailbox, source address) pair.
type Pair = (String, IpAddr);

/// The server's login checks; one per server, shared by every call.
pub struct LoginGate {
    lockout: Mutex<LoginLockout>,
    turns: Mutex<HashMap<Pair, Arc<tokio::sync::Mutex<()>>>>,
}

impl LoginGate {
    /// Nothing has failed yet.
    pub fn new(policy: LockoutPolicy) -> LoginGate {
        LoginGate {
            lockout: Mutex::new(LoginLockout::new(policy)),
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `pin` for `mailbox`, typed on a call from `source` (`None`
    /// when the address cannot be told: such calls share one pair).
    pub async fn verify(
        &self,
        store: Arc<Store>,
        mailbox: &str,
        pin: Pin,
        source: Option<IpAddr>,
    ) -> PinVerdict {
        let source = source.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let pair: Pair = (mailbox.to_owned(), source);
        let turn = self.turn(&pair);
        let verdict = {
            let _held = turn.lock().await;
            self.verify_in_turn(store, &pair, pin).await
        };
        self.release(&pair, turn);
        verdict
    }

    async fn verify_in_turn(&self, store: Arc<Store>, pair: &Pair, pin: Pin) -> PinVerdict {
        let (mailbox, source) = (pair.0.clone(), pair.1);
        if let Admission::Locked { until } =
            self.with_lockout(|l, now| l.check(&mailbox, source, now))
        {
            let left = until.saturating_duration_since(Instant::now());
            warn!(mailbox, %source, locked_for_s = left.as_secs(), "login refused: this mailbox is locked for this address");
            return PinVerdict::Locked;
        }
        let check = {
            let mailbox = mailbox.clone();
            tokio::task::spawn_blocking(move || {
                let hash = match store.pin_hash(&mailbox) {
                    Ok(hash) => hash,
                    Err(e) => {
                        warn!(error = %e, "cannot read the PIN hash; refusing the login");
                        None
                    }
                };
                verify_or_burn(&pin, hash.as_deref())
            })
        };
        let accepted = match check.await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "PIN check failed to run; refusing the login");
                false
            }
        };
        if accepted {
            self.with_lockout(|l, _| l.succeeded(&mailbox, source));
            info!(mailbox, %source, "PIN accepted");
            PinVerdict::Accepted
        } else {
            self.with_lockout(|l, now| l.failed(&mailbox, source, now));
            PinVerdict::Rejected
        }
    }

    /// Runs `f` on the lockout at the current time, forgetting pairs whose
    /// failures have aged out first.
    fn with_lockout<T>(&self, f: impl FnOnce(&mut LoginLockout, Instant) -> T) -> T {
        let now = tokio::time::Instant::now().into_std();
        let mut lockout = self.lockout.lock().unwrap_or_else(|p| p.into_inner());
        if lockout.poll_timeout().is_some_and(|t| t <= now) {
            lockout.handle_timeout(now);
        }
        f(&mut lockout, now)
    }

    /// The pair's turn, made when nobody holds one.
    fn turn(&self, pair: &Pair) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        turns.entry(pair.clone()).or_default().clone()
    }

    /// Gives back a turn; the last one out removes it.
    fn release(&self, pair: &Pair, turn: Arc<tokio::sync::Mutex<()>>) {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        drop(turn);
        if turns.get(pair).is_some_and(|t| Arc::strong_count(t) == 1) {
            turns.remove(pair);
        }
    }

    /// Pairs with a check in progress or waiting (for tests and logs).
    pub fn checks_in_progress(&self) -> usize {
        self.turns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gate() -> LoginGate {
        LoginGate::new(LockoutPolicy {
            failures: 5,
            window: Duration::from_secs(600),
            lockout: Duration::from_secs(600),
        })
    }

    fn store_with_pin(pin: &str) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let hash = crate::retrieval::pin::hash(&Pin::parse(pin).unwrap()).unwrap();
        store.add_mailbox("1001", Some(&hash)).unwrap();
        (dir, Arc::new(store))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// Twenty wrong PINs at once from one address: five are checked, the
    /// rest find the pair locked, and so does the right PIN after them;
    /// another address logs in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_from_one_address_cannot_pass_the_lock() {
        let (_dir, store) = store_with_pin("2580");
        let gate = Arc::new(gate());
        let attempts: Vec<_> = (0..20)
            .map(|i| {
                let (gate, store) = (gate.clone(), store.clone());
                let guess = Pin::parse(&format!("{:04}", 3000 + i)).unwrap();
                tokio::spawn(
                    async move { gate.verify(store, "1001", guess, ip("127.0.0.9")).await },
                )
            })
            .collect();
        let mut rejected = 0;
        let mut locked = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                PinVerdict::Rejected => rejected += 1,
                PinVerdict::Locked => locked += 1,
                PinVerdict::Accepted => panic!("a wrong PIN was accepted"),
            }
        }
        assert_eq!((rejected, locked), (5, 15));
        let right = Pin::parse("2580").unwrap();
        assert_eq!(
            gate.verify(store.clone(), "1001", right.clone(), ip("127.0.0.9"))
                .await,
            PinVerdict::Locked
        );
        assert_eq!(
            gate.verify(store.clone(), "1001", right, ip("127.0.0.10"))
                .await,
            PinVerdict::Accepted
        );
        assert_eq!(gate.checks_in_progress(), 0, "turns are given back");
    }

    #[tokio::test]
    async fn unknown_mailboxes_and_missing_pins_are_rejected_alike() {
        let (_dir, store) = store_with_pin("2580");
        store.add_mailbox("1002", None).unwrap();
        let gate = gate();
        let pin = Pin::parse("2580").unwrap();
        for mailbox in ["1002", "1003", "not-a-mailbox"] {
            assert_eq!(
                gate.verify(store.clone(), mailbox, pin.clone(), None).await,
                PinVerdict::Rejected,
                "{mailbox}"
            );
        }
        assert_eq!(
            gate.verify(store, "1001", pin, None).await,
            PinVerdict::Accepted
        );
    }
}

//! Tests of `health.rs`.

use super::*;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn up() -> Option<Transition> {
    Some(Transition {
        from: PeerState::Unknown,
        to: PeerState::Up,
    })
}

/// A peer that answered its first ping with 200 at t0 + 10 ms.
fn up_peer(t0: Instant) -> PeerHealth {
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    assert!(peer.poll_ping(t0));
    assert_eq!(peer.on_response(200, t0 + 10 * MS), up());
    peer
}

/// Sends the ping due at `at` and fails it.
fn fail_at(peer: &mut PeerHealth, at: Instant) -> Option<Transition> {
    assert!(peer.poll_ping(at), "a ping is due at {at:?}");
    peer.on_failure("connection refused", at + MS)
}

#[test]
fn first_ping_is_due_at_once() {
    let t0 = Instant::now();
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    assert_eq!(peer.state(), PeerState::Unknown);
    assert_eq!(peer.poll_timeout(), t0);
    assert!(peer.poll_ping(t0));
    assert!(peer.snapshot().ping_in_flight);
}

#[test]
fn unknown_becomes_up_on_200_with_rtt() {
    let t0 = Instant::now();
    let peer = up_peer(t0);
    let snap = peer.snapshot();
    assert_eq!(snap.state, PeerState::Up);
    assert_eq!(snap.rtt, Some(10 * MS));
    assert_eq!(snap.last_seen, Some(t0 + 10 * MS));
    assert_eq!(snap.last_status, Some(200));
    assert!(!snap.ping_in_flight);
    assert!(!snap.overloaded);
}

#[test]
fn down_after_the_third_consecutive_failure() {
    let t0 = Instant::now();
    let mut peer = up_peer(t0);
    let mut at = peer.poll_timeout();
    assert_eq!(fail_at(&mut peer, at), None);
    at = peer.poll_timeout();
    assert_eq!(fail_at(&mut peer, at), None);
    assert_eq!(peer.state(), PeerState::Up);
    assert_eq!(peer.snapshot().failures, 2);
    at = peer.poll_timeout();
    let down = Some(Transition {
        from: PeerState::Up,
        to: PeerState::Down,
    });
    assert_eq!(fail_at(&mut peer, at), down);
    let snap = peer.snapshot();
    assert_eq!(snap.failures, 3);
    assert_eq!(snap.last_error.as_deref(), Some("connection refused"));
    at = peer.poll_timeout();
    assert_eq!(fail_at(&mut peer, at), None, "already down");
}

#[test]
fn unknown_becomes_down_without_ever_being_up() {
    let t0 = Instant::now();
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    let mut last = None;
    for _ in 0..3 {
        let at = peer.poll_timeout();
        last = fail_at(&mut peer, at);
    }
    assert_eq!(
        last,
        Some(Transition {
            from: PeerState::Unknown,
            to: PeerState::Down
        })
    );
}

#[test]
fn a_success_resets_the_failure_count() {
    let t0 = Instant::now();
    let mut peer = up_peer(t0);
    for _ in 0..2 {
        let at = peer.poll_timeout();
        fail_at(&mut peer, at);
    }
    let at = peer.poll_timeout();
    assert!(peer.poll_ping(at));
    assert_eq!(peer.on_response(200, at + MS), None, "still up");
    let snap = peer.snapshot();
    assert_eq!((snap.failures, snap.last_error), (0, None));
    // Two more failures are not enough for Down.
    for _ in 0..2 {
        let at = peer.poll_timeout();
        assert_eq!(fail_at(&mut peer, at), None);
    }
    assert_eq!(peer.state(), PeerState::Up);
}

#[test]
fn down_peer_comes_back_up_and_says_so() {
    let t0 = Instant::now();
    let mut peer = up_peer(t0);
    for _ in 0..3 {
        let at = peer.poll_timeout();
        fail_at(&mut peer, at);
    }
    let at = peer.poll_timeout();
    assert!(peer.poll_ping(at));
    let back = peer.on_response(200, at + MS).unwrap();
    assert_eq!(back.from, PeerState::Down);
    assert!(back.became_up());
}

#[test]
fn long_interval_when_idle_short_when_waiting() {
    let t0 = Instant::now();
    let mut peer = up_peer(t0);
    let answered = t0 + 10 * MS;
    assert_eq!(peer.poll_timeout(), answered + 30 * S);
    assert!(!peer.poll_ping(answered + 30 * S - MS));
    assert!(peer.poll_ping(answered + 30 * S));

    let mut peer = up_peer(t0);
    peer.set_waiting(true, answered);
    assert_eq!(peer.poll_timeout(), answered + 2 * S);
    assert!(!peer.poll_ping(answered + 2 * S - MS));
    assert!(peer.poll_ping(answered + 2 * S));
}

#[test]
fn set_waiting_pulls_an_overdue_ping_in() {
    let t0 = Instant::now();
    let mut peer = up_peer(t0);
    let later = t0 + 10 * S;
    assert!(!peer.poll_ping(later));
    peer.set_waiting(true, later);
    assert_eq!(peer.poll_timeout(), later);
    assert!(peer.poll_ping(later));
}

#[test]
fn set_waiting_false_goes_back_to_the_long_interval() {
    let t0 = Instant::now();
    let mut peer = up_peer(t0);
    let answered = t0 + 10 * MS;
    peer.set_waiting(true, answered);
    peer.set_waiting(false, answered + S);
    assert_eq!(peer.poll_timeout(), answered + 30 * S);
}

#[test]
fn no_second_ping_while_one_is_in_flight() {
    let t0 = Instant::now();
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    assert!(peer.poll_ping(t0));
    peer.set_waiting(true, t0 + 3 * S);
    assert!(!peer.poll_ping(t0 + 4 * S));
    assert_eq!(peer.poll_timeout(), t0 + 5 * S, "the ping timeout");
}

#[test]
fn unanswered_ping_times_out_as_a_failure() {
    let t0 = Instant::now();
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    assert!(peer.poll_ping(t0));
    assert_eq!(peer.handle_timeout(t0 + 5 * S - MS), None);
    assert!(peer.snapshot().ping_in_flight);
    assert_eq!(peer.handle_timeout(t0 + 5 * S), None);
    let snap = peer.snapshot();
    assert!(!snap.ping_in_flight);
    assert_eq!(snap.failures, 1);
    assert_eq!(
        snap.last_error.as_deref(),
        Some("no response to OPTIONS within 5 s")
    );
    assert_eq!(peer.poll_timeout(), t0 + 35 * S);
}

#[test]
fn late_response_proves_life_without_rtt() {
    let t0 = Instant::now();
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    assert!(peer.poll_ping(t0));
    peer.handle_timeout(t0 + 5 * S);
    assert_eq!(peer.on_response(200, t0 + 6 * S), up());
    assert_eq!(peer.snapshot().rtt, None);
    assert_eq!(peer.poll_timeout(), t0 + 35 * S, "schedule unchanged");
}

#[test]
fn stale_failure_is_ignored() {
    let t0 = Instant::now();
    let mut peer = up_peer(t0);
    assert_eq!(peer.on_failure("late", t0 + S), None);
    assert_eq!(peer.snapshot().failures, 0);
}

#[test]
fn any_final_response_is_alive_and_503_is_overloaded() {
    for status in [200, 302, 404, 481, 500, 503, 603] {
        let t0 = Instant::now();
        let mut peer = PeerHealth::new(HealthConfig::default(), t0);
        assert!(peer.poll_ping(t0));
        assert_eq!(peer.on_response(status, t0 + MS), up(), "{status}");
        assert_eq!(peer.snapshot().overloaded, status == 503, "{status}");
    }
}

#[test]
fn provisional_response_keeps_the_ping_in_flight() {
    let t0 = Instant::now();
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    assert!(peer.poll_ping(t0));
    assert_eq!(peer.on_response(100, t0 + MS), None);
    let snap = peer.snapshot();
    assert!(snap.ping_in_flight);
    assert_eq!(snap.state, PeerState::Unknown);
}

#[test]
fn out_of_range_status_is_a_failure() {
    let t0 = Instant::now();
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    assert!(peer.poll_ping(t0));
    assert_eq!(peer.on_response(700, t0 + MS), None);
    assert_eq!(peer.snapshot().failures, 1);
}

#[test]
fn traffic_brings_a_down_peer_up() {
    let t0 = Instant::now();
    let mut peer = PeerHealth::new(HealthConfig::default(), t0);
    for _ in 0..3 {
        let at = peer.poll_timeout();
        fail_at(&mut peer, at);
    }
    let seen = t0 + 100 * S;
    let deadline = peer.poll_timeout();
    assert!(peer.on_traffic(seen).unwrap().became_up());
    assert_eq!(peer.snapshot().last_seen, Some(seen));
    assert_eq!(peer.poll_timeout(), deadline);
}

#[test]
fn absurd_config_is_sanitized() {
    let t0 = Instant::now();
    let config = HealthConfig {
        short_interval: Duration::MAX,
        long_interval: Duration::MAX,
        failures_for_down: 0,
        ping_timeout: Duration::MAX,
    };
    let mut peer = PeerHealth::new(config, t0);
    assert!(peer.poll_ping(t0));
    assert_eq!(peer.poll_timeout(), t0 + MAX_CONFIG_DURATION);
    assert_eq!(
        peer.on_failure("refused", t0).map(|t| t.to),
        Some(PeerState::Down)
    );
    assert_eq!(peer.poll_timeout(), t0 + MAX_CONFIG_DURATION);
}

#[test]
fn state_names() {
    assert_eq!(PeerState::Unknown.to_string(), "unknown");
    assert_eq!(PeerState::Up.to_string(), "up");
    assert_eq!(PeerState::Down.as_str(), "down");
}

/// A small deterministic generator, so the simulation replays exactly.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Hours of simulated pings with random answers, delays, timeouts,
/// waiting flips and traffic: the invariants hold at every step.
#[test]
fn long_random_run_keeps_invariants() {
    let config = HealthConfig::default();
    for seed in 1..=8u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let t0 = Instant::now();
        let mut now = t0;
        let mut peer = PeerHealth::new(config, t0);
        let mut state = PeerState::Unknown;
        let mut sent_at: Option<Instant> = None;
        let mut pings = 0u32;
        while now < t0 + Duration::from_secs(6 * 3600) {
            // Advance to the next deadline, sometimes a little earlier
            // (an early wake-up must be harmless).
            let deadline = peer.poll_timeout();
            assert!(
                deadline >= now || sent_at.is_none(),
                "timeout not in the past"
            );
            now = now.max(deadline - Duration::from_millis(rng.below(3)));
            let transition = peer.handle_timeout(now).or_else(|| {
                if rng.below(50) == 0 {
                    peer.set_waiting(rng.below(2) == 0, now);
                }
                if rng.below(200) == 0 {
                    return peer.on_traffic(now);
                }
                None
            });
            check(&peer, &mut state, transition, config);
            if !peer.snapshot().ping_in_flight {
                sent_at = None;
            }
            if peer.poll_ping(now) {
                assert!(sent_at.is_none(), "two pings in flight");
                assert!(!peer.poll_ping(now), "poll twice sends once");
                sent_at = Some(now);
                pings += 1;
                // Answer, fail or let it time out, after a random delay.
                let delay = Duration::from_millis(rng.below(6000));
                let transition = match rng.below(4) {
                    0 if delay < config.ping_timeout => {
                        now += delay;
                        let t = peer.on_response(200 + 100 * rng.below(5) as u16, now);
                        assert_eq!(peer.snapshot().rtt, Some(delay));
                        t
                    }
                    1 if delay < config.ping_timeout => {
                        now += delay;
                        peer.on_failure("refused", now)
                    }
                    _ => None,
                };
                check(&peer, &mut state, transition, config);
                if !peer.snapshot().ping_in_flight {
                    sent_at = None;
                    assert!(peer.poll_timeout() > now, "next ping after this one");
                }
            }
        }
        assert!(pings > 6 * 3600 / 35, "pings keep going: {pings}");
    }
}

/// Checks the snapshot against the last state and the transition.
fn check(
    peer: &PeerHealth,
    state: &mut PeerState,
    transition: Option<Transition>,
    config: HealthConfig,
) {
    let snap = peer.snapshot();
    match transition {
        Some(t) => {
            assert_eq!(t.from, *state);
            assert_ne!(t.from, t.to);
            assert_eq!(t.to, snap.state);
        }
        None => assert_eq!(snap.state, *state, "state changed silently"),
    }
    *state = snap.state;
    match snap.state {
        PeerState::Down => assert!(snap.failures >= config.failures_for_down),
        PeerState::Up => assert!(snap.last_seen.is_some()),
        PeerState::Unknown => assert!(snap.failures < config.failures_for_down),
    }
    assert_eq!(snap.failures == 0, snap.last_error.is_none());
}

//! Peer health: is the home server of a mailbox reachable right now?
//!
//! This is the mesh's "network proxy": one [`PeerHealth`] per peer decides
//! when to send a SIP OPTIONS ping (RFC 3261 §11, querying capabilities,
//! the usual liveness probe between SIP servers) and turns the outcomes into
//! a [`PeerState`]. Any final response proves that the peer's SIP process
//! read the request and answered, so even 4xx and 5xx mark it Up; a 503
//! (RFC 3261 §21.5.4) marks it Up but overloaded, which the caller sees in
//! [`HealthSnapshot::overloaded`]. A transport error or a ping left
//! unanswered for [`HealthConfig::ping_timeout`] is a failure, and
//! [`HealthConfig::failures_for_down`] failures in a row make the peer Down.
//!
//! Pings go out every [`HealthConfig::short_interval`] while messages wait
//! for the peer (so a returning peer is noticed within seconds) and every
//! [`HealthConfig::long_interval`] otherwise (so idle peers cost almost
//! nothing). At most one ping is in flight per peer, so a slow peer is never
//! flooded. Every change of state is returned as a [`Transition`]; a
//! transition to Up is the caller's cue to start the peer's outbox at once
//! instead of at its next timer.
//!
//! The machine is sans-IO: it never touches a socket or a clock. Time enters
//! as `now`, and the caller drives it like this:
//!
//! ```text
//! loop {
//!     sleep until health.next_deadline()
//!     health.handle_timeout(now)         // a ping left unanswered -> failure
//!     if health.poll_ping(now) { send OPTIONS; later on_response / on_failure }
//! }
//! ```

use std::fmt;
use std::time::{Duration, Instant};

/// No interval or timeout is honoured above one day, so that deadline
/// arithmetic on `Instant` can never overflow whatever the profile says.
const MAX_CONFIG_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The SIP status meaning "alive but overloaded" (RFC 3261 §21.5.4).
const SERVICE_UNAVAILABLE: u16 = 503;

/// How often and how patiently a peer is pinged.
///
/// The defaults follow the mesh design: 2 s between pings while messages
/// wait (a returning peer gets its messages within seconds), 30 s otherwise,
/// Down after 3 failures in a row (one lost datagram or a slow restart does
/// not flap the state), and 5 s to answer a ping (well above any WAN
/// round trip, below the short interval's worth of waiting twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Ping interval while messages wait for this peer.
    pub short_interval: Duration,
    /// Ping interval while nothing waits for this peer.
    pub long_interval: Duration,
    /// Consecutive failures that make the peer Down (at least 1 is used).
    pub failures_for_down: u32,
    /// How long a ping may stay unanswered before it counts as a failure.
    pub ping_timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            short_interval: Duration::from_secs(2),
            long_interval: Duration::from_secs(30),
            failures_for_down: 3,
            ping_timeout: Duration::from_secs(5),
        }
    }
}

impl HealthConfig {
    /// The configuration actually used: durations capped at one day and at
    /// least one failure for Down, so no profile value can overflow a
    /// deadline or make a peer Down without a failure.
    fn sanitized(self) -> Self {
        HealthConfig {
            short_interval: self.short_interval.min(MAX_CONFIG_DURATION),
            long_interval: self.long_interval.min(MAX_CONFIG_DURATION),
            failures_for_down: self.failures_for_down.max(1),
            ping_timeout: self.ping_timeout.min(MAX_CONFIG_DURATION),
        }
    }
}

/// Whether a peer is reachable, as shown by `vmesh peers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Not yet proven alive or dead since this server started.
    Unknown,
    /// The peer answered its last ping or other request.
    Up,
    /// The peer failed [`HealthConfig::failures_for_down`] times in a row.
    Down,
}

impl PeerState {
    /// The name stored in SQLite and printed by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Up => "up",
            PeerState::Down => "down",
        }
    }
}

impl fmt::Display for PeerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of [`PeerState`], returned only when the state really changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: PeerState,
    /// The state after.
    pub to: PeerState,
}

impl Transition {
    /// True when the peer just became reachable: the caller should start
    /// sending its waiting messages now, not at the outbox's next timer.
    pub fn became_up(&self) -> bool {
        self.to == PeerState::Up
    }
}

/// What is known about one peer, for storage in SQLite and `vmesh peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// The current state.
    pub state: PeerState,
    /// Consecutive failures since the peer last proved alive.
    pub failures: u32,
    /// When the peer last proved alive (a ping answered, other traffic).
    pub last_seen: Option<Instant>,
    /// Round-trip time of the last answered ping.
    pub rtt: Option<Duration>,
    /// Why the last ping failed, while failures are counting.
    pub last_error: Option<String>,
    /// The status of the last answered ping.
    pub last_status: Option<u16>,
    /// The last answered ping got 503: alive, but asking for fewer requests.
    pub overloaded: bool,
    /// A ping has been sent and not yet answered or timed out.
    pub ping_in_flight: bool,
}

/// Where the ping cycle stands; one ping at most is ever in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ping {
    /// A ping is due at this instant.
    Due(Instant),
    /// The previous ping finished at this instant; the next is due one
    /// interval later, the interval chosen by whether messages wait.
    Idle(Instant),
    /// A ping was sent at this instant and awaits its response.
    InFlight(Instant),
}

/// The health state machine of one peer (see the module documentation).
#[derive(Debug, Clone)]
pub struct PeerHealth {
    config: HealthConfig,
    state: PeerState,
    ping: Ping,
    failures: u32,
    waiting: bool,
    last_seen: Option<Instant>,
    rtt: Option<Duration>,
    last_error: Option<String>,
    last_status: Option<u16>,
}

impl PeerHealth {
    /// A peer in state Unknown whose first ping is due at once, so a
    /// starting server learns about its peers without waiting an interval.
    pub fn new(config: HealthConfig, now: Instant) -> Self {
        PeerHealth {
            config: config.sanitized(),
            state: PeerState::Unknown,
            ping: Ping::Due(now),
            failures: 0,
            waiting: false,
            last_seen: None,
            rtt: None,
            last_error: None,
            last_status: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// Everything known about the peer, for SQLite and the CLI.
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            state: self.state,
            failures: self.failures,
            last_seen: self.last_seen,
            rtt: self.rtt,
            last_error: self.last_error.clone(),
            last_status: self.last_status,
            overloaded: self.last_status == Some(SERVICE_UNAVAILABLE),
            ping_in_flight: matches!(self.ping, Ping::InFlight(_)),
        }
    }

    /// Tells the machine whether messages wait for this peer. While they
    /// do, pings use the short interval; a ping that becomes overdue by the
    /// switch is due at once (`now`), so a queued message learns quickly
    /// whether its peer is reachable.
    pub fn set_waiting(&mut self, waiting: bool, now: Instant) {
        self.waiting = waiting;
        if let Ping::Idle(since) = self.ping {
            if self.due_after(since) <= now {
                self.ping = Ping::Due(now);
            }
        }
    }

    /// Returns true when a ping must be sent now, and marks it in flight;
    /// the caller sends one OPTIONS and reports its outcome with
    /// [`on_response`](Self::on_response) or [`on_failure`](Self::on_failure).
    /// Never true while a ping is in flight.
    pub fn poll_ping(&mut self, now: Instant) -> bool {
        let due = match self.ping {
            Ping::Due(at) => at,
            Ping::Idle(since) => self.due_after(since),
            Ping::InFlight(_) => return false,
        };
        if now < due {
            return false;
        }
        self.ping = Ping::InFlight(now);
        true
    }

    /// The response to the ping in flight. A final response (200..=699)
    /// proves the peer alive, whatever its class; a provisional one (1xx)
    /// changes nothing while the transaction goes on; a number outside the
    /// SIP range counts as a failure. A response with no ping in flight (it
    /// arrived after its timeout) still proves the peer alive, but gives no
    /// round-trip time and leaves the ping schedule alone.
    pub fn on_response(&mut self, status: u16, now: Instant) -> Option<Transition> {
        match status {
            100..=199 => None,
            200..=699 => {
                if let Ping::InFlight(sent) = self.ping {
                    self.rtt = Some(now.saturating_duration_since(sent));
                    self.ping = Ping::Idle(now);
                }
                self.last_status = Some(status);
                self.alive(now)
            }
            _ => self.on_failure(&format!("invalid status code {status}"), now),
        }
    }

    /// The ping in flight failed: a transport error, or a timeout the
    /// caller noticed itself. Ignored when no ping is in flight, so a stale
    /// report cannot count twice.
    pub fn on_failure(&mut self, error: &str, now: Instant) -> Option<Transition> {
        if !matches!(self.ping, Ping::InFlight(_)) {
            return None;
        }
        self.ping = Ping::Idle(now);
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error.to_owned());
        if self.failures >= self.config.failures_for_down {
            self.change_to(PeerState::Down)
        } else {
            None
        }
    }

    /// Proof of life from other traffic (a MESSAGE answered by the peer):
    /// the peer counts as seen and Up. The ping schedule is unchanged.
    pub fn on_traffic(&mut self, now: Instant) -> Option<Transition> {
        self.alive(now)
    }

    /// When [`handle_timeout`](Self::handle_timeout) and
    /// [`poll_ping`](Self::poll_ping) next need calling: the timeout of the
    /// ping in flight, or else the moment the next ping is due.
    pub fn next_deadline(&self) -> Instant {
        match self.ping {
            Ping::Due(at) => at,
            Ping::Idle(since) => self.due_after(since),
            Ping::InFlight(sent) => sent + self.config.ping_timeout,
        }
    }

    /// Counts the ping in flight as failed if it has waited
    /// [`HealthConfig::ping_timeout`] by `now`; does nothing otherwise.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Transition> {
        match self.ping {
            Ping::InFlight(sent) if now >= sent + self.config.ping_timeout => {
                let secs = self.config.ping_timeout.as_secs_f64();
                self.on_failure(&format!("no response to OPTIONS within {secs} s"), now)
            }
            _ => None,
        }
    }

    /// The interval in force: short while messages wait, long otherwise.
    fn interval(&self) -> Duration {
        if self.waiting {
            self.config.short_interval
        } else {
            self.config.long_interval
        }
    }

    /// When the next ping is due after one that finished at `since`.
    fn due_after(&self, since: Instant) -> Instant {
        since + self.interval()
    }

    /// The peer proved alive at `now`: the failure streak ends.
    fn alive(&mut self, now: Instant) -> Option<Transition> {
        self.last_seen = Some(now);
        self.failures = 0;
        self.last_error = None;
        self.change_to(PeerState::Up)
    }

    fn change_to(&mut self, to: PeerState) -> Option<Transition> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        Some(Transition { from, to })
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(peer.next_deadline(), t0);
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
        let mut at = peer.next_deadline();
        assert_eq!(fail_at(&mut peer, at), None);
        at = peer.next_deadline();
        assert_eq!(fail_at(&mut peer, at), None);
        assert_eq!(peer.state(), PeerState::Up);
        assert_eq!(peer.snapshot().failures, 2);
        at = peer.next_deadline();
        let down = Some(Transition {
            from: PeerState::Up,
            to: PeerState::Down,
        });
        assert_eq!(fail_at(&mut peer, at), down);
        let snap = peer.snapshot();
        assert_eq!(snap.failures, 3);
        assert_eq!(snap.last_error.as_deref(), Some("connection refused"));
        at = peer.next_deadline();
        assert_eq!(fail_at(&mut peer, at), None, "already down");
    }

    #[test]
    fn unknown_becomes_down_without_ever_being_up() {
        let t0 = Instant::now();
        let mut peer = PeerHealth::new(HealthConfig::default(), t0);
        let mut last = None;
        for _ in 0..3 {
            let at = peer.next_deadline();
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
            let at = peer.next_deadline();
            fail_at(&mut peer, at);
        }
        let at = peer.next_deadline();
        assert!(peer.poll_ping(at));
        assert_eq!(peer.on_response(200, at + MS), None, "still up");
        let snap = peer.snapshot();
        assert_eq!((snap.failures, snap.last_error), (0, None));
        // Two more failures are not enough for Down.
        for _ in 0..2 {
            let at = peer.next_deadline();
            assert_eq!(fail_at(&mut peer, at), None);
        }
        assert_eq!(peer.state(), PeerState::Up);
    }

    #[test]
    fn down_peer_comes_back_up_and_says_so() {
        let t0 = Instant::now();
        let mut peer = up_peer(t0);
        for _ in 0..3 {
            let at = peer.next_deadline();
            fail_at(&mut peer, at);
        }
        let at = peer.next_deadline();
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
        assert_eq!(peer.next_deadline(), answered + 30 * S);
        assert!(!peer.poll_ping(answered + 30 * S - MS));
        assert!(peer.poll_ping(answered + 30 * S));

        let mut peer = up_peer(t0);
        peer.set_waiting(true, answered);
        assert_eq!(peer.next_deadline(), answered + 2 * S);
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
        assert_eq!(peer.next_deadline(), later);
        assert!(peer.poll_ping(later));
    }

    #[test]
    fn set_waiting_false_goes_back_to_the_long_interval() {
        let t0 = Instant::now();
        let mut peer = up_peer(t0);
        let answered = t0 + 10 * MS;
        peer.set_waiting(true, answered);
        peer.set_waiting(false, answered + S);
        assert_eq!(peer.next_deadline(), answered + 30 * S);
    }

    #[test]
    fn no_second_ping_while_one_is_in_flight() {
        let t0 = Instant::now();
        let mut peer = PeerHealth::new(HealthConfig::default(), t0);
        assert!(peer.poll_ping(t0));
        peer.set_waiting(true, t0 + 3 * S);
        assert!(!peer.poll_ping(t0 + 4 * S));
        assert_eq!(peer.next_deadline(), t0 + 5 * S, "the ping timeout");
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
        assert_eq!(peer.next_deadline(), t0 + 35 * S);
    }

    #[test]
    fn late_response_proves_life_without_rtt() {
        let t0 = Instant::now();
        let mut peer = PeerHealth::new(HealthConfig::default(), t0);
        assert!(peer.poll_ping(t0));
        peer.handle_timeout(t0 + 5 * S);
        assert_eq!(peer.on_response(200, t0 + 6 * S), up());
        assert_eq!(peer.snapshot().rtt, None);
        assert_eq!(peer.next_deadline(), t0 + 35 * S, "schedule unchanged");
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
            let at = peer.next_deadline();
            fail_at(&mut peer, at);
        }
        let seen = t0 + 100 * S;
        let deadline = peer.next_deadline();
        assert!(peer.on_traffic(seen).unwrap().became_up());
        assert_eq!(peer.snapshot().last_seen, Some(seen));
        assert_eq!(peer.next_deadline(), deadline);
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
        assert_eq!(peer.next_deadline(), t0 + MAX_CONFIG_DURATION);
        assert_eq!(
            peer.on_failure("refused", t0).map(|t| t.to),
            Some(PeerState::Down)
        );
        assert_eq!(peer.next_deadline(), t0 + MAX_CONFIG_DURATION);
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
                let deadline = peer.next_deadline();
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
                        assert!(peer.next_deadline() > now, "next ping after this one");
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
}

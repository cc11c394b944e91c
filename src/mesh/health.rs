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
//!     sleep until health.poll_timeout()
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
    pub fn poll_timeout(&self) -> Instant {
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
#[path = "health_tests.rs"]
mod tests;

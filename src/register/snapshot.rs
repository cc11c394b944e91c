//! What a registration reports about itself: its phase, the binding the
//! registrar holds, and why the last attempt failed. The state machine
//! (`machine.rs`) produces these; the status file, the CLI and the logs
//! read them.

use std::time::{Duration, Instant};

use super::backoff::FailureKind;

/// The longest a refresh comes before the binding expires: room for a
/// REGISTER that times out (Timer F, 32 s) and a few retries before the
/// binding lapses.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// The shortest wait between a 2xx and the refresh it schedules.
const MIN_REFRESH_DELAY: Duration = Duration::from_secs(1);

/// Why the last attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The final status, or `None` for a timeout or transport error.
    pub status: Option<u16>,
    /// What happened, for logs and `vmesh registrations`.
    pub reason: String,
    /// Whether it is retried fast or slowly.
    pub kind: FailureKind,
}

/// A binding the registrar holds for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The lifetime granted.
    pub granted: Duration,
    /// When the registrar drops it unless refreshed.
    pub expires_at: Instant,
    /// When the refresh goes out.
    pub refresh_at: Instant,
}

impl Binding {
    /// A binding granted `granted` by a REGISTER sent at `sent_at`.
    pub(super) fn new(granted: Duration, sent_at: Instant, now: Instant) -> Binding {
        let margin = (granted / 2).min(MAX_REFRESH_MARGIN);
        Binding {
            granted,
            expires_at: sent_at + granted,
            refresh_at: (sent_at + granted - margin).max(now + MIN_REFRESH_DELAY),
        }
    }
}

/// The state names shown by `vmesh registrations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A REGISTER is out and no binding is known.
    Registering,
    /// The registrar holds the binding (a refresh may be out).
    Registered,
    /// The last attempt failed; the next is scheduled.
    Failing,
    /// The server is stopping: the un-REGISTER is out.
    Unregistering,
    /// Stopped: nothing more is sent.
    Unregistered,
}

impl Phase {
    /// The lower-case name printed and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Registering => "registering",
            Phase::Registered => "registered",
            Phase::Failing => "failing",
            Phase::Unregistering => "unregistering",
            Phase::Unregistered => "unregistered",
        }
    }
}

/// What is known about a registration, for the status file and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub phase: Phase,
    /// The binding at the registrar, while it holds.
    pub binding: Option<Binding>,
    /// When a failed registration is tried again.
    pub next_attempt: Option<Instant>,
    /// The status of the last final response.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, until one succeeds.
    pub last_failure: Option<Failure>,
    /// Consecutive failures of the same kind.
    pub failures: u32,
    /// The lifetime asked for (raised by 423).
    pub requested: Duration,
}

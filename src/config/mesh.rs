//! The `[mesh]` section: how a server watches its peers and moves messages
//! to them.
//!
//! Only meaningful with a topology, but always present with its defaults so
//! the mesh code never has to ask whether it was configured.

use std::time::Duration;

use toml::de::DeTable;

use super::reader::Reader;

/// Default interval between OPTIONS pings to a peer that has messages
/// waiting: short, so a returning peer gets them within seconds.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(2);

/// Default interval between OPTIONS pings to a peer with nothing waiting.
pub const DEFAULT_PING_IDLE_INTERVAL: Duration = Duration::from_secs(30);

/// Default time to wait for the answer to one OPTIONS ping.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Default consecutive failed pings after which a peer is down.
pub const DEFAULT_FAILURES_FOR_DOWN: u32 = 3;

/// Default largest transfer MESSAGE body, 16 MiB.
pub const DEFAULT_MAX_TRANSFER_BYTES: usize = 16 * 1024 * 1024;

/// Default MESSAGEs awaiting their answer on one peer's connection.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// Default delay before the first retry of a failed transfer.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);

/// Default cap of the exponential retry delay.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);

/// Default days the origin keeps its copy of a delivered message.
pub const DEFAULT_RETENTION_DAYS: u64 = 7;

/// Default time to wait for the final answer to a transfer MESSAGE: 64*T1,
/// the non-INVITE transaction timeout (RFC 3261 section 17.1.2.2, Timer F).
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(32);

const SECONDS_PER_DAY: u64 = 86_400;

/// Peer health checks and store-and-forward transfer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// OPTIONS interval while messages wait for the peer.
    pub ping_interval: Duration,
    /// OPTIONS interval while nothing waits; never below `ping_interval`.
    pub ping_idle_interval: Duration,
    /// A ping unanswered for this long counts as a failure.
    pub ping_timeout: Duration,
    /// Consecutive failures (timeouts, transport errors) that make a peer down.
    pub failures_for_down: u32,
    /// Largest MESSAGE body sent or accepted; a larger one received gets 413
    /// (RFC 3261 section 21.4.11), a larger recording is not sent.
    pub max_transfer_bytes: usize,
    /// MESSAGEs awaiting their answer on one peer's connection at once.
    pub max_in_flight: usize,
    /// First retry delay of a failed transfer; it doubles per attempt.
    pub retry_initial: Duration,
    /// Cap of the retry delay; never below `retry_initial`.
    pub retry_max: Duration,
    /// How long the origin keeps its copy after delivery; zero removes it
    /// at once.
    pub retention: Duration,
    /// A transfer MESSAGE without a final answer after this long is retried.
    pub transfer_timeout: Duration,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_idle_interval: DEFAULT_PING_IDLE_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            failures_for_down: DEFAULT_FAILURES_FOR_DOWN,
            max_transfer_bytes: DEFAULT_MAX_TRANSFER_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            retention: Duration::from_secs(DEFAULT_RETENTION_DAYS * SECONDS_PER_DAY),
            transfer_timeout: DEFAULT_TRANSFER_TIMEOUT,
        }
    }
}

impl MeshConfig {
    /// Reads `[mesh]`, then checks the keys that bound each other.
    pub(super) fn read(reader: &mut Reader<'_>, table: &DeTable<'_>) -> Self {
        let mut mesh = MeshConfig::default();
        let mut idle_span = None;
        let mut retry_max_span = None;
        for (name, node) in table.iter() {
            let key = format!("mesh.{}", name.get_ref());
            let secs = |reader: &mut Reader<'_>, max| {
                reader.integer(&key, node, 1..=max).map(Duration::from_secs)
            };
            match name.get_ref().as_ref() {
                "ping_interval_s" => {
                    if let Some(d) = secs(reader, 3600) {
                        mesh.ping_interval = d;
                    }
                }
                "ping_idle_interval_s" => {
                    idle_span = Some(node.span());
                    if let Some(d) = secs(reader, 86_400) {
                        mesh.ping_idle_interval = d;
                    }
                }
                "ping_timeout_s" => {
                    if let Some(d) = secs(reader, 300) {
                        mesh.ping_timeout = d;
                    }
                }
                "failures_for_down" => {
                    if let Some(n) = reader.integer(&key, node, 1..=100) {
                        mesh.failures_for_down = u32::try_from(n).unwrap_or(u32::MAX);
                    }
                }
                "max_transfer_bytes" => {
                    if let Some(n) = reader.integer(&key, node, 65_536..=1 << 30) {
                        mesh.max_transfer_bytes = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                "max_in_flight" => {
                    if let Some(n) = reader.integer(&key, node, 1..=1024) {
                        mesh.max_in_flight = usize::try_from(n).unwrap_or(usize::MAX);
                    }
                }
                "retry_initial_s" => {
                    if let Some(d) = secs(reader, 3600) {
                        mesh.retry_initial = d;
                    }
                }
                "retry_max_s" => {
                    retry_max_span = Some(node.span());
                    if let Some(d) = secs(reader, 86_400) {
                        mesh.retry_max = d;
                    }
                }
                "retention_days" => {
                    if let Some(n) = reader.integer(&key, node, 0..=3650) {
                        mesh.retention = Duration::from_secs(n * SECONDS_PER_DAY);
                    }
                }
                "transfer_timeout_s" => {
                    if let Some(d) = secs(reader, 3600) {
                        mesh.transfer_timeout = d;
                    }
                }
                _ => reader.unknown_key(&key, name.span()),
            }
        }
        if mesh.ping_idle_interval < mesh.ping_interval {
            let key = "mesh.ping_idle_interval_s";
            let message = format!(
                "{} s is below ping_interval_s ({} s); the idle interval is the longer one",
                mesh.ping_idle_interval.as_secs(),
                mesh.ping_interval.as_secs()
            );
            match idle_span {
                Some(span) => reader.error(key, span, message),
                None => reader.error_unplaced(key, message),
            }
        }
        if mesh.retry_max < mesh.retry_initial {
            let key = "mesh.retry_max_s";
            let message = format!(
                "{} s is below retry_initial_s ({} s); the cap must not be below the first delay",
                mesh.retry_max.as_secs(),
                mesh.retry_initial.as_secs()
            );
            match retry_max_span {
                Some(span) => reader.error(key, span, message),
                None => reader.error_unplaced(key, message),
            }
        }
        mesh
    }
}

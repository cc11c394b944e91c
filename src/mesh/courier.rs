//! The courier of one peer: watches its health and moves its outbox.
//!
//! One task per peer, driven by one clock: the health machine's
//! ([`super::health`]). Each turn hands it the time (`handle_timeout`: a
//! ping left unanswered counts as a failure, and its task is abandoned),
//! sends a ping when it asks for one (often while messages wait, rarely
//! otherwise), and while the peer is Up sends the due messages of its
//! outbox, at most `max_in_flight` at a time on the peer's one connection;
//! then it sleeps until the machine's `poll_timeout` or the next message
//! due, or until a ping or transfer ends, a message is queued or the peer
//! shows it is alive. It never spins: a message already in flight or due
//! while no room is free does not wake it, its transfer's end does.
//! Each outcome goes through the retry policy ([`super::retry`]): delivered
//! on 200 only, retried later with backoff, or parked as failed. Every state
//! change is written to SQLite before the next step, so a crash at any
//! point loses nothing: a message whose 200 was not recorded is sent again,
//! and the receiver absorbs the duplicate by its id.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rsipstack::sip::{Header, Method, Response};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::health::{HealthConfig, PeerHealth, PeerState};
use super::link::{LinkError, PeerLink};
use super::retry::{Disposition, RetryPolicy, TransferOutcome};
use super::wire::{self, TransferMeta, MESSAGE_CONTEXT};
use crate::config::MeshConfig;
use crate::store::{format_unix_ms, now_unix_ms, OutboxEntry, PeerRecord, Store, StoreError};

/// What the courier's background work reports back.
enum Event {
    Ping(Result<u16, String>),
    Transfer {
        id: String,
        attempts: u32,
        outcome: Result<TransferOutcome, String>,
    },
}

/// Moves one peer's messages.
pub struct Courier {
    pub peer: String,
    pub link: Arc<PeerLink>,
    pub store: Arc<Store>,
    pub config: MeshConfig,
    /// Woken when a message is queued for this peer.
    pub kick: Arc<Notify>,
    /// Woken when the peer itself shows it is alive (it pinged us): no need
    /// to wait for our next ping to start sending.
    pub alive: Arc<Notify>,
}

impl Courier {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let span = tracing::info_span!("peer", name = %self.peer);
        self.work(shutdown).instrument(span).await
    }

    async fn work(self, shutdown: CancellationToken) {
        let mut health = PeerHealth::new(self.health_config(), Instant::now());
        let policy = RetryPolicy {
            initial: self.config.retry_initial,
            max: self.config.retry_max,
            multiplier: 2.0,
        };
        let mut tasks: JoinSet<Event> = JoinSet::new();
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut last_seen: Option<SystemTime> = None;
        let mut saved: Option<PeerRecord> = None;
        let mut ping: Option<AbortHandle> = None;
        loop {
            let now = Instant::now();
            if let Some(t) = health.handle_timeout(now) {
                info!(from = %t.from, to = %t.to, "peer state changed (ping unanswered)");
            }
            if !health.snapshot().ping_in_flight {
                // Timed out above (or finished): a late outcome must not
                // count for the next ping.
                if let Some(task) = ping.take() {
                    task.abort();
                }
            }
            self.save_health(&health, last_seen, &mut saved).await;
            let next_due = self
                .blocking(|s, p| s.outbox_next_due(p))
                .await
                .unwrap_or(None);
            health.set_waiting(next_due.is_some() || !in_flight.is_empty(), now);
            if health.poll_ping(now) {
                let link = self.link.clone();
                let timeout = self.config.ping_timeout;
                ping = Some(tasks.spawn(async move {
                    let sent = link.request(Method::Options, vec![], vec![], timeout).await;
                    Event::Ping(
                        sent.map(|r| r.status_code.code())
                            .map_err(|e| e.to_string()),
                    )
                }));
            }
            if health.state() == PeerState::Up {
                self.dispatch_due(&mut tasks, &mut in_flight).await;
            }
            let mut deadline = health.poll_timeout();
            // A message due later wakes the courier then; one due now is in
            // flight already or waits for room, which a transfer's end
            // makes.
            if let (Some(due), PeerState::Up) = (next_due, health.state()) {
                let at = instant_of(due);
                if at > Instant::now() && in_flight.len() < self.config.max_in_flight {
                    deadline = deadline.min(at);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.kick.notified() => {}
                _ = self.alive.notified() => {
                    if let Some(t) = health.on_traffic(Instant::now()) {
                        info!(from = %t.from, to = %t.to, "peer state changed (it pinged us)");
                        last_seen = Some(SystemTime::now());
                        self.save_health(&health, last_seen, &mut saved).await;
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok(event) = done else { continue };
                    self.on_event(event, &mut health, &policy, &mut in_flight, &mut last_seen).await;
                    self.save_health(&health, last_seen, &mut saved).await;
                }
            }
        }
        tasks.abort_all();
    }

    fn health_config(&self) -> HealthConfig {
        HealthConfig {
            short_interval: self.config.ping_interval,
            long_interval: self.config.ping_idle_interval,
            failures_for_down: self.config.failures_for_down,
            ping_timeout: self.config.ping_timeout + Duration::from_secs(1),
        }
    }

    /// Starts transfers for the due messages, up to the in-flight bound.
    async fn dispatch_due(&self, tasks: &mut JoinSet<Event>, in_flight: &mut HashSet<String>) {
        let free = self.config.max_in_flight.saturating_sub(in_flight.len());
        if free == 0 {
            return;
        }
        let limit = free + in_flight.len();
        let due = match self
            .blocking(move |s, p| s.outbox_due(p, now_ms(), limit))
            .await
        {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot read the outbox");
                return;
            }
        };
        let fresh: Vec<OutboxEntry> = due
            .into_iter()
            .filter(|e| !in_flight.contains(&e.id))
            .take(free)
            .collect();
        for entry in fresh {
            in_flight.insert(entry.id.clone());
            let span = tracing::info_span!("transfer", id = %entry.id, mailbox = %entry.mailbox);
            let work = transfer(
                self.link.clone(),
                self.store.clone(),
                entry,
                self.config.transfer_timeout,
                self.config.max_transfer_bytes,
            );
            tasks.spawn(work.instrument(span));
        }
    }

    async fn on_event(
        &self,
        event: Event,
        health: &mut PeerHealth,
        policy: &RetryPolicy,
        in_flight: &mut HashSet<String>,
        last_seen: &mut Option<SystemTime>,
    ) {
        let now = Instant::now();
        let transition = match event {
            Event::Ping(Ok(status)) => {
                *last_seen = Some(SystemTime::now());
                health.on_response(status, now)
            }
            Event::Ping(Err(error)) => health.on_failure(&error, now),
            Event::Transfer {
                id,
                attempts,
                outcome,
            } => {
                in_flight.remove(&id);
                let transition = match &outcome {
                    // Proof of life for the health machine; `last_seen`
                    // (what `vmesh peers` shows) follows the pings, so a
                    // transfer costs no extra commit.
                    Ok(TransferOutcome::Response { .. }) => health.on_traffic(now),
                    Ok(TransferOutcome::Timeout) => health.on_failure("transfer timed out", now),
                    Ok(TransferOutcome::ConnectionLost(e)) => health.on_failure(e, now),
                    Err(_) => None,
                };
                self.settle(&id, attempts, outcome, policy).await;
                transition
            }
        };
        if let Some(t) = transition {
            info!(from = %t.from, to = %t.to, "peer state changed");
        }
    }

    /// Records what became of one transfer.
    async fn settle(
        &self,
        id: &str,
        attempts: u32,
        outcome: Result<TransferOutcome, String>,
        policy: &RetryPolicy,
    ) {
        let id = id.to_string();
        let result = match outcome {
            Err(local) => {
                warn!(%id, error = %local, "message cannot be sent; parked");
                self.blocking(move |s, _| s.outbox_failed(&id, &local))
                    .await
            }
            Ok(outcome) => match policy.decide(&outcome, attempts, rand::random::<f64>()) {
                Disposition::Delivered => {
                    info!(%id, attempts, "delivered to its home");
                    self.blocking(move |s, _| s.outbox_delivered(&id, now_ms()))
                        .await
                }
                Disposition::Retry { after, error } => {
                    info!(%id, attempts, ?after, %error, "transfer will be retried");
                    let at = now_ms() + after.as_millis() as i64;
                    self.blocking(move |s, _| s.outbox_retry_later(&id, at, &error))
                        .await
                }
                Disposition::Failed { error } => {
                    warn!(%id, attempts, %error, "transfer refused; parked as failed");
                    self.blocking(move |s, _| s.outbox_failed(&id, &error))
                        .await
                }
            },
        };
        if let Err(e) = result {
            warn!(error = %e, "cannot record a transfer outcome");
        }
    }

    /// Writes the peer's health for `vmesh peers` when it changed since the
    /// last write (not after every transfer: each write is a commit).
    async fn save_health(
        &self,
        health: &PeerHealth,
        last_seen: Option<SystemTime>,
        saved: &mut Option<PeerRecord>,
    ) {
        let snapshot = health.snapshot();
        let mut record = PeerRecord {
            name: self.peer.clone(),
            state: snapshot.state.as_str().to_string(),
            last_seen: last_seen.and_then(rfc3339),
            rtt_ms: snapshot
                .rtt
                .map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0),
            failures: snapshot.failures,
            last_error: snapshot.last_error.clone(),
            updated_at: String::new(),
        };
        if saved.as_ref() == Some(&record) {
            return;
        }
        *saved = Some(record.clone());
        record.updated_at = rfc3339(SystemTime::now()).unwrap_or_default();
        if let Err(e) = self.blocking(move |s, _| s.save_peer(&record)).await {
            debug!(error = %e, "cannot save peer state");
        }
    }

    /// Runs a store call off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        let peer = self.peer.clone();
        match tokio::task::spawn_blocking(move || f(&store, &peer)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Task(e.to_string())),
        }
    }
}

/// Sends one message as a SIP MESSAGE and reports the outcome.
async fn transfer(
    link: Arc<PeerLink>,
    store: Arc<Store>,
    entry: OutboxEntry,
    timeout: Duration,
    max_body: usize,
) -> Event {
    let id = entry.id.clone();
    let attempts = entry.attempts + 1;
    let loaded = tokio::task::spawn_blocking(move || {
        let message = store.get(&entry.id)?;
        let audio = store.read_audio(&message)?;
        Ok::<_, StoreError>((message, audio))
    })
    .await;
    let (message, audio) = match loaded {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            return Event::Transfer {
                id,
                attempts,
                outcome: Err(e.to_string()),
            }
        }
        Err(e) => {
            return Event::Transfer {
                id,
                attempts,
                outcome: Err(e.to_string()),
            }
        }
    };
    let meta = TransferMeta::from(&message);
    let (content_type, filename) = match message.format.as_str() {
        "opus" => ("audio/ogg", format!("{}.opus", message.id)),
        _ => ("audio/wav", format!("{}.wav", message.id)),
    };
    let (multipart_type, body) = wire::encode(&meta, &audio, content_type, &filename);
    if body.len() > max_body {
        // The peer would answer 413; no point in sending it (issue 3).
        let error = format!("{} bytes over max_transfer_bytes {max_body}", body.len());
        return Event::Transfer {
            id,
            attempts,
            outcome: Err(error),
        };
    }
    let headers = vec![
        Header::ContentType(multipart_type.into()),
        Header::Other("Message-Context".into(), MESSAGE_CONTEXT.into()),
    ];
    debug!(bytes = body.len(), "sending MESSAGE");
    let outcome = match link.request(Method::Message, headers, body, timeout).await {
        Ok(response) => response_outcome(&response),
        Err(LinkError::Timeout(_)) => TransferOutcome::Timeout,
        Err(e) => TransferOutcome::ConnectionLost(e.to_string()),
    };
    Event::Transfer {
        id,
        attempts,
        outcome: Ok(outcome),
    }
}

fn response_outcome(response: &Response) -> TransferOutcome {
    let retry_after = response.headers.iter().find_map(|h| match h {
        Header::RetryAfter(r) => r
            .to_string()
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs),
        _ => None,
    });
    TransferOutcome::Response {
        status: response.status_code.code(),
        reason: response.status_code.text().to_string(),
        retry_after,
    }
}

/// Milliseconds since the Unix epoch, the outbox's clock.
pub fn now_ms() -> i64 {
    now_unix_ms().0
}

/// The monotonic instant of an outbox time (past times map to now).
fn instant_of(ms: i64) -> Instant {
    let delta = ms.saturating_sub(now_ms()).max(0) as u64;
    Instant::now() + Duration::from_millis(delta)
}

fn rfc3339(t: SystemTime) -> Option<String> {
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
    format_unix_ms(i64::try_from(ms).ok()?)
}

//! The tokio layer around the [`Notifier`]: one task that owns it, feeds it
//! SUBSCRIBEs, store changes, NOTIFY outcomes and the clock, and carries
//! out what it decides.
//!
//! Changes: the store raises a signal after each of this process's own
//! commits, and a [`ChangeWatcher`] (its own SQLite connection, `PRAGMA
//! data_version`) is looked at on that signal and every `[mwi] poll_ms`,
//! which catches the commits of other processes such as the CLI. Only the
//! mailboxes the change log names are counted again, and only those whose
//! home is here. SUBSCRIBE dialogs are kept in the store, so they survive a
//! restart: at start-up every subscription is restored and told the
//! current state, expired ones get their final NOTIFY, and every mailbox
//! that unsolicited NOTIFYs cover is announced once.
//!
//! Each NOTIFY runs in a task of its own and reports back on a channel;
//! nothing here waits on a subscriber, so a dead one costs a transaction
//! timer and no call ever waits for this task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::delivery::{NotifyOutcome, RetryPolicy};
use super::home::HomeRule;
use super::notification;
use super::notifier::{Action, Ended, Notifier, NotifierConfig, Notify, Target};
use super::sender::Sender;
use super::subscribe::ExpiryBounds;
use super::subscription::TerminationReason;
use super::summary::MessageSummary;
use crate::config::{NotifyTemplate, Profile};
use crate::sip::SipStack;
use crate::store::{now_unix_ms, ChangeWatcher, Store, StoreError, SubscriptionRecord};

/// RFC 3842 §3.11: at most one NOTIFY per second per destination.
const MIN_NOTIFY_INTERVAL: Duration = Duration::from_secs(1);

/// What the service is asked to do from outside.
pub(super) enum Command {
    /// Answer this SUBSCRIBE.
    Subscribe(Box<Transaction>),
    /// Look for changes now.
    Changed,
}

/// The service's state; see the module documentation.
pub(super) struct Service {
    pub(super) notifier: Notifier,
    pub(super) records: HashMap<String, SubscriptionRecord>,
    /// The TCP connection each subscription's SUBSCRIBE came on, while it
    /// has not failed a NOTIFY (in memory only: connections do not
    /// survive a restart).
    pub(super) inbound: HashMap<String, SipConnection>,
    sender: Arc<Sender>,
    pub(super) store: Arc<Store>,
    pub(super) home: HomeRule,
    templates: Arc<Vec<NotifyTemplate>>,
    pub(super) domain: Option<String>,
    pub(super) bounds: ExpiryBounds,
    poll: Duration,
    outcomes: mpsc::UnboundedSender<(Target, NotifyOutcome)>,
}

impl Service {
    pub(super) fn new(
        profile: &Profile,
        sip: Arc<SipStack>,
        store: Arc<Store>,
        shutdown: CancellationToken,
        outcomes: mpsc::UnboundedSender<(Target, NotifyOutcome)>,
    ) -> Service {
        let mwi = &profile.mwi;
        let home = HomeRule::of(profile);
        let filter = home.clone();
        let config = NotifierConfig {
            retry: RetryPolicy {
                attempts: mwi.retry_attempts,
                initial: mwi.retry_initial,
            },
            min_interval: MIN_NOTIFY_INTERVAL,
            max_in_flight: mwi.max_in_flight,
        };
        Service {
            notifier: Notifier::new(
                config,
                mwi.notify.len(),
                Box::new(move |mailbox| filter.announces(mailbox)),
            ),
            records: HashMap::new(),
            inbound: HashMap::new(),
            sender: Arc::new(Sender::new(sip, mwi.credentials.as_ref(), shutdown)),
            store,
            home,
            templates: Arc::new(mwi.notify.clone()),
            domain: mwi.domain.clone(),
            bounds: ExpiryBounds {
                min: mwi.min_expires,
                max: mwi.max_expires,
            },
            poll: mwi.poll_interval,
            outcomes,
        }
    }

    /// Runs until `shutdown`.
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut outcomes: mpsc::UnboundedReceiver<(Target, NotifyOutcome)>,
        shutdown: CancellationToken,
    ) {
        let mut watcher = match self.start().await {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                warn!(error = %e, "message-waiting cannot watch the store; lamps follow only SUBSCRIBEs");
                None
            }
        };
        let signal = self.store.change_signal();
        let mut poll = tokio::time::interval(self.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.carry_out();
            let deadline = self.notifier.poll_timeout();
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                command = commands.recv() => match command {
                    Some(Command::Subscribe(tx)) => self.on_subscribe(*tx).await,
                    Some(Command::Changed) => self.look_for_changes(&mut watcher).await,
                    None => return,
                },
                Some((target, outcome)) = outcomes.recv() => {
                    if let (Target::Subscription(id), false) =
                        (&target, outcome == NotifyOutcome::Delivered)
                    {
                        // The next attempt opens a connection of ours.
                        self.inbound.remove(id);
                    }
                    self.notifier.finished(&target, outcome, Instant::now());
                }
                _ = signal.notified() => self.look_for_changes(&mut watcher).await,
                _ = poll.tick() => self.look_for_changes(&mut watcher).await,
                _ = timer => self.notifier.handle_timeout(Instant::now()),
            }
        }
    }

    /// Creates the watcher, announces every mailbox the unsolicited
    /// NOTIFYs cover, and restores the subscriptions.
    async fn start(&mut self) -> Result<ChangeWatcher, StoreError> {
        let store = self.store.clone();
        let home = self.home.clone();
        let (watcher, counts, records) = blocking(move || {
            // The watcher first: a change after it is seen again later,
            // never lost between the two.
            let watcher = store.change_watcher()?;
            let mut counts = Vec::new();
            for mailbox in store.known_mailboxes()? {
                if home.is_home(&mailbox) {
                    counts.push((mailbox.clone(), store.counts(&mailbox)?));
                }
            }
            Ok((watcher, counts, store.subscriptions()?))
        })
        .await?;
        let now = Instant::now();
        for (mailbox, counts) in counts {
            self.notifier
                .announce(&mailbox, MessageSummary::from(counts), now);
        }
        let (now_ms, _) = now_unix_ms();
        let restored = records.len();
        for record in records {
            let left =
                Duration::from_millis(u64::try_from(record.expires_ms - now_ms).unwrap_or(0));
            let (id, mailbox) = (record.id.clone(), record.mailbox.clone());
            self.records.insert(id.clone(), record);
            self.notifier.subscribe(&id, &mailbox, now + left, now);
            if !self.home.is_home(&mailbox) {
                self.notifier.end(&id, TerminationReason::Noresource, now);
            }
        }
        if restored > 0 {
            info!(
                subscriptions = restored,
                "message-waiting subscriptions restored"
            );
        }
        Ok(watcher)
    }

    /// Counts again the mailboxes changed since the last look.
    async fn look_for_changes(&mut self, watcher: &mut Option<ChangeWatcher>) {
        let Some(mut w) = watcher.take() else {
            return;
        };
        let store = self.store.clone();
        let home = self.home.clone();
        let looked = tokio::task::spawn_blocking(move || {
            let counts = w.changed().and_then(|mailboxes| {
                mailboxes
                    .into_iter()
                    .filter(|m| home.is_home(m))
                    .map(|m| store.counts(&m).map(|c| (m, c)))
                    .collect::<Result<Vec<_>, StoreError>>()
            });
            (w, counts)
        })
        .await;
        match looked {
            Ok((w, counts)) => {
                *watcher = Some(w);
                match counts {
                    Ok(counts) => {
                        let now = Instant::now();
                        for (mailbox, counts) in counts {
                            debug!(%mailbox, new = counts.new, old = counts.heard(), "mailbox counts");
                            self.notifier
                                .set_summary(&mailbox, MessageSummary::from(counts), now);
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot read mailbox changes"),
                }
            }
            Err(e) => warn!(error = %e, "change watcher task failed; lamps follow only SUBSCRIBEs"),
        }
    }

    /// Carries out the notifier's actions.
    fn carry_out(&mut self) {
        while let Some(action) = self.notifier.poll_action() {
            match action {
                Action::Notify(notify) => self.spawn_notify(notify),
                Action::Forget { id, ended } => {
                    let mailbox = self.records.remove(&id).map(|r| r.mailbox);
                    self.inbound.remove(&id);
                    match ended {
                        Ended::Terminated(reason) => {
                            info!(subscription = %id, ?mailbox, reason = reason.as_str(), "subscription ended")
                        }
                        Ended::SubscriberGone => {
                            warn!(subscription = %id, ?mailbox, "subscriber does not take NOTIFYs; subscription dropped")
                        }
                    }
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        if let Err(e) = blocking(move || store.remove_subscription(&id)).await {
                            warn!(error = %e, "cannot remove a subscription from the store");
                        }
                    });
                }
            }
        }
    }

    /// Sends one NOTIFY in a task of its own; its outcome comes back on
    /// the outcomes channel.
    fn spawn_notify(&self, notify: Notify) {
        let outcomes = self.outcomes.clone();
        let sender = self.sender.clone();
        let store = self.store.clone();
        let target = notify.target.clone();
        let span =
            tracing::info_span!("notify", mailbox = %notify.mailbox, to = tracing::field::Empty);
        match &notify.target {
            Target::Subscription(id) => {
                let record = self.records.get(id).cloned();
                let inbound = self.inbound.get(id).cloned();
                tokio::spawn(
                    async move {
                        let outcome = match record {
                            Some(record) => {
                                notification::in_dialog(&sender, &store, record, inbound, notify)
                                    .await
                            }
                            None => NotifyOutcome::Refused(481),
                        };
                        outcomes.send((target, outcome)).ok();
                    }
                    .instrument(span),
                );
            }
            Target::Unsolicited { template, .. } => {
                let uri = self
                    .templates
                    .get(*template)
                    .map(|t| t.expand(&notify.mailbox));
                let domain = self.domain.clone();
                tokio::spawn(
                    async move {
                        let outcome = match uri {
                            Some(uri) => {
                                notification::unsolicited(&sender, &uri, domain, notify).await
                            }
                            None => NotifyOutcome::Refused(404),
                        };
                        outcomes.send((target, outcome)).ok();
                    }
                    .instrument(span),
                );
            }
        }
    }
}

/// Runs a store call on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn duration_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

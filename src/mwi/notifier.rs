//! The message-waiting notifier: a sans-IO core that decides which NOTIFY
//! goes where and when.
//!
//! Inputs: each mailbox's [`MessageSummary`] as the store's counts change
//! ([`Notifier::set_summary`]), subscriptions starting, refreshing and
//! ending ([`Notifier::subscribe`], [`Notifier::refresh`],
//! [`Notifier::end`]), how each NOTIFY ended ([`Notifier::finished`]) and
//! the passing of time ([`Notifier::handle_timeout`]), always with an
//! explicit `now`. Outputs, polled: [`Action`]s (send this NOTIFY, forget
//! that subscription) and the next deadline ([`Notifier::poll_timeout`]).
//! It never touches a socket, a clock or the database, so its tests replay
//! any timing in microseconds.
//!
//! Every destination is a [`Target`] with its own [`Delivery`] (one NOTIFY
//! in flight at a time, coalescing, pacing, retries): each subscription,
//! and each `[mwi] notify` URI template for each mailbox it applies to
//! (unsolicited NOTIFYs, which PBXs such as Asterisk and FreeSWITCH accept
//! without a subscription). At most `max_in_flight` NOTIFYs are on the wire
//! at once, so a burst of changes (a restart announcing every mailbox)
//! cannot flood the network or the transaction layer that calls share.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::delivery::{Delivery, NotifyOutcome, RetryPolicy, Verdict};
use super::subscription::{Subscription, SubscriptionState, SubscriptionStatus, TerminationReason};
use super::summary::MessageSummary;

/// How the notifier paces and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Retries of a failed NOTIFY.
    pub retry: RetryPolicy,
    /// Least time between two NOTIFYs of one destination for a change
    /// (RFC 3842 §3.11: once per second).
    pub min_interval: Duration,
    /// NOTIFYs on the wire at once, over all destinations.
    pub max_in_flight: usize,
}

/// A destination of NOTIFYs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A subscription, by id.
    Subscription(String),
    /// Unsolicited NOTIFYs for `mailbox` to the URI made from template
    /// number `template` of `[mwi] notify`.
    Unsolicited { mailbox: String, template: usize },
}

/// One NOTIFY to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Where to.
    pub target: Target,
    /// Whose state.
    pub mailbox: String,
    /// The state, as of now.
    pub summary: MessageSummary,
    /// The `Subscription-State` for a subscription; `None` for an
    /// unsolicited NOTIFY.
    pub status: Option<SubscriptionStatus>,
}

/// Why a subscription is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It was terminated and its final NOTIFY is done with.
    Terminated(TerminationReason),
    /// Its subscriber did not take a NOTIFY (refused or never answered,
    /// after the retries): it is gone (RFC 6665 §4.2.2).
    SubscriberGone,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this NOTIFY and report its outcome with [`Notifier::finished`].
    Notify(Notify),
    /// Forget this subscription (remove it from the store).
    Forget { id: String, ended: Ended },
}

/// Decides which mailboxes get unsolicited NOTIFYs (`[mwi] mailboxes`
/// among those homed here).
pub type UnsolicitedFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The core; see the module documentation.
pub struct Notifier {
    config: NotifierConfig,
    templates: usize,
    unsolicited_for: UnsolicitedFilter,
    summaries: HashMap<String, MessageSummary>,
    subscriptions: HashMap<String, Subscription>,
    unsolicited: HashMap<Target, Delivery>,
    in_flight: usize,
    actions: VecDeque<Action>,
}

impl Notifier {
    /// A notifier with `templates` unsolicited URI templates, sent for the
    /// mailboxes `unsolicited_for` accepts.
    pub fn new(
        config: NotifierConfig,
        templates: usize,
        unsolicited_for: UnsolicitedFilter,
    ) -> Notifier {
        Notifier {
            config,
            templates,
            unsolicited_for,
            summaries: HashMap::new(),
            subscriptions: HashMap::new(),
            unsolicited: HashMap::new(),
            in_flight: 0,
            actions: VecDeque::new(),
        }
    }

    /// The summary last set for `mailbox` (all zero if none).
    pub fn summary(&self, mailbox: &str) -> MessageSummary {
        self.summaries.get(mailbox).copied().unwrap_or_default()
    }

    /// The mailbox's counts are now `summary`: if that differs from what
    /// they were (a mailbox not seen yet had none), every destination of
    /// the mailbox gets a NOTIFY (paced).
    pub fn set_summary(&mut self, mailbox: &str, summary: MessageSummary, now: Instant) {
        if self.summary(mailbox) == summary {
            self.summaries.insert(mailbox.to_owned(), summary);
            return;
        }
        self.summaries.insert(mailbox.to_owned(), summary);
        let interval = self.config.min_interval;
        for sub in self.subscriptions.values_mut() {
            if sub.mailbox == mailbox && sub.is_active() {
                sub.delivery.request_change(now, interval);
            }
        }
        for target in self.unsolicited_targets(mailbox) {
            self.unsolicited
                .entry(target)
                .or_default()
                .request_change(now, interval);
        }
        self.start_due(now);
    }

    /// Sets the summary and sends it to the mailbox's unsolicited
    /// destinations even if unchanged: after a restart, a PBX's lamps are
    /// brought in line with what changed while the server was away.
    pub fn announce(&mut self, mailbox: &str, summary: MessageSummary, now: Instant) {
        self.summaries.insert(mailbox.to_owned(), summary);
        for target in self.unsolicited_targets(mailbox) {
            self.unsolicited.entry(target).or_default().request_now(now);
        }
        self.start_due(now);
    }

    /// A subscription was accepted (or restored after a restart): it gets
    /// a NOTIFY at once (RFC 6665 §4.2.1.1). An existing id is replaced.
    pub fn subscribe(&mut self, id: &str, mailbox: &str, expires_at: Instant, now: Instant) {
        let mut delivery = Delivery::default();
        delivery.request_now(now);
        self.subscriptions.insert(
            id.to_owned(),
            Subscription {
                mailbox: mailbox.to_owned(),
                state: SubscriptionState::Active { expires_at },
                delivery,
            },
        );
        self.handle_timeout(now);
    }

    /// A one-time fetch (a SUBSCRIBE with `Expires: 0` outside a dialog,
    /// RFC 6665 §4.4.3): one NOTIFY with the state, already terminated.
    pub fn fetch(&mut self, id: &str, mailbox: &str, now: Instant) {
        let mut delivery = Delivery::default();
        delivery.request_now(now);
        self.subscriptions.insert(
            id.to_owned(),
            Subscription {
                mailbox: mailbox.to_owned(),
                state: SubscriptionState::Terminating {
                    reason: TerminationReason::Timeout,
                },
                delivery,
            },
        );
        self.start_due(now);
    }

    /// A refresh: the subscription now expires at `expires_at` and gets a
    /// NOTIFY at once (RFC 6665 §4.2.1.2). False when there is no active
    /// subscription `id` (the I/O layer answers 481).
    pub fn refresh(&mut self, id: &str, expires_at: Instant, now: Instant) -> bool {
        match self.subscriptions.get_mut(id) {
            Some(sub) if sub.is_active() => {
                sub.state = SubscriptionState::Active { expires_at };
                sub.delivery.request_now(now);
                self.start_due(now);
                true
            }
            _ => false,
        }
    }

    /// Ends a subscription (an unsubscribe, or its mailbox gone): a final
    /// NOTIFY with `terminated;reason=` goes at once, then the subscription
    /// is forgotten. False when there is no active subscription `id`.
    pub fn end(&mut self, id: &str, reason: TerminationReason, now: Instant) -> bool {
        match self.subscriptions.get_mut(id) {
            Some(sub) if sub.is_active() => {
                sub.state = SubscriptionState::Terminating { reason };
                sub.delivery.request_now(now);
                self.start_due(now);
                true
            }
            _ => false,
        }
    }

    /// Whether subscription `id` is active.
    pub fn is_active(&self, id: &str) -> bool {
        self.subscriptions
            .get(id)
            .is_some_and(Subscription::is_active)
    }

    /// Active and terminating subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// How the NOTIFY in flight to `target` ended.
    pub fn finished(&mut self, target: &Target, outcome: NotifyOutcome, now: Instant) {
        let retry = self.config.retry;
        match target {
            Target::Subscription(id) => {
                let Some(sub) = self.subscriptions.get_mut(id) else {
                    return;
                };
                if !sub.delivery.in_flight() {
                    return;
                }
                let verdict = sub.delivery.finish(outcome, now, retry);
                let ended = match (sub.state, verdict) {
                    (_, Verdict::Retrying) => None,
                    (SubscriptionState::Active { .. }, Verdict::GaveUp) => {
                        Some(Ended::SubscriberGone)
                    }
                    (SubscriptionState::Active { .. }, Verdict::Delivered) => None,
                    // Done once nothing more is due: a NOTIFY that was in
                    // flight when it ended is followed by the final one.
                    (SubscriptionState::Terminating { reason }, _) => {
                        sub.delivery.is_idle().then_some(Ended::Terminated(reason))
                    }
                };
                if let Some(ended) = ended {
                    self.subscriptions.remove(id);
                    self.actions.push_back(Action::Forget {
                        id: id.clone(),
                        ended,
                    });
                }
            }
            Target::Unsolicited { .. } => {
                let Some(delivery) = self.unsolicited.get_mut(target) else {
                    return;
                };
                if !delivery.in_flight() {
                    return;
                }
                delivery.finish(outcome, now, retry);
            }
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.handle_timeout(now);
    }

    /// Expires subscriptions whose time has come (each gets its final
    /// NOTIFY) and starts the NOTIFYs that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for sub in self.subscriptions.values_mut() {
            if let SubscriptionState::Active { expires_at } = sub.state {
                if expires_at <= now {
                    sub.state = SubscriptionState::Terminating {
                        reason: TerminationReason::Timeout,
                    };
                    sub.delivery.request_now(now);
                }
            }
        }
        self.start_due(now);
    }

    /// When [`Notifier::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiries = self.subscriptions.values().filter_map(|s| match s.state {
            SubscriptionState::Active { expires_at } => Some(expires_at),
            SubscriptionState::Terminating { .. } => None,
        });
        let dues = (self.in_flight < self.config.max_in_flight)
            .then(|| {
                self.subscriptions
                    .values()
                    .filter_map(|s| s.delivery.due())
                    .chain(self.unsolicited.values().filter_map(Delivery::due))
            })
            .into_iter()
            .flatten();
        expiries.chain(dues).min()
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The unsolicited destinations of `mailbox`.
    fn unsolicited_targets(&self, mailbox: &str) -> Vec<Target> {
        if self.templates == 0 || !(self.unsolicited_for)(mailbox) {
            return Vec::new();
        }
        (0..self.templates)
            .map(|template| Target::Unsolicited {
                mailbox: mailbox.to_owned(),
                template,
            })
            .collect()
    }

    /// Puts due NOTIFYs in flight, earliest first, while there is room.
    fn start_due(&mut self, now: Instant) {
        if self.in_flight >= self.config.max_in_flight {
            return;
        }
        let mut due: Vec<(Instant, Target)> = self
            .subscriptions
            .iter()
            .filter_map(|(id, s)| {
                s.delivery
                    .due()
                    .map(|at| (at, Target::Subscription(id.clone())))
            })
            .chain(
                self.unsolicited
                    .iter()
                    .filter_map(|(t, d)| d.due().map(|at| (at, t.clone()))),
            )
            .filter(|(at, _)| *at <= now)
            .collect();
        due.sort();
        for (_, target) in due {
            if self.in_flight >= self.config.max_in_flight {
                break;
            }
            if let Some(notify) = self.start(&target, now) {
                self.in_flight += 1;
                self.actions.push_back(Action::Notify(notify));
            }
        }
    }

    /// Puts `target`'s due NOTIFY in flight and describes it.
    fn start(&mut self, target: &Target, now: Instant) -> Option<Notify> {
        match target {
            Target::Subscription(id) => {
                let sub = self.subscriptions.get_mut(id)?;
                if !sub.delivery.start(now) {
                    return None;
                }
                Some(Notify {
                    target: target.clone(),
                    mailbox: sub.mailbox.clone(),
                    summary: self
                        .summaries
                        .get(&sub.mailbox)
                        .copied()
                        .unwrap_or_default(),
                    status: Some(sub.status(now)),
                })
            }
            Target::Unsolicited { mailbox, .. } => {
                let delivery = self.unsolicited.get_mut(target)?;
                if !delivery.start(now) {
                    return None;
                }
                Some(Notify {
                    target: target.clone(),
                    mailbox: mailbox.clone(),
                    summary: self.summaries.get(mailbox).copied().unwrap_or_default(),
                    status: None,
                })
            }
        }
    }
}

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
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Request, StatusCode, Uri};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::delivery::{NotifyOutcome, RetryPolicy};
use super::home::HomeRule;
use super::notifier::{Action, Ended, Notifier, NotifierConfig, Notify, Target};
use super::request;
use super::sender::Sender;
use super::subscribe::{evaluate, ExpiryBounds, Refusal, SubscribeFacts};
use super::subscription::TerminationReason;
use super::summary::{MessageSummary, EVENT_PACKAGE};
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
    notifier: Notifier,
    records: HashMap<String, SubscriptionRecord>,
    sender: Arc<Sender>,
    store: Arc<Store>,
    home: HomeRule,
    templates: Arc<Vec<NotifyTemplate>>,
    domain: Option<String>,
    bounds: ExpiryBounds,
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
                tokio::spawn(
                    async move {
                        let outcome = match record {
                            Some(record) => in_dialog(&sender, &store, record, notify).await,
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
                            Some(uri) => unsolicited(&sender, &uri, domain, notify).await,
                            None => NotifyOutcome::Refused(404),
                        };
                        outcomes.send((target, outcome)).ok();
                    }
                    .instrument(span),
                );
            }
        }
    }

    /// Answers a SUBSCRIBE: a new subscription, a refresh, an unsubscribe
    /// or a fetch (RFC 6665 §4.2.1), or a refusal.
    async fn on_subscribe(&mut self, tx: Transaction) {
        let call_id = tx
            .original
            .call_id_header()
            .map(|c| c.value().to_string())
            .unwrap_or_default();
        let span = tracing::info_span!("subscribe", %call_id, mailbox = tracing::field::Empty);
        self.answer_subscribe(tx, call_id).instrument(span).await
    }

    async fn answer_subscribe(&mut self, mut tx: Transaction, call_id: String) {
        let facts = facts_of(&tx.original);
        let asked = match evaluate(&facts, self.bounds) {
            Ok(asked) => asked,
            Err(refusal) => {
                info!(status = refusal.status(), ?refusal, "SUBSCRIBE refused");
                return refuse(&mut tx, &refusal).await;
            }
        };
        tracing::Span::current().record("mailbox", asked.mailbox.as_str());
        if !self.home.is_home(&asked.mailbox) {
            let why = match self.home.other_home(&asked.mailbox) {
                Some(home) => format!("mailbox {} is homed at {home}", asked.mailbox),
                None => format!("mailbox {} is not served here", asked.mailbox),
            };
            info!(reason = %why, "SUBSCRIBE refused");
            let warning = Header::Warning(format!("399 vmesh \"{why}\"").into());
            return reply(&mut tx, StatusCode::NotFound, vec![warning]).await;
        }
        let remote_tag = tx
            .original
            .from_header()
            .ok()
            .and_then(|f| f.tag().ok().flatten())
            .map(|t| t.to_string());
        let local_tag = tx
            .original
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .map(|t| t.to_string());
        let cseq = tx.original.cseq_header().and_then(|c| c.seq()).unwrap_or(0);
        let Some(remote_tag) = remote_tag else {
            let refusal = Refusal::BadRequest("no From tag".into());
            return refuse(&mut tx, &refusal).await;
        };
        match local_tag {
            Some(local_tag) => {
                self.in_dialog_subscribe(
                    tx,
                    &call_id,
                    &local_tag,
                    &remote_tag,
                    cseq,
                    asked.duration,
                )
                .await
            }
            None => {
                self.new_subscription(tx, call_id, remote_tag, cseq, asked)
                    .await
            }
        }
    }

    /// A SUBSCRIBE in an existing dialog: refresh or unsubscribe.
    async fn in_dialog_subscribe(
        &mut self,
        mut tx: Transaction,
        call_id: &str,
        local_tag: &str,
        remote_tag: &str,
        cseq: u32,
        duration: Duration,
    ) {
        let found = self
            .records
            .values()
            .find(|r| {
                r.call_id == call_id && r.local_tag == local_tag && r.remote_tag == remote_tag
            })
            .cloned();
        let Some(mut record) = found.filter(|r| self.notifier.is_active(&r.id)) else {
            info!("SUBSCRIBE for no subscription of ours");
            return reply(&mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await;
        };
        if cseq <= record.remote_cseq {
            // RFC 3261 §12.2.2: out of order in the dialog.
            return reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
        }
        record.remote_cseq = cseq;
        if let Some(target) = contact_of(&tx.original) {
            record.remote_target = target;
        }
        let (now_ms, _) = now_unix_ms();
        record.expires_ms = now_ms + millis(duration);
        let saved = {
            let (store, record) = (self.store.clone(), record.clone());
            blocking(move || store.save_subscription(&record)).await
        };
        if let Err(e) = saved {
            warn!(error = %e, "cannot save the subscription");
            return reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
        }
        let headers = vec![
            Header::Expires(duration_secs(duration).into()),
            Header::Contact(our_contact(&tx).into()),
        ];
        reply(&mut tx, StatusCode::OK, headers).await;
        let now = Instant::now();
        let id = record.id.clone();
        self.records.insert(id.clone(), record);
        if duration.is_zero() {
            info!(subscription = %id, "unsubscribed");
            self.notifier.end(&id, TerminationReason::Timeout, now);
        } else {
            debug!(subscription = %id, expires_s = duration.as_secs(), "subscription refreshed");
            self.notifier.refresh(&id, now + duration, now);
        }
    }

    /// A SUBSCRIBE outside a dialog: a new subscription (or a fetch).
    async fn new_subscription(
        &mut self,
        mut tx: Transaction,
        call_id: String,
        remote_tag: String,
        cseq: u32,
        asked: super::subscribe::SubscribeRequest,
    ) {
        let Some(remote_target) = contact_of(&tx.original) else {
            let refusal = Refusal::BadRequest("no Contact".into());
            return refuse(&mut tx, &refusal).await;
        };
        let (Ok(from), Ok(to)) = (tx.original.from_header(), tx.original.to_header()) else {
            let refusal = Refusal::BadRequest("no usable From or To".into());
            return refuse(&mut tx, &refusal).await;
        };
        let (Ok(remote_uri), Ok(local_uri)) = (from.uri(), to.uri()) else {
            let refusal = Refusal::BadRequest("no usable From or To URI".into());
            return refuse(&mut tx, &refusal).await;
        };
        let Some(connection) = tx.connection.clone() else {
            return reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
        };
        let local_tag = make_tag();
        if let Ok(to) = tx.original.to_header() {
            let tagged = to.clone().with_tag(local_tag.clone());
            tx.original.headers.unique_push(tagged.into());
        }
        let account_host = self
            .domain
            .clone()
            .or_else(|| request::host_of(&tx.original.uri.to_string()))
            .unwrap_or_else(|| "localhost".into());
        let (now_ms, _) = now_unix_ms();
        let record = SubscriptionRecord {
            id: uuid::Uuid::new_v4().to_string(),
            mailbox: asked.mailbox.clone(),
            call_id,
            local_tag: local_tag.to_string(),
            remote_tag,
            event_id: asked.event_id.clone(),
            local_uri: local_uri.to_string(),
            remote_uri: remote_uri.to_string(),
            remote_target,
            route_set: tx
                .original
                .headers
                .iter()
                .filter_map(|h| match h {
                    Header::RecordRoute(rr) => Some(rr.value().to_string()),
                    _ => None,
                })
                .collect(),
            transport: match connection {
                SipConnection::Udp(_) => "udp".into(),
                _ => "tcp".into(),
            },
            local_addr: connection.get_addr().addr.to_string(),
            account: format!("sip:{}@{account_host}", asked.mailbox),
            local_cseq: 0,
            remote_cseq: cseq,
            expires_ms: now_ms + millis(asked.duration),
        };
        let (store, saved_record, mailbox) =
            (self.store.clone(), record.clone(), asked.mailbox.clone());
        let saved = blocking(move || {
            store.save_subscription(&saved_record)?;
            store.counts(&mailbox)
        })
        .await;
        let counts = match saved {
            Ok(counts) => counts,
            Err(e) => {
                warn!(error = %e, "cannot save the subscription");
                return reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
            }
        };
        let headers = vec![
            Header::Expires(duration_secs(asked.duration).into()),
            Header::Contact(our_contact(&tx).into()),
        ];
        // RFC 6665 §4.2.1.1: the 200 before the first NOTIFY.
        reply(&mut tx, StatusCode::OK, headers).await;
        let now = Instant::now();
        let id = record.id.clone();
        self.notifier
            .set_summary(&asked.mailbox, MessageSummary::from(counts), now);
        self.records.insert(id.clone(), record);
        if asked.duration.is_zero() {
            info!(subscription = %id, "state fetched");
            self.notifier.fetch(&id, &asked.mailbox, now);
        } else {
            info!(subscription = %id, expires_s = asked.duration.as_secs(), "subscribed");
            self.notifier
                .subscribe(&id, &asked.mailbox, now + asked.duration, now);
        }
    }
}

/// Sends a NOTIFY in a subscription's dialog.
async fn in_dialog(
    sender: &Sender,
    store: &Arc<Store>,
    record: SubscriptionRecord,
    notify: Notify,
) -> NotifyOutcome {
    tracing::Span::current().record("to", record.remote_target.as_str());
    let Some(status) = notify.status else {
        return NotifyOutcome::Refused(400);
    };
    let hop = match request::dialog_next_hop(&record) {
        Ok(hop) => hop,
        Err(e) => {
            warn!(error = %e, "subscription has no usable target");
            return NotifyOutcome::Refused(400);
        }
    };
    let local = record.local_addr.parse::<SocketAddr>().ok();
    let path = match sender.path(&hop, local).await {
        Ok(path) => path,
        Err(e) => {
            warn!(error = %e, "cannot reach the subscriber");
            return NotifyOutcome::NoAnswer;
        }
    };
    let id = record.id.clone();
    let cseq = match blocking({
        let store = store.clone();
        move || store.next_notify_cseq(&id)
    })
    .await
    {
        Ok(Some(cseq)) => cseq,
        Ok(None) => return NotifyOutcome::Refused(481),
        Err(e) => {
            warn!(error = %e, "cannot take the next CSeq");
            return NotifyOutcome::NoAnswer;
        }
    };
    let body = notify.summary.body(&record.account);
    let built = request::in_dialog(&sender.endpoint(), &record, cseq, status, body, path.local);
    let (request, _) = match built {
        Ok(built) => built,
        Err(e) => {
            warn!(error = %e, "cannot build NOTIFY");
            return NotifyOutcome::Refused(400);
        }
    };
    let outcome = sender.send(request, path, false).await;
    log_outcome(&notify, outcome);
    outcome
}

/// Sends an unsolicited NOTIFY to `uri`.
async fn unsolicited(
    sender: &Sender,
    uri: &str,
    domain: Option<String>,
    notify: Notify,
) -> NotifyOutcome {
    tracing::Span::current().record("to", uri);
    let Ok(parsed) = Uri::try_from(uri) else {
        return NotifyOutcome::Refused(400);
    };
    let hop = request::NextHop::of(&parsed);
    let path = match sender.path(&hop, None).await {
        Ok(path) => path,
        Err(e) => {
            warn!(error = %e, "cannot reach the NOTIFY target");
            return NotifyOutcome::NoAnswer;
        }
    };
    let host = domain
        .or_else(|| request::host_of(uri))
        .unwrap_or_else(|| "localhost".into());
    let body = notify
        .summary
        .body(&format!("sip:{}@{host}", notify.mailbox));
    let request = match request::unsolicited(&sender.endpoint(), uri, body, path.local) {
        Ok((request, _)) => request,
        Err(e) => {
            warn!(error = %e, "cannot build NOTIFY");
            return NotifyOutcome::Refused(400);
        }
    };
    let outcome = sender.send(request, path, true).await;
    log_outcome(&notify, outcome);
    outcome
}

fn log_outcome(notify: &Notify, outcome: NotifyOutcome) {
    match outcome {
        NotifyOutcome::Delivered => {
            debug!(
                new = notify.summary.new,
                old = notify.summary.old,
                "NOTIFY delivered"
            )
        }
        other => {
            warn!(outcome = ?other, new = notify.summary.new, old = notify.summary.old, "NOTIFY failed")
        }
    }
}

/// The SUBSCRIBE's facts for [`evaluate`].
fn facts_of(req: &Request) -> SubscribeFacts {
    let mut facts = SubscribeFacts::default();
    for header in req.headers.iter() {
        match header {
            Header::Event(e) => facts.event = Some(e.value().to_string()),
            Header::Expires(e) => facts.expires = Some(e.value().to_string()),
            Header::Accept(a) => facts.accept.push(a.value().to_string()),
            _ => {}
        }
    }
    facts.request_user = req.uri.auth.as_ref().map(|a| a.user.clone());
    facts.to_user = req
        .to_header()
        .ok()
        .and_then(|t| t.uri().ok())
        .and_then(|u| u.auth.map(|a| a.user));
    facts
}

/// The URI of the request's Contact, if it has a usable one.
fn contact_of(req: &Request) -> Option<String> {
    let contact = req.contact_header().ok()?.typed().ok()?;
    Some(contact.uri.to_string())
}

/// Our Contact for a response on `tx`'s connection.
fn our_contact(tx: &Transaction) -> String {
    match &tx.connection {
        Some(SipConnection::Udp(c)) => format!("<sip:vmesh@{}>", c.get_addr().addr),
        Some(other) => format!("<sip:vmesh@{};transport=tcp>", other.get_addr().addr),
        None => "<sip:vmesh@localhost>".into(),
    }
}

async fn refuse(tx: &mut Transaction, refusal: &Refusal) {
    let mut headers = Vec::new();
    match refusal {
        Refusal::BadEvent => headers.push(Header::Other(
            "Allow-Events".into(),
            EVENT_PACKAGE.to_owned(),
        )),
        Refusal::IntervalTooBrief { min_expires } => {
            headers.push(Header::MinExpires(min_expires.to_string().into()))
        }
        Refusal::BadRequest(why) => {
            headers.push(Header::Warning(format!("399 vmesh \"{why}\"").into()))
        }
        Refusal::NoMailbox | Refusal::NotAcceptable => {}
    }
    reply(tx, StatusCode::from(refusal.status()), headers).await;
}

async fn reply(tx: &mut Transaction, status: StatusCode, headers: Vec<Header>) {
    if let Err(e) = tx.reply_with(status, headers, None).await {
        warn!(error = %e, "cannot answer SUBSCRIBE");
    }
}

/// Runs a store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn duration_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

//! Answering SUBSCRIBEs (RFC 6665 §4.2.1): a new subscription, a refresh,
//! an unsubscribe or a fetch, each answered before its NOTIFY goes out, and
//! the refusals [`evaluate`] decides. The dialog of a new subscription is
//! saved in the store before the 200, so a subscription that was answered
//! survives a restart. A mailbox has at most
//! [`MAX_SUBSCRIPTIONS_PER_MAILBOX`] subscriptions (403 beyond).

use std::time::{Duration, Instant};

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Request, StatusCode};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipConnection;
use tracing::{debug, info, warn, Instrument};

use super::request;
use super::service::{blocking, duration_secs, millis, Service};
use super::subscribe::{evaluate, Refusal, SubscribeFacts, SubscribeRequest};
use super::subscription::TerminationReason;
use super::summary::{MessageSummary, EVENT_PACKAGE};
use crate::store::{now_unix_ms, SubscriptionRecord};

/// Subscriptions one mailbox may have at once: a desk phone, a few
/// softphones and PBXs, with room to spare; a bound, so that a flood of
/// SUBSCRIBEs cannot fill the store.
const MAX_SUBSCRIPTIONS_PER_MAILBOX: usize = 32;

impl Service {
    /// Answers a SUBSCRIBE: a new subscription, a refresh, an unsubscribe
    /// or a fetch (RFC 6665 §4.2.1), or a refusal.
    pub(super) async fn on_subscribe(&mut self, tx: Transaction) {
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
        if let Some(connection) = tx.connection.clone().filter(SipConnection::is_reliable) {
            self.inbound.insert(id.clone(), connection);
        }
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
        asked: SubscribeRequest,
    ) {
        let held = self
            .records
            .values()
            .filter(|r| r.mailbox == asked.mailbox)
            .count();
        if held >= MAX_SUBSCRIPTIONS_PER_MAILBOX {
            warn!(held, "too many subscriptions for the mailbox; refused");
            let why = format!("{held} subscriptions for this mailbox already");
            let warning = Header::Warning(format!("399 vmesh \"{why}\"").into());
            return reply(&mut tx, StatusCode::Forbidden, vec![warning]).await;
        }
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
        if connection.is_reliable() {
            self.inbound.insert(id.clone(), connection);
        }
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

//! One NOTIFY, from the notifier's decision to its outcome: built from the
//! subscription's stored dialog (with the dialog's next CSeq, taken durably
//! first) or from an unsolicited URI, sent by the [`Sender`], logged.

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::sip::Uri;
use rsipstack::transport::SipConnection;
use tracing::{debug, warn};

use super::delivery::NotifyOutcome;
use super::notifier::Notify;
use super::request;
use super::sender::Sender;
use super::service::blocking;
use crate::store::{Store, SubscriptionRecord};

/// Sends a NOTIFY in a subscription's dialog.
pub(super) async fn in_dialog(
    sender: &Sender,
    store: &Arc<Store>,
    record: SubscriptionRecord,
    inbound: Option<SipConnection>,
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
    let reused = inbound.and_then(|c| sender.path_on(c, &hop));
    let path = match reused {
        Some(path) => Ok(path),
        None => sender.path(&hop, local).await,
    };
    let path = match path {
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
pub(super) async fn unsolicited(
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

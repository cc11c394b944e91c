//! Message-waiting indication: the `message-summary` event package (RFC
//! 3842) over SIP-specific event notification (RFC 6665), so the lamps of
//! phones and PBXs show whether a mailbox has new messages.
//!
//! Two ways out: phones and PBXs SUBSCRIBE to a mailbox and get a NOTIFY
//! at once, then on every change of its counts, until they unsubscribe or
//! the subscription expires (a final NOTIFY says `terminated`); and
//! unsolicited NOTIFYs to the URIs of `[mwi] notify`, which PBXs such as
//! Asterisk (`incoming_mwi_mailbox`) and FreeSWITCH take without a
//! subscription. Only a mailbox's home server sends either.
//!
//! The decisions are sans-IO cores, tested with injected time:
//! [`subscribe`] (what a SUBSCRIBE asks and what to answer),
//! [`notifier`] (which NOTIFY goes where and when) with [`delivery`] (one
//! destination's coalescing, pacing and retries) and [`subscription`]
//! (one subscription's life), [`home`] (which mailboxes this server
//! announces) and [`summary`] (the body). The tokio layer is `service` (one
//! task owning the notifier, fed by SUBSCRIBEs, the store's change log and
//! the clock), `answer` (answering a SUBSCRIBE), `notification` (one NOTIFY
//! from decision to outcome), [`sender`] (a NOTIFY as an rsipstack client
//! transaction, digest included) and [`request`] (building NOTIFYs from a
//! persisted dialog).
//!
//! rsipstack's `dialog::subscription` keeps a subscription's dialog in
//! memory only, so it cannot outlive the process; RFC 6665 subscriptions
//! here survive restarts, so their dialog state is kept in the store
//! (`store::subscriptions`) and NOTIFYs are built from it, while the
//! transactions, the transports and the client digest stay rsipstack's.

mod answer;
pub mod delivery;
pub mod home;
mod notification;
pub mod notifier;
pub mod request;
pub mod sender;
mod service;
pub mod subscribe;
pub mod subscription;
pub mod summary;

use std::sync::Arc;

use rsipstack::sip::StatusCode;
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Profile;
use crate::sip::SipStack;
use crate::store::Store;
use service::{Command, Service};

/// The running message-waiting service of one server. Cheap to share.
pub struct Mwi {
    commands: mpsc::UnboundedSender<Command>,
}

impl Mwi {
    /// Starts the service: restores the subscriptions kept in the store,
    /// announces the mailboxes unsolicited NOTIFYs cover, then follows
    /// every change until `shutdown`.
    pub fn start(
        profile: &Profile,
        sip: Arc<SipStack>,
        store: Arc<Store>,
        shutdown: CancellationToken,
    ) -> Arc<Mwi> {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (outcomes, outcome_rx) = mpsc::unbounded_channel();
        let service = Service::new(profile, sip, store, shutdown.clone(), outcomes);
        tokio::spawn(service.run(command_rx, outcome_rx, shutdown));
        Arc::new(Mwi { commands })
    }

    /// Answers a SUBSCRIBE, in a dialog or not (503 once the service has
    /// stopped).
    pub fn handle_subscribe(&self, tx: Transaction) {
        if let Err(mpsc::error::SendError(Command::Subscribe(mut tx))) =
            self.commands.send(Command::Subscribe(Box::new(tx)))
        {
            tokio::spawn(async move { tx.reply(StatusCode::ServiceUnavailable).await.ok() });
        }
    }

    /// Says that `mailbox`'s messages changed, so its lamps are updated at
    /// once. Changes made through the store are seen without it (by this
    /// process at once, by others within `[mwi] poll_ms`); code that wants
    /// no doubt, such as the owner's phone menu after a key press, calls it.
    pub fn mailbox_changed(&self, mailbox: &str) {
        tracing::debug!(%mailbox, "mailbox changed");
        self.commands.send(Command::Changed).ok();
    }
}

#[cfg(test)]
mod notifier_tests;

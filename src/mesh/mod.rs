//! The mesh: store-and-forward of voicemail between the servers of a site
//! topology (the seed's migration module and network proxy).
//!
//! Any server takes a call for any mailbox of the topology. A message whose
//! home is another server is queued for that peer in the same SQLite
//! transaction that stores it ([`route_of`] decides); a [`courier::Courier`]
//! per peer pings it with OPTIONS ([`health`]) and, as soon as it answers,
//! sends each queued message as one SIP MESSAGE ([`wire`], [`link`]) until
//! the peer confirms with 200 that it stored it durably ([`retry`] decides
//! what other answers mean). The home side is [`inbound::Receiver`]: it
//! checks the sender, the mailbox and the checksum, stores, then answers.

pub mod courier;
pub mod health;
pub mod inbound;
pub mod link;
pub mod retry;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::transaction::transaction::Transaction;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Profile, Topology};
use crate::sip::identity::Identity;
use crate::sip::SipStack;
use crate::store::{Message, Route, Store};
use courier::{now_ms, Courier};
use inbound::Receiver;
use link::PeerLink;
use wire::TransferMeta;

/// How often delivered copies past their retention are removed.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Where a message for `mailbox` goes, as recorded by server `self_name`:
/// kept if this server is its home (or nobody is: such calls are refused
/// before recording), else forwarded to its home.
pub fn route_of(topology: Option<&Topology>, self_name: &str, mailbox: &str) -> Route {
    match topology.and_then(|t| t.home_of(mailbox)) {
        Some(home) if home.name != self_name => Route::Forward {
            peer: home.name.clone(),
        },
        _ => Route::Home,
    }
}

/// The running mesh of one server.
pub struct Mesh {
    topology: Topology,
    self_name: String,
    kicks: HashMap<String, Arc<Notify>>,
    alive: HashMap<String, Arc<Notify>>,
    receiver: Receiver,
}

/// Why the mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("peer {peer}: {reason}")]
    Peer { peer: String, reason: String },
    #[error("server {0} is not in the topology")]
    NotInTopology(String),
}

impl Mesh {
    /// Starts a courier per peer; `None` when the profile has no topology.
    pub fn start(
        profile: &Profile,
        sip: Arc<SipStack>,
        store: Arc<Store>,
        shutdown: CancellationToken,
    ) -> Result<Option<Arc<Mesh>>, MeshError> {
        let Some(topology) = profile.topology.clone() else {
            return Ok(None);
        };
        let self_name = profile.server.name.clone();
        let me = topology
            .server(&self_name)
            .ok_or_else(|| MeshError::NotInTopology(self_name.clone()))?;
        let local = me.addr;
        let mut kicks = HashMap::new();
        let mut alive = HashMap::new();
        for peer in topology.servers.iter().filter(|s| s.name != self_name) {
            let link = PeerLink::new(
                sip.clone(),
                &peer.name,
                peer.transport == crate::config::ListenTransport::Tls,
                &peer.uri,
                peer.addr,
                local,
                &self_name,
                shutdown.clone(),
            )
            .map_err(|e| MeshError::Peer {
                peer: peer.name.clone(),
                reason: e.to_string(),
            })?;
            let kick = Arc::new(Notify::new());
            let seen = Arc::new(Notify::new());
            let courier = Courier {
                peer: peer.name.clone(),
                link: Arc::new(link),
                store: store.clone(),
                config: profile.mesh.clone(),
                kick: kick.clone(),
                alive: seen.clone(),
            };
            tokio::spawn(courier.run(shutdown.clone()));
            kicks.insert(peer.name.clone(), kick);
            alive.insert(peer.name.clone(), seen);
        }
        tokio::spawn(purge_loop(store.clone(), profile.mesh.retention, shutdown));
        info!(peers = kicks.len(), "mesh started");
        let receiver = Receiver {
            topology: topology.clone(),
            self_name: self_name.clone(),
            store,
            max_body: profile.mesh.max_transfer_bytes,
        };
        Ok(Some(Arc::new(Mesh {
            topology,
            self_name,
            kicks,
            alive,
            receiver,
        })))
    }

    /// Where a message for `mailbox` goes.
    pub fn route_of(&self, mailbox: &str) -> Route {
        route_of(Some(&self.topology), &self.self_name, mailbox)
    }

    /// A message was queued for `peer`: wake its courier now rather than at
    /// its next timer.
    pub fn queued(&self, peer: &str) {
        if let Some(kick) = self.kicks.get(peer) {
            kick.notify_one();
        }
    }

    /// Peer `name` (authenticated) sent a request: it is alive, and its
    /// courier need not wait for its next ping to send what waits for it
    /// (a returning server pings its peers at once).
    pub fn heard_from(&self, name: &str) {
        if let Some(alive) = self.alive.get(name) {
            alive.notify_one();
        }
    }

    /// Answers an incoming MESSAGE (a transfer) from `sender`.
    pub async fn receive(&self, tx: Transaction, sender: Identity) {
        self.receiver.handle(tx, sender).await
    }
}

/// Removes the origin's copies of delivered messages once their retention
/// has passed (issue 3: kept for `mesh.retention_days` after delivery).
async fn purge_loop(store: Arc<Store>, retention: Duration, shutdown: CancellationToken) {
    loop {
        let cutoff = now_ms() - retention.as_millis() as i64;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.purge_delivered(cutoff)).await {
            Ok(Ok(ids)) if !ids.is_empty() => {
                info!(count = ids.len(), "removed delivered copies past retention")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot purge delivered copies"),
            Err(e) => warn!(error = %e, "purge task failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
        }
    }
}

impl From<&Message> for TransferMeta {
    fn from(m: &Message) -> Self {
        TransferMeta {
            id: m.id.clone(),
            mailbox: m.mailbox.clone(),
            caller: m.caller.clone(),
            caller_name: m.caller_name.clone(),
            called: m.called.clone(),
            reason: m.reason.clone(),
            received_at: m.received_at.clone(),
            duration_ms: m.duration_ms,
            codec: m.codec.clone(),
            format: m.format.clone(),
            sample_rate: m.sample_rate,
            size_bytes: m.size_bytes,
            sha256: m.sha256.clone(),
            origin: m.origin.clone(),
            partial: m.partial,
            call_id: m.call_id.clone(),
        }
    }
}

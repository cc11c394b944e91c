//! The server loop: routes every new server transaction.
//!
//! A new INVITE starts a call task; OPTIONS out of dialog is answered here
//! (RFC 3261 §11.2); a request with a To tag belongs to a dialog and is
//! handed to it (BYE, re-INVITE, INFO...), or gets 481 when there is none
//! (§12.2.2); a method vmesh does not implement gets 405 with Allow (§8.2.1).
//! The loop itself never waits on a client: answers and calls run in tasks
//! of their own, within bounds ([`super::replies`], the transfer slots,
//! and the transaction bounds of [`crate::sip::overload`]).
//! Shutdown is a feature: on SIGINT/SIGTERM new calls get 503, calls in
//! progress are ended with BYE and their messages stored, registrations
//! with PBXs are removed (Expires: 0), then `run` returns.

use std::sync::Arc;
use std::time::Duration;

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::TransactionReceiver;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::greeting_cache::GreetingCache;
use super::greetings::Greeting;
use super::replies::Replies;
use super::{call, storage_policy, Context};
use crate::config::{ListenTransport, Profile};
use crate::mesh::{route_of, Mesh};
use crate::mwi::Mwi;
use crate::register::Registrations;
use crate::retrieval::{Clip, LockoutPolicy, Prompts};
use crate::sip::identity::Identity;
use crate::sip::inbound::SizeLimits;
use crate::sip::transport::admission::AdmissionLimits;
use crate::sip::transport::tcp::PeerDirectory;
use crate::sip::transport::tls::TlsSettings;
use crate::sip::{responses, SipSettings, SipStack};
use crate::store::{EncodePool, Store};

/// How long shutdown waits for calls to be stored before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Sip(#[from] crate::sip::SipError),
    #[error(transparent)]
    Mesh(#[from] crate::mesh::MeshError),
    #[error(transparent)]
    Trust(#[from] crate::config::TrustError),
    /// The owners' prompts (`retrieval.language`, `retrieval.prompts_dir`)
    /// are missing or unreadable: owners' calls would be silent.
    #[error(transparent)]
    Prompts(#[from] crate::retrieval::PromptError),
}

/// A running voicemail server.
pub struct Server {
    ctx: Arc<Context>,
    incoming: TransactionReceiver,
    tasks: TaskTracker,
    /// The `[[register]]` clients: registered now, removed on shutdown.
    registrations: Registrations,
}

impl Server {
    /// Opens the store (recovering what a crash left), binds the SIP
    /// listeners and is then ready to [`Server::run`].
    pub async fn start(profile: Profile) -> Result<Server, ServerError> {
        let data_dir = profile.server.data_dir.clone();
        let topology = profile.topology.clone();
        let name = profile.server.name.clone();
        let policy = storage_policy(&profile);
        let store = tokio::task::spawn_blocking(move || -> Result<Store, ServerError> {
            let route = |mailbox: &str| route_of(topology.as_ref(), &name, mailbox);
            let (store, recovered) = Store::open_for_serving(&data_dir, &route, &policy)?;
            for m in &recovered {
                warn!(id = %m.id, mailbox = %m.mailbox, partial = m.partial, "recovered a message after a crash");
            }
            Ok(store)
        })
        .await
        .map_err(|e| ServerError::Sip(crate::sip::SipError::Stack(e.to_string())))??;
        let prompts = load_prompts(&profile).await?;
        let tls = match profile.tls_material()? {
            Some(material) => Some(TlsSettings::new(&material)?),
            None => None,
        };
        let settings = sip_settings(&profile, tls);
        let (sip, incoming) = SipStack::start(&settings).await?;
        let sip = Arc::new(sip);
        let store = Arc::new(store);
        let shutdown = CancellationToken::new();
        let mesh = Mesh::start(&profile, sip.clone(), store.clone(), shutdown.child_token())?;
        let registrations = Registrations::start(&profile, sip.clone(), shutdown.child_token());
        let mwi = Mwi::start(&profile, sip.clone(), store.clone(), shutdown.child_token());
        tokio::spawn(super::retention::purge_deleted(
            store.clone(),
            profile.storage.deleted_retention,
            shutdown.child_token(),
        ));
        info!(listen = ?profile.sip.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
              data = %profile.server.data_dir.display(), "vmesh serving");
        for open in profile.sip.open_listeners() {
            warn!(listener = %open, "any host that reaches this listener may leave messages: set sip.allow or [[sip.auth]]");
        }
        let retrieval = profile.retrieval.clone();
        let open_files = super::capacity::open_files_limit();
        let calls = super::capacity::call_capacity(
            profile.sip.max_calls,
            profile.sip.max_connections,
            open_files,
        );
        if calls < profile.sip.max_calls {
            warn!(
                open_files = open_files.unwrap_or(0),
                max_calls = profile.sip.max_calls,
                calls,
                "the open files limit holds fewer calls than sip.max_calls: calls above {calls} get 503 \
                 (raise the limit, e.g. LimitNOFILE= in the service's unit)"
            );
        }
        let ctx = Context {
            callers: super::callers::CallerGate::new(&profile),
            calls: Arc::new(Semaphore::new(calls)),
            encoders: EncodePool::new(profile.storage.encode_workers),
            profile,
            store,
            sip,
            mesh,
            shutdown,
            mwi,
            prompts,
            logins: super::owner::LoginGate::new(LockoutPolicy::from_config(&retrieval)),
        };
        Ok(Server {
            ctx: Arc::new(ctx),
            incoming,
            tasks: TaskTracker::new(),
            registrations,
        })
    }

    /// Serves until `stop` is cancelled, then shuts down gracefully.
    pub async fn run(self, stop: CancellationToken) {
        let Server {
            ctx,
            mut incoming,
            tasks,
            registrations,
        } = self;
        tokio::spawn(super::allocator::trim_periodically(ctx.shutdown.clone()));
        let dispatcher = Dispatcher {
            ctx: ctx.clone(),
            tasks: tasks.clone(),
            replies: Replies::new(),
            transfers: Arc::new(Semaphore::new(MAX_TRANSFERS_RECEIVING)),
        };
        loop {
            let tx = tokio::select! {
                _ = stop.cancelled() => break,
                tx = incoming.recv() => match tx { Some(tx) => tx, None => break },
            };
            dispatcher.dispatch(tx);
        }
        info!(
            calls = tasks.len(),
            "stopping: refusing new calls, ending calls in progress"
        );
        ctx.shutdown.cancel();
        tasks.close();
        // Keep answering (503 to INVITEs, BYE/ACK to dialogs) while the
        // calls end and are stored, and while the registrations with PBXs
        // are removed (that started with the shutdown signal; bounded).
        let drain = async {
            while let Some(tx) = incoming.recv().await {
                dispatcher.dispatch(tx);
            }
        };
        let calls = async {
            tokio::select! {
                _ = tasks.wait() => {}
                _ = tokio::time::sleep(SHUTDOWN_GRACE) => warn!("calls did not end in time"),
            }
        };
        tokio::select! {
            _ = async { tokio::join!(calls, registrations.finished()) } => {}
            _ = drain => {}
        }
        // Let the last BYE/200 leave before the sockets close.
        tokio::time::sleep(Duration::from_millis(200)).await;
        ctx.sip.shutdown();
        info!("stopped");
    }
}

/// The owners' prompts of the profile, every clip decoded once to check
/// the set is complete; then decoded again at the calls' usual rates in the
/// background, with the built-in greeting, so the first caller's and the
/// first owner's calls do not wait for it.
async fn load_prompts(profile: &Profile) -> Result<Arc<Prompts>, ServerError> {
    let retrieval = profile.retrieval.clone();
    let prompts = tokio::task::spawn_blocking(move || Prompts::for_profile(&retrieval))
        .await
        .map_err(|e| ServerError::Sip(crate::sip::SipError::Stack(e.to_string())))??;
    let prompts = Arc::new(prompts);
    let mut rates = vec![8000, 16_000, profile.media.opus_rate];
    rates.dedup();
    let warm = prompts.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        for &rate in &rates {
            if let Err(e) = GreetingCache::global().shared(&Greeting::Default, rate) {
                warn!(error = %e, "cannot prepare the built-in greeting");
            }
            for clip in Clip::all() {
                if let Err(e) = warm.clip(clip, rate) {
                    warn!(error = %e, "cannot prepare a prompt");
                }
            }
        }
        info!(
            ?rates,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "prompts ready"
        );
    });
    Ok(prompts)
}

fn sip_settings(profile: &Profile, tls: Option<TlsSettings>) -> SipSettings {
    let pick = |t: ListenTransport| {
        profile
            .sip
            .listen
            .iter()
            .filter(|l| l.transport == t)
            .map(|l| l.addr)
            .collect()
    };
    SipSettings {
        udp: pick(ListenTransport::Udp),
        tcp: pick(ListenTransport::Tcp),
        tls_listen: pick(ListenTransport::Tls),
        tls,
        user_agent: profile.sip.user_agent.clone(),
        limits: SizeLimits {
            message: profile.sip.max_message_bytes,
            transfer_body: profile.mesh.max_transfer_bytes,
        },
        tcp_idle_timeout: profile.sip.tcp_idle_timeout,
        request_deadline: profile.sip.request_deadline,
        // A transfer may take as long as its sender waits for it.
        peer_request_deadline: profile
            .sip
            .request_deadline
            .max(profile.mesh.transfer_timeout),
        admission: AdmissionLimits {
            per_source: profile.sip.max_connections_per_source,
            total: profile.sip.max_connections,
        },
        peers: peer_directory(profile),
        mesh: profile.topology.is_some(),
    }
}

/// The other servers of the topology, as the transports recognise them:
/// by certificate name (TLS) or by address (`insecure` TCP).
fn peer_directory(profile: &Profile) -> PeerDirectory {
    let mut peers = PeerDirectory::default();
    let Some(topology) = &profile.topology else {
        return peers;
    };
    for server in topology
        .servers
        .iter()
        .filter(|s| s.name != profile.server.name)
    {
        peers.addresses.push(server.addr.ip());
        // Any server may prove itself with a certificate; an insecure one
        // may also be known by its address on plain TCP.
        peers.names.push(server.name.clone());
        if server.insecure {
            peers.insecure.insert(server.addr.ip(), server.name.clone());
        }
    }
    peers
}

/// Most transfers from peers received at once; each holds its body (up to
/// `mesh.max_transfer_bytes`) in memory, so this bounds what receiving
/// takes. Beyond it a MESSAGE gets 503 with Retry-After and the sender
/// tries again later.
const MAX_TRANSFERS_RECEIVING: usize = 4;

/// Seconds a peer is asked to wait when all transfer slots are taken.
const TRANSFER_RETRY_AFTER_S: u32 = 2;

/// What the server loop hands work to: its call and transfer tasks, and
/// the budgets that keep them bounded.
struct Dispatcher {
    ctx: Arc<Context>,
    tasks: TaskTracker,
    replies: Replies,
    transfers: Arc<Semaphore>,
}

impl Dispatcher {
    /// Routes one new server transaction. Never waits: every answer leaves
    /// from a task of its own ([`Replies`]), so a client that stops reading
    /// cannot hold up the requests of others.
    fn dispatch(&self, tx: Transaction) {
        let ctx = &self.ctx;
        let in_dialog = tx
            .original
            .to_header()
            .and_then(|t| t.tag())
            .map(|t| t.is_some())
            .unwrap_or(false);
        let method = tx.original.method;
        debug!(%method, in_dialog, "request");
        match (method, in_dialog) {
            (Method::Ack, _) | (Method::Cancel, _) => {}
            (Method::Invite, false) => {
                self.tasks.spawn(call::run(ctx.clone(), tx));
            }
            (Method::Message, false) => match &ctx.mesh {
                Some(mesh) => match self.transfers.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let mut tx = tx;
                        ctx.sip.bodies.restore(&mut tx);
                        let mesh = mesh.clone();
                        let origin = ctx.sip.origin_of(&tx);
                        self.tasks.spawn(async move {
                            mesh.receive(tx, origin.identity).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        debug!("all transfer slots busy; 503");
                        ctx.sip.bodies.discard(&tx);
                        let retry = vec![responses::retry_after(TRANSFER_RETRY_AFTER_S)];
                        self.replies
                            .answer(tx, StatusCode::ServiceUnavailable, retry);
                    }
                },
                None => {
                    // RFC 3428 §7: a MESSAGE we do not take; without a
                    // topology nobody is a peer.
                    ctx.sip.bodies.discard(&tx);
                    self.replies.answer(tx, StatusCode::Forbidden, vec![]);
                }
            },
            (Method::Options, false) => {
                // Only an authenticated peer's OPTIONS gets here in a mesh
                // (the transports' gate answers anyone else 403).
                if let (Some(mesh), Identity::Peer(peer)) =
                    (&ctx.mesh, ctx.sip.origin_of(&tx).identity)
                {
                    mesh.heard_from(&peer);
                }
                let headers = vec![
                    responses::allow(),
                    responses::accept(),
                    responses::supported(),
                ];
                self.replies.answer(tx, StatusCode::OK, headers);
            }
            // In a dialog or not: subscription dialogs are the MWI service's.
            (Method::Subscribe, _) => ctx.mwi.handle_subscribe(tx),
            (_, true) => match ctx.sip.dialogs.match_dialog(&tx) {
                Some(mut dialog) => {
                    let mut tx = tx;
                    ctx.sip.bodies.restore(&mut tx);
                    tokio::spawn(async move {
                        if let Err(e) = dialog.handle(&mut tx).await {
                            debug!(error = %e, "in-dialog request failed");
                        }
                    });
                }
                None => {
                    ctx.sip.bodies.discard(&tx);
                    self.replies
                        .answer(tx, StatusCode::CallTransactionDoesNotExist, vec![]);
                }
            },
            (Method::Bye, false) => {
                self.replies
                    .answer(tx, StatusCode::CallTransactionDoesNotExist, vec![]);
            }
            _ => {
                self.replies
                    .answer(tx, StatusCode::MethodNotAllowed, vec![responses::allow()]);
            }
        }
    }
}

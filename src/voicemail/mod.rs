//! Voice mail control: the orchestration of calls, wiring the SIP stack,
//! media, the store and the profile together.
//!
//! [`server::Server`] takes the transactions from the SIP stack and routes
//! them; [`call`] admits one call, [`leg`] is its SIP dialog, and
//! [`session`] runs a deposit to a stored message while [`owner`] runs an
//! owner's call through the menu.

pub mod allocator;
pub mod call;
pub mod callers;
pub mod capacity;
pub mod flow;
pub mod greeting_cache;
pub mod greetings;
pub mod leg;
pub mod owner;
pub mod replies;
pub mod retention;
pub mod server;
pub mod session;
pub mod session_timer;

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{Profile, StorageFormat};
use crate::media::Codec;
use crate::mesh::Mesh;
use crate::mwi::Mwi;
use crate::retrieval::Prompts;
use crate::sip::SipStack;
use crate::store::{EncodePool, Route, SilenceRules, StoragePolicy, Store, StoreFormat};

pub use server::{Server, ServerError};

/// What every call task shares.
pub struct Context {
    pub profile: Profile,
    pub store: Arc<Store>,
    pub sip: Arc<SipStack>,
    /// The mesh, when the profile names a topology.
    pub mesh: Option<Arc<Mesh>>,
    /// One permit per call in progress (the profile's `max_calls`, or
    /// fewer if the open files limit cannot hold them: [`capacity`]).
    pub calls: Arc<Semaphore>,
    /// Cancelled when the server stops: calls end with BYE and are stored.
    pub shutdown: CancellationToken,
    /// Where finished recordings are encoded and committed, at most
    /// `storage.encode_workers` at a time, off the call path.
    pub encoders: EncodePool,
    /// Message-waiting lamps: SUBSCRIBEs go here, and code that changes a
    /// mailbox's folders may call `mailbox_changed` (changes through the
    /// store are seen without it).
    pub mwi: Arc<Mwi>,
    /// Who may call: `sip.allow` and digest authentication of INVITEs.
    pub callers: callers::CallerGate,
    /// The spoken prompts of owners' calls (`retrieval.language`), loaded
    /// and checked once at start-up.
    pub prompts: Arc<Prompts>,
    /// Owners' PIN checks and the failed-login lockout.
    pub logins: owner::LoginGate,
}

/// How the profile wants messages stored: format, minimum length, silence.
pub fn storage_policy(profile: &Profile) -> StoragePolicy {
    let format = match profile.storage.format {
        StorageFormat::Wav => StoreFormat::Wav,
        StorageFormat::Opus => StoreFormat::Opus {
            bitrate: profile.storage.opus_bitrate,
        },
    };
    StoragePolicy {
        min_duration: profile.media.min_message,
        format,
        silence: Some(SilenceRules {
            threshold_dbfs: profile.media.silence_threshold_dbfs,
            discard_silent: profile.media.discard_silent,
        }),
    }
}

impl Context {
    /// Where a message for `mailbox` goes once stored.
    pub fn route_of(&self, mailbox: &str) -> Route {
        match &self.mesh {
            Some(mesh) => mesh.route_of(mailbox),
            None => Route::Home,
        }
    }

    /// The profile's codecs, in its order.
    pub fn codecs(&self) -> Vec<Codec> {
        self.profile
            .media
            .codecs
            .iter()
            .filter_map(|name| Codec::from_profile(name, self.profile.media.opus_rate))
            .collect()
    }
}

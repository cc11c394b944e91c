//! Profiles: the TOML files that configure one vmesh server.
//!
//! A profile has nine sections, `[server]`, `[sip]`, `[mailboxes]`,
//! `[media]`, `[storage]`, `[mesh]`, `[tls]`, `[mwi]` and `[retrieval]`,
//! plus any number of `[[register]]` tables (`register.rs`, registrar URIs
//! in `registrar_uri.rs`), and every key has a default, so a small file (or
//! none: see [`Profile::embedded_default`]) is a complete profile. Loading
//! validates
//! everything and reports every problem with its file, key and line
//! ([`ConfigErrors`]), which is what `vmesh check` prints and why
//! `vmesh serve` refuses to start on an invalid profile.
//!
//! The reference for every key is `sip-profiles/default.toml`, the embedded
//! default profile itself.
//!
//! A profile that names a mesh topology (`server.topology`) loads it too:
//! the [`Topology`] file lists every server of the mesh, the URI that
//! reaches it and the mailboxes it is home to, and is validated with the
//! profile (`vmesh check` reports the errors of both).
//!
//! Layout: [`Profile`] ties the sections together (`profile.rs`); each section
//! has its own file (`server.rs`, `sip.rs` with `callers.rs` for who may
//! call, `media.rs`, `storage.rs`, `mesh.rs`, `mwi.rs`, `retrieval.rs`), as
//! do listen addresses (`listen.rs`), passwords (`secret.rs`) and mailbox patterns (`mailbox_set.rs`,
//! with `overlap.rs` deciding whether two patterns share a mailbox). The
//! topology is read in `topology.rs`, its peer URIs in `peer_uri.rs`, and
//! `membership.rs` checks a profile's place in it. Mutual TLS between
//! servers: `tls.rs` (the profile's `[tls]`), `trust.rs` (reading and
//! checking the CA, certificate and key) and `mesh_ca.rs` (making them). `reader.rs` walks the
//! parsed TOML collecting errors, `error.rs` holds them.

mod callers;
mod error;
mod listen;
mod mailbox_set;
mod media;
mod membership;
mod mesh;
mod mesh_ca;
mod mwi;
mod overlap;
mod peer_uri;
mod profile;
mod reader;
mod register;
mod registrar_uri;
mod retrieval;
mod secret;
mod server;
mod sip;
mod storage;
mod tls;
mod topology;
mod trust;

pub use callers::{AuthUser, CallerPolicy, DEFAULT_AUTH_ALGORITHMS, DEFAULT_NONCE_LIFETIME};
pub use error::{ConfigError, ConfigErrors, TextPosition};
pub use listen::{ListenAddr, ListenAddrError, ListenTransport};
pub use mailbox_set::{is_valid_mailbox, MailboxPattern, MailboxSet, MAX_MAILBOX_DIGITS};
pub use media::{
    CodecOrder, MediaConfig, DEFAULT_BEEP, DEFAULT_BEEP_HZ, DEFAULT_JITTER, DEFAULT_KEEPALIVE,
    DEFAULT_MAX_MESSAGE, DEFAULT_MAX_SILENCE, DEFAULT_MIN_MESSAGE, DEFAULT_OPUS_RATE,
    DEFAULT_RTP_PORTS, DEFAULT_RTP_TIMEOUT, DEFAULT_SILENCE_THRESHOLD_DBFS, KNOWN_CODECS,
    MAX_KEEPALIVE, OPUS_RATES,
};
pub use mesh::{
    MeshConfig, DEFAULT_FAILURES_FOR_DOWN, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_TRANSFER_BYTES,
    DEFAULT_PING_IDLE_INTERVAL, DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT,
    DEFAULT_RETENTION_DAYS, DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX, DEFAULT_TRANSFER_TIMEOUT,
};
pub use mesh_ca::{CaError, MeshCa, CA_VALIDITY_DAYS, DEFAULT_SERVER_VALIDITY_DAYS};
pub use mwi::{
    DigestCredentials, MwiConfig, NotifyTemplate, DEFAULT_MAX_EXPIRES,
    DEFAULT_MAX_IN_FLIGHT as DEFAULT_MWI_MAX_IN_FLIGHT, DEFAULT_MIN_EXPIRES, DEFAULT_POLL_INTERVAL,
    DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_INITIAL as DEFAULT_MWI_RETRY_INITIAL,
    MAILBOX_PLACEHOLDER,
};
pub use peer_uri::{PeerUri, PeerUriError, DEFAULT_SIPS_PORT, DEFAULT_SIP_PORT};
pub use profile::{Profile, ProfileOrigin, DEFAULT_PROFILE_TOML};
pub use register::{
    RegisterConfig, DEFAULT_REGISTER_EXPIRES, MAX_REGISTER_EXPIRES_S, MIN_REGISTER_EXPIRES_S,
};
pub use registrar_uri::{RegistrarHost, RegistrarUri, RegistrarUriError};
pub use retrieval::{
    Pilot, PilotKind, RetrievalConfig, DEFAULT_ASK_MAILBOX_PILOTS, DEFAULT_INPUT_TIMEOUT,
    DEFAULT_LANGUAGE, DEFAULT_LOCKOUT, DEFAULT_LOCKOUT_FAILURES, DEFAULT_LOCKOUT_WINDOW,
    DEFAULT_PILOTS, DEFAULT_TIMEZONE,
};
pub use secret::Password;
pub use server::{ServerConfig, DEFAULT_DATA_DIR, DEFAULT_SERVER_NAME};
pub use sip::{
    default_user_agent, SipConfig, DEFAULT_LISTEN, DEFAULT_MAX_CALLS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_REQUEST_DEADLINE,
    DEFAULT_TCP_IDLE_TIMEOUT, MAX_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES,
};
pub use storage::{
    StorageConfig, StorageFormat, DEFAULT_DELETED_RETENTION_DAYS, DEFAULT_ENCODE_WORKERS,
    DEFAULT_MIN_FREE_MB, DEFAULT_OPUS_BITRATE,
};
pub use tls::TlsFiles;
pub use topology::{Topology, TopologyServer};
pub use trust::{certificate_name, crypto_provider, TlsMaterial, TrustError};

#[cfg(test)]
mod tests;

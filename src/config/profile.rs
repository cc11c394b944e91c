//! A profile: the whole configuration of one vmesh server, read from TOML.
//!
//! Every key has a default, so an empty file is a complete profile and a
//! real one states only what differs. The defaults are written out in the
//! embedded default profile, `sip-profiles/default.toml`, which doubles as
//! the reference users read; a unit test keeps the two in agreement.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::error::{ConfigError, ConfigErrors};
use super::mailbox_set::{read_patterns, MailboxSet};
use super::media::MediaConfig;
use super::membership::check_membership;
use super::mesh::MeshConfig;
use super::mwi::MwiConfig;
use super::reader::{Node, Reader};
use super::register::{read_register, RegisterConfig, RegisterContext};
use super::retrieval::RetrievalConfig;
use super::server::ServerConfig;
use super::sip::SipConfig;
use super::storage::StorageConfig;
use super::tls::TlsFiles;
use super::topology::Topology;
use super::trust::{TlsMaterial, TrustError};

/// The text of the embedded default profile, compiled in so `vmesh serve`
/// runs with no file at all and `vmesh` can print it as a starting point.
pub const DEFAULT_PROFILE_TOML: &str = include_str!("../../sip-profiles/default.toml");

/// Where a profile came from; errors name it, and relative paths in the
/// profile are resolved against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileOrigin {
    /// The compiled-in default profile (or text with no file behind it).
    Embedded,
    /// A profile file, by the path it was opened with.
    File(PathBuf),
}

impl ProfileOrigin {
    /// The directory relative paths in the profile are resolved against:
    /// the file's own directory, or (empty path) the working directory.
    pub fn base_dir(&self) -> &Path {
        match self {
            ProfileOrigin::Embedded => Path::new(""),
            ProfileOrigin::File(path) => path.parent().unwrap_or(Path::new("")),
        }
    }
}

impl fmt::Display for ProfileOrigin {
    /// The file name used in error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileOrigin::Embedded => f.write_str("<embedded default>"),
            ProfileOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The configuration of one vmesh server; only ever built valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Where it was read from.
    pub origin: ProfileOrigin,
    /// `[server]`: name, data directory, topology file.
    pub server: ServerConfig,
    /// `[sip]`: listeners and limits of the SIP endpoint.
    pub sip: SipConfig,
    /// `[mailboxes] accept`: the mailboxes this server takes calls for.
    /// With a topology and no explicit `accept`, every mailbox of the
    /// topology, so this server stands in for its peers while they are away.
    pub mailboxes: MailboxSet,
    /// `[media]`: RTP, codecs and recording limits.
    pub media: MediaConfig,
    /// `[storage]`: the format messages are stored in.
    pub storage: StorageConfig,
    /// The mesh named by `server.topology`, read and validated with the
    /// profile; `None` for a server on its own.
    pub topology: Option<Topology>,
    /// `[mesh]`: peer health checks and transfer settings (defaults when
    /// absent, whether or not there is a topology).
    pub mesh: MeshConfig,
    /// `[[register]]`: the PBXs vmesh registers with, in file order.
    pub register: Vec<RegisterConfig>,
    /// `[retrieval]`: how mailbox owners call in to listen.
    pub retrieval: RetrievalConfig,
    /// `[mwi]`: message-waiting subscriptions and unsolicited NOTIFYs.
    pub mwi: MwiConfig,
    /// `[tls]`: this server's certificate and key for mutual TLS with its
    /// peers, checked against the topology's CA when the profile loads.
    pub tls: TlsFiles,
}

impl Profile {
    /// Reads, parses and validates the profile at `path`. A file that cannot
    /// be read is reported like any other error, naming the path.
    pub fn load(path: &Path) -> Result<Profile, ConfigErrors> {
        let origin = ProfileOrigin::File(path.to_path_buf());
        match std::fs::read_to_string(path) {
            Ok(text) => Profile::parse(&text, origin),
            Err(e) => Err(ConfigErrors(vec![ConfigError::new(
                origin.to_string(),
                "",
                format!("cannot read profile: {e}"),
            )])),
        }
    }

    /// The compiled-in default profile: one server on 127.0.0.1:5060 (UDP
    /// and TCP), data in `./vmesh-data`, every all-digit mailbox accepted.
    pub fn embedded_default() -> Profile {
        // The unit test `embedded_default_is_valid_and_documents_the_defaults`
        // proves the embedded text parses; falling back to the built-in
        // defaults (which it documents) keeps this free of a panic path.
        Profile::parse(DEFAULT_PROFILE_TOML, ProfileOrigin::Embedded)
            .unwrap_or_else(|_| Profile::defaults(ProfileOrigin::Embedded))
    }

    /// Parses and validates profile text, reporting every error found.
    /// Relative `topology` paths are resolved against `origin`'s directory
    /// (the working directory for [`ProfileOrigin::Embedded`]), and the
    /// topology is read from disk and validated too: its errors follow the
    /// profile's, naming the topology file.
    pub fn parse(text: &str, origin: ProfileOrigin) -> Result<Profile, ConfigErrors> {
        let mut reader = Reader::new(origin.to_string(), text);
        let (document, syntax_errors) = DeTable::parse_recoverable(text);
        for error in &syntax_errors {
            reader.syntax_error(error);
        }
        let mut topology_errors = Vec::new();
        let profile = if syntax_errors.is_empty() {
            let (mut profile, accept_given) =
                Profile::read(&mut reader, document.get_ref(), origin);
            if let Err(e) = profile.attach_topology(&mut reader, document.get_ref(), accept_given) {
                topology_errors = e.0;
            } else if !reader.has_error_within("tls") && !reader.has_error_within("sip.listen") {
                topology_errors = profile.check_trust(&mut reader);
            }
            profile
        } else {
            // What the parser recovered past a syntax error is a guess; keys
            // judged from it would add errors that are not really there.
            Profile::defaults(origin)
        };
        let mut errors = reader.finish();
        errors.extend(topology_errors);
        if errors.is_empty() {
            Ok(profile)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The profile every key defaults to, i.e. that of an empty file.
    fn defaults(origin: ProfileOrigin) -> Profile {
        let sip = SipConfig::default();
        let media = MediaConfig::default_for(&sip.listen);
        Profile {
            origin,
            server: ServerConfig::default(),
            sip,
            mailboxes: MailboxSet::any_digits(),
            media,
            storage: StorageConfig::default(),
            topology: None,
            mesh: MeshConfig::default(),
            register: Vec::new(),
            retrieval: RetrievalConfig::default(),
            mwi: MwiConfig::default(),
            tls: TlsFiles::default(),
        }
    }

    /// Whether this server speaks TLS: a `tls:` listener, or any server of
    /// its topology reached by `transport=tls` (itself, so peers dial it
    /// with TLS, or a peer it dials with TLS, presenting its own
    /// certificate).
    pub fn uses_tls(&self) -> bool {
        let listens = self
            .sip
            .listen
            .iter()
            .any(|l| l.transport == super::listen::ListenTransport::Tls);
        let meshed = self.topology.as_ref().is_some_and(|t| {
            t.servers
                .iter()
                .any(|s| s.transport == super::listen::ListenTransport::Tls)
        });
        listens || meshed
    }

    /// Reads and checks this server's TLS material: the topology's CA, and
    /// the profile's certificate and key, which must name this server and
    /// chain to the CA. `None` when the server does not use TLS.
    pub fn tls_material(&self) -> Result<Option<TlsMaterial>, TrustError> {
        let (Some(ca), Some((cert, key))) = (
            self.topology.as_ref().and_then(|t| t.ca.as_deref()),
            self.tls.pair(),
        ) else {
            return Ok(None);
        };
        if !self.uses_tls() {
            return Ok(None);
        }
        TlsMaterial::load(ca, cert, key, &self.server.name).map(Some)
    }

    /// The TLS checks of `vmesh check`: what TLS needs is given, and the
    /// files are what peers will accept. Errors about the CA file name the
    /// topology; the others are returned through `reader`, except that the
    /// errors of a topology file are returned for the caller to append.
    fn check_trust(&self, reader: &mut Reader<'_>) -> Vec<ConfigError> {
        if !self.uses_tls() {
            return Vec::new();
        }
        let ca = self.topology.as_ref().and_then(|t| t.ca.as_ref());
        if ca.is_none() {
            reader.error_unplaced(
                "sip.listen",
                "TLS authenticates mesh peers against the mesh CA: set server.topology to a \
                 topology with [tls] ca",
            );
        }
        let mut missing = false;
        for (value, key) in [(&self.tls.cert, "tls.cert"), (&self.tls.key, "tls.key")] {
            if value.is_none() {
                missing = true;
                reader.error_unplaced(
                    key,
                    format!(
                        "missing; this server speaks TLS with its peers, so it needs its own \
                         certificate and key (vmesh certs issue {})",
                        self.server.name
                    ),
                );
            }
        }
        if missing || ca.is_none() {
            return Vec::new();
        }
        match self.tls_material() {
            Ok(_) => Vec::new(),
            Err(e @ TrustError::Ca { .. }) => {
                let file = self
                    .topology
                    .as_ref()
                    .map(|t| t.path.display().to_string())
                    .unwrap_or_default();
                vec![ConfigError::new(file, "tls.ca", e.to_string())]
            }
            Err(e @ TrustError::Key { .. }) => {
                reader.error_unplaced("tls.key", e.to_string());
                Vec::new()
            }
            Err(e) => {
                reader.error_unplaced("tls.cert", e.to_string());
                Vec::new()
            }
        }
    }

    /// Loads the topology the profile names, checks this server's place in
    /// it, and, unless `accept` was given, accepts every topology mailbox.
    fn attach_topology(
        &mut self,
        reader: &mut Reader<'_>,
        document: &DeTable<'_>,
        accept_given: bool,
    ) -> Result<(), ConfigErrors> {
        let Some(path) = &self.server.topology else {
            return Ok(());
        };
        let topology = Topology::load(path)?;
        check_membership(
            reader,
            document,
            &self.server.name,
            &self.sip.listen,
            &topology,
        );
        if !accept_given {
            self.mailboxes = topology.all_mailboxes();
        }
        self.topology = Some(topology);
        Ok(())
    }

    /// Reads the sections of a syntactically valid document. Sections are
    /// looked up by name first, because `[media]` defaults depend on `[sip]`
    /// whatever order the file gives them in. Also returns whether
    /// `[mailboxes] accept` was given, which a topology's default defers to.
    fn read(
        reader: &mut Reader<'_>,
        document: &DeTable<'_>,
        origin: ProfileOrigin,
    ) -> (Profile, bool) {
        let empty = DeTable::new();
        let mut register: Option<&Node<'_>> = None;
        let mut retrieval = &empty;
        let mut mwi = &empty;
        let (mut server, mut sip, mut mailboxes, mut media, mut storage, mut mesh, mut tls) =
            (&empty, &empty, &empty, &empty, &empty, &empty, &empty);
        for (name, node) in document.iter() {
            let key = name.get_ref().as_ref();
            let slot = match key {
                "register" => {
                    register = Some(node);
                    continue;
                }
                "server" => &mut server,
                "sip" => &mut sip,
                "mailboxes" => &mut mailboxes,
                "media" => &mut media,
                "storage" => &mut storage,
                "mesh" => &mut mesh,
                "retrieval" => &mut retrieval,
                "mwi" => &mut mwi,
                "tls" => &mut tls,
                _ => {
                    reader.error(
                        key,
                        name.span(),
                        "unknown section; expected server, sip, mailboxes, media, storage, mesh, \
                         tls, mwi, retrieval or register",
                    );
                    continue;
                }
            };
            if let Some(table) = reader.table(key, node) {
                *slot = table;
            }
        }
        let server = ServerConfig::read(reader, server, origin.base_dir());
        let sip = SipConfig::read(reader, sip, origin.base_dir());
        let accept = read_mailboxes(reader, mailboxes);
        let media = MediaConfig::read(reader, media, &sip.listen);
        let storage = StorageConfig::read(reader, storage);
        let mesh = MeshConfig::read(reader, mesh);
        let register = match register {
            Some(node) => {
                let context = RegisterContext {
                    base_dir: origin.base_dir(),
                    listen: &sip.listen,
                    rtp_ip: media.rtp_ip,
                };
                read_register(reader, node, &context)
            }
            None => Vec::new(),
        };
        let retrieval = RetrievalConfig::read(reader, retrieval, origin.base_dir());
        let mwi = MwiConfig::read(reader, mwi, origin.base_dir());
        let tls = TlsFiles::read(reader, tls, origin.base_dir());
        let profile = Profile {
            origin,
            server,
            sip,
            mailboxes: accept.clone().unwrap_or_else(MailboxSet::any_digits),
            media,
            storage,
            topology: None,
            mesh,
            register,
            retrieval,
            mwi,
            tls,
        };
        (profile, accept.is_some())
    }
}

/// Reads `[mailboxes]`, naming each bad pattern by its index; `None` when
/// `accept` is not given.
fn read_mailboxes(reader: &mut Reader<'_>, table: &DeTable<'_>) -> Option<MailboxSet> {
    let mut set = None;
    for (name, node) in table.iter() {
        let key = format!("mailboxes.{}", name.get_ref());
        if name.get_ref() != "accept" {
            reader.unknown_key(&key, name.span());
            continue;
        }
        let Some(entries) = reader.strings(&key, node) else {
            continue;
        };
        if entries.is_empty() {
            reader.error(
                &key,
                node.span(),
                "must list at least one pattern; use [\"*\"] to accept every mailbox",
            );
            continue;
        }
        set = Some(MailboxSet::from_placed(read_patterns(reader, entries)));
    }
    set
}

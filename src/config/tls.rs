//! The `[tls]` section of a profile: this server's own certificate and key
//! for mutual TLS with its mesh peers (RFC 3261 section 26.2; RFC 5922 for
//! how a SIP server is named in a certificate).
//!
//! ```toml
//! [tls]
//! cert = "certs/site-a.pem"   # relative to this profile
//! key = "certs/site-a.key"
//! ```
//!
//! Both are needed as soon as the server listens for TLS or any server of
//! its topology (itself, or a peer it dials) is reached by `transport=tls`;
//! the CA they chain to is the mesh's, named once
//! in the topology file (`[tls] ca`). Reading and checking the files
//! themselves is [`super::trust`]'s work.

use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::reader::Reader;

/// Where this server's certificate and private key are, resolved against
/// the profile's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, this server's certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads `[tls]`; relative paths are resolved against `base_dir`.
    pub(super) fn read(reader: &mut Reader<'_>, table: &DeTable<'_>, base_dir: &Path) -> Self {
        let mut files = TlsFiles::default();
        for (name, node) in table.iter() {
            let key = format!("tls.{}", name.get_ref());
            let slot = match name.get_ref().as_ref() {
                "cert" => &mut files.cert,
                "key" => &mut files.key,
                _ => {
                    reader.unknown_key(&key, name.span());
                    continue;
                }
            };
            if let Some(s) = reader.string(&key, node) {
                if s.is_empty() {
                    reader.error(&key, node.span(), "must not be empty");
                } else {
                    *slot = Some(base_dir.join(s));
                }
            }
        }
        files
    }

    /// Both files, when both are given.
    pub fn pair(&self) -> Option<(&Path, &Path)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }
}

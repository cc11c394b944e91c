//! The mesh CA: the certificate authority that makes a set of vmesh
//! servers one mesh (`vmesh certs init` and `vmesh certs issue`).
//!
//! A mesh is small and run by one operator, so its trust is a private CA
//! rather than the web PKI: `init` makes a self-signed CA (`ca.pem`,
//! `ca.key`), `issue NAME` a key and a certificate for one server
//! (`NAME.pem`, `NAME.key`) whose subject alternative names hold NAME as a
//! DNS name (RFC 5922 section 7.1), marked for both TLS server and client
//! authentication (RFC 5280 section 4.2.1.12), since every server both
//! listens for its peers and dials them. Keys are ECDSA P-256 and are
//! written with mode 0600, and nothing that exists is ever overwritten: a
//! key replaced by mistake would cut a server off its mesh.
//!
//! The certificates are made with rcgen; the CA certificate is read back
//! (x509-parser, through rcgen) so that what is issued names the CA exactly
//! as its certificate does.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::trust::certificate_name;

/// How long a CA certificate is valid: ten years.
pub const CA_VALIDITY_DAYS: i64 = 3650;

/// How long a server certificate is valid by default: two years, so a
/// certificate is rotated well before the CA.
pub const DEFAULT_SERVER_VALIDITY_DAYS: i64 = 730;

/// Why a CA or certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{0} already exists; refusing to overwrite it (move it away to replace it)")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error("{0}")]
    Name(String),
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// The files of a CA in a directory.
#[derive(Debug, Clone)]
pub struct MeshCa {
    /// `DIR/ca.pem`.
    pub cert: PathBuf,
    /// `DIR/ca.key`.
    pub key: PathBuf,
    dir: PathBuf,
}

impl MeshCa {
    /// The CA files in `dir` (whether or not they exist yet).
    pub fn in_dir(dir: &Path) -> MeshCa {
        MeshCa {
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
            dir: dir.to_path_buf(),
        }
    }

    /// Makes a new CA in the directory (created if missing). Refuses if
    /// either file exists.
    pub fn init(&self) -> Result<(), CaError> {
        refuse_existing(&[&self.cert, &self.key])?;
        std::fs::create_dir_all(&self.dir).map_err(|source| CaError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "vmesh mesh CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key)?;
        write_new(&self.key, key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&self.cert, cert.pem().as_bytes(), 0o644)
    }

    /// Issues a key and certificate for server `name`, valid `days` days:
    /// `DIR/NAME.pem` and `DIR/NAME.key`. Returns their paths. Refuses if
    /// either exists.
    pub fn issue(&self, name: &str, days: i64) -> Result<(PathBuf, PathBuf), CaError> {
        super::server::check_name(name)
            .map_err(|why| CaError::Name(format!("server name {name:?} {why}")))?;
        certificate_name(name).map_err(CaError::Name)?;
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}.key"));
        refuse_existing(&[&cert_path, &key_path])?;
        let ca_key_pem = read(&self.key)?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| CaError::Unusable {
            path: self.key.clone(),
            reason: format!("not a private key: {e}"),
        })?;
        let ca_pem = read(&self.cert)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(|e| CaError::Unusable {
            path: self.cert.clone(),
            reason: format!("not a CA certificate: {e}"),
        })?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![SanType::DnsName(
            name.try_into()
                .map_err(|e| CaError::Name(format!("{name}: {e}")))?,
        )];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, days);
        let cert = params.signed_by(&key, &issuer)?;
        write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
        Ok((cert_path, key_path))
    }
}

/// Valid from an hour ago (clocks of a mesh differ a little) for `days`.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    let serial: [u8; 16] = rand::random();
    // A positive 127-bit serial (RFC 5280 section 4.1.2.2).
    let mut serial = serial.to_vec();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

fn refuse_existing(paths: &[&Path]) -> Result<(), CaError> {
    for path in paths {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(CaError::Exists(path.to_path_buf()));
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file that must not exist yet (O_EXCL: no race, no symlink
/// followed), with `mode`, and syncs it.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), CaError> {
    let io = |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CaError::Exists(path.to_path_buf()),
            _ => io(e),
        })?;
    file.write_all(data).map_err(io)?;
    file.sync_all().map_err(io)
}

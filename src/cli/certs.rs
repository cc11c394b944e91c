//! `vmesh certs`: the mesh CA and the servers' certificates.
//!
//! `init --dir DIR` makes the CA (`DIR/ca.pem`, `DIR/ca.key`); `issue NAME
//! --dir DIR` a key and certificate for server NAME (`DIR/NAME.pem`,
//! `DIR/NAME.key`). Neither ever overwrites a file; keys are mode 0600.
//! See [`crate::config::MeshCa`] for what the certificates hold.

use std::path::Path;

use super::CliError;
use crate::config::MeshCa;

/// `vmesh certs init`.
pub fn init(dir: &Path) -> Result<(), CliError> {
    let ca = MeshCa::in_dir(dir);
    ca.init()?;
    println!(
        "mesh CA created: {} (certificate, give it to every server) and {} (key, keep it offline)",
        ca.cert.display(),
        ca.key.display()
    );
    Ok(())
}

/// `vmesh certs issue`.
pub fn issue(name: &str, dir: &Path, days: i64) -> Result<(), CliError> {
    let (cert, key) = MeshCa::in_dir(dir).issue(name, days)?;
    println!(
        "certificate for {name} issued: {} and {} (valid {days} days); \
         point its profile's [tls] cert and key at them",
        cert.display(),
        key.display()
    );
    Ok(())
}

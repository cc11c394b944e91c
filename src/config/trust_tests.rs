//! Trust material made by `vmesh certs` (MeshCa) and checked as peers
//! would check it; the independent side is openssl in the end-to-end tests.

use std::path::Path;

use super::*;
use crate::config::MeshCa;

fn ca_in(dir: &Path) -> MeshCa {
    let ca = MeshCa::in_dir(dir);
    ca.init().unwrap();
    ca
}

fn reason(e: TrustError) -> String {
    e.to_string()
}

#[test]
fn a_certificate_issued_for_the_server_loads() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let (cert, key) = ca.issue("site-a", 30).unwrap();
    let material = TlsMaterial::load(&ca.cert, &cert, &key, "site-a").unwrap();
    assert_eq!(material.chain.len(), 1);
    assert_eq!(material.roots.len(), 1);
}

#[test]
fn another_servers_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let (cert, key) = ca.issue("site-b", 30).unwrap();
    let e = reason(TlsMaterial::load(&ca.cert, &cert, &key, "site-a").unwrap_err());
    assert!(e.contains("does not name server \"site-a\""), "{e}");
}

#[test]
fn a_certificate_of_another_ca_is_refused() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let ca = ca_in(ours.path());
    let (cert, key) = ca_in(theirs.path()).issue("site-a", 30).unwrap();
    let e = reason(TlsMaterial::load(&ca.cert, &cert, &key, "site-a").unwrap_err());
    assert!(e.contains("is not issued by the mesh CA"), "{e}");
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let (cert, _) = ca.issue("site-a", 30).unwrap();
    let (_, other_key) = ca.issue("site-b", 30).unwrap();
    let e = reason(TlsMaterial::load(&ca.cert, &cert, &other_key, "site-a").unwrap_err());
    assert!(e.contains("does not match the key"), "{e}");
}

#[test]
fn missing_and_garbage_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    let (cert, key) = ca.issue("site-a", 30).unwrap();
    let nowhere = dir.path().join("nowhere.pem");
    let e = TlsMaterial::load(&nowhere, &cert, &key, "site-a").unwrap_err();
    assert!(matches!(e, TrustError::Ca { .. }), "{e}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let e = TlsMaterial::load(&ca.cert, &garbage, &key, "site-a").unwrap_err();
    assert!(matches!(e, TrustError::Cert { .. }), "{e}");
    let e = TlsMaterial::load(&ca.cert, &cert, &garbage, "site-a").unwrap_err();
    assert!(matches!(e, TrustError::Key { .. }), "{e}");
}

#[test]
fn issuing_never_overwrites_and_keys_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    assert!(matches!(ca.init(), Err(crate::config::CaError::Exists(_))));
    let (_, key) = ca.issue("site-a", 30).unwrap();
    let before = std::fs::read(&key).unwrap();
    assert!(matches!(
        ca.issue("site-a", 30),
        Err(crate::config::CaError::Exists(_))
    ));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    for file in [&key, &ca.key] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

#[test]
fn names_that_no_certificate_can_hold_are_refused() {
    assert!(certificate_name("site-a").is_ok());
    assert!(certificate_name("vm_1.example").is_ok());
    assert!(certificate_name("42").is_err());
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_in(dir.path());
    assert!(ca.issue("42", 30).is_err());
    assert!(ca.issue("../evil", 30).is_err());
}

//! A profile (TOML) through `Profile::parse`, with the topology it names
//! and the TLS files both name, in a scratch directory.
//!
//! The input is the profile's text, optionally followed by a NUL byte and
//! the text of `topology.toml` beside it. The directory also holds a mesh
//! CA and certificates for `site-a` and `site-b` made by `vmesh certs`'s
//! own code, so profiles that name them load through the TLS checks.
//! Inputs whose strings name a path outside the directory (absolute, or
//! with `..`) are skipped: the parser reads the files a profile names.
//! Checked beyond "no panic": parsing is deterministic; a refused profile's
//! errors each name the file and have positions within its text; a loaded
//! profile's mailbox set holds only valid mailboxes and its topology, if
//! any, has this server in it.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vmesh::config::{MeshCa, Profile, ProfileOrigin};

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        let ca = MeshCa::in_dir(&dir.join("certs"));
        ca.init().expect("a mesh CA");
        for name in ["site-a", "site-b"] {
            ca.issue(name, 30).expect("a server certificate");
        }
        dir
    })
}

/// Whether every string of the document stays inside the directory.
fn paths_stay_inside(text: &str) -> bool {
    fn inside(value: &toml::Value) -> bool {
        match value {
            toml::Value::String(s) => {
                !s.contains("..") && !s.starts_with('/') && !s.starts_with('~')
            }
            toml::Value::Array(items) => items.iter().all(inside),
            toml::Value::Table(table) => table.values().all(inside),
            _ => true,
        }
    }
    match text.parse::<toml::Table>() {
        Ok(table) => table.values().all(inside),
        // Nothing is read from a file that does not parse.
        Err(_) => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let (profile, topology) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(profile) else {
        return;
    };
    let topology = topology.map(std::str::from_utf8);
    if matches!(topology, Some(Err(_))) || !paths_stay_inside(text) {
        return;
    }
    if let Some(Ok(t)) = topology {
        if !paths_stay_inside(t) {
            return;
        }
    }
    let dir = scratch();
    let topology_path = dir.join("topology.toml");
    match topology {
        Some(Ok(t)) => std::fs::write(&topology_path, t).expect("write the topology"),
        _ => {
            let _ = std::fs::remove_file(&topology_path);
        }
    }
    let origin = ProfileOrigin::File(dir.join("profile.toml"));
    let first = Profile::parse(text, origin.clone());
    let second = Profile::parse(text, origin.clone());
    assert_eq!(first, second, "parsing is not deterministic");
    match first {
        Ok(profile) => {
            for pattern in profile.mailboxes.patterns() {
                assert!(!pattern.to_string().is_empty());
            }
            if let Some(topology) = &profile.topology {
                assert!(topology.server(&profile.server.name).is_some());
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            let lines = text.split('\n').count();
            let file = origin.to_string();
            for e in &errors.0 {
                if e.file == file {
                    if let Some(p) = e.position {
                        assert!(p.line >= 1 && p.line <= lines, "{e}");
                    }
                }
            }
        }
    }
});

//! Spent sidecars kept for reuse: `recording/<id>.spare`.
//!
//! Every answered call writes its sidecar durably at the ACK, and most
//! short calls (a hang-up during the greeting) remove it a moment later.
//! Made and removed each time, the file costs the file system an inode
//! allocated and freed, a data block allocated and freed (and, on a file
//! system mounted with `discard`, a synchronous discard request for it),
//! and an fsync that must write the new inode. Measured on a virtual disk
//! (BENCHMARKS.md, "Fifth round"), those waits are most of a short call's
//! context switches.
//!
//! So a sidecar that is done with is renamed to `<id>.spare` instead of
//! removed, and the next recording overwrites a spare in place, syncs its
//! data (`fdatasync`: the file keeps its size, so no inode change needs to
//! reach the disk) and renames it to its own `<id>.json`, syncing the
//! directory as before. The steps a crash can interrupt are those of a
//! new file written and renamed into place: until the rename the content
//! is under a `.spare` name, which recovery never reads as a sidecar, and
//! after it the file is complete and synced. Every sidecar is written
//! padded to [`SIDECAR_BYTES`] (JSON allows trailing white space), so a
//! spare always has the size its next content needs.
//!
//! A done sidecar becomes a spare without a sync of its own: if a crash
//! undoes the rename, the sidecar is back under its own name, as a removal
//! undone by a crash would leave it. The next sidecar written syncs the
//! directory, and only then is the spare overwritten
//! ([`Spares::write_sidecar`]), so a power cut can never bring back an old
//! sidecar's name over a new call's metadata. At most [`MAX_SPARES`] are
//! kept (one block each); the rest are removed. Recovery takes over the
//! spares it finds, up to that number, and removes the others
//! (`recovery.rs`).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::durable;
use super::error::StoreError;

/// Size every sidecar is padded to: one file system block. A sidecar's
/// JSON is about 400 bytes; one that does not fit is written as it is.
pub const SIDECAR_BYTES: usize = 4096;

/// Spares kept at most (a megabyte of disk). At a steady rate few are
/// waiting at any time, since every recording that starts takes one; the
/// bound keeps a burst of hang-ups from leaving thousands behind. Beyond
/// it a spent sidecar is removed, as before there were spares.
pub const MAX_SPARES: usize = 256;

/// Extension of a spare sidecar.
pub const SPARE_EXTENSION: &str = "spare";

/// `json` padded with spaces to [`SIDECAR_BYTES`] (unchanged when longer).
pub fn padded(mut json: Vec<u8>) -> Vec<u8> {
    if json.len() < SIDECAR_BYTES {
        json.resize(SIDECAR_BYTES, b' ');
    }
    json
}

/// The spare sidecars of one data directory, ready to be overwritten.
#[derive(Default)]
pub struct Spares {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Spares, each with the count of retirements when it was retired.
    files: Vec<(PathBuf, u64)>,
    /// Sidecars retired (or spares adopted) so far.
    retired: u64,
    /// Retirements a later sync of `recording/` has made durable.
    synced: u64,
}

impl Spares {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes over `path`, a spare on disk (again, if it is held already);
    /// false, and nothing kept, when there are enough.
    pub fn adopt(&self, path: PathBuf) -> bool {
        let mut state = self.state();
        if state.files.iter().any(|(held, _)| *held == path) {
            return true;
        }
        if state.files.len() >= MAX_SPARES {
            return false;
        }
        state.keep(path);
        true
    }

    /// Writes `bytes` (already [`padded`]) durably as the new sidecar
    /// `path`, in a spare when there is one, else as a new file
    /// ([`durable::write_atomic`]). A spare that fails is removed and the
    /// write made as a new file, so a spare can never cost a recording.
    ///
    /// Only a spare whose retirement is durable is overwritten: the
    /// directory was synced since it was renamed. Otherwise a power cut
    /// could undo the rename after the overwrite reached the disk, and
    /// bring back the old sidecar's name holding the new call's metadata.
    /// Each write here ends with a sync of the directory, which makes the
    /// retirements before it durable.
    pub fn write_sidecar(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let (spare, covered) = {
            let mut state = self.state();
            let synced = state.synced;
            let usable = state.files.iter().rposition(|(_, at)| *at <= synced);
            (usable.map(|i| state.files.remove(i).0), state.retired)
        };
        let written = match spare {
            Some(spare) => overwrite_and_rename(&spare, path, bytes).or_else(|error| {
                tracing::warn!(path = %spare.display(), %error, "spare sidecar unusable; removed");
                let _ = fs::remove_file(&spare);
                durable::write_atomic(path, bytes)
            }),
            None => durable::write_atomic(path, bytes),
        };
        if written.is_ok() {
            let mut state = self.state();
            state.synced = state.synced.max(covered);
        }
        written
    }

    /// Retires the sidecar at `path`, done with: renamed to a spare while
    /// fewer than [`MAX_SPARES`] are kept, removed otherwise. Not synced
    /// (see the module's documentation).
    pub fn retire(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        if state.files.len() >= MAX_SPARES {
            drop(state);
            return fs::remove_file(path);
        }
        let spare = path.with_extension(SPARE_EXTENSION);
        fs::rename(path, &spare)?;
        state.keep(spare);
        Ok(())
    }
}

impl State {
    /// Holds `spare`, renamed to its spare name just now (or found so).
    fn keep(&mut self, spare: PathBuf) {
        self.retired += 1;
        self.files.push((spare, self.retired));
    }
}

/// Overwrites the spare `spare` with `bytes`, syncs its data, and renames
/// it to `path` with the directory synced.
fn overwrite_and_rename(spare: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(spare)
        .map_err(StoreError::io("open", spare))?;
    let len = file
        .metadata()
        .map_err(StoreError::io("stat", spare))?
        .len();
    file.write_all_at(bytes, 0)
        .map_err(StoreError::io("write", spare))?;
    if len > bytes.len() as u64 {
        file.set_len(bytes.len() as u64)
            .map_err(StoreError::io("truncate", spare))?;
    }
    // The size changed only when the content outgrew a block, or shrank
    // back: then the inode too must reach the disk.
    let synced = if len == bytes.len() as u64 {
        file.sync_data()
    } else {
        file.sync_all()
    };
    synced.map_err(StoreError::io("fsync", spare))?;
    drop(file);
    durable::rename(spare, path)
}

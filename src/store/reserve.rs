//! Space held back so a call can still be stored when the disk fills.
//!
//! A call that is recording when the file system fills up has audio on
//! disk that must not be lost, and storing it needs a little more room: a
//! WAV header rewritten in place costs nothing, but listing it appends to
//! SQLite's write-ahead log and may add a directory entry. So the server
//! keeps [`RESERVE_FILE`] ([`RESERVE_BYTES`] of real, allocated blocks) in
//! the data directory; when a write fails for want of space, the reserve is
//! given up and the call is finished with what fits ([`super::Store::finish`]),
//! listed at once as partial. The reserve is taken again once there is room
//! ([`super::Store::has_room`]). New calls are refused with 503 before
//! they are answered while the free space is under the profile's
//! `storage.min_free_mb` (`voicemail::call`), so the reserve is for calls
//! already in progress.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::error::StoreError;

/// The reserve's file name in the data directory.
pub const RESERVE_FILE: &str = "reserve";

/// Its size: far more than a row and its log pages need.
pub const RESERVE_BYTES: usize = 1024 * 1024;

/// Creates the reserve if it is missing, with every block written (not a
/// sparse file: its blocks must really be free to give back).
pub fn take(data_dir: &Path) -> Result<(), StoreError> {
    let path = data_dir.join(RESERVE_FILE);
    if path
        .metadata()
        .is_ok_and(|m| m.len() == RESERVE_BYTES as u64)
    {
        return Ok(());
    }
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(&vec![0u8; RESERVE_BYTES])?;
            f.sync_all()
        });
    if let Err(source) = written {
        // A reserve that does not fit is no reserve.
        let _ = std::fs::remove_file(&path);
        return Err(StoreError::Io {
            op: "create the space reserve",
            path,
            source,
        });
    }
    Ok(())
}

/// Runs `step`; if it fails for want of space while the reserve is held,
/// gives the reserve back and runs it once more (`what` it is, for the log).
pub fn or_release<T>(
    data_dir: &Path,
    what: &str,
    mut step: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match step() {
        Err(error) if error.is_disk_full() && release(data_dir) => {
            tracing::warn!(%error, "disk full: the space reserve is given up to {what}");
            step()
        }
        other => other,
    }
}

/// Gives the reserve's blocks back to the file system; true if there was one.
pub fn release(data_dir: &Path) -> bool {
    std::fs::remove_file(data_dir.join(RESERVE_FILE)).is_ok()
}

/// Bytes free for an unprivileged writer on the file system of `dir`
/// (statvfs(3) `f_bavail * f_frsize`).
pub fn free_bytes(dir: &Path) -> Result<u64, StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let io = |source| StoreError::Io {
        op: "statvfs",
        path: dir.to_owned(),
        source,
    };
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs(3) reads the NUL-terminated path and writes the
    // struct we own.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_taken_once_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        take(dir.path()).unwrap();
        let path = dir.path().join(RESERVE_FILE);
        let meta = path.metadata().unwrap();
        assert_eq!(meta.len(), RESERVE_BYTES as u64);
        // Allocated, not sparse.
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 >= RESERVE_BYTES as u64);
        take(dir.path()).unwrap();
        assert!(release(dir.path()));
        assert!(!path.exists());
        assert!(!release(dir.path()));
        assert!(free_bytes(dir.path()).unwrap() > 0);
    }
}

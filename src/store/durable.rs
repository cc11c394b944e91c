//! The POSIX steps that make a file change survive power loss.
//!
//! `rename(2)` is atomic but not durable until the directory holding the new
//! name is fsynced; a file's contents are durable only after `fsync(2)` on the
//! file. Linux applies `fsync` to the inode, so reopening a closed file and
//! syncing it flushes data written through an earlier descriptor.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::error::StoreError;

/// Fsyncs a directory so that entries created, renamed or removed in it are
/// durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("fsync directory", dir))
}

/// Creates `dir` if missing (parents included), syncing the parent when it
/// was created so the new directory itself survives a crash.
pub fn create_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(StoreError::io("create directory", dir))?;
    sync_dir(parent_of(dir))
}

/// The directory holding `path`; "." for a bare relative name such as
/// `data-a`, whose `parent()` is the empty path.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` all-or-nothing: to `<path>.tmp`, fsync, rename,
/// fsync the directory. A crash leaves either no file, the old file, or the
/// complete new one (plus possibly a stray `.tmp`, which recovery removes).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(TMP_EXTENSION);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(StoreError::io("create", &tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io("write", &tmp))?;
    drop(file);
    rename(&tmp, path)
}

/// Renames `from` to `to` and fsyncs the destination directory (and the
/// source directory when it differs, so the old name is gone for good).
pub fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(StoreError::io("rename to", to))?;
    let to_dir = parent_of(to);
    sync_dir(to_dir)?;
    let from_dir = parent_of(from);
    if from_dir != to_dir {
        sync_dir(from_dir)?;
    }
    Ok(())
}

/// Extension of files [`write_atomic`] has not yet renamed into place.
pub const TMP_EXTENSION: &str = "tmp";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_relative_directory_has_the_working_directory_as_parent() {
        assert_eq!(parent_of(Path::new("data-a")), Path::new("."));
        assert_eq!(parent_of(Path::new("x/data-a")), Path::new("x"));
        assert_eq!(parent_of(Path::new("/data-a")), Path::new("/"));
    }
}

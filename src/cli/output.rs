//! Writing a file the user named, without harming what is already there.
//!
//! `vmesh messages export --out FILE` often runs as the service's user (or
//! root) in a directory others can write to. An existing file is kept
//! unless `--force` says to replace it, and a symbolic link is never
//! followed: `O_CREAT | O_EXCL` (Rust's `create_new`) fails on any existing
//! name, a dangling link included (open(2)), and with `--force` the file is
//! opened with `O_NOFOLLOW` and must be a regular file before it is
//! truncated, so a link planted at the path cannot redirect the write to
//! another file, and a FIFO or device is refused rather than written to.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::CliError;

/// Writes `bytes` to a new file at `path`; with `force`, an existing
/// regular file there is replaced. Never follows a symbolic link.
pub fn write_file(path: &Path, bytes: &[u8], force: bool) -> Result<(), CliError> {
    let io = |source: std::io::Error| CliError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = if force {
        open_replacing(path)?
    } else {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => CliError::OutputExists(path.to_owned()),
                _ => io(e),
            })?
    };
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)
}

/// Opens `path` for writing without following a final symbolic link,
/// creating it if missing; an existing file must be a regular one and is
/// truncated only once that is known.
fn open_replacing(path: &Path) -> Result<File, CliError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        // O_NONBLOCK: opening a FIFO for writing would otherwise wait for
        // a reader; it is refused below anyway.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                CliError::OutputIsSymlink(path.to_owned())
            } else {
                CliError::Io {
                    path: path.to_owned(),
                    source: e,
                }
            }
        })?;
    let io = |source: std::io::Error| CliError::Io {
        path: path.to_owned(),
        source,
    };
    if !file.metadata().map_err(io)?.is_file() {
        return Err(CliError::OutputNotRegular(path.to_owned()));
    }
    file.set_len(0).map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.wav");
        write_file(&out, b"RIFF", false).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"RIFF");
    }

    #[test]
    fn an_existing_file_is_kept_without_force_and_replaced_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.wav");
        std::fs::write(&out, b"precious and long").unwrap();
        assert!(matches!(
            write_file(&out, b"new", false),
            Err(CliError::OutputExists(_))
        ));
        assert_eq!(std::fs::read(&out).unwrap(), b"precious and long");
        write_file(&out, b"new", true).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
    }

    #[test]
    fn a_symlink_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dangling = dir.path().join("dangling.wav");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(
            write_file(&link, b"x", false),
            Err(CliError::OutputExists(_))
        ));
        assert!(matches!(
            write_file(&link, b"x", true),
            Err(CliError::OutputIsSymlink(_))
        ));
        assert!(write_file(&dangling, b"x", false).is_err());
        assert!(matches!(
            write_file(&dangling, b"x", true),
            Err(CliError::OutputIsSymlink(_))
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(!dir.path().join("nowhere").exists());
    }

    #[test]
    fn a_fifo_or_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // Without a reader the open itself fails (ENXIO); either way
        // nothing is written and nothing blocks.
        assert!(write_file(&fifo, b"x", true).is_err());
        assert!(write_file(&fifo, b"x", false).is_err());
        assert!(write_file(dir.path(), b"x", true).is_err());
    }
}

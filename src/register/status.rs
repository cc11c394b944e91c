//! `registrations.json`: each registration's state, for `vmesh registrations`.
//!
//! The server rewrites the file in its data directory whenever a
//! registration changes state, and the CLI (another process) reads it. A
//! small file of its own rather than a table in the message index: it is a
//! snapshot of live state, rewritten whole, never queried, and nothing in
//! it needs to survive a crash (a restarted server registers again at once
//! and rewrites it). It is written atomically (a temporary file renamed
//! over it, POSIX rename(2)), so a reader sees the old or the new
//! snapshot, never half of one; not fsynced, since losing the last update
//! to a power cut loses nothing the next start does not rebuild.
//!
//! Times are UTC, RFC 3339, from the wall clock (the machine's `Instant`s
//! mean nothing to another process). A registration still shown as
//! registered after its `expires_at` belongs to a server that is no longer
//! running (it refreshes well before that): the CLI shows it as `expired`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use super::machine::{Phase, Snapshot};
use crate::config::RegisterConfig;

/// The file's name in the data directory.
pub const STATUS_FILE: &str = "registrations.json";

/// One registration as `vmesh registrations --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationStatus {
    /// The registrar's URI.
    pub registrar: String,
    /// The user registered.
    pub user: String,
    /// The address of record.
    pub aor: String,
    /// The Contact registered.
    pub contact: String,
    /// `registering`, `registered`, `failing`, `unregistering`,
    /// `unregistered` (and `expired`, as the CLI reads it).
    pub state: String,
    /// The lifetime the registrar granted, while the binding holds.
    pub expires_s: Option<u64>,
    /// When the binding expires unless refreshed.
    pub expires_at: Option<String>,
    /// When the next refresh goes out.
    pub refresh_at: Option<String>,
    /// When a failing registration is tried again.
    pub next_attempt_at: Option<String>,
    /// The status of the last final response.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, until one succeeds.
    pub last_error: Option<String>,
    /// Consecutive failures.
    pub failures: u32,
    /// The lifetime asked for, in seconds.
    pub requested_expires_s: u64,
    /// When this was written.
    pub updated_at: String,
}

/// Why the file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a registrations file: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The status of `entry` from its machine's `snapshot` taken at `now`,
/// with `wall` the wall clock at that instant.
pub fn status_of(
    entry: &RegisterConfig,
    snapshot: &Snapshot,
    now: Instant,
    wall: OffsetDateTime,
) -> RegistrationStatus {
    let at = |instant: Instant| {
        let ahead = instant.saturating_duration_since(now);
        let behind = now.saturating_duration_since(instant);
        rfc3339(wall + ahead - behind)
    };
    let binding = snapshot.binding;
    let refresh_at = match snapshot.phase {
        Phase::Registered => binding.map(|b| at(b.refresh_at)),
        _ => None,
    };
    RegistrationStatus {
        registrar: entry.registrar.to_string(),
        user: entry.user.clone(),
        aor: entry.address_of_record(),
        contact: entry.contact_uri(),
        state: snapshot.phase.as_str().to_owned(),
        expires_s: binding.map(|b| b.granted.as_secs()),
        expires_at: binding.map(|b| at(b.expires_at)),
        refresh_at,
        next_attempt_at: snapshot.next_attempt.map(at),
        last_status: snapshot.last_status,
        last_error: snapshot.last_failure.as_ref().map(|f| f.reason.clone()),
        failures: snapshot.failures,
        requested_expires_s: snapshot.requested.as_secs(),
        updated_at: rfc3339(wall),
    }
}

impl RegistrationStatus {
    /// As seen at `wall` by another process: a binding past its expiry
    /// that its server never refreshed or removed is `expired`.
    pub fn as_seen_at(mut self, wall: OffsetDateTime) -> RegistrationStatus {
        let expired = self
            .expires_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .is_some_and(|at| at <= wall);
        if expired && matches!(self.state.as_str(), "registered" | "failing") {
            self.state = "expired".to_owned();
        }
        self
    }
}

/// Millisecond RFC 3339 UTC, as the rest of vmesh writes times.
fn rfc3339(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(&format).unwrap_or_else(|_| utc.to_string())
}

/// Writes `statuses` to the file in `data_dir`, atomically.
pub fn write(data_dir: &Path, statuses: &[RegistrationStatus]) -> Result<(), StatusError> {
    let path = data_dir.join(STATUS_FILE);
    let tmp = data_dir.join(format!("{STATUS_FILE}.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StatusError::Io { path, source }
    };
    let json = serde_json::to_vec_pretty(statuses).map_err(|source| StatusError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&tmp, json).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Reads the file in `data_dir`; no file means no registration was ever
/// started there.
pub fn read(data_dir: &Path) -> Result<Vec<RegistrationStatus>, StatusError> {
    let path = data_dir.join(STATUS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StatusError::Io { path, source }),
    };
    serde_json::from_slice(&bytes).map_err(|source| StatusError::Json { path, source })
}

/// Seconds from `wall` to an RFC 3339 time, for the CLI (negative when past).
pub fn seconds_until(at: &str, wall: OffsetDateTime) -> Option<i64> {
    let at = OffsetDateTime::parse(at, &Rfc3339).ok()?;
    Some((at - wall).whole_seconds())
}

/// A whole number of seconds as a short human text (`95 s`, `8 min`, `2 h`).
pub fn human(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Profile, ProfileOrigin};
    use crate::register::machine::Binding;

    fn entry() -> RegisterConfig {
        let text = "[[register]]\nregistrar = \"sip:127.0.0.9:5080\"\nuser = \"vm\"\n";
        Profile::parse(text, ProfileOrigin::Embedded)
            .unwrap()
            .register[0]
            .clone()
    }

    #[test]
    fn a_registered_binding_is_written_and_read_back_in_wall_time() {
        let now = Instant::now();
        let wall = OffsetDateTime::parse("2026-03-01T10:00:00.250Z", &Rfc3339).unwrap();
        let snapshot = Snapshot {
            phase: Phase::Registered,
            binding: Some(Binding {
                granted: Duration::from_secs(600),
                expires_at: now + Duration::from_secs(598),
                refresh_at: now + Duration::from_secs(478),
            }),
            next_attempt: None,
            last_status: Some(200),
            last_failure: None,
            failures: 0,
            requested: Duration::from_secs(600),
        };
        let status = status_of(&entry(), &snapshot, now, wall);
        assert_eq!(status.state, "registered");
        assert_eq!(
            status.expires_at.as_deref(),
            Some("2026-03-01T10:09:58.250Z")
        );
        assert_eq!(
            status.refresh_at.as_deref(),
            Some("2026-03-01T10:07:58.250Z")
        );
        assert_eq!(status.contact, "sip:vm@127.0.0.1:5060");
        assert_eq!(status.aor, "sip:vm@127.0.0.9");

        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), vec![]);
        write(dir.path(), std::slice::from_ref(&status)).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back, vec![status.clone()]);
        assert!(!dir.path().join("registrations.json.tmp").exists());

        // Seen after its expiry by the CLI, with no server refreshing it.
        let later = wall + Duration::from_secs(601);
        assert_eq!(status.clone().as_seen_at(later).state, "expired");
        assert_eq!(status.as_seen_at(wall).state, "registered");
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATUS_FILE), "{").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("registrations.json"), "{e}");
    }
}

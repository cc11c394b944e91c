//! Peer health as last observed by the mesh's OPTIONS pings, kept in the
//! index so that `vmesh peers` (a separate process) can show it and a
//! restarted server knows when each peer was last seen.
//!
//! The store keeps what it is given: the health state machine lives in the
//! mesh, and this is its persisted snapshot, one row per peer.

use rusqlite::{params, Row};
use serde::Serialize;

use super::error::StoreError;
use super::message::validate_peer;
use super::Store;

/// [`PeerRecord::state`]: not pinged successfully or unsuccessfully yet.
pub const PEER_UNKNOWN: &str = "unknown";
/// [`PeerRecord::state`]: answered its last ping.
pub const PEER_UP: &str = "up";
/// [`PeerRecord::state`]: failed enough consecutive pings to be down.
pub const PEER_DOWN: &str = "down";

/// The health of one peer; also the JSON shape of `vmesh peers --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerRecord {
    /// The peer's server name, as in the topology.
    pub name: String,
    /// [`PEER_UNKNOWN`], [`PEER_UP`] or [`PEER_DOWN`].
    pub state: String,
    /// When it last answered, RFC 3339 UTC.
    pub last_seen: Option<String>,
    /// Round-trip time of its last answered ping, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Consecutive failed pings (0 once it answers).
    pub failures: u32,
    /// Why the last ping failed, if the last one did.
    pub last_error: Option<String>,
    /// When this record was written, RFC 3339 UTC.
    pub updated_at: String,
}

fn peer_from_row(row: &Row<'_>) -> rusqlite::Result<PeerRecord> {
    let failures: i64 = row.get(4)?;
    Ok(PeerRecord {
        name: row.get(0)?,
        state: row.get(1)?,
        last_seen: row.get(2)?,
        rtt_ms: row.get(3)?,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_error: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

impl Store {
    /// Writes a peer's record, replacing the previous one of that name.
    pub fn save_peer(&self, peer: &PeerRecord) -> Result<(), StoreError> {
        validate_peer(&peer.name)?;
        let conn = self.lock();
        conn.execute(
            "INSERT INTO peers (name, state, last_seen, rtt_ms, failures, last_error, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, \
             last_seen = excluded.last_seen, rtt_ms = excluded.rtt_ms, \
             failures = excluded.failures, last_error = excluded.last_error, \
             updated_at = excluded.updated_at",
            params![
                peer.name,
                peer.state,
                peer.last_seen,
                peer.rtt_ms,
                peer.failures,
                peer.last_error,
                peer.updated_at
            ],
        )
        .map_err(self.db_err(format!("save peer {}", peer.name)))?;
        Ok(())
    }

    /// Every peer record, by name.
    pub fn peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        let conn = self.lock();
        let read = || -> rusqlite::Result<Vec<PeerRecord>> {
            let mut stmt = conn.prepare(
                "SELECT name, state, last_seen, rtt_ms, failures, last_error, updated_at \
                 FROM peers ORDER BY name",
            )?;
            let rows = stmt.query_map([], peer_from_row)?;
            rows.collect()
        };
        read().map_err(self.db_err("list peers".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, state: &str, failures: u32) -> PeerRecord {
        PeerRecord {
            name: name.into(),
            state: state.into(),
            last_seen: Some("2024-05-01T10:00:00.000Z".into()),
            rtt_ms: Some(1.25),
            failures,
            last_error: None,
            updated_at: "2024-05-01T10:00:01.000Z".into(),
        }
    }

    #[test]
    fn save_peer_upserts_and_lists_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.peers().unwrap().is_empty());
        store.save_peer(&record("site-c", PEER_UP, 0)).unwrap();
        store.save_peer(&record("site-b", PEER_UP, 0)).unwrap();
        let mut down = record("site-b", PEER_DOWN, 3);
        down.rtt_ms = None;
        down.last_error = Some("timeout".into());
        store.save_peer(&down).unwrap();
        assert_eq!(
            store.peers().unwrap(),
            vec![down, record("site-c", PEER_UP, 0)]
        );
        // Survives a reopen (another process, such as the CLI, reads it).
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.peers().unwrap().len(), 2);
    }

    #[test]
    fn save_peer_refuses_a_bad_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store.save_peer(&record("a b", PEER_UP, 0)),
            Err(StoreError::InvalidPeer { .. })
        ));
    }
}

//! Purging deleted messages once their retention has passed.
//!
//! A deleted message stays restorable for `storage.deleted_retention_days`;
//! a sweep at start-up and then every hour purges those deleted longer ago
//! (files and rows, leaving tombstones: see `store::tombstone`). The sweep
//! runs on a blocking thread, so a large purge never holds up calls.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{now_unix_ms, Store};

/// How often deleted messages past their retention are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Sweeps now, then every hour, until `shutdown`.
pub async fn purge_deleted(store: Arc<Store>, retention: Duration, shutdown: CancellationToken) {
    loop {
        let (now_ms, _) = now_unix_ms();
        let cutoff =
            now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.purge_deleted(cutoff)).await {
            Ok(Ok(ids)) if !ids.is_empty() => {
                info!(
                    count = ids.len(),
                    "purged deleted messages past their retention"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot purge deleted messages"),
            Err(e) => warn!(error = %e, "purge task failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
        }
    }
}

//! `vmesh serve`: run the server until SIGINT or SIGTERM.

use std::path::Path;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::CliError;
use crate::config::Profile;
use crate::voicemail::Server;

pub fn run(profile: Option<&Path>) -> Result<(), CliError> {
    let profile = match profile {
        Some(path) => Profile::load(path)?,
        None => Profile::embedded_default(),
    };
    crate::voicemail::capacity::raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async move {
        let server = Server::start(profile).await?;
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        let mut term = signal(SignalKind::terminate()).map_err(CliError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(CliError::Runtime)?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM"),
                _ = int.recv() => info!("SIGINT"),
            }
            on_signal.cancel();
        });
        // On a worker thread, not this one (block_on's): the dispatch loop
        // then wakes on the thread that queued the request instead of
        // being handed every request across threads.
        if let Err(e) = tokio::spawn(server.run(stop)).await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        Ok::<(), CliError>(())
    })?;
    // Everything is stored and answered by now; do not wait for the
    // stack's background tasks to notice the shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}

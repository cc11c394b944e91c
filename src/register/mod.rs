//! Registration with PBXs: vmesh as a registered user (RFC 3261 §10).
//!
//! A PBX that routes calls to registered users (Asterisk endpoints with an
//! AOR, FreeSWITCH users, Kamailio's `lookup()`) reaches vmesh at the
//! Contact vmesh registers. Each `[[register]]` entry of the profile
//! becomes a [`machine::Registration`], a sans-IO state machine that
//! decides when to REGISTER, how to answer a digest challenge
//! ([`authorizer`], with `crate::sip::digest`), how long to wait after a
//! failure ([`backoff`]) and when to refresh, and reports its state
//! ([`snapshot`]); [`answer`] reads the registrar's responses for it and
//! [`request`] writes its REGISTERs. A [`client::Client`] task per entry
//! drives it over the SIP stack, and
//! [`status`] keeps `registrations.json` in the data directory up to date
//! for `vmesh registrations`.
//!
//! [`Registrations`] starts them all with the server and, when the server
//! stops, waits (bounded) until each has unregistered. Calls that arrive
//! through a registered Contact need nothing from here: they are INVITEs
//! like any other, and the mailbox is found the usual way.

pub mod answer;
pub mod authorizer;
pub mod backoff;
pub mod client;
pub mod machine;
pub mod request;
pub mod snapshot;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{warn, Instrument};

use crate::config::Profile;
use crate::sip::SipStack;
use authorizer::Authorizer;
use client::{Client, UNREGISTER_TIMEOUT};
use machine::{Registration, Settings};
use status::{status_of, RegistrationStatus};

/// How long a stopping server waits for its registrations to be removed:
/// one un-REGISTER, answered after one challenge at most.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2 * UNREGISTER_TIMEOUT.as_secs() + 1);

/// The registrations of a running server.
pub struct Registrations {
    tasks: TaskTracker,
    /// Cancelled once every client has ended: the writer's last write.
    done: CancellationToken,
    writer: JoinHandle<()>,
}

impl Registrations {
    /// Starts one client per `[[register]]` entry of `profile`; each
    /// registers at once and unregisters when `stop` is cancelled. The
    /// status file is rewritten at once, so a previous run's states never
    /// show as current.
    pub fn start(profile: &Profile, sip: Arc<SipStack>, stop: CancellationToken) -> Registrations {
        let now = Instant::now();
        let wall = time::OffsetDateTime::now_utc();
        let mut machines = Vec::new();
        let mut statuses = Vec::new();
        for entry in &profile.register {
            let uri = rsipstack::sip::Uri::try_from(request::request_uri(entry).as_str())
                .map(|u| u.to_string())
                .unwrap_or_else(|_| request::request_uri(entry));
            let authorizer = entry
                .password
                .clone()
                .map(|password| Authorizer::new(&entry.auth_user, password, &uri));
            let machine = Registration::new(Settings {
                expires: entry.expires,
                authorizer,
                seed: rand::random(),
            });
            statuses.push(status_of(entry, &machine.snapshot(), now, wall));
            machines.push(machine);
        }
        let (board, receiver) = watch::channel(statuses);
        let board = Arc::new(board);
        let done = CancellationToken::new();
        let writer = tokio::spawn(write_statuses(
            receiver,
            profile.server.data_dir.clone(),
            done.clone(),
        ));
        let tasks = TaskTracker::new();
        for (index, (entry, machine)) in profile.register.iter().zip(machines).enumerate() {
            let span =
                tracing::info_span!("register", user = %entry.user, registrar = %entry.registrar);
            match Client::new(
                entry.clone(),
                index,
                sip.clone(),
                board.clone(),
                &profile.sip.user_agent,
            ) {
                Ok(client) => {
                    tasks.spawn(client.run(machine, stop.clone()).instrument(span));
                }
                Err(e) => span.in_scope(|| warn!(error = %e, "cannot register")),
            }
        }
        tasks.close();
        Registrations {
            tasks,
            done,
            writer,
        }
    }

    /// Waits until every registration has been removed (the server was
    /// told to stop), at most [`SHUTDOWN_GRACE`], and the last states are
    /// written.
    pub async fn finished(self) {
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            warn!("registrations were not all removed in time");
        }
        self.done.cancel();
        self.writer.await.ok();
    }
}

/// Writes the board to the status file whenever it changes, and once more
/// when `done` is cancelled (the latest states, whether or not the writer
/// saw them change: the clients may be gone by then).
async fn write_statuses(
    mut board: watch::Receiver<Vec<RegistrationStatus>>,
    data_dir: PathBuf,
    done: CancellationToken,
) {
    loop {
        let statuses = board.borrow_and_update().clone();
        write_file(&data_dir, statuses).await;
        tokio::select! {
            changed = board.changed() => if changed.is_err() { return },
            _ = done.cancelled() => {
                let statuses = board.borrow_and_update().clone();
                write_file(&data_dir, statuses).await;
                return;
            }
        }
    }
}

async fn write_file(data_dir: &std::path::Path, statuses: Vec<RegistrationStatus>) {
    let dir = data_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || status::write(&dir, &statuses)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "cannot write the registrations status"),
        Err(e) => warn!(error = %e, "registrations status writer failed"),
    }
}

//! The REGISTER client of one `[[register]]` entry: the thin tokio layer
//! around [`Registration`].
//!
//! It sends what the machine asks for as an rsipstack client transaction
//! (RFC 3261 §17.1.2: retransmitted on UDP by Timer E, bounded by Timer F)
//! from vmesh's own listen socket, so the registrar sees the address the
//! Contact names: on UDP the listen socket itself, on TCP a connection
//! opened from the listen address and read by our own loop (it stays open
//! between refreshes and is opened again when it breaks). Answers come
//! back through the SIP stack's receive loops to the transaction. It
//! sleeps until the machine's next deadline, and when the server stops it
//! abandons whatever is in flight and sends the un-REGISTER, bounded by
//! [`UNREGISTER_TIMEOUT`] so shutdown never waits on a dead registrar.
//!
//! Every change is logged once, in the registration's span (user and
//! registrar), and published to the status board that `status.rs` writes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::sip::{SipMessage, StatusCodeKind, Transport, Uri};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::answer::answer_of;
use super::backoff::FailureKind;
use super::machine::{Phase, Registration, Snapshot};
use super::request::{register_request, Identifiers};
use super::status::{human, status_of, RegistrationStatus};
use crate::config::{ListenTransport, RegisterConfig, RegistrarHost};
use crate::sip::SipStack;

/// How long a REGISTER may wait for its final response: 64*T1, Timer F
/// (RFC 3261 §17.1.2.2).
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(32);

/// How long the un-REGISTER of a stopping server may wait for its answer.
pub const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(4);

/// The statuses of every registration, by entry index.
pub type Board = watch::Sender<Vec<RegistrationStatus>>;

/// One registration's client.
pub struct Client {
    entry: RegisterConfig,
    index: usize,
    sip: Arc<SipStack>,
    board: Arc<Board>,
    /// One Call-ID for every REGISTER of this run (RFC 3261 §10.2.4).
    call_id: String,
    /// The Contact as a URI, to find our binding in a 2xx.
    contact: Uri,
    /// The User-Agent header value.
    user_agent: String,
    /// The open TCP connection to the next hop, and its close signal.
    stream: Option<(SipConnection, CancellationToken)>,
}

impl Client {
    /// A client for entry `index`, publishing to `board`.
    pub fn new(
        entry: RegisterConfig,
        index: usize,
        sip: Arc<SipStack>,
        board: Arc<Board>,
        user_agent: &str,
    ) -> Result<Client, String> {
        let contact = Uri::try_from(entry.contact_uri().as_str())
            .map_err(|e| format!("bad Contact {}: {e}", entry.contact_uri()))?;
        let call_id = format!("{}@{}", uuid::Uuid::new_v4(), entry.contact_ip);
        Ok(Client {
            entry,
            index,
            sip,
            board,
            call_id,
            contact,
            user_agent: user_agent.to_owned(),
            stream: None,
        })
    }

    /// Registers, keeps the registration alive, and unregisters once
    /// `stop` is cancelled; returns when unregistered.
    pub async fn run(mut self, mut machine: Registration, stop: CancellationToken) {
        let mut stopping = false;
        let mut last = machine.snapshot();
        while !machine.is_finished() {
            if let Some(register) = machine.poll_transmit(Instant::now()) {
                let timeout = if stopping {
                    UNREGISTER_TIMEOUT
                } else {
                    TRANSACTION_TIMEOUT
                };
                let outcome = tokio::select! {
                    outcome = self.exchange(&register, timeout) => Some(outcome),
                    _ = stop.cancelled(), if !stopping => None,
                };
                let now = Instant::now();
                match outcome {
                    None => {
                        stopping = true;
                        machine.shutdown();
                    }
                    Some(Ok(response)) => {
                        let answer =
                            answer_of(&response, register.cseq, &self.contact, register.expires);
                        machine.on_response(&answer, now);
                    }
                    Some(Err(why)) => machine.on_transport_failure(&why, now),
                }
            } else {
                let wake = machine.poll_timeout();
                tokio::select! {
                    _ = sleep_until(wake) => machine.handle_timeout(Instant::now()),
                    _ = stop.cancelled(), if !stopping => {
                        stopping = true;
                        machine.shutdown();
                    }
                }
            }
            last = self.report(&last, machine.snapshot());
        }
        if let Some((_, token)) = self.stream.take() {
            token.cancel();
        }
    }

    /// Sends one REGISTER and waits up to `timeout` for its final response.
    async fn exchange(
        &mut self,
        register: &super::machine::Register,
        timeout: Duration,
    ) -> Result<rsipstack::sip::Response, String> {
        let remote = self.resolve().await?;
        let (connection, closed) = self.connection(remote).await?;
        let ids = Identifiers {
            call_id: &self.call_id,
            from_tag: &uuid::Uuid::new_v4().simple().to_string()[..16],
            branch: &format!("z9hG4bK{}", uuid::Uuid::new_v4().simple()),
            user_agent: &self.user_agent,
        };
        let request = register_request(&self.entry, register, &ids)?;
        let key = TransactionKey::from_request(&request, TransactionRole::Client)
            .map_err(|e| format!("cannot build the transaction: {e}"))?;
        let endpoint = self.sip.endpoint.inner.clone();
        let mut tx = Transaction::new_client(key, request, endpoint, Some(connection));
        tx.destination = Some(SipAddr {
            r#type: Some(transport_of(self.entry.local.transport)),
            addr: remote.into(),
        });
        tx.send()
            .await
            .map_err(|e| format!("cannot send to {remote}: {e}"))?;
        let wait = async {
            loop {
                let message = tokio::select! {
                    m = tx.receive() => m,
                    _ = closed.cancelled() => return Err(format!("connection to {remote} lost")),
                };
                match message {
                    Some(SipMessage::Response(r))
                        if r.status_code.kind() != StatusCodeKind::Provisional =>
                    {
                        return Ok(r)
                    }
                    Some(_) => {}
                    None => return Err(format!("no final response from {remote}")),
                }
            }
        };
        let result = match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no response from {remote} within {} s",
                timeout.as_secs()
            )),
        };
        if result.is_err() {
            self.drop_stream();
        }
        result
    }

    /// The next hop's address: an IP as written, or the name's first
    /// address of the listen socket's family (A/AAAA, no SRV).
    async fn resolve(&self) -> Result<SocketAddr, String> {
        let hop = self.entry.next_hop();
        let port = hop.port_or_default();
        match &hop.host {
            RegistrarHost::Ip(ip) => Ok(SocketAddr::new(*ip, port)),
            RegistrarHost::Name(name) => {
                let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
                    .await
                    .map_err(|e| format!("cannot resolve {name}: {e}"))?
                    .collect();
                let v4 = self.entry.local.addr.is_ipv4();
                found
                    .iter()
                    .find(|a| a.is_ipv4() == v4)
                    .or(found.first())
                    .copied()
                    .ok_or_else(|| format!("{name} has no address"))
            }
        }
    }

    /// The connection REGISTERs leave on, and a token cancelled when it
    /// closes (never, for UDP).
    async fn connection(
        &mut self,
        remote: SocketAddr,
    ) -> Result<(SipConnection, CancellationToken), String> {
        let local = self.entry.local.addr;
        match self.entry.local.transport {
            ListenTransport::Udp => {
                let socket = self
                    .sip
                    .udp
                    .iter()
                    .find(|c| c.get_addr().get_socketaddr().ok() == Some(local))
                    .cloned()
                    .ok_or_else(|| format!("no UDP socket on {local}"))?;
                Ok((socket, CancellationToken::new()))
            }
            // The profile refuses TLS registrars until vmesh has a TLS
            // transport; this is the same refusal, should one get here.
            ListenTransport::Tls => Err("registering over TLS is not supported yet".to_owned()),
            ListenTransport::Tcp => {
                if let Some((connection, token)) = &self.stream {
                    if !token.is_cancelled() {
                        return Ok((connection.clone(), token.clone()));
                    }
                }
                let token = CancellationToken::new();
                let connection = self
                    .sip
                    .connect_tcp(local.ip(), remote, token.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                self.stream = Some((connection.clone(), token.clone()));
                Ok((connection, token))
            }
        }
    }

    /// Closes the TCP connection after a failure, so the next REGISTER
    /// opens a new one.
    fn drop_stream(&mut self) {
        if let Some((_, token)) = self.stream.take() {
            token.cancel();
        }
    }

    /// Logs what changed since `before` and publishes the new status.
    fn report(&self, before: &Snapshot, now: Snapshot) -> Snapshot {
        if now == *before {
            return now;
        }
        let at = Instant::now();
        match now.phase {
            Phase::Registered if before.phase != Phase::Registered => {
                let granted = now.binding.map(|b| b.granted.as_secs());
                info!(granted_s = granted, contact = %self.entry.contact_uri(), "registered");
            }
            Phase::Registered if now.binding != before.binding => {
                debug!(
                    granted_s = now.binding.map(|b| b.granted.as_secs()),
                    "refreshed"
                );
            }
            Phase::Failing
                if now.last_failure != before.last_failure
                    || now.next_attempt != before.next_attempt =>
            {
                let retry = now
                    .next_attempt
                    .map(|n| human(n.saturating_duration_since(at)))
                    .unwrap_or_default();
                let reason = now
                    .last_failure
                    .as_ref()
                    .map(|f| f.reason.as_str())
                    .unwrap_or("");
                let still_bound = now.binding.is_some();
                match now.last_failure.as_ref().map(|f| f.kind) {
                    Some(FailureKind::Rejected) => warn!(
                        %reason, %retry, still_bound,
                        "registration refused by the registrar; check the user and password at the PBX (retrying slowly)"
                    ),
                    _ => warn!(%reason, %retry, still_bound, "registration failed; retrying"),
                }
            }
            Phase::Unregistered if before.phase != Phase::Unregistering => {
                info!("stopped; no binding to remove")
            }
            Phase::Unregistered => match &now.last_failure {
                Some(f) => warn!(reason = %f.reason, "could not unregister"),
                None => info!("unregistered"),
            },
            _ => {}
        }
        if now.requested != before.requested {
            info!(
                expires_s = now.requested.as_secs(),
                "the registrar asked for a longer registration (423 Min-Expires)"
            );
        }
        let status = status_of(&self.entry, &now, at, time::OffsetDateTime::now_utc());
        self.board
            .send_if_modified(|statuses| match statuses.get_mut(self.index) {
                Some(slot) if *slot != status => {
                    *slot = status;
                    true
                }
                _ => false,
            });
        now
    }
}

/// rsipstack's name of a transport.
fn transport_of(transport: ListenTransport) -> Transport {
    match transport {
        ListenTransport::Udp => Transport::Udp,
        ListenTransport::Tcp => Transport::Tcp,
        ListenTransport::Tls => Transport::Tls,
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

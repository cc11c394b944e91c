//! One peer's SIP connection: requests out, final responses back.
//!
//! Every request to a peer (OPTIONS pings, MESSAGE transfers) goes over one
//! connection from our own address, opened on first use and again after it
//! breaks, so that messages to one peer share a connection: mutual TLS
//! (the peer's certificate must name it; ours names us), or plain TCP to a
//! peer the topology marks `insecure` (which knows us by our address). Each
//! request is an rsipstack client transaction (RFC 3261 §17.1.2; on a
//! stream nothing is retransmitted). The caller's timeout bounds all of it,
//! connecting and the TLS handshake included, so a peer whose packets are
//! silently dropped costs a request its timeout and no more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::sip::{Header, Method, Response, SipMessage, StatusCodeKind, Transport, Uri};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipConnection;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::sip::{request, SipStack};

/// Why a request to a peer got no final response.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("request could not be built: {0}")]
    Build(String),
    #[error("no final response within {0:?}")]
    Timeout(Duration),
    #[error("connection lost")]
    Closed,
}

/// The way to one peer.
pub struct PeerLink {
    sip: Arc<SipStack>,
    /// The peer's topology name, which its certificate must hold.
    name: String,
    /// Reached by TLS (else plain TCP: an insecure peer).
    tls: bool,
    /// The peer's SIP URI from the topology (Request-URI and To).
    uri: Uri,
    remote: SocketAddr,
    /// Our own topology address: where connections come from, and our Via.
    local: SocketAddr,
    /// Our server name, the user part of From.
    local_name: String,
    open: Mutex<Option<(SipConnection, CancellationToken)>>,
    shutdown: CancellationToken,
}

impl PeerLink {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sip: Arc<SipStack>,
        name: &str,
        tls: bool,
        uri: &str,
        remote: SocketAddr,
        local: SocketAddr,
        local_name: &str,
        shutdown: CancellationToken,
    ) -> Result<PeerLink, LinkError> {
        let uri = Uri::try_from(uri).map_err(|e| LinkError::Build(e.to_string()))?;
        Ok(PeerLink {
            sip,
            name: name.to_string(),
            tls,
            uri,
            remote,
            local,
            local_name: local_name.to_string(),
            open: Mutex::new(None),
            shutdown,
        })
    }

    /// The live connection, or a new one, with the token that is cancelled
    /// when it closes.
    async fn connection(&self) -> Result<(SipConnection, CancellationToken), LinkError> {
        let mut open = self.open.lock().await;
        if let Some((conn, token)) = open.as_ref() {
            if !token.is_cancelled() {
                return Ok((conn.clone(), token.clone()));
            }
        }
        let token = self.shutdown.child_token();
        let conn = self
            .sip
            .connect_peer(
                self.local.ip(),
                &self.name,
                self.remote,
                self.tls,
                token.clone(),
            )
            .await
            .map_err(|e| {
                token.cancel();
                LinkError::Connect(e.to_string())
            })?;
        *open = Some((conn.clone(), token.clone()));
        Ok((conn, token))
    }

    /// Drops the connection, e.g. after a request on it timed out.
    pub async fn reset(&self) {
        if let Some((_, token)) = self.open.lock().await.take() {
            token.cancel();
        }
    }

    /// Sends one request and waits for its final response, all of it
    /// (connecting, the TLS handshake, sending, waiting) within `timeout`.
    pub async fn request(
        &self,
        method: Method,
        headers: Vec<Header>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Response, LinkError> {
        match tokio::time::timeout(timeout, self.exchange(method, headers, body)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection may be half-open or its handshake stuck:
                // the next request starts afresh.
                self.reset().await;
                Err(LinkError::Timeout(timeout))
            }
        }
    }

    async fn exchange(
        &self,
        method: Method,
        headers: Vec<Header>,
        body: Vec<u8>,
    ) -> Result<Response, LinkError> {
        let (connection, closed) = self.connection().await?;
        let endpoint = self.sip.endpoint.inner.clone();
        let transport = if self.tls {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let mut req = request::out_of_dialog(
            &endpoint,
            method,
            self.uri.clone(),
            &self.local_name,
            self.local,
            transport,
        )
        .map_err(|e| LinkError::Build(e.to_string()))?;
        req.headers.extend(headers);
        req.body = body;
        let key = TransactionKey::from_request(&req, TransactionRole::Client)
            .map_err(|e| LinkError::Build(e.to_string()))?;
        let mut tx = Transaction::new_client(key, req, endpoint, Some(connection));
        tx.send().await.map_err(|_| LinkError::Closed)?;
        loop {
            // A closed connection can carry no answer: report it at once
            // instead of waiting for Timer F (RFC 3261 §17.1.4).
            let message = tokio::select! {
                m = tx.receive() => m,
                _ = closed.cancelled() => return Err(LinkError::Closed),
            };
            match message {
                Some(SipMessage::Response(r))
                    if r.status_code.kind() != StatusCodeKind::Provisional =>
                {
                    return Ok(r)
                }
                Some(_) => {}
                None => return Err(LinkError::Closed),
            }
        }
    }
}

//! Sending one NOTIFY as an RFC 3261 client transaction and reporting how
//! it ended.
//!
//! The transaction is rsipstack's: on UDP it retransmits the request on
//! Timer E and gives up on Timer F (64*T1, reported as a local 408), on
//! TCP it sends once (§17.1.2.2). A NOTIFY leaves from the socket the
//! subscription came in on (so a subscriber behind a proxy sees the
//! address it talked to), or for unsolicited NOTIFYs from the first UDP
//! listener; TCP NOTIFYs go over a connection of ours to the next hop,
//! reused while it stays open.
//!
//! A 401 or 407 to an unsolicited NOTIFY is answered once with the
//! `[mwi]` credentials, by rsipstack's client digest
//! (`dialog::authenticate`: MD5 and SHA-256, qop=auth), as a new
//! transaction with the next CSeq; a second challenge (other than a stale
//! nonce) means the credentials were refused. A challenge inside a
//! subscription's dialog is not answered: the subscriber itself asked for
//! the subscription, and the CSeq of its dialog is not ours to skip.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::{handle_client_authenticate, AuthRetry, Credential};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Request, SipMessage, StatusCode, StatusCodeKind, Transport};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::delivery::NotifyOutcome;
use super::request::NextHop;
use crate::config::DigestCredentials;
use crate::sip::SipStack;

/// Longest wait for a NOTIFY's final answer, above Timer F (32 s), in
/// case the transaction layer never reports one.
const TRANSACTION_GUARD: Duration = Duration::from_secs(40);

/// Why a NOTIFY could not be put on the wire.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("no UDP listener to send from")]
    NoUdpSocket,
    #[error("cannot connect to {remote}: {reason}")]
    Connect { remote: SocketAddr, reason: String },
}

/// The way out for NOTIFYs.
pub struct Sender {
    sip: Arc<SipStack>,
    credentials: Option<Credential>,
    tcp: Mutex<HashMap<SocketAddr, (SipConnection, CancellationToken)>>,
    shutdown: CancellationToken,
}

/// A chosen path for one NOTIFY.
pub struct Path {
    /// The connection to send on.
    pub connection: SipConnection,
    /// Our address on it (Via and Contact).
    pub local: SocketAddr,
    /// The next hop's address.
    pub remote: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
}

impl Sender {
    /// A sender on `sip`; `credentials` answer challenges to unsolicited
    /// NOTIFYs.
    pub fn new(
        sip: Arc<SipStack>,
        credentials: Option<&DigestCredentials>,
        shutdown: CancellationToken,
    ) -> Sender {
        Sender {
            sip,
            credentials: credentials.map(|c| Credential {
                username: c.username.clone(),
                password: c.password.clone(),
                realm: None,
                auth_username: None,
            }),
            tcp: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// The transaction layer requests are built with.
    pub fn endpoint(&self) -> Arc<rsipstack::transaction::endpoint::EndpointInner> {
        self.sip.endpoint.inner.clone()
    }

    /// The address NOTIFYs leave from when nothing says otherwise: the
    /// first UDP listener.
    pub fn default_local(&self) -> Option<SocketAddr> {
        self.sip
            .udp
            .first()
            .and_then(|c| c.get_addr().get_socketaddr().ok())
    }

    /// Resolves `hop` and picks the connection to it, leaving from
    /// `local` (an address we listen on) when given.
    pub async fn path(&self, hop: &NextHop, local: Option<SocketAddr>) -> Result<Path, SendError> {
        let remote = resolve(hop).await?;
        match hop.transport {
            Transport::Tcp => {
                let local_ip = local
                    .or_else(|| self.default_local())
                    .map_or(unspecified(remote), |l| l.ip());
                let connection = self.tcp_to(local_ip, remote).await?;
                let local = connection
                    .get_addr()
                    .get_socketaddr()
                    .unwrap_or_else(|_| SocketAddr::new(local_ip, 0));
                Ok(Path {
                    connection,
                    local,
                    remote,
                    transport: Transport::Tcp,
                })
            }
            _ => {
                let sockets: Vec<(SipConnection, SocketAddr)> = self
                    .sip
                    .udp
                    .iter()
                    .filter_map(|c| c.get_addr().get_socketaddr().ok().map(|a| (c.clone(), a)))
                    .collect();
                let chosen = sockets
                    .iter()
                    .find(|(_, a)| Some(*a) == local)
                    .or_else(|| {
                        sockets
                            .iter()
                            .find(|(_, a)| a.is_ipv4() == remote.is_ipv4())
                    })
                    .or_else(|| sockets.first())
                    .cloned()
                    .ok_or(SendError::NoUdpSocket)?;
                Ok(Path {
                    connection: chosen.0,
                    local: chosen.1,
                    remote,
                    transport: Transport::Udp,
                })
            }
        }
    }

    /// A path on a stream connection the subscriber opened (its SUBSCRIBE
    /// came on it), when the next hop is reached over TCP: NOTIFYs then
    /// reach a subscriber that cannot be connected to (behind NAT, or a
    /// client that listens on no port), as RFC 5626 §5 describes.
    pub fn path_on(&self, connection: SipConnection, hop: &NextHop) -> Option<Path> {
        if hop.transport != Transport::Tcp || !connection.is_reliable() {
            return None;
        }
        let local = connection.get_addr().get_socketaddr().ok()?;
        let remote = connection.get_remote_addr()?.get_socketaddr().ok()?;
        Some(Path {
            connection,
            local,
            remote,
            transport: Transport::Tcp,
        })
    }

    /// Sends `request` on `path` and waits for its final answer.
    /// `answer_challenges`: whether a 401/407 is answered with the
    /// credentials (unsolicited NOTIFYs only).
    pub async fn send(
        &self,
        request: Request,
        path: Path,
        answer_challenges: bool,
    ) -> NotifyOutcome {
        let outcome = tokio::time::timeout(
            TRANSACTION_GUARD,
            self.transact(request, &path, answer_challenges),
        )
        .await
        .unwrap_or(NotifyOutcome::NoAnswer);
        if path.transport == Transport::Tcp && outcome != NotifyOutcome::Delivered {
            // A broken connection is not tried again: the next attempt
            // opens a new one.
            if let Some((_, token)) = self.tcp.lock().await.remove(&path.remote) {
                token.cancel();
            }
        }
        outcome
    }

    async fn transact(
        &self,
        request: Request,
        path: &Path,
        answer_challenges: bool,
    ) -> NotifyOutcome {
        let endpoint = self.sip.endpoint.inner.clone();
        let Ok(key) = TransactionKey::from_request(&request, TransactionRole::Client) else {
            return NotifyOutcome::Refused(400);
        };
        let seq = request.cseq_header().and_then(|c| c.seq()).unwrap_or(1);
        let mut tx = Transaction::new_client(key, request, endpoint, Some(path.connection.clone()));
        tx.destination = Some(SipAddr {
            r#type: Some(path.transport),
            addr: path.remote.into(),
        });
        if tx.send().await.is_err() {
            return NotifyOutcome::NoAnswer;
        }
        let mut challenges = AuthRetry::new();
        let mut seq = seq;
        loop {
            let Some(message) = tx.receive().await else {
                return NotifyOutcome::NoAnswer;
            };
            let SipMessage::Response(response) = message else {
                continue;
            };
            let status = response.status_code.clone();
            match status.kind() {
                StatusCodeKind::Provisional => continue,
                StatusCodeKind::Successful => return NotifyOutcome::Delivered,
                _ => {}
            }
            let challenged = matches!(
                status,
                StatusCode::Unauthorized | StatusCode::ProxyAuthenticationRequired
            );
            if let (true, true, Some(credential)) =
                (challenged, answer_challenges, self.credentials.as_ref())
            {
                if challenges.should_answer(&response) {
                    seq += 1;
                    match handle_client_authenticate(seq, &tx, response, credential).await {
                        Ok(mut next) => {
                            unquote_qop(&mut next.original);
                            if next.send().await.is_err() {
                                return NotifyOutcome::NoAnswer;
                            }
                            tx = next;
                            continue;
                        }
                        Err(e) => {
                            debug!(error = %e, "cannot answer the challenge");
                            return NotifyOutcome::Refused(u16::from(status));
                        }
                    }
                }
            }
            return NotifyOutcome::Refused(u16::from(status));
        }
    }

    /// A live TCP connection of ours to `remote`, opened if needed.
    async fn tcp_to(
        &self,
        local_ip: IpAddr,
        remote: SocketAddr,
    ) -> Result<SipConnection, SendError> {
        let mut open = self.tcp.lock().await;
        if let Some((connection, token)) = open.get(&remote) {
            if !token.is_cancelled() {
                return Ok(connection.clone());
            }
        }
        let token = self.shutdown.child_token();
        let connection = self
            .sip
            .connect_tcp(local_ip, remote, token.clone())
            .await
            .map_err(|e| SendError::Connect {
                remote,
                reason: e.to_string(),
            })?;
        open.insert(remote, (connection.clone(), token));
        Ok(connection)
    }
}

/// rsipstack writes the credentials' `qop` as a quoted string
/// (`qop="auth"`); RFC 2617 §3.2.2 and RFC 7616 §3.4 define it as a bare
/// token in Authorization (`qop=auth`), and strict servers refuse the
/// quoted form. The header is rewritten in place before it is sent.
fn unquote_qop(request: &mut Request) {
    for header in request.headers.iter_mut() {
        let value = match header {
            Header::Authorization(a) => a.value().to_string(),
            Header::ProxyAuthorization(a) => a.value().to_string(),
            _ => continue,
        };
        let fixed = value
            .replace("qop=\"auth-int\"", "qop=auth-int")
            .replace("qop=\"auth\"", "qop=auth");
        match header {
            Header::Authorization(_) => *header = Header::Authorization(fixed.into()),
            Header::ProxyAuthorization(_) => *header = Header::ProxyAuthorization(fixed.into()),
            _ => {}
        }
    }
}

/// The address of a next hop: its IP, or the first address its name
/// resolves to.
async fn resolve(hop: &NextHop) -> Result<SocketAddr, SendError> {
    if let Ok(ip) = hop.host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, hop.port));
    }
    let error = |reason: String| SendError::Resolve {
        host: hop.host.clone(),
        reason,
    };
    tokio::net::lookup_host((hop.host.as_str(), hop.port))
        .await
        .map_err(|e| error(e.to_string()))?
        .next()
        .ok_or_else(|| error("no address".into()))
}

fn unspecified(remote: SocketAddr) -> IpAddr {
    match remote {
        SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qop_is_sent_as_a_token() {
        let text = "NOTIFY sip:1001@192.0.2.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
                    From: <sip:vmesh@192.0.2.1>;tag=a\r\nTo: <sip:1001@192.0.2.5>\r\nCall-ID: c\r\n\
                    CSeq: 2 NOTIFY\r\nAuthorization: Digest username=\"vmesh\", realm=\"r\", \
                    nonce=\"n\", uri=\"sip:1001@192.0.2.5\", response=\"x\", qop=\"auth\", nc=00000001, \
                    cnonce=\"c\"\r\nContent-Length: 0\r\n\r\n";
        let mut request = Request::try_from(text).unwrap();
        unquote_qop(&mut request);
        let auth = request
            .headers
            .iter()
            .find_map(|h| match h {
                Header::Authorization(a) => Some(a.value().to_string()),
                _ => None,
            })
            .unwrap();
        assert!(auth.contains("qop=auth,"), "{auth}");
        assert!(auth.contains("realm=\"r\""), "{auth}");
    }
}

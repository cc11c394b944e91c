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
//! `[mwi]` credentials, by vmesh's digest client ([`crate::sip::digest`]:
//! MD5, SHA-256 and SHA-512-256, the first challenge it supports as RFC
//! 8760 §2.4 asks), as a new transaction with the next CSeq (RFC 3261
//! §22.2); a second challenge means the credentials were refused, unless
//! it is `stale=true` (a new nonce for right credentials, answered up to
//! twice). A challenge inside a subscription's dialog is not answered: the
//! subscriber itself asked for the subscription, and the CSeq of its
//! dialog is not ours to skip.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Param, Request, Response, SipMessage, StatusCodeKind, Transport};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_via_branch;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::delivery::NotifyOutcome;
use super::request::NextHop;
use crate::config::DigestCredentials;
use crate::sip::digest::{Challenge, ChallengeKind, Credentials, DigestRequest};
use crate::sip::SipStack;

/// Longest wait for a NOTIFY's final answer, above Timer F (32 s), in
/// case the transaction layer never reports one.
const TRANSACTION_GUARD: Duration = Duration::from_secs(40);

/// `stale=true` challenges answered after the first challenge of a NOTIFY.
const MAX_STALE_ANSWERS: u32 = 2;

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
    credentials: Option<DigestCredentials>,
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
            credentials: credentials.cloned(),
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
        let mut seq = request.cseq_header().and_then(|c| c.seq()).unwrap_or(1);
        let mut tx = Transaction::new_client(key, request, endpoint, Some(path.connection.clone()));
        tx.destination = Some(SipAddr {
            r#type: Some(path.transport),
            addr: path.remote.into(),
        });
        if tx.send().await.is_err() {
            return NotifyOutcome::NoAnswer;
        }
        let mut challenges_answered = 0;
        loop {
            let Some(message) = tx.receive().await else {
                return NotifyOutcome::NoAnswer;
            };
            let SipMessage::Response(response) = message else {
                continue;
            };
            let status = u16::from(response.status_code.clone());
            match response.status_code.kind() {
                StatusCodeKind::Provisional => continue,
                StatusCodeKind::Successful => return NotifyOutcome::Delivered,
                _ => {}
            }
            if !answer_challenges {
                return NotifyOutcome::Refused(status);
            }
            let Some(mut next) =
                self.answer_challenge(&tx, &response, challenges_answered, seq + 1)
            else {
                return NotifyOutcome::Refused(status);
            };
            challenges_answered += 1;
            seq += 1;
            if next.send().await.is_err() {
                return NotifyOutcome::NoAnswer;
            }
            tx = next;
        }
    }

    /// The transaction that answers the challenge in `response` to `tx`'s
    /// request with CSeq `cseq`, after `answered` challenges of this
    /// NOTIFY; `None` when it is not to be answered (no credentials, no
    /// challenge vmesh supports, or credentials already refused).
    fn answer_challenge(
        &self,
        tx: &Transaction,
        response: &Response,
        answered: u32,
        cseq: u32,
    ) -> Option<Transaction> {
        let credentials = self.credentials.as_ref()?;
        let (kind, challenge) = Challenge::of_response(response)
            .map_err(|e| {
                if ChallengeKind::of_status(response.status_code.code()).is_some() {
                    debug!(error = %e, "cannot answer the challenge");
                }
            })
            .ok()?;
        if answered > 0 && !(challenge.stale && answered <= MAX_STALE_ANSWERS) {
            return None;
        }
        let cnonce = format!("{:032x}", rand::rng().random::<u128>());
        let request = with_credentials(&tx.original, kind, &challenge, credentials, cseq, &cnonce)
            .map_err(|e| debug!(error = %e, "cannot answer the challenge"))
            .ok()?;
        let key = TransactionKey::from_request(&request, TransactionRole::Client).ok()?;
        let mut next = Transaction::new_client(
            key,
            request,
            self.sip.endpoint.inner.clone(),
            tx.connection.clone(),
        );
        next.destination = tx.destination.clone();
        Some(next)
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

/// `original` sent again as a new transaction answering `challenge`
/// (RFC 3261 §22.2): the next CSeq, a new Via branch, and the
/// credentials (Authorization for a 401, Proxy-Authorization for a 407)
/// as the first use of the challenge's nonce, with client nonce `cnonce`.
fn with_credentials(
    original: &Request,
    kind: ChallengeKind,
    challenge: &Challenge,
    credentials: &DigestCredentials,
    cseq: u32,
    cnonce: &str,
) -> Result<Request, rsipstack::sip::Error> {
    let mut request = original.clone();
    request.cseq_header_mut()?.mut_seq(cseq)?;
    let mut via = request.via_header()?.typed()?;
    via.params.retain(|p| !matches!(p, Param::Branch(_)));
    via.params.push(make_via_branch());
    request
        .headers
        .retain(|h| !matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_)));
    request.headers.unique_push(via.into());
    let uri = request.uri.to_string();
    let value = challenge.authorization(
        &Credentials {
            username: &credentials.username,
            password: credentials.password.expose(),
        },
        &DigestRequest {
            method: &request.method.to_string(),
            uri: &uri,
            body: &request.body,
        },
        1,
        cnonce,
    );
    request.headers.push(kind.answer_header(value));
    Ok(request)
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
    use crate::config::Password;

    fn notify() -> Request {
        let text = "NOTIFY sip:1001@192.0.2.5 SIP/2.0\r\n\
                    Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfirst;rport\r\n\
                    From: <sip:vmesh@192.0.2.1>;tag=a\r\nTo: <sip:1001@192.0.2.5>\r\n\
                    Call-ID: c\r\nCSeq: 1 NOTIFY\r\nEvent: message-summary\r\n\
                    Content-Type: application/simple-message-summary\r\n\
                    Content-Length: 22\r\n\r\nMessages-Waiting: yes\r\n";
        Request::try_from(text).unwrap()
    }

    fn credentials() -> DigestCredentials {
        DigestCredentials {
            username: "vmesh".into(),
            password: Password::new("s3cret"),
        }
    }

    fn header(request: &Request, name: &str) -> String {
        let text = request.to_string();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    #[test]
    fn a_sha_256_challenge_is_answered_as_registered_with_qop_a_token() {
        let challenge =
            Challenge::parse("Digest realm=\"pbx\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"")
                .unwrap();
        let next = with_credentials(
            &notify(),
            ChallengeKind::Www,
            &challenge,
            &credentials(),
            2,
            "c0ffee",
        )
        .unwrap();
        let auth = header(&next, "Authorization");
        assert!(auth.contains("algorithm=SHA-256,"), "{auth}");
        assert!(auth.contains("qop=auth, nc=00000001"), "{auth}");
        assert!(auth.contains("uri=\"sip:1001@192.0.2.5\""), "{auth}");
        // H(H(vmesh:pbx:s3cret):n1:00000001:c0ffee:auth:H(NOTIFY:sip:1001@192.0.2.5)),
        // computed with Python's hashlib.
        assert!(
            auth.contains(
                "response=\"01b0f93cccb713245ff1f6d1a34619214cba92822913668b7db518aa2a70a428\""
            ),
            "{auth}"
        );
        assert_eq!(header(&next, "CSeq"), "2 NOTIFY");
        assert_eq!(header(&next, "Call-ID"), "c");
        let via = header(&next, "Via");
        assert!(!via.contains("z9hG4bKfirst"), "a new transaction: {via}");
        assert!(via.contains("branch=z9hG4bK"), "{via}");
        assert_eq!(next.body, notify().body);
    }

    #[test]
    fn a_proxy_challenge_is_answered_with_proxy_authorization_once() {
        let challenge = Challenge::parse("Digest realm=\"p\", nonce=\"n2\"").unwrap();
        let first = with_credentials(
            &notify(),
            ChallengeKind::Proxy,
            &challenge,
            &credentials(),
            2,
            "c1",
        )
        .unwrap();
        let again = with_credentials(
            &first,
            ChallengeKind::Proxy,
            &challenge,
            &credentials(),
            3,
            "c2",
        )
        .unwrap();
        let text = again.to_string();
        assert_eq!(text.matches("Proxy-Authorization:").count(), 1, "{text}");
        assert!(!text.contains("\r\nAuthorization:"), "{text}");
        assert!(header(&again, "Proxy-Authorization").contains("algorithm=MD5"));
    }
}

//! One stream connection (TCP or TLS), whatever carries its bytes: the
//! receive loop that frames, checks and delivers what arrives (RFC 3261
//! §18.3), and the send loop that writes what the transaction layer and
//! the receive loop answer, each send under a deadline.
//!
//! Both TCP and TLS connections run here, generic over the stream type, so
//! they share one framer ([`crate::sip::framing`]), one set of limits and
//! one gate ([`crate::sip::gate`]). The connection's identity is known
//! before its first byte is read: it decides how large a message may be (a
//! transfer-sized MESSAGE only from an authenticated peer; anyone else is
//! held to `sip.max_message_bytes`) and how long one may take to arrive
//! (`sip.request_deadline_s` from its first byte, or the transfer timeout
//! for a peer).
//!
//! Sending does not go through rsipstack's stream connections, whose writes
//! have no timeout: a client that stops reading would block every task that
//! answers it, and through them the server. Instead the connection is
//! handed to rsipstack as a channel connection (`SipConnection::Channel`,
//! reliable, never retransmitted on), whose sends only queue the message;
//! this module's send loop writes the queue with a deadline per message and
//! closes the connection when one passes or when too much waits, so no
//! sender ever waits on a slow reader.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rsipstack::sip::Transport;
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::connection::TransportEvent;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::deliver;
use crate::sip::framing::{Frame, FramingError, StreamFramer};
use crate::sip::gate::Gate;
use crate::sip::identity::{Identities, Identity, Origin};
use crate::sip::inbound::{classify, Inbound, SizeLimits};
use crate::sip::malformed::error_response;
use crate::sip::SipError;

/// Every send gets at least this long.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// And this much longer per byte beyond: a send slower than 64 KiB/s is
/// given up (a 16 MiB transfer gets 266 s; the courier's own transfer
/// timeout usually ends it first).
const SEND_MIN_RATE: u64 = 64 * 1024;

/// Messages waiting to be written before the connection is given up, once
/// the reader holds up our writes: a reader this far behind is not
/// reading. A backlog while every write goes through at once is only this
/// side's send loop waiting for a CPU (a busy server), never a reason to
/// close.
const MAX_QUEUED: usize = 256;

/// What every stream connection of the endpoint shares.
pub struct StreamContext {
    pub endpoint: Arc<EndpointInner>,
    pub identities: Arc<Identities>,
    pub gate: Arc<Gate>,
    /// The limits for an authenticated peer (anyone else gets
    /// [`SizeLimits::unauthenticated`]).
    pub limits: SizeLimits,
    /// Close a connection after this long without a byte.
    pub idle_timeout: Duration,
    /// A request from anyone but a peer must be whole this long after its
    /// first byte.
    pub request_deadline: Duration,
    /// The same for a peer, whose transfers may be large.
    pub peer_request_deadline: Duration,
    /// The Server header of error responses.
    pub server: String,
}

/// A connected stream and what is known about it.
pub struct Connected<S> {
    pub stream: S,
    pub remote: SocketAddr,
    pub transport: Transport,
    pub identity: Identity,
}

/// Starts the receive and send loops of a connection and returns the
/// connection rsipstack sends on (an error only if rsipstack refuses it).
/// The loops end, and `cancel` is cancelled, when the connection closes for
/// any reason; cancelling `cancel` closes it.
pub async fn start<S>(
    context: Arc<StreamContext>,
    connected: Connected<S>,
    cancel: CancellationToken,
) -> Result<SipConnection, SipError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Connected {
        stream,
        remote,
        transport,
        identity,
    } = connected;
    let addr = SipAddr {
        r#type: Some(transport),
        addr: remote.into(),
    };
    let (events_tx, events_rx) = unbounded_channel();
    // rsipstack reads from `incoming` only in its own serve loop, which is
    // never started for these connections.
    let (_unused, incoming) = unbounded_channel();
    let channel = ChannelConnection::create_connection(
        incoming,
        events_tx,
        addr.clone(),
        Some(cancel.clone()),
    )
    .await;
    let connection = match channel {
        Ok(c) => SipConnection::Channel(c),
        Err(e) => {
            cancel.cancel();
            return Err(SipError::Stack(format!("connection to {remote}: {e}")));
        }
    };
    let (reader, writer) = tokio::io::split(stream);
    let (raw_tx, raw_rx) = unbounded_channel();
    tokio::spawn(send_loop(writer, events_rx, raw_rx, cancel.clone(), remote));
    let registration = context
        .identities
        .register(transport, remote, identity.clone());
    let receiver = ReceiveSide {
        context,
        connection: connection.clone(),
        raw: raw_tx,
        origin: Origin {
            source: Some(remote),
            transport,
            identity,
        },
    };
    tokio::spawn(async move {
        receiver.run(reader, cancel).await;
        drop(registration);
    });
    Ok(connection)
}

/// The deadline of one send of `len` bytes.
pub fn send_deadline(len: usize) -> Duration {
    SEND_TIMEOUT + Duration::from_secs(len as u64 / SEND_MIN_RATE)
}

/// Writes queued messages, each under its deadline, until the connection
/// closes.
async fn send_loop<W: AsyncWrite + Send>(
    writer: W,
    mut events: UnboundedReceiver<TransportEvent>,
    mut raw: UnboundedReceiver<Vec<u8>>,
    cancel: CancellationToken,
    remote: SocketAddr,
) {
    let mut writer = std::pin::pin!(writer);
    // Whether the last write had to wait for the reader (its socket buffer
    // was full).
    let mut held_up = false;
    loop {
        let bytes = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(bytes) = raw.recv() => bytes,
            event = events.recv() => match event {
                Some(TransportEvent::Incoming(message, _, _)) => message.to_bytes(),
                Some(_) => continue,
                None => break,
            },
        };
        if held_up && events.len() + raw.len() > MAX_QUEUED {
            info!(%remote, "more than {MAX_QUEUED} messages wait to be sent; closing the connection");
            break;
        }
        let write = async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        };
        let mut write = std::pin::pin!(write);
        // One poll first: a write that completes at once was not held up.
        let at_once = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        held_up = at_once.is_pending();
        let limit = send_deadline(bytes.len());
        let written = match at_once {
            Poll::Ready(result) => Ok(result),
            Poll::Pending => tokio::time::timeout(limit, write).await,
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(%remote, error = %e, "send failed; closing");
                break;
            }
            Err(_) => {
                info!(%remote, bytes = bytes.len(), ?limit, "send timed out (the other side does not read); closing");
                break;
            }
        }
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(1), writer.shutdown())
        .await
        .ok();
}

/// The receive side of one connection.
struct ReceiveSide {
    context: Arc<StreamContext>,
    connection: SipConnection,
    raw: UnboundedSender<Vec<u8>>,
    origin: Origin,
}

impl ReceiveSide {
    /// Frames and delivers what arrives until the connection ends.
    async fn run<R: AsyncRead + Send>(self, reader: R, cancel: CancellationToken) {
        let mut reader = std::pin::pin!(reader);
        let context = &self.context;
        let peer = self.origin.identity.peer().is_some();
        let (limits, deadline) = if peer {
            (context.limits, context.peer_request_deadline)
        } else {
            (context.limits.unauthenticated(), context.request_deadline)
        };
        let remote = self.origin.source;
        let mut framer = StreamFramer::new(limits, deadline);
        let mut chunk = vec![0u8; 16 * 1024];
        'read: loop {
            let pending = framer.deadline();
            let overdue = async {
                match pending {
                    Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            let read = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = overdue => {
                    info!(?remote, ?deadline, "request not complete within its deadline; closing");
                    break;
                }
                r = tokio::time::timeout(context.idle_timeout, reader.read(&mut chunk)) => r,
            };
            let n = match read {
                Err(_) => {
                    debug!(?remote, "connection idle; closing");
                    break;
                }
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    debug!(?remote, error = %e, "read error");
                    break;
                }
            };
            framer.push(
                chunk.get(..n).unwrap_or_default(),
                std::time::Instant::now(),
            );
            while let Some(frame) = framer.next_frame() {
                match frame {
                    Frame::Message(raw) => self.on_message(&raw, limits).await,
                    Frame::Ping => self.send_raw(b"\r\n".to_vec()),
                    Frame::Error { error, head } => {
                        debug!(?remote, %error, "framing error; closing");
                        let (status, reason) = match error {
                            FramingError::TooLarge { .. }
                            | FramingError::HeadersTooLarge { .. } => {
                                (413, "Request Entity Too Large")
                            }
                            FramingError::BadContentLength { .. } => (400, "Bad Request"),
                        };
                        let why = error.to_string();
                        if let Some(bytes) =
                            error_response(&head, status, reason, &why, &context.server, &[])
                        {
                            self.send_raw(bytes);
                        }
                        // Let the answer leave before the connection closes.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break 'read;
                    }
                }
            }
        }
        cancel.cancel();
    }

    async fn on_message(&self, raw: &[u8], limits: SizeLimits) {
        let context = &self.context;
        match classify(raw, limits, false, &context.server) {
            Inbound::Message(message) => {
                if let rsipstack::sip::SipMessage::Request(request) = message.as_ref() {
                    let now = std::time::Instant::now();
                    if let Some(why) = context.gate.check(&request.method, &self.origin, now) {
                        if let Some(bytes) =
                            error_response(raw, 403, "Forbidden", &why, &context.server, &[])
                        {
                            self.send_raw(bytes);
                        }
                        return;
                    }
                }
                let Some(remote) = self.origin.source else {
                    return;
                };
                let from = SipAddr {
                    r#type: Some(self.origin.transport),
                    addr: remote.into(),
                };
                deliver(
                    &context.endpoint,
                    *message,
                    self.connection.clone(),
                    &from,
                    self.origin.transport,
                )
                .await;
            }
            Inbound::Reply(bytes) => self.send_raw(bytes),
            Inbound::Ignore => debug!(remote = ?self.origin.source, "ignored stream message"),
        }
    }

    fn send_raw(&self, bytes: Vec<u8>) {
        // Fails only when the send loop has ended, i.e. the connection is
        // closing anyway.
        self.raw.send(bytes).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A send loop writing into a pipe of `capacity` bytes: its far end,
    /// the queue of raw messages and the connection's cancel token.
    fn send_loop_on_pipe(
        capacity: usize,
    ) -> (
        tokio::io::DuplexStream,
        UnboundedSender<Vec<u8>>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
        UnboundedSender<TransportEvent>,
    ) {
        let (ours, theirs) = tokio::io::duplex(capacity);
        let (events, events_rx) = unbounded_channel();
        let (raw, raw_rx) = unbounded_channel();
        let cancel = CancellationToken::new();
        let remote: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let task = tokio::spawn(send_loop(ours, events_rx, raw_rx, cancel.clone(), remote));
        (theirs, raw, cancel, task, events)
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_cut_off_at_the_send_deadline() {
        // A pipe holding 1 KiB whose far end never reads.
        let (_theirs, raw, cancel, task, _events) = send_loop_on_pipe(1024);
        let started = Instant::now();
        raw.send(vec![b'x'; 200 * 1024]).unwrap();
        cancel.cancelled().await;
        let waited = started.elapsed();
        assert_eq!(send_deadline(200 * 1024), Duration::from_secs(13));
        assert!(
            waited >= Duration::from_secs(13) && waited < Duration::from_secs(14),
            "closed after {waited:?}"
        );
        task.await.unwrap();
        // Nothing more can be queued for writing.
        assert!(raw.send(vec![b'y']).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_keeps_up_is_never_cut_off() {
        let (mut theirs, raw, cancel, _task, _events) = send_loop_on_pipe(1024);
        for _ in 0..50 {
            raw.send(vec![b'x'; 4096]).unwrap();
        }
        let mut got = vec![0u8; 50 * 4096];
        theirs.read_exact(&mut got).await.unwrap();
        assert!(!cancel.is_cancelled());
    }

    /// A backlog that piled up while the send loop had no CPU (here: all
    /// queued before it first runs) is written out, not taken for a reader
    /// that stopped reading.
    #[tokio::test(start_paused = true)]
    async fn a_backlog_the_socket_takes_at_once_is_written_not_cut_off() {
        // The loop's task first runs when this test awaits.
        let (mut theirs, raw, cancel, _task, _events) = send_loop_on_pipe(1 << 20);
        let count = MAX_QUEUED * 2;
        for i in 0..count {
            raw.send(vec![(i % 251) as u8; 500]).unwrap();
        }
        let mut got = vec![0u8; count * 500];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(got[(count - 1) * 500], ((count - 1) % 251) as u8);
        assert!(!cancel.is_cancelled());
    }

    /// Once the reader holds up the writes, a backlog past the bound
    /// closes the connection well before the send deadline.
    #[tokio::test(start_paused = true)]
    async fn a_backlog_behind_a_reader_that_holds_up_the_writes_closes() {
        let (mut theirs, raw, cancel, _task, _events) = send_loop_on_pipe(1024);
        for _ in 0..MAX_QUEUED + 10 {
            raw.send(vec![b'x'; 600]).unwrap();
        }
        let started = Instant::now();
        // The reader takes a little now and then, far slower than the queue.
        let reader = async {
            let mut chunk = [0u8; 700];
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if theirs.read(&mut chunk).await.unwrap_or(0) == 0 {
                    break;
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = reader => {}
        }
        assert!(cancel.is_cancelled());
        assert!(
            started.elapsed() < SEND_TIMEOUT,
            "closed after {:?}",
            started.elapsed()
        );
    }
}

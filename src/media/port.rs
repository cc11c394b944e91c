//! The thin async shell around [`CallMedia`]: the call's sockets, one
//! timer, and nothing else.
//!
//! [`MediaPort::poll_input`] waits for whichever comes first: a datagram
//! on the RTP port, one on the RTCP port, or the deadline the core asked
//! for ([`CallMedia::poll_timeout`]). It is a plain poll function, so the
//! session puts it in its one flat `select!` beside the dialog's events
//! (see `voicemail::session`). [`MediaPort::feed`] hands the input to the
//! core with the current time and [`MediaPort::transmit`] sends whatever
//! the core has due. The timer is one pinned `Sleep`, reset only when the
//! deadline moves, so a wake-up costs no timer allocation.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::ReadBuf;
use tokio::time::Sleep;
use tracing::debug;

use super::call_media::{CallMedia, Channel};
use super::socket::RtpSocket;

/// One receive buffer per call: larger than any RTP packet on a 1500-byte
/// MTU, and small enough for 1,000 calls to cost 2 MB.
const RECV_BUFFER: usize = 2048;

/// What woke the call's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A datagram of `len` bytes (in the port's buffer) from `from`.
    Datagram {
        /// The port it arrived on.
        channel: Channel,
        /// Its source.
        from: std::net::SocketAddr,
        /// Its length.
        len: usize,
    },
    /// The core's deadline passed.
    Timeout,
}

/// The sockets and timer of one call's media.
pub struct MediaPort {
    socket: RtpSocket,
    buf: Box<[u8]>,
    out: Vec<u8>,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    send_errors: u64,
}

impl MediaPort {
    /// A port on the call's sockets.
    pub fn new(socket: RtpSocket) -> MediaPort {
        MediaPort {
            socket,
            buf: vec![0; RECV_BUFFER].into_boxed_slice(),
            out: Vec::with_capacity(RECV_BUFFER),
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            armed: None,
            send_errors: 0,
        }
    }

    /// The sockets.
    pub fn socket(&self) -> &RtpSocket {
        &self.socket
    }

    /// Sets the timer to the core's next deadline (none: no timer).
    pub fn arm(&mut self, deadline: Option<Instant>) {
        if deadline != self.armed {
            if let Some(at) = deadline {
                self.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
            }
            self.armed = deadline;
        }
    }

    /// Waits for a datagram or the deadline; cancel-safe (nothing is
    /// consumed unless `Ready` is returned).
    pub fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        for channel in [Channel::Rtp, Channel::Rtcp] {
            let mut read = ReadBuf::new(&mut self.buf);
            match self.socket.poll_recv(channel, cx, &mut read) {
                Poll::Ready(Ok(from)) => {
                    let len = read.filled().len();
                    return Poll::Ready(Input::Datagram { channel, from, len });
                }
                // ICMP errors (a closed port at the caller) surface here
                // on some systems; the socket lives on. Poll again so the
                // waker is registered.
                Poll::Ready(Err(error)) => {
                    debug!(%error, "RTP receive error");
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => {}
            }
        }
        if self.armed.is_some() && self.sleep.as_mut().poll(cx).is_ready() {
            self.armed = None;
            return Poll::Ready(Input::Timeout);
        }
        Poll::Pending
    }

    /// Hands `input` to the core at `now`.
    pub fn feed(&mut self, media: &mut CallMedia, input: Input, now: Instant) {
        match input {
            Input::Datagram { channel, from, len } => {
                let datagram = self.buf.get(..len).unwrap_or_default();
                media.handle_datagram(now, channel, from, datagram);
            }
            Input::Timeout => media.handle_timeout(now),
        }
    }

    /// Sends every datagram the core has due at `now`.
    pub fn transmit(&mut self, media: &mut CallMedia, now: Instant) {
        while let Some(t) = media.poll_transmit(now, &mut self.out) {
            self.send(t.channel, t.to);
        }
    }

    /// Sends the core's RTCP BYE, the last thing a call's media does.
    pub fn goodbye(&mut self, media: &mut CallMedia, now: Instant) {
        if let Some(t) = media.goodbye(now, &mut self.out) {
            self.send(t.channel, t.to);
        }
    }

    /// Datagrams the kernel refused (a full socket buffer, an unreachable
    /// caller).
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    fn send(&mut self, channel: Channel, to: std::net::SocketAddr) {
        if let Err(error) = self.socket.try_send(channel, &self.out, to) {
            self.send_errors += 1;
            debug!(%error, "cannot send a media datagram");
        }
    }
}

#[cfg(test)]
#[path = "port_tests.rs"]
mod tests;

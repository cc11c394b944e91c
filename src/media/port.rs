//! The call's task's side of its media: the sockets, handed to the media
//! engine, and one timer for the task's own deadlines.
//!
//! [`MediaPort::new`] attaches the call's [`CallMedia`] and sockets to the
//! media engine (`super::engine`), which from then on receives the
//! caller's RTP and RTCP, runs the media core, sends what it has due and
//! keeps its timers. [`MediaPort::poll_input`] waits for whichever comes
//! first: the engine's wake-up (the core has an event or recorded audio
//! for the task) or the deadline the task armed for itself
//! ([`MediaPort::arm`]: a menu's timeout; the media's own deadlines are
//! the engine's, and [`CallMedia::poll_timeout`] is `None` while
//! attached). It is a plain poll function, so the session puts it in its
//! one flat `select!` beside the dialog's events (see
//! `voicemail::session`). [`MediaPort::transmit`] sends what the core has
//! due after the task changed it (a prompt to start now). The timer is one
//! pinned `Sleep`, reset only when the deadline moves. Dropping the port
//! detaches the call from the engine.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::time::Sleep;
use tracing::error;

use super::call_media::{CallMedia, Shared};
use super::engine::{self, Worker};
use super::signal::Signal;
use super::socket::RtpSocket;

/// Room for any datagram the core writes.
const SEND_BUFFER: usize = 2048;

/// What woke the call's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The media engine: the core has an event or recorded audio.
    Media,
    /// The deadline the task armed passed.
    Timeout,
}

/// The sockets and timer of one call's media.
pub struct MediaPort {
    socket: Arc<RtpSocket>,
    shared: Arc<Shared>,
    signal: Arc<Signal>,
    worker: Option<Arc<Worker>>,
    out: Vec<u8>,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl MediaPort {
    /// Attaches `media` and its sockets to the media engine.
    pub fn new(socket: RtpSocket, media: &CallMedia) -> MediaPort {
        let socket = Arc::new(socket);
        let shared = media.shared().clone();
        let signal = Arc::new(Signal::default());
        let worker = match engine::attach(shared.clone(), signal.clone(), socket.clone()) {
            Ok(worker) => Some(worker),
            Err(e) => {
                error!(error = %e, "the media engine cannot take the call; no media");
                None
            }
        };
        MediaPort {
            socket,
            shared,
            signal,
            worker,
            out: Vec::with_capacity(SEND_BUFFER),
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            armed: None,
        }
    }

    /// The sockets.
    pub fn socket(&self) -> &RtpSocket {
        &self.socket
    }

    /// Sets the task's timer to `deadline` (none: no timer).
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

    /// Waits for the engine's wake-up or the armed deadline; cancel-safe
    /// (nothing is consumed unless `Ready` is returned).
    pub fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        if self.signal.poll(cx).is_ready() {
            return Poll::Ready(Input::Media);
        }
        if self.armed.is_some() && self.sleep.as_mut().poll(cx).is_ready() {
            self.armed = None;
            return Poll::Ready(Input::Timeout);
        }
        Poll::Pending
    }

    /// Hands `input` to the core at `now`: a deadline of the task's is
    /// also a chance for the core to play out what is due.
    pub fn feed(&mut self, media: &mut CallMedia, input: Input, now: Instant) {
        match input {
            Input::Media => {}
            Input::Timeout => media.handle_timeout(now),
        }
    }

    /// Sends every datagram the core has due at `now`.
    pub fn transmit(&mut self, media: &mut CallMedia, now: Instant) {
        while let Some(t) = media.poll_transmit(now, &mut self.out) {
            self.socket.send_counted(t.channel, &self.out, t.to);
        }
    }

    /// Sends the core's RTCP BYE, the last thing a call's media does.
    pub fn goodbye(&mut self, media: &mut CallMedia, now: Instant) {
        if let Some(t) = media.goodbye(now, &mut self.out) {
            self.socket.send_counted(t.channel, &self.out, t.to);
        }
    }

    /// Datagrams the kernel refused (a full socket buffer, an unreachable
    /// caller).
    pub fn send_errors(&self) -> u64 {
        self.socket.send_errors()
    }
}

impl Drop for MediaPort {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.detach(&self.shared);
        }
    }
}

#[cfg(test)]
#[path = "port_tests.rs"]
mod tests;

//! A TCP relay between two mesh servers that loses one answer on purpose,
//! or delays every answer.
//!
//! Delaying ([`Relay::delaying`]) holds each chunk the home sends back for
//! a fixed time before passing it on, bytes untouched (TLS records too):
//! the home has stored a message and answered, but the sender cannot have
//! seen the 200 yet, which is the window a kill must land in for the
//! sender to send the message again.
//!
//! The case it makes: the home server stored a message and answered 200,
//! but the 200 never reached the sender (the connection broke, or the home
//! crashed right after its commit). The sender must send the message again
//! and the home must absorb the copy. The kernel here has no `netem`, and
//! killing the home at exactly that instant cannot be timed from outside,
//! so the relay does it deterministically: it forwards everything, frames
//! what comes back by Content-Length (RFC 3261 §18.3), swallows the first
//! 200 to a MESSAGE and closes both sides of that connection.
//!
//! A server recognises a peer by the source address of its connection, so
//! the relay connects upstream from the sender's own address (any free
//! port): the home sees the sender's IP, as without the relay.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::raw_sip::tcp_connect_from;

/// What the relay's threads share.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// 200s to a MESSAGE swallowed so far (at most one).
    swallowed: AtomicUsize,
    /// Connections accepted from the sender.
    connections: AtomicUsize,
    /// Hold every chunk from the home this long (zero: swallow the first
    /// 200 to a MESSAGE instead).
    delay: Duration,
    /// Every socket of every relayed connection, shut down on drop so no
    /// pump thread outlives the test.
    sockets: Mutex<Vec<TcpStream>>,
}

/// A running relay; stopped (every connection closed) when dropped.
pub struct Relay {
    /// Where the sender connects (the address the sender's topology gives
    /// the home server).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on `listen` and relays each connection to `upstream`,
    /// connecting from `upstream_from` (the sender's IP).
    pub fn start(listen: SocketAddr, upstream: SocketAddr, upstream_from: Ipv4Addr) -> Relay {
        Relay::run(listen, upstream, upstream_from, Duration::ZERO)
    }

    /// Like [`Relay::start`], but passes everything and holds each chunk
    /// from the home for `delay`.
    pub fn delaying(
        listen: SocketAddr,
        upstream: SocketAddr,
        upstream_from: Ipv4Addr,
        delay: Duration,
    ) -> Relay {
        Relay::run(listen, upstream, upstream_from, delay)
    }

    fn run(
        listen: SocketAddr,
        upstream: SocketAddr,
        upstream_from: Ipv4Addr,
        delay: Duration,
    ) -> Relay {
        let listener =
            TcpListener::bind(listen).unwrap_or_else(|e| panic!("relay: bind {listen}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("relay: non-blocking listener");
        let shared = Arc::new(Shared {
            delay,
            ..Shared::default()
        });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(listener, upstream, upstream_from, shared))
        };
        Relay {
            addr: listen,
            shared,
            accept: Some(accept),
        }
    }

    /// How many 200s to a MESSAGE the relay has swallowed (0 or 1).
    pub fn swallowed(&self) -> usize {
        self.shared.swallowed.load(Ordering::SeqCst)
    }

    /// How many connections the sender has opened through the relay.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Ok(sockets) = self.shared.sockets.lock() {
            for socket in sockets.iter() {
                socket.shutdown(Shutdown::Both).ok();
            }
        }
        if let Some(thread) = self.accept.take() {
            thread.join().ok();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    upstream_from: Ipv4Addr,
    shared: Arc<Shared>,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => continue,
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        client.set_nonblocking(false).ok();
        let Ok(server) = tcp_connect_from(upstream_from, upstream) else {
            client.shutdown(Shutdown::Both).ok();
            continue;
        };
        let clones = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        );
        let (Ok(client_read), Ok(server_write), Ok(client_keep), Ok(server_keep)) = clones else {
            continue;
        };
        if let Ok(mut sockets) = shared.sockets.lock() {
            sockets.push(client_keep);
            sockets.push(server_keep);
        }
        std::thread::spawn(move || pump_raw(client_read, server_write));
        let shared = shared.clone();
        if shared.delay.is_zero() {
            std::thread::spawn(move || pump_responses(server, client, &shared));
        } else {
            std::thread::spawn(move || pump_delayed(server, client, shared.delay));
        }
    }
}

/// Sender to home: bytes as they come.
fn pump_raw(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 65536];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    from.shutdown(Shutdown::Both).ok();
    to.shutdown(Shutdown::Both).ok();
}

/// Home to sender: every chunk as it came, `delay` after it came (a delay
/// line: a reader thread stamps chunks, this thread writes them when due).
fn pump_delayed(from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, Vec<u8>)>();
    let mut reader = from;
    let closer = reader.try_clone().ok();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((std::time::Instant::now(), buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    for (at, chunk) in rx {
        let due = at + delay;
        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        if to.write_all(&chunk).is_err() {
            break;
        }
    }
    if let Some(from) = closer {
        from.shutdown(Shutdown::Both).ok();
    }
    to.shutdown(Shutdown::Both).ok();
}

/// Home to sender: whole messages, except the first 200 to a MESSAGE,
/// after which the connection is closed both ways.
fn pump_responses(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        while let Some(frame) = take_frame(&mut pending) {
            if is_200_to_message(&frame)
                && shared
                    .swallowed
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                from.shutdown(Shutdown::Both).ok();
                to.shutdown(Shutdown::Both).ok();
                return;
            }
            if to.write_all(&frame).is_err() {
                from.shutdown(Shutdown::Both).ok();
                return;
            }
        }
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
    from.shutdown(Shutdown::Both).ok();
    to.shutdown(Shutdown::Both).ok();
}

/// The next complete message (or keep-alive CRLF) at the front of
/// `pending`, removed from it.
fn take_frame(pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    if pending.starts_with(b"\r\n") && !pending.starts_with(b"\r\n\r\n") {
        return Some(pending.drain(..2).collect());
    }
    let head_end = pending.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let length = header_value(&head, "Content-Length", "l")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if pending.len() < head_end + length {
        return None;
    }
    Some(pending.drain(..head_end + length).collect())
}

fn is_200_to_message(frame: &[u8]) -> bool {
    let text = String::from_utf8_lossy(frame);
    text.starts_with("SIP/2.0 200")
        && header_value(&text, "CSeq", "CSeq")
            .is_some_and(|cseq| cseq.trim_end().ends_with("MESSAGE"))
}

fn header_value(head: &str, name: &str, compact: &str) -> Option<String> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| {
            let n = n.trim();
            n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact)
        })
        .map(|(_, v)| v.trim().to_string())
}

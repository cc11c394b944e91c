//! Many calling PBX legs over one UDP socket: the caller's side of RFC 3261.
//!
//! Each call is an INVITE client transaction (§17.1.1: retransmitted from
//! T1 = 500 ms, doubling, until a provisional or final answer; given up
//! after Timer B = 64·T1), the ACK of its 2xx (resent for every
//! retransmitted 200, §13.2.2.4), and the BYE's non-INVITE transaction
//! (§17.1.2: retransmitted from T1 doubling to T2 = 4 s, given up after
//! Timer F = 64·T1). Requests the server sends in the dialog (its own BYE)
//! get 200. Retransmissions and hang-ups wait in one timer heap; a state
//! change bumps the call's generation, so stale timers are skipped.
//!
//! The answer time is measured as the server sees it: from the INVITE's
//! send (wall clock read just before `sendto`) to the kernel's receive
//! timestamp of the first 200 (`SO_TIMESTAMPNS`), so the load generator's
//! own scheduling delays are not counted as the server's.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use crate::clock::{mono_ns, real_ns};
use crate::lateness::Histogram;
use crate::sip::{self, CallIds, Message};

const T1_NS: u64 = 500_000_000;
const T2_NS: u64 = 4_000_000_000;
const TIMER_B_NS: u64 = 64 * T1_NS;

/// The dialog a 200 established.
#[derive(Clone, Debug)]
pub struct Dialog {
    pub to_tag: String,
    /// The remote target (the 200's Contact).
    pub target: String,
    /// Where the server wants our RTP.
    pub media: SocketAddrV4,
    /// INVITE sent → 200 received, in ns.
    pub answer_ns: u64,
}

/// How a call that was answered ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Our BYE got 2xx.
    ByeAnswered,
    /// The server hung up (its BYE).
    ServerBye,
    /// Our BYE got no final answer within Timer F.
    ByeTimedOut,
    /// Our BYE got a non-2xx final answer.
    ByeRefused(u16),
}

/// Why a call was never answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A non-2xx final answer to the INVITE.
    Status(u16),
    /// No final answer within Timer B.
    Timeout,
    /// A 200 without a usable SDP answer (acknowledged, then hung up).
    NoSdp,
}

/// Where one call is.
#[derive(Clone, Debug)]
pub enum CallState {
    Idle,
    Calling {
        sent_real: u64,
        sent_mono: u64,
        interval: u64,
        proceeding: bool,
    },
    Confirmed(Dialog),
    Ending {
        dialog: Dialog,
        sent_mono: u64,
        interval: u64,
    },
    Ended(Dialog, End),
    Failed(Failure),
}

impl CallState {
    /// The call has its final state (nothing more will happen).
    pub fn is_final(&self) -> bool {
        matches!(self, CallState::Ended(..) | CallState::Failed(_))
    }

    /// The dialog, if the call was answered.
    pub fn dialog(&self) -> Option<&Dialog> {
        match self {
            CallState::Confirmed(d)
            | CallState::Ending { dialog: d, .. }
            | CallState::Ended(d, _) => Some(d),
            _ => None,
        }
    }
}

/// One call of the run.
pub struct Call {
    pub ids: CallIds,
    /// Our RTP address, offered in the INVITE.
    pub rtp: SocketAddrV4,
    pub state: CallState,
    generation: u32,
    invite_branch: String,
    invite: Vec<u8>,
    ack: Vec<u8>,
    bye: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Retransmit,
    HangUp,
}

/// Counters of the SIP side of a run.
#[derive(Default, Debug)]
pub struct UacStats {
    pub retransmissions: u64,
    pub received: u64,
    pub unmatched: u64,
    pub send_errors: u64,
}

/// The calls of a run and their one SIP socket.
pub struct Uac {
    socket: UdpSocket,
    server: SocketAddr,
    pub calls: Vec<Call>,
    index: HashMap<String, usize>,
    timers: BinaryHeap<Reverse<(u64, usize, u32, TimerKind)>>,
    /// Hang up this long after the answer (short calls); `None`: the
    /// driver sends BYE itself.
    hold_ns: Option<u64>,
    pub stats: UacStats,
    /// How late each INVITE left against its schedule.
    pub invite_lateness: Histogram,
    /// Calls in a final state.
    pub finished: usize,
}

impl Uac {
    /// A socket on `local` (port 0: any) towards the server at `server`.
    pub fn bind(
        local: SocketAddrV4,
        server: SocketAddrV4,
        hold_ns: Option<u64>,
    ) -> io::Result<Uac> {
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        set_int_option(fd, libc::SO_TIMESTAMPNS, 1)?;
        // Room for a burst of answers; the forced size needs root.
        if set_int_option(fd, libc::SO_RCVBUFFORCE, 8 << 20).is_err() {
            set_int_option(fd, libc::SO_RCVBUF, 8 << 20)?;
        }
        Ok(Uac {
            socket,
            server: SocketAddr::V4(server),
            calls: Vec::new(),
            index: HashMap::new(),
            timers: BinaryHeap::new(),
            hold_ns,
            stats: UacStats::default(),
            invite_lateness: Histogram::default(),
            finished: 0,
        })
    }

    /// Our SIP address.
    pub fn local(&self) -> io::Result<SocketAddrV4> {
        match self.socket.local_addr()? {
            SocketAddr::V4(a) => Ok(a),
            SocketAddr::V6(_) => Err(io::Error::other("IPv6 socket")),
        }
    }

    /// Adds a call (not yet started); returns its index.
    pub fn add(&mut self, ids: CallIds, rtp: SocketAddrV4) -> usize {
        let i = self.calls.len();
        self.index.insert(ids.call_id.clone(), i);
        self.calls.push(Call {
            invite_branch: format!("z9hG4bK-{}-inv", ids.from_tag),
            ids,
            rtp,
            state: CallState::Idle,
            generation: 0,
            invite: Vec::new(),
            ack: Vec::new(),
            bye: Vec::new(),
        });
        i
    }

    fn send(&mut self, bytes: &[u8], to: SocketAddr) {
        if self.socket.send_to(bytes, to).is_err() {
            self.stats.send_errors += 1;
        }
    }

    fn arm(&mut self, call: usize, due: u64, kind: TimerKind) {
        let generation = self.calls[call].generation;
        self.timers.push(Reverse((due, call, generation, kind)));
    }

    fn set_state(&mut self, call: usize, state: CallState) {
        let c = &mut self.calls[call];
        let was_final = c.state.is_final();
        c.generation = c.generation.wrapping_add(1);
        c.state = state;
        if !was_final && c.state.is_final() {
            self.finished += 1;
        }
    }

    /// Sends call `i`'s INVITE, due at `deadline` (monotonic ns).
    pub fn invite(&mut self, i: usize, deadline: u64) {
        let c = &mut self.calls[i];
        c.invite = c.ids.invite(&c.invite_branch, c.rtp);
        let bytes = std::mem::take(&mut c.invite);
        let sent_mono = mono_ns();
        let sent_real = real_ns();
        self.send(&bytes, self.server);
        self.calls[i].invite = bytes;
        self.invite_lateness
            .record(sent_mono.saturating_sub(deadline));
        self.set_state(
            i,
            CallState::Calling {
                sent_real,
                sent_mono,
                interval: T1_NS,
                proceeding: false,
            },
        );
        self.arm(i, sent_mono + T1_NS, TimerKind::Retransmit);
    }

    /// Hangs up call `i` if it is answered and up.
    pub fn bye(&mut self, i: usize) {
        let CallState::Confirmed(dialog) = self.calls[i].state.clone() else {
            return;
        };
        let c = &mut self.calls[i];
        let branch = format!("z9hG4bK-{}-bye", c.ids.from_tag);
        c.bye = c
            .ids
            .in_dialog("BYE", 2, &branch, &dialog.target, &dialog.to_tag);
        let bytes = std::mem::take(&mut c.bye);
        self.send(&bytes, self.server);
        self.calls[i].bye = bytes;
        let now = mono_ns();
        self.set_state(
            i,
            CallState::Ending {
                dialog,
                sent_mono: now,
                interval: T1_NS,
            },
        );
        self.arm(i, now + T1_NS, TimerKind::Retransmit);
    }

    /// Handles datagrams and timers until `until` (monotonic ns).
    pub fn pump(&mut self, until: u64) {
        loop {
            self.run_timers();
            let now = mono_ns();
            if now >= until {
                return;
            }
            let next = self
                .timers
                .peek()
                .map_or(until, |Reverse((due, ..))| (*due).min(until));
            self.wait_readable(next.saturating_sub(now));
            self.receive_all();
        }
    }

    /// Pumps until every call is final or `until`; true if all are.
    pub fn settle(&mut self, until: u64, done: impl Fn(&Uac) -> bool) -> bool {
        while !done(self) {
            if mono_ns() >= until {
                return false;
            }
            self.pump((mono_ns() + 5_000_000).min(until));
        }
        true
    }

    fn wait_readable(&self, timeout_ns: u64) {
        let mut fds = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timeout, no signal mask.
        unsafe { libc::ppoll(&mut fds, 1, &ts, std::ptr::null()) };
    }

    fn receive_all(&mut self) {
        let mut buf = [0u8; 65536];
        while let Some((len, from, stamp)) = recv_stamped(&self.socket, &mut buf) {
            self.stats.received += 1;
            if let Some(m) = sip::parse(&buf[..len]) {
                self.handle(m, from, stamp);
            }
        }
    }

    fn run_timers(&mut self) {
        let now = mono_ns();
        while let Some(&Reverse((due, call, generation, kind))) = self.timers.peek() {
            if due > now {
                return;
            }
            self.timers.pop();
            if self.calls[call].generation != generation {
                continue;
            }
            match kind {
                TimerKind::HangUp => self.bye(call),
                TimerKind::Retransmit => self.retransmit(call, now),
            }
        }
    }

    fn retransmit(&mut self, i: usize, now: u64) {
        match self.calls[i].state.clone() {
            CallState::Calling {
                sent_mono,
                interval,
                proceeding,
                ..
            } => {
                if now >= sent_mono + TIMER_B_NS {
                    self.set_state(i, CallState::Failed(Failure::Timeout));
                    return;
                }
                if !proceeding {
                    let bytes = std::mem::take(&mut self.calls[i].invite);
                    self.send(&bytes, self.server);
                    self.calls[i].invite = bytes;
                    self.stats.retransmissions += 1;
                }
                let next = interval * 2;
                if let CallState::Calling { interval, .. } = &mut self.calls[i].state {
                    *interval = next;
                }
                self.arm(i, now + next.min(TIMER_B_NS), TimerKind::Retransmit);
            }
            CallState::Ending {
                dialog,
                sent_mono,
                interval,
            } => {
                if now >= sent_mono + TIMER_B_NS {
                    self.set_state(i, CallState::Ended(dialog, End::ByeTimedOut));
                    return;
                }
                let bytes = std::mem::take(&mut self.calls[i].bye);
                self.send(&bytes, self.server);
                self.calls[i].bye = bytes;
                self.stats.retransmissions += 1;
                let next = (interval * 2).min(T2_NS);
                if let CallState::Ending { interval, .. } = &mut self.calls[i].state {
                    *interval = next;
                }
                self.arm(i, now + next, TimerKind::Retransmit);
            }
            _ => {}
        }
    }

    fn handle(&mut self, m: Message, from: SocketAddr, stamp_real: u64) {
        let Some(&i) = m.call_id.as_ref().and_then(|id| self.index.get(id)) else {
            self.stats.unmatched += 1;
            if m.method.as_deref().is_some_and(|x| x != "ACK") {
                let ok = sip::ok_to(&m);
                self.send(&ok, from);
            }
            return;
        };
        if let Some(method) = m.method.as_deref() {
            if method != "ACK" {
                let ok = sip::ok_to(&m);
                self.send(&ok, from);
            }
            if method == "BYE" {
                if let CallState::Confirmed(d) | CallState::Ending { dialog: d, .. } =
                    self.calls[i].state.clone()
                {
                    self.set_state(i, CallState::Ended(d, End::ServerBye));
                }
            }
            return;
        }
        let (Some(status), Some((_, method))) = (m.status, m.cseq.as_ref()) else {
            return;
        };
        match method.as_str() {
            "INVITE" => self.on_invite_response(i, status, &m, stamp_real),
            "BYE" if status >= 200 => {
                if let CallState::Ending { dialog, .. } = self.calls[i].state.clone() {
                    let end = if status < 300 {
                        End::ByeAnswered
                    } else {
                        End::ByeRefused(status)
                    };
                    self.set_state(i, CallState::Ended(dialog, end));
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, i: usize, status: u16, m: &Message, stamp_real: u64) {
        let state = self.calls[i].state.clone();
        match (status, state) {
            (100..=199, CallState::Calling { .. }) => {
                if let CallState::Calling { proceeding, .. } = &mut self.calls[i].state {
                    *proceeding = true;
                }
            }
            (200..=299, CallState::Calling { sent_real, .. }) => {
                let c = &self.calls[i];
                let to_tag = m.to_tag.clone().unwrap_or_default();
                let target = m
                    .contact
                    .clone()
                    .unwrap_or_else(|| format!("sip:{}@{}", c.ids.mailbox, c.ids.server));
                let branch = format!("z9hG4bK-{}-ack", c.ids.from_tag);
                let ack = c.ids.in_dialog("ACK", 1, &branch, &target, &to_tag);
                self.send(&ack, self.server);
                self.calls[i].ack = ack;
                let Some(media) = m.media else {
                    self.set_state(i, CallState::Failed(Failure::NoSdp));
                    return;
                };
                let dialog = Dialog {
                    to_tag,
                    target,
                    media,
                    answer_ns: stamp_real.saturating_sub(sent_real),
                };
                self.set_state(i, CallState::Confirmed(dialog));
                if let Some(hold) = self.hold_ns {
                    self.arm(i, mono_ns() + hold, TimerKind::HangUp);
                }
            }
            (200..=299, _) => {
                // A retransmitted 200: our ACK was lost or late.
                let ack = std::mem::take(&mut self.calls[i].ack);
                if !ack.is_empty() {
                    self.send(&ack, self.server);
                }
                self.calls[i].ack = ack;
            }
            (300..=699, CallState::Calling { .. }) => {
                let c = &self.calls[i];
                let ack = c.ids.ack_failure(&c.invite_branch, m.to_tag.as_deref());
                self.send(&ack, self.server);
                self.calls[i].ack = ack;
                self.set_state(i, CallState::Failed(Failure::Status(status)));
            }
            (300..=699, CallState::Failed(_)) => {
                let ack = std::mem::take(&mut self.calls[i].ack);
                self.send(&ack, self.server);
                self.calls[i].ack = ack;
            }
            _ => {}
        }
    }
}

fn set_int_option(fd: i32, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One datagram with its source and the kernel's receive time (wall clock,
/// ns); `None` when nothing waits.
fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr, u64)> {
    // SAFETY: plain data structures, zeroed, then pointed at live buffers
    // for the one recvmsg call; the control data is read with the CMSG
    // macros within the length the kernel returned.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 16];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, 0);
        if n < 0 {
            return None;
        }
        let mut stamp = real_ns();
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        let from = SocketAddr::V4(SocketAddrV4::new(
            u32::from_be(addr.sin_addr.s_addr).into(),
            u16::from_be(addr.sin_port),
        ));
        Some((n as usize, from, stamp))
    }
}

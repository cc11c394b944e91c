//! The media engine: a few threads that receive every call's RTP and RTCP,
//! run each call's [`MediaCore`](super::core::MediaCore), send what it
//! has due and keep its timers, and wake a call's task only when the core
//! wants attention.
//!
//! A call streaming G.711 sends 50 packets a second. Driven by its own
//! async task, each packet cost a wake-up of the runtime and of the task
//! (scheduling, the task's `select!`, a second `recvfrom` to learn the
//! socket is empty, a timer reset): more than the work the packet asks
//! for. Here each worker thread waits on one level-triggered `epoll` set
//! holding its calls' sockets, and per ready socket reads one datagram
//! (the floor receiver of `benches/floor` does the same), feeds it to the
//! core under the call's lock, sends the keep-alive or prompt frame that
//! became due, and moves on. The call's task runs about once a second
//! while a message is recorded (to write a second of audio) and for the
//! call's events.
//!
//! Timers are a binary heap of (millisecond tick, call, generation). A
//! deadline is rounded up to its tick, so a worker wakes at most once a
//! millisecond for timers however many calls it holds, and all that fell
//! due then run together; prompt frames keep their 20 ms grid within a
//! millisecond. While a caller streams, its packets do the work its
//! deadlines stand in for (a keep-alive frame leaves with the packet, the
//! jitter buffer plays out on arrival), so a deadline that moves later is
//! not re-filed at each packet: the entry already filed fires, finds the
//! call's deadline later, and is filed again for it; only an earlier one
//! gets a new entry at once (and a new generation, so the old entry is
//! skipped when it comes up).
//!
//! A worker that found more than one socket ready at its last turn pauses
//! before it waits again, until a tick after that turn began (or its
//! first timer, if sooner): under load each wake-up then takes the
//! datagrams of a millisecond together instead of a few, and the
//! kernel's cost of putting the thread to sleep and waking it, the
//! largest single share of a packet's CPU at a thousand calls, is paid
//! that much less often. A packet waits at most that millisecond longer
//! to be read (the socket's buffer holds it meanwhile), which a recording
//! does not notice; a lone call's packets, 20 ms apart, find the worker
//! asleep in `epoll` and are read at once.
//!
//! Calls are packed onto as few workers as their number needs
//! ([`CALLS_PER_OPEN_WORKER`] each) and spread by load among those: a
//! hundred calls on one worker give it twice the datagrams per wake-up
//! that two workers would each have, and the cost of sleeping and waking
//! is the largest share of a packet's CPU at such loads (the floor
//! receiver of `benches/floor` is one thread too). As calls grow, the
//! next worker takes new calls until the open ones are even. A worker
//! learns of new, moved and finished calls through a command queue, which
//! it takes at every turn of its loop, and an `eventfd` that wakes its
//! `epoll_wait`. The `eventfd` is written only when the worker would not
//! come to the queue within a tick by itself: a busy worker wakes for its
//! timers about every millisecond, and a call's attach and detach then
//! cost it no wake-up of their own.
//!
//! Written against `libc` rather than a reactor crate: tokio and mio offer
//! only edge-triggered readiness, which costs a `recvfrom` that fails
//! with `EAGAIN` after every packet, and nothing else is needed here.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tracing::{debug, error};

use super::call_media::Shared;
use super::core::{Channel, MediaCore};
use super::signal::Signal;
use super::socket::RtpSocket;

/// Recorded audio the core gathers before the call's task is woken to
/// write it: a second, the store's own buffering (`store::recording`),
/// so a crash loses no more than before.
const WAKE_FOR_AUDIO_MS: usize = 1000;
/// Events read from `epoll` at once.
const EVENTS: usize = 256;
/// Larger than any RTP packet on a 1500-byte MTU.
const RECV_BUFFER: usize = 2048;
/// The token of the worker's own `eventfd`.
const WAKE_TOKEN: u64 = u64::MAX;
/// The timers' tick.
const TICK: Duration = Duration::from_millis(1);
/// How long after a busy turn began the worker waits before it looks for
/// the next datagrams (see the module documentation).
const COALESCE: Duration = TICK;
/// Socket events at one turn that make the worker pause before the next.
const BUSY_TURN: usize = 2;
/// Worker threads at most (one per core).
const MAX_WORKERS: usize = 8;
/// Calls each worker takes before the next is opened to new calls. At
/// this many G.711 calls a worker spends about a tenth of a core, an Opus
/// or G.722 one about a quarter, and a turn already finds a dozen
/// datagrams ready.
const CALLS_PER_OPEN_WORKER: usize = 250;

/// The engine: its workers, started on first use.
struct Engine {
    workers: Vec<Arc<Worker>>,
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

/// One call as the engine holds it.
pub(super) struct Attached {
    shared: Arc<Shared>,
    signal: Arc<Signal>,
    socket: Arc<RtpSocket>,
}

/// What a worker is asked to do by other threads.
enum Command {
    Add(Attached),
    Remove(Arc<Shared>),
    Reschedule(Arc<Shared>),
}

/// One worker thread's shared half: its command queue and wake-up.
pub(super) struct Worker {
    commands: Mutex<Vec<Command>>,
    /// Set after a command is queued, cleared when the looper takes the
    /// queue: what the looper checks at each turn without the lock.
    queued: AtomicBool,
    wake: OwnedFd,
    calls: AtomicUsize,
    /// The looper's clock: ticks and [`Worker::wakes_at`] count from here.
    epoch: Instant,
    /// When the looper wakes by itself, in nanoseconds from `epoch`:
    /// [`AWAKE`] while it runs (it takes the queue before it sleeps again),
    /// [`NO_TIMER`] while it waits with no timer.
    wakes_at: AtomicU64,
}

/// [`Worker::wakes_at`] while the looper runs.
const AWAKE: u64 = 0;
/// [`Worker::wakes_at`] while the looper waits for a socket or a command
/// only.
const NO_TIMER: u64 = u64::MAX;
/// A command waits for the looper's own wake-up when that comes within
/// this (the timers' tick) instead of writing its `eventfd`.
const WAKE_SLACK_NANOS: u64 = TICK_NANOS;

/// Attaches a call to a worker ([`pick_worker`]); from now on the engine
/// receives on `socket`, runs the core and wakes `signal`'s task.
pub(super) fn attach(
    shared: Arc<Shared>,
    signal: Arc<Signal>,
    socket: Arc<RtpSocket>,
) -> io::Result<Arc<Worker>> {
    let engine = ENGINE
        .get_or_init(Engine::start)
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))?;
    let mut loads = [0; MAX_WORKERS];
    for (load, worker) in loads.iter_mut().zip(&engine.workers) {
        *load = worker.calls.load(Ordering::Relaxed);
    }
    let held = engine.workers.len().min(MAX_WORKERS);
    let worker = pick_worker(&loads[..held])
        .and_then(|i| engine.workers.get(i))
        .ok_or_else(|| io::Error::other("the media engine has no worker"))?
        .clone();
    worker.calls.fetch_add(1, Ordering::Relaxed);
    shared.lock().worker = Some(worker.clone());
    worker.post(Command::Add(Attached {
        shared,
        signal,
        socket,
    }));
    Ok(worker)
}

/// The worker a new call goes to, given each worker's calls: the least
/// loaded of the first workers that the calls need open, one per
/// [`CALLS_PER_OPEN_WORKER`] (see the module documentation). `None` when
/// there is no worker.
fn pick_worker(loads: &[usize]) -> Option<usize> {
    let total: usize = loads.iter().sum();
    let open = (total / CALLS_PER_OPEN_WORKER + 1).min(loads.len());
    (0..open).min_by_key(|&i| loads[i])
}

impl Engine {
    fn start() -> Result<Engine, String> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_WORKERS);
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (worker, looper) = Looper::new().map_err(|e| format!("media engine: {e}"))?;
            std::thread::Builder::new()
                .name(format!("vmesh-media-{i}"))
                .spawn(move || looper.run())
                .map_err(|e| format!("media engine: cannot start a thread: {e}"))?;
            workers.push(worker);
        }
        debug!(threads, "media engine started");
        Ok(Engine { workers })
    }
}

impl Worker {
    /// The call's deadline came forward: run it by then.
    pub(super) fn reschedule(&self, shared: &Arc<Shared>) {
        self.post(Command::Reschedule(shared.clone()));
    }

    /// The call ended: stop receiving for it.
    pub(super) fn detach(&self, shared: &Arc<Shared>) {
        self.post(Command::Remove(shared.clone()));
    }

    /// Queues `command` and wakes the looper only when it would not come
    /// to the queue within [`WAKE_SLACK_NANOS`] by itself: it takes the
    /// queue at every turn of its loop, and on a busy worker (a timer due
    /// every millisecond or so) a call's attach or detach then costs no
    /// wake-up of its own. Commands already queued have seen to the
    /// wake-up, so only the first of a batch looks.
    fn post(&self, command: Command) {
        let waiting = {
            let mut commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
            commands.push(command);
            commands.len()
        };
        // Flag, then look; the looper announces, then looks at the flag
        // (both sequentially consistent): either it sees this command
        // before it sleeps, or this sees when it wakes.
        self.queued.store(true, Ordering::SeqCst);
        if waiting > 1 {
            return;
        }
        let wakes_at = self.wakes_at.load(Ordering::SeqCst);
        let now = nanos_since(self.epoch, Instant::now());
        if wakes_at <= now.saturating_add(WAKE_SLACK_NANOS) {
            return;
        }
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own eventfd.
        let written = unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
        if written != 8 {
            // Only a counter at its maximum refuses a write, and then the
            // worker is already due to wake.
            debug!(error = %io::Error::last_os_error(), "media engine wake-up not written");
        }
    }
}

/// A call in a worker's table.
struct Entry {
    call: Attached,
    generation: u64,
    /// The tick of its live timer entry, if one is filed.
    filed: Option<u64>,
    /// The core's deadline as last seen.
    due: Option<Instant>,
}

/// One worker thread's own half: its `epoll` set, calls and timers.
struct Looper {
    worker: Arc<Worker>,
    epoll: OwnedFd,
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    /// Ticks count from here.
    epoch: Instant,
    timers: BinaryHeap<Reverse<(u64, usize, u64)>>,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// `epoll_pwait2` (nanosecond timeouts) is available.
    precise: bool,
    /// When the last turn began, and whether it found enough sockets
    /// ready to pause before the next ([`BUSY_TURN`]).
    turn: Instant,
    busy: bool,
}

impl Looper {
    fn new() -> io::Result<(Arc<Worker>, Looper)> {
        // SAFETY: plain system calls; each result is checked before use
        // and owned at once.
        let epoll = unsafe { owned(libc::epoll_create1(libc::EPOLL_CLOEXEC))? };
        let wake = unsafe { owned(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))? };
        add_fd(&epoll, wake.as_raw_fd(), WAKE_TOKEN)?;
        let epoch = Instant::now();
        let worker = Arc::new(Worker {
            commands: Mutex::new(Vec::new()),
            queued: AtomicBool::new(false),
            wake,
            calls: AtomicUsize::new(0),
            epoch,
            wakes_at: AtomicU64::new(AWAKE),
        });
        let looper = Looper {
            worker: worker.clone(),
            epoll,
            slots: Vec::new(),
            free: Vec::new(),
            epoch,
            timers: BinaryHeap::new(),
            buf: vec![0; RECV_BUFFER],
            out: Vec::with_capacity(RECV_BUFFER),
            precise: true,
            turn: epoch,
            busy: false,
        };
        Ok((worker, looper))
    }

    fn run(mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            let ready = match self.wait(&mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    error!(error = %e, "media engine: epoll failed; the engine stops");
                    return;
                }
            };
            let now = Instant::now();
            let mut sockets = 0;
            for event in events.iter().take(ready) {
                let token = event.u64;
                if token == WAKE_TOKEN {
                    self.drain_wake();
                } else {
                    sockets += 1;
                    self.receive(token, now);
                }
            }
            self.turn = now;
            self.busy = sockets >= BUSY_TURN;
            self.commands(now);
            self.expire(Instant::now());
        }
    }

    /// Waits for a socket, a command or the first timer, having announced
    /// when it wakes by itself ([`Worker::post`]).
    fn wait(&mut self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        let next = self
            .timers
            .peek()
            .map(|&Reverse((tick, _, _))| tick_start(tick));
        self.pause(next);
        let announced = next.map_or(NO_TIMER, |at| {
            u64::try_from(at.as_nanos()).unwrap_or(NO_TIMER).max(1)
        });
        self.worker.wakes_at.store(announced, Ordering::SeqCst);
        let queued = self.worker.queued.load(Ordering::SeqCst);
        let waited = self.wait_until(events, next, queued);
        self.worker.wakes_at.store(AWAKE, Ordering::SeqCst);
        waited
    }

    /// After a busy turn, sleeps until [`COALESCE`] after it began or the
    /// first timer (`next`, from the epoch), whichever is sooner, unless a
    /// command is queued. The worker is announced as running meanwhile,
    /// so a command posted now waits for it rather than writing its
    /// `eventfd`: it comes to the queue within the slack.
    fn pause(&self, next: Option<Duration>) {
        if !self.busy || self.worker.queued.load(Ordering::Acquire) {
            return;
        }
        let until = pause_end(self.turn, self.epoch, next);
        let now = Instant::now();
        if until > now {
            std::thread::sleep(until - now);
        }
    }

    /// `epoll_pwait2` until `next` (from the epoch; none: no timeout), or
    /// not at all when commands are `queued`.
    fn wait_until(
        &mut self,
        events: &mut [libc::epoll_event],
        next: Option<Duration>,
        queued: bool,
    ) -> io::Result<usize> {
        let wait = match queued {
            true => Some(Duration::ZERO),
            false => next.map(|at| {
                let elapsed = Instant::now().saturating_duration_since(self.epoch);
                at.saturating_sub(elapsed)
            }),
        };
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        if self.precise {
            let timeout = wait.map(|wait| libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            });
            let timeout_ptr = timeout
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `events` is a live buffer of `max` entries, the
            // timeout (or null: wait forever) outlives the call, no mask.
            let n = unsafe {
                libc::epoll_pwait2(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    max,
                    timeout_ptr,
                    std::ptr::null(),
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ENOSYS) {
                return Err(error);
            }
            // Before Linux 5.11 (or under valgrind): whole milliseconds.
            self.precise = false;
        }
        let millis = wait.map_or(-1, |w| {
            i32::try_from(w.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
        });
        // SAFETY: `events` is a live buffer of `max` entries.
        let n =
            unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), max, millis) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Resets the `eventfd` a command wrote.
    fn drain_wake(&self) {
        let mut counter = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer from our eventfd.
        unsafe { libc::read(self.worker.wake.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
    }

    /// Runs the commands queued, at every turn of the loop.
    fn commands(&mut self, now: Instant) {
        // One missed here is seen by `wait`, which then does not sleep.
        if !self.worker.queued.load(Ordering::Acquire) {
            return;
        }
        let commands = {
            let mut queue = self
                .worker
                .commands
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Cleared under the lock: a command queued after this take
            // sets the flag again once its push is done.
            self.worker.queued.store(false, Ordering::SeqCst);
            std::mem::take(&mut *queue)
        };
        for command in commands {
            match command {
                Command::Add(call) => self.add(call, now),
                Command::Remove(shared) => self.remove(&shared),
                Command::Reschedule(shared) => {
                    if let Some(slot) = self.slot_of(&shared) {
                        self.run_core(slot, now, |core, now| core.handle_timeout(now));
                    }
                }
            }
        }
    }

    fn add(&mut self, call: Attached, now: Instant) {
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let mut fds = vec![(call.socket.raw_fd(Channel::Rtp), Channel::Rtp)];
        if let Some(fd) = call.socket.rtcp_raw_fd() {
            fds.push((fd, Channel::Rtcp));
        }
        for (fd, channel) in fds {
            if let Err(e) = add_fd(&self.epoll, fd, token(slot, channel)) {
                error!(error = %e, "media engine: cannot watch a call's socket");
            }
        }
        call.shared.set_slot(slot);
        let entry = Entry {
            call,
            generation: 0,
            filed: None,
            due: None,
        };
        if slot == self.slots.len() {
            self.slots.push(Some(entry));
        } else {
            self.slots[slot] = Some(entry);
        }
        self.run_core(slot, now, |_, _| {});
    }

    fn remove(&mut self, shared: &Arc<Shared>) {
        let Some(slot) = self.slot_of(shared) else {
            return;
        };
        if let Some(entry) = self.slots[slot].take() {
            let socket = &entry.call.socket;
            remove_fd(&self.epoll, socket.raw_fd(Channel::Rtp));
            if let Some(fd) = socket.rtcp_raw_fd() {
                remove_fd(&self.epoll, fd);
            }
            entry.call.shared.lock().worker = None;
            self.worker.calls.fetch_sub(1, Ordering::Relaxed);
            self.free.push(slot);
        }
    }

    fn slot_of(&self, shared: &Arc<Shared>) -> Option<usize> {
        let slot = shared.slot()?;
        match self.slots.get(slot) {
            Some(Some(entry)) if Arc::ptr_eq(&entry.call.shared, shared) => Some(slot),
            _ => None,
        }
    }

    /// One datagram for the socket `token` names, if it has one.
    fn receive(&mut self, token: u64, now: Instant) {
        let (slot, channel) = untoken(token);
        let Some(Some(entry)) = self.slots.get(slot) else {
            return;
        };
        let received = entry.call.socket.try_recv(channel, &mut self.buf);
        let (len, from) = match received {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                // ICMP errors (a closed port at the caller) surface here;
                // the socket lives on.
                debug!(error = %e, "RTP receive error");
                return;
            }
        };
        let buf = std::mem::take(&mut self.buf);
        let datagram = buf.get(..len).unwrap_or_default();
        self.run_core(slot, now, |core, now| {
            core.handle_datagram(now, channel, from, datagram);
        });
        self.buf = buf;
    }

    /// Runs the calls whose deadline passed; files again those whose
    /// deadline moved later meanwhile.
    fn expire(&mut self, now: Instant) {
        let now_tick = self.tick_at_or_before(now);
        while let Some(&Reverse((tick, slot, generation))) = self.timers.peek() {
            if tick > now_tick {
                break;
            }
            self.timers.pop();
            let Some(Some(entry)) = self.slots.get_mut(slot) else {
                continue;
            };
            if entry.generation != generation {
                continue;
            }
            entry.filed = None;
            match entry.due {
                Some(due) if due <= now => {
                    self.run_core(slot, now, |core, now| core.handle_timeout(now));
                }
                Some(due) => {
                    let tick = self.tick_of(due);
                    self.file(slot, tick);
                }
                None => {}
            }
        }
    }

    /// The tick a deadline falls due in (rounded up: never early).
    fn tick_of(&self, at: Instant) -> u64 {
        nanos_since(self.epoch, at).div_ceil(TICK_NANOS)
    }

    /// The tick `now` falls in (rounded down: what is due by then).
    fn tick_at_or_before(&self, now: Instant) -> u64 {
        nanos_since(self.epoch, now) / TICK_NANOS
    }

    /// Files a timer entry for `slot` at `tick`, replacing its live one.
    fn file(&mut self, slot: usize, tick: u64) {
        if let Some(Some(entry)) = self.slots.get_mut(slot) {
            entry.generation += 1;
            entry.filed = Some(tick);
            self.timers.push(Reverse((tick, slot, entry.generation)));
        }
    }

    /// Feeds one input to a call's core, sends what is due, wakes its task
    /// if the core wants it, and schedules its next deadline.
    fn run_core(&mut self, slot: usize, now: Instant, input: impl FnOnce(&mut MediaCore, Instant)) {
        let Some(Some(entry)) = self.slots.get_mut(slot) else {
            return;
        };
        let mut state = entry.call.shared.lock();
        let core = &mut state.core;
        input(core, now);
        while let Some(transmit) = core.poll_transmit(now, &mut self.out) {
            entry
                .call
                .socket
                .send_counted(transmit.channel, &self.out, transmit.to);
        }
        let audio = core.sample_rate() as usize * WAKE_FOR_AUDIO_MS / 1000;
        let attention = core.wants_attention(audio);
        let due = core.poll_timeout();
        state.scheduled = due;
        drop(state);
        entry.due = due;
        if attention {
            entry.call.signal.raise();
        }
        // A deadline that came forward is filed now; one that moved later
        // when its entry comes up (see the module documentation).
        if let Some(at) = due {
            let tick = self.tick_of(at);
            let filed = self.slots.get(slot).and_then(|e| e.as_ref()?.filed);
            if filed.is_none_or(|filed| tick < filed) {
                self.file(slot, tick);
            }
        }
    }
}

/// The tick in nanoseconds.
const TICK_NANOS: u64 = TICK.as_nanos() as u64;

/// When a pause after a busy turn that began at `turn` ends: a
/// [`COALESCE`] later, or at the first timer (`next`, from `epoch`) if
/// that comes first.
fn pause_end(turn: Instant, epoch: Instant, next: Option<Duration>) -> Instant {
    let end = turn + COALESCE;
    next.map_or(end, |at| end.min(epoch + at))
}

/// Nanoseconds from `epoch` to `at` (0 if before) in 64 bits, which hold
/// 584 years: the tick arithmetic stays out of 128-bit division.
fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    let since = at.saturating_duration_since(epoch);
    since
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(since.subsec_nanos()))
}

/// When `tick` begins, counted from the worker's epoch.
fn tick_start(tick: u64) -> Duration {
    Duration::from_nanos(tick.saturating_mul(TICK_NANOS))
}

/// A socket's `epoll` token: the call's slot and which of its sockets.
fn token(slot: usize, channel: Channel) -> u64 {
    (slot as u64) << 1 | u64::from(channel == Channel::Rtcp)
}

fn untoken(token: u64) -> (usize, Channel) {
    let channel = if token & 1 == 1 {
        Channel::Rtcp
    } else {
        Channel::Rtp
    };
    ((token >> 1) as usize, channel)
}

/// Takes ownership of a descriptor a system call returned.
///
/// # Safety
/// `fd` must be a new descriptor that nothing else owns, or negative.
unsafe fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the caller guarantees `fd` is new and unowned.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `fd` to `epoll`, level-triggered, readable.
fn add_fd(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: both descriptors are open; `event` is a live struct.
    let r = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn remove_fd(epoll: &OwnedFd, fd: RawFd) {
    // SAFETY: both descriptors are open (the socket is owned by the entry
    // being removed); a null event is allowed for EPOLL_CTL_DEL.
    unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut(),
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Places `calls` calls one by one on `workers` workers.
    fn place(workers: usize, calls: usize) -> Vec<usize> {
        let mut loads = vec![0; workers];
        for _ in 0..calls {
            let i = pick_worker(&loads).expect("a worker");
            loads[i] += 1;
        }
        loads
    }

    #[test]
    fn few_calls_share_one_worker_and_more_open_the_next() {
        assert_eq!(pick_worker(&[]), None);
        assert_eq!(place(2, 100), vec![100, 0]);
        assert_eq!(
            place(2, CALLS_PER_OPEN_WORKER),
            vec![CALLS_PER_OPEN_WORKER, 0]
        );
        // Past one worker's share the next takes new calls until even.
        assert_eq!(
            place(2, CALLS_PER_OPEN_WORKER + 1),
            vec![CALLS_PER_OPEN_WORKER, 1]
        );
        assert_eq!(place(2, 1000), vec![500, 500]);
        assert_eq!(place(4, 600), vec![250, 250, 100, 0]);
        assert_eq!(place(1, 5000), vec![5000]);
    }

    #[test]
    fn a_worker_emptied_by_hang_ups_takes_the_next_calls() {
        // Calls ended on the first worker: it is open and least loaded.
        assert_eq!(pick_worker(&[10, 400]), Some(0));
        // Few calls left in all: only the first worker is open.
        assert_eq!(pick_worker(&[30, 5]), Some(0));
    }

    /// A deadline is never run early, and one that falls due is run by
    /// the end of the millisecond it falls in; the wait for a tick does
    /// not overflow on a worker that has run for months.
    #[test]
    fn deadlines_round_up_to_their_tick() {
        let (_, looper) = Looper::new().unwrap();
        let epoch = looper.epoch;
        let at = epoch + Duration::from_micros(2_300);
        let tick = looper.tick_of(at);
        assert_eq!(tick, 3);
        assert!(epoch + tick_start(tick) >= at);
        assert_eq!(looper.tick_at_or_before(at), 2, "not due at 2.3 ms");
        assert_eq!(
            looper.tick_at_or_before(epoch + Duration::from_millis(3)),
            3
        );
        assert_eq!(looper.tick_of(epoch + Duration::from_millis(3)), 3);
        let months = 90 * 24 * 3_600_000u64;
        assert_eq!(tick_start(months), Duration::from_millis(months));
    }

    /// What the looper's `eventfd` counts (0 when nothing was written),
    /// reset.
    fn wakes_written(worker: &Worker) -> u64 {
        let mut counter = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer from the
        // worker's non-blocking eventfd.
        let n = unsafe { libc::read(worker.wake.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
        if n == 8 {
            u64::from_ne_bytes(counter)
        } else {
            0
        }
    }

    /// A command wakes the looper only when it would not come to the queue
    /// within the slack by itself, once per batch; and the looper never
    /// sleeps with a command queued.
    #[test]
    fn a_command_wakes_the_looper_only_when_it_would_not_come_soon() {
        let (worker, mut looper) = Looper::new().unwrap();
        let n = super::super::sdp::Negotiated::before_answer(super::super::Codec::Pcmu);
        let settings = super::super::MediaSettings {
            jitter: Duration::from_millis(60),
            rtp_timeout: Duration::from_secs(5),
            keepalive: crate::config::DEFAULT_KEEPALIVE,
        };
        let media = super::super::CallMedia::new(
            &n,
            settings,
            Instant::now(),
            std::time::SystemTime::now(),
            1,
        )
        .unwrap();
        let call = media.shared().clone();
        let from_now = |d: Duration| nanos_since(worker.epoch, Instant::now() + d);

        // Waiting with no timer: the first command of a batch writes.
        worker.wakes_at.store(NO_TIMER, Ordering::SeqCst);
        worker.reschedule(&call);
        worker.reschedule(&call);
        assert_eq!(wakes_written(&worker), 1, "one write for the batch");
        looper.commands(Instant::now());

        // Asleep until a timer well beyond the slack: a write.
        worker
            .wakes_at
            .store(from_now(Duration::from_millis(100)), Ordering::SeqCst);
        worker.reschedule(&call);
        assert_eq!(wakes_written(&worker), 1);
        looper.commands(Instant::now());

        // Asleep until a timer within the slack, or running: no write.
        worker
            .wakes_at
            .store(from_now(Duration::from_micros(500)), Ordering::SeqCst);
        worker.reschedule(&call);
        assert_eq!(wakes_written(&worker), 0, "the timer comes first");
        looper.commands(Instant::now());
        worker.wakes_at.store(AWAKE, Ordering::SeqCst);
        worker.reschedule(&call);
        assert_eq!(wakes_written(&worker), 0, "the looper is running");

        // With that command queued, the looper does not sleep until its
        // timer (5 s away), and it is running again once it returns.
        looper.timers.push(Reverse((
            looper.tick_of(Instant::now() + Duration::from_secs(5)),
            0,
            0,
        )));
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 4];
        let started = Instant::now();
        looper.wait(&mut events).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "slept with a command queued: {:?}",
            started.elapsed()
        );
        assert_eq!(worker.wakes_at.load(Ordering::SeqCst), AWAKE);
    }

    /// A pause after a busy turn ends a tick after the turn began, or at
    /// the first timer when that comes sooner.
    #[test]
    fn a_pause_ends_a_tick_after_the_turn_or_at_the_first_timer() {
        let epoch = Instant::now();
        let turn = epoch + Duration::from_millis(40);
        assert_eq!(pause_end(turn, epoch, None), turn + COALESCE);
        let late = Some(Duration::from_millis(45));
        assert_eq!(pause_end(turn, epoch, late), turn + COALESCE);
        let soon = Duration::from_micros(40_300);
        assert_eq!(pause_end(turn, epoch, Some(soon)), epoch + soon);
    }

    /// After a busy turn the looper leaves a ready datagram in its socket
    /// until a tick after that turn began; after a quiet one it takes it
    /// at once.
    #[test]
    fn a_busy_looper_takes_the_next_datagrams_a_tick_later() {
        let (_, mut looper) = Looper::new().unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        add_fd(&looper.epoll, socket.as_raw_fd(), 0).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .send_to(b"rtp", socket.local_addr().unwrap())
            .unwrap();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 4];

        looper.busy = true;
        looper.turn = Instant::now();
        assert_eq!(looper.wait(&mut events).unwrap(), 1);
        assert!(looper.turn.elapsed() >= COALESCE, "read before the tick");

        // Level-triggered: the datagram is still there; a quiet turn
        // does not pause, and neither does a busy one with a command
        // queued.
        looper.busy = false;
        assert_eq!(looper.wait(&mut events).unwrap(), 1);
        looper.busy = true;
        looper.turn = Instant::now() + Duration::from_secs(60);
        looper.worker.queued.store(true, Ordering::SeqCst);
        let started = Instant::now();
        assert_eq!(looper.wait(&mut events).unwrap(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "paused with a command queued"
        );
    }

    #[test]
    fn tokens_name_the_slot_and_the_socket() {
        for slot in [0usize, 1, 77, 1 << 20] {
            for channel in [Channel::Rtp, Channel::Rtcp] {
                assert_eq!(untoken(token(slot, channel)), (slot, channel));
                assert_ne!(token(slot, channel), WAKE_TOKEN);
            }
        }
    }
}

//! The media window of a run: every stream sent at once, the watched
//! process measured over exactly that window.
//!
//! The window opens when the first packets are due and closes 100 ms after
//! the last ones (the server's jitter buffer holds audio 60 ms before it
//! is written), or, if the receiver has not read everything by then, 100 ms
//! after its sockets' queues are empty (10 s at most): a receiver that
//! falls behind would otherwise do part of the window's work after its
//! CPU time was read. CPU time of the watched process (the server, or a floor
//! receiver) and of the load generator itself are read at both ends;
//! `VmRSS` is sampled every second inside the window and `VmHWM` at its
//! end. The SIP side (`Uac`) keeps being served meanwhile, so a request of
//! the server (its BYE) is answered at once.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

use crate::audio::Audio;
use crate::clock::{mono_ns, precise_timers};
use crate::lateness::Histogram;
use crate::procfs::{cpu_seconds, status_kb, SocketQueues, UdpCounters};
use crate::rtp::{send_streams, Stream, PTIME_NS};
use crate::uac::Uac;

/// The audio streams of a run, split over sender threads.
pub struct Plan {
    /// Per thread: its socket and its streams, sorted by phase.
    pub threads: Vec<(UdpSocket, Vec<Stream>)>,
    pub packets: u32,
    /// The senders wake at most this often (ns).
    pub granularity_ns: u64,
}

/// What the window measured.
pub struct Window {
    pub seconds: f64,
    pub sent: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub syscalls: u64,
    pub lateness: Histogram,
    pub per_thread_p99_us: Vec<f64>,
    pub watch_cpu_s: Option<f64>,
    pub self_cpu_s: f64,
    pub rss_max_kb: Option<u64>,
    pub hwm_kb: Option<u64>,
    pub udp: String,
    /// How long after the window's planned end the receiver's sockets
    /// still held unread data, and how much there was then.
    pub drain_s: f64,
    pub backlog_at_end: u64,
    pub drained: bool,
    /// Datagrams the kernel dropped on the receiver's sockets.
    pub receiver_drops: u64,
}

/// Phase of stream `i` of `n`: spread evenly over the packet time.
pub fn phase(i: usize, n: usize) -> u64 {
    (i as u64 * PTIME_NS) / n.max(1) as u64
}

/// Sends the plan's streams from `start` and measures `watch` meanwhile,
/// serving `uac` (if any) on this thread.
pub fn run(
    plan: Plan,
    audio: &Audio,
    start: u64,
    watch: Option<u32>,
    receiver: Ipv4Addr,
    mut uac: Option<&mut Uac>,
) -> Window {
    let me = std::process::id();
    let end = start + u64::from(plan.packets) * PTIME_NS + 100_000_000;
    let packets = plan.packets;
    let granularity = plan.granularity_ns;
    std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .threads
            .iter()
            .map(|(socket, streams)| {
                scope.spawn(move || {
                    precise_timers();
                    send_streams(socket, streams, audio, start, packets, granularity)
                })
            })
            .collect();
        let serve = |uac: &mut Option<&mut Uac>, until: u64| match uac {
            Some(u) => u.pump(until),
            None => crate::clock::sleep_until(until),
        };
        serve(&mut uac, start);
        let cpu0 = watch.and_then(cpu_seconds);
        let self0 = cpu_seconds(me).unwrap_or(0.0);
        let udp0 = UdpCounters::read();
        let queues0 = SocketQueues::read(receiver);
        let t0 = mono_ns();
        let mut rss_max: Option<u64> = None;
        let mut next_sample = start + 1_000_000_000;
        while next_sample < end {
            serve(&mut uac, next_sample);
            if let Some(kb) = watch.and_then(|p| status_kb(p, "VmRSS")) {
                rss_max = Some(rss_max.map_or(kb, |m| m.max(kb)));
            }
            next_sample += 1_000_000_000;
        }
        serve(&mut uac, end);
        let backlog = SocketQueues::read(receiver);
        let mut queues = backlog;
        while queues.rx_queue > 0 && mono_ns() < end + 10_000_000_000 {
            serve(&mut uac, mono_ns() + 10_000_000);
            queues = SocketQueues::read(receiver);
        }
        let drain_s = (mono_ns().max(end) - end) as f64 / 1e9;
        if backlog.rx_queue > 0 {
            // The last packets read still wait out the jitter buffer.
            serve(&mut uac, mono_ns() + 100_000_000);
        }
        let cpu1 = watch.and_then(cpu_seconds);
        let self1 = cpu_seconds(me).unwrap_or(0.0);
        let udp = UdpCounters::read().delta_json(&udp0);
        let seconds = (mono_ns() - t0) as f64 / 1e9;
        let hwm = watch.and_then(|p| status_kb(p, "VmHWM"));
        let mut window = Window {
            seconds,
            sent: 0,
            failed: 0,
            first_error: None,
            syscalls: 0,
            lateness: Histogram::default(),
            per_thread_p99_us: Vec::new(),
            watch_cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
            self_cpu_s: self1 - self0,
            rss_max_kb: rss_max,
            hwm_kb: hwm,
            udp,
            drain_s,
            backlog_at_end: backlog.rx_queue,
            drained: queues.rx_queue == 0,
            receiver_drops: queues.drops.saturating_sub(queues0.drops),
        };
        for handle in handles {
            let Ok(report) = handle.join() else {
                window
                    .first_error
                    .get_or_insert("a sender thread panicked".into());
                continue;
            };
            window.sent += report.sent;
            window.failed += report.failed;
            window.syscalls += report.syscalls;
            window
                .per_thread_p99_us
                .push(report.lateness.percentile_us(99.0));
            window.lateness.merge(&report.lateness);
            if window.first_error.is_none() {
                window.first_error = report.first_error;
            }
        }
        window
    })
}

impl Window {
    /// The report's `"window"` object.
    pub fn json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:.3}"));
        let opt_kb = |v: Option<u64>| v.map_or("null".to_string(), |x| x.to_string());
        format!(
            "{{\"seconds\": {:.3}, \"packets_sent\": {}, \"packets_failed\": {}, \"first_error\": {}, \
             \"sendmmsg_calls\": {}, \"lateness\": {}, \"per_thread_p99_us\": {:?}, \
             \"watch_cpu_s\": {}, \"loadgen_cpu_s\": {:.3}, \"watch_rss_max_kb\": {}, \
             \"watch_hwm_kb\": {}, \"udp\": {}, \"drain_s\": {:.3}, \
             \"backlog_at_end_octets\": {}, \"drained\": {}, \"receiver_drops\": {}}}",
            self.seconds,
            self.sent,
            self.failed,
            self.first_error
                .as_ref()
                .map_or("null".to_string(), |e| format!("{e:?}")),
            self.syscalls,
            self.lateness.json(),
            self.per_thread_p99_us,
            opt(self.watch_cpu_s),
            self.self_cpu_s,
            opt_kb(self.rss_max_kb),
            opt_kb(self.hwm_kb),
            self.udp,
            self.drain_s,
            self.backlog_at_end,
            self.drained,
            self.receiver_drops,
        )
    }
}

/// A UDP socket for one sender thread, on `ip` (any port).
pub fn sender_socket(ip: std::net::Ipv4Addr) -> std::io::Result<(UdpSocket, SocketAddrV4)> {
    let socket = UdpSocket::bind(SocketAddrV4::new(ip, 0))?;
    let addr = match socket.local_addr()? {
        std::net::SocketAddr::V4(a) => a,
        std::net::SocketAddr::V6(_) => return Err(std::io::Error::other("IPv6 socket")),
    };
    Ok((socket, addr))
}

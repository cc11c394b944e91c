//! vmesh-loadgen: the load generator of `scripts/bench.sh`.
//!
//! It plays many calling PBX legs at once on loopback and measures the
//! process under test over the media window only (set-up excluded), and
//! reports its own lateness so that its limits are never taken for the
//! server's. Three commands, one JSON report each (`--report FILE`):
//!
//! - `calls`: N calls signalled with SIP over UDP (INVITE with a PCMU
//!   offer, or G.722 or Opus with `--codec g722|opus`, ACK, BYE), set up at
//!   `--setup-rate` a second; once all are answered every call streams
//!   `--seconds` of speech (`--audio`: raw μ-law or G.722, or an Ogg Opus
//!   file of 20 ms frames) at 50 packets
//!   a second to the port the server's SDP answer names, all at once;
//!   then BYE to each. `--calls-out FILE` lists each call's Call-ID and
//!   where in the audio it started, for checking the recordings.
//! - `rtp`: the same streams without SIP, to ports `--port-base + 2i` of a
//!   floor receiver (`benches/floor/rtp_floor.c`), the same packet load.
//! - `setup`: short calls (INVITE, 200, ACK, BYE after `--hold-ms`, no
//!   audio) opened at `--rate` a second for `--seconds`; INVITE → 200 time
//!   percentiles and the server's CPU per call.
//!
//! The senders wake at most every `--granularity-us` (500 µs by default)
//! and send what is due then; each packet's lateness is reported.
//!
//! `--window-open CMD` and `--window-close CMD` run a shell command (to
//! its end) just before the measured stretch of `calls` (the media
//! window) or `setup` (the whole run) and just after it: a profiler's
//! switch, such as `callgrind_control -i on`, so that it counts exactly
//! the packets or calls of the run (`scripts/profile.sh`).
//!
//! `--realtime PRIORITY` runs it in the real-time FIFO class, so other
//! work on the machine does not delay its schedule (the server under test
//! keeps its normal class).
//!
//! It uses only `std` and `libc` (`clock_nanosleep`, `sendmmsg`,
//! `SO_TIMESTAMPNS`) so it builds anywhere the server builds, apart from
//! the server's package.

mod args;
mod audio;
mod clock;
mod lateness;
mod media;
mod procfs;
mod rtp;
mod sip;
mod uac;

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;

use args::Args;
use audio::Audio;
use clock::mono_ns;
use lateness::Histogram;
use media::{phase, Plan};
use procfs::{cpu_seconds, status_kb};
use rtp::Stream;
use sip::CallIds;
use uac::{CallState, Failure, Uac};

/// Bound of the wait for answers after the last INVITE, and for BYEs.
const SETTLE_NS: u64 = 40_000_000_000;

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let result = Args::parse(argv).and_then(|args| {
        let priority: i32 = args.get_or("realtime", 0)?;
        if priority > 0 {
            if let Err(e) = clock::realtime(priority) {
                // The run goes on; its lateness report shows what it cost.
                eprintln!("vmesh-loadgen: --realtime {priority}: cannot enter SCHED_FIFO ({e}); normal priority");
            }
        }
        Ok(args)
    });
    let result = result.and_then(|args| match command.as_str() {
        "calls" => calls(&args),
        "rtp" => rtp_only(&args),
        "setup" => setup(&args),
        _ => Err("usage: vmesh-loadgen calls|rtp|setup --key value ... (see src/main.rs)".into()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmesh-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A small xorshift generator: SSRCs, sequence numbers, tags.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        Rng(clock::real_ns() ^ (u64::from(std::process::id()) << 32) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The `--audio` file in the codec's frames: raw μ-law or G.722, or an
/// Ogg Opus file of 20 ms frames.
fn read_audio(args: &Args, codec: rtp::Codec) -> Result<Audio, String> {
    let path: String = args.get("audio")?;
    let data = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    match codec {
        rtp::Codec::Pcmu | rtp::Codec::G722 => Audio::fixed(data),
        rtp::Codec::Opus => Audio::ogg_opus(data),
    }
    .map_err(|e| format!("{path}: {e}"))
}

/// Where each call starts in the audio, in 20 ms frames, from
/// `--offsets-ms`.
fn offsets(args: &Args, frames: usize) -> Result<Vec<usize>, String> {
    let ms: Vec<u64> = args
        .list("offsets-ms")
        .or_else(|_| Ok::<_, String>(vec![0]))?;
    Ok(ms.iter().map(|m| (*m as usize / 20) % frames).collect())
}

/// The sender threads' sockets on `ip`.
fn sender_sockets(
    ip: Ipv4Addr,
    threads: usize,
) -> Result<Vec<(std::net::UdpSocket, SocketAddrV4)>, String> {
    (0..threads.max(1))
        .map(|_| {
            media::sender_socket(ip)
                .map_err(|e| format!("cannot bind a sender socket on {ip}: {e}"))
        })
        .collect()
}

/// Runs the shell command of option `key`, if given, to its end.
fn hook(args: &Args, key: &str) -> Result<(), String> {
    let Some(command) = args.opt::<String>(key)? else {
        return Ok(());
    };
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .status()
        .map_err(|e| format!("--{key}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("--{key}: {command:?} failed ({status})"))
    }
}

fn write_report(args: &Args, json: &str) -> Result<(), String> {
    let path: String = args.get("report")?;
    std::fs::write(&path, json).map_err(|e| format!("{path}: {e}"))
}

/// What every stream sends: the codec, and where in the audio each call
/// starts (call `i` at `offsets[i % len]`).
struct Source<'a> {
    codec: rtp::Codec,
    offsets: &'a [usize],
}

/// Streams for the answered calls: `(call index, destination)`.
fn plan(
    sockets: Vec<(std::net::UdpSocket, SocketAddrV4)>,
    dests: &[(usize, SocketAddrV4)],
    total: usize,
    source: &Source,
    packets: u32,
    granularity_ns: u64,
    rng: &mut Rng,
) -> Plan {
    let Source { codec, offsets } = *source;
    let n = sockets.len();
    let mut threads: Vec<(std::net::UdpSocket, Vec<Stream>)> =
        sockets.into_iter().map(|(s, _)| (s, Vec::new())).collect();
    for &(i, dest) in dests {
        let r = rng.next();
        threads[i % n].1.push(Stream {
            dest,
            ssrc: r as u32,
            first_seq: (r >> 32) as u16,
            first_ts: (r >> 16) as u32 & 0x7fff_ffff,
            offset: offsets[i % offsets.len()],
            phase_ns: phase(i, total),
            payload_type: codec.payload_type(),
            timestamp_step: codec.timestamp_step(),
        });
    }
    for (_, streams) in &mut threads {
        streams.sort_by_key(|s| s.phase_ns);
    }
    Plan {
        threads,
        packets,
        granularity_ns,
    }
}

/// `calls`: N recorded calls over SIP.
fn calls(args: &Args) -> Result<(), String> {
    let server: SocketAddrV4 = args.get("server")?;
    let local: Ipv4Addr = args.get("local")?;
    let mailbox: String = args.get_or("mailbox", "1001".to_string())?;
    let count: usize = args.get("calls")?;
    let rate: f64 = args.get_or("setup-rate", 200.0)?;
    let seconds: f64 = args.get("seconds")?;
    let threads: usize = args.get_or("threads", 1)?;
    let watch: Option<u32> = args.opt("watch")?;
    let codec = rtp::Codec::parse(&args.get_or("codec", "pcmu".to_string())?)?;
    let audio = read_audio(args, codec)?;
    let offsets = offsets(args, audio.frames())?;
    let packets = (seconds * 50.0).round() as u32;
    let mut rng = Rng::new();
    let run = format!("{:08x}", rng.next() as u32);

    let sockets = sender_sockets(local, threads)?;
    let mut uac = Uac::bind(SocketAddrV4::new(local, 0), server, None)
        .map_err(|e| format!("cannot bind the SIP socket on {local}: {e}"))?;
    let sip_local = uac.local().map_err(|e| e.to_string())?;
    for i in 0..count {
        let ids = CallIds {
            call_id: format!("lg-{run}-{i}@{local}"),
            from_tag: format!("{run}{i}"),
            local: sip_local,
            mailbox: mailbox.clone(),
            server,
            codec,
        };
        uac.add(ids, sockets[i % sockets.len()].1);
    }
    let rss_idle = watch.and_then(|p| status_kb(p, "VmRSS"));

    // Set-up: INVITEs on a fixed schedule; wait for every answer.
    let t_setup = mono_ns();
    let gap = (1e9 / rate) as u64;
    for i in 0..count {
        let due = t_setup + i as u64 * gap;
        uac.pump(due);
        uac.invite(i, due);
    }
    let all_answered = uac.settle(mono_ns() + SETTLE_NS, |u| {
        u.calls
            .iter()
            .all(|c| !matches!(c.state, CallState::Calling { .. }))
    });
    let setup_s = (mono_ns() - t_setup) as f64 / 1e9;
    let rss_before_media = watch.and_then(|p| status_kb(p, "VmRSS"));
    let dests: Vec<(usize, SocketAddrV4)> = uac
        .calls
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.state {
            CallState::Confirmed(d) => Some((i, d.media)),
            _ => None,
        })
        .collect();
    let mut answer = Histogram::default();
    for c in &uac.calls {
        if let Some(d) = c.state.dialog() {
            answer.record(d.answer_ns);
        }
    }

    // The media window.
    hook(args, "window-open")?;
    let granularity: u64 = args.get_or("granularity-us", 500)?;
    let plan = plan(
        sockets,
        &dests,
        count,
        &Source {
            codec,
            offsets: &offsets,
        },
        packets,
        granularity * 1_000,
        &mut rng,
    );
    let start = mono_ns() + 300_000_000;
    let window = media::run(plan, &audio, start, watch, *server.ip(), Some(&mut uac));
    hook(args, "window-close")?;

    // Hang up at the set-up rate; wait for every answer to the BYEs.
    let t_bye = mono_ns();
    for (n, &(i, _)) in dests.iter().enumerate() {
        let due = t_bye + n as u64 * gap;
        uac.pump(due);
        uac.bye(i);
    }
    uac.settle(mono_ns() + SETTLE_NS, |u| {
        u.calls
            .iter()
            .all(|c| !matches!(c.state, CallState::Ending { .. }))
    });

    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    let mut ends = std::collections::BTreeMap::<String, usize>::new();
    for c in &uac.calls {
        match &c.state {
            CallState::Failed(f) => *failures.entry(failure_name(f)).or_default() += 1,
            CallState::Ended(_, e) => *ends.entry(format!("{e:?}")).or_default() += 1,
            other => {
                *ends
                    .entry(format!("unfinished {}", state_name(other)))
                    .or_default() += 1
            }
        }
    }
    if let Some(path) = args.opt::<String>("calls-out")? {
        let mut out = String::from("call_id\toffset_ms\tanswered\n");
        for (i, c) in uac.calls.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}\t{}\t{}",
                c.ids.call_id,
                offsets[i % offsets.len()] * 20,
                u8::from(c.state.dialog().is_some())
            );
        }
        std::fs::write(&path, out).map_err(|e| format!("{path}: {e}"))?;
    }
    let json = format!(
        "{{\"mode\": \"calls\", \"calls\": {count}, \"answered\": {answered}, \"all_answered\": {all_answered}, \
         \"failures\": {failures}, \"ends\": {ends}, \"setup_rate\": {rate}, \"setup_s\": {setup_s:.3}, \
         \"answer\": {answer}, \"invite_lateness\": {inv}, \"sip\": {{\"retransmissions\": {retx}, \
         \"received\": {recv}, \"unmatched\": {unm}, \"send_errors\": {serr}}}, \
         \"packets_per_call\": {packets}, \"watch_rss_idle_kb\": {idle}, \"watch_rss_before_media_kb\": {before}, \
         \"window\": {window}}}\n",
        answered = dests.len(),
        failures = map_json(&failures),
        ends = map_json(&ends),
        answer = answer.json(),
        inv = uac.invite_lateness.json(),
        retx = uac.stats.retransmissions,
        recv = uac.stats.received,
        unm = uac.stats.unmatched,
        serr = uac.stats.send_errors,
        idle = opt_kb(rss_idle),
        before = opt_kb(rss_before_media),
        window = window.json(),
    );
    write_report(args, &json)
}

/// `rtp`: the same streams to a floor receiver, no SIP.
fn rtp_only(args: &Args) -> Result<(), String> {
    let dest: Ipv4Addr = args.get("dest")?;
    let local: Ipv4Addr = args.get("local")?;
    let port_base: u16 = args.get("port-base")?;
    let count: usize = args.get("calls")?;
    let seconds: f64 = args.get("seconds")?;
    let threads: usize = args.get_or("threads", 1)?;
    let watch: Option<u32> = args.opt("watch")?;
    let codec = rtp::Codec::parse(&args.get_or("codec", "pcmu".to_string())?)?;
    let audio = read_audio(args, codec)?;
    let offsets = offsets(args, audio.frames())?;
    let packets = (seconds * 50.0).round() as u32;
    let mut rng = Rng::new();
    let dests: Vec<(usize, SocketAddrV4)> = (0..count)
        .map(|i| {
            let port = u32::from(port_base) + 2 * i as u32;
            u16::try_from(port)
                .map(|p| (i, SocketAddrV4::new(dest, p)))
                .map_err(|_| format!("port {port} is out of range"))
        })
        .collect::<Result<_, _>>()?;
    let rss_idle = watch.and_then(|p| status_kb(p, "VmRSS"));
    let sockets = sender_sockets(local, threads)?;
    let granularity: u64 = args.get_or("granularity-us", 500)?;
    let plan = plan(
        sockets,
        &dests,
        count,
        &Source {
            codec,
            offsets: &offsets,
        },
        packets,
        granularity * 1_000,
        &mut rng,
    );
    let start = mono_ns() + 300_000_000;
    let window = media::run(plan, &audio, start, watch, dest, None);
    let json = format!(
        "{{\"mode\": \"rtp\", \"calls\": {count}, \"packets_per_call\": {packets}, \
         \"watch_rss_idle_kb\": {idle}, \"window\": {window}}}\n",
        idle = opt_kb(rss_idle),
        window = window.json(),
    );
    write_report(args, &json)
}

/// `setup`: short calls at a fixed rate; INVITE → 200 and CPU per call.
fn setup(args: &Args) -> Result<(), String> {
    let server: SocketAddrV4 = args.get("server")?;
    let local: Ipv4Addr = args.get("local")?;
    let mailbox: String = args.get_or("mailbox", "1001".to_string())?;
    let rate: f64 = args.get("rate")?;
    let seconds: f64 = args.get("seconds")?;
    let hold_ms: u64 = args.get_or("hold-ms", 100)?;
    let watch: Option<u32> = args.opt("watch")?;
    let count = (rate * seconds).round().max(1.0) as usize;
    let mut rng = Rng::new();
    let run = format!("{:08x}", rng.next() as u32);
    // The offer names a port nobody sends from: these calls carry no audio.
    let (_media, rtp) = media::sender_socket(local).map_err(|e| e.to_string())?;
    let mut uac = Uac::bind(
        SocketAddrV4::new(local, 0),
        server,
        Some(hold_ms * 1_000_000),
    )
    .map_err(|e| format!("cannot bind the SIP socket on {local}: {e}"))?;
    let sip_local = uac.local().map_err(|e| e.to_string())?;
    for i in 0..count {
        let ids = CallIds {
            call_id: format!("su-{run}-{i}@{local}"),
            from_tag: format!("{run}{i}"),
            local: sip_local,
            mailbox: mailbox.clone(),
            server,
            codec: rtp::Codec::Pcmu,
        };
        uac.add(ids, rtp);
    }
    hook(args, "window-open")?;
    let me = std::process::id();
    let rss_before = watch.and_then(|p| status_kb(p, "VmRSS"));
    let cpu0 = watch.and_then(cpu_seconds);
    let self0 = cpu_seconds(me).unwrap_or(0.0);
    let t0 = mono_ns();
    let gap = (1e9 / rate) as u64;
    for i in 0..count {
        let due = t0 + i as u64 * gap;
        uac.pump(due);
        uac.invite(i, due);
    }
    let sent_s = (mono_ns() - t0) as f64 / 1e9;
    let settled = uac.settle(mono_ns() + SETTLE_NS, |u| u.finished == u.calls.len());
    // The server finishes each call's storage just after its BYE.
    uac.pump(mono_ns() + 300_000_000);
    let elapsed = (mono_ns() - t0) as f64 / 1e9;
    let cpu = cpu0.zip(watch.and_then(cpu_seconds)).map(|(a, b)| b - a);
    let self_cpu = cpu_seconds(me).unwrap_or(0.0) - self0;
    // What the server holds after the run: the ended transactions it
    // keeps for retransmissions (32 s each) are at their steady state.
    let rss_after = watch.and_then(|p| status_kb(p, "VmRSS"));
    hook(args, "window-close")?;
    let mut answer = Histogram::default();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    let mut ends = std::collections::BTreeMap::<String, usize>::new();
    for c in &uac.calls {
        if let Some(d) = c.state.dialog() {
            answer.record(d.answer_ns);
        }
        match &c.state {
            CallState::Failed(f) => *failures.entry(failure_name(f)).or_default() += 1,
            CallState::Ended(_, e) => *ends.entry(format!("{e:?}")).or_default() += 1,
            other => {
                *ends
                    .entry(format!("unfinished {}", state_name(other)))
                    .or_default() += 1
            }
        }
    }
    let json = format!(
        "{{\"mode\": \"setup\", \"rate\": {rate}, \"calls\": {count}, \"answered\": {answered}, \
         \"all_settled\": {settled}, \"failures\": {failures}, \"ends\": {ends}, \"hold_ms\": {hold_ms}, \
         \"invites_sent_s\": {sent_s:.3}, \"elapsed_s\": {elapsed:.3}, \"answer\": {answer}, \
         \"invite_lateness\": {inv}, \"sip\": {{\"retransmissions\": {retx}, \"received\": {recv}, \
         \"unmatched\": {unm}, \"send_errors\": {serr}}}, \"watch_cpu_s\": {cpu}, \"loadgen_cpu_s\": {self_cpu:.3}, \
         \"watch_rss_before_kb\": {rss0}, \"watch_rss_after_kb\": {rss1}}}\n",
        answered = answer.count(),
        failures = map_json(&failures),
        ends = map_json(&ends),
        answer = answer.json(),
        inv = uac.invite_lateness.json(),
        retx = uac.stats.retransmissions,
        recv = uac.stats.received,
        unm = uac.stats.unmatched,
        serr = uac.stats.send_errors,
        cpu = cpu.map_or("null".to_string(), |c| format!("{c:.3}")),
        rss0 = opt_kb(rss_before),
        rss1 = opt_kb(rss_after),
    );
    write_report(args, &json)
}

/// A kilobyte figure read from /proc as JSON (null when it could not be read).
fn opt_kb(v: Option<u64>) -> String {
    v.map_or("null".to_string(), |x| x.to_string())
}

fn failure_name(f: &Failure) -> String {
    match f {
        Failure::Status(s) => format!("status {s}"),
        Failure::Timeout => "timeout".into(),
        Failure::NoSdp => "200 without SDP".into(),
    }
}

fn state_name(s: &CallState) -> &'static str {
    match s {
        CallState::Idle => "idle",
        CallState::Calling { .. } => "calling",
        CallState::Confirmed(_) => "confirmed",
        CallState::Ending { .. } => "ending",
        CallState::Ended(..) => "ended",
        CallState::Failed(_) => "failed",
    }
}

fn map_json(m: &std::collections::BTreeMap<String, usize>) -> String {
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
    format!("{{{}}}", items.join(", "))
}

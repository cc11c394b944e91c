//! What the caller hears and what vmesh keeps, end to end through the real
//! binary: the greeting and the beep as RTP (pacing, headers, content), the
//! greeting chosen by the diversion reason, a DTMF digit skipping the
//! greeting, the recording ended by silence and an all-silent message
//! discarded, and messages stored as Ogg Opus.
//!
//! The caller is a raw SIP client with an RTP socket of its own that sends
//! and receives at once: a thread collects every packet vmesh sends with
//! the kernel's arrival time (so its own scheduling does not show as
//! vmesh's jitter), while the test sends audio and telephone-events paced on a
//! 20 ms wall clock, as a phone does.

mod common;

use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::audio::{read_wav_data, ulaw_to_linear};
use common::dialog::Dialog;
use common::media::{sdp, sdp_audio_addr, sdp_payload_types, sdp_rtpmap};
use common::raw_sip::request;
use common::{
    aligned_correlation, assert_recording_matches, assert_short_speech_recorded, call_timeout,
    duration_ms, field, number, read_wav_mono_i16, testdata, Server, ServerConfig, SipUdp, TestNet,
    MAX_LAG_SAMPLES, SPEECH_MS, SPEECH_SHORT_MS, SPEECH_SHORT_ULAW, SPEECH_ULAW,
};
use vmesh::voicemail::greetings::{load_pcm, Greeting};

/// G.711's rate, and the RTP clock of PCMU.
const RATE: u32 = 8000;
/// Samples (and μ-law bytes) per 20 ms packet.
const FRAME: usize = 160;
/// The packet interval.
const PTIME: Duration = Duration::from_millis(20);
/// PCMU's static payload type (RFC 3551).
const PCMU: u8 = 0;
/// The payload type our offer gives telephone-event.
const EVENT_PT: u8 = 101;
/// μ-law digital silence (decodes to 0).
const ULAW_SILENCE: u8 = 0xFF;
/// How long an answer may take.
const ANSWER: Duration = Duration::from_secs(2);
/// How long a stored message may take to appear after the call ends.
const STORE_WAIT: Duration = Duration::from_secs(5);
/// Packets of digital silence after the beep that show the prompts are
/// over: vmesh keeps the stream alive with silence while it records.
const KEEPALIVE_AFTER_BEEP: usize = 3;
/// The beep of the default profile: 1 kHz for 250 ms.
const BEEP_HZ: f64 = 1000.0;
/// Length of the busy greeting made by the test.
const TONE_GREETING_MS: u64 = 1500;

// ---------------------------------------------------------------------
// The caller's RTP: a pacing clock, a sender and a receiving thread.
// ---------------------------------------------------------------------

/// A 20 ms grid from a start time; each tick sleeps until the next slot,
/// so a stream paced on it does not drift. A clock left idle (the caller
/// listening without sending) starts a new grid at its next tick rather
/// than catching up in a burst.
struct Clock {
    start: Instant,
    ticks: u32,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Instant::now(),
            ticks: 0,
        }
    }

    fn tick(&mut self) {
        let mut due = self.start + PTIME * self.ticks;
        if Instant::now().saturating_duration_since(due) > 2 * PTIME {
            self.start = Instant::now();
            self.ticks = 0;
            due = self.start;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        self.ticks += 1;
    }
}

/// The caller's RTP sender: one SSRC, sequence +1 per packet, timestamp
/// +160 per 20 ms of audio, marker on the first packet and on the first
/// packet of each telephone-event (RFC 3550, RFC 4733 §2.5.1.3).
struct RtpPeer {
    socket: UdpSocket,
    ssrc: u32,
    seq: u16,
    ts: u32,
    started: bool,
}

impl RtpPeer {
    fn bind(ip: Ipv4Addr) -> RtpPeer {
        let socket = UdpSocket::bind((ip, 0)).expect("bind the caller's RTP socket");
        RtpPeer {
            socket,
            ssrc: 0x0CA1_1E50,
            seq: 65_500, // wraps during the call
            ts: 0xFFFF_0000,
            started: false,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("RTP socket address")
    }

    fn send(&mut self, dest: SocketAddr, payload_type: u8, marker: bool, ts: u32, payload: &[u8]) {
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80);
        packet.push(if marker { 0x80 } else { 0 } | payload_type);
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&ts.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.socket.send_to(&packet, dest).expect("send RTP");
        self.seq = self.seq.wrapping_add(1);
    }

    /// One 20 ms PCMU packet.
    fn audio(&mut self, dest: SocketAddr, frame: &[u8]) {
        let marker = !self.started;
        self.started = true;
        self.send(dest, PCMU, marker, self.ts, frame);
        self.ts = self.ts.wrapping_add(FRAME as u32);
    }

    /// A key press as RFC 4733 telephone-events, one packet per tick: two
    /// updates then the end packet three times (§2.5.1.4), all with the
    /// event's start timestamp. Returns when the first packet went out.
    fn digit(
        &mut self,
        dest: SocketAddr,
        payload_type: u8,
        event: u8,
        clock: &mut Clock,
    ) -> Instant {
        const UPDATES: u16 = 2;
        let start_ts = self.ts;
        let mut first = None;
        for i in 0..UPDATES + 3 {
            clock.tick();
            let end = i >= UPDATES;
            let duration = FRAME as u16 * (i.min(UPDATES) + 1);
            let flags = if end { 0x80 } else { 0 } | 10; // E bit, volume -10 dBm0
            let mut payload = vec![event, flags];
            payload.extend_from_slice(&duration.to_be_bytes());
            first.get_or_insert_with(Instant::now);
            self.send(dest, payload_type, i == 0, start_ts, &payload);
        }
        // Audio resumes on the media clock, after the event's time.
        self.ts = start_ts.wrapping_add(FRAME as u32 * u32::from(UPDATES + 3));
        first.expect("the event was sent")
    }
}

/// One RTP packet vmesh sent, as it arrived.
#[derive(Clone)]
struct Received {
    at: Instant,
    from: SocketAddr,
    bytes: Vec<u8>,
}

/// Asks the kernel to stamp each datagram with the time it was queued on
/// `socket` (SO_TIMESTAMPNS). On loopback that is the moment the sender's
/// `sendto` ran.
fn enable_receive_timestamps(socket: &UdpSocket) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and an option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_TIMESTAMPNS: {}", io::Error::last_os_error());
}

/// Receives one IPv4 datagram with its kernel arrival time.
fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, SystemTime)> {
    // SAFETY: all-zero is a valid sockaddr_in and msghdr.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the lengths it states.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let from = SocketAddr::from((
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ));
    let stamp = stamp.expect("the kernel stamps every datagram once SO_TIMESTAMPNS is on");
    Ok((n as usize, from, stamp))
}

/// Everything that arrives on the caller's RTP socket, with the kernel's
/// arrival time, collected by a thread of its own.
struct Capture {
    packets: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(socket: &UdpSocket) -> Capture {
        let socket = socket.try_clone().expect("clone the RTP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .expect("RTP read timeout");
        enable_receive_timestamps(&socket);
        // The kernel's wall-clock stamps, placed on the monotonic clock the
        // test's other instants use.
        let (base, base_wall) = (Instant::now(), SystemTime::now());
        let packets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (packets, stop) = (packets.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    match recv_stamped(&socket, &mut buf) {
                        Ok((n, from, stamp)) => {
                            let at = base
                                + stamp
                                    .duration_since(base_wall)
                                    .expect("a packet stamped before the capture began");
                            packets.lock().unwrap().push(Received {
                                at,
                                from,
                                bytes: buf[..n].to_vec(),
                            });
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock
                                    | ErrorKind::TimedOut
                                    | ErrorKind::ConnectionRefused
                            ) => {}
                        Err(e) => panic!("receive RTP: {e}"),
                    }
                }
            })
        };
        Capture {
            packets,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits for the first packet; returns its arrival.
    fn wait_first(&self, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.packets.lock().unwrap().first() {
                return p.at;
            }
            assert!(
                Instant::now() < deadline,
                "vmesh sent no RTP within {timeout:?} of the answer"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// True once the beep was followed by [`KEEPALIVE_AFTER_BEEP`] packets
    /// of silence: the prompts are over and vmesh records.
    fn is_quiet(&self) -> bool {
        let packets = self.packets.lock().unwrap();
        let Some(last_sound) = packets.iter().rposition(|p| !is_silence(p)) else {
            return false;
        };
        let after = packets.len() - 1 - last_sound;
        after >= KEEPALIVE_AFTER_BEEP
            && tone_share(&decode(&packets[last_sound..=last_sound]), BEEP_HZ) > 0.7
    }

    /// Waits until [`Capture::is_quiet`].
    fn wait_quiet(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.is_quiet() {
            assert!(
                Instant::now() < deadline,
                "the prompts did not end within {timeout:?} ({} packets so far)",
                self.packets.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn finish(mut self) -> Vec<Received> {
        self.halt();
        std::mem::take(&mut *self.packets.lock().unwrap())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the RTP capture thread");
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.halt();
    }
}

// ---------------------------------------------------------------------
// The call: INVITE with a PCMU + telephone-event offer, ACK, BYE.
// ---------------------------------------------------------------------

struct Call {
    udp: SipUdp,
    dialog: Dialog,
    /// Where vmesh wants our RTP (its answer's c= and m= lines).
    media: SocketAddr,
    rtp: RtpPeer,
    capture: Capture,
    clock: Clock,
}

impl Call {
    /// Calls mailbox 1001 with the extra header lines, answers the 200
    /// with an ACK and starts capturing (before the INVITE, so nothing
    /// vmesh sends is missed).
    fn place(server: &Server, extra_headers: &[&str]) -> Call {
        let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
        let rtp = RtpPeer::bind(server.net.peer_ip);
        let capture = Capture::start(&rtp.socket);
        let offer = sdp(
            rtp.addr(),
            &[(PCMU, "PCMU/8000"), (EVENT_PT, "telephone-event/8000")],
        );
        let mut headers = vec!["Content-Type: application/sdp"];
        headers.extend_from_slice(extra_headers);
        let uri = format!("sip:1001@{}", server.net.sip_addr());
        let invite = request("INVITE", &uri, udp.local_addr(), "UDP", &headers, &offer);
        let response = udp
            .transact(&invite, ANSWER)
            .unwrap_or_else(|| panic!("no final response to the INVITE:\n{invite}"));
        assert_eq!(response.status, 200, "{}", response.raw);
        assert_eq!(
            sdp_payload_types(&response.body).first(),
            Some(&PCMU),
            "the answer picks PCMU: {}",
            response.body
        );
        assert_eq!(
            sdp_rtpmap(&response.body, "telephone-event"),
            Some(EVENT_PT),
            "the answer keeps our telephone-event type: {}",
            response.body
        );
        let media = sdp_audio_addr(&response.body).expect("an audio address in the answer");
        let dialog = Dialog::from_2xx(&response, udp.local_addr(), "UDP");
        udp.send(dialog.ack(None).as_bytes());
        Call {
            udp,
            dialog,
            media,
            rtp,
            capture,
            clock: Clock::new(),
        }
    }

    /// Streams μ-law `payload` in 20 ms packets on the call's clock.
    fn stream(&mut self, payload: &[u8]) {
        for frame in payload.chunks_exact(FRAME) {
            self.clock.tick();
            self.rtp.audio(self.media, frame);
        }
    }

    /// One packet of digital silence on the call's clock.
    fn silence_frame(&mut self) {
        self.clock.tick();
        self.rtp.audio(self.media, &[ULAW_SILENCE; FRAME]);
    }

    /// Sends BYE and waits for its 200; returns what vmesh sent.
    fn hang_up(self) -> Vec<Received> {
        self.udp.send(self.dialog.bye().as_bytes());
        assert_eq!(
            self.udp
                .final_response_to("BYE", ANSWER)
                .expect("a final response to BYE")
                .status,
            200
        );
        self.capture.finish()
    }
}

fn prompt_server() -> Server {
    Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            prompts: true,
            ..ServerConfig::default()
        },
    )
}

/// The μ-law payload of testdata/speech-short-ulaw.wav (3 s of speech).
fn short_speech() -> Vec<u8> {
    read_wav_data(&testdata(SPEECH_SHORT_ULAW))
}

fn one_message(server: &Server, wait: Duration) -> serde_json::Value {
    let mut messages = server.wait_messages(1, wait);
    assert_eq!(messages.len(), 1, "want exactly one message: {messages:?}");
    messages.remove(0)
}

// ---------------------------------------------------------------------
// What vmesh sent: headers, pacing, greeting and beep.
// ---------------------------------------------------------------------

/// Inter-arrival statistics of a packet stream, in milliseconds.
#[derive(Debug)]
struct Pacing {
    mean: f64,
    jitter_max: f64,
    max: f64,
}

/// Checks the RTP headers of the prompt stream: version 2, PCMU, one SSRC,
/// the marker on the first packet only, sequence +1 and timestamp +160
/// from packet to packet, 160-byte payloads, all from vmesh's media
/// address.
fn check_headers(packets: &[Received], media: SocketAddr) {
    assert!(packets.len() > 13, "too few packets: {}", packets.len());
    let ssrc = |p: &[u8]| u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
    let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let first = &packets[0].bytes;
    for (i, p) in packets.iter().enumerate() {
        let b = &p.bytes;
        assert_eq!(b.len(), 12 + FRAME, "packet {i}: length");
        assert_eq!(b[0], 0x80, "packet {i}: V=2, no padding/extension/CSRC");
        assert_eq!(b[1] & 0x7F, PCMU, "packet {i}: payload type");
        assert_eq!(b[1] >> 7 == 1, i == 0, "packet {i}: marker bit");
        assert_eq!(ssrc(b), ssrc(first), "packet {i}: SSRC changed");
        assert_eq!(p.from, media, "packet {i}: not from the answer's address");
        if i > 0 {
            let prev = &packets[i - 1].bytes;
            assert_eq!(seq(b), seq(prev).wrapping_add(1), "packet {i}: sequence");
            assert_eq!(
                ts(b),
                ts(prev).wrapping_add(FRAME as u32),
                "packet {i}: timestamp"
            );
        }
    }
}

/// Splits what vmesh sent into the prompt stream (the prompts and the
/// run of consecutive frames of silence after them, until the keep-alive's
/// encoder settles) and the sparse keep-alive that follows.
fn prompt_stream(packets: &[Received]) -> (&[Received], &[Received]) {
    let ts = |p: &Received| u32::from_be_bytes([p.bytes[4], p.bytes[5], p.bytes[6], p.bytes[7]]);
    let last_sound = packets.iter().rposition(|p| !is_silence(p)).unwrap_or(0);
    let split = (last_sound + 1..packets.len())
        .find(|&i| ts(&packets[i]).wrapping_sub(ts(&packets[i - 1])) != FRAME as u32)
        .unwrap_or(packets.len());
    packets.split_at(split)
}

/// Checks the keep-alive after the prompt stream (`packets[from..]`): by
/// default one frame of μ-law silence every 200 ms, each with the marker
/// (a talkspurt after a gap, RFC 3551 §4.1), in the same SSRC with the
/// next sequence number and the timestamp of its slot (+1600).
fn check_keepalive(packets: &[Received], from: usize) {
    assert!(
        from > 0 && packets.len() > from + 5,
        "no sparse keep-alive after the prompts: {} packets, {} in the prompt stream",
        packets.len(),
        from
    );
    for i in from..packets.len() {
        let (b, prev) = (&packets[i].bytes, &packets[i - 1].bytes);
        assert!(
            is_silence(&packets[i]),
            "keep-alive packet {i} is not silence"
        );
        assert_eq!(b[1], 0x80 | PCMU, "keep-alive packet {i}: PCMU, marker");
        assert_eq!(b[8..12], prev[8..12], "keep-alive packet {i}: SSRC changed");
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(
            seq(b),
            seq(prev).wrapping_add(1),
            "keep-alive packet {i}: sequence"
        );
        assert_eq!(
            ts(b).wrapping_sub(ts(prev)),
            10 * FRAME as u32,
            "keep-alive packet {i}: timestamp"
        );
    }
    let span = packets[packets.len() - 1].at - packets[from].at;
    let mean = span.as_secs_f64() * 1000.0 / (packets.len() - 1 - from) as f64;
    eprintln!(
        "keep-alive: {} packets, one every {mean:.1} ms",
        packets.len() - from
    );
    assert!(
        (mean - 200.0).abs() <= 5.0,
        "keep-alive every {mean:.1} ms (want 200)"
    );
}

fn pacing(packets: &[Received]) -> Pacing {
    let rtp_ts =
        |p: &Received| u32::from_be_bytes([p.bytes[4], p.bytes[5], p.bytes[6], p.bytes[7]]);
    // Each interval: as it arrived, and as the RTP timestamps say it was
    // sent (PCMU's 8 kHz clock), in milliseconds.
    let intervals: Vec<(f64, f64)> = packets
        .windows(2)
        .map(|w| {
            let arrival = (w[1].at - w[0].at).as_secs_f64() * 1000.0;
            let sent = f64::from(rtp_ts(&w[1]).wrapping_sub(rtp_ts(&w[0]))) / 8.0;
            (arrival, sent)
        })
        .collect();
    let mean = intervals.iter().map(|(a, _)| a).sum::<f64>() / intervals.len() as f64;
    let max = intervals.iter().map(|(a, _)| *a).fold(0.0, f64::max);
    // RFC 3550 §6.4.1 / A.8: the interarrival jitter a receiver computes
    // (and reports in its RTCP receiver reports), smoothed with gain 1/16.
    let (_, jitter_max) =
        intervals
            .iter()
            .fold((0.0f64, 0.0f64), |(jitter, most), (arrival, sent)| {
                let jitter = jitter + ((arrival - sent).abs() - jitter) / 16.0;
                (jitter, most.max(jitter))
            });
    Pacing {
        mean,
        jitter_max,
        max,
    }
}

/// A phone's jitter buffer absorbs a late packet; what it cannot absorb is
/// a stream that drifts from 20 ms (mean), jitters throughout (the RFC 3550
/// interarrival jitter the phone would report), or stalls longer than two
/// packet times. One late packet on a loaded host moves the first two only
/// a little, which is why the jitter, not the spread of single gaps, is
/// the bound.
fn assert_paced(packets: &[Received]) -> Pacing {
    let p = pacing(packets);
    eprintln!(
        "pacing over {} packets: mean {:.3} ms, RFC 3550 jitter max {:.3} ms, max gap {:.3} ms",
        packets.len(),
        p.mean,
        p.jitter_max,
        p.max
    );
    assert!(
        (p.mean - 20.0).abs() <= 0.5,
        "mean packet interval {:.3} ms (want 20 ± 0.5)",
        p.mean
    );
    assert!(
        p.jitter_max < 3.0,
        "interarrival jitter reached {:.3} ms (want < 3)",
        p.jitter_max
    );
    assert!(p.max <= 40.0, "largest gap {:.3} ms (want <= 40)", p.max);
    p
}

fn decode(packets: &[Received]) -> Vec<i16> {
    packets
        .iter()
        .flat_map(|p| p.bytes[12..].iter().map(|&b| ulaw_to_linear(b)))
        .collect()
}

/// Power of `hz` in `x` (Goertzel), as |X(hz)|².
fn goertzel(x: &[i16], hz: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(RATE)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The share of `x`'s energy at `hz` (1.0 for a pure tone of whole
/// periods), over its non-silent span.
fn tone_share(x: &[i16], hz: f64) -> f64 {
    let loud = |s: &i16| i32::from(*s).abs() > 50;
    let (Some(from), Some(to)) = (x.iter().position(loud), x.iter().rposition(loud)) else {
        return 0.0;
    };
    let x = &x[from..=to];
    let energy: f64 = x.iter().map(|&s| f64::from(s).powi(2)).sum();
    2.0 * goertzel(x, hz) / (x.len() as f64 * energy)
}

/// The prompt stream cut into greeting and beep: the beep is the final
/// run of packets whose audio is the 1 kHz tone before the keep-alive.
struct Prompt {
    greeting: Vec<i16>,
    beep: Vec<i16>,
    /// Index of the beep's first packet.
    beep_first: usize,
}

/// Whether a packet's payload is μ-law digital silence: what vmesh sends
/// to keep the stream alive between prompts and while it records.
fn is_silence(packet: &Received) -> bool {
    packet.bytes.len() > 12 && packet.bytes[12..].iter().all(|&b| b == ULAW_SILENCE)
}

fn split_prompt(packets: &[Received]) -> Prompt {
    // What follows the beep is the keep-alive: silence, nothing else.
    let end = packets
        .iter()
        .rposition(|p| !is_silence(p))
        .map_or(0, |i| i + 1);
    assert!(
        end < packets.len(),
        "vmesh sent nothing after the prompts: no keep-alive while recording"
    );
    let packets = &packets[..end];
    let mut first = packets.len();
    while first > 0 && tone_share(&decode(&packets[first - 1..first]), BEEP_HZ) > 0.7 {
        first -= 1;
    }
    assert!(
        first < packets.len(),
        "the last sound vmesh sent before its keep-alive is not a {BEEP_HZ} Hz tone: no beep"
    );
    Prompt {
        greeting: decode(&packets[..first]),
        beep: decode(&packets[first..]),
        beep_first: first,
    }
}

/// The beep's figures: (frequency by Goertzel peak, frequency by zero
/// crossings, length in ms of the part above a tenth of its peak).
fn beep_figures(beep: &[i16]) -> (f64, f64, f64) {
    let peak = beep.iter().map(|&s| i32::from(s).abs()).max().unwrap_or(0);
    let loud = |s: &i16| i32::from(*s).abs() * 10 > peak;
    let from = beep.iter().position(loud).expect("a loud beep");
    let to = beep.iter().rposition(loud).expect("a loud beep");
    let tone = &beep[from..=to];
    let length_ms = (to + 1 - from) as f64 * 1000.0 / f64::from(RATE);
    let scan = |lo: f64, hi: f64, step: f64| {
        let mut best = (lo, f64::MIN);
        let mut f = lo;
        while f <= hi {
            let power = goertzel(tone, f);
            if power > best.1 {
                best = (f, power);
            }
            f += step;
        }
        best.0
    };
    let coarse = scan(200.0, 3800.0, 5.0);
    let goertzel_hz = scan(coarse - 5.0, coarse + 5.0, 0.1);
    let signs: Vec<bool> = tone.iter().filter(|&&s| s != 0).map(|&s| s > 0).collect();
    let crossings = signs.windows(2).filter(|w| w[0] != w[1]).count();
    let zc_hz = crossings as f64 / 2.0 / (tone.len() as f64 / f64::from(RATE));
    (goertzel_hz, zc_hz, length_ms)
}

fn assert_beep(prompt: &Prompt) {
    let (hz, zc_hz, length_ms) = beep_figures(&prompt.beep);
    eprintln!(
        "beep: {hz:.1} Hz (Goertzel peak), {zc_hz:.1} Hz (zero crossings), {length_ms:.1} ms, \
         in the last {} packets",
        prompt.beep.len() / FRAME
    );
    assert!(
        (hz - BEEP_HZ).abs() <= 20.0,
        "beep at {hz:.1} Hz (want {BEEP_HZ} ± 20)"
    );
    assert!(
        (240.0..=270.0).contains(&length_ms),
        "beep lasts {length_ms:.1} ms (want 240-270)"
    );
    // The beep closes the prompts: it is their last 250 ms (13 packets with
    // the padding of its last frame).
    assert!(
        prompt.beep.len() <= 14 * FRAME,
        "the tone at the end spans {} samples: more than the beep",
        prompt.beep.len()
    );
}

/// The greeting sent against the file it came from, at 8 kHz: aligned
/// NCC and length. Returns (lag, NCC).
fn assert_greeting(what: &str, sent: &[i16], reference: &[i16]) -> (i64, f64) {
    let (lag, ncc) = aligned_correlation(reference, sent, MAX_LAG_SAMPLES);
    eprintln!(
        "{what}: {} ms sent for {} ms in the file, NCC {ncc:.4} at lag {lag} samples",
        duration_ms(sent.len(), RATE),
        duration_ms(reference.len(), RATE)
    );
    assert!(
        ncc > 0.9,
        "{what} does not match its file: NCC {ncc:.3} at lag {lag} (want > 0.9)"
    );
    let frames = |n: usize| n.div_ceil(FRAME);
    assert!(
        frames(sent.len()).abs_diff(frames(reference.len())) <= 1,
        "{what}: {} samples sent for {} in the file",
        sent.len(),
        reference.len()
    );
    (lag, ncc)
}

/// Windows of `x` (40 ms, every 20 ms) that sound like DTMF key 5
/// (770 + 1336 Hz): most of their energy at those two frequencies.
/// Returns (such windows, the largest share seen).
fn dtmf_five_windows(x: &[i16]) -> (usize, f64) {
    let mut hits = 0;
    let mut most = 0.0f64;
    for start in (0..x.len().saturating_sub(320)).step_by(160) {
        let w = &x[start..start + 320];
        let energy: f64 = w.iter().map(|&s| f64::from(s).powi(2)).sum();
        if energy / 320.0 < 100.0 * 100.0 {
            continue; // below about -50 dBFS
        }
        let share = 2.0 * (goertzel(w, 770.0) + goertzel(w, 1336.0)) / (320.0 * energy);
        most = most.max(share);
        if share > 0.6 {
            hits += 1;
        }
    }
    (hits, most)
}

/// A 1.5 s sweep from 400 to 1600 Hz at half scale with 10 ms fades: a
/// "tone" whose alignment is unambiguous. Computed at any rate, so the
/// reference at 8 kHz does not depend on vmesh's resampler.
fn sweep(rate: u32) -> Vec<i16> {
    let (f0, f1) = (400.0, 1600.0);
    let total = TONE_GREETING_MS as f64 / 1000.0;
    let n = (f64::from(rate) * total) as usize;
    let fade = f64::from(rate) * 0.010;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * total));
            let edge = (i.min(n - 1 - i) as f64 / fade).min(1.0);
            let gain = 0.5 - 0.5 * (std::f64::consts::PI * edge).cos();
            (16_000.0 * gain * phase.sin()).round() as i16
        })
        .collect()
}

fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create the WAV");
    for &s in samples {
        writer.write_sample(s).expect("write a sample");
    }
    writer.finalize().expect("finish the WAV");
}

// ---------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------

/// Greeting and beep as a phone receives them, then the caller's message.
#[test]
fn greeting_and_beep_are_paced_rtp_then_the_message_is_recorded() {
    let server = prompt_server();
    let mut call = Call::place(&server, &[]);
    call.capture.wait_first(ANSWER);
    call.capture.wait_quiet(Duration::from_secs(20));
    // Speak right after the beep.
    call.stream(&short_speech());
    let media = call.media;
    let packets = call.hang_up();

    let (stream, _) = prompt_stream(&packets);
    check_headers(stream, media);
    assert_paced(stream);
    check_keepalive(&packets, stream.len());
    let prompt = split_prompt(&packets);
    let reference = load_pcm(&Greeting::Default, RATE).expect("the default greeting");
    assert_greeting("default greeting", &prompt.greeting, &reference);
    assert_beep(&prompt);

    let message = one_message(&server, STORE_WAIT);
    assert_short_speech_recorded(&server, &message);
}

/// A busy greeting plays for user-busy diversions, the default otherwise;
/// replaced or cleared while the server runs, the next call hears the change.
#[test]
fn the_busy_greeting_plays_for_user_busy_and_the_default_for_no_answer() {
    let server = prompt_server();
    set_busy_greeting(&server, &sweep(44_100));

    let busy = Call::place(&server, &["Diversion: <sip:1001@pbx>;reason=user-busy"]);
    busy.capture.wait_first(ANSWER);
    busy.capture.wait_quiet(Duration::from_secs(10));
    let media = busy.media;
    let packets = busy.hang_up();
    let (stream, _) = prompt_stream(&packets);
    check_headers(stream, media);
    let prompt = split_prompt(&packets);
    let tone = sweep(RATE);
    let head = &prompt.greeting[..prompt.greeting.len().min(tone.len())];
    let (lag, ncc) = aligned_correlation(&tone, head, MAX_LAG_SAMPLES);
    eprintln!(
        "busy greeting: first {} ms against the 44.1 kHz sweep made at 8 kHz: NCC {ncc:.4} at lag {lag}",
        duration_ms(head.len(), RATE)
    );
    assert!(
        ncc > 0.9,
        "the user-busy call did not hear the busy greeting: NCC {ncc:.3} at lag {lag}"
    );
    assert_greeting("busy greeting", &prompt.greeting, &tone);
    assert_beep(&prompt);

    let unanswered = Call::place(&server, &["Diversion: <sip:1001@pbx>;reason=no-answer"]);
    unanswered.capture.wait_first(ANSWER);
    unanswered.capture.wait_quiet(Duration::from_secs(20));
    let packets = unanswered.hang_up();
    let prompt = split_prompt(&packets);
    let reference = load_pcm(&Greeting::Default, RATE).expect("the default greeting");
    assert_greeting("no-answer greeting", &prompt.greeting, &reference);
    assert_beep(&prompt);

    // The running server keeps the busy greeting decoded; replaced from
    // another process (the CLI), the next busy call hears the new one, and
    // once it is cleared, the default.
    let falling: Vec<i16> = sweep(44_100).into_iter().rev().collect();
    set_busy_greeting(&server, &falling);
    let busy = busy_call_greeting(&server);
    let falling: Vec<i16> = sweep(RATE).into_iter().rev().collect();
    assert_greeting("replaced busy greeting", &busy, &falling);
    let (_, old) = aligned_correlation(&tone, &busy, MAX_LAG_SAMPLES);
    assert!(
        old < 0.5,
        "the old busy greeting played again: NCC {old:.3}"
    );

    let output = server.cli(&["mailbox", "greeting", "1001", "--kind", "busy", "--clear"]);
    assert!(output.status.success(), "clearing the busy greeting failed");
    let busy = busy_call_greeting(&server);
    assert_greeting("busy call after the clear", &busy, &reference);
}

/// Sets 1001's busy greeting to `samples` at 44.1 kHz with the CLI.
fn set_busy_greeting(server: &Server, samples: &[i16]) {
    let wav = server.dir().join("busy-44k.wav");
    write_wav(&wav, 44_100, samples);
    let output = server.cli(&[
        "mailbox",
        "greeting",
        "1001",
        "--kind",
        "busy",
        wav.to_str().expect("UTF-8 path"),
    ]);
    assert!(
        output.status.success(),
        "vmesh mailbox greeting failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The greeting a user-busy call to 1001 hears, decoded at 8 kHz.
fn busy_call_greeting(server: &Server) -> Vec<i16> {
    let call = Call::place(server, &["Diversion: <sip:1001@pbx>;reason=user-busy"]);
    call.capture.wait_first(ANSWER);
    call.capture.wait_quiet(Duration::from_secs(20));
    let packets = call.hang_up();
    let prompt = split_prompt(&packets);
    assert_beep(&prompt);
    prompt.greeting
}

/// A key pressed 1 s into the greeting cuts it to the beep; the digit is
/// not recorded.
#[test]
fn a_digit_during_the_greeting_skips_to_the_beep() {
    let server = prompt_server();
    let mut call = Call::place(&server, &[]);
    let first = call.capture.wait_first(ANSWER);
    // A phone sends its (silent) audio while it listens.
    while first.elapsed() < Duration::from_secs(1) {
        call.silence_frame();
    }
    let media = call.media;
    let digit_at = call.rtp.digit(media, EVENT_PT, 5, &mut call.clock);
    let end_at = digit_at + 2 * PTIME; // the first end packet, when vmesh knows the key
    let deadline = Instant::now() + Duration::from_secs(10);
    while !call.capture.is_quiet() {
        assert!(Instant::now() < deadline, "the beep never ended");
        call.silence_frame();
    }
    call.stream(&short_speech());
    let packets = call.hang_up();

    let (stream, _) = prompt_stream(&packets);
    check_headers(stream, media);
    assert_paced(stream);
    check_keepalive(&packets, stream.len());
    let prompt = split_prompt(&packets);
    assert_beep(&prompt);
    let beep_at = packets[prompt.beep_first].at;
    let after_digit = beep_at.saturating_duration_since(digit_at);
    let after_end = beep_at.saturating_duration_since(end_at);
    eprintln!(
        "digit: greeting cut after {} ms; beep {} ms after the key's first event packet, \
         {} ms after its first end packet",
        duration_ms(prompt.greeting.len(), RATE),
        after_digit.as_millis(),
        after_end.as_millis()
    );
    assert!(beep_at > digit_at, "the beep started before the digit");
    assert!(
        after_digit <= Duration::from_millis(200),
        "the beep started {after_digit:?} after the digit (want <= 200 ms)"
    );
    let full = load_pcm(&Greeting::Default, RATE).expect("the default greeting");
    assert!(
        prompt.greeting.len() < full.len() / 2,
        "the greeting was not cut: {} of {} samples played",
        prompt.greeting.len(),
        full.len()
    );

    // The caller kept sending its silent audio up to the speech, so the
    // message may open with a little of it: the frames between the beep's
    // end and the speech (up to KEEPALIVE_AFTER_BEEP packets of vmesh's
    // keep-alive plus a packet), and those still in
    // vmesh's jitter buffer (jitter_ms) when the beep ended. Hence 8%
    // rather than 5%, and the lead is bounded on its own.
    let message = one_message(&server, STORE_WAIT);
    let (lag, _) = assert_recording_matches(
        &server,
        &message,
        SPEECH_SHORT_ULAW,
        SPEECH_SHORT_MS,
        0.08,
        0.9,
    );
    let lead_ms = lag * 1000 / i64::from(RATE);
    eprintln!("digit: the message opens with {lead_ms} ms of the caller's silent audio");
    assert!(
        (0..=200).contains(&lead_ms),
        "the message opens with {lead_ms} ms before the speech (want 0-200 ms)"
    );
    let (_, recorded) = read_wav_mono_i16(&server.export(field(&message, "id")));
    let (hits, most) = dtmf_five_windows(&recorded);
    eprintln!(
        "digit: {hits} DTMF-5-like windows in the recording (largest 770+1336 Hz share {most:.3})"
    );
    assert_eq!(hits, 0, "the recording holds the tone of key 5");
}

/// Speech then silence: vmesh hangs up after max_silence_s and keeps the
/// speech without the silence.
#[test]
fn silence_ends_the_recording_and_is_trimmed() {
    const SPEECH_PART_MS: u64 = 1500;
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            max_silence_s: Some(2),
            ..ServerConfig::default()
        },
    );
    let mut call = Call::place(&server, &[]);
    let speech = short_speech();
    let part = &speech[..(SPEECH_PART_MS * u64::from(RATE) / 1000) as usize];
    call.stream(part);
    let silence_from = Instant::now();
    let bye = loop {
        call.silence_frame();
        if let Some(request) = call.udp.recv_request(Duration::from_millis(1)) {
            break request;
        }
        assert!(
            silence_from.elapsed() < Duration::from_secs(8),
            "vmesh did not hang up after 8 s of silence (max_silence_s = 2)"
        );
    };
    let after = silence_from.elapsed();
    assert_eq!(bye.method, "BYE", "{}", bye.raw);
    call.udp.send(bye.response(200, "OK").as_bytes());
    eprintln!(
        "silence: vmesh sent BYE {} ms into the silence",
        after.as_millis()
    );
    assert!(
        (Duration::from_millis(1800)..=Duration::from_millis(2800)).contains(&after),
        "BYE came {after:?} into the silence (want about 2 s)"
    );

    let message = one_message(&server, STORE_WAIT);
    let (rate, sent) = {
        let (rate, all) = read_wav_mono_i16(&testdata(SPEECH_SHORT_ULAW));
        (rate, all[..part.len()].to_vec())
    };
    let trailing = vmesh::audio::silence::trailing_silence(
        &sent,
        rate,
        vmesh::audio::silence::DEFAULT_THRESHOLD_DBFS,
    );
    let speech_ms = duration_ms(sent.len() - trailing, rate);
    let (_, recorded) = read_wav_mono_i16(&server.export(field(&message, "id")));
    let recorded_ms = duration_ms(recorded.len(), rate);
    let listed_ms = number(&message, "duration_ms");
    let (lag, ncc) = aligned_correlation(&sent, &recorded, MAX_LAG_SAMPLES);
    eprintln!(
        "silence: message {recorded_ms} ms (listed {listed_ms} ms) for {speech_ms} ms of speech, \
         NCC {ncc:.4} at lag {lag}"
    );
    assert!(
        recorded_ms.abs_diff(speech_ms) <= 400,
        "message of {recorded_ms} ms for {speech_ms} ms of speech: silence not trimmed (want ±400 ms)"
    );
    assert!(
        listed_ms.abs_diff(recorded_ms) <= 50,
        "listed {listed_ms} ms"
    );
    assert!(ncc > 0.9, "the message is not the speech: NCC {ncc:.3}");
}

/// A call of nothing but silence leaves no message.
#[test]
fn an_all_silent_message_is_discarded() {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            max_silence_s: Some(60),
            ..ServerConfig::default()
        },
    );
    let mut call = Call::place(&server, &[]);
    for _ in 0..150 {
        call.silence_frame();
    }
    call.hang_up();
    // The session's last word on the call: its recording was discarded.
    server.wait_calls_ended(1, Duration::from_secs(5));
    let messages = server.messages();
    assert!(
        messages.is_empty(),
        "3 s of silence was stored: {messages:?}"
    );
    assert!(
        server.log().contains("reason=Silent"),
        "discarded for its silence:\n{}",
        server.log_tail()
    );
}

/// Messages stored as Ogg Opus: exported as WAV they match the call,
/// `--raw` is a valid Ogg Opus file far smaller than the WAV.
#[test]
fn opus_storage_exports_wav_matching_the_call_and_a_small_valid_ogg() {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            storage_format: Some("opus".into()),
            ..ServerConfig::default()
        },
    );
    server
        .sipp("uac_speech.xml", &["-s", "1001"], call_timeout(SPEECH_MS))
        .assert_success();
    let message = one_message(&server, Duration::from_secs(15));
    assert_eq!(field(&message, "format"), "opus", "{message}");
    let (lag, ncc) =
        assert_recording_matches(&server, &message, SPEECH_ULAW, SPEECH_MS, 0.03, 0.85);
    eprintln!("opus: exported WAV against the sent speech: NCC {ncc:.4} at lag {lag}");

    let id = field(&message, "id");
    let raw = server.dir().join("raw.opus");
    let output = server.cli(&[
        "messages",
        "export",
        id,
        "--out",
        raw.to_str().expect("UTF-8 path"),
        "--raw",
    ]);
    assert!(
        output.status.success(),
        "vmesh messages export --raw failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ogg = std::fs::read(&raw).expect("read the raw export");
    assert!(ogg.starts_with(b"OggS"), "--raw did not give an Ogg file");
    assert_eq!(ogg.len() as u64, number(&message, "size_bytes"));

    let wav_bytes = std::fs::metadata(server.dir().join(format!("export-{id}.wav")))
        .expect("the WAV export")
        .len();
    let duration = number(&message, "duration_ms");
    let per_minute = |bytes: u64| bytes as f64 * 60_000.0 / duration as f64 / 1024.0;
    let ratio = ogg.len() as f64 / wav_bytes as f64;
    eprintln!(
        "opus: {} ms stored in {} bytes ({:.0} KiB/min) vs WAV {} bytes ({:.0} KiB/min): {:.1}%",
        duration,
        ogg.len(),
        per_minute(ogg.len() as u64),
        wav_bytes,
        per_minute(wav_bytes),
        ratio * 100.0
    );
    assert!(
        ratio < 0.25,
        "Ogg Opus is {:.1}% of the WAV (want < 25%)",
        ratio * 100.0
    );

    // A missing validator fails the test (scripts/test.sh installs it).
    let out = Command::new("opusinfo")
        .arg(&raw)
        .output()
        .unwrap_or_else(|e| panic!("opusinfo cannot run ({e}); scripts/test.sh installs it"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success()
            && !text.contains("WARNING")
            && !text.contains("ERROR")
            && text.contains("Opus"),
        "opusinfo rejects the stored file ({}):\n{text}",
        out.status
    );
}

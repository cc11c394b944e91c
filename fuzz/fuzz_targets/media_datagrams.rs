//! The media of one call: sequences of datagrams with their arrival times,
//! from the caller and from strangers, through `CallMedia` (the source
//! rules, the jitter buffer and decoders, RFC 4733 telephone-events, RTCP
//! parsing, the recorder, prompts and keep-alive).
//!
//! The input is structured (read with `arbitrary`'s `Unstructured`, in
//! the format [`step`] describes): the negotiated session, then steps:
//! raw datagrams, well-formed RTP and RFC 4733 packets with fuzzed
//! fields, on the RTP or the RTCP port, from the caller's SDP address, its
//! RTCP port or one of a few strangers; the ACK, timeouts, recordings with
//! limits and a stop key, INFO digits, prompts, re-INVITEs. Checked beyond
//! "no panic":
//! - nothing is sent before the ACK or the caller's first packet, and
//!   only to the caller's signalled RTP or RTCP address or to a source
//!   that sent at least a probation's worth of RTP;
//! - once the caller's own address has sent RTP, a stranger's packets
//!   neither take the stream (our RTP still goes to the caller) nor
//!   produce a digit, nor end the recording;
//! - a recording is never longer than its maximum length, and ends once;
//! - every digit is a DTMF key, reported at the time of its packet;
//! - the deadlines make progress: handling a timeout at its deadline and
//!   sending what is due leaves a later deadline within a bounded number
//!   of rounds (no busy loop).

#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use vmesh::media::call_media::{CallMedia, Channel, MediaEvent, MediaSettings};
use vmesh::media::codec::{Codec, OpusRate};
use vmesh::media::outbound::Prompt;
use vmesh::media::packet::{classify, Kind, RtpDatagram};
use vmesh::media::recorder::{samples_in, RecordEnd, RecordLimits};
use vmesh::media::sdp::{Direction, Negotiated};
use vmesh::media::source::PROBATION;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Session {
    codec: u8,
    payload_type: u8,
    telephone_event: Option<u8>,
    comfort_noise: Option<u8>,
    rtcp_mux: bool,
    direction: u8,
    /// The keep-alive interval, in frames less one (`media.keepalive_ms`
    /// is 20 to 1000 ms).
    keepalive_frames: u8,
}

#[derive(Debug)]
enum Step<'a> {
    Raw {
        from: u8,
        rtcp_port: bool,
        after_ms: u16,
        bytes: &'a [u8],
    },
    Rtp {
        from: u8,
        after_ms: u16,
        header: RtpFields,
        payload_len: u16,
        fill: u8,
    },
    Event {
        from: u8,
        after_ms: u16,
        header: RtpFields,
        code: u8,
        end: bool,
        duration: u16,
    },
    Confirm,
    Timeout,
    Record {
        max_ms: u16,
        silence_ms: Option<u16>,
        stop_key: Option<u8>,
    },
    StopRecording,
    Info(u8),
    Play {
        samples: u16,
        rate: bool,
        barge_in: bool,
    },
    ClearPrompts,
    Update(Session),
}

/// Reads one step: a tag byte, then the step's fields in order (integers
/// little-endian, `bool` one byte, `Option` a flag byte before its value,
/// a raw datagram as a 16-bit length and its bytes).
fn step<'a>(u: &mut Unstructured<'a>) -> arbitrary::Result<Step<'a>> {
    Ok(match u.arbitrary::<u8>()? % 11 {
        0 => {
            let from = u.arbitrary()?;
            let rtcp_port = u.arbitrary()?;
            let after_ms = u.arbitrary()?;
            let len = usize::from(u.arbitrary::<u16>()?).min(u.len());
            Step::Raw {
                from,
                rtcp_port,
                after_ms,
                bytes: u.bytes(len)?,
            }
        }
        1 => Step::Rtp {
            from: u.arbitrary()?,
            after_ms: u.arbitrary()?,
            header: u.arbitrary()?,
            payload_len: u.arbitrary()?,
            fill: u.arbitrary()?,
        },
        2 => Step::Event {
            from: u.arbitrary()?,
            after_ms: u.arbitrary()?,
            header: u.arbitrary()?,
            code: u.arbitrary()?,
            end: u.arbitrary()?,
            duration: u.arbitrary()?,
        },
        3 => Step::Confirm,
        4 => Step::Timeout,
        5 => Step::Record {
            max_ms: u.arbitrary()?,
            silence_ms: u.arbitrary()?,
            stop_key: u.arbitrary()?,
        },
        6 => Step::StopRecording,
        7 => Step::Info(u.arbitrary()?),
        8 => Step::Play {
            samples: u.arbitrary()?,
            rate: u.arbitrary()?,
            barge_in: u.arbitrary()?,
        },
        9 => Step::ClearPrompts,
        _ => Step::Update(u.arbitrary()?),
    })
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct RtpFields {
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u8,
    padding: bool,
}

const CALLER: &str = "192.0.2.1:4000";
const CALLER_RTCP: &str = "192.0.2.1:4001";
const STRANGERS: [&str; 3] = ["203.0.113.66:9999", "203.0.113.67:4000", "192.0.2.1:5000"];
const KEYS: &str = "0123456789*#ABCD";

fn address(from: u8) -> SocketAddr {
    match from % 5 {
        0 => CALLER.parse().unwrap(),
        1 => CALLER_RTCP.parse().unwrap(),
        n => STRANGERS[usize::from(n - 2)].parse().unwrap(),
    }
}

fn negotiated(s: Session, signalled: bool) -> Negotiated {
    let codec = match s.codec % 5 {
        0 => Codec::Pcmu,
        1 => Codec::Pcma,
        2 => Codec::G722,
        3 => Codec::Opus(OpusRate::Wideband),
        _ => Codec::Opus(OpusRate::Narrowband),
    };
    let direction = match s.direction % 4 {
        0 => Direction::SendRecv,
        1 => Direction::SendOnly,
        2 => Direction::RecvOnly,
        _ => Direction::Inactive,
    };
    Negotiated {
        payload_type: s.payload_type & 0x7f,
        telephone_event: s.telephone_event.map(|pt| pt & 0x7f),
        comfort_noise: s.comfort_noise.map(|pt| pt & 0x7f),
        remote_rtp: signalled.then(|| CALLER.parse().unwrap()),
        remote_rtcp: signalled.then(|| CALLER_RTCP.parse().unwrap()),
        direction,
        rtcp_mux: s.rtcp_mux,
        ..Negotiated::before_answer(codec)
    }
}

fn rtp(h: RtpFields, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len() + 4);
    p.push(0x80 | if h.padding { 0x20 } else { 0 });
    p.push((h.pt & 0x7f) | if h.marker { 0x80 } else { 0 });
    p.extend_from_slice(&h.seq.to_be_bytes());
    p.extend_from_slice(&h.ts.to_be_bytes());
    p.extend_from_slice(&u32::from(h.ssrc).to_be_bytes());
    p.extend_from_slice(payload);
    if h.padding {
        p.extend_from_slice(&[0, 0, 0, 4]);
    }
    p
}

/// What the harness knows of the call, to judge what comes out.
struct Harness {
    media: CallMedia,
    now: Instant,
    buf: Vec<u8>,
    signalled: Option<SocketAddr>,
    /// Valid RTP datagrams per source, on the RTP port.
    rtp_from: HashMap<SocketAddr, u32>,
    /// The caller's SDP address has sent RTP: it owns the stream.
    caller_sent: bool,
    /// Samples recorded by the current recording, and its maximum.
    recorded: u64,
    max_samples: u64,
    endings: u32,
}

impl Harness {
    fn datagram(&mut self, from: SocketAddr, channel: Channel, after_ms: u16, bytes: &[u8]) {
        self.now += Duration::from_millis(u64::from(after_ms));
        let is_rtp = channel == Channel::Rtp
            && classify(bytes) == Kind::Rtp
            && RtpDatagram::parse(bytes).is_ok();
        let owned_before = self.caller_sent;
        if is_rtp {
            *self.rtp_from.entry(from).or_default() += 1;
            if Some(from) == self.signalled {
                self.caller_sent = true;
            }
        }
        self.media.handle_datagram(self.now, channel, from, bytes);
        let stranger = owned_before && Some(from) != self.signalled;
        self.events(stranger);
        self.transmit();
    }

    fn events(&mut self, from_stranger: bool) {
        while let Some(event) = self.media.poll_event() {
            match event {
                MediaEvent::Digit { digit, at, .. } => {
                    assert!(KEYS.contains(digit), "digit {digit:?}");
                    assert_eq!(at, self.now);
                    assert!(!from_stranger, "a stranger's packet gave a digit");
                }
                MediaEvent::CallerMedia => assert!(!from_stranger),
                MediaEvent::RecordingEnded(end) => {
                    self.endings += 1;
                    assert!(self.endings <= 1, "a recording ended twice");
                    if from_stranger {
                        assert!(
                            !matches!(end, RecordEnd::Dtmf(_)),
                            "a stranger's key ended it"
                        );
                    }
                }
                MediaEvent::PromptEnded { .. } | MediaEvent::RtpTimeout => {}
            }
        }
        let (recorded, max) = (&mut self.recorded, self.max_samples);
        let _ = self.media.drain_recorded(&mut |pcm: &[i16]| {
            *recorded += pcm.len() as u64;
            assert!(
                *recorded <= max,
                "{recorded} samples recorded, maximum {max}"
            );
            Ok::<(), String>(())
        });
    }

    fn transmit(&mut self) {
        while let Some(t) = self.media.poll_transmit(self.now, &mut self.buf) {
            assert!(self.media.is_live(), "sent before the call was live");
            self.check_destination(t.channel, t.to);
        }
    }

    fn check_destination(&self, channel: Channel, to: SocketAddr) {
        assert_ne!(to.port(), 0, "sent to port 0");
        if self.caller_sent && channel == Channel::Rtp {
            assert_eq!(Some(to), self.signalled, "RTP taken away from the caller");
        }
        let caller: SocketAddr = CALLER.parse().unwrap();
        let caller_rtcp: SocketAddr = CALLER_RTCP.parse().unwrap();
        let signalled = self.signalled.is_some() && (to == caller || to == caller_rtcp);
        let proven = self.rtp_from.iter().any(|(from, n)| {
            let rtcp = SocketAddr::new(from.ip(), from.port().wrapping_add(1));
            *n >= PROBATION && (to == *from || to == rtcp)
        });
        assert!(
            signalled || proven,
            "sent to {to}, which never proved itself"
        );
    }

    fn timeout(&mut self) {
        let Some(deadline) = self.media.poll_timeout() else {
            return;
        };
        self.now = self.now.max(deadline);
        for _ in 0..64 {
            self.media.handle_timeout(self.now);
            self.events(false);
            self.transmit();
            match self.media.poll_timeout() {
                Some(next) if next <= self.now => continue,
                _ => return,
            }
        }
        panic!("the deadline does not move past {:?}", self.now);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(session), Ok(signalled)) = (u.arbitrary::<Session>(), u.arbitrary::<bool>()) else {
        return;
    };
    let mut steps = Vec::new();
    while !u.is_empty() && steps.len() < 400 {
        match step(&mut u) {
            Ok(s) => steps.push(s),
            Err(_) => break,
        }
    }
    let keepalive = Duration::from_millis(20 * (1 + u64::from(session.keepalive_frames % 50)));
    let n = negotiated(session, signalled);
    let settings = MediaSettings {
        jitter: Duration::from_millis(60),
        rtp_timeout: Duration::from_secs(10),
        keepalive,
    };
    let t0 = Instant::now();
    let Ok(media) = CallMedia::new(&n, settings, t0, SystemTime::UNIX_EPOCH, 9) else {
        return;
    };
    let mut h = Harness {
        media,
        now: t0,
        buf: Vec::new(),
        signalled: n.remote_rtp,
        rtp_from: HashMap::new(),
        caller_sent: false,
        recorded: 0,
        max_samples: 0,
        endings: 0,
    };
    for step in steps {
        match step {
            Step::Raw {
                from,
                rtcp_port,
                after_ms,
                bytes,
            } => {
                let channel = if rtcp_port {
                    Channel::Rtcp
                } else {
                    Channel::Rtp
                };
                h.datagram(address(from), channel, after_ms, bytes);
            }
            Step::Rtp {
                from,
                after_ms,
                header,
                payload_len,
                fill,
            } => {
                let payload = vec![fill; usize::from(payload_len % 1500)];
                h.datagram(
                    address(from),
                    Channel::Rtp,
                    after_ms,
                    &rtp(header, &payload),
                );
            }
            Step::Event {
                from,
                after_ms,
                header,
                code,
                end,
                duration,
            } => {
                let d = duration.to_be_bytes();
                let payload = [code, if end { 0x8a } else { 0x0a }, d[0], d[1]];
                h.datagram(
                    address(from),
                    Channel::Rtp,
                    after_ms,
                    &rtp(header, &payload),
                );
            }
            Step::Confirm => {
                h.media.confirm(h.now);
                h.transmit();
            }
            Step::Timeout => h.timeout(),
            Step::Record {
                max_ms,
                silence_ms,
                stop_key,
            } => {
                let limits = RecordLimits {
                    max_length: Duration::from_millis(u64::from(max_ms)),
                    rtp_timeout: settings.rtp_timeout,
                    jitter: settings.jitter,
                    max_silence: silence_ms.map(|ms| Duration::from_millis(u64::from(ms))),
                    silence_threshold_dbfs: -50.0,
                };
                let key = stop_key.and_then(|k| KEYS.chars().nth(usize::from(k) % 20));
                h.media.record(&limits, key, h.now);
                h.recorded = 0;
                h.max_samples = samples_in(limits.max_length, h.media.sample_rate());
                h.endings = 0;
                h.events(false);
            }
            Step::StopRecording => {
                h.media.stop_recording();
                h.events(false);
            }
            Step::Info(k) => {
                if let Some(key) = KEYS.chars().nth(usize::from(k) % 16) {
                    h.media.signalled_digit(key, h.now);
                    h.events(false);
                }
            }
            Step::Play {
                samples,
                rate,
                barge_in,
            } => {
                let pcm = (0..samples % 8000)
                    .map(|i| (i as i16).wrapping_mul(97))
                    .collect();
                let rate = if rate { 8000 } else { 16000 };
                h.media.play(Prompt {
                    pcm,
                    rate,
                    barge_in,
                });
                h.transmit();
            }
            Step::ClearPrompts => {
                h.media.clear_prompts();
                h.events(false);
            }
            Step::Update(session) => {
                // A re-INVITE from the same address: the codec, payload
                // types and direction may change, the owner of the stream
                // may not.
                let update = negotiated(session, h.signalled.is_some());
                h.media.update(&update, h.now);
                h.events(false);
                h.transmit();
            }
        }
    }
    h.media.stop_recording();
    h.events(false);
    let mut buf = Vec::new();
    if let Some(t) = h.media.goodbye(h.now, &mut buf) {
        h.check_destination(t.channel, t.to);
    }
    let stats = h.media.stats();
    let rtp_datagrams: u32 = h.rtp_from.values().sum();
    assert!(stats.received.received <= u64::from(rtp_datagrams));
});

//! The call's media core driven without sockets: injected instants and
//! hand-made datagrams.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;
use webrtc_util::marshal::Marshal;

use super::super::codec::Codec;
use super::super::outbound::{Prompt, PromptEnd};
use super::*;

const FRAME: usize = 160;

fn caller() -> SocketAddr {
    "192.0.2.1:4000".parse().unwrap()
}

fn stranger() -> SocketAddr {
    "203.0.113.66:9999".parse().unwrap()
}

fn negotiated() -> Negotiated {
    Negotiated {
        remote_rtp: Some(caller()),
        remote_rtcp: Some("192.0.2.1:4001".parse().unwrap()),
        ..Negotiated::before_answer(Codec::Pcmu)
    }
}

fn settings() -> MediaSettings {
    MediaSettings {
        jitter: Duration::from_millis(60),
        rtp_timeout: Duration::from_secs(5),
        keepalive: crate::config::DEFAULT_KEEPALIVE,
    }
}

fn limits() -> RecordLimits {
    RecordLimits {
        max_length: Duration::from_secs(60),
        rtp_timeout: Duration::from_secs(5),
        jitter: Duration::from_millis(60),
        max_silence: None,
        silence_threshold_dbfs: -50.0,
    }
}

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    Packet {
        header: Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 0x1234,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

struct Harness {
    media: MediaCore,
    t0: Instant,
    buf: Vec<u8>,
}

impl Harness {
    fn new(n: &Negotiated) -> Harness {
        let t0 = Instant::now();
        Harness {
            media: MediaCore::new(n, settings(), t0, SystemTime::now(), 4).unwrap(),
            t0,
            buf: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn datagram(&mut self, from: SocketAddr, bytes: &[u8], ms: u64) {
        let now = self.at(ms);
        self.media.handle_datagram(now, Channel::Rtp, from, bytes);
    }

    /// Everything due at `ms`.
    fn transmit(&mut self, ms: u64) -> Vec<(Transmit, Vec<u8>)> {
        let now = self.at(ms);
        self.transmit_at(now)
    }

    fn transmit_at(&mut self, now: Instant) -> Vec<(Transmit, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(t) = self.media.poll_transmit(now, &mut self.buf) {
            out.push((t, self.buf.clone()));
        }
        out
    }

    fn events(&mut self) -> Vec<MediaEvent> {
        std::iter::from_fn(|| self.media.poll_event()).collect()
    }

    fn recorded(&mut self) -> Vec<i16> {
        let mut pcm = Vec::new();
        self.media.take_recorded(&mut pcm);
        pcm
    }
}

/// Issue 9: a spoofed INVITE must not make vmesh a reflector. Nothing
/// goes out before the ACK (or the caller's own first packet).
#[test]
fn nothing_is_sent_before_the_call_is_confirmed() {
    let mut h = Harness::new(&negotiated());
    h.media.play(Prompt {
        pcm: vec![1000; 8000].into(),
        rate: 8000,
        barge_in: true,
    });
    assert_eq!(h.media.poll_timeout(), None);
    for ms in [0, 20, 1000, 10_000] {
        assert!(h.transmit(ms).is_empty(), "sent at {ms} ms");
    }
    // A stranger's packet does not confirm it either.
    h.datagram(stranger(), &rtp(0, 1, 0, &[0xFF; FRAME]), 10_000);
    assert!(h.transmit(10_000).is_empty());
    h.media.confirm(h.at(10_020));
    let sent = h.transmit(10_020);
    // The first prompt frame, and the RTCP report that was due.
    let rtp: Vec<_> = sent
        .iter()
        .filter(|(_, b)| !(192..=223).contains(&b[1]))
        .collect();
    assert_eq!(rtp.len(), 1, "one prompt frame");
    assert_eq!(
        rtp[0].0,
        Transmit {
            channel: Channel::Rtp,
            to: caller()
        }
    );
    assert!(sent.iter().all(|(t, _)| t.to.ip() == caller().ip()));
}

#[test]
fn the_callers_first_packet_makes_the_media_live() {
    let mut h = Harness::new(&negotiated());
    h.datagram(caller(), &rtp(0, 1, 0, &[0xFF; FRAME]), 100);
    assert_eq!(h.events(), [MediaEvent::CallerMedia]);
    assert!(h.media.is_live());
    assert!(!h.transmit(100).is_empty(), "keep-alive starts");
}

/// SIP INFO digits act exactly as RFC 4733 ones: a `#` ends the recording
/// with everything buffered before it.
#[test]
fn an_info_hash_ends_the_recording_like_an_rfc_4733_one() {
    let mut h = Harness::new(&negotiated());
    h.media.confirm(h.t0);
    h.media.record(&limits(), Some('#'), h.t0);
    for seq in 0..50u16 {
        h.datagram(
            caller(),
            &rtp(0, seq, u32::from(seq) * 160, &[0x80; FRAME]),
            u64::from(seq) * 20,
        );
    }
    h.events();
    let at = h.at(1000);
    h.media.signalled_digit('#', at);
    assert_eq!(
        h.events(),
        [
            MediaEvent::Digit {
                digit: '#',
                at,
                via: DigitSource::Info
            },
            MediaEvent::RecordingEnded(RecordEnd::Dtmf('#')),
        ]
    );
    assert_eq!(h.recorded().len(), 50 * FRAME);
    // Another digit after the end changes nothing.
    h.media.signalled_digit('#', h.at(1100));
    assert_eq!(h.media.recording_ended(), Some(&RecordEnd::Dtmf('#')));
}

#[test]
fn a_digit_interrupts_the_prompt_and_is_reported_with_its_time() {
    let mut h = Harness::new(&negotiated());
    h.media.confirm(h.t0);
    let greeting = h.media.play(Prompt {
        pcm: vec![1000; 80_000].into(),
        rate: 8000,
        barge_in: true,
    });
    assert_eq!(h.transmit(0).len(), 1);
    // RFC 4733: two updates then the end packet, three times.
    for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
        let flags = if end { 0x80 } else { 0 } | 10;
        let seq = i as u16;
        h.datagram(
            caller(),
            &rtp(101, seq, 0, &[5, flags, 0, 160]),
            30 + 20 * i as u64,
        );
    }
    let events = h.events();
    assert!(events.contains(&MediaEvent::Digit {
        digit: '5',
        at: h.at(70),
        via: DigitSource::Rtp
    }));
    assert!(events.contains(&MediaEvent::PromptEnded {
        id: greeting,
        end: PromptEnd::Interrupted
    }));
}

/// A stranger's `#` never ends the recording; the caller's does.
#[test]
fn a_strangers_hash_is_no_digit() {
    let mut h = Harness::new(&negotiated());
    h.media.confirm(h.t0);
    h.media.record(&limits(), Some('#'), h.t0);
    h.datagram(caller(), &rtp(0, 1, 0, &[0x80; FRAME]), 0);
    for i in 0..5u16 {
        h.datagram(
            stranger(),
            &rtp(101, 100 + i, 0, &[11, 0x8A, 0, 160]),
            20 + u64::from(i),
        );
    }
    assert_eq!(h.media.recording_ended(), None);
    assert_eq!(h.media.stats().received.foreign_source, 5);
    h.datagram(caller(), &rtp(101, 2, 160, &[11, 0x8A, 0, 160]), 40);
    assert_eq!(h.media.recording_ended(), Some(&RecordEnd::Dtmf('#')));
}

#[test]
fn rtcp_reports_go_to_rtp_plus_one_or_multiplexed() {
    for mux in [false, true] {
        let n = Negotiated {
            rtcp_mux: mux,
            ..negotiated()
        };
        let mut h = Harness::new(&n);
        h.media.confirm(h.t0);
        let mut report = None;
        let mut ms = 0;
        while ms < 7000 && report.is_none() {
            for (t, bytes) in h.transmit(ms) {
                if bytes[1] == 200 || bytes[1] == 201 {
                    report = Some((t, ms));
                }
            }
            ms += 20;
        }
        let (t, at) = report.expect("an RTCP report");
        let (channel, port) = if mux {
            (Channel::Rtp, 4000)
        } else {
            (Channel::Rtcp, 4001)
        };
        assert_eq!(
            t,
            Transmit {
                channel,
                to: SocketAddr::new(caller().ip(), port)
            }
        );
        // The first report within 2.5 s × 1.5 / (e − 1.5).
        assert!(at <= 3100, "first report at {at} ms");
    }
}

#[test]
fn on_hold_no_rtp_goes_out_and_the_timeout_waits() {
    let held = Negotiated {
        direction: Direction::SendOnly,
        ..negotiated()
    };
    let mut h = Harness::new(&negotiated());
    h.media.confirm(h.t0);
    assert!(!h.transmit(0).is_empty());
    h.media.update(&held, h.at(10));
    let rtp_packets = (1..400)
        .flat_map(|i| h.transmit(i * 20))
        .filter(|(_, b)| b[1] < 192 || b[1] > 223)
        .count();
    assert_eq!(rtp_packets, 0, "no RTP while our side is recvonly");
    h.media.handle_timeout(h.at(8000));
    assert!(h.events().is_empty(), "no RTP timeout on hold");
    h.media.update(&negotiated(), h.at(8000));
    assert!(!h.transmit(8000).is_empty());
    h.media.handle_timeout(h.at(12_999));
    assert!(h.events().is_empty());
    h.media.handle_timeout(h.at(13_000));
    assert_eq!(h.events(), [MediaEvent::RtpTimeout]);
}

/// Issue 10: a caller streaming at 20 ms costs one wake-up per packet:
/// the core's deadline never falls before the next packet, except for the
/// few RTCP reports.
#[test]
fn a_streaming_caller_costs_one_wake_per_packet() {
    let mut h = Harness::new(&negotiated());
    h.media.confirm(h.t0);
    h.media.record(&limits(), Some('#'), h.t0);
    let mut timer_wakes = 0;
    let mut sent = 0;
    let phase = 7; // the caller's packets arrive 7 ms after our slots
    for seq in 0..500u64 {
        let arrival = seq * 20 + phase;
        // Wake for every deadline that falls before this packet.
        while let Some(deadline) = h.media.poll_timeout() {
            if deadline >= h.at(arrival) {
                break;
            }
            timer_wakes += 1;
            h.media.handle_timeout(deadline);
            sent += h.transmit_at(deadline).len();
        }
        h.datagram(
            caller(),
            &rtp(0, seq as u16, seq as u32 * 160, &[0x80; FRAME]),
            arrival,
        );
        sent += h.transmit(arrival).len();
    }
    // 10 s: about 2-5 RTCP reports need a timer of their own.
    assert!(
        timer_wakes <= 6,
        "{timer_wakes} timer wake-ups for 500 packets"
    );
    // The keep-alive: four frames of silence, then one per 200 ms (slots
    // 13, 23, ... 493), and the reports.
    assert!(
        (4 + 49 + 1..=4 + 49 + 6).contains(&sent),
        "{sent} datagrams sent"
    );
    assert_eq!(
        h.recorded().len() + 3 * FRAME,
        500 * FRAME,
        "all but the jitter delay"
    );
}

#[test]
fn a_stored_message_plays_in_the_calls_codec_and_rate() {
    let mut h = Harness::new(&negotiated());
    h.media.confirm(h.t0);
    // One second of a 16 kHz message on a PCMU call.
    let id = h.media.play(Prompt {
        pcm: (0..16_000).map(|i| ((i % 32) as i16 - 16) * 500).collect(),
        rate: 16_000,
        barge_in: false,
    });
    let mut audio = 0;
    for ms in (0..1100).step_by(20) {
        audio += h
            .transmit(ms)
            .iter()
            .filter(|(_, b)| b[1] & 0x7F == 0 && b.len() == 172)
            .count();
    }
    assert!(h.events().contains(&MediaEvent::PromptEnded {
        id,
        end: PromptEnd::Finished
    }));
    assert!(audio >= 50, "{audio}");
}

/// A server starved of CPU for a few seconds reads what queued in its
/// socket all at once: play-out catches up and the burst is recorded
/// whole, in order, instead of overflowing the jitter buffer's ring.
#[test]
fn a_burst_after_starvation_is_recorded_whole() {
    let mut h = Harness::new(&negotiated());
    h.media.confirm(h.t0);
    h.media.record(&limits(), Some('#'), h.t0);
    let mut pcm = Vec::new();
    // One second streamed normally, then three seconds arrive at once.
    for seq in 0..200u16 {
        let ms = u64::from(seq.min(50)) * 20;
        let byte = 0x80 | (seq % 100) as u8;
        h.datagram(
            caller(),
            &rtp(0, seq, u32::from(seq) * 160, &[byte; FRAME]),
            ms,
        );
        pcm.extend(h.recorded());
    }
    h.media.stop_recording();
    pcm.extend(h.recorded());
    let stats = h.media.stats().received;
    assert_eq!(stats.overflow, 0);
    assert!(stats.caught_up > 0, "{stats:?}");
    assert_eq!(pcm.len(), 200 * FRAME);
    let mut decoder = super::super::decoder::Decoder::new(Codec::Pcmu).unwrap();
    for (seq, frame) in pcm.chunks(FRAME).enumerate() {
        let mut expected = Vec::new();
        decoder
            .decode(&[0x80 | (seq % 100) as u8], &mut expected)
            .unwrap();
        assert!(frame.iter().all(|&s| s == expected[0]), "frame {seq}");
    }
}

/// Found by the sdp_answer fuzz target's check (RTCP to port 0): a caller
/// on RTP port 65535 has no RTP + 1, so no report goes to port 0 for it.
#[test]
fn no_rtcp_to_port_zero_from_the_last_rtp_port() {
    let last: SocketAddr = "192.0.2.1:65535".parse().unwrap();
    let n = Negotiated {
        remote_rtp: Some(last),
        remote_rtcp: None,
        ..negotiated()
    };
    let mut h = Harness::new(&n);
    h.media.confirm(h.t0);
    let mut rtp = 0;
    for ms in (0..8000).step_by(20) {
        for (t, _) in h.transmit(ms) {
            assert_ne!(t.to.port(), 0, "sent to port 0 at {ms} ms: {t:?}");
            rtp += usize::from(t.channel == Channel::Rtp);
        }
    }
    assert!(rtp > 0, "RTP still goes to the caller");
    assert!(h.media.goodbye(h.at(8000), &mut Vec::new()).is_none());
}

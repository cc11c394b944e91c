use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;
use webrtc_util::marshal::Marshal;

use super::super::sdp::{Direction, Negotiated};
use super::*;

const PTIME: usize = 160;

fn negotiated(codec: Codec, payload_type: u8) -> Negotiated {
    Negotiated {
        codec,
        payload_type,
        telephone_event: Some(101),
        remote_rtp: Some(peer()),
        direction: Direction::SendRecv,
        ptime_ms: 20,
        media_index: 0,
        comfort_noise: None,
        rtcp_mux: false,
        remote_rtcp: None,
        declined: Vec::new(),
    }
}

fn peer() -> SocketAddr {
    "192.0.2.1:4000".parse().unwrap()
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

fn dtmf(seq: u16, ts: u32, event: u8, end: bool) -> Vec<u8> {
    let flags = if end { 0x80 } else { 0 };
    rtp(101, seq, ts, &[event, flags | 10, 0, 160])
}

struct Call {
    receiver: RtpReceiver,
    t0: Instant,
    out: Vec<i16>,
}

impl Call {
    fn new(n: &Negotiated) -> Self {
        Call {
            receiver: RtpReceiver::new(n, Duration::from_millis(40)),
            t0: Instant::now(),
            out: Vec::new(),
        }
    }

    /// Feeds one datagram; the digit it completed, if any.
    fn recv(&mut self, datagram: &[u8], from: SocketAddr, ms: u64) -> Option<char> {
        let now = self.t0 + Duration::from_millis(ms);
        match self.receiver.handle_datagram(datagram, from, now) {
            Inbound::Media(accepted) => accepted.digit,
            Inbound::Rtcp | Inbound::Dropped => None,
        }
    }

    fn finish(&mut self) {
        let out = &mut self.out;
        self.receiver.finish(&mut |pcm| out.extend_from_slice(pcm));
    }
}

#[test]
fn audio_is_decoded_in_order() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    call.recv(&rtp(0, 2, 160, &[0x80; PTIME]), peer(), 0);
    call.recv(&rtp(0, 1, 0, &[0xFF; PTIME]), peer(), 5);
    let now = call.t0 + Duration::from_millis(100);
    let out = &mut call.out;
    call.receiver
        .poll_audio(now, &mut |pcm| out.extend_from_slice(pcm));
    assert_eq!(call.out.len(), 2 * PTIME);
    assert_eq!(call.out[0], 0);
    assert_eq!(call.out[PTIME], 32124);
    assert_eq!(call.receiver.stats().received, 2);
}

/// The first packet from anywhere no longer takes the stream: a stranger
/// that sends before the caller is dropped, the caller's SDP address is
/// taken at once, and the stranger stays out.
#[test]
fn a_stranger_before_the_caller_does_not_take_the_stream() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    let stranger: SocketAddr = "198.51.100.9:31000".parse().unwrap();
    call.recv(&rtp(0, 1, 0, &[0x80; PTIME]), stranger, 0);
    call.recv(&rtp(0, 1, 0, &[0xFF; PTIME]), peer(), 5);
    call.recv(&rtp(0, 2, 160, &[0xFF; PTIME]), peer(), 20);
    assert_eq!(call.recv(&dtmf(3, 320, 11, true), stranger, 30), None);
    call.recv(&rtp(0, 2, 160, &[0x80; PTIME]), stranger, 40);
    call.finish();
    assert_eq!(call.out.len(), 2 * PTIME);
    assert!(
        call.out.iter().all(|&s| s == 0),
        "only the caller's silence"
    );
    let stats = call.receiver.stats();
    assert_eq!(stats.foreign_source, 3);
    assert_eq!(stats.received, 2);
    assert_eq!(stats.dtmf_digits, 0, "a stranger's # is no digit");
    assert_eq!(call.receiver.latched_peer(), Some(peer()));
}

/// A caller behind a NAT sends from another address than its SDP names:
/// taken after probation (consecutive packets, one SSRC), then kept.
#[test]
fn a_nated_caller_is_learned_after_probation() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    let natted: SocketAddr = "198.51.100.9:31000".parse().unwrap();
    for seq in 1..=4u16 {
        call.recv(
            &rtp(0, seq, u32::from(seq) * 160, &[0x80; PTIME]),
            natted,
            u64::from(seq) * 20,
        );
    }
    assert_eq!(call.receiver.latched_peer(), Some(natted));
    assert_eq!(call.receiver.destination(), Some(natted));
    call.recv(&rtp(0, 5, 800, &[0x80; PTIME]), natted, 100);
    call.finish();
    // The three probation packets are not recorded.
    assert_eq!(call.out.len(), 2 * PTIME);
    assert_eq!(call.receiver.stats().foreign_source, 3);
}

/// RTCP that reaches the RTP port (a caller's RTCP port + 1 mistake, or
/// rtcp-mux) is never audio, and does not take the stream.
#[test]
fn rtcp_on_the_rtp_port_is_not_audio() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    let sr = [
        0x80, 200, 0, 6, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0,
    ];
    assert_eq!(
        call.receiver.handle_datagram(&sr, peer(), call.t0),
        Inbound::Rtcp
    );
    call.finish();
    assert!(call.out.is_empty());
    assert_eq!(call.receiver.stats().rtcp_on_rtp_port, 1);
    assert_eq!(call.receiver.latched_peer(), None);
}

#[test]
fn a_new_remote_address_in_a_reinvite_relatches() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    call.recv(&rtp(0, 1, 0, &[0x80; PTIME]), peer(), 0);
    let moved: SocketAddr = "203.0.113.5:5000".parse().unwrap();
    let mut n = negotiated(Codec::Pcmu, 0);
    n.remote_rtp = Some(moved);
    call.receiver.update(&n);
    call.recv(&rtp(0, 2, 160, &[0x80; PTIME]), moved, 20);
    call.recv(&rtp(0, 3, 320, &[0x80; PTIME]), peer(), 40);
    assert_eq!(call.receiver.latched_peer(), Some(moved));
    assert_eq!(call.receiver.stats().foreign_source, 1);
}

#[test]
fn dtmf_is_reported_once_and_never_recorded() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    call.recv(&rtp(0, 1, 0, &[0x80; PTIME]), peer(), 0);
    let mut events = Vec::new();
    let packets = [
        dtmf(2, 160, 1, false),
        dtmf(3, 160, 1, false),
        dtmf(4, 160, 1, true),
        dtmf(5, 160, 1, true),
        dtmf(6, 160, 1, true),
        dtmf(7, 800, 11, true),
        dtmf(8, 800, 11, true),
    ];
    for (i, packet) in packets.iter().enumerate() {
        events.extend(call.recv(packet, peer(), 20 + i as u64 * 10));
    }
    call.recv(&rtp(0, 9, 960, &[0x80; PTIME]), peer(), 200);
    call.finish();
    assert_eq!(events, vec!['1', '#']);
    // The audio spans 0..1120 samples; the event time is silence, not tones.
    assert_eq!(call.out.len(), 7 * PTIME);
    assert!(call.out[PTIME..6 * PTIME].iter().all(|&s| s == 0));
    assert_eq!(call.receiver.stats().dtmf_digits, 2);
}

#[test]
fn a_reinvite_changes_the_codec_mid_call() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    call.recv(&rtp(0, 1, 0, &[0x80; PTIME]), peer(), 0);
    // New offer: A-law on a dynamic payload type.
    call.receiver.update(&negotiated(Codec::Pcma, 97));
    call.recv(&rtp(97, 2, 160, &[0xAA; PTIME]), peer(), 20);
    call.finish();
    assert_eq!(call.out.len(), 2 * PTIME);
    assert_eq!(call.out[0], 32124);
    assert_eq!(call.out[PTIME], 32256);
}

#[test]
fn unknown_payloads_and_garbage_are_counted_not_recorded() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    call.recv(&rtp(13, 1, 0, &[40]), peer(), 0);
    call.recv(&rtp(96, 2, 0, &[40]), peer(), 2);
    call.recv(b"\x00\x01 not rtp", peer(), 5);
    call.recv(&rtp(0, 3, 160, &[0x80; PTIME]), peer(), 10);
    call.finish();
    assert_eq!(call.out.len(), PTIME);
    let stats = call.receiver.stats();
    assert_eq!(stats.comfort_noise, 1);
    assert_eq!(stats.unknown_payload, 1);
    assert_eq!(stats.malformed, 1);
}

#[test]
fn last_rtp_at_tracks_any_packet_from_the_peer() {
    let mut call = Call::new(&negotiated(Codec::Pcmu, 0));
    assert_eq!(call.receiver.last_rtp_at(), None);
    call.recv(&dtmf(1, 0, 5, false), peer(), 30);
    assert_eq!(
        call.receiver.last_rtp_at(),
        Some(call.t0 + Duration::from_millis(30))
    );
}

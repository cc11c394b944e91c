//! Tests of `send.rs`.

use super::*;
use rand::{Rng, SeedableRng};
use rtp::header::Header;
use webrtc_util::marshal::Unmarshal;

fn parse(datagram: &[u8]) -> Header {
    Header::unmarshal(&mut &datagram[..]).unwrap()
}

#[test]
fn headers_are_rfc3550_and_parse_back() {
    let mut p = RtpPacketizer::new(0xDEAD_BEEF, 1000, 50_000, 9, 160);
    let mut out = Vec::new();
    p.packet(&[1, 2, 3], &mut out);
    assert_eq!(out.len(), RTP_HEADER_LEN + 3);
    assert_eq!(&out[RTP_HEADER_LEN..], &[1, 2, 3]);
    let h = parse(&out);
    assert_eq!(h.version, 2);
    assert!(!h.padding && !h.extension && h.csrc.is_empty());
    assert_eq!(h.payload_type, 9);
    assert_eq!(h.sequence_number, 1000);
    assert_eq!(h.timestamp, 50_000);
    assert_eq!(h.ssrc, 0xDEAD_BEEF);
}

#[test]
fn random_starts_differ() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let a = RtpPacketizer::with_random_start(&mut rng, 0, 160);
    let b = RtpPacketizer::with_random_start(&mut rng, 0, 160);
    assert_ne!(a.ssrc(), b.ssrc());
    assert_ne!(
        (a.next_sequence(), a.next_timestamp()),
        (b.next_sequence(), b.next_timestamp())
    );
}

#[test]
fn marker_only_on_the_first_packet() {
    let mut p = RtpPacketizer::new(1, 0, 0, 0, 160);
    let mut out = Vec::new();
    let markers: Vec<bool> = (0..50)
        .map(|_| {
            p.packet(&[0xFF; 160], &mut out);
            parse(&out).marker
        })
        .collect();
    assert!(markers[0]);
    assert!(markers[1..].iter().all(|&m| !m));
}

#[test]
fn sequence_and_timestamp_are_continuous_across_wrap() {
    let mut p = RtpPacketizer::new(7, 65_530, u32::MAX - 960 * 3, 111, 960);
    let mut out = Vec::new();
    let mut previous: Option<Header> = None;
    for _ in 0..20 {
        p.packet(&[0; 40], &mut out);
        let h = parse(&out);
        if let Some(prev) = &previous {
            assert_eq!(h.sequence_number, prev.sequence_number.wrapping_add(1));
            assert_eq!(h.timestamp, prev.timestamp.wrapping_add(960));
            assert_eq!(h.ssrc, 7);
        }
        previous = Some(h);
    }
    let last = previous.unwrap();
    assert_eq!(last.sequence_number, 65_530u16.wrapping_add(19));
    assert!(last.timestamp < 960 * 20, "timestamp wrapped");
}

#[test]
fn payload_type_cannot_set_the_marker() {
    let mut p = RtpPacketizer::new(1, 0, 0, 0x80 | 8, 160);
    let mut out = Vec::new();
    p.packet(&[], &mut out);
    p.packet(&[], &mut out);
    let h = parse(&out);
    assert_eq!(h.payload_type, 8);
    assert!(!h.marker);
}

#[test]
fn skipped_frames_advance_the_timestamp_not_the_sequence() {
    let mut p = RtpPacketizer::new(1, 10, 0, 0, 160);
    let mut out = Vec::new();
    p.packet(&[], &mut out);
    p.skip_frames(0);
    p.packet(&[], &mut out);
    assert!(!parse(&out).marker);
    p.skip_frames(5);
    p.packet(&[], &mut out);
    let h = parse(&out);
    assert_eq!(h.sequence_number, 12);
    assert_eq!(h.timestamp, 160 * 7);
    assert!(h.marker, "first packet after a gap is marked");
    p.packet(&[], &mut out);
    assert!(!parse(&out).marker);
}

/// Drives a pacer the way the send loop does: wake at `wake`, send every
/// packet that is due. Returns how many were sent back to back.
fn wake(pacer: &mut Pacer, p: &mut RtpPacketizer, wake: Instant, sent: &mut Vec<Header>) -> u64 {
    let mut out = Vec::new();
    let mut burst = 0;
    while pacer.next_due() <= wake {
        p.packet(&[0; 160], &mut out);
        sent.push(parse(&out));
        burst += 1;
        p.skip_frames(pacer.sent(wake));
    }
    burst
}

#[test]
fn ten_minutes_of_pacing_do_not_drift() {
    let start = Instant::now();
    let mut pacer = Pacer::new(start, PTIME);
    let mut p = RtpPacketizer::new(1, 0, 0, 0, 160);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut sent = Vec::new();
    let frames = 10 * 60 * 50;
    while sent.len() < frames {
        // Timer lateness of up to 35 ms: less than two frames, so it is
        // always caught up and never skipped.
        let jitter = Duration::from_micros(rng.random_range(0..35_000));
        let at = pacer.next_due() + jitter;
        let burst = wake(&mut pacer, &mut p, at, &mut sent);
        assert!((1..=2).contains(&burst), "burst of {burst}");
    }
    assert_eq!(sent.len(), frames);
    assert_eq!(pacer.next_due() - start, Duration::from_secs(600));
    assert_eq!(pacer.slot(), frames as u64);
    let last = sent.last().unwrap();
    assert_eq!(last.timestamp, 160 * (frames as u32 - 1));
    assert_eq!(last.sequence_number, (frames - 1) as u16);
}

#[test]
fn due_times_are_exact_multiples() {
    let start = Instant::now();
    let mut pacer = Pacer::new(start, Duration::from_nanos(20_000_001));
    for _ in 0..1_000_000 {
        let due = pacer.next_due();
        pacer.sent(due);
    }
    assert_eq!(
        pacer.next_due() - start,
        Duration::from_nanos(20_000_001 * 1_000_000)
    );
}

#[test]
fn a_late_wake_up_does_not_burst() {
    let start = Instant::now();
    let mut pacer = Pacer::new(start, PTIME);
    let mut p = RtpPacketizer::new(1, 0, 0, 0, 160);
    let mut sent = Vec::new();
    for _ in 0..50 {
        let at = pacer.next_due();
        wake(&mut pacer, &mut p, at, &mut sent);
    }
    // The task stalls for half a second (25 frames).
    let late = pacer.next_due() + Duration::from_millis(505);
    let burst = wake(&mut pacer, &mut p, late, &mut sent);
    assert!(burst <= MAX_BURST, "burst of {burst}");
    // Back on the grid: the next packet is due at the next 20 ms slot.
    assert!(pacer.next_due() > late);
    assert!(pacer.next_due() - late <= PTIME);
    assert_eq!((pacer.next_due() - start).as_nanos() % PTIME.as_nanos(), 0);
    // Sequence numbers stay continuous, the timestamp follows the slots.
    let burst = burst as usize;
    let after = &sent[50 + burst - 1];
    assert_eq!(after.sequence_number as usize, 50 + burst - 1);
    assert_eq!(u64::from(after.timestamp), 160 * (pacer.slot() - 1));
    assert!(after.marker, "re-anchored after the gap");
    // The stream goes on one packet per slot.
    for _ in 0..10 {
        let at = pacer.next_due();
        assert_eq!(wake(&mut pacer, &mut p, at, &mut sent), 1);
    }
}

#[test]
fn a_small_delay_is_caught_up_without_skipping() {
    let start = Instant::now();
    let mut pacer = Pacer::new(start, PTIME);
    let mut p = RtpPacketizer::new(1, 0, 0, 0, 160);
    let mut sent = Vec::new();
    // 45 ms late for slot 0: slots 0, 1 and 2 are due.
    let burst = wake(
        &mut pacer,
        &mut p,
        start + Duration::from_millis(45),
        &mut sent,
    );
    assert_eq!(burst, 3);
    assert_eq!(pacer.slot(), 3);
    assert!(sent.iter().skip(1).all(|h| !h.marker));
    assert_eq!(sent[2].timestamp, 320);
}

#[test]
fn prompt_frames_are_whole_and_the_last_padded() {
    let pcm: Vec<i16> = (1..=500).collect();
    let mut player = PromptPlayer::new(pcm.into(), 8000);
    assert_eq!(player.frame_len(), 160);
    assert_eq!(player.frames_left(), 4);
    let mut frames = Vec::new();
    while let Some(frame) = player.next_frame() {
        frames.push(frame.to_vec());
    }
    assert_eq!(frames.len(), 4);
    assert!(frames.iter().all(|f| f.len() == 160));
    assert_eq!(frames[0][0], 1);
    assert_eq!(frames[3][..20], (481..=500).collect::<Vec<i16>>()[..]);
    assert!(frames[3][20..].iter().all(|&x| x == 0));
    assert!(player.is_finished());
    assert!(player.next_frame().is_none());
}

#[test]
fn skip_stops_a_prompt_early() {
    let mut player = PromptPlayer::new(vec![5; 16_000].into(), 16_000);
    assert_eq!(player.next_frame().map(<[i16]>::len), Some(320));
    player.skip();
    assert!(player.is_finished());
    assert_eq!(player.frames_left(), 0);
    assert!(player.next_frame().is_none());
    assert!(PromptPlayer::new(Arc::from([]), 8000)
        .next_frame()
        .is_none());
}

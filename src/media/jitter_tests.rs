use super::super::decoder::Decoder;
use super::*;

const PTIME: u32 = 160;

/// A μ-law payload whose decoded level identifies the packet (0 < `tag` < 127).
fn payload(tag: u8) -> Vec<u8> {
    vec![0x80 | (tag & 0x7F); PTIME as usize]
}

fn level(tag: u8) -> i16 {
    let mut out = Vec::new();
    Decoder::new(Codec::Pcmu)
        .unwrap()
        .decode(&[0x80 | (tag & 0x7F)], &mut out)
        .unwrap();
    out[0]
}

struct Harness {
    buffer: JitterBuffer,
    t0: Instant,
    out: Vec<i16>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            buffer: JitterBuffer::new(Duration::from_millis(60), 8000),
            t0: Instant::now(),
            out: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn send(&mut self, ssrc: u32, seq: u16, ts: u32, tag: u8, ms: u64) -> Insert {
        let now = self.at(ms);
        self.buffer
            .insert(ssrc, seq, ts, Codec::Pcmu, &payload(tag), now)
    }

    fn poll(&mut self, ms: u64) {
        let now = self.at(ms);
        let out = &mut self.out;
        self.buffer.poll(now, &mut |pcm| out.extend_from_slice(pcm));
    }

    fn finish(&mut self) {
        let out = &mut self.out;
        self.buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    }

    /// The tag of each 20 ms frame of output (0 for silence).
    fn frames(&self) -> Vec<u8> {
        self.out
            .chunks(PTIME as usize)
            .map(|frame| {
                assert!(frame.iter().all(|&s| s == frame[0]), "frame is mixed");
                (1..127u8).find(|&t| level(t) == frame[0]).unwrap_or(0)
            })
            .collect()
    }
}

#[test]
fn in_order_audio_waits_for_the_delay_then_plays() {
    let mut h = Harness::new();
    for i in 0..5u16 {
        let ms = u64::from(i) * 20;
        assert_eq!(
            h.send(7, 100 + i, 1000 + u32::from(i) * PTIME, i as u8 + 1, ms),
            Insert::Accepted
        );
    }
    h.poll(50);
    assert!(h.out.is_empty(), "nothing is due before 60 ms");
    h.poll(60);
    assert_eq!(h.frames(), vec![1]);
    h.poll(200);
    assert_eq!(h.frames(), vec![1, 2, 3, 4, 5]);
    assert_eq!(h.buffer.stats().lost, 0);
}

#[test]
fn reordered_packets_fall_into_place() {
    let mut h = Harness::new();
    h.send(7, 1, 0, 1, 0);
    h.send(7, 3, 2 * PTIME, 3, 20);
    h.send(7, 2, PTIME, 2, 30);
    h.send(7, 4, 3 * PTIME, 4, 40);
    h.poll(1000);
    assert_eq!(h.frames(), vec![1, 2, 3, 4]);
    assert_eq!(h.buffer.stats().lost, 0);
}

#[test]
fn a_due_packet_pushes_out_the_earlier_timeline() {
    let mut h = Harness::new();
    h.send(7, 1, 0, 1, 0);
    h.send(7, 3, 2 * PTIME, 3, 0);
    h.send(7, 2, PTIME, 2, 50);
    // At 60 ms packets 1 and 3 are due; 2 sits between them and goes too.
    h.poll(60);
    assert_eq!(h.frames(), vec![1, 2, 3]);
}

#[test]
fn loss_becomes_silence_of_the_same_length() {
    let mut h = Harness::new();
    for (seq, tag) in [(1u16, 1u8), (2, 2), (4, 4), (5, 5)] {
        h.send(7, seq, u32::from(seq) * PTIME, tag, u64::from(seq) * 20);
    }
    h.finish();
    assert_eq!(h.frames(), vec![1, 2, 0, 4, 5]);
    assert_eq!(h.out.len(), 5 * PTIME as usize);
    assert_eq!(h.buffer.stats().lost, 1);
}

#[test]
fn a_timestamp_gap_becomes_that_much_silence() {
    let mut h = Harness::new();
    h.send(7, 1, 0, 1, 0);
    // Silence suppression: next sequence number, timestamp 480 ms later.
    h.send(7, 2, 25 * PTIME, 2, 500);
    h.finish();
    assert_eq!(h.out.len(), 26 * PTIME as usize);
    assert_eq!(h.frames()[0], 1);
    assert_eq!(h.frames()[25], 2);
    assert!(h.frames()[1..25].iter().all(|&f| f == 0));
    assert_eq!(h.buffer.stats().lost, 0);
}

#[test]
fn a_pause_longer_than_the_ring_is_kept_as_silence() {
    let mut h = Harness::new();
    h.send(7, 1, 0, 1, 0);
    h.poll(100);
    // Ten seconds on hold, timestamps running on with the clock.
    h.send(7, 2, 500 * PTIME, 2, 10_000);
    h.send(7, 3, 501 * PTIME, 3, 10_020);
    h.finish();
    assert_eq!(h.out.len(), 502 * PTIME as usize);
    let frames = h.frames();
    assert_eq!((frames[0], frames[500], frames[501]), (1, 2, 3));
    assert!(frames[1..500].iter().all(|&f| f == 0));
}

#[test]
fn a_timestamp_leap_is_clamped_to_wall_clock_time() {
    let mut h = Harness::new();
    h.send(7, 1, 0, 1, 0);
    // Half an hour of timestamps in 20 ms of real time: a broken sender.
    h.send(7, 2, 8000 * 1800, 2, 20);
    h.finish();
    assert!(h.out.len() <= 2 * PTIME as usize + 160, "{}", h.out.len());
    assert_eq!(h.frames().last(), Some(&2));
}

#[test]
fn duplicates_are_dropped() {
    let mut h = Harness::new();
    h.send(7, 1, 0, 1, 0);
    h.send(7, 2, PTIME, 2, 20);
    assert_eq!(h.send(7, 2, PTIME, 9, 25), Insert::Duplicate);
    assert_eq!(h.send(7, 1, 0, 9, 26), Insert::Duplicate);
    h.send(7, 3, 2 * PTIME, 3, 40);
    h.finish();
    assert_eq!(h.frames(), vec![1, 2, 3]);
    assert_eq!(h.buffer.stats().duplicate, 2);
}

#[test]
fn sequence_numbers_wrap_at_65535() {
    let mut h = Harness::new();
    h.send(7, 65534, 0, 1, 0);
    h.send(7, 0, 2 * PTIME, 3, 20);
    h.send(7, 65535, PTIME, 2, 25);
    h.send(7, 1, 3 * PTIME, 4, 40);
    h.finish();
    assert_eq!(h.frames(), vec![1, 2, 3, 4]);
    assert_eq!(h.buffer.stats().lost, 0);
    assert_eq!(h.buffer.stats().duplicate, 0);
}

#[test]
fn timestamps_wrap_at_2_pow_32() {
    let mut h = Harness::new();
    let start = u32::MAX - PTIME + 1;
    h.send(7, 1, start, 1, 0);
    h.send(7, 3, start.wrapping_add(2 * PTIME), 3, 20);
    h.send(7, 2, start.wrapping_add(PTIME), 2, 25);
    h.finish();
    assert_eq!(h.frames(), vec![1, 2, 3]);
}

#[test]
fn a_new_ssrc_continues_where_the_old_stream_ended() {
    let mut h = Harness::new();
    h.send(7, 10, 5000, 1, 0);
    h.send(7, 11, 5000 + PTIME, 2, 20);
    // Another source takes over with unrelated numbering.
    h.send(9, 40000, 123_456, 3, 40);
    h.send(9, 40001, 123_456 + PTIME, 4, 60);
    h.poll(70);
    h.finish();
    assert_eq!(h.frames(), vec![1, 2, 3, 4]);
    assert_eq!(h.buffer.stats().ssrc_changes, 1);
}

#[test]
fn a_straggler_of_the_replaced_stream_keeps_its_place() {
    let mut h = Harness::new();
    h.send(7, 10, 0, 1, 0);
    h.send(7, 12, 2 * PTIME, 3, 20);
    h.send(9, 500, 77, 4, 30);
    h.send(7, 11, PTIME, 2, 35);
    h.finish();
    assert_eq!(h.frames(), vec![1, 2, 3, 4]);
    assert_eq!(h.buffer.stats().ssrc_changes, 1);
}

#[test]
fn late_packets_are_dropped() {
    let mut h = Harness::new();
    h.send(7, 1, 0, 1, 0);
    h.send(7, 3, 2 * PTIME, 3, 20);
    h.poll(100);
    assert_eq!(h.send(7, 2, PTIME, 2, 120), Insert::Late);
    h.send(7, 4, 3 * PTIME, 4, 130);
    h.finish();
    assert_eq!(h.frames(), vec![1, 0, 3, 4]);
    assert_eq!(h.buffer.stats().late, 1);
}

#[test]
fn a_restarted_sender_continues_the_timeline() {
    let mut h = Harness::new();
    h.send(7, 1000, 0, 1, 0);
    h.send(7, 1001, PTIME, 2, 20);
    // Same SSRC, sequence and timestamp start over.
    h.send(7, 30000, 999_999, 3, 40);
    h.send(7, 30001, 999_999 + PTIME, 4, 60);
    h.finish();
    assert_eq!(h.frames(), vec![1, 2, 3, 4]);
}

#[test]
fn without_polling_the_ring_overflows_instead_of_growing() {
    let mut h = Harness::new();
    let mut overflowed = 0;
    for i in 0..200u16 {
        if h.send(7, i, u32::from(i) * PTIME, 1, u64::from(i) * 20) == Insert::Overflow {
            overflowed += 1;
        }
    }
    // 2.048 s of ring holds 102 packets of 20 ms.
    assert_eq!(overflowed, 200 - 102);
    assert_eq!(h.buffer.stats().overflow, 98);
}

#[test]
fn nothing_is_played_before_any_packet() {
    let mut h = Harness::new();
    h.poll(10_000);
    h.finish();
    assert!(h.out.is_empty());
}

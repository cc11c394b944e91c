//! The RTP send path: what the caller hears (greeting, beep), as packets on
//! a steady 20 ms clock.
//!
//! Three sans-IO pieces, joined by the async call loop:
//! - [`RtpPacketizer`] writes RFC 3550 headers with continuous sequence
//!   numbers and timestamps and the marker bit on the first packet;
//! - [`Pacer`] says when the next packet is due, on a grid fixed at the
//!   start (no drift) that skips ahead rather than bursting when late;
//! - [`PromptPlayer`] cuts a PCM prompt into 20 ms frames and can stop early
//!   (a DTMF digit skips the greeting).
//!
//! The loop around them is, in outline:
//!
//! ```text
//! sleep_until(pacer.next_due()); now = Instant::now();
//! while pacer.next_due() <= now {
//!     frame = player.next_frame() (or end); encode it;
//!     packetizer.packet(&payload, &mut datagram); socket.send_to(&datagram);
//!     let skipped = pacer.sent(now); packetizer.skip_frames(skipped);
//! }
//! ```
//!
//! Time is `std::time::Instant`; the tokio loop converts with
//! `tokio::time::Instant::from_std` and `into_std`.
//!
//! The 12-byte header is written by hand rather than with
//! `rtp::header::Header::marshal_to`: that call returns a `Result` for
//! buffer-size and extension errors that cannot happen for a fixed header
//! without CSRCs or extensions, and writing twelve bytes is shorter and
//! infallible. The tests parse every packet back with the `rtp` crate (as the
//! receive path does), so both directions agree with it.

use std::time::{Duration, Instant};

/// The packet interval vmesh sends at: 20 ms, the default ptime for every
/// audio codec of RFC 3551 (§4.2) and the usual one for Opus (RFC 7587 §4).
pub const PTIME: Duration = Duration::from_millis(20);

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// The most datagrams the pacer lets out back to back when the sender wakes
/// up late: up to two frames of catch-up after the one that was due, 60 ms
/// of audio, which any jitter buffer absorbs. Later than that, the missed
/// slots are skipped instead (see [`Pacer::sent`]).
pub const MAX_BURST: u64 = 3;

/// Writes the RTP packets of one outgoing stream (RFC 3550 §5.1).
///
/// The caller chooses the SSRC and the initial sequence number and
/// timestamp at random (RFC 3550 §5.1, §8: they must not be predictable and
/// must differ between streams), and the timestamp step per frame, which is
/// the RTP clock's count for 20 ms: 160 for G.711 and for G.722 (whose RTP
/// clock runs at 8000 Hz although it samples at 16 kHz, RFC 3551 §4.5.2),
/// 960 for Opus (48 kHz clock, RFC 7587 §4.1).
#[derive(Debug, Clone)]
pub struct RtpPacketizer {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    payload_type: u8,
    ts_per_frame: u32,
    marker: bool,
}

impl RtpPacketizer {
    /// Starts a stream; the first packet will carry `first_seq`, `first_ts`
    /// and the marker bit. Only the low 7 bits of `payload_type` are used
    /// (RFC 3550 §5.1: PT is 7 bits).
    pub fn new(
        ssrc: u32,
        first_seq: u16,
        first_ts: u32,
        payload_type: u8,
        ts_per_frame: u32,
    ) -> Self {
        RtpPacketizer {
            ssrc,
            sequence: first_seq,
            timestamp: first_ts,
            payload_type: payload_type & 0x7F,
            ts_per_frame,
            // RFC 3551 §4.1: the marker is set on the first packet of a
            // talkspurt, so the receiver can (re)set its play-out point.
            marker: true,
        }
    }

    /// Starts a stream with its SSRC, first sequence number and first
    /// timestamp drawn from `rng` (RFC 3550 §5.1: random initial values make
    /// known-plaintext attacks on encrypted streams harder, and a random
    /// SSRC keeps streams apart, §8.1).
    pub fn with_random_start<R: rand::Rng + ?Sized>(
        rng: &mut R,
        payload_type: u8,
        ts_per_frame: u32,
    ) -> Self {
        RtpPacketizer::new(
            rng.random(),
            rng.random(),
            rng.random(),
            payload_type,
            ts_per_frame,
        )
    }

    /// Writes one packet carrying `payload` (one encoded 20 ms frame) into
    /// `out`, replacing what it held, and steps the sequence number by one
    /// and the timestamp by one frame, both wrapping (RFC 3550 §5.1).
    ///
    /// `out` is the caller's reusable buffer, so steady-state sending does
    /// not allocate.
    pub fn packet(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(RTP_HEADER_LEN + payload.len());
        // V=2, P=0, X=0, CC=0.
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | self.payload_type);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(payload);
        self.marker = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.ts_per_frame);
    }

    /// Accounts for `frames` frame slots that were not sent because the
    /// sender fell behind (the count [`Pacer::sent`] returns).
    ///
    /// The timestamp advances by their duration so that it keeps following
    /// the sampling clock (RFC 3550 §5.1), while the sequence number does
    /// not: nothing was lost on the network, so the receiver must not count
    /// a loss. The next packet carries the marker bit, as the first packet
    /// after a gap (RFC 3551 §4.1), so the receiver re-anchors its play-out.
    /// Zero frames change nothing.
    pub fn skip_frames(&mut self, frames: u64) {
        if frames == 0 {
            return;
        }
        // Timestamps are modulo 2^32, so only the low bits of the count matter.
        let step = (frames as u32).wrapping_mul(self.ts_per_frame);
        self.timestamp = self.timestamp.wrapping_add(step);
        self.marker = true;
    }

    /// The stream's synchronization source identifier.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }
}

/// When each packet of a stream is due: `start + n * ptime`.
///
/// Due times are computed from the start by multiplication, never by adding
/// intervals to the previous wake-up, so scheduling delays do not accumulate
/// into drift: after ten minutes the stream is exactly 30,000 frames long.
/// A sender that wakes up a little late sends the overdue frames at once
/// (at most [`MAX_BURST`] in a row); one that is further behind skips the
/// missed slots and resumes on the grid, rather than flooding the caller's
/// jitter buffer with a burst it would have to drop.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    ptime: Duration,
    slot: u64,
}

impl Pacer {
    /// A pacer whose first packet is due at `start`. A `ptime` of zero is
    /// taken as 1 ms, so that due times always move forward.
    pub fn new(start: Instant, ptime: Duration) -> Self {
        Pacer {
            start,
            ptime: ptime.max(Duration::from_millis(1)),
            slot: 0,
        }
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Instant {
        self.due(self.slot)
    }

    /// The frame slot of the next packet: how many packet intervals have
    /// passed since the start, skipped ones included.
    pub fn slot(&self) -> u64 {
        self.slot
    }

    /// Records that the packet due at [`next_due`](Self::next_due) was sent
    /// at `now`, and moves on to the next slot.
    ///
    /// If `now` is so late that [`MAX_BURST`] or more packets would be sent
    /// back to back, the slots that can no longer be sent on time are
    /// skipped: the next packet is then the one whose slot contains `now`,
    /// due at once, and the grid carries on from there. Returns how many
    /// slots were skipped, for [`RtpPacketizer::skip_frames`].
    pub fn sent(&mut self, now: Instant) -> u64 {
        self.slot += 1;
        let Some(late) = now.checked_duration_since(self.due(self.slot)) else {
            return 0;
        };
        // Whole intervals between the next slot's due time and now: that
        // many more slots are overdue after the next one.
        let overdue = late.as_nanos() / self.ptime.as_nanos();
        let overdue = u64::try_from(overdue).unwrap_or(u64::MAX);
        if overdue + 1 < MAX_BURST {
            return 0;
        }
        self.slot = self.slot.saturating_add(overdue);
        overdue
    }

    /// The due time of `slot`, exact to the nanosecond.
    fn due(&self, slot: u64) -> Instant {
        let nanos = self.ptime.as_nanos().saturating_mul(u128::from(slot));
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        // The remainder is below 10^9, so it fits.
        let sub = (nanos % 1_000_000_000) as u32;
        self.start + Duration::new(secs, sub)
    }
}

/// Plays a prompt (a greeting, the beep) as 20 ms frames of PCM at the
/// codec's audio rate, ready for the encoder.
///
/// The last frame is padded with silence, so every frame has the length the
/// encoder expects (RFC 3551 §4.2: a packet carries whole frames).
#[derive(Debug, Clone)]
pub struct PromptPlayer {
    pcm: Vec<i16>,
    frame_len: usize,
    position: usize,
    padded: Vec<i16>,
}

impl PromptPlayer {
    /// A player for `pcm` at `rate` Hz; frames are `rate / 50` samples
    /// (320 at 16 kHz, 160 at 8 kHz).
    pub fn new(pcm: Vec<i16>, rate: u32) -> Self {
        let frame_len = (rate as usize / 50).max(1);
        PromptPlayer {
            pcm,
            frame_len,
            position: 0,
            padded: Vec::new(),
        }
    }

    /// The next frame, or `None` once the prompt is over (or skipped).
    pub fn next_frame(&mut self) -> Option<&[i16]> {
        let rest = self.pcm.get(self.position..).filter(|r| !r.is_empty())?;
        if rest.len() >= self.frame_len {
            let frame = rest.get(..self.frame_len)?;
            self.position += self.frame_len;
            return Some(frame);
        }
        self.padded.clear();
        self.padded.extend_from_slice(rest);
        self.padded.resize(self.frame_len, 0);
        self.position = self.pcm.len();
        Some(&self.padded)
    }

    /// Stops the prompt: the next [`next_frame`](Self::next_frame) returns
    /// `None`. A DTMF digit during the greeting does this, so the beep
    /// follows at once.
    pub fn skip(&mut self) {
        self.position = self.pcm.len();
    }

    /// Whether every frame has been played (or the prompt was skipped).
    pub fn is_finished(&self) -> bool {
        self.position >= self.pcm.len()
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Frames still to play, the padded last one included.
    pub fn frames_left(&self) -> usize {
        self.pcm
            .len()
            .saturating_sub(self.position)
            .div_ceil(self.frame_len)
    }
}

#[cfg(test)]
mod tests {
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
    fn wake(
        pacer: &mut Pacer,
        p: &mut RtpPacketizer,
        wake: Instant,
        sent: &mut Vec<Header>,
    ) -> u64 {
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
        let mut player = PromptPlayer::new(pcm, 8000);
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
        let mut player = PromptPlayer::new(vec![5; 16_000], 16_000);
        assert_eq!(player.next_frame().map(<[i16]>::len), Some(320));
        player.skip();
        assert!(player.is_finished());
        assert_eq!(player.frames_left(), 0);
        assert!(player.next_frame().is_none());
        assert!(PromptPlayer::new(Vec::new(), 8000).next_frame().is_none());
    }
}

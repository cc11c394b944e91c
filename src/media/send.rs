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

use std::sync::Arc;
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

    /// Writes one packet of `payload_type` whose timestamp the caller
    /// computed (a pacing slot's, [`crate::media::outbound`]), into `out`:
    /// the sequence number steps by one, the marker goes on the first
    /// packet and on the first after [`RtpPacketizer::mark_next`].
    pub fn write(&mut self, payload_type: u8, timestamp: u32, payload: &[u8], out: &mut Vec<u8>) {
        self.payload_type = payload_type & 0x7F;
        self.timestamp = timestamp;
        self.packet(payload, out);
    }

    /// Sets the marker bit on the next packet: the first of a talkspurt
    /// after silence or comfort noise (RFC 3551 §4.1, RFC 3389 §4).
    pub fn mark_next(&mut self) {
        self.marker = true;
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

    /// The slot whose interval contains `now` (0 before the start).
    pub fn slot_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        u64::try_from(elapsed / self.ptime.as_nanos()).unwrap_or(u64::MAX)
    }

    /// When the grid starts: the due time of slot 0.
    pub fn start(&self) -> Instant {
        self.start
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
    pub fn due(&self, slot: u64) -> Instant {
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
    pcm: Arc<[i16]>,
    frame_len: usize,
    position: usize,
    padded: Vec<i16>,
}

impl PromptPlayer {
    /// A player for `pcm` at `rate` Hz; frames are `rate / 50` samples
    /// (320 at 16 kHz, 160 at 8 kHz).
    pub fn new(pcm: Arc<[i16]>, rate: u32) -> Self {
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
#[path = "send_tests.rs"]
mod tests;

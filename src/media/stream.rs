//! One RTP stream (one SSRC) as the jitter buffer follows it: sequence
//! numbers for loss and duplicate detection (RFC 3550 A.1, A.3), and the
//! mapping of its timestamps onto the recording's timeline.

/// Sequence numbers remembered for duplicate detection.
pub(super) const REPLAY_WINDOW: i32 = 128;
/// A sequence jump this large is a restarted sender (RFC 3550 A.1).
const MAX_DROPOUT: i32 = 3000;

/// How a sequence number relates to a stream's highest one.
pub(super) enum Sequence {
    /// Ahead by this many.
    Ahead(u16),
    /// Behind by this many (0: the highest itself), inside the replay window.
    Behind(u16),
    /// Too far behind to judge; its audio is long played out.
    TooOld,
    /// A jump only a restarted sender makes.
    Discontinuity,
}

/// One RTP stream and how its timestamps map to the timeline.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stream {
    pub(super) ssrc: u32,
    highest_seq: u16,
    /// Bit `i` is set when `highest_seq - i` was received.
    seen: u128,
    /// A timestamp and the timeline position it maps to.
    pub(super) anchor_ts: u32,
    pub(super) anchor_pos: u64,
    /// Extended sequence numbers for the loss count (RFC 3550 A.3).
    first_ext: u64,
    pub(super) highest_ext: u64,
    received: u64,
}

impl Stream {
    pub(super) fn new(ssrc: u32, seq: u16, ts: u32, pos: u64) -> Self {
        let ext = (1 << 32) + u64::from(seq);
        Stream {
            ssrc,
            highest_seq: seq,
            seen: 0,
            anchor_ts: ts,
            anchor_pos: pos,
            first_ext: ext,
            highest_ext: ext,
            received: 0,
        }
    }

    pub(super) fn classify(&self, seq: u16) -> Sequence {
        let delta = i32::from(seq.wrapping_sub(self.highest_seq) as i16);
        match delta {
            d if d > 0 && d <= MAX_DROPOUT => Sequence::Ahead(d as u16),
            d if d <= 0 && -d < REPLAY_WINDOW => Sequence::Behind((-d) as u16),
            d if d <= 0 && -d <= MAX_DROPOUT => Sequence::TooOld,
            _ => Sequence::Discontinuity,
        }
    }

    /// The timeline position of a timestamp. RTP timestamps wrap, so the
    /// distance to the anchor is taken modulo 2^32 as a signed number, then
    /// scaled from the codec's RTP clock to the timeline's rate (G.722:
    /// ×2 at 16 kHz; Opus's 48 kHz clock at 16 kHz: ÷3).
    pub(super) fn position(&self, ts: u32, timeline_rate: u32, rtp_clock: u32) -> u64 {
        let offset = i64::from(ts.wrapping_sub(self.anchor_ts) as i32);
        let scaled = offset * i64::from(timeline_rate) / i64::from(rtp_clock.max(1));
        self.anchor_pos.saturating_add_signed(scaled)
    }

    pub(super) fn advance(&mut self, seq: u16, by: u16) {
        self.seen = if i32::from(by) >= REPLAY_WINDOW {
            1
        } else {
            (self.seen << by) | 1
        };
        self.highest_seq = seq;
        self.highest_ext += u64::from(by);
        self.received += 1;
    }

    /// Marks an older sequence number; false when it was already seen.
    pub(super) fn mark_behind(&mut self, age: u16) -> bool {
        let bit = 1u128 << age;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        self.received += 1;
        self.first_ext = self.first_ext.min(self.highest_ext - u64::from(age));
        true
    }

    /// Packets missing between the first and the highest sequence number.
    pub(super) fn lost(&self) -> u64 {
        (self.highest_ext - self.first_ext + 1).saturating_sub(self.received)
    }
}

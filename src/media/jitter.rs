//! The jitter buffer: puts received audio back in order and in time.
//!
//! Audio is placed on a recording timeline by RTP timestamp (RFC 3550
//! §5.1), not by arrival: a packet lands at the position its timestamp names,
//! so reordered packets fall into place and a lost packet leaves a hole of
//! exactly its length. The timeline is held in a fixed ring of PCM samples
//! that is zeroed behind the play-out point, so every hole plays out as
//! silence without bookkeeping and the recording is as long as the stream's
//! timestamps say.
//!
//! Play-out is driven by arrival time: audio is released once the packet
//! that carries it has waited `delay`, and everything before it on the
//! timeline goes out with it, present or not. A packet whose place has
//! already been played out is late and dropped; one whose sequence number
//! was seen before is a duplicate and dropped (a 128-packet replay window).
//!
//! A new SSRC (a transfer, a media server taking over) starts a new stream
//! that continues the timeline where the old one ended. A timestamp leap
//! that wall-clock time does not support is clamped to the time that really
//! passed, and a silence longer than the ring is kept as a counted gap
//! instead of ring space, so hold and silence suppression cost no memory.
//!
//! Storage is allocated once per call: 32 KiB of ring, 4 KiB of decode
//! scratch and two short queues.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::codec::{self, Codec};

/// The RTP clock and sample rate of the timeline (G.711: 8 kHz).
const SAMPLE_RATE: u64 = 8000;
/// Ring length: 2^14 samples, 2.048 s at 8 kHz, well above any jitter delay.
const RING_SAMPLES: usize = 1 << 14;
const RING_MASK: u64 = RING_SAMPLES as u64 - 1;
/// The largest packet decoded without growing the scratch buffer: anything
/// that fits the receive buffer.
const MAX_PACKET_SAMPLES: usize = 2048;
/// Packets that may wait for their play-out time at once.
const MAX_PENDING: usize = 128;
/// Compressed silences that may wait for play-out at once.
const MAX_GAPS: usize = 8;
/// Sequence numbers remembered for duplicate detection.
const REPLAY_WINDOW: i32 = 128;
/// A sequence jump this large is a restarted sender (RFC 3550 A.1).
const MAX_DROPOUT: i32 = 3000;
/// How far RTP timestamps may run ahead of wall-clock time (1 s).
const TIMESTAMP_SLACK: u64 = SAMPLE_RATE;
/// Where the timeline starts, so that early reordered packets have room.
const ORIGIN: u64 = 1 << 40;
/// Zeros to hand out for compressed gaps.
static SILENCE: [i16; 1024] = [0; 1024];

/// What became of one audio packet offered to the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Placed on the timeline.
    Accepted,
    /// Its sequence number was already received.
    Duplicate,
    /// Its place on the timeline was already played out.
    Late,
    /// The ring is full because play-out has not been polled.
    Overflow,
}

/// Counters of the jitter buffer, merged into the receiver's statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets placed on the timeline.
    pub accepted: u64,
    /// Packets never received, from sequence-number gaps (RFC 3550 A.3).
    pub lost: u64,
    /// Packets dropped because their audio was already played out.
    pub late: u64,
    /// Packets dropped because their sequence number was already seen.
    pub duplicate: u64,
    /// Packets dropped because play-out was not polled in time.
    pub overflow: u64,
    /// Times a new SSRC took over the stream.
    pub ssrc_changes: u64,
}

/// How a sequence number relates to a stream's highest one.
enum Sequence {
    /// Ahead by this many.
    Ahead(u16),
    /// Behind by this many (0: the highest itself), inside the replay window.
    Behind(u16),
    /// Too far behind to judge; its audio is long played out.
    TooOld,
    /// A jump only a restarted sender makes.
    Discontinuity,
}

/// One RTP stream (one SSRC) and how its timestamps map to the timeline.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    highest_seq: u16,
    /// Bit `i` is set when `highest_seq - i` was received.
    seen: u128,
    /// A timestamp and the timeline position it maps to.
    anchor_ts: u32,
    anchor_pos: u64,
    /// Extended sequence numbers for the loss count (RFC 3550 A.3).
    first_ext: u64,
    highest_ext: u64,
    received: u64,
}

impl Stream {
    fn new(ssrc: u32, seq: u16, ts: u32, pos: u64) -> Self {
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

    fn classify(&self, seq: u16) -> Sequence {
        let delta = i32::from(seq.wrapping_sub(self.highest_seq) as i16);
        match delta {
            d if d > 0 && d <= MAX_DROPOUT => Sequence::Ahead(d as u16),
            d if d <= 0 && -d < REPLAY_WINDOW => Sequence::Behind((-d) as u16),
            d if d <= 0 && -d <= MAX_DROPOUT => Sequence::TooOld,
            _ => Sequence::Discontinuity,
        }
    }

    /// The timeline position of a timestamp; RTP timestamps wrap, so the
    /// distance to the anchor is taken modulo 2^32 as a signed number.
    fn position(&self, ts: u32) -> u64 {
        let offset = i64::from(ts.wrapping_sub(self.anchor_ts) as i32);
        self.anchor_pos.saturating_add_signed(offset)
    }

    fn advance(&mut self, seq: u16, by: u16) {
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
    fn mark_behind(&mut self, age: u16) -> bool {
        let bit = 1u128 << age;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        self.received += 1;
        self.first_ext = self.first_ext.min(self.highest_ext - u64::from(age));
        true
    }

    fn lost(&self) -> u64 {
        (self.highest_ext - self.first_ext + 1).saturating_sub(self.received)
    }
}

/// A silence that was cut out of the ring, to be played at `position`.
#[derive(Debug, Clone, Copy)]
struct Gap {
    position: u64,
    samples: u64,
}

/// The jitter buffer of one call; see the module documentation.
pub struct JitterBuffer {
    delay: Duration,
    ring: Box<[i16]>,
    scratch: Vec<i16>,
    current: Option<Stream>,
    previous: Option<Stream>,
    /// End of the furthest audio placed on the timeline.
    write_end: u64,
    /// Start of the earliest audio placed, until play-out starts.
    lowest: u64,
    /// Next position to play out, once play-out has started.
    playout: Option<u64>,
    /// (end position, arrival) of packets waiting for their play-out time.
    pending: VecDeque<(u64, Instant)>,
    /// Play-out must reach at least here (pending packets pushed out early).
    forced: u64,
    gaps: VecDeque<Gap>,
    last_arrival: Option<Instant>,
    retired_lost: u64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Creates an empty buffer that holds audio for `delay` after arrival.
    pub fn new(delay: Duration) -> Self {
        JitterBuffer {
            delay,
            ring: vec![0; RING_SAMPLES].into_boxed_slice(),
            scratch: Vec::with_capacity(MAX_PACKET_SAMPLES),
            current: None,
            previous: None,
            write_end: ORIGIN,
            lowest: ORIGIN,
            playout: None,
            pending: VecDeque::with_capacity(MAX_PENDING),
            forced: 0,
            gaps: VecDeque::with_capacity(MAX_GAPS),
            last_arrival: None,
            retired_lost: 0,
            stats: JitterStats::default(),
        }
    }

    /// The buffer's counters, with losses summed over every stream seen.
    pub fn stats(&self) -> JitterStats {
        let lost = [self.current, self.previous]
            .iter()
            .flatten()
            .map(Stream::lost)
            .sum::<u64>();
        JitterStats {
            lost: self.retired_lost + lost,
            ..self.stats
        }
    }

    /// Offers one audio packet that arrived at `now`.
    pub fn insert(
        &mut self,
        ssrc: u32,
        seq: u16,
        ts: u32,
        codec: Codec,
        payload: &[u8],
        now: Instant,
    ) -> Insert {
        let samples = codec.samples_in(payload.len()) as u64;
        let (mut stream, is_previous) = self.stream_for(ssrc, seq, ts);
        let placed = self.place(&mut stream, seq, ts, samples, now);
        if is_previous {
            self.previous = Some(stream);
        } else {
            self.current = Some(stream);
        }
        let position = match placed {
            Ok(position) => position,
            Err(dropped) => return dropped,
        };
        self.write(codec, payload, position);
        self.write_end = self.write_end.max(position + samples);
        if self.playout.is_none() {
            self.lowest = self.lowest.min(position);
        }
        if self.pending.len() == MAX_PENDING {
            if let Some((end, _)) = self.pending.pop_front() {
                self.forced = self.forced.max(end);
            }
        }
        self.pending.push_back((position + samples, now));
        self.last_arrival = Some(now);
        self.stats.accepted += 1;
        Insert::Accepted
    }

    /// Plays out, in timeline order, everything carried by packets that have
    /// waited `delay`, with silence for what never came.
    pub fn poll(&mut self, now: Instant, sink: &mut impl FnMut(&[i16])) {
        let mut target = self.forced;
        while let Some(&(end, arrival)) = self.pending.front() {
            if now.saturating_duration_since(arrival) < self.delay {
                break;
            }
            target = target.max(end);
            self.pending.pop_front();
        }
        self.play_until(target, sink);
    }

    /// Plays out everything placed so far, due or not: the call has ended.
    pub fn finish(&mut self, sink: &mut impl FnMut(&[i16])) {
        self.pending.clear();
        self.play_until(self.write_end, sink);
    }

    /// Finds the stream a packet belongs to, starting a new one for a new
    /// SSRC; the new stream continues the timeline at its end.
    fn stream_for(&mut self, ssrc: u32, seq: u16, ts: u32) -> (Stream, bool) {
        if let Some(current) = self.current.filter(|s| s.ssrc == ssrc) {
            return (current, false);
        }
        if let Some(previous) = self.previous.filter(|s| s.ssrc == ssrc) {
            // A straggler of the stream that was replaced keeps its place.
            if matches!(
                previous.classify(seq),
                Sequence::Behind(_) | Sequence::TooOld
            ) {
                return (previous, true);
            }
        }
        if let Some(current) = self.current.take() {
            self.stats.ssrc_changes += 1;
            if let Some(retired) = self.previous.replace(current) {
                self.retired_lost += retired.lost();
            }
        }
        (Stream::new(ssrc, seq, ts, self.write_end), false)
    }

    /// Decides where a packet goes on the timeline, updating its stream.
    fn place(
        &mut self,
        stream: &mut Stream,
        seq: u16,
        ts: u32,
        samples: u64,
        now: Instant,
    ) -> Result<u64, Insert> {
        let mut sequence = stream.classify(seq);
        if matches!(sequence, Sequence::Discontinuity) {
            self.retired_lost += stream.lost();
            *stream = Stream::new(stream.ssrc, seq, ts, self.write_end);
            sequence = Sequence::Behind(0);
        }
        let floor = self.floor();
        let position = match sequence {
            Sequence::Ahead(by) => {
                stream.advance(seq, by);
                let elapsed = self.elapsed_samples(now);
                let mut position = stream.position(ts);
                if position > self.write_end + elapsed + TIMESTAMP_SLACK || position < floor {
                    // The timestamps disagree with the clock: trust the clock.
                    position = self.write_end + elapsed;
                }
                let position = self.fit(position, samples)?;
                stream.anchor_ts = ts;
                stream.anchor_pos = position;
                position
            }
            Sequence::Behind(age) => {
                if !stream.mark_behind(age) {
                    self.stats.duplicate += 1;
                    return Err(Insert::Duplicate);
                }
                stream.position(ts)
            }
            Sequence::TooOld | Sequence::Discontinuity => {
                self.stats.late += 1;
                return Err(Insert::Late);
            }
        };
        if position < floor {
            self.stats.late += 1;
            return Err(Insert::Late);
        }
        if position + samples > self.ceiling() {
            self.stats.overflow += 1;
            return Err(Insert::Overflow);
        }
        Ok(position)
    }

    /// Moves a packet that would land beyond the ring to the end of the
    /// timeline, keeping the silence before it as a counted gap.
    fn fit(&mut self, position: u64, samples: u64) -> Result<u64, Insert> {
        if position + samples <= self.ceiling() || position <= self.write_end {
            return Ok(position);
        }
        if self.write_end + samples > self.ceiling() || self.gaps.len() == MAX_GAPS {
            self.stats.overflow += 1;
            return Err(Insert::Overflow);
        }
        self.gaps.push_back(Gap {
            position: self.write_end,
            samples: position - self.write_end,
        });
        Ok(self.write_end)
    }

    /// The earliest position still open for audio.
    fn floor(&self) -> u64 {
        self.playout
            .unwrap_or_else(|| self.write_end.saturating_sub(RING_SAMPLES as u64))
    }

    /// The position where the ring's room ends.
    fn ceiling(&self) -> u64 {
        self.playout.unwrap_or(self.lowest) + RING_SAMPLES as u64
    }

    fn elapsed_samples(&self, now: Instant) -> u64 {
        self.last_arrival.map_or(0, |last| {
            let micros = now.saturating_duration_since(last).as_micros();
            u64::try_from(micros * u128::from(SAMPLE_RATE) / 1_000_000).unwrap_or(u64::MAX / 4)
        })
    }

    /// Decodes a payload into the ring at `position` (which `place` checked
    /// to be inside the ring's room).
    fn write(&mut self, codec: Codec, payload: &[u8], position: u64) {
        self.scratch.clear();
        codec::decode_into(codec, payload, &mut self.scratch);
        let mut at = position;
        let mut pcm = self.scratch.as_slice();
        while !pcm.is_empty() {
            let index = (at & RING_MASK) as usize;
            let run = pcm.len().min(RING_SAMPLES - index);
            let (head, rest) = pcm.split_at(run);
            if let Some(slot) = self.ring.get_mut(index..index + run) {
                slot.copy_from_slice(head);
            }
            pcm = rest;
            at += run as u64;
        }
    }

    /// Hands the timeline up to `target` to the sink and clears it behind.
    fn play_until(&mut self, target: u64, sink: &mut impl FnMut(&[i16])) {
        if self.stats.accepted == 0 {
            return;
        }
        let mut at = self.playout.unwrap_or(self.lowest);
        while at < target {
            while let Some(gap) = self.gaps.front().copied().filter(|g| g.position <= at) {
                play_silence(gap.samples, sink);
                self.gaps.pop_front();
            }
            let stop = match self.gaps.front() {
                Some(gap) if gap.position < target => gap.position,
                _ => target,
            };
            while at < stop {
                let index = (at & RING_MASK) as usize;
                let run = usize::try_from(stop - at)
                    .unwrap_or(usize::MAX)
                    .min(RING_SAMPLES - index);
                if let Some(audio) = self.ring.get_mut(index..index + run) {
                    sink(audio);
                    audio.fill(0);
                }
                at += run as u64;
            }
        }
        self.playout = Some(at.max(self.playout.unwrap_or(self.lowest)));
    }
}

fn play_silence(mut samples: u64, sink: &mut impl FnMut(&[i16])) {
    while samples > 0 {
        let run = samples.min(SILENCE.len() as u64) as usize;
        sink(&SILENCE[..run]);
        samples -= run as u64;
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;

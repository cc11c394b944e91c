//! The jitter buffer: puts received audio back in order and in time.
//!
//! Audio is placed on a recording timeline by RTP timestamp (RFC 3550
//! §5.1), not by arrival: a packet lands at the position its timestamp names,
//! so reordered packets fall into place and a lost packet leaves a hole of
//! exactly its length. The timeline runs at the recording's sample rate;
//! timestamps are scaled to it from the codec's RTP clock (G.722 counts
//! 8000 per second for 16 kHz audio, Opus 48000 whatever it codes). It is
//! held in a fixed [ring](super::ring) of PCM samples that is zeroed behind
//! the play-out point, so a hole plays out as silence without bookkeeping
//! and the recording is as long as the stream's timestamps say.
//!
//! Packets are decoded in timeline order by [`super::decoding`], which
//! conceals real losses with the codec's concealment (Opus) and converts a
//! codec of another rate to the timeline's.
//!
//! Play-out is driven by arrival time: audio is released once the packet
//! that carries it has waited `delay`, and everything before it on the
//! timeline goes out with it, present or not. A packet whose place has
//! already been played out is late and dropped; one whose sequence number
//! was seen before is a duplicate and dropped (a 128-packet replay window,
//! see [`super::stream`]).
//!
//! Play-out also catches up with a backlog: when more audio is held than
//! three quarters of the ring (a burst of packets that queued in the
//! socket while the server was starved of CPU for a second or two), the
//! oldest is released at once, before its delay, so the burst is recorded
//! whole instead of overflowing the ring; such packets are counted
//! ([`JitterStats::caught_up`]). Audio is dropped ([`Insert::Overflow`])
//! only when play-out is not polled at all.
//!
//! A new SSRC (a transfer, a media server taking over) starts a new stream
//! that continues the timeline where the old one ended. A timestamp leap
//! that wall-clock time does not support is clamped to the time that really
//! passed, and a silence longer than the ring is kept as a counted gap
//! instead of ring space, so hold and silence suppression cost no memory.
//!
//! Storage is allocated once per call: about two seconds of ring (32 KiB
//! at 8 kHz, 64 KiB at 16 kHz, taken when the first audio arrives), the
//! decoder and its scratch, and short queues.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::codec::Codec;
use super::decoding::{Decoding, Placed, MAX_HELD};
use super::ring::Ring;
use super::stream::{Sequence, Stream};

/// Packets that may wait for their play-out time at once.
const MAX_PENDING: usize = MAX_HELD;
/// Compressed silences that may wait for play-out at once.
const MAX_GAPS: usize = 8;
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
    /// The payload is not one of its codec (an empty or invalid Opus packet).
    Undecodable,
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
    /// Packets whose audio was played out before its delay to make room
    /// for a backlog that arrived at once.
    pub caught_up: u64,
    /// Times a new SSRC took over the stream.
    pub ssrc_changes: u64,
    /// Payloads that were not valid for their codec.
    pub undecodable: u64,
    /// Losses filled by the codec's concealment rather than silence.
    pub concealed: u64,
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
    /// The timeline's sample rate: the recording's.
    rate: u32,
    ring: Ring,
    decoding: Decoding,
    current: Option<Stream>,
    previous: Option<Stream>,
    /// End of the furthest audio placed on the timeline.
    write_end: u64,
    /// Start of the earliest audio placed, until play-out starts.
    lowest: u64,
    /// Next position to play out, once play-out has started.
    playout: Option<u64>,
    /// (end position, play-out time: arrival + delay) of packets waiting
    /// for it.
    pending: VecDeque<(u64, Instant)>,
    /// Play-out must reach at least here (pending packets pushed out early).
    forced: u64,
    gaps: VecDeque<Gap>,
    last_arrival: Option<Instant>,
    retired_lost: u64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Creates an empty buffer that holds audio for `delay` after arrival,
    /// on a timeline (and so a recording) at `rate` Hz.
    pub fn new(delay: Duration, rate: u32) -> Self {
        let rate = rate.max(1000);
        JitterBuffer {
            delay,
            rate,
            ring: Ring::new(rate),
            decoding: Decoding::new(rate),
            current: None,
            previous: None,
            write_end: ORIGIN,
            lowest: ORIGIN,
            playout: None,
            // Grown as needed, like the decoding stage's queues.
            pending: VecDeque::new(),
            forced: 0,
            gaps: VecDeque::with_capacity(MAX_GAPS),
            last_arrival: None,
            retired_lost: 0,
            stats: JitterStats::default(),
        }
    }

    /// The timeline's sample rate in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The buffer's counters, with losses summed over every stream seen.
    pub fn stats(&self) -> JitterStats {
        let lost = [self.current, self.previous]
            .iter()
            .flatten()
            .map(Stream::lost)
            .sum::<u64>();
        let decoding = self.decoding.stats();
        JitterStats {
            lost: self.retired_lost + lost,
            undecodable: self.stats.undecodable + decoding.undecodable,
            concealed: decoding.concealed,
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
        let Some(audio_samples) = codec.samples_in(payload).filter(|&n| n > 0) else {
            self.stats.undecodable += 1;
            return Insert::Undecodable;
        };
        let samples = audio_samples as u64 * u64::from(self.rate) / u64::from(codec.audio_rate());
        let (mut stream, is_previous) = self.stream_for(ssrc, seq, ts);
        let placed = self.place(&mut stream, seq, ts, codec, samples, now);
        if is_previous {
            self.previous = Some(stream);
        } else {
            self.current = Some(stream);
        }
        let (position, ext_seq) = match placed {
            Ok(placed) => placed,
            Err(dropped) => return dropped,
        };
        if self.decoding.is_full() {
            let window = self.window();
            self.decoding.decode_front(&mut self.ring, window);
        }
        let placed = Placed {
            position,
            samples,
            ssrc,
            ext_seq,
            codec,
        };
        let window = self.window();
        self.decoding.admit(placed, payload, &mut self.ring, window);
        self.write_end = self.write_end.max(position + samples);
        if self.playout.is_none() {
            self.lowest = self.lowest.min(position);
        }
        if self.pending.len() == MAX_PENDING {
            if let Some((end, _)) = self.pending.pop_front() {
                self.forced = self.forced.max(end);
            }
        }
        self.pending
            .push_back((position + samples, now + self.delay));
        self.catch_up();
        self.last_arrival = Some(now);
        self.stats.accepted += 1;
        Insert::Accepted
    }

    /// Plays out, in timeline order, everything carried by packets that have
    /// waited `delay`, with concealment or silence for what never came.
    pub fn poll(&mut self, now: Instant, sink: &mut impl FnMut(&[i16])) {
        let mut target = self.forced;
        while let Some(&(end, release)) = self.pending.front() {
            if release > now {
                break;
            }
            target = target.max(end);
            self.pending.pop_front();
        }
        let window = self.window();
        self.decoding.decode_before(target, &mut self.ring, window);
        self.play_until(target, sink);
    }

    /// When the earliest audio still held becomes due for play-out, if
    /// any is held.
    pub fn next_release(&self) -> Option<Instant> {
        self.pending.front().map(|&(_, release)| release)
    }

    /// Plays out everything placed so far, due or not: the call has ended.
    pub fn finish(&mut self, sink: &mut impl FnMut(&[i16])) {
        self.pending.clear();
        let window = self.window();
        let end = self.decoding.finish(&mut self.ring, window);
        self.play_until(self.write_end.max(end), sink);
    }

    /// Releases the oldest held audio early when more than three quarters
    /// of the ring is held, so the next packets of a backlog still fit.
    fn catch_up(&mut self) {
        let most = self.ring.len() - self.ring.len() / 4;
        let start = self.playout.unwrap_or(self.lowest).max(self.forced);
        if self.write_end.saturating_sub(start) <= most {
            return;
        }
        let target = self.write_end - most;
        while let Some(&(end, _)) = self.pending.front() {
            if end > target {
                break;
            }
            self.pending.pop_front();
            self.stats.caught_up += 1;
        }
        self.forced = self.forced.max(target);
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

    /// Decides where a packet goes on the timeline, updating its stream;
    /// gives its position and extended sequence number.
    fn place(
        &mut self,
        stream: &mut Stream,
        seq: u16,
        ts: u32,
        codec: Codec,
        samples: u64,
        now: Instant,
    ) -> Result<(u64, u64), Insert> {
        let mut sequence = stream.classify(seq);
        if matches!(sequence, Sequence::Discontinuity) {
            self.retired_lost += stream.lost();
            *stream = Stream::new(stream.ssrc, seq, ts, self.write_end);
            sequence = Sequence::Behind(0);
        }
        let floor = self.floor();
        let clock = codec.rtp_clock_rate();
        let (position, ext_seq) = match sequence {
            Sequence::Ahead(by) => {
                stream.advance(seq, by);
                let elapsed = self.elapsed_samples(now);
                let slack = u64::from(self.rate);
                let mut position = stream.position(ts, self.rate, clock);
                if position > self.write_end + elapsed + slack || position < floor {
                    // The timestamps disagree with the clock: trust the clock.
                    position = self.write_end + elapsed;
                }
                let position = self.fit(position, samples)?;
                stream.anchor_ts = ts;
                stream.anchor_pos = position;
                (position, stream.highest_ext)
            }
            Sequence::Behind(age) => {
                if !stream.mark_behind(age) {
                    self.stats.duplicate += 1;
                    return Err(Insert::Duplicate);
                }
                let ext_seq = stream.highest_ext - u64::from(age);
                (stream.position(ts, self.rate, clock), ext_seq)
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
        Ok((position, ext_seq))
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

    /// The earliest position still open for audio: neither played out nor
    /// already decoded.
    fn floor(&self) -> u64 {
        let open = self
            .playout
            .unwrap_or_else(|| self.write_end.saturating_sub(self.ring.len()));
        open.max(self.decoding.decoded_end().unwrap_or(0))
    }

    /// The position where the ring's room ends.
    fn ceiling(&self) -> u64 {
        self.playout.unwrap_or(self.lowest) + self.ring.len()
    }

    /// The positions decoded audio may be written to.
    fn window(&self) -> std::ops::Range<u64> {
        let start = self.playout.unwrap_or(self.lowest);
        start..start + self.ring.len()
    }

    fn elapsed_samples(&self, now: Instant) -> u64 {
        self.last_arrival.map_or(0, |last| {
            let micros = now.saturating_duration_since(last).as_micros();
            u64::try_from(micros * u128::from(self.rate) / 1_000_000).unwrap_or(u64::MAX / 4)
        })
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
            self.ring.drain(at, stop, sink);
            at = at.max(stop);
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

#[cfg(test)]
#[path = "jitter_wideband_tests.rs"]
mod wideband_tests;

//! Recording what the caller says into a sink: the limits that end a
//! message, and the blocks the sink receives.
//!
//! The media core ([`super::CallMedia`]) hands every piece of play-out PCM
//! to the [`Recorder`] while a recording runs. It cuts the audio at exactly
//! the maximum length, measures the silence that may end the message, and
//! gathers the PCM into blocks of [`BLOCK_MS`], so the sink (a WAV file, a
//! greeting being recorded) is written a few times a second rather than on
//! every packet. Sans-IO: it never touches the sink itself; the async loop
//! drains its blocks.

use std::time::Duration;

use crate::audio::silence::SilenceTracker;

/// Audio gathered before the sink gets it: a tenth of a second, so a
/// crash loses no more than what the store's own buffering would.
pub const BLOCK_MS: u32 = 100;

/// When a recording must end, whatever the caller does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordLimits {
    /// The longest message, counted in recorded audio at the recording's
    /// rate; the recording is cut at exactly this many samples.
    pub max_length: Duration,
    /// Silence on the wire this long means the caller is gone (a lost BYE).
    /// It does not run while the caller holds the call.
    pub rtp_timeout: Duration,
    /// How long audio waits in the jitter buffer for reordered packets.
    pub jitter: Duration,
    /// Silence in the recorded audio this long ends the message (`None`:
    /// never); silence is below `silence_threshold_dbfs`.
    pub max_silence: Option<Duration>,
    /// The level under which a 20 ms frame counts as silence.
    pub silence_threshold_dbfs: f32,
}

/// Why a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEnd {
    /// The call ended (the caller left, or the recording was stopped).
    Stopped,
    /// The server is shutting down and ended the call itself.
    Shutdown,
    /// The caller pressed the stop key (`#`), by RFC 4733 or SIP INFO.
    Dtmf(char),
    /// The message reached the maximum length.
    MaxLength,
    /// The caller said nothing for the maximum silence.
    MaxSilence,
    /// No RTP arrived for the RTP timeout.
    RtpTimeout,
    /// The sink (the message file) refused audio; its error, as text.
    SinkFailed(String),
}

/// One recording in progress; see the module documentation.
pub struct Recorder {
    remaining: u64,
    stop_key: Option<char>,
    silence: Option<SilenceWatch>,
    block: Vec<i16>,
    block_len: usize,
    ended: Option<RecordEnd>,
}

/// How long the recorded audio has been silent.
struct SilenceWatch {
    tracker: SilenceTracker,
    max: Duration,
    frame: usize,
}

impl Recorder {
    /// A recording at `rate` Hz within `limits`, ended early by the
    /// `stop_key` digit when there is one.
    pub fn new(rate: u32, limits: &RecordLimits, stop_key: Option<char>) -> Recorder {
        let block_len = (u64::from(rate) * u64::from(BLOCK_MS) / 1000) as usize;
        Recorder {
            remaining: samples_in(limits.max_length, rate),
            stop_key,
            silence: limits.max_silence.map(|max| SilenceWatch {
                tracker: SilenceTracker::new(rate, limits.silence_threshold_dbfs),
                max,
                frame: (rate / 50).max(1) as usize,
            }),
            // Room for a second and a block: what the media engine lets
            // gather before the call's task drains it.
            block: Vec::with_capacity(rate as usize + block_len.max(1)),
            block_len: block_len.max(1),
            ended: None,
        }
    }

    /// The key that ends this recording.
    pub fn stop_key(&self) -> Option<char> {
        self.stop_key
    }

    /// Why it ended, once it has.
    pub fn ended(&self) -> Option<&RecordEnd> {
        self.ended.as_ref()
    }

    /// Samples gathered and not yet drained.
    pub fn held(&self) -> usize {
        self.block.len()
    }

    /// Ends it (first reason wins).
    pub fn end(&mut self, reason: RecordEnd) {
        self.ended.get_or_insert(reason);
    }

    /// Takes play-out PCM: cut at the maximum length, watched for silence.
    pub fn push(&mut self, pcm: &[i16]) {
        if self.ended.is_some() && self.remaining == 0 {
            return;
        }
        let take = usize::try_from(self.remaining).map_or(pcm.len(), |r| r.min(pcm.len()));
        let part = &pcm[..take];
        self.remaining -= take as u64;
        self.block.extend_from_slice(part);
        if let Some(watch) = self.silence.as_mut() {
            for frame in part.chunks(watch.frame) {
                if watch.tracker.push(frame).silent_for >= watch.max {
                    self.ended.get_or_insert(RecordEnd::MaxSilence);
                }
            }
        }
        if self.remaining == 0 {
            self.ended.get_or_insert(RecordEnd::MaxLength);
        }
    }

    /// Whether [`Self::take`] would hand out audio, and if so the capacity
    /// `out` should have, so that a caller can make that buffer before it
    /// takes the lock the recorder is under.
    pub fn ready(&self, all: bool) -> Option<usize> {
        let empty = self.block.is_empty() || (!all && self.block.len() < self.block_len);
        (!empty).then(|| self.block.capacity())
    }

    /// Swaps the gathered audio into `out` (cleared first): whole blocks
    /// while recording, everything once `all` (the recording has ended).
    /// `out`'s buffer (grown to the block's capacity) takes its place, so
    /// nothing is copied: a caller may hand the same two buffers back in
    /// turn, or, as [`super::CallMedia`] does, a new one each time.
    pub fn take(&mut self, all: bool, out: &mut Vec<i16>) {
        out.clear();
        if self.ready(all).is_none() {
            return;
        }
        if out.capacity() < self.block.capacity() {
            out.reserve_exact(self.block.capacity());
        }
        std::mem::swap(&mut self.block, out);
    }
}

/// Samples of `length` at `rate` Hz.
pub fn samples_in(length: Duration, rate: u32) -> u64 {
    u64::try_from(length.as_nanos() * u128::from(rate) / 1_000_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_ms: u64, silence_s: Option<u64>) -> RecordLimits {
        RecordLimits {
            max_length: Duration::from_millis(max_ms),
            rtp_timeout: Duration::from_secs(30),
            jitter: Duration::from_millis(60),
            max_silence: silence_s.map(Duration::from_secs),
            silence_threshold_dbfs: -50.0,
        }
    }

    fn collect(r: &mut Recorder, all: bool) -> Vec<i16> {
        let mut out = vec![7; 3];
        r.take(all, &mut out);
        out
    }

    #[test]
    fn blocks_of_a_tenth_of_a_second_then_the_rest() {
        let mut r = Recorder::new(8000, &limits(10_000, None), Some('#'));
        r.push(&[1; 160]);
        assert!(collect(&mut r, false).is_empty(), "not a block yet");
        for _ in 0..4 {
            r.push(&[1; 160]);
        }
        assert_eq!(collect(&mut r, false).len(), 800);
        r.push(&[2; 160]);
        assert_eq!(collect(&mut r, true), vec![2; 160]);
        assert_eq!(r.ended(), None);
        assert_eq!(r.stop_key(), Some('#'));
    }

    #[test]
    fn the_maximum_length_cuts_exactly() {
        let mut r = Recorder::new(8000, &limits(1000, None), None);
        for _ in 0..60 {
            r.push(&[500; 160]);
        }
        assert_eq!(r.ended(), Some(&RecordEnd::MaxLength));
        assert_eq!(collect(&mut r, true).len(), 8000);
    }

    #[test]
    fn silence_ends_it_and_the_first_reason_wins() {
        let mut r = Recorder::new(8000, &limits(60_000, Some(1)), None);
        for _ in 0..49 {
            r.push(&[0; 160]);
        }
        assert_eq!(r.ended(), None);
        r.push(&[0; 160]);
        assert_eq!(r.ended(), Some(&RecordEnd::MaxSilence));
        r.end(RecordEnd::Stopped);
        assert_eq!(r.ended(), Some(&RecordEnd::MaxSilence));
    }

    /// The two buffers take turns: what was taken is gone from the
    /// recorder, which goes on gathering into the buffer it was given.
    #[test]
    fn taking_swaps_the_buffers() {
        let mut r = Recorder::new(8000, &limits(60_000, None), None);
        r.push(&[1; 800]);
        let mut out = Vec::with_capacity(10_000);
        let given = out.as_ptr();
        r.take(false, &mut out);
        assert_eq!(out, vec![1; 800]);
        assert_eq!(r.held(), 0);
        r.push(&[2; 160]);
        let mut next = Vec::new();
        r.take(true, &mut next);
        assert_eq!(next, vec![2; 160]);
        assert_eq!(
            next.as_ptr(),
            given,
            "the recorder gathered into the buffer given"
        );
    }

    /// `ready` says what `take` would do, and the capacity it asks for
    /// is enough for `take` to swap in the buffer without growing it.
    #[test]
    fn ready_foretells_take() {
        let mut r = Recorder::new(8000, &limits(60_000, None), None);
        assert_eq!(r.ready(true), None, "nothing gathered");
        r.push(&[3; 400]);
        assert_eq!(r.ready(false), None, "less than a block while recording");
        let capacity = r.ready(true).expect("everything once ended");
        let mut out = Vec::with_capacity(capacity);
        r.take(true, &mut out);
        assert_eq!(out, vec![3; 400]);
        r.push(&[4; 8000]);
        let capacity = r.ready(false).expect("a whole block");
        let mut out = Vec::with_capacity(capacity);
        r.take(false, &mut out);
        assert_eq!(out.len(), 8000);
        let mut next = Vec::with_capacity(capacity);
        let given = next.as_ptr();
        r.push(&[5; 8000]);
        r.take(false, &mut next);
        assert_ne!(next.as_ptr(), given, "swapped, not copied");
        assert_eq!(r.ready(true), None);
        r.push(&[6; 8000]);
        assert_eq!(
            r.ready(false),
            Some(capacity),
            "the buffer given, not grown"
        );
    }

    #[test]
    fn samples_follow_the_recording_rate() {
        assert_eq!(samples_in(Duration::from_secs(2), 8000), 16_000);
        assert_eq!(samples_in(Duration::from_micros(125), 8000), 1);
        assert_eq!(samples_in(Duration::ZERO, 8000), 0);
        assert_eq!(samples_in(Duration::from_secs(2), 16_000), 32_000);
    }
}

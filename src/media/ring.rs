//! The recording timeline's audio, held in a fixed ring of PCM samples.
//!
//! Positions are absolute sample numbers on the timeline; the ring keeps a
//! window of them and is zeroed behind play-out, so a stretch nothing was
//! written to plays out as silence without bookkeeping.

use std::ops::Range;

/// Ring length in milliseconds of audio (rounded up to a power of two of
/// samples): well above any jitter delay (at most 1 s).
const RING_MS: u64 = 2048;

/// What an untouched ring plays out, a block at a time.
static SILENCE: [i16; 1024] = [0; 1024];

/// A power-of-two ring of samples addressed by timeline position. Its
/// memory is taken on the first write: a call that never sends audio (one
/// hung up during the greeting, a probe) costs neither the allocation nor
/// the zeroing.
pub(super) struct Ring {
    /// Empty until the first write; `mask + 1` samples from then on.
    samples: Box<[i16]>,
    mask: u64,
}

impl Ring {
    /// A silent ring holding about two seconds at `rate` Hz: 2^14 samples
    /// (32 KiB) at 8 kHz, 2^15 at 16 kHz, 2^17 at 48 kHz.
    pub(super) fn new(rate: u32) -> Ring {
        let len = (u64::from(rate) * RING_MS / 1000).next_power_of_two();
        Ring {
            samples: Box::default(),
            mask: len - 1,
        }
    }

    /// How many samples the ring holds.
    pub(super) fn len(&self) -> u64 {
        self.mask + 1
    }

    /// Whether the ring's memory has been taken (by a write).
    #[cfg(test)]
    pub(super) fn allocated(&self) -> bool {
        !self.samples.is_empty()
    }

    /// Copies `pcm` to the timeline from `position`, keeping only what falls
    /// inside `window` (the positions not yet played out and not beyond
    /// the ring's room), so a late or oversized write cannot overwrite
    /// audio that is still to be played.
    pub(super) fn write(&mut self, position: u64, pcm: &[i16], window: Range<u64>) {
        let start = position.max(window.start);
        let end = (position + pcm.len() as u64).min(window.end);
        if start >= end {
            return;
        }
        let skip = usize::try_from(start - position).unwrap_or(usize::MAX);
        let Some(mut pcm) = pcm.get(skip..skip + (end - start) as usize) else {
            return;
        };
        if self.samples.is_empty() {
            self.samples = vec![0; self.len() as usize].into_boxed_slice();
        }
        let mut at = start;
        while !pcm.is_empty() {
            let index = (at & self.mask) as usize;
            let run = pcm.len().min(self.samples.len() - index);
            let (head, rest) = pcm.split_at(run);
            if let Some(slot) = self.samples.get_mut(index..index + run) {
                slot.copy_from_slice(head);
            }
            pcm = rest;
            at += run as u64;
        }
    }

    /// Hands the samples from `from` to `to` to the sink, zeroing them
    /// behind it for the next lap.
    pub(super) fn drain(&mut self, from: u64, to: u64, sink: &mut impl FnMut(&[i16])) {
        if self.samples.is_empty() {
            // Nothing was ever written: the stretch is silence.
            let mut left = to.saturating_sub(from);
            while left > 0 {
                let run = left.min(SILENCE.len() as u64);
                sink(&SILENCE[..run as usize]);
                left -= run;
            }
            return;
        }
        let mut at = from;
        while at < to {
            let index = (at & self.mask) as usize;
            let run = usize::try_from(to - at)
                .unwrap_or(usize::MAX)
                .min(self.samples.len() - index);
            if let Some(audio) = self.samples.get_mut(index..index + run) {
                sink(audio);
                audio.fill(0);
            }
            at += run as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_rate() {
        assert_eq!(Ring::new(8000).len(), 1 << 14);
        assert_eq!(Ring::new(16_000).len(), 1 << 15);
        assert_eq!(Ring::new(48_000).len(), 1 << 17);
    }

    #[test]
    fn writes_wrap_and_are_clipped_to_the_window() {
        let mut ring = Ring::new(8000);
        let len = ring.len();
        let start = 10 * len - 2;
        ring.write(start, &[1, 2, 3, 4], start..start + len);
        // Outside the window: nothing before its start or after its end.
        ring.write(start - 2, &[9, 9], start..start + len);
        ring.write(start + 3, &[5, 6], start..start + 4);
        let mut out = Vec::new();
        ring.drain(start - 1, start + 5, &mut |pcm| out.extend_from_slice(pcm));
        assert_eq!(out, vec![0, 1, 2, 3, 5, 0]);
        out.clear();
        ring.drain(start, start + 4, &mut |pcm| out.extend_from_slice(pcm));
        assert_eq!(out, vec![0; 4], "drained audio is zeroed");
    }

    #[test]
    fn an_untouched_ring_plays_silence_without_taking_memory() {
        let mut ring = Ring::new(8000);
        let len = ring.len();
        let mut out = Vec::new();
        ring.drain(100, 100 + 2500, &mut |pcm| out.extend_from_slice(pcm));
        assert_eq!(out, vec![0; 2500]);
        // A write wholly outside the window takes nothing either.
        ring.write(0, &[7; 160], 500..500 + len);
        assert!(!ring.allocated());
        ring.write(500, &[7; 160], 500..500 + len);
        assert!(ring.allocated());
        out.clear();
        ring.drain(490, 670, &mut |pcm| out.extend_from_slice(pcm));
        assert_eq!(out[..10], [0; 10]);
        assert_eq!(out[10..170], [7; 160]);
        assert_eq!(out[170..], [0; 10]);
    }
}

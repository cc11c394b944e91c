//! Energy-based silence detection on 20 ms frames: when to stop recording
//! a caller who has stopped talking, how much dead air to trim from the end
//! of a message, and whether a message holds anything at all.
//!
//! A frame is loud when its RMS level reaches the threshold. Two rules keep
//! the decision from flapping, as in any voice activity detector:
//! - onset: speech starts only after [`ONSET_FRAMES`] loud frames in a row
//!   (40 ms), so a click or a line pop does not restart the silence timer
//!   or save an otherwise empty message;
//! - hangover: speech is held for [`HANGOVER`] (300 ms) after the last loud
//!   frame, so the soft ends of words, which fall below the threshold, are
//!   kept when trailing silence is trimmed.
//!
//! The default threshold, [`DEFAULT_THRESHOLD_DBFS`] = -50 dBFS, sits
//! between the two things it separates. Telephone speech frames are at
//! -45 to -12 dBFS (the test recording: 80 % of its speech frames above
//! -44 dBFS), while an idle G.711 channel or a quiet room is at -60 dBFS or
//! below. It matches Asterisk's default `silencethreshold` of 128 (mean
//! absolute amplitude, about -48 dBFS). A noisy line may never fall below
//! it; the recording then ends at the maximum length instead, which loses
//! nothing. Profiles can move it.

use std::time::Duration;

/// The default loudness threshold in dBFS (RMS relative to full scale
/// 32768, so a full-scale sine is -3 dBFS). See the module documentation.
pub const DEFAULT_THRESHOLD_DBFS: f32 = -50.0;

/// Loud frames in a row that make speech.
pub const ONSET_FRAMES: u32 = 2;

/// How long speech is held after its last loud frame.
pub const HANGOVER: Duration = Duration::from_millis(300);

/// The RMS level of `frame` in dBFS; an empty or all-zero frame is
/// negative infinity.
pub fn level_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return f32::NEG_INFINITY;
    }
    let energy: f64 = frame.iter().map(|&s| f64::from(s).powi(2)).sum();
    let rms = (energy / frame.len() as f64).sqrt();
    (20.0 * (rms / 32768.0).log10()) as f32
}

/// The sum of the squares of `frame`'s samples, exactly: at most 2^30 per
/// sample, so any frame shorter than 2^33 samples fits.
fn energy(frame: &[i16]) -> u64 {
    frame
        .iter()
        .map(|&s| {
            let s = i64::from(s);
            (s * s) as u64
        })
        .sum()
}

/// What the detector concluded after one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SilenceState {
    /// How long it has been since speech was last heard (since the start,
    /// if it never was). The recording ends when this reaches the profile's
    /// maximum silence.
    pub silent_for: Duration,
    /// Whether this frame counts as speech: loud, or within the hangover.
    pub speech: bool,
    /// Whether speech has been heard at all so far.
    pub heard_speech: bool,
}

/// Follows a stream of frames and tracks how long it has been silent.
///
/// Sans-IO: time is counted in samples pushed, never read from a clock, so
/// a jitter buffer's concealed frames count exactly like received ones.
#[derive(Debug, Clone)]
pub struct SilenceTracker {
    rate: u32,
    /// The threshold as a mean square (energy per sample): a frame is loud
    /// when its mean square reaches it, which is its RMS level reaching
    /// the threshold in dBFS without a logarithm per frame.
    threshold_mean_square: f64,
    loud_run: u32,
    silent_samples: u64,
    hangover_left: u64,
    heard_speech: bool,
}

impl SilenceTracker {
    /// A tracker for PCM at `rate` Hz, with frames at or above
    /// `threshold_dbfs` counted as loud.
    pub fn new(rate: u32, threshold_dbfs: f32) -> Self {
        let threshold_rms = 32768.0 * 10f64.powf(f64::from(threshold_dbfs) / 20.0);
        SilenceTracker {
            rate: rate.max(1),
            threshold_mean_square: threshold_rms * threshold_rms,
            loud_run: 0,
            silent_samples: 0,
            hangover_left: 0,
            heard_speech: false,
        }
    }

    /// Takes the next frame (20 ms is the intended size; any length works)
    /// and says where the silence stands.
    pub fn push(&mut self, frame: &[i16]) -> SilenceState {
        let len = frame.len() as u64;
        let loud = len > 0 && energy(frame) as f64 >= self.threshold_mean_square * len as f64;
        if loud {
            self.loud_run += 1;
        } else {
            self.loud_run = 0;
        }
        let speech = if self.loud_run >= ONSET_FRAMES {
            self.silent_samples = 0;
            self.hangover_left = duration_to_samples(HANGOVER, self.rate);
            self.heard_speech = true;
            true
        } else {
            self.silent_samples += len;
            let held = self.hangover_left > 0;
            self.hangover_left = self.hangover_left.saturating_sub(len);
            held
        };
        SilenceState {
            silent_for: samples_to_duration(self.silent_samples, self.rate),
            speech,
            heard_speech: self.heard_speech,
        }
    }
}

/// How many samples of `pcm` (at `rate` Hz) after the last speech, less
/// the hangover, are silence: what to trim from the end of a message. All
/// of it when there is no speech.
pub fn trailing_silence(pcm: &[i16], rate: u32, threshold_dbfs: f32) -> usize {
    let mut tracker = SilenceTracker::new(rate, threshold_dbfs);
    let mut speech_end = None;
    let mut position = 0;
    for frame in pcm.chunks(frame_len(rate)) {
        position += frame.len();
        if tracker.push(frame).silent_for.is_zero() {
            speech_end = Some(position);
        }
    }
    match speech_end {
        Some(end) => {
            let hangover = duration_to_samples(HANGOVER, rate) as usize;
            pcm.len().saturating_sub(end.saturating_add(hangover))
        }
        None => pcm.len(),
    }
}

/// Whether `pcm` (at `rate` Hz) holds no speech at all: the test for
/// discarding a message that is silence from start to end.
pub fn is_all_silence(pcm: &[i16], rate: u32, threshold_dbfs: f32) -> bool {
    let mut tracker = SilenceTracker::new(rate, threshold_dbfs);
    !pcm.chunks(frame_len(rate))
        .any(|frame| tracker.push(frame).heard_speech)
}

/// Samples in a 20 ms frame at `rate`.
fn frame_len(rate: u32) -> usize {
    (rate as usize / 50).max(1)
}

fn duration_to_samples(duration: Duration, rate: u32) -> u64 {
    (duration.as_micros() * u128::from(rate) / 1_000_000) as u64
}

fn samples_to_duration(samples: u64, rate: u32) -> Duration {
    Duration::from_micros(samples.saturating_mul(1_000_000) / u64::from(rate.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_signals::{sine, speech_8k};
    use rand::{Rng, SeedableRng};

    const RATE: u32 = 8000;
    const FRAME: usize = 160;

    /// Uniform white noise at `dbfs` RMS.
    fn noise(dbfs: f64, len: usize) -> Vec<i16> {
        let peak = 32768.0 * 10f64.powf(dbfs / 20.0) * 3f64.sqrt();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..len)
            .map(|_| rng.random_range(-peak..peak) as i16)
            .collect()
    }

    #[test]
    fn levels_are_measured_in_dbfs() {
        assert!((level_dbfs(&sine(1000.0, RATE, FRAME, 1.0)) + 3.0).abs() < 0.1);
        assert!((level_dbfs(&noise(-60.0, 8000)) + 60.0).abs() < 0.5);
        assert_eq!(level_dbfs(&[0; FRAME]), f32::NEG_INFINITY);
        assert_eq!(level_dbfs(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn quiet_noise_counts_as_silence_and_a_tone_does_not() {
        let mut tracker = SilenceTracker::new(RATE, DEFAULT_THRESHOLD_DBFS);
        let mut state = tracker.push(&[0; FRAME]);
        for frame in noise(-60.0, 10 * RATE as usize).chunks(FRAME) {
            state = tracker.push(frame);
            assert!(!state.speech && !state.heard_speech);
        }
        assert_eq!(state.silent_for, Duration::from_millis(10_020));

        let tone = sine(440.0, RATE, FRAME, 0.1); // -23 dBFS
        assert!(
            !tracker.push(&tone).speech,
            "one loud frame is not yet speech"
        );
        let state = tracker.push(&tone);
        assert!(state.speech && state.heard_speech);
        assert_eq!(state.silent_for, Duration::ZERO);
    }

    #[test]
    fn a_click_does_not_restart_the_silence_timer() {
        let mut tracker = SilenceTracker::new(RATE, DEFAULT_THRESHOLD_DBFS);
        for _ in 0..50 {
            tracker.push(&[0; FRAME]);
        }
        let state = tracker.push(&[20_000; FRAME]);
        assert_eq!(state.silent_for, Duration::from_millis(1020));
        assert!(!state.heard_speech);
    }

    #[test]
    fn hangover_holds_speech_for_300_ms_after_the_last_loud_frame() {
        let mut tracker = SilenceTracker::new(RATE, DEFAULT_THRESHOLD_DBFS);
        let tone = sine(440.0, RATE, FRAME, 0.1);
        tracker.push(&tone);
        tracker.push(&tone);
        let held: Vec<bool> = (0..20).map(|_| tracker.push(&[0; FRAME]).speech).collect();
        assert_eq!(held.iter().filter(|&&speech| speech).count(), 15);
        assert!(held[..15].iter().all(|&speech| speech));
    }

    #[test]
    fn trailing_silence_is_what_follows_speech_and_its_hangover() {
        let mut message = sine(440.0, RATE, RATE as usize, 0.1);
        message.extend(noise(-60.0, 3 * RATE as usize));
        let trailing = trailing_silence(&message, RATE, DEFAULT_THRESHOLD_DBFS);
        assert_eq!(trailing, 3 * RATE as usize - 2400);

        let silent = noise(-60.0, 1000);
        assert_eq!(
            trailing_silence(&silent, RATE, DEFAULT_THRESHOLD_DBFS),
            1000
        );
        assert_eq!(trailing_silence(&[], RATE, DEFAULT_THRESHOLD_DBFS), 0);
    }

    #[test]
    fn recorded_speech_is_speech_and_its_pauses_are_not_trimmed() {
        let speech = speech_8k();
        assert!(!is_all_silence(&speech, RATE, DEFAULT_THRESHOLD_DBFS));
        let trailing = trailing_silence(&speech, RATE, DEFAULT_THRESHOLD_DBFS);
        // The recording ends shortly after its last word.
        assert!(trailing < RATE as usize, "{trailing} samples trimmed");
        let mut padded = speech.clone();
        padded.extend(noise(-60.0, 5 * RATE as usize));
        let trimmed = trailing_silence(&padded, RATE, DEFAULT_THRESHOLD_DBFS);
        assert_eq!(trimmed, trailing + 5 * RATE as usize);
    }

    #[test]
    fn all_silence_is_recognised_even_with_clicks() {
        let mut line = noise(-60.0, 5 * RATE as usize);
        line[8000..8160].fill(25_000);
        assert!(is_all_silence(&line, RATE, DEFAULT_THRESHOLD_DBFS));
        assert!(is_all_silence(&[], RATE, DEFAULT_THRESHOLD_DBFS));
        assert!(!is_all_silence(&noise(-60.0, 8000), RATE, -70.0));
    }
}

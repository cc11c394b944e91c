//! The beep between the greeting and the recording.
//!
//! A pure sine with raised-cosine (Hann) fades of 5 ms at each end: a tone
//! switched on or off abruptly has a step at its edges, which the ear hears
//! as a click and which spreads energy across the spectrum; a 5 ms fade
//! removes both without making the onset sound soft. Computed rather than
//! shipped as a file so it matches the call's audio rate exactly.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The beep's frequency: 1 kHz, the usual voicemail tone, well inside both
/// the narrowband (300–3400 Hz) and the wideband telephone band.
pub const BEEP_HZ: u32 = 1000;

/// The beep's length: a quarter of a second, short but unmistakable.
pub const BEEP_MS: u32 = 250;

/// The beep's level in dBFS, with a full-scale sine as 0 dBFS (AES17):
/// clearly audible after the greeting, far from clipping in any codec.
pub const BEEP_DBFS: f64 = -10.0;

/// Length of each fade, in milliseconds.
const FADE_MS: u32 = 5;

/// A sine of `hz` Hz lasting `ms` milliseconds at `rate` Hz, at
/// [`BEEP_DBFS`], faded in and out over 5 ms (less for tones shorter than
/// 10 ms: each fade then takes half the tone).
///
/// The result is `rate * ms / 1000` samples (rounded down). `hz` should be
/// below `rate / 2`: above it, the tone aliases to another frequency.
pub fn beep(rate: u32, hz: u32, ms: u32) -> Vec<i16> {
    let len = (u64::from(rate) * u64::from(ms) / 1000) as usize;
    let fade = ((u64::from(rate) * u64::from(FADE_MS) / 1000) as usize).min(len / 2);
    let amplitude = 32767.0 * 10f64.powf(BEEP_DBFS / 20.0);
    let step = 2.0 * PI * f64::from(hz) / f64::from(rate.max(1));
    (0..len)
        .map(|i| {
            let from_edge = i.min(len - 1 - i);
            let gain = if from_edge < fade {
                // Hann half-window: 0 at the edge, 1 at the end of the fade.
                0.5 - 0.5 * (PI * from_edge as f64 / fade as f64).cos()
            } else {
                1.0
            };
            (amplitude * gain * (step * i as f64).sin()).round() as i16
        })
        .collect()
}

/// [`beep`], computed once per (rate, frequency, length) and shared: every
/// deposit plays it, and a few thousand samples of sines per call were a
/// visible part of a short call's CPU. The profile fixes the frequency and
/// length, so the map holds one entry per audio rate in use.
pub fn shared_beep(rate: u32, hz: u32, ms: u32) -> Arc<[i16]> {
    /// Beeps by (rate, frequency, length).
    type Beeps = HashMap<(u32, u32, u32), Arc<[i16]>>;
    static BEEPS: OnceLock<Mutex<Beeps>> = OnceLock::new();
    let mut beeps = BEEPS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Arc::clone(
        beeps
            .entry((rate, hz, ms))
            .or_insert_with(|| beep(rate, hz, ms).into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Power of `hz` in `x` (Goertzel), normalized by length.
    fn goertzel(x: &[i16], rate: u32, hz: f64) -> f64 {
        let coeff = 2.0 * (2.0 * PI * hz / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
    }

    /// Sign changes between the non-zero samples.
    fn zero_crossings(x: &[i16]) -> usize {
        let signs: Vec<bool> = x.iter().filter(|&&v| v != 0).map(|&v| v > 0).collect();
        signs.windows(2).filter(|w| w[0] != w[1]).count()
    }

    #[test]
    fn length_matches_rate_and_duration() {
        assert_eq!(beep(8000, BEEP_HZ, BEEP_MS).len(), 2000);
        assert_eq!(beep(16_000, BEEP_HZ, BEEP_MS).len(), 4000);
        assert_eq!(beep(48_000, 440, 10).len(), 480);
        assert!(beep(8000, 1000, 0).is_empty());
        let shared = shared_beep(8000, BEEP_HZ, BEEP_MS);
        assert_eq!(*shared, *beep(8000, BEEP_HZ, BEEP_MS));
        assert!(Arc::ptr_eq(&shared, &shared_beep(8000, BEEP_HZ, BEEP_MS)));
        assert_eq!(beep(8000, 1000, 1).len(), 8);
    }

    #[test]
    fn the_frequency_is_the_one_asked_for() {
        for rate in [8000, 16_000, 48_000] {
            let tone = beep(rate, BEEP_HZ, BEEP_MS);
            // 1 kHz for 0.25 s crosses zero 500 times.
            let crossings = zero_crossings(&tone);
            assert!((498..=501).contains(&crossings), "{rate}: {crossings}");
            let on = goertzel(&tone, rate, 1000.0);
            for off in [700.0, 1300.0, 2000.0, 3000.0] {
                let ratio = 10.0 * (on / goertzel(&tone, rate, off)).log10();
                assert!(ratio > 40.0, "{rate} Hz: {off} Hz only {ratio:.1} dB down");
            }
        }
    }

    #[test]
    fn level_is_about_minus_10_dbfs() {
        let tone = beep(16_000, BEEP_HZ, BEEP_MS);
        let peak = tone.iter().map(|&x| i32::from(x).abs()).max().unwrap();
        let expected = 32767.0 * 10f64.powf(-0.5);
        assert!((f64::from(peak) - expected).abs() < 2.0, "peak {peak}");
    }

    #[test]
    fn edges_fade_without_clicks() {
        let rate = 8000;
        let tone = beep(rate, BEEP_HZ, BEEP_MS);
        let amplitude = 32767.0 * 10f64.powf(-0.5);
        // Starts and ends at silence.
        assert_eq!(tone[0], 0);
        assert!(i32::from(*tone.last().unwrap()).abs() < 50);
        // The first and last millisecond stay well below full level.
        for edge in [&tone[..8], &tone[tone.len() - 8..]] {
            let peak = edge.iter().map(|&x| i32::from(x).abs()).max().unwrap();
            assert!(f64::from(peak) < 0.15 * amplitude, "edge peak {peak}");
        }
        // No step anywhere larger than the sine's own steepest slope.
        let slope = amplitude * 2.0 * PI * 1000.0 / f64::from(rate);
        let worst = tone
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap();
        assert!(f64::from(worst) <= slope + 2.0, "step {worst}");
    }
}

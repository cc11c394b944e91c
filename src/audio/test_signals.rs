//! Signals and quality measures shared by the audio tests: generated tones,
//! the recorded speech in `testdata/`, and the figures (SNR, normalized
//! cross-correlation) that tell a working codec from a broken one.

use super::resample::resample;

/// A sine of `freq` Hz, `len` samples at `rate`, peak `amplitude` of full scale.
pub fn sine(freq: f64, rate: u32, len: usize, amplitude: f64) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            (amplitude * 32767.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// A linear sweep from `f0` to `f1` Hz over `len` samples at `rate`.
pub fn sweep(f0: f64, f1: f64, rate: u32, len: usize, amplitude: f64) -> Vec<i16> {
    let duration = len as f64 / f64::from(rate);
    (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            let phase =
                2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * duration));
            (amplitude * 32767.0 * phase.sin()) as i16
        })
        .collect()
}

/// The 14.5 s spoken message in `testdata/speech-8k.wav`.
pub fn speech_8k() -> Vec<i16> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/speech-8k.wav");
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().sample_rate, 8000);
    reader.samples::<i16>().map(Result::unwrap).collect()
}

/// The same speech upsampled to 16 kHz, as a wideband call would carry it.
pub fn speech_16k() -> Vec<i16> {
    resample(&speech_8k(), 8000, 16000).unwrap()
}

/// Signal-to-noise ratio of `test` against `reference`, in dB.
pub fn snr_db(reference: &[i16], test: &[i16]) -> f64 {
    let (signal, noise) = reference
        .iter()
        .zip(test)
        .fold((0.0, 0.0), |(s, n), (&r, &t)| {
            let (r, t) = (f64::from(r), f64::from(t));
            (s + r * r, n + (r - t) * (r - t))
        });
    10.0 * (signal / noise.max(1e-9)).log10()
}

/// Normalized cross-correlation of `reference[i]` with `test[i + lag]`.
pub fn ncc(reference: &[i16], test: &[i16], lag: isize) -> f64 {
    let (mut dot, mut energy_r, mut energy_t) = (0.0, 0.0, 0.0);
    for (i, &r) in reference.iter().enumerate() {
        let j = i as isize + lag;
        let Some(&t) = usize::try_from(j).ok().and_then(|j| test.get(j)) else {
            continue;
        };
        let (r, t) = (f64::from(r), f64::from(t));
        dot += r * t;
        energy_r += r * r;
        energy_t += t * t;
    }
    dot / (energy_r * energy_t).sqrt().max(1e-9)
}

/// The lag in `-max_lag..=max_lag` where `test` best matches `reference`,
/// and the NCC there: codecs delay their output, and this finds by how much.
pub fn ncc_at_best_lag(reference: &[i16], test: &[i16], max_lag: isize) -> (isize, f64) {
    (-max_lag..=max_lag)
        .map(|lag| (lag, ncc(reference, test, lag)))
        .fold((0, f64::MIN), |best, candidate| {
            if candidate.1 > best.1 {
                candidate
            } else {
                best
            }
        })
}

//! Mono sample-rate conversion for speech.
//!
//! Calls arrive at 8 kHz (G.711), 16 kHz (G.722, Opus wideband) or 48 kHz
//! (Opus fullband), greetings are uploaded as WAV files at any rate, and a
//! message is stored at one internal rate: every edge between them goes
//! through here.
//!
//! The conversion is band-limited (windowed-sinc) interpolation from the
//! `rubato` crate, so downsampling does not alias and upsampling does not
//! image. The filter is 128 taps with a Blackman-Harris window and linear
//! interpolation between 256 precomputed phases: about 100 dB of stop-band
//! attenuation, far beyond what 16-bit speech needs, at a few percent of one
//! core for a call. The filter's delay is trimmed, so the output is aligned
//! with the input and `ceil(input_len * to / from)` samples long.
//!
//! That delay is `SINC_LEN / 2` input samples less one output sample, a
//! fraction of a sample for most ratios (48 kHz to 8 kHz: 9.67 output
//! samples). A fractional delay cannot be trimmed, so the stream is primed
//! with the few zeros that make it whole; the alignment tests pin this down
//! for every rate pair we use.

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{
    Async, FixedAsync, Resampler as _, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

use super::AudioError;

/// Taps of the windowed-sinc filter.
const SINC_LEN: usize = 128;

/// Resamples a whole mono clip from `from` Hz to `to` Hz.
///
/// The result is `ceil(pcm.len() * to / from)` samples, time-aligned with the
/// input. Equal rates return a copy. Use [`Resampler`] instead when audio
/// arrives in pieces (20 ms RTP frames), which gives the same samples.
pub fn resample(pcm: &[i16], from: u32, to: u32) -> Result<Vec<i16>, AudioError> {
    if from == to {
        return Ok(pcm.to_vec());
    }
    let mut resampler = Resampler::new(from, to)?;
    let mut out = Vec::with_capacity(expected_len(pcm.len(), from, to));
    resampler.process(pcm, &mut out)?;
    resampler.flush(&mut out)?;
    Ok(out)
}

/// How many samples `len` input samples become: `ceil(len * to / from)`.
fn expected_len(len: usize, from: u32, to: u32) -> usize {
    let scaled = len as u128 * u128::from(to);
    scaled.div_ceil(u128::from(from.max(1))) as usize
}

/// A streaming mono resampler: feed pieces of any length with
/// [`process`](Resampler::process), then [`flush`](Resampler::flush) once at
/// the end of the stream.
///
/// It holds back at most one 20 ms chunk of input (plus the filter's delay),
/// so output lags input by up to 20 ms while streaming; `flush` releases the
/// rest. Concatenated outputs equal [`resample`] of the concatenated inputs.
pub struct Resampler {
    inner: Option<Async<f32>>,
    from: u32,
    to: u32,
    chunk: usize,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    delay_left: usize,
    consumed: usize,
    produced: usize,
}

impl Resampler {
    /// Builds a resampler from `from` Hz to `to` Hz; both must be between
    /// 1 kHz and 384 kHz. Equal rates pass samples through untouched.
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        for rate in [from, to] {
            if !(1_000..=384_000).contains(&rate) {
                return Err(AudioError::UnsupportedRate {
                    what: "resampler",
                    rate,
                });
            }
        }
        // 20 ms of input per chunk: the size of an RTP frame, so a call's
        // frames go through with no extra buffering.
        let chunk = (from as usize).div_ceil(50);
        let inner = if from == to {
            None
        } else {
            let parameters =
                SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2)
                    .oversampling_factor(256)
                    .interpolation(SincInterpolationType::Linear);
            let ratio = f64::from(to) / f64::from(from);
            let inner =
                Async::<f32>::new_sinc(ratio, 1.0, &parameters, chunk, 1, FixedAsync::Input)
                    .map_err(|err| AudioError::Resample {
                        from,
                        to,
                        reason: err.to_string(),
                    })?;
            Some(inner)
        };
        let (priming, delay_left, scratch_len) = match &inner {
            Some(inner) => {
                let (priming, delay) = priming_and_delay(from, to);
                (priming, delay, inner.output_frames_max())
            }
            None => (0, 0, 0),
        };
        let mut resampler = Resampler {
            inner,
            from,
            to,
            chunk,
            pending: Vec::with_capacity(chunk),
            scratch: vec![0.0; scratch_len],
            delay_left,
            consumed: 0,
            produced: 0,
        };
        for _ in 0..priming {
            resampler.push_sample(0.0, &mut Vec::new())?;
        }
        Ok(resampler)
    }

    /// Resamples the next piece of the stream, appending what is ready to
    /// `out`.
    pub fn process(&mut self, pcm: &[i16], out: &mut Vec<i16>) -> Result<(), AudioError> {
        self.consumed += pcm.len();
        if self.inner.is_none() {
            out.extend_from_slice(pcm);
            self.produced += pcm.len();
            return Ok(());
        }
        for &sample in pcm {
            self.push_sample(f32::from(sample) / 32768.0, out)?;
        }
        Ok(())
    }

    /// Queues one input sample, running the filter when a chunk is full.
    fn push_sample(&mut self, sample: f32, out: &mut Vec<i16>) -> Result<(), AudioError> {
        self.pending.push(sample);
        if self.pending.len() == self.chunk {
            self.run_chunk(out)?;
        }
        Ok(())
    }

    /// Ends the stream: pushes the held-back input through the filter and
    /// appends the remaining output, so the total output is exactly
    /// `ceil(total_input * to / from)` samples.
    pub fn flush(&mut self, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let target = expected_len(self.consumed, self.from, self.to);
        if self.inner.is_none() {
            return Ok(());
        }
        while self.produced < target {
            self.pending.resize(self.chunk, 0.0);
            self.run_chunk(out)?;
        }
        let excess = self.produced - target;
        out.truncate(out.len().saturating_sub(excess));
        self.produced = target;
        Ok(())
    }

    /// Runs one full chunk of pending input through the filter.
    fn run_chunk(&mut self, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let (from, to) = (self.from, self.to);
        let failed = |reason: String| AudioError::Resample { from, to, reason };
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let input = SequentialSlice::new(&self.pending[..], 1, self.chunk)
            .map_err(|err| failed(err.to_string()))?;
        let frames_out = self.scratch.len();
        let mut output = SequentialSlice::new_mut(&mut self.scratch[..], 1, frames_out)
            .map_err(|err| failed(err.to_string()))?;
        let (_, written) = inner
            .process_into_buffer(&input, &mut output, None)
            .map_err(|err| failed(err.to_string()))?;
        self.pending.clear();
        let skip = self.delay_left.min(written);
        self.delay_left -= skip;
        let fresh = self.scratch.get(skip..written).unwrap_or_default();
        out.extend(fresh.iter().map(|&x| to_i16(x)));
        self.produced += fresh.len();
        Ok(())
    }
}

/// How many zeros to feed first so that the filter's delay is a whole number
/// of output samples, and that delay: `(SINC_LEN / 2 + priming) * to / from`
/// less one output sample.
fn priming_and_delay(from: u32, to: u32) -> (usize, usize) {
    let (from, to) = (from as usize, to as usize);
    let half = SINC_LEN / 2;
    let priming = (0..from)
        .find(|p| ((half + p) * to).is_multiple_of(from))
        .unwrap_or(0);
    (priming, ((half + priming) * to / from).saturating_sub(1))
}

/// Converts a float sample back to 16-bit, rounding and saturating: the
/// filter can overshoot full scale slightly on clipped input.
fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_signals::{ncc_at_best_lag, sine, snr_db, speech_8k};

    #[test]
    fn lengths_are_exact_for_every_pair() {
        for (from, to) in [(8000, 16000), (16000, 8000), (8000, 48000), (48000, 16000)] {
            for len in [0usize, 1, 159, 160, 8000, 12345] {
                let out = resample(&vec![100; len], from, to).unwrap();
                assert_eq!(out.len(), expected_len(len, from, to), "{from}->{to} {len}");
            }
        }
        assert_eq!(resample(&[1, 2, 3], 44100, 44100).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn a_tone_survives_up_and_down_aligned() {
        let tone = sine(1000.0, 8000, 8000, 0.5);
        let up = resample(&tone, 8000, 16000).unwrap();
        let reference = sine(1000.0, 16000, 16000, 0.5);
        // Skip the edges, where the filter sees zeros outside the clip.
        let snr = snr_db(&reference[400..15600], &up[400..15600]);
        assert!(snr > 40.0, "8k->16k SNR {snr:.1} dB");
        let back = resample(&up, 16000, 8000).unwrap();
        let snr = snr_db(&tone[200..7800], &back[200..7800]);
        assert!(snr > 40.0, "16k->8k SNR {snr:.1} dB");
    }

    #[test]
    fn downsampling_removes_what_the_new_rate_cannot_carry() {
        // 6 kHz cannot exist at 8 kHz; without a filter it would fold to 2 kHz.
        let high = sine(6000.0, 16000, 16000, 0.5);
        let down = resample(&high, 16000, 8000).unwrap();
        let rms = (down[400..7600]
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            / 7200.0)
            .sqrt();
        assert!(rms < 50.0, "aliased energy, rms {rms:.0}");
    }

    #[test]
    fn speech_round_trip_through_48k_matches() {
        let speech = speech_8k();
        let up = resample(&speech, 8000, 48000).unwrap();
        let back = resample(&up, 48000, 8000).unwrap();
        assert_eq!(back.len(), speech.len());
        let (lag, ncc) = ncc_at_best_lag(&speech, &back, 4);
        assert_eq!(lag, 0, "output must be aligned with the input");
        // What is lost is the band above the filter's cut-off, near 4 kHz.
        assert!(ncc > 0.99, "NCC {ncc}");
    }

    /// Delay of `out` against `sin(2π·200·t)`, in output samples, from the
    /// phase of the 200 Hz component: exact to a small fraction of a sample.
    fn residual_delay(out: &[i16], rate: u32) -> f64 {
        let omega = 2.0 * std::f64::consts::PI * 200.0;
        let n = out.len();
        let (mut s, mut c) = (0.0, 0.0);
        for (i, &x) in out.iter().enumerate().take(n * 9 / 10).skip(n / 10) {
            let w = omega * i as f64 / f64::from(rate);
            s += f64::from(x) * w.sin();
            c += f64::from(x) * w.cos();
        }
        -c.atan2(s) / omega * f64::from(rate)
    }

    #[test]
    fn the_filter_delay_is_trimmed_for_every_rate_pair() {
        let pairs = [
            (8000, 16000),
            (16000, 8000),
            (8000, 48000),
            (48000, 8000),
            (16000, 48000),
            (48000, 16000),
            (44100, 16000),
            (22050, 8000),
        ];
        for (from, to) in pairs {
            let out = resample(&sine(200.0, from, from as usize, 0.5), from, to).unwrap();
            let delay = residual_delay(&out, to);
            assert!(delay.abs() < 0.05, "{from}->{to}: {delay:.3} samples late");
        }
    }

    #[test]
    fn streaming_in_rtp_frames_equals_one_shot() {
        let speech = speech_8k();
        let whole = resample(&speech[..8000], 8000, 16000).unwrap();
        let mut resampler = Resampler::new(8000, 16000).unwrap();
        let mut streamed = Vec::new();
        for frame in speech[..8000].chunks(160) {
            resampler.process(frame, &mut streamed).unwrap();
        }
        resampler.flush(&mut streamed).unwrap();
        assert_eq!(streamed, whole);
    }

    #[test]
    fn odd_rates_are_accepted_and_silly_ones_refused() {
        let out = resample(&sine(440.0, 44100, 4410, 0.3), 44100, 16000).unwrap();
        assert_eq!(out.len(), 1600);
        assert!(matches!(
            Resampler::new(0, 8000),
            Err(AudioError::UnsupportedRate { rate: 0, .. })
        ));
    }
}

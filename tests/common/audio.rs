//! Audio checks: read WAV files, decode G.711, and compare a recording with
//! what was sent by content (aligned normalized cross-correlation) rather
//! than by size alone.
//!
//! hound reads PCM WAV but not the G.711 WAV files SIPp streams (format tags
//! 6 and 7), so those are parsed here: a RIFF walk and the G.711 expansion
//! (ITU-T G.711 tables computed by formula) are a few lines each.

use std::path::Path;

/// Reads a mono WAV file as 16-bit samples: PCM 16-bit via hound, μ-law and
/// A-law expanded to 16-bit. Returns (sample rate, samples).
pub fn read_wav_mono_i16(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read WAV {}: {e}", path.display()));
    let format =
        riff_chunk(&bytes, b"fmt ").unwrap_or_else(|| panic!("{}: no fmt chunk", path.display()));
    assert!(format.len() >= 16, "{}: short fmt chunk", path.display());
    let tag = u16::from_le_bytes([format[0], format[1]]);
    let channels = u16::from_le_bytes([format[2], format[3]]);
    let rate = u32::from_le_bytes([format[4], format[5], format[6], format[7]]);
    assert_eq!(channels, 1, "{}: not mono", path.display());
    let expand: fn(u8) -> i16 = match tag {
        6 => alaw_to_linear,
        7 => ulaw_to_linear,
        _ => {
            let mut reader = hound::WavReader::new(bytes.as_slice())
                .unwrap_or_else(|e| panic!("{}: not a readable WAV: {e}", path.display()));
            let spec = reader.spec();
            assert_eq!(spec.bits_per_sample, 16, "{}: not 16-bit", path.display());
            let samples = reader
                .samples::<i16>()
                .collect::<Result<Vec<_>, _>>()
                .unwrap_or_else(|e| panic!("{}: bad samples: {e}", path.display()));
            return (spec.sample_rate, samples);
        }
    };
    let data =
        riff_chunk(&bytes, b"data").unwrap_or_else(|| panic!("{}: no data chunk", path.display()));
    (rate, data.iter().map(|&b| expand(b)).collect())
}

/// The bytes of a WAV file's data chunk as stored: for the G.711 files in
/// testdata/ (format tags 6 and 7) exactly the RTP payload of PCMA or PCMU.
pub fn read_wav_data(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read WAV {}: {e}", path.display()));
    riff_chunk(&bytes, b"data")
        .unwrap_or_else(|| panic!("{}: no data chunk", path.display()))
        .to_vec()
}

fn riff_chunk<'a>(bytes: &'a [u8], id: &[u8; 4]) -> Option<&'a [u8]> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let size = u32::from_le_bytes(bytes.get(pos + 4..pos + 8)?.try_into().ok()?) as usize;
        let end = (pos + 8 + size).min(bytes.len());
        if bytes.get(pos..pos + 4)? == id {
            return bytes.get(pos + 8..end);
        }
        pos += 8 + size + (size & 1);
    }
    None
}

/// G.711 μ-law to 16-bit linear (ITU-T G.711, as every RTP stack decodes
/// payload type 0).
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// G.711 A-law to 16-bit linear (payload type 8).
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Finds the lag that best aligns `recorded` with `reference` and returns
/// `(lag, ncc)`: `recorded[n]` corresponds to `reference[n - lag]`, so a
/// positive lag means the recording starts `lag` samples late (extra audio
/// in front), and `ncc` is the normalized cross-correlation over the
/// overlapping part at that lag (1.0 = identical up to gain).
///
/// Searches lags in `-max_lag..=max_lag` coarse-to-fine (every 4th lag on a
/// 4:1 decimated signal, then ±8 samples at full rate) so a 15 s recording
/// with ±400 ms of search stays fast in an unoptimized test build.
pub fn aligned_correlation(reference: &[i16], recorded: &[i16], max_lag: usize) -> (i64, f64) {
    let max_lag = max_lag as i64;
    let coarse_ref = decimate(reference);
    let coarse_rec = decimate(recorded);
    let coarse_best = (-max_lag / 4..=max_lag / 4)
        .map(|lag| (lag, ncc_at(&coarse_ref, &coarse_rec, lag)))
        .fold(
            (0, f64::MIN),
            |best, cur| if cur.1 > best.1 { cur } else { best },
        )
        .0;
    let centre = coarse_best * 4;
    let from = (centre - 8).max(-max_lag);
    let to = (centre + 8).min(max_lag);
    (from..=to)
        .map(|lag| (lag, ncc_at(reference, recorded, lag)))
        .fold(
            (0, f64::MIN),
            |best, cur| if cur.1 > best.1 { cur } else { best },
        )
}

fn decimate(samples: &[i16]) -> Vec<i16> {
    samples
        .chunks(4)
        .map(|c| (c.iter().map(|&s| s as i32).sum::<i32>() / c.len() as i32) as i16)
        .collect()
}

/// NCC of `recorded[n]` against `reference[n - lag]` over their overlap.
pub fn ncc_at(reference: &[i16], recorded: &[i16], lag: i64) -> f64 {
    let (mut cross, mut energy_ref, mut energy_rec) = (0f64, 0f64, 0f64);
    let start = lag.max(0) as usize;
    for (n, &rec) in recorded.iter().enumerate().skip(start) {
        let Some(&r) = reference.get((n as i64 - lag) as usize) else {
            break;
        };
        let (a, b) = (r as f64, rec as f64);
        cross += a * b;
        energy_ref += a * a;
        energy_rec += b * b;
    }
    if energy_ref == 0.0 || energy_rec == 0.0 {
        return 0.0;
    }
    cross / (energy_ref * energy_rec).sqrt()
}

/// The duration of `samples` at `rate` in milliseconds.
pub fn duration_ms(samples: usize, rate: u32) -> u64 {
    samples as u64 * 1000 / rate as u64
}

/// Asserts that `actual_ms` is within `tolerance` (a fraction, 0.03 = 3%)
/// of `expected_ms`.
pub fn assert_duration_close(what: &str, actual_ms: u64, expected_ms: u64, tolerance: f64) {
    let error = (actual_ms as f64 - expected_ms as f64).abs() / expected_ms as f64;
    assert!(
        error <= tolerance,
        "{what}: duration {actual_ms} ms is {:.1}% off the expected {expected_ms} ms (allowed {:.1}%)",
        error * 100.0,
        tolerance * 100.0
    );
}

/// Finds where `reference` is inside the longer `heard`: the offset
/// (`from..=to`) at which `heard[offset..]` best matches it, and the
/// normalized cross-correlation there. Searched on an 8:1 decimated
/// signal first, then at full rate around the best coarse offset, so
/// seconds of search stay quick in a test build.
pub fn locate(reference: &[i16], heard: &[i16], from: usize, to: usize) -> (usize, f64) {
    let decimated = |x: &[i16]| -> Vec<i16> {
        x.chunks(8)
            .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / c.len() as i32) as i16)
            .collect()
    };
    let (coarse_ref, coarse_heard) = (decimated(reference), decimated(heard));
    let best = |candidates: &mut dyn Iterator<Item = (usize, f64)>| {
        candidates.fold(
            (0, f64::MIN),
            |best, cur| if cur.1 > best.1 { cur } else { best },
        )
    };
    let (coarse, _) =
        best(&mut (from / 8..=to / 8).map(|o| (o, ncc_at(&coarse_ref, &coarse_heard, o as i64))));
    let centre = coarse * 8;
    best(
        &mut (centre.saturating_sub(16).max(from)..=(centre + 16).min(to))
            .map(|o| (o, ncc_at(reference, heard, o as i64))),
    )
}

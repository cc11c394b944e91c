//! The jitter buffer with G.722 and Opus: placement by scaled timestamps,
//! in-order decoding, Opus concealment, and codec changes mid-call.

use super::super::codec::OpusRate;
use super::super::decoder::Decoder;
use super::super::encoder::Encoder;
use super::*;

const OPUS: Codec = Codec::Opus(OpusRate::Wideband);

fn tone(rate: u32, hz: f64, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (6000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

fn energy(pcm: &[i16]) -> f64 {
    pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64
}

/// Normalized cross-correlation at the best lag within ±`max_lag`.
fn ncc_at_best_lag(a: &[i16], b: &[i16], max_lag: usize) -> f64 {
    let mut best = f64::MIN;
    for lag in 0..=2 * max_lag {
        let (x, y) = if lag >= max_lag {
            (&a[lag - max_lag..], b)
        } else {
            (a, &b[max_lag - lag..])
        };
        let n = x.len().min(y.len());
        let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
        for (p, q) in x[..n].iter().zip(&y[..n]) {
            let (p, q) = (f64::from(*p), f64::from(*q));
            xy += p * q;
            xx += p * p;
            yy += q * q;
        }
        best = best.max(xy / (xx * yy).sqrt().max(1.0));
    }
    best
}

/// 20 ms payloads of `pcm` (at the codec's audio rate) in `codec`.
fn packets(codec: Codec, pcm: &[i16]) -> Vec<Vec<u8>> {
    let mut encoder = Encoder::new(codec).unwrap();
    pcm.chunks_exact(codec.frame_samples())
        .map(|frame| {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload).unwrap();
            payload
        })
        .collect()
}

/// What one decoder makes of `payloads` in order: the ideal output.
fn decoded(codec: Codec, payloads: &[Vec<u8>]) -> Vec<i16> {
    let mut decoder = Decoder::new(codec).unwrap();
    let mut pcm = Vec::new();
    for payload in payloads {
        decoder.decode(payload, &mut pcm).unwrap();
    }
    pcm
}

/// Sends `(index, payload)` pairs as packets 20 ms apart, in the order
/// given, polling as a call would; returns everything played out.
fn play(
    buffer: &mut JitterBuffer,
    codec: Codec,
    packets: &[(usize, &[u8])],
    first_seq: u16,
    first_ts: u32,
    t0: Instant,
) -> Vec<i16> {
    let mut out = Vec::new();
    for (arrival, &(index, payload)) in packets.iter().enumerate() {
        let now = t0 + Duration::from_millis(20 * arrival as u64);
        let seq = first_seq.wrapping_add(index as u16);
        let ts = first_ts.wrapping_add(index as u32 * codec.frame_timestamp_step());
        buffer.insert(0xC0DEC, seq, ts, codec, payload, now);
        buffer.poll(now, &mut |pcm| out.extend_from_slice(pcm));
    }
    out
}

fn all(payloads: &[Vec<u8>]) -> Vec<(usize, &[u8])> {
    payloads.iter().map(Vec::as_slice).enumerate().collect()
}

#[test]
fn two_seconds_of_g722_are_two_seconds_at_16_khz() {
    let payloads = packets(Codec::G722, &tone(16_000, 440.0, 32_000));
    assert_eq!(payloads.len(), 100);
    let mut buffer = JitterBuffer::new(Duration::from_millis(60), 16_000);
    let t0 = Instant::now();
    let mut out = play(&mut buffer, Codec::G722, &all(&payloads), 7, 1234, t0);
    buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    assert_eq!(out.len(), 32_000, "RTP clock 8000, two samples per unit");
    assert_eq!(out, decoded(Codec::G722, &payloads));
}

#[test]
fn two_seconds_of_opus_are_two_seconds_at_16_khz() {
    let payloads = packets(OPUS, &tone(16_000, 440.0, 32_000));
    let mut buffer = JitterBuffer::new(Duration::from_millis(60), 16_000);
    let t0 = Instant::now();
    // Timestamps near the wrap: 48 kHz clock, 960 per packet.
    let mut out = play(
        &mut buffer,
        OPUS,
        &all(&payloads),
        65_500,
        u32::MAX - 5000,
        t0,
    );
    buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    assert_eq!(
        out.len(),
        32_000,
        "48 kHz clock, one sample per three units"
    );
    assert_eq!(out, decoded(OPUS, &payloads));
    assert_eq!(buffer.stats().lost, 0);
}

#[test]
fn reordered_opus_packets_are_decoded_in_order() {
    let payloads = packets(OPUS, &tone(16_000, 300.0, 16_000));
    let mut order = all(&payloads);
    order.swap(10, 11);
    order.swap(30, 32);
    let mut buffer = JitterBuffer::new(Duration::from_millis(60), 16_000);
    let mut out = play(&mut buffer, OPUS, &order, 1, 0, Instant::now());
    buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    assert_eq!(out, decoded(OPUS, &payloads));
    assert_eq!(buffer.stats().concealed, 0);
}

#[test]
fn a_lost_opus_packet_is_concealed_not_silent() {
    let payloads = packets(OPUS, &tone(16_000, 440.0, 16_000));
    let mut sent = all(&payloads);
    sent.remove(25);
    let mut buffer = JitterBuffer::new(Duration::from_millis(60), 16_000);
    let mut out = play(&mut buffer, OPUS, &sent, 1, 0, Instant::now());
    buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    assert_eq!(out.len(), 16_000, "the loss keeps its length");
    let hole = &out[25 * 320..26 * 320];
    let before = &out[24 * 320..25 * 320];
    assert!(
        energy(hole) > 0.1 * energy(before),
        "concealment is near silence: {} vs {}",
        energy(hole),
        energy(before)
    );
    let stats = buffer.stats();
    assert_eq!((stats.lost, stats.concealed), (1, 1));
}

#[test]
fn a_lost_g722_packet_is_silence() {
    let payloads = packets(Codec::G722, &tone(16_000, 440.0, 16_000));
    let mut sent = all(&payloads);
    sent.remove(25);
    let mut buffer = JitterBuffer::new(Duration::from_millis(60), 16_000);
    let mut out = play(&mut buffer, Codec::G722, &sent, 1, 0, Instant::now());
    buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    assert_eq!(out.len(), 16_000);
    assert!(out[25 * 320..26 * 320].iter().all(|&s| s == 0));
}

#[test]
fn an_invalid_opus_payload_is_counted_not_placed() {
    let mut buffer = JitterBuffer::new(Duration::from_millis(60), 16_000);
    let now = Instant::now();
    assert_eq!(buffer.insert(1, 1, 0, OPUS, &[], now), Insert::Undecodable);
    assert_eq!(buffer.stats().undecodable, 1);
    let mut out = Vec::new();
    buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    assert!(out.is_empty());
}

/// A re-INVITE from G.722 to G.711 in a call recorded at 16 kHz: the
/// G.711 audio is resampled, the timeline goes on without a gap.
#[test]
fn a_narrowband_codec_after_a_reinvite_is_upsampled_to_the_recording_rate() {
    let wide = packets(Codec::G722, &tone(16_000, 440.0, 16_000));
    let narrow = packets(Codec::Pcmu, &tone(8000, 440.0, 8000));
    let mut buffer = JitterBuffer::new(Duration::from_millis(60), 16_000);
    let t0 = Instant::now();
    let mut out = play(&mut buffer, Codec::G722, &all(&wide), 1, 0, t0);
    // Same SSRC, numbering and 8 kHz clock go on.
    let t1 = t0 + Duration::from_secs(1);
    out.extend(play(&mut buffer, Codec::Pcmu, &all(&narrow), 51, 8000, t1));
    buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    assert_eq!(out.len(), 32_000);
    let second = &out[16_000 + 640..];
    let reference = tone(16_000, 440.0, 32_000);
    let ncc = ncc_at_best_lag(second, &reference[16_000 + 640..], 120);
    assert!(ncc > 0.95, "upsampled G.711 NCC {ncc:.3}");
}

/// The other way: an 8 kHz recording, then Opus (48 kHz clock, new SSRC)
/// decoded at 16 kHz and downsampled.
#[test]
fn a_wideband_codec_after_a_reinvite_is_downsampled_to_the_recording_rate() {
    let narrow = packets(Codec::Pcmu, &tone(8000, 440.0, 8000));
    let wide = packets(OPUS, &tone(16_000, 440.0, 16_000));
    let mut buffer = JitterBuffer::new(Duration::from_millis(60), 8000);
    let t0 = Instant::now();
    let mut out = play(&mut buffer, Codec::Pcmu, &all(&narrow), 1, 0, t0);
    let t1 = t0 + Duration::from_secs(1);
    let mut second = Vec::new();
    for (i, payload) in wide.iter().enumerate() {
        let now = t1 + Duration::from_millis(20 * i as u64);
        buffer.insert(99, 900 + i as u16, 777 + 960 * i as u32, OPUS, payload, now);
        buffer.poll(now, &mut |pcm| second.extend_from_slice(pcm));
    }
    out.extend(second);
    buffer.finish(&mut |pcm| out.extend_from_slice(pcm));
    assert_eq!(out.len(), 16_000);
    assert_eq!(buffer.stats().ssrc_changes, 1);
    let reference = tone(8000, 440.0, 16_000);
    let ncc = ncc_at_best_lag(&out[8000 + 320..], &reference[8000 + 320..], 120);
    assert!(ncc > 0.9, "downsampled Opus NCC {ncc:.3}");
}

//! One call's decoder: RTP payloads of the negotiated codec to PCM.
//!
//! G.722 (ADPCM) and Opus keep state from packet to packet, so a call has
//! one [`Decoder`] that sees its packets in order. The conversions come
//! from `crate::audio` (G.722, Opus through libopus) and, for G.711, the
//! `audio-codec-algorithms` crate, whose μ-law and A-law tables are
//! generated with the ITU-T G.191 reference tools.
//!
//! A lost packet is [concealed](Decoder::conceal): Opus extrapolates the
//! last speech and fades it out (libopus packet loss concealment, RFC 6716
//! §4.4), which sounds far better than a hole; G.711 and G.722 have no
//! concealment of their own here and give silence.

use crate::audio::{AudioError, G722Decoder, OpusDecoder};

use super::codec::Codec;

/// libopus conceals in steps of 2.5 ms (RFC 6716 §2: the shortest frame).
const OPUS_PLC_STEP_HZ: u32 = 400;

/// The state of one codec's decoder.
enum State {
    /// G.711 μ-law is stateless: each byte is one sample.
    Ulaw,
    /// G.711 A-law, likewise.
    Alaw,
    /// Boxed: the ADPCM and QMF state is a few hundred bytes.
    G722(Box<G722Decoder>),
    /// libopus state lives on the C heap behind a pointer.
    Opus(OpusDecoder),
}

/// A stateful decoder for one codec and one call.
pub struct Decoder {
    codec: Codec,
    state: State,
}

impl Decoder {
    /// A fresh decoder for `codec`, producing PCM at `codec.audio_rate()`.
    /// Fails only if libopus cannot be set up.
    pub fn new(codec: Codec) -> Result<Decoder, AudioError> {
        let state = match codec {
            Codec::Pcmu => State::Ulaw,
            Codec::Pcma => State::Alaw,
            Codec::G722 => State::G722(Box::default()),
            Codec::Opus(rate) => State::Opus(OpusDecoder::new(rate.hz())?),
        };
        Ok(Decoder { codec, state })
    }

    /// The codec this decoder decodes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one payload, appending its samples to `out` (appending lets
    /// the packet path reuse one buffer, so decoding does not allocate once
    /// it is warm). Only a malformed Opus packet fails.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), AudioError> {
        match &mut self.state {
            State::Ulaw => out.extend(
                payload
                    .iter()
                    .map(|&b| audio_codec_algorithms::decode_ulaw(b)),
            ),
            State::Alaw => out.extend(
                payload
                    .iter()
                    .map(|&b| audio_codec_algorithms::decode_alaw(b)),
            ),
            State::G722(decoder) => decoder.decode(payload, out),
            State::Opus(decoder) => decoder.decode(payload, out)?,
        }
        Ok(())
    }

    /// Appends `samples` of audio standing in for packets that never came:
    /// Opus packet loss concealment, in 20 ms steps, then silence for what
    /// is left below its 2.5 ms granularity; silence for the other codecs.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let target = out.len() + samples;
        if let State::Opus(decoder) = &mut self.state {
            let step = (self.codec.audio_rate() / OPUS_PLC_STEP_HZ) as usize;
            let frame = self.codec.frame_samples();
            let mut left = samples - samples % step.max(1);
            while left > 0 {
                let chunk = left.min(frame);
                let before = out.len();
                decoder.decode_lost(chunk, out)?;
                let produced = out.len() - before;
                if produced == 0 {
                    break;
                }
                left = left.saturating_sub(produced);
            }
            out.truncate(target);
        }
        out.resize(target, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::OpusRate;
    use super::*;
    use crate::audio::{G722Encoder, OpusEncoder};

    fn tone(rate: u32, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect()
    }

    fn energy(pcm: &[i16]) -> f64 {
        pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64
    }

    #[test]
    fn known_values_from_g711() {
        let mut pcm = Vec::new();
        // μ-law 0xFF and 0x7F are the two zeros; 0x00 is the most negative.
        Decoder::new(Codec::Pcmu)
            .unwrap()
            .decode(&[0xFF, 0x7F, 0x00, 0x80], &mut pcm)
            .unwrap();
        assert_eq!(pcm, vec![0, 0, -32124, 32124]);
        pcm.clear();
        // A-law 0xD5 is the smallest positive step, 0x55 the smallest negative.
        Decoder::new(Codec::Pcma)
            .unwrap()
            .decode(&[0xD5, 0x55, 0xAA, 0x2A], &mut pcm)
            .unwrap();
        assert_eq!(pcm, vec![8, -8, 32256, -32256]);
    }

    #[test]
    fn decode_appends_rather_than_replaces() {
        let mut pcm = vec![7];
        let mut decoder = Decoder::new(Codec::G722).unwrap();
        decoder.decode(&[0xFF; 3], &mut pcm).unwrap();
        assert_eq!(pcm.len(), 7);
        assert_eq!(pcm[0], 7);
    }

    #[test]
    fn g711_and_g722_conceal_with_silence() {
        for codec in [Codec::Pcmu, Codec::G722] {
            let mut decoder = Decoder::new(codec).unwrap();
            let mut pcm = vec![1];
            decoder.conceal(320, &mut pcm).unwrap();
            assert_eq!(pcm.len(), 321);
            assert!(pcm[1..].iter().all(|&s| s == 0));
        }
    }

    #[test]
    fn g722_decodes_what_the_encoder_made() {
        let input = tone(16_000, 3200);
        let mut bytes = Vec::new();
        G722Encoder::new().encode(&input, &mut bytes);
        let mut decoder = Decoder::new(Codec::G722).unwrap();
        let mut pcm = Vec::new();
        for packet in bytes.chunks(160) {
            decoder.decode(packet, &mut pcm).unwrap();
        }
        assert_eq!(pcm.len(), input.len());
        assert!(energy(&pcm[1600..]) > 0.5 * energy(&input[1600..]));
    }

    /// A lost Opus packet is replaced by audio continuing the tone, not a
    /// hole of zeros (issue: loss concealment instead of silence).
    #[test]
    fn opus_conceals_a_lost_packet_with_audio() {
        let codec = Codec::Opus(OpusRate::Wideband);
        let input = tone(16_000, 16_000);
        let mut encoder = OpusEncoder::new(16_000, 24_000).unwrap();
        let mut decoder = Decoder::new(codec).unwrap();
        let mut pcm = Vec::new();
        for frame in input.chunks_exact(320).take(20) {
            let mut packet = Vec::new();
            encoder.encode_frame(frame, &mut packet).unwrap();
            decoder.decode(&packet, &mut pcm).unwrap();
        }
        let before = pcm.len();
        decoder.conceal(330, &mut pcm).unwrap();
        assert_eq!(pcm.len(), before + 330);
        let concealed = &pcm[before..before + 320];
        assert!(
            energy(concealed) > 0.1 * energy(&pcm[before - 320..before]),
            "concealment is near silence: {}",
            energy(concealed)
        );
        // The 10 samples below the 2.5 ms step are silence.
        assert!(pcm[before + 320..].iter().all(|&s| s == 0));
    }

    #[test]
    fn a_malformed_opus_packet_is_an_error() {
        let mut decoder = Decoder::new(Codec::Opus(OpusRate::Wideband)).unwrap();
        let mut pcm = Vec::new();
        assert!(decoder.decode(&[], &mut pcm).is_err());
        assert!(pcm.is_empty());
    }
}

//! One call's encoder: PCM to RTP payloads of the negotiated codec, for
//! what vmesh sends (greeting, beep).
//!
//! Everything is packetized in 20 ms frames ([`super::codec::FRAME_MS`]), the RFC 3551
//! §4.5 and RFC 7587 §4 default that every phone accepts. G.722 and Opus
//! keep state between frames, so one [`Encoder`] serves one stream. The
//! conversions come from `crate::audio` and `audio-codec-algorithms`.

use crate::audio::{AudioError, G722Encoder, OpusEncoder};

use super::codec::Codec;

/// Opus bit rate for what we send: 24 kbit/s is transparent for wideband
/// speech (RFC 7587 §3.1.1 puts wideband speech at 16-20 kbit/s), and
/// prompts are short.
pub const CALL_OPUS_BITRATE: u32 = 24_000;

/// The state of one codec's encoder.
enum State {
    Ulaw,
    Alaw,
    /// Boxed: the ADPCM and QMF state is a few hundred bytes.
    G722(Box<G722Encoder>),
    /// libopus state lives on the C heap behind a pointer.
    Opus(OpusEncoder),
}

/// A stateful encoder for one codec and one outgoing stream.
pub struct Encoder {
    codec: Codec,
    state: State,
}

impl Encoder {
    /// A fresh encoder for `codec`, taking PCM at `codec.audio_rate()`.
    /// Fails only if libopus cannot be set up.
    pub fn new(codec: Codec) -> Result<Encoder, AudioError> {
        let state = match codec {
            Codec::Pcmu => State::Ulaw,
            Codec::Pcma => State::Alaw,
            Codec::G722 => State::G722(Box::default()),
            Codec::Opus(rate) => State::Opus(OpusEncoder::new(rate.hz(), CALL_OPUS_BITRATE)?),
        };
        Ok(Encoder { codec, state })
    }

    /// The codec this encoder produces.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Samples of one 20 ms frame at the codec's audio rate: what
    /// [`Encoder::encode`] takes per call for one RTP packet.
    pub fn frame_samples(&self) -> usize {
        self.codec.frame_samples()
    }

    /// How far the RTP timestamp advances per frame (RFC 3550 §5.1).
    pub fn frame_timestamp_step(&self) -> u32 {
        self.codec.frame_timestamp_step()
    }

    /// Encodes one frame of PCM at the codec's audio rate, appending the
    /// payload to `out`. Opus takes exactly [`Encoder::frame_samples`]
    /// samples (shorter ends of prompts must be padded with silence); G.711
    /// and G.722 take any length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), AudioError> {
        match &mut self.state {
            State::Ulaw => out.extend(pcm.iter().map(|&s| audio_codec_algorithms::encode_ulaw(s))),
            State::Alaw => out.extend(pcm.iter().map(|&s| audio_codec_algorithms::encode_alaw(s))),
            State::G722(encoder) => encoder.encode(pcm, out),
            State::Opus(encoder) => encoder.encode_frame(pcm, out)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::OpusRate;
    use super::super::decoder::Decoder;
    use super::*;

    #[test]
    fn g711_zero_and_round_trip_error_is_bounded() {
        let mut bytes = Vec::new();
        Encoder::new(Codec::Pcmu)
            .unwrap()
            .encode(&[0], &mut bytes)
            .unwrap();
        Encoder::new(Codec::Pcma)
            .unwrap()
            .encode(&[0], &mut bytes)
            .unwrap();
        assert_eq!(bytes, vec![0xFF, 0xD5]);

        // G.711 keeps 8 bits of a 14/13-bit magnitude: the error of a round
        // trip is at most 1/32 of the magnitude plus the smallest step.
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let pcm: Vec<i16> = (i16::MIN..=i16::MAX).step_by(7).collect();
            let mut bytes = Vec::new();
            Encoder::new(codec)
                .unwrap()
                .encode(&pcm, &mut bytes)
                .unwrap();
            assert_eq!(bytes.len(), pcm.len());
            let mut back = Vec::new();
            Decoder::new(codec)
                .unwrap()
                .decode(&bytes, &mut back)
                .unwrap();
            for (&orig, &decoded) in pcm.iter().zip(&back) {
                let orig = i32::from(orig).clamp(-32256, 32256);
                let error = (orig - i32::from(decoded)).abs();
                assert!(
                    error <= orig.abs() / 32 + 16,
                    "{codec:?}: {orig} -> {decoded}"
                );
            }
        }
    }

    #[test]
    fn every_g711_byte_survives_decode_then_encode() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let bytes: Vec<u8> = (0..=255).collect();
            let mut pcm = Vec::new();
            Decoder::new(codec)
                .unwrap()
                .decode(&bytes, &mut pcm)
                .unwrap();
            let mut again = Vec::new();
            Encoder::new(codec)
                .unwrap()
                .encode(&pcm, &mut again)
                .unwrap();
            for (b, a) in bytes.iter().zip(&again) {
                // μ-law has two codes for zero (0x7F and 0xFF); both decode to 0.
                let zero_alias = codec == Codec::Pcmu && *b == 0x7F && *a == 0xFF;
                assert!(a == b || zero_alias, "{codec:?}: {b:#04x} -> {a:#04x}");
            }
        }
    }

    #[test]
    fn frames_and_steps_per_codec() {
        let g722 = Encoder::new(Codec::G722).unwrap();
        assert_eq!(
            (g722.frame_samples(), g722.frame_timestamp_step()),
            (320, 160)
        );
        let opus = Encoder::new(Codec::Opus(OpusRate::Wideband)).unwrap();
        assert_eq!(
            (opus.frame_samples(), opus.frame_timestamp_step()),
            (320, 960)
        );
        let pcmu = Encoder::new(Codec::Pcmu).unwrap();
        assert_eq!(
            (pcmu.frame_samples(), pcmu.frame_timestamp_step()),
            (160, 160)
        );
    }

    #[test]
    fn one_frame_is_one_packet_of_the_codec() {
        let mut g722 = Encoder::new(Codec::G722).unwrap();
        let mut payload = Vec::new();
        g722.encode(&[0; 320], &mut payload).unwrap();
        assert_eq!(payload.len(), 160);

        let codec = Codec::Opus(OpusRate::Wideband);
        let mut opus = Encoder::new(codec).unwrap();
        let mut payload = Vec::new();
        opus.encode(&[0; 320], &mut payload).unwrap();
        assert_eq!(codec.samples_in(&payload), Some(320));
        assert!(opus.encode(&[0; 100], &mut payload).is_err());
    }
}

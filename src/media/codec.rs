//! G.711 audio codecs (ITU-T G.711): μ-law (PCMU) and A-law (PCMA).
//!
//! Every SIP PBX can send G.711, so it is the codec a voicemail server must
//! accept. The sample conversion comes from the `audio-codec-algorithms`
//! crate, whose μ-law and A-law tables are generated with the ITU-T G.191
//! reference tools; this file only maps codecs to their RTP identities
//! (RFC 3551 §6) and converts whole payloads.

/// A G.711 variant, named as in the RTP/AVP profile (RFC 3551 §4.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, the North American and Japanese variant; static PT 0.
    Pcmu,
    /// G.711 A-law, the variant used in the rest of the world; static PT 8.
    Pcma,
}

impl Codec {
    /// Every codec this module decodes, in our order of preference.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// The encoding name used in SDP `a=rtpmap` (RFC 3551 §6, Table 4).
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The static RTP payload type (RFC 3551 §6), usable without `a=rtpmap`.
    pub const fn static_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The RTP clock rate in Hz; G.711 samples at 8 kHz (RFC 3551 §4.5.14).
    pub const fn clock_rate(self) -> u32 {
        8000
    }

    /// Looks a codec up by its SDP encoding name, which RFC 4855 §3 makes
    /// case-insensitive (`pcmu` and `PCMU` are the same codec).
    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|codec| codec.name().eq_ignore_ascii_case(name))
    }

    /// The codec that owns a static payload type, if it is one of ours.
    pub fn from_static_pt(payload_type: u8) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|codec| codec.static_pt() == payload_type)
    }

    /// How many PCM samples a payload of `len` bytes carries: G.711 is one
    /// byte per sample, which lets the jitter buffer place audio by RTP
    /// timestamp without decoding first.
    pub const fn samples_in(self, len: usize) -> usize {
        len
    }
}

/// Decodes a G.711 payload and appends the 16-bit linear PCM samples to `out`.
///
/// Appending (rather than returning a new buffer) lets the packet path reuse
/// one scratch vector per call, so decoding never allocates once it is warm.
pub fn decode_into(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    match codec {
        Codec::Pcmu => out.extend(
            payload
                .iter()
                .map(|&b| audio_codec_algorithms::decode_ulaw(b)),
        ),
        Codec::Pcma => out.extend(
            payload
                .iter()
                .map(|&b| audio_codec_algorithms::decode_alaw(b)),
        ),
    }
}

/// Encodes 16-bit linear PCM as G.711 and appends the bytes to `out`; used
/// to packetize prompts (greeting, beep) for playback.
pub fn encode_into(codec: Codec, pcm: &[i16], out: &mut Vec<u8>) {
    match codec {
        Codec::Pcmu => out.extend(pcm.iter().map(|&s| audio_codec_algorithms::encode_ulaw(s))),
        Codec::Pcma => out.extend(pcm.iter().map(|&s| audio_codec_algorithms::encode_alaw(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_follow_rfc_3551() {
        assert_eq!(Codec::Pcmu.name(), "PCMU");
        assert_eq!(Codec::Pcma.name(), "PCMA");
        assert_eq!(Codec::Pcmu.static_pt(), 0);
        assert_eq!(Codec::Pcma.static_pt(), 8);
        assert_eq!(Codec::Pcmu.clock_rate(), 8000);
        assert_eq!(Codec::from_name("pcma"), Some(Codec::Pcma));
        assert_eq!(Codec::from_name("PCMU"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_name("G729"), None);
        assert_eq!(Codec::from_static_pt(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_static_pt(18), None);
    }

    #[test]
    fn known_values_from_g711() {
        let mut pcm = Vec::new();
        // μ-law 0xFF and 0x7F are the two zeros; 0x00 is the most negative.
        decode_into(Codec::Pcmu, &[0xFF, 0x7F, 0x00, 0x80], &mut pcm);
        assert_eq!(pcm, vec![0, 0, -32124, 32124]);
        pcm.clear();
        // A-law 0xD5 is the smallest positive step, 0x55 the smallest negative.
        decode_into(Codec::Pcma, &[0xD5, 0x55, 0xAA, 0x2A], &mut pcm);
        assert_eq!(pcm, vec![8, -8, 32256, -32256]);

        let mut bytes = Vec::new();
        encode_into(Codec::Pcmu, &[0], &mut bytes);
        encode_into(Codec::Pcma, &[0], &mut bytes);
        assert_eq!(bytes, vec![0xFF, 0xD5]);
    }

    #[test]
    fn decode_appends_rather_than_replaces() {
        let mut pcm = vec![7];
        decode_into(Codec::Pcmu, &[0xFF; 3], &mut pcm);
        assert_eq!(pcm, vec![7, 0, 0, 0]);
    }

    /// G.711 keeps 8 bits of a 14/13-bit magnitude: the error of a round
    /// trip is bounded by half of the quantization step of the segment, which
    /// is at most 1/32 of the magnitude plus the smallest step.
    #[test]
    fn round_trip_error_is_bounded() {
        for codec in Codec::ALL {
            let pcm: Vec<i16> = (i16::MIN..=i16::MAX).step_by(7).collect();
            let mut bytes = Vec::new();
            encode_into(codec, &pcm, &mut bytes);
            assert_eq!(bytes.len(), pcm.len());
            let mut back = Vec::new();
            decode_into(codec, &bytes, &mut back);
            for (&orig, &decoded) in pcm.iter().zip(&back) {
                let orig = i32::from(orig).clamp(-32256, 32256);
                let error = (orig - i32::from(decoded)).abs();
                let bound = orig.abs() / 32 + 16;
                assert!(
                    error <= bound,
                    "{codec:?}: {orig} -> {decoded} (error {error})"
                );
            }
        }
    }

    #[test]
    fn every_byte_survives_decode_then_encode() {
        for codec in Codec::ALL {
            let bytes: Vec<u8> = (0..=255).collect();
            let mut pcm = Vec::new();
            decode_into(codec, &bytes, &mut pcm);
            let mut again = Vec::new();
            encode_into(codec, &pcm, &mut again);
            for (b, a) in bytes.iter().zip(&again) {
                // μ-law has two codes for zero (0x7F and 0xFF); both decode to 0.
                let zero_alias = codec == Codec::Pcmu && *b == 0x7F && *a == 0xFF;
                assert!(a == b || zero_alias, "{codec:?}: {b:#04x} -> {a:#04x}");
            }
        }
    }
}

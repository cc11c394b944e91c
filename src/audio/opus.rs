//! Opus (RFC 6716) for calls and for stored messages, through libopus via
//! `audiopus`.
//!
//! Mono only, 20 ms frames only: that is what SIP phones send (RFC 7587 §4
//! recommends 20 ms) and what Ogg Opus storage writes, and fixing it lets a
//! wrong-sized frame be refused here rather than produce a packet another
//! decoder chokes on. The encoder uses the VoIP application, tuned for
//! speech intelligibility rather than music.

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};

use super::AudioError;

/// Frame length in milliseconds for everything encoded here.
pub const FRAME_MS: u32 = 20;

/// The largest packet libopus can produce for one frame (RFC 6716 §3.4:
/// 1275 octets of frame data plus the TOC and length bytes).
const MAX_PACKET: usize = 1500;

/// The longest audio one Opus packet can hold: 120 ms (RFC 6716 §3.2.5).
const MAX_PACKET_MS: usize = 120;

/// Maps a rate in Hz to the libopus enum, refusing the rates we do not run
/// Opus at. libopus also takes 12 and 24 kHz; nothing in a call uses them,
/// but decoding a stored file at its own rate may.
fn opus_rate(what: &'static str, rate: u32) -> Result<SampleRate, AudioError> {
    match rate {
        8_000 => Ok(SampleRate::Hz8000),
        12_000 => Ok(SampleRate::Hz12000),
        16_000 => Ok(SampleRate::Hz16000),
        24_000 => Ok(SampleRate::Hz24000),
        48_000 => Ok(SampleRate::Hz48000),
        _ => Err(AudioError::UnsupportedRate { what, rate }),
    }
}

/// Wraps a libopus error with the name of the call that failed.
fn opus_error(operation: &'static str) -> impl FnOnce(audiopus::Error) -> AudioError {
    move |source| AudioError::Opus { operation, source }
}

/// A mono Opus encoder producing one packet per 20 ms frame.
pub struct OpusEncoder {
    inner: Encoder,
    rate: u32,
    scratch: Vec<u8>,
}

impl OpusEncoder {
    /// Builds an encoder for PCM at `sample_rate` (8000, 16000 or 48000 Hz;
    /// 12000 and 24000 also work) at `bitrate_bps` bits per second.
    ///
    /// The rate is that of the PCM handed in, not of the Opus bandwidth:
    /// Opus codes 16 kHz input as wideband whatever the RTP clock says
    /// (always 48000, RFC 7587 §4.1).
    pub fn new(sample_rate: u32, bitrate_bps: u32) -> Result<Self, AudioError> {
        let rate = opus_rate("Opus encoder", sample_rate)?;
        let mut inner =
            Encoder::new(rate, Channels::Mono, Application::Voip).map_err(opus_error("create"))?;
        let bits = i32::try_from(bitrate_bps).unwrap_or(i32::MAX);
        inner
            .set_bitrate(Bitrate::BitsPerSecond(bits))
            .map_err(opus_error("set bitrate"))?;
        Ok(OpusEncoder {
            inner,
            rate: sample_rate,
            scratch: vec![0; MAX_PACKET],
        })
    }

    /// The PCM rate this encoder takes, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Samples in one 20 ms frame at this encoder's rate.
    pub fn frame_samples(&self) -> usize {
        (self.rate * FRAME_MS / 1000) as usize
    }

    /// The encoder's algorithmic delay in samples at its own rate
    /// (OPUS_GET_LOOKAHEAD): how far decoded audio lags the input, and so
    /// the pre-skip an Ogg Opus file must declare (RFC 7845 §4.2).
    pub fn lookahead(&self) -> Result<u32, AudioError> {
        self.inner.lookahead().map_err(opus_error("get lookahead"))
    }

    /// Encodes exactly one 20 ms frame, appending one Opus packet to `out`.
    pub fn encode_frame(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), AudioError> {
        let expected = self.frame_samples();
        if pcm.len() != expected {
            return Err(AudioError::FrameLength {
                expected,
                got: pcm.len(),
            });
        }
        let written = self
            .inner
            .encode(pcm, &mut self.scratch)
            .map_err(opus_error("encode"))?;
        out.extend_from_slice(self.scratch.get(..written).unwrap_or_default());
        Ok(())
    }
}

/// A mono Opus decoder: any Opus packet (of any mode, bandwidth or frame
/// size, and stereo packets downmixed) in, PCM at the decoder's rate out.
pub struct OpusDecoder {
    inner: Decoder,
    rate: u32,
    scratch: Vec<i16>,
}

impl OpusDecoder {
    /// Builds a decoder giving PCM at `rate` (8000, 12000, 16000, 24000 or
    /// 48000 Hz); Opus decodes any packet to any of these rates.
    pub fn new(rate: u32) -> Result<Self, AudioError> {
        let sample_rate = opus_rate("Opus decoder", rate)?;
        let inner = Decoder::new(sample_rate, Channels::Mono).map_err(opus_error("create"))?;
        Ok(OpusDecoder {
            inner,
            rate,
            scratch: vec![0; rate as usize * MAX_PACKET_MS / 1000],
        })
    }

    /// The PCM rate this decoder gives, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Decodes one packet, appending its samples to `out`. An empty packet
    /// is refused (RFC 6716 §3.1: a packet has at least the TOC byte).
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<(), AudioError> {
        let packet = Packet::try_from(packet).map_err(opus_error("decode"))?;
        let signals = MutSignals::try_from(&mut self.scratch[..]).map_err(opus_error("decode"))?;
        let written = self
            .inner
            .decode(Some(packet), signals, false)
            .map_err(opus_error("decode"))?;
        out.extend_from_slice(self.scratch.get(..written).unwrap_or_default());
        Ok(())
    }

    /// Conceals a lost packet: appends `samples` of audio that continue the
    /// last decoded speech and fade out (libopus packet loss concealment),
    /// instead of a hole of silence. `samples` should be the lost packet's
    /// duration, a multiple of 2.5 ms, at most 120 ms.
    pub fn decode_lost(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let limit = self.scratch.len();
        let buffer = self
            .scratch
            .get_mut(..samples.min(limit))
            .unwrap_or_default();
        let signals = MutSignals::try_from(buffer).map_err(opus_error("conceal loss"))?;
        let written = self
            .inner
            .decode(None, signals, false)
            .map_err(opus_error("conceal loss"))?;
        out.extend_from_slice(self.scratch.get(..written).unwrap_or_default());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_signals::{ncc, ncc_at_best_lag, speech_16k};

    fn encode_all(encoder: &mut OpusEncoder, pcm: &[i16]) -> Vec<Vec<u8>> {
        pcm.chunks_exact(encoder.frame_samples())
            .map(|frame| {
                let mut packet = Vec::new();
                encoder.encode_frame(frame, &mut packet).unwrap();
                packet
            })
            .collect()
    }

    #[test]
    fn speech_round_trips_at_16k_and_24kbps() {
        let speech = speech_16k();
        let mut encoder = OpusEncoder::new(16_000, 24_000).unwrap();
        let lookahead = encoder.lookahead().unwrap();
        assert_eq!(lookahead, 104, "2.5 ms + 4 ms at 16 kHz");
        let packets = encode_all(&mut encoder, &speech);
        let bytes: usize = packets.iter().map(Vec::len).sum();
        let seconds = packets.len() as f64 / 50.0;
        let kbps = bytes as f64 * 8.0 / seconds / 1000.0;
        assert!((18.0..30.0).contains(&kbps), "{kbps:.1} kbit/s");

        let mut decoder = OpusDecoder::new(16_000).unwrap();
        let mut decoded = Vec::new();
        for packet in &packets {
            decoder.decode(packet, &mut decoded).unwrap();
        }
        assert_eq!(decoded.len(), packets.len() * 320);
        let (lag, score) = ncc_at_best_lag(&speech, &decoded, 200);
        assert_eq!(lag, lookahead as isize);
        assert!(score > 0.9, "NCC {score}");
    }

    #[test]
    fn every_call_rate_works_and_odd_ones_are_refused() {
        for rate in [8_000, 16_000, 48_000] {
            let mut encoder = OpusEncoder::new(rate, 24_000).unwrap();
            let mut packet = Vec::new();
            let frame = vec![0; encoder.frame_samples()];
            encoder.encode_frame(&frame, &mut packet).unwrap();
            let mut decoder = OpusDecoder::new(rate).unwrap();
            let mut out = Vec::new();
            decoder.decode(&packet, &mut out).unwrap();
            assert_eq!(out.len(), frame.len());
        }
        assert!(matches!(
            OpusEncoder::new(44_100, 24_000),
            Err(AudioError::UnsupportedRate { rate: 44_100, .. })
        ));
        let mut encoder = OpusEncoder::new(16_000, 24_000).unwrap();
        assert!(matches!(
            encoder.encode_frame(&[0; 160], &mut Vec::new()),
            Err(AudioError::FrameLength {
                expected: 320,
                got: 160
            })
        ));
    }

    #[test]
    fn a_lost_packet_is_concealed_not_silenced() {
        let speech = speech_16k();
        let mut encoder = OpusEncoder::new(16_000, 24_000).unwrap();
        let packets = encode_all(&mut encoder, &speech[..16_000 * 3]);
        let mut decoder = OpusDecoder::new(16_000).unwrap();
        let mut decoded = Vec::new();
        // Lose a packet in the middle of voiced speech, 1.5 s in.
        for (index, packet) in packets.iter().enumerate() {
            if index == 75 {
                decoder.decode_lost(320, &mut decoded).unwrap();
            } else {
                decoder.decode(packet, &mut decoded).unwrap();
            }
        }
        assert_eq!(decoded.len(), packets.len() * 320);
        let gap = &decoded[75 * 320..76 * 320];
        let energy = gap.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        assert!(energy > 0.0, "the lost frame came out silent");
        // The concealment resembles what was lost more than silence would.
        let original = &speech[75 * 320 - 104..76 * 320 - 104];
        assert!(ncc(original, gap, 0) > 0.2);
        assert!(decoder.decode(&[], &mut decoded).is_err());
    }
}

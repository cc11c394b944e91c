//! The audio codecs of a call and their RTP identities: G.711 μ-law and
//! A-law (narrowband, what every PBX sends), G.722 and Opus (wideband).
//!
//! This file only says what each codec *is* on the wire: its SDP name and
//! clock rate (RFC 3551 §6, RFC 7587 §7), its payload type, how long a
//! payload lasts and at what rate it decodes. The stateful conversion to
//! and from PCM lives in [`super::decoder`] and [`super::encoder`], on top
//! of `crate::audio`.
//!
//! Two rates matter and differ for the wideband codecs:
//! - the RTP clock, which RTP timestamps count in ([`Codec::rtp_clock_rate`]);
//! - the audio rate, at which the codec's PCM comes out ([`Codec::audio_rate`]).
//!
//! G.722 samples at 16 kHz but its RTP clock is 8000 (RFC 3551 §4.5.2, an
//! error in RFC 1890 kept for compatibility), so a timestamp unit is two
//! samples. Opus always has a 48 kHz RTP clock (RFC 7587 §4.1) whatever
//! bandwidth is coded; vmesh decodes it at the profile's internal rate
//! ([`OpusRate`], 16 kHz by default), so a 20 ms packet advances the
//! timestamp by 960 and carries 320 samples.

use audiopus::packet::{self, Packet};
use audiopus::SampleRate;

/// The payload type we offer Opus on; Opus has no static type (RFC 7587 §7).
pub const OPUS_PT: u8 = 111;

/// Packetization of everything we encode, and the RFC 3551 §4.5 and RFC
/// 7587 §4 default for what we receive.
pub const FRAME_MS: u32 = 20;

/// The rate an Opus call is decoded and recorded at, inside vmesh.
///
/// Opus decodes any packet to any of these rates, so this is our choice,
/// not the sender's: 16 kHz keeps all of wideband speech at a third of the
/// storage and CPU of 48 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpusRate {
    /// 8 kHz: narrowband, as G.711.
    Narrowband,
    /// 16 kHz: wideband, as G.722; the default.
    Wideband,
    /// 48 kHz: fullband.
    Fullband,
}

impl OpusRate {
    /// The rate in Hz.
    pub const fn hz(self) -> u32 {
        match self {
            OpusRate::Narrowband => 8000,
            OpusRate::Wideband => 16_000,
            OpusRate::Fullband => 48_000,
        }
    }

    /// The rate for a number of Hz, if it is one of the three we run at.
    pub const fn from_hz(hz: u32) -> Option<OpusRate> {
        match hz {
            8000 => Some(OpusRate::Narrowband),
            16_000 => Some(OpusRate::Wideband),
            48_000 => Some(OpusRate::Fullband),
            _ => None,
        }
    }
}

/// An audio codec vmesh can receive and send, named as in the RTP/AVP
/// profile (RFC 3551 §4.5) and RFC 7587.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, the North American and Japanese variant; static PT 0.
    Pcmu,
    /// G.711 A-law, the variant used in the rest of the world; static PT 8.
    Pcma,
    /// ITU-T G.722 at 64 kbit/s, 16 kHz audio; static PT 9.
    G722,
    /// Opus (RFC 6716) on a dynamic PT, decoded mono at this rate.
    Opus(OpusRate),
}

impl Codec {
    /// Every codec, in the default order of preference: best quality first.
    pub const ALL: [Codec; 4] = [
        Codec::Opus(OpusRate::Wideband),
        Codec::G722,
        Codec::Pcmu,
        Codec::Pcma,
    ];

    /// vmesh's one spelling of the codec, upper-case: what profiles list
    /// (in any case), what the store, the CLI, JSON and the mesh's wire
    /// metadata carry.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus(_) => "OPUS",
        }
    }

    /// The encoding name written in SDP `a=rtpmap` (RFC 3551 §6 Table 4,
    /// RFC 7587 §7: `opus` in lower case, as every PBX writes it); reading
    /// is case-insensitive (RFC 4855 §3).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Opus(_) => "opus",
            other => other.name(),
        }
    }

    /// The static RTP payload type (RFC 3551 §6), usable without
    /// `a=rtpmap`; Opus has none.
    pub const fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus(_) => None,
        }
    }

    /// The payload type we put in our own offers: the static one, or
    /// [`OPUS_PT`] for Opus.
    pub const fn payload_type(self) -> u8 {
        match self.static_pt() {
            Some(pt) => pt,
            None => OPUS_PT,
        }
    }

    /// The clock RTP timestamps count in, which is also the rate SDP
    /// `a=rtpmap` states: 8000 for G.711 and G.722 (RFC 3551 §4.5.2),
    /// 48000 for Opus (RFC 7587 §4.1).
    pub const fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus(_) => 48_000,
        }
    }

    /// The rate of the PCM the codec decodes to and encodes from: 8000 for
    /// G.711, 16000 for G.722, the internal rate for Opus.
    pub const fn audio_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16_000,
            Codec::Opus(rate) => rate.hz(),
        }
    }

    /// The channel count SDP states after the clock rate, if any: Opus is
    /// always signalled as `opus/48000/2`, even for mono (RFC 7587 §7).
    pub const fn sdp_channels(self) -> Option<u32> {
        match self {
            Codec::Opus(_) => Some(2),
            _ => None,
        }
    }

    /// The clock rate of the telephone-events that go with this codec:
    /// RFC 4733 §2.1 has events share the audio's RTP clock, so a PBX
    /// offering Opus also offers `telephone-event/48000`.
    pub const fn telephone_event_rate(self) -> u32 {
        self.rtp_clock_rate()
    }

    /// The `a=fmtp` parameters we state for this codec, in the form
    /// Asterisk and FreeSWITCH write their own: only the parameters that
    /// differ from RFC 7587 §6.1's defaults. Mono (`stereo=0`), no in-band
    /// FEC and no DTX are the defaults already; what is left is that no
    /// audio above our internal rate is worth sending (`maxplaybackrate`,
    /// omitted at 48 kHz, its default). `sprop-maxcapturerate` is left out
    /// on purpose: it only describes what we send, RFC 7587 makes it
    /// optional, and FreeSWITCH 1.10 takes it for the codec's rate and
    /// then fails to match `opus/48000` (a call answered so is dropped).
    pub fn fmtp(self) -> Option<String> {
        match self {
            Codec::Opus(rate) if rate != OpusRate::Fullband => {
                Some(format!("maxplaybackrate={}", rate.hz()))
            }
            _ => None,
        }
    }

    /// Samples of audio in 20 ms at [`Codec::audio_rate`]: one frame.
    pub const fn frame_samples(self) -> usize {
        (self.audio_rate() * FRAME_MS / 1000) as usize
    }

    /// How far the RTP timestamp advances per 20 ms frame.
    pub const fn frame_timestamp_step(self) -> u32 {
        self.rtp_clock_rate() * FRAME_MS / 1000
    }

    /// Looks a codec up by its name, in any case (`pcmu`, `G722`, `OPUS`),
    /// Opus at its default 16 kHz rate.
    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|codec| {
            codec.name().eq_ignore_ascii_case(name)
                || codec.encoding_name().eq_ignore_ascii_case(name)
        })
    }

    /// Looks a profile's codec name up, Opus at the profile's `opus_rate`
    /// (Hz); `None` for an unknown name or an unsupported rate.
    pub fn from_profile(name: &str, opus_rate: u32) -> Option<Codec> {
        match Codec::from_name(name)? {
            Codec::Opus(_) => OpusRate::from_hz(opus_rate).map(Codec::Opus),
            codec => Some(codec),
        }
    }

    /// The codec an `a=rtpmap` names, from its encoding name and clock rate;
    /// a known name at the wrong rate (`PCMU/16000`) is another encoding.
    pub fn from_rtpmap(name: &str, clock_rate: u32) -> Option<Codec> {
        Codec::from_name(name).filter(|codec| codec.rtp_clock_rate() == clock_rate)
    }

    /// The codec that owns a static payload type, if it is one of ours.
    pub fn from_static_pt(payload_type: u8) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|codec| codec.static_pt() == Some(payload_type))
    }

    /// Whether two codecs are the same encoding on the wire, whatever rate
    /// Opus is decoded at: what SDP negotiation compares.
    pub fn same_encoding(self, other: Codec) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }

    /// How many samples at [`Codec::audio_rate`] a payload carries, found
    /// without decoding so the jitter buffer can place it first: one per
    /// byte for G.711, two per byte for G.722, and for Opus what the
    /// packet's TOC byte and frame count say (RFC 6716 §3.1). `None` for an
    /// Opus payload that is not a valid packet.
    pub fn samples_in(self, payload: &[u8]) -> Option<usize> {
        match self {
            Codec::Pcmu | Codec::Pcma => Some(payload.len()),
            Codec::G722 => Some(payload.len() * 2),
            Codec::Opus(rate) => {
                let packet = Packet::try_from(payload).ok()?;
                packet::nb_samples(packet, sample_rate(rate)).ok()
            }
        }
    }
}

fn sample_rate(rate: OpusRate) -> SampleRate {
    match rate {
        OpusRate::Narrowband => SampleRate::Hz8000,
        OpusRate::Wideband => SampleRate::Hz16000,
        OpusRate::Fullband => SampleRate::Hz48000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPUS16: Codec = Codec::Opus(OpusRate::Wideband);

    #[test]
    fn identities_follow_rfc_3551_and_rfc_7587() {
        assert_eq!(Codec::Pcmu.static_pt(), Some(0));
        assert_eq!(Codec::Pcma.static_pt(), Some(8));
        assert_eq!(Codec::G722.static_pt(), Some(9));
        assert_eq!(OPUS16.static_pt(), None);
        assert_eq!(OPUS16.payload_type(), OPUS_PT);
        assert_eq!(Codec::from_name("pcma"), Some(Codec::Pcma));
        assert_eq!(Codec::from_name("g722"), Some(Codec::G722));
        assert_eq!(Codec::from_name("OPUS"), Some(OPUS16));
        assert_eq!(Codec::from_name("G729"), None);
        assert_eq!(Codec::from_static_pt(9), Some(Codec::G722));
        assert_eq!(Codec::from_static_pt(18), None);
        assert_eq!(Codec::from_rtpmap("opus", 48_000), Some(OPUS16));
        assert_eq!(Codec::from_rtpmap("G722", 8000), Some(Codec::G722));
        assert_eq!(Codec::from_rtpmap("G722", 16_000), None);
        assert_eq!(
            Codec::from_profile("opus", 48_000),
            Some(Codec::Opus(OpusRate::Fullband))
        );
        assert_eq!(Codec::from_profile("opus", 44_100), None);
        assert!(Codec::Opus(OpusRate::Fullband).same_encoding(OPUS16));
        assert!(!Codec::Pcmu.same_encoding(Codec::Pcma));
    }

    #[test]
    fn g722_and_opus_rates_differ_from_their_rtp_clocks() {
        assert_eq!(Codec::G722.rtp_clock_rate(), 8000);
        assert_eq!(Codec::G722.audio_rate(), 16_000);
        assert_eq!(Codec::G722.frame_samples(), 320);
        assert_eq!(Codec::G722.frame_timestamp_step(), 160);
        assert_eq!(OPUS16.rtp_clock_rate(), 48_000);
        assert_eq!(OPUS16.audio_rate(), 16_000);
        assert_eq!(OPUS16.frame_timestamp_step(), 960);
        assert_eq!(OPUS16.telephone_event_rate(), 48_000);
        assert_eq!(Codec::G722.telephone_event_rate(), 8000);
        assert_eq!(Codec::Pcmu.audio_rate(), 8000);
        assert_eq!(Codec::Opus(OpusRate::Fullband).audio_rate(), 48_000);
    }

    #[test]
    fn payload_durations_are_known_before_decoding() {
        assert_eq!(Codec::Pcmu.samples_in(&[0; 160]), Some(160));
        assert_eq!(Codec::G722.samples_in(&[0; 160]), Some(320));
        // TOC 0x08: SILK wideband, 20 ms, one frame (RFC 6716 §3.1).
        assert_eq!(OPUS16.samples_in(&[0x08, 0, 0]), Some(320));
        assert_eq!(
            Codec::Opus(OpusRate::Fullband).samples_in(&[0x08]),
            Some(960)
        );
        // Code 1: two frames of 20 ms.
        assert_eq!(OPUS16.samples_in(&[0x09, 0, 0]), Some(640));
        assert_eq!(OPUS16.samples_in(&[]), None);
    }

    #[test]
    fn opus_fmtp_states_only_what_differs_from_the_defaults() {
        assert_eq!(OPUS16.fmtp().as_deref(), Some("maxplaybackrate=16000"));
        assert_eq!(
            Codec::Opus(OpusRate::Narrowband).fmtp().as_deref(),
            Some("maxplaybackrate=8000")
        );
        assert_eq!(Codec::Opus(OpusRate::Fullband).fmtp(), None);
        assert_eq!(Codec::G722.fmtp(), None);
        for codec in Codec::ALL {
            let fmtp = codec.fmtp().unwrap_or_default();
            assert!(!fmtp.contains("sprop-maxcapturerate"), "{fmtp}");
        }
    }

    #[test]
    fn one_spelling_upper_case_and_sdp_names_apart() {
        let names: Vec<&str> = Codec::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["OPUS", "G722", "PCMU", "PCMA"]);
        assert_eq!(OPUS16.encoding_name(), "opus");
        assert_eq!(Codec::Pcmu.encoding_name(), "PCMU");
        for codec in Codec::ALL {
            assert_eq!(Codec::from_name(&codec.name().to_lowercase()), Some(codec));
        }
    }
}

//! What vmesh plays before recording: the greeting, then the beep.
//!
//! Sans-IO: [`Playback::poll`] is asked, with the current `Instant`, for
//! the next RTP packet that is due; the record loop sends it. Frames of
//! 20 ms are encoded in the call's codec and paced on a fixed grid by
//! [`Pacer`] (no drift, no bursts), with one SSRC, continuous sequence
//! numbers and timestamps and the marker bit on the first packet
//! ([`RtpPacketizer`]). A DTMF digit during the greeting skips to the beep,
//! as callers expect from Asterisk and FreeSWITCH; the beep itself always
//! plays, so the caller knows the recording has started.

use std::time::Instant;

use super::codec::Codec;
use super::encoder::Encoder;
use super::send::{Pacer, PromptPlayer, RtpPacketizer, PTIME};
use crate::audio::AudioError;

/// Where the playback is.
enum Phase {
    Greeting,
    Beep,
    Done,
}

/// The greeting and the beep of one call, as RTP.
pub struct Playback {
    phase: Phase,
    greeting: PromptPlayer,
    beep: PromptPlayer,
    encoder: Encoder,
    packetizer: RtpPacketizer,
    pacer: Pacer,
    frame: Vec<u8>,
    packet: Vec<u8>,
}

impl Playback {
    /// Prepares `greeting` then `beep` (PCM at the codec's audio rate) for
    /// the peer's `payload_type`, starting at `start`.
    pub fn new(
        greeting: Vec<i16>,
        beep: Vec<i16>,
        codec: Codec,
        payload_type: u8,
        start: Instant,
    ) -> Result<Playback, AudioError> {
        let encoder = Encoder::new(codec)?;
        let rate = codec.audio_rate();
        let packetizer = RtpPacketizer::with_random_start(
            &mut rand::rng(),
            payload_type,
            encoder.frame_timestamp_step(),
        );
        Ok(Playback {
            phase: Phase::Greeting,
            greeting: PromptPlayer::new(greeting, rate),
            beep: PromptPlayer::new(beep, rate),
            encoder,
            packetizer,
            pacer: Pacer::new(start, PTIME),
            frame: Vec::with_capacity(512),
            packet: Vec::with_capacity(512),
        })
    }

    /// True once the beep has been sent: recording starts.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// When the next packet is due; `None` once done.
    pub fn next_due(&self) -> Option<Instant> {
        (!self.is_done()).then(|| self.pacer.next_due())
    }

    /// A digit from the caller: during the greeting, skip to the beep.
    pub fn on_digit(&mut self) {
        if matches!(self.phase, Phase::Greeting) {
            self.greeting.skip();
            self.phase = Phase::Beep;
        }
    }

    /// The next packet if one is due at `now`. Call again until `None`.
    pub fn poll(&mut self, now: Instant) -> Result<Option<&[u8]>, AudioError> {
        if self.pacer.next_due() > now {
            return Ok(None);
        }
        loop {
            let player = match self.phase {
                Phase::Greeting => &mut self.greeting,
                Phase::Beep => &mut self.beep,
                Phase::Done => return Ok(None),
            };
            match player.next_frame() {
                Some(frame) => {
                    self.frame.clear();
                    self.encoder.encode(frame, &mut self.frame)?;
                    break;
                }
                None => {
                    self.phase = match self.phase {
                        Phase::Greeting => Phase::Beep,
                        _ => Phase::Done,
                    };
                }
            }
        }
        self.packetizer.packet(&self.frame, &mut self.packet);
        let skipped = self.pacer.sent(now);
        self.packetizer.skip_frames(skipped);
        Ok(Some(&self.packet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tone(len: usize) -> Vec<i16> {
        (0..len).map(|i| ((i % 16) as i16 - 8) * 1000).collect()
    }

    /// Drives a playback with an injected clock, returning each packet's
    /// send time and bytes.
    fn run(mut p: Playback, start: Instant, digit_at: Option<usize>) -> Vec<(Duration, Vec<u8>)> {
        let mut sent = Vec::new();
        let mut now = start;
        while let Some(due) = p.next_due() {
            now = now.max(due);
            while let Some(packet) = p.poll(now).expect("encode") {
                sent.push((now - start, packet.to_vec()));
                if Some(sent.len()) == digit_at {
                    p.on_digit();
                }
            }
        }
        sent
    }

    #[test]
    fn greeting_then_beep_paced_at_20_ms_with_continuous_headers() {
        let start = Instant::now();
        // 1 s greeting and 0.25 s beep at 8 kHz: 50 + 13 packets (the
        // beep's last frame is padded).
        let p = Playback::new(tone(8000), tone(2000), Codec::Pcmu, 0, start).expect("pcmu");
        let sent = run(p, start, None);
        assert_eq!(sent.len(), 63);
        for (i, (at, packet)) in sent.iter().enumerate() {
            assert_eq!(*at, PTIME * i as u32, "packet {i} not on the 20 ms grid");
            assert_eq!(packet.len(), 12 + 160);
            assert_eq!(packet[1] >> 7, u8::from(i == 0), "marker on packet {i}");
            assert_eq!(packet[1] & 0x7F, 0);
        }
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        for pair in sent.windows(2) {
            assert_eq!(seq(&pair[1].1), seq(&pair[0].1).wrapping_add(1));
            assert_eq!(ts(&pair[1].1), ts(&pair[0].1).wrapping_add(160));
            assert_eq!(pair[1].1[8..12], pair[0].1[8..12], "one SSRC");
        }
    }

    #[test]
    fn a_digit_skips_the_greeting_but_not_the_beep() {
        let start = Instant::now();
        let p = Playback::new(tone(8000 * 5), tone(2000), Codec::Pcmu, 0, start).expect("pcmu");
        let sent = run(p, start, Some(10));
        // 10 greeting packets, then the whole beep (13 packets).
        assert_eq!(sent.len(), 23);
    }

    #[test]
    fn opus_frames_step_the_48_khz_clock() {
        let start = Instant::now();
        let codec = Codec::from_profile("OPUS", 16_000).expect("opus");
        let p = Playback::new(tone(16_000), tone(4000), codec, 111, start).expect("opus");
        let sent = run(p, start, None);
        assert_eq!(sent.len(), 50 + 13);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(ts(&sent[1].1).wrapping_sub(ts(&sent[0].1)), 960);
        assert_eq!(sent[0].1[1] & 0x7F, 111);
    }
}

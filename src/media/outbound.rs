//! What vmesh sends the caller: prompts, and between them a stream that
//! keeps the media path alive.
//!
//! One outgoing RTP stream per call, on a fixed 20 ms pacing grid
//! ([`Pacer`]): one SSRC, continuous sequence numbers, and timestamps that
//! follow the grid's slots (slot `n` carries `ts0 + n × frame`), so the
//! stream's time never drifts from the wall clock and a late wake-up skips
//! slots instead of bursting (RFC 3550 §5.1).
//!
//! - **Prompts** are a queue of PCM clips ([`Prompt`]) played back to back
//!   at the codec's rate (converted when a clip is of another rate, so a
//!   stored message plays on any call), each frame on its slot exactly. A
//!   clip may allow barge-in: [`Outbound::barge_in`] (a digit) stops it and
//!   the barge-in clips queued after it, never one that does not allow it
//!   (the beep after a greeting).
//! - **Keep-alive**: with nothing to play, PBXs and SBCs still expect
//!   media (Asterisk's `rtp_timeout` hangs up a call whose RTP stops), but
//!   none needs a packet in every frame of silence. The stream goes on
//!   with RFC 3389 comfort noise when the caller offered CN at the codec's
//!   clock (one CN packet as the silence starts, then one per keep-alive
//!   interval), else with encoded silence: in every slot until the encoder
//!   has settled on a frame (the far end hears the prompt end in clean
//!   silence), then that frame once per interval, each packet after a gap
//!   with the marker (silence suppression, RFC 3551 §4.1). The interval is
//!   `media.keepalive_ms`, 200 ms by default; one slot sends every frame.
//!   Its packets may leave up to [`KEEPALIVE_EARLY`] before or
//!   [`KEEPALIVE_LATE`] after their slot, so that a packet from the caller
//!   (which wakes the call anyway) sends the due one and a streaming
//!   caller costs one wake per packet, not two; their timestamps stay the
//!   slot's.
//! - Nothing is sent while [`Outbound::set_sending`] is off: before the
//!   call is confirmed (a spoofed INVITE must not make vmesh a reflector)
//!   and while our direction is `recvonly`/`inactive` (RFC 3264 §5.1).
//!
//! Sans-IO: [`Outbound::poll`] is asked, with `now`, for the next datagram
//! that is due; [`Outbound::poll_timeout`] says when to ask again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::{resample, AudioError};

use super::codec::Codec;
use super::encoder::Encoder;
use super::send::{Pacer, PromptPlayer, RtpPacketizer, MAX_BURST, PTIME};

/// How early a keep-alive packet may leave when something else woke the
/// call: half a frame, so with the window below every 20 ms interval of a
/// caller's packets meets exactly one slot.
pub const KEEPALIVE_EARLY: Duration = Duration::from_millis(10);
/// How late a keep-alive packet may leave before a timer sends it.
pub const KEEPALIVE_LATE: Duration = Duration::from_millis(10);
/// The comfort-noise level we state: RFC 3389 §3.1 counts it in −dBov,
/// and our silence is digital silence, the lowest level there is.
const CN_LEVEL: u8 = 127;
/// Identical encoded silence frames after which the encoder is no longer
/// run and the last frame is repeated.
const SILENCE_SETTLED: u8 = 3;
/// Silence frames encoded after which the last one is repeated even if
/// the frames still differ: an ADPCM encoder (G.722) fed digital silence
/// never settles on one frame, it wanders among idle codes, and running it
/// for every keep-alive packet would cost more than all the rest of the
/// call. Half a second in, its frames are idle codes whose repetition
/// decodes to silence (about -60 dBFS; see the tests).
const SILENCE_MAX_ENCODED: u8 = 25;

/// Names a queued prompt in the events about it.
pub type PromptId = u64;

/// A clip to play: PCM at `rate` Hz, mono.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The samples, shared: the greeting and the beep every call plays are
    /// decoded once and handed to each call without a copy.
    pub pcm: Arc<[i16]>,
    /// Their rate in Hz.
    pub rate: u32,
    /// Whether a digit stops it.
    pub barge_in: bool,
}

/// How a prompt left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptEnd {
    /// Its last frame was sent.
    Finished,
    /// A digit, or [`Outbound::clear`], stopped it.
    Interrupted,
}

struct Playing {
    id: PromptId,
    player: PromptPlayer,
    barge_in: bool,
}

/// The keep-alive between prompts.
enum KeepAlive {
    /// RFC 3389 comfort noise on this payload type.
    ComfortNoise { payload_type: u8 },
    /// Encoded silence in the call's codec, cached once it settles: the
    /// last frame, how many times in a row it came out the same, and how
    /// many frames were encoded since the silence began.
    Silence {
        last: Vec<u8>,
        repeats: u8,
        encoded: u8,
    },
}

/// The outgoing stream of one call; see the module documentation.
pub struct Outbound {
    codec: Codec,
    payload_type: u8,
    encoder: Encoder,
    packetizer: RtpPacketizer,
    pacer: Pacer,
    /// Timestamp of slot 0.
    ts0: u32,
    /// The next slot to fill.
    slot: u64,
    sending: bool,
    queue: VecDeque<(PromptId, Prompt)>,
    playing: Option<Playing>,
    next_id: PromptId,
    ended: VecDeque<(PromptId, PromptEnd)>,
    keepalive: KeepAlive,
    /// Whether the last packet sent was comfort noise (the next audio
    /// packet then carries the marker, RFC 3389 §4).
    in_comfort_noise: bool,
    /// Slots from one keep-alive packet to the next once silence settled.
    keepalive_slots: u64,
    frame: Vec<u8>,
    sent_payload: usize,
    last_sent_slot: Option<u64>,
}

impl Outbound {
    /// A stream in `codec` on the caller's `payload_type`, with comfort
    /// noise on `comfort_noise` if it offered CN at the codec's clock and
    /// a keep-alive packet every `keepalive_every` (in whole frames, at
    /// least one); its grid starts at `start`; SSRC and initial numbers
    /// from `rng`.
    pub fn new(
        codec: Codec,
        payload_type: u8,
        comfort_noise: Option<u8>,
        keepalive_every: Duration,
        start: Instant,
        rng: &mut impl rand::Rng,
    ) -> Result<Outbound, AudioError> {
        let encoder = Encoder::new(codec)?;
        let ts0 = rng.random();
        let packetizer =
            RtpPacketizer::with_random_start(rng, payload_type, codec.frame_timestamp_step());
        Ok(Outbound {
            codec,
            payload_type,
            encoder,
            packetizer,
            pacer: Pacer::new(start, PTIME),
            ts0,
            slot: 0,
            sending: false,
            queue: VecDeque::new(),
            playing: None,
            next_id: 1,
            ended: VecDeque::new(),
            keepalive: keepalive(comfort_noise),
            in_comfort_noise: false,
            keepalive_slots: (keepalive_every.as_nanos() / PTIME.as_nanos()).max(1) as u64,
            frame: Vec::with_capacity(512),
            sent_payload: 0,
            last_sent_slot: None,
        })
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.packetizer.ssrc()
    }

    /// When slot 0 was due and its timestamp, and the RTP clock: how the
    /// stream's timestamps relate to time (for RTCP sender reports).
    pub fn clock(&self) -> (Instant, u32, u32) {
        (self.pacer.start(), self.ts0, self.codec.rtp_clock_rate())
    }

    /// Turns sending on (the call is confirmed and we may send) or off.
    pub fn set_sending(&mut self, on: bool) {
        self.sending = on;
    }

    /// A re-INVITE's codec, payload type and comfort noise: the stream goes
    /// on in the new codec (a new encoder; its state is per codec).
    pub fn update(
        &mut self,
        codec: Codec,
        payload_type: u8,
        comfort_noise: Option<u8>,
    ) -> Result<(), AudioError> {
        if codec != self.codec {
            self.encoder = Encoder::new(codec)?;
            if codec.rtp_clock_rate() != self.codec.rtp_clock_rate() {
                // Another clock: the slots' timestamps restart from the
                // current slot (RFC 3550 §5.1: one clock per stream).
                self.ts0 = self
                    .ts0
                    .wrapping_add(
                        (self.slot as u32).wrapping_mul(self.codec.frame_timestamp_step()),
                    )
                    .wrapping_sub((self.slot as u32).wrapping_mul(codec.frame_timestamp_step()));
                self.packetizer.mark_next();
            }
            self.codec = codec;
        }
        self.payload_type = payload_type;
        self.keepalive = keepalive(comfort_noise);
        Ok(())
    }

    /// Queues a prompt; returns its id, named again when it ends.
    pub fn play(&mut self, prompt: Prompt) -> PromptId {
        if !self.is_playing() {
            if let Some(last) = self.last_sent_slot {
                // The keep-alive may have moved the grid on by its
                // interval: the prompt starts at the next slot.
                self.slot = self.slot.min(last + 1);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back((id, prompt));
        id
    }

    /// Whether a prompt is playing or queued.
    pub fn is_playing(&self) -> bool {
        self.playing.is_some() || !self.queue.is_empty()
    }

    /// A digit: stops the playing prompt and the queued ones after it if
    /// they allow barge-in, up to the first that does not. True if any
    /// prompt was stopped.
    pub fn barge_in(&mut self) -> bool {
        let mut stopped = false;
        if let Some(playing) = self.playing.take_if(|p| p.barge_in) {
            self.ended.push_back((playing.id, PromptEnd::Interrupted));
            stopped = true;
        }
        while self.playing.is_none() && self.queue.front().is_some_and(|(_, p)| p.barge_in) {
            if let Some((id, _)) = self.queue.pop_front() {
                self.ended.push_back((id, PromptEnd::Interrupted));
                stopped = true;
            }
        }
        stopped
    }

    /// Stops every prompt, playing and queued.
    pub fn clear(&mut self) {
        if let Some(playing) = self.playing.take() {
            self.ended.push_back((playing.id, PromptEnd::Interrupted));
        }
        while let Some((id, _)) = self.queue.pop_front() {
            self.ended.push_back((id, PromptEnd::Interrupted));
        }
    }

    /// The next prompt that finished or was stopped.
    pub fn poll_ended(&mut self) -> Option<(PromptId, PromptEnd)> {
        self.ended.pop_front()
    }

    /// Payload octets of the packet [`Outbound::poll`] last wrote.
    pub fn last_payload_len(&self) -> usize {
        self.sent_payload
    }

    /// When [`Outbound::poll`] must be asked again at the latest.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.sending {
            return None;
        }
        let due = self.pacer.due(self.slot);
        Some(if self.is_playing() {
            due
        } else {
            due + KEEPALIVE_LATE
        })
    }

    /// Writes into `out` the packet due at `now`, if any. Call again until
    /// it returns false. With `early` (a packet from the caller woke the
    /// call), a keep-alive packet due within [`KEEPALIVE_EARLY`] goes now;
    /// a timer's wake-up sends only what is due.
    pub fn poll(
        &mut self,
        now: Instant,
        early: bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, AudioError> {
        if !self.sending {
            return Ok(false);
        }
        let playing = self.is_playing();
        let due = self.pacer.due(self.slot);
        let ready = due <= now || (!playing && early && due <= now + KEEPALIVE_EARLY);
        if !ready {
            return Ok(false);
        }
        // Far behind (the call's task was starved): skip to the current
        // slot rather than burst (see `Pacer::sent`).
        let current = self.slot_at(now);
        if current >= self.slot + MAX_BURST {
            self.slot = current;
            self.packetizer.mark_next();
        }
        let timestamp = self
            .ts0
            .wrapping_add((self.slot as u32).wrapping_mul(self.codec.frame_timestamp_step()));
        self.frame.clear();
        // Audio after a gap in the stream starts a talkspurt.
        let after_gap = self.last_sent_slot.is_some_and(|last| self.slot > last + 1);
        self.last_sent_slot = Some(self.slot);
        let payload_type = if self.next_prompt_frame()? {
            if self.in_comfort_noise || after_gap {
                self.packetizer.mark_next();
                self.in_comfort_noise = false;
            }
            self.slot += 1;
            self.payload_type
        } else {
            match &mut self.keepalive {
                KeepAlive::ComfortNoise { payload_type } => {
                    self.frame.push(CN_LEVEL);
                    self.in_comfort_noise = true;
                    self.slot += self.keepalive_slots;
                    *payload_type
                }
                KeepAlive::Silence {
                    last,
                    repeats,
                    encoded,
                } => {
                    let settled = |repeats: u8, encoded: u8| {
                        repeats >= SILENCE_SETTLED || encoded >= SILENCE_MAX_ENCODED
                    };
                    if after_gap {
                        self.packetizer.mark_next();
                    }
                    if settled(*repeats, *encoded) {
                        self.frame.extend_from_slice(last);
                    } else {
                        let zeros = [0i16; 960];
                        let samples = zeros.get(..self.codec.frame_samples()).unwrap_or(&zeros);
                        self.encoder.encode(samples, &mut self.frame)?;
                        *encoded += 1;
                        if *last == self.frame {
                            *repeats += 1;
                        } else {
                            last.clear();
                            last.extend_from_slice(&self.frame);
                            *repeats = 0;
                        }
                    }
                    self.slot += if settled(*repeats, *encoded) {
                        self.keepalive_slots
                    } else {
                        1
                    };
                    self.payload_type
                }
            }
        };
        self.packetizer
            .write(payload_type, timestamp, &self.frame, out);
        self.sent_payload = self.frame.len();
        Ok(true)
    }

    /// Encodes the next frame of the prompts into `self.frame`; false when
    /// there is none (keep-alive then).
    fn next_prompt_frame(&mut self) -> Result<bool, AudioError> {
        loop {
            if self.playing.is_none() {
                let Some((id, prompt)) = self.queue.pop_front() else {
                    return Ok(false);
                };
                let rate = self.codec.audio_rate();
                let pcm = if prompt.rate == rate {
                    prompt.pcm
                } else {
                    match resample(&prompt.pcm, prompt.rate, rate) {
                        Ok(pcm) => pcm.into(),
                        Err(_) => {
                            self.ended.push_back((id, PromptEnd::Interrupted));
                            continue;
                        }
                    }
                };
                self.playing = Some(Playing {
                    id,
                    player: PromptPlayer::new(pcm, rate),
                    barge_in: prompt.barge_in,
                });
                if let KeepAlive::Silence {
                    repeats, encoded, ..
                } = &mut self.keepalive
                {
                    *repeats = 0;
                    *encoded = 0;
                }
            }
            let Some(playing) = self.playing.as_mut() else {
                return Ok(false);
            };
            if let Some(frame) = playing.player.next_frame() {
                self.encoder.encode(frame, &mut self.frame)?;
                if playing.player.is_finished() {
                    self.ended.push_back((playing.id, PromptEnd::Finished));
                    self.playing = None;
                }
                return Ok(true);
            }
            // An empty clip.
            self.ended.push_back((playing.id, PromptEnd::Finished));
            self.playing = None;
        }
    }

    fn slot_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.pacer.start()).as_nanos();
        u64::try_from(elapsed / PTIME.as_nanos()).unwrap_or(u64::MAX)
    }
}

fn keepalive(comfort_noise: Option<u8>) -> KeepAlive {
    match comfort_noise {
        Some(payload_type) => KeepAlive::ComfortNoise { payload_type },
        None => KeepAlive::Silence {
            last: Vec::new(),
            repeats: 0,
            encoded: 0,
        },
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;

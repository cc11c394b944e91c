//! Decoding the jitter buffer's packets in timeline order, with loss
//! concealment and rate conversion, into the timeline's ring.
//!
//! G.722 and Opus decoders carry state from one packet to the next, and
//! Opus conceals a loss by extrapolating what it decoded last, so packets
//! must reach the decoder in order, with each loss in its place. Packets
//! are therefore held, still encoded, once the jitter buffer has placed
//! them, and decoded:
//! - at once when a packet continues the stream just decoded (the next
//!   sequence number of the same SSRC) and none waits before it: the
//!   usual case, decoded straight from the datagram, neither waiting nor
//!   copied;
//! - otherwise when play-out reaches it, since a packet missing before it
//!   may still arrive; if it did not, the hole it leaves is concealed
//!   (RFC 3550 A.3 sequence gaps mark real losses; a timestamp jump
//!   without one is silence suppression and stays silent).
//!
//! The timeline runs at the rate chosen when the call was answered. A
//! codec of another rate after a re-INVITE (G.711 at 8 kHz in a 16 kHz
//! recording, say) is converted with the streaming band-limited
//! [`Resampler`] of `crate::audio`, fed with the stream's holes as
//! silence so that its output stays aligned with the timeline. The
//! resampler holds back up to 20 ms of audio until more arrives; the
//! audio held when a resampled stream pauses for longer than the jitter
//! delay is played out as silence, and the rest at the end of the call.
//!
//! RFC 4733 telephone-events share the audio's SSRC and sequence numbers,
//! so the audio that a key press replaces looks like a loss here: Opus
//! then conceals its first 120 ms (the last speech fading out) and the
//! rest is silence, as for G.711.
//!
//! Buffers are reused: held payloads go back to a pool once decoded, and
//! the PCM scratch vectors keep their capacity, so decoding does not
//! allocate once the call is warm.

use std::collections::VecDeque;
use std::ops::Range;

use crate::audio::Resampler;

use super::codec::Codec;
use super::decoder::Decoder;
use super::ring::Ring;

/// Packets that may wait, encoded, for their turn at once.
pub(super) const MAX_HELD: usize = 128;
/// Concealment beyond this much of a gap is silence: Opus concealment
/// fades out within a few frames anyway.
const MAX_CONCEAL_MS: u64 = 120;
/// Zeros fed to a resampler for the holes of a stream.
static ZEROS: [i16; 1024] = [0; 1024];

/// Where a packet went on the timeline and in its stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    /// Where its audio starts on the timeline.
    pub(super) position: u64,
    /// How long it lasts on the timeline.
    pub(super) samples: u64,
    pub(super) ssrc: u32,
    /// Its extended sequence number (RFC 3550 A.1) within its stream.
    pub(super) ext_seq: u64,
    pub(super) codec: Codec,
}

/// A placed packet waiting to be decoded.
struct Held {
    placed: Placed,
    payload: Vec<u8>,
}

/// The last packet decoded, which the next one continues or not.
#[derive(Debug, Clone, Copy)]
struct Last {
    ssrc: u32,
    ext_seq: u64,
    end: u64,
}

/// A resampler converting one codec's rate to the timeline's.
struct Resampling {
    from: u32,
    resampler: Resampler,
    /// The timeline position the next input sample belongs at.
    next_in: u64,
    /// The timeline position of the next output sample.
    out_pos: u64,
}

/// What became of the packets decoded, for the buffer's statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct DecodeStats {
    /// Payloads the codec refused (a malformed Opus packet); their time
    /// was concealed like a loss.
    pub(super) undecodable: u64,
    /// Holes filled by the codec's loss concealment.
    pub(super) concealed: u64,
}

/// The decoding stage of one call's jitter buffer; see the module docs.
pub(super) struct Decoding {
    rate: u32,
    held: VecDeque<Held>,
    spare: Vec<Vec<u8>>,
    last: Option<Last>,
    decoder: Option<Decoder>,
    resampling: Option<Resampling>,
    pcm: Vec<i16>,
    resampled: Vec<i16>,
    stats: DecodeStats,
}

impl Decoding {
    /// An empty stage for a timeline at `rate` Hz.
    pub(super) fn new(rate: u32) -> Decoding {
        Decoding {
            rate,
            // Grown to what the call holds (a few packets at a steady
            // pace), not reserved for the most it may hold: thousands of
            // calls each keep their queues.
            held: VecDeque::new(),
            spare: Vec::new(),
            last: None,
            decoder: None,
            resampling: None,
            // They grow to the call's packets (320 bytes for 20 ms of
            // G.711) rather than to the longest Opus packet at 48 kHz.
            pcm: Vec::new(),
            resampled: Vec::new(),
            stats: DecodeStats::default(),
        }
    }

    /// The end of the audio decoded so far: nothing may be placed before it.
    pub(super) fn decoded_end(&self) -> Option<u64> {
        self.last.map(|last| last.end)
    }

    /// The stage's counters.
    pub(super) fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Whether the holding queue is full; the caller then decodes its
    /// earliest packet before holding another.
    pub(super) fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD
    }

    /// Takes a placed packet: decodes it at once, straight from `payload`,
    /// when it continues the decoded stream and nothing waits before it
    /// (the usual case); else holds it, copying its payload into a pooled
    /// buffer, and decodes what became ready.
    pub(super) fn admit(
        &mut self,
        placed: Placed,
        payload: &[u8],
        ring: &mut Ring,
        window: Range<u64>,
    ) {
        if self.held.is_empty() && self.continues(&placed) {
            self.decode(placed, payload, ring, window);
            return;
        }
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(payload);
        let at = self
            .held
            .iter()
            .rposition(|h| h.placed.position <= placed.position)
            .map_or(0, |i| i + 1);
        self.held.insert(
            at,
            Held {
                placed,
                payload: buffer,
            },
        );
        self.decode_ready(ring, window);
    }

    /// Whether `placed` follows the last packet decoded in its stream
    /// without a gap in sequence numbers: nothing can still arrive before
    /// it.
    fn continues(&self, placed: &Placed) -> bool {
        self.last
            .is_some_and(|last| placed.ssrc == last.ssrc && placed.ext_seq == last.ext_seq + 1)
    }

    /// Decodes the held packets that continue the decoded stream without
    /// a gap in sequence numbers: nothing can still arrive before them.
    pub(super) fn decode_ready(&mut self, ring: &mut Ring, window: Range<u64>) {
        while self.held.front().is_some_and(|h| self.continues(&h.placed)) {
            self.decode_front(ring, window.clone());
        }
    }

    /// Decodes every held packet that starts before `target`, concealing
    /// what is missing between them, then those that follow on at once.
    pub(super) fn decode_before(&mut self, target: u64, ring: &mut Ring, window: Range<u64>) {
        while self
            .held
            .front()
            .is_some_and(|h| h.placed.position < target)
        {
            self.decode_front(ring, window.clone());
        }
        self.decode_ready(ring, window);
    }

    /// The call is over: decodes everything held and lets the resampler
    /// give up what it holds back. Returns where the written audio ends.
    pub(super) fn finish(&mut self, ring: &mut Ring, window: Range<u64>) -> u64 {
        self.decode_before(u64::MAX, ring, window.clone());
        let end = self.decoded_end().unwrap_or(0);
        self.flush_resampler(ring, window)
            .map_or(end, |out_end| end.max(out_end))
    }

    /// Decodes the earliest held packet into the ring.
    pub(super) fn decode_front(&mut self, ring: &mut Ring, window: Range<u64>) {
        let Some(held) = self.held.pop_front() else {
            return;
        };
        self.decode(held.placed, &held.payload, ring, window);
        if self.spare.len() < MAX_HELD {
            self.spare.push(held.payload);
        }
    }

    /// Decodes one packet into the ring, concealing the loss before it.
    fn decode(&mut self, packet: Placed, payload: &[u8], ring: &mut Ring, window: Range<u64>) {
        let same_decoder = self.decoder.as_ref().map(Decoder::codec) == Some(packet.codec);
        if !same_decoder {
            match Decoder::new(packet.codec) {
                Ok(decoder) => self.decoder = Some(decoder),
                Err(_) => {
                    self.stats.undecodable += 1;
                    return;
                }
            }
        }
        let source_rate = packet.codec.audio_rate();
        let mut pcm = std::mem::take(&mut self.pcm);

        // A sequence gap in the same stream, through the same decoder, is
        // a real loss: conceal it (RFC 3550 A.3).
        if let Some(last) = self.last.filter(|l| l.end < packet.position) {
            let lost = last.ssrc == packet.ssrc && packet.ext_seq > last.ext_seq + 1;
            if lost && same_decoder {
                let hole =
                    (packet.position - last.end).min(MAX_CONCEAL_MS * u64::from(self.rate) / 1000);
                let samples = to_rate(hole, self.rate, source_rate);
                pcm.clear();
                if let Some(decoder) = self.decoder.as_mut() {
                    if decoder.conceal(samples, &mut pcm).is_ok() {
                        self.stats.concealed += 1;
                        self.emit(last.end, source_rate, &pcm, ring, window.clone());
                    }
                }
            }
        }

        pcm.clear();
        let decoded = match self.decoder.as_mut() {
            Some(decoder) => match decoder.decode(payload, &mut pcm) {
                Ok(()) => true,
                Err(_) => {
                    // A corrupted packet is a lost one.
                    pcm.clear();
                    let samples = to_rate(packet.samples, self.rate, source_rate);
                    decoder.conceal(samples, &mut pcm).is_ok()
                }
            },
            None => false,
        };
        if !decoded || pcm.is_empty() {
            self.stats.undecodable += 1;
        }
        self.emit(packet.position, source_rate, &pcm, ring, window);
        self.pcm = pcm;
        self.last = Some(Last {
            ssrc: packet.ssrc,
            ext_seq: packet.ext_seq,
            end: packet.position + packet.samples,
        });
    }

    /// Puts decoded audio of `source_rate` on the timeline at `position`:
    /// directly at the timeline's rate, else through the resampler.
    fn emit(
        &mut self,
        position: u64,
        source_rate: u32,
        pcm: &[i16],
        ring: &mut Ring,
        window: Range<u64>,
    ) {
        if source_rate == self.rate {
            // Back at the timeline's rate: the resampled stretch is over.
            self.flush_resampler(ring, window.clone());
            ring.write(position, pcm, window);
            return;
        }
        let fresh = self.resampling.as_ref().is_none_or(|r| {
            r.from != source_rate || r.next_in > position || position - r.next_in > ring.len()
        });
        if fresh {
            self.flush_resampler(ring, window.clone());
            let Ok(resampler) = Resampler::new(source_rate, self.rate) else {
                self.resampling = None;
                return;
            };
            self.resampling = Some(Resampling {
                from: source_rate,
                resampler,
                next_in: position,
                out_pos: position,
            });
        }
        let Some(r) = self.resampling.as_mut() else {
            return;
        };
        self.resampled.clear();
        // The stream's holes go through as silence, keeping it aligned.
        let mut gap = to_rate(position - r.next_in, self.rate, source_rate);
        let mut ok = true;
        while gap > 0 && ok {
            let run = gap.min(ZEROS.len());
            ok = r
                .resampler
                .process(&ZEROS[..run], &mut self.resampled)
                .is_ok();
            gap -= run;
        }
        ok = ok && r.resampler.process(pcm, &mut self.resampled).is_ok();
        if !ok {
            self.resampling = None;
            return;
        }
        r.next_in = position + to_rate(pcm.len() as u64, source_rate, self.rate) as u64;
        ring.write(r.out_pos, &self.resampled, window);
        r.out_pos += self.resampled.len() as u64;
    }

    /// Ends the current resampled stretch, writing what the resampler
    /// held back; returns where its output ends.
    fn flush_resampler(&mut self, ring: &mut Ring, window: Range<u64>) -> Option<u64> {
        let mut r = self.resampling.take()?;
        self.resampled.clear();
        if r.resampler.flush(&mut self.resampled).is_ok() {
            ring.write(r.out_pos, &self.resampled, window);
            r.out_pos += self.resampled.len() as u64;
        }
        Some(r.out_pos)
    }
}

/// `samples` at rate `from` expressed at rate `to`.
fn to_rate(samples: u64, from: u32, to: u32) -> usize {
    let scaled = u128::from(samples) * u128::from(to) / u128::from(from.max(1));
    usize::try_from(scaled).unwrap_or(usize::MAX)
}

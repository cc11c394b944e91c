//! The sans-IO receive path of one call: datagram in, events and PCM out.
//!
//! [`RtpReceiver`] owns no socket and reads no clock. The socket layer hands
//! it each datagram with its source and arrival time, and polls it for the
//! audio that is due; tests drive it with made-up datagrams and instants.
//! Per packet it does a header parse, a few comparisons and a decode into a
//! ring allocated once, with the call's first audio: no allocation, no
//! lock, no system call.
//!
//! Media is taken only from the caller's source ([`super::source`]: the
//! SDP's address at once, a NATed one after probation, never a stranger
//! once the caller sends), and RTCP that reaches the RTP port is told
//! apart (RFC 5761 §4) rather than decoded as audio.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::warn;

use super::codec::Codec;
use super::dtmf::DtmfDetector;
use super::jitter::{Insert, JitterBuffer};
use super::packet::{classify, Kind, RtpDatagram};
use super::sdp::Negotiated;
use super::source::{MediaSource, Verdict};

/// What became of one datagram that arrived on the call's RTP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// An RTP packet from the caller's source, placed or counted.
    Media(Accepted),
    /// An RTCP packet (RFC 5761 demultiplexing): for the RTCP session
    /// when RTCP is multiplexed, never audio.
    Rtcp,
    /// Dropped: not RTP, from a stranger, or a source on probation.
    Dropped,
}

/// An RTP packet taken from the caller, for the call's RTCP statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Its synchronization source.
    pub ssrc: u32,
    /// Its sequence number.
    pub sequence_number: u16,
    /// Its timestamp.
    pub timestamp: u32,
    /// The RTP clock its timestamps count in.
    pub clock_rate: u32,
    /// The DTMF key it completed, if it was a telephone-event's first end.
    pub digit: Option<char>,
    /// Whether it was the first packet taken from the caller.
    pub first: bool,
}

/// Counters for one call, for logs and the call's record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverStats {
    /// RTP packets accepted from the peer (audio and telephone-event).
    pub received: u64,
    /// Packets the sequence numbers say were sent but never arrived.
    pub lost: u64,
    /// Packets that arrived after their audio was played out.
    pub late: u64,
    /// Packets received twice.
    pub duplicate: u64,
    /// RTP packets from another source than the caller's (see
    /// [`super::source`]), or from a source still on probation.
    pub foreign_source: u64,
    /// RTCP packets that arrived on the RTP port.
    pub rtcp_on_rtp_port: u64,
    /// Times the peer's SSRC changed.
    pub ssrc_changes: u64,
    /// Datagrams that were not valid RTP.
    pub malformed: u64,
    /// Packets of a payload type that was not negotiated.
    pub unknown_payload: u64,
    /// Comfort-noise packets (RFC 3389) from the caller: silence, not
    /// counted as unknown.
    pub comfort_noise: u64,
    /// Packets dropped because play-out was not polled in time.
    pub overflow: u64,
    /// Packets played out before their jitter delay to catch up with a
    /// backlog (the server was starved of CPU and read a burst at once).
    pub caught_up: u64,
    /// DTMF digits reported.
    pub dtmf_digits: u64,
    /// Audio payloads their codec could not decode (invalid Opus packets).
    pub undecodable: u64,
    /// Losses filled by the codec's concealment (Opus) rather than silence.
    pub concealed: u64,
}

/// The static payload type of comfort noise (RFC 3551 §6, RFC 3389).
const COMFORT_NOISE_PT: u8 = 13;

/// The receive side of one call's RTP session.
pub struct RtpReceiver {
    negotiated: Negotiated,
    /// Who may send us media: the SDP's address, or a NATed source after
    /// probation; never a stranger.
    source: MediaSource,
    jitter: JitterBuffer,
    dtmf: DtmfDetector,
    last_rtp_at: Option<Instant>,
    stats: ReceiverStats,
    overflow_logged: bool,
}

impl RtpReceiver {
    /// Starts receiving the session `n` describes, holding audio for
    /// `jitter` after arrival so that reordered packets fall into place.
    ///
    /// The audio comes out at the rate of `n`'s codec for the whole call
    /// ([`RtpReceiver::sample_rate`]): a recording keeps the rate chosen at
    /// answer time, and a codec of another rate negotiated later by a
    /// re-INVITE is resampled to it.
    pub fn new(n: &Negotiated, jitter: Duration) -> Self {
        RtpReceiver {
            negotiated: n.clone(),
            source: MediaSource::new(n.remote_rtp),
            jitter: JitterBuffer::new(jitter, n.codec.audio_rate()),
            dtmf: DtmfDetector::new(),
            last_rtp_at: None,
            stats: ReceiverStats::default(),
            overflow_logged: false,
        }
    }

    /// Applies a re-INVITE's renegotiation: a new codec or payload type takes
    /// effect for the next packet while buffered audio plays out unchanged
    /// (at the same sample rate: see [`RtpReceiver::new`]); a new remote
    /// address re-opens the choice of source (see [`MediaSource::update`]).
    pub fn update(&mut self, n: &Negotiated) {
        self.source.update(n.remote_rtp);
        self.negotiated = n.clone();
    }

    /// The rate of the PCM this receiver emits, in Hz: the audio rate of
    /// the codec it was created for.
    pub fn sample_rate(&self) -> u32 {
        self.jitter.rate()
    }

    /// The session as last negotiated.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Takes one datagram that arrived on the RTP port from `from` at
    /// `now`. Only RTP from the caller's source (see [`super::source`]) is
    /// used; RTCP is told apart and never taken for audio.
    pub fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) -> Inbound {
        match classify(datagram) {
            Kind::Rtp => {}
            Kind::Rtcp => {
                self.stats.rtcp_on_rtp_port += 1;
                return Inbound::Rtcp;
            }
            Kind::Other => {
                self.stats.malformed += 1;
                return Inbound::Dropped;
            }
        }
        let Ok(packet) = RtpDatagram::parse(datagram) else {
            self.stats.malformed += 1;
            return Inbound::Dropped;
        };
        let was_locked = self.source.locked().is_some();
        match self.source.check(from, packet.ssrc, packet.sequence_number) {
            Verdict::Accept => {}
            Verdict::Probation | Verdict::Stranger => {
                self.stats.foreign_source += 1;
                return Inbound::Dropped;
            }
        }
        self.stats.received += 1;
        self.last_rtp_at = Some(now);
        let mut accepted = Accepted {
            ssrc: packet.ssrc,
            sequence_number: packet.sequence_number,
            timestamp: packet.timestamp,
            clock_rate: self.negotiated.codec.rtp_clock_rate(),
            digit: None,
            first: !was_locked && self.stats.received == 1,
        };
        let pt = packet.payload_type;
        if Some(pt) == self.negotiated.telephone_event {
            accepted.digit = self
                .dtmf
                .on_packet(packet.ssrc, packet.timestamp, packet.payload);
            if accepted.digit.is_some() {
                self.stats.dtmf_digits += 1;
            }
            return Inbound::Media(accepted);
        }
        if Some(pt) == self.negotiated.comfort_noise || pt == COMFORT_NOISE_PT {
            // RFC 3389: the caller is silent; its time stays silence.
            self.stats.comfort_noise += 1;
            return Inbound::Media(accepted);
        }
        let Some(codec) = self.codec_for(pt) else {
            self.stats.unknown_payload += 1;
            return Inbound::Media(accepted);
        };
        accepted.clock_rate = codec.rtp_clock_rate();
        let inserted = self.jitter.insert(
            packet.ssrc,
            packet.sequence_number,
            packet.timestamp,
            codec,
            packet.payload,
            now,
        );
        if inserted == Insert::Overflow && !self.overflow_logged {
            // Once per call: the counter in the call's log line says how many.
            self.overflow_logged = true;
            warn!("audio dropped: play-out fell behind the jitter buffer's ring");
        }
        Inbound::Media(accepted)
    }

    /// Emits, in order, the PCM of everything that has waited out the jitter
    /// delay, with concealment (Opus) or silence where packets were lost.
    pub fn poll_audio(&mut self, now: Instant, sink: &mut impl FnMut(&[i16])) {
        self.jitter.poll(now, sink);
    }

    /// When buffered audio becomes due for play-out, if any is buffered.
    pub fn next_release(&self) -> Option<Instant> {
        self.jitter.next_release()
    }

    /// Emits everything still buffered: the call is over.
    pub fn finish(&mut self, sink: &mut impl FnMut(&[i16])) {
        self.jitter.finish(sink);
    }

    /// When the last RTP packet from the peer arrived, for the RTP timeout.
    pub fn last_rtp_at(&self) -> Option<Instant> {
        self.last_rtp_at
    }

    /// The source media is taken from, once one was taken.
    pub fn latched_peer(&self) -> Option<SocketAddr> {
        self.source.locked()
    }

    /// Where our media goes: the source taken, else the SDP's address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.source.destination()
    }

    /// The call's counters so far.
    pub fn stats(&self) -> ReceiverStats {
        let jitter = self.jitter.stats();
        ReceiverStats {
            lost: jitter.lost,
            late: jitter.late,
            duplicate: jitter.duplicate,
            ssrc_changes: jitter.ssrc_changes,
            overflow: jitter.overflow,
            caught_up: jitter.caught_up,
            undecodable: jitter.undecodable,
            concealed: jitter.concealed,
            ..self.stats
        }
    }

    /// The codec a payload type carries: the negotiated one, or a codec on
    /// its static type (G.711, G.722), since some PBXs switch between the
    /// codecs they offered without a re-INVITE and the recording should
    /// not go silent for it.
    fn codec_for(&self, payload_type: u8) -> Option<Codec> {
        if payload_type == self.negotiated.payload_type {
            return Some(self.negotiated.codec);
        }
        Codec::from_static_pt(payload_type)
    }
}

#[cfg(test)]
#[path = "receiver_tests.rs"]
mod tests;

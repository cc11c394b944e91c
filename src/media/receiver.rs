//! The sans-IO receive path of one call: datagram in, events and PCM out.
//!
//! [`RtpReceiver`] owns no socket and reads no clock. The socket layer hands
//! it each datagram with its source and arrival time, and polls it for the
//! audio that is due; tests drive it with made-up datagrams and instants.
//! Per packet it does a header parse, a few comparisons and a decode into a
//! preallocated ring: no allocation, no lock, no system call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::codec::Codec;
use super::dtmf::DtmfDetector;
use super::jitter::JitterBuffer;
use super::packet::RtpDatagram;
use super::sdp::Negotiated;

/// Something the caller must act on, reported as the packet arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF key, reported once per press (RFC 4733).
    Dtmf(char),
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
    /// Packets from another address than the latched peer (RFC 4961).
    pub foreign_source: u64,
    /// Times the peer's SSRC changed.
    pub ssrc_changes: u64,
    /// Datagrams that were not valid RTP.
    pub malformed: u64,
    /// Packets of a payload type that was not negotiated (e.g. comfort noise).
    pub unknown_payload: u64,
    /// Packets dropped because play-out was not polled in time.
    pub overflow: u64,
    /// DTMF digits reported.
    pub dtmf_digits: u64,
    /// Audio payloads their codec could not decode (invalid Opus packets).
    pub undecodable: u64,
    /// Losses filled by the codec's concealment (Opus) rather than silence.
    pub concealed: u64,
}

/// The receive side of one call's RTP session.
pub struct RtpReceiver {
    negotiated: Negotiated,
    /// The peer's address, learnt from its first packet (symmetric RTP,
    /// RFC 4961): NATs and PBXs often send from another address than the
    /// SDP names, and media from anywhere else is not this call's.
    latched: Option<SocketAddr>,
    jitter: JitterBuffer,
    dtmf: DtmfDetector,
    last_rtp_at: Option<Instant>,
    stats: ReceiverStats,
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
            latched: None,
            jitter: JitterBuffer::new(jitter, n.codec.audio_rate()),
            dtmf: DtmfDetector::new(),
            last_rtp_at: None,
            stats: ReceiverStats::default(),
        }
    }

    /// Applies a re-INVITE's renegotiation: a new codec or payload type takes
    /// effect for the next packet while buffered audio plays out unchanged
    /// (at the same sample rate: see [`RtpReceiver::new`]); a new remote
    /// address re-opens latching.
    pub fn update(&mut self, n: &Negotiated) {
        if n.remote_rtp != self.negotiated.remote_rtp {
            self.latched = None;
        }
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

    /// Takes one datagram that arrived from `from` at `now`.
    pub fn handle_datagram(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Option<MediaEvent> {
        let Ok(packet) = RtpDatagram::parse(datagram) else {
            self.stats.malformed += 1;
            return None;
        };
        match self.latched {
            Some(peer) if peer != from => {
                self.stats.foreign_source += 1;
                return None;
            }
            Some(_) => {}
            None => self.latched = Some(from),
        }
        self.stats.received += 1;
        self.last_rtp_at = Some(now);

        if Some(packet.payload_type) == self.negotiated.telephone_event {
            let digit = self
                .dtmf
                .on_packet(packet.ssrc, packet.timestamp, packet.payload)?;
            self.stats.dtmf_digits += 1;
            return Some(MediaEvent::Dtmf(digit));
        }
        let Some(codec) = self.codec_for(packet.payload_type) else {
            self.stats.unknown_payload += 1;
            return None;
        };
        self.jitter.insert(
            packet.ssrc,
            packet.sequence_number,
            packet.timestamp,
            codec,
            packet.payload,
            now,
        );
        None
    }

    /// Emits, in order, the PCM of everything that has waited out the jitter
    /// delay, with concealment (Opus) or silence where packets were lost.
    pub fn poll_audio(&mut self, now: Instant, sink: &mut impl FnMut(&[i16])) {
        self.jitter.poll(now, sink);
    }

    /// Emits everything still buffered: the call is over.
    pub fn finish(&mut self, sink: &mut impl FnMut(&[i16])) {
        self.jitter.finish(sink);
    }

    /// When the last RTP packet from the peer arrived, for the RTP timeout.
    pub fn last_rtp_at(&self) -> Option<Instant> {
        self.last_rtp_at
    }

    /// The address media is latched to, once the first packet came.
    pub fn latched_peer(&self) -> Option<SocketAddr> {
        self.latched
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

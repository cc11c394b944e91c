//! SDP offer/answer for one audio stream (RFC 3264 over RFC 4566 SDP).
//!
//! A PBX's INVITE usually carries an offer: [`negotiate`] picks the first
//! codec in the profile's order that the offer allows (or, with
//! [`negotiate_in_order`] and [`CodecOrder::Offerer`], in the offerer's
//! order), and [`build_answer`] answers with that one codec plus
//! telephone-event (RFC 4733) at the codec's clock rate when offered. An
//! INVITE without SDP is answered with [`build_offer`] in our 200, and the
//! answer that comes back in the ACK goes through [`accept_answer`]. Parsing
//! and writing use the `sdp` crate; this module adds the RFC 3264 rules.

mod compose;
mod negotiate;

use std::net::SocketAddr;

use super::codec::Codec;

pub use crate::config::CodecOrder;
pub use compose::{build_answer, build_offer};
pub use negotiate::{accept_answer, negotiate, negotiate_in_order};

/// The payload type we offer `telephone-event/8000` on (a common dynamic
/// choice), for G.711 and G.722.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// The static payload type of comfort noise, `CN/8000` (RFC 3551 §6).
pub const COMFORT_NOISE_PT: u8 = 13;

/// The payload type we offer `telephone-event/48000` on, for Opus
/// (RFC 4733 §2.1: events share the audio's clock rate).
pub const TELEPHONE_EVENT_48K_PT: u8 = 110;

/// Our telephone-event payload type for a codec's clock rate.
pub const fn telephone_event_pt(codec: Codec) -> u8 {
    match codec.telephone_event_rate() {
        8000 => TELEPHONE_EVENT_PT,
        _ => TELEPHONE_EVENT_48K_PT,
    }
}

/// The outcome of offer/answer: how the peer's audio will reach us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The one audio codec of the session.
    pub codec: Codec,
    /// The payload type the peer uses for `codec` (static or dynamic).
    pub payload_type: u8,
    /// The payload type of RFC 4733 telephone-event at the codec's clock
    /// rate, if the peer offered it.
    pub telephone_event: Option<u8>,
    /// Where the peer receives RTP; `None` when it gave no usable address
    /// (`c=0.0.0.0`, a host name) or port 0. Symmetric RTP latching then
    /// learns the address from the first packet.
    pub remote_rtp: Option<SocketAddr>,
    /// The direction the peer declared (RFC 3264 §6.1), from its side: a
    /// caller that puts us on hold says `SendOnly` or `Inactive`.
    pub direction: Direction,
    /// The packetization time the peer asked for (`a=ptime`, default 20 ms).
    pub ptime_ms: u32,
    /// Position of the chosen audio stream among the offer's `m=` lines.
    pub media_index: usize,
    /// The payload type of RFC 3389 comfort noise at the codec's clock
    /// rate, if the peer offered it (`CN/8000`, static type 13): then our
    /// keep-alive is comfort noise, and the answer lists it.
    pub comfort_noise: Option<u8>,
    /// Whether RTCP shares the RTP port (RFC 5761 `a=rtcp-mux`): an offer
    /// with it is answered with it.
    pub rtcp_mux: bool,
    /// Where the peer receives RTCP when not multiplexed: its `a=rtcp`
    /// (RFC 3605), else its RTP port + 1 (RFC 3550 §11).
    pub remote_rtcp: Option<SocketAddr>,
    /// The offer's other `m=` lines, which the answer must repeat with port
    /// 0 to reject them (RFC 3264 §6).
    pub declined: Vec<DeclinedMedia>,
}

impl Negotiated {
    /// What to expect after sending our own offer (an INVITE without SDP,
    /// RFC 3261 §13.2.1) until the answer arrives in the ACK: the codec we
    /// listed first, on the payload type we offered it on, with our
    /// telephone-event of its clock rate.
    pub fn before_answer(codec: Codec) -> Self {
        Negotiated {
            codec,
            payload_type: codec.payload_type(),
            telephone_event: Some(telephone_event_pt(codec)),
            remote_rtp: None,
            direction: Direction::SendRecv,
            ptime_ms: 20,
            media_index: 0,
            comfort_noise: None,
            rtcp_mux: false,
            remote_rtcp: None,
            declined: Vec::new(),
        }
    }

    /// Whether the peer has put the call on hold (RFC 3264 §8.4): it will
    /// not send us audio it wants heard, so silence is no reason to hang up.
    pub fn on_hold(&self) -> bool {
        matches!(self.direction, Direction::SendOnly | Direction::Inactive)
    }
}

/// An offered `m=` line that we reject, kept to be echoed with port 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclinedMedia {
    /// Its position among the offer's `m=` lines.
    pub index: usize,
    /// The media type (`video`, `audio`, `application`...).
    pub media: String,
    /// The transport protocol, e.g. `RTP/SAVP`.
    pub proto: String,
    /// The offered formats (SDP requires at least one, even when rejected).
    pub formats: Vec<String>,
}

/// A media stream's direction attribute (RFC 4566 §6, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways; the default when no attribute is present.
    #[default]
    SendRecv,
    /// The declaring side only sends (the usual "hold" offer).
    SendOnly,
    /// The declaring side only receives.
    RecvOnly,
    /// Neither side sends.
    Inactive,
}

impl Direction {
    /// The SDP attribute name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses a direction attribute name.
    pub fn from_attribute(key: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str() == key)
    }

    /// The answer's direction for an offer of this one (RFC 3264 §6.1):
    /// an offer to only send is answered by only receiving, and so on.
    pub const fn mirror(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

/// Why an SDP body cannot start our audio session. Every variant but
/// `Parse` maps to `488 Not Acceptable Here`; `Parse` to `400`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not valid SDP.
    #[error("malformed SDP: {0}")]
    Parse(String),
    /// No `m=audio` line with a non-zero port.
    #[error("the SDP has no active audio stream")]
    NoAudio,
    /// Audio is offered only over a transport we do not speak (SRTP, DTLS).
    #[error("audio is offered only over {proto}, we accept RTP/AVP")]
    UnsupportedTransport {
        /// The offered transport protocol.
        proto: String,
    },
    /// Audio is offered, but in no codec we decode.
    #[error("no common codec: offered {offered:?}, we accept {}", .supported.join(", "))]
    NoCommonCodec {
        /// The offered encodings by name (or `PT n` when unnamed).
        offered: Vec<String>,
        /// The codecs we accept, by name, in our order.
        supported: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_direction_mirrors_the_offer() {
        assert_eq!(Direction::SendOnly.mirror(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.mirror(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.mirror(), Direction::Inactive);
        assert_eq!(Direction::SendRecv.mirror(), Direction::SendRecv);
        assert_eq!(
            Direction::from_attribute("sendonly"),
            Some(Direction::SendOnly)
        );
        assert_eq!(Direction::from_attribute("rtpmap"), None);
    }
}

//! Media for one voicemail call: SDP offer/answer, and the RTP receive path
//! that turns the caller's packets into the PCM of the recording.
//!
//! The layers, from the wire up:
//! - [`socket`]: the call's UDP socket on an even port of the profile's range;
//! - [`packet`]: a borrowed view of one RTP datagram;
//! - [`jitter`]: reordering, loss concealment by silence, stream changes;
//! - [`dtmf`]: RFC 4733 telephone-events to digits;
//! - [`receiver`]: the sans-IO receive path joining the three above;
//! - [`record`]: the async loop that drives it until the recording ends;
//! - [`sdp`] and [`codec`]: what was agreed and how to decode it.
//!
//! Everything below `record` is sans-IO: it takes datagrams and `Instant`s
//! and never touches a socket or a clock.

pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod packet;
pub mod receiver;
pub mod record;
pub mod sdp;
pub mod socket;

pub use self::codec::{decode_into, encode_into, Codec};
pub use self::receiver::{MediaEvent, ReceiverStats, RtpReceiver};
pub use self::record::{record, MediaCommand, RecordEnd, RecordLimits};
pub use self::sdp::{
    accept_answer, build_answer, build_offer, negotiate, Direction, Negotiated, SdpError,
};
pub use self::socket::{MediaError, RtpSocket};

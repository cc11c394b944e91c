//! Media for one voicemail call: SDP offer/answer, the RTP receive path that
//! turns the caller's packets into the PCM of the recording, and the send
//! path that plays the greeting and the beep.
//!
//! The layers, from the wire up:
//! - [`socket`]: the call's UDP socket on an even port of the profile's range;
//! - [`packet`]: a borrowed view of one RTP datagram;
//! - [`jitter`]: reordering, placement by timestamp, stream changes, on
//!   [`stream`] (one SSRC's sequence numbers) and [`ring`] (the timeline);
//! - [`decoding`]: in-order decoding, loss concealment, rate conversion;
//! - [`dtmf`]: RFC 4733 telephone-events to digits;
//! - [`receiver`]: the sans-IO receive path joining the above;
//! - [`record`]: the async loop that drives it until the recording ends;
//! - [`sdp`]: what was agreed; [`codec`]: the codecs' RTP identities;
//!   [`decoder`] and [`encoder`]: their stateful per-call conversions;
//! - [`send`]: RTP packetization and 20 ms pacing of what vmesh plays,
//!   [`tone`]: the beep, and [`playback`]: greeting then beep as RTP.
//!
//! Everything below `record` is sans-IO: it takes datagrams and `Instant`s
//! and never touches a socket or a clock.

pub mod codec;
pub mod decoder;
mod decoding;
pub mod dtmf;
pub mod encoder;
pub mod jitter;
pub mod packet;
pub mod playback;
pub mod receiver;
pub mod record;
mod ring;
pub mod sdp;
pub mod send;
pub mod socket;
mod stream;
pub mod tone;

pub use self::codec::{Codec, OpusRate};
pub use self::decoder::Decoder;
pub use self::encoder::Encoder;
pub use self::playback::Playback;
pub use self::receiver::{MediaEvent, ReceiverStats, RtpReceiver};
pub use self::record::{record, MediaCommand, RecordEnd, RecordLimits};
pub use self::sdp::{
    accept_answer, build_answer, build_offer, negotiate, negotiate_in_order, Direction, Negotiated,
    SdpError,
};
pub use self::send::{Pacer, PromptPlayer, RtpPacketizer, MAX_BURST, PTIME};
pub use self::socket::{MediaError, RtpSocket};
pub use self::tone::{beep, BEEP_HZ, BEEP_MS};

//! Media for one voicemail call: SDP offer/answer, the RTP receive path that
//! turns the caller's packets into the PCM of the recording, the send path
//! that plays prompts and keeps the media path alive, and RTCP.
//!
//! The layers, from the wire up:
//! - [`socket`]: the call's UDP sockets, RTP on an even port of the
//!   profile's range and RTCP on the odd one above;
//! - [`packet`]: a borrowed view of one RTP datagram, and RTP/RTCP
//!   demultiplexing (RFC 5761);
//! - [`source`]: who may send the call media (the SDP's address, a NATed
//!   source after probation, never a stranger);
//! - [`jitter`]: reordering, placement by timestamp, stream changes, on
//!   [`stream`] (one SSRC's sequence numbers) and [`ring`] (the timeline);
//! - [`decoding`]: in-order decoding, loss concealment, rate conversion;
//! - [`dtmf`]: RFC 4733 telephone-events to digits, and [`dtmf_info`]:
//!   the SIP INFO bodies that carry digits instead;
//! - [`receiver`]: the sans-IO receive path joining the above;
//! - [`outbound`]: what we send: a prompt queue with barge-in, comfort
//!   noise or silence between prompts, on the 20 ms grid of [`send`];
//!   [`tone`]: the beep;
//! - [`recorder`]: the limits of a recording and its blocks of PCM;
//! - [`rtcp`]: sender and receiver reports, SDES, BYE (RFC 3550 §6);
//! - [`core`]: all of it as one flat sans-IO state machine, and
//!   [`call_media`]: the call's task's handle on it, shared with
//! - `engine`: the threads that receive every call's packets, run its core
//!   and timers and send what it has due, waking the call's task (through
//!   `signal`) only when the core has something for it;
//! - [`port`]: the task's side: it attaches the call to the engine and
//!   waits for its wake-up or the task's own timer;
//! - [`sdp`]: what was agreed; [`codec`]: the codecs' RTP identities;
//!   [`decoder`] and [`encoder`]: their stateful per-call conversions.
//!
//! Everything but `socket`, `engine` and `port` is sans-IO: it takes
//! datagrams and `Instant`s and never touches a socket or a clock.

pub mod call_media;
pub mod codec;
pub mod core;
pub mod decoder;
mod decoding;
pub mod dtmf;
pub mod dtmf_info;
pub mod encoder;
mod engine;
pub mod jitter;
pub mod outbound;
pub mod packet;
pub mod port;
pub mod receiver;
pub mod recorder;
mod ring;
pub mod rtcp;
pub mod sdp;
pub mod send;
mod signal;
pub mod socket;
pub mod source;
mod stream;
pub mod tone;

pub use self::call_media::{
    CallMedia, Channel, DigitSource, MediaEvent, MediaSettings, MediaStats, Transmit,
};
pub use self::codec::{Codec, OpusRate};
pub use self::decoder::Decoder;
pub use self::encoder::Encoder;
pub use self::outbound::{Prompt, PromptEnd, PromptId};
pub use self::port::{Input, MediaPort};
pub use self::receiver::{Inbound, ReceiverStats, RtpReceiver};
pub use self::recorder::{RecordEnd, RecordLimits};
pub use self::sdp::{
    accept_answer, build_answer, build_offer, negotiate, negotiate_in_order, Direction, Negotiated,
    SdpError,
};
pub use self::send::{Pacer, PromptPlayer, RtpPacketizer, MAX_BURST, PTIME};
pub use self::socket::{MediaError, RtpSocket};
pub use self::tone::{beep, shared_beep, BEEP_HZ, BEEP_MS};

//! A borrowed view of one RTP datagram (RFC 3550 §5.1).
//!
//! The fixed 12-byte header is parsed with `rtp::header::Header`. The CSRC
//! list and header extension are skipped by offset instead of being handed
//! to the crate: it collects them into heap vectors (one allocation per
//! datagram on the hot path) and its RFC 8285 element parser indexes past
//! the end of a truncated extension. A recorder needs neither, so the crate
//! sees a stack copy of the fixed header with the CC and X bits cleared, and
//! the payload stays a slice of the caller's receive buffer.

use rtp::header::Header;
use webrtc_util::marshal::Unmarshal;

/// Length of the fixed RTP header (RFC 3550 §5.1).
const FIXED_HEADER_LEN: usize = 12;
/// The version field must be 2 (RFC 3550 §5.1).
const RTP_VERSION: u8 = 2;
/// Bits of the first octet: P, X and the CSRC count.
const PADDING_BIT: u8 = 0x20;
const EXTENSION_BIT: u8 = 0x10;
const CSRC_COUNT_MASK: u8 = 0x0F;

/// What a datagram on an RTP port is, by its first two octets (RFC 5761
/// §4, RFC 7983 §7): RTCP packet types 192-223 fall where an RTP packet
/// would have a marker bit and payload type 64-95, which RTP/AVP never
/// assigns, so the two never mix up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// RTP (version 2, any other payload type).
    Rtp,
    /// RTCP (version 2, packet type 192-223).
    Rtcp,
    /// Anything else: STUN, DTLS, garbage.
    Other,
}

/// Classifies one datagram received on an RTP (or RTCP) port.
pub fn classify(datagram: &[u8]) -> Kind {
    match datagram {
        [first, second, ..] if first >> 6 == RTP_VERSION => {
            if (192..=223).contains(second) {
                Kind::Rtcp
            } else {
                Kind::Rtp
            }
        }
        _ => Kind::Other,
    }
}

/// Why a datagram is not a usable RTP packet; counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the header it announces.
    #[error("datagram of {len} bytes is shorter than its RTP header")]
    Truncated {
        /// The datagram's length.
        len: usize,
    },
    /// Not RTP version 2 (STUN, stray traffic, garbage).
    #[error("RTP version {version} is not 2")]
    Version {
        /// The version field found.
        version: u8,
    },
    /// The padding count is zero or larger than the payload (RFC 3550 §5.1).
    #[error("invalid RTP padding")]
    Padding,
}

/// The parts of an RTP packet the receive path uses, borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpDatagram<'a> {
    /// Payload type: which codec or telephone-event (RFC 3550 §5.1).
    pub payload_type: u8,
    /// Marker bit; for telephone-event it marks the start of an event.
    pub marker: bool,
    /// Sequence number, for reordering and loss detection.
    pub sequence_number: u16,
    /// Media timestamp in RTP clock units, for placing audio in time.
    pub timestamp: u32,
    /// Synchronization source: identifies one stream.
    pub ssrc: u32,
    /// The payload with any padding removed.
    pub payload: &'a [u8],
}

impl<'a> RtpDatagram<'a> {
    /// Parses one datagram without allocating.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, PacketError> {
        let truncated = PacketError::Truncated {
            len: datagram.len(),
        };
        let mut fixed = [0u8; FIXED_HEADER_LEN];
        fixed.copy_from_slice(datagram.get(..FIXED_HEADER_LEN).ok_or(truncated)?);
        let first = fixed[0];
        fixed[0] = first & !(EXTENSION_BIT | CSRC_COUNT_MASK);
        let header = Header::unmarshal(&mut &fixed[..]).map_err(|_| truncated)?;
        if header.version != RTP_VERSION {
            return Err(PacketError::Version {
                version: header.version,
            });
        }

        let mut offset = FIXED_HEADER_LEN + 4 * usize::from(first & CSRC_COUNT_MASK);
        if first & EXTENSION_BIT != 0 {
            // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words.
            let words = datagram.get(offset + 2..offset + 4).ok_or(truncated)?;
            offset += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut payload = datagram.get(offset..).ok_or(truncated)?;
        if first & PADDING_BIT != 0 {
            let pad = usize::from(*payload.last().ok_or(PacketError::Padding)?);
            if pad == 0 || pad > payload.len() {
                return Err(PacketError::Padding);
            }
            payload = &payload[..payload.len() - pad];
        }

        Ok(RtpDatagram {
            payload_type: header.payload_type,
            marker: header.marker,
            sequence_number: header.sequence_number,
            timestamp: header.timestamp,
            ssrc: header.ssrc,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use webrtc_util::marshal::Marshal;

    fn marshal(header: Header, payload: &[u8]) -> Vec<u8> {
        let packet = rtp::packet::Packet {
            header,
            payload: Bytes::copy_from_slice(payload),
        };
        packet.marshal().unwrap().to_vec()
    }

    fn header() -> Header {
        Header {
            version: 2,
            marker: true,
            payload_type: 8,
            sequence_number: 65535,
            timestamp: 0xFFFF_FF00,
            ssrc: 0xDEAD_BEEF,
            ..Default::default()
        }
    }

    #[test]
    fn parses_what_the_rtp_crate_writes() {
        let bytes = marshal(header(), &[1, 2, 3]);
        let packet = RtpDatagram::parse(&bytes).unwrap();
        assert_eq!(packet.payload_type, 8);
        assert!(packet.marker);
        assert_eq!(packet.sequence_number, 65535);
        assert_eq!(packet.timestamp, 0xFFFF_FF00);
        assert_eq!(packet.ssrc, 0xDEAD_BEEF);
        assert_eq!(packet.payload, &[1, 2, 3]);
    }

    #[test]
    fn skips_csrcs_and_extension() {
        let mut h = header();
        h.csrc = vec![1, 2];
        h.set_extension(1, Bytes::from_static(&[9, 9])).unwrap();
        let bytes = marshal(h, &[5, 6]);
        assert_eq!(RtpDatagram::parse(&bytes).unwrap().payload, &[5, 6]);
    }

    #[test]
    fn strips_padding() {
        let mut bytes = marshal(header(), &[1, 2, 3, 0, 0, 3]);
        bytes[0] |= PADDING_BIT;
        assert_eq!(RtpDatagram::parse(&bytes).unwrap().payload, &[1, 2, 3]);
        let last = bytes.len() - 1;
        bytes[last] = 200;
        assert_eq!(RtpDatagram::parse(&bytes), Err(PacketError::Padding));
    }

    #[test]
    fn rtcp_and_stun_are_told_from_rtp() {
        // An RTCP SR (PT 200) and RR (201), an RTP packet with marker and
        // PT 0, a STUN binding request, nothing.
        assert_eq!(classify(&[0x80, 200, 0, 6]), Kind::Rtcp);
        assert_eq!(classify(&[0x81, 201, 0, 7]), Kind::Rtcp);
        assert_eq!(classify(&marshal(header(), &[1])), Kind::Rtp);
        assert_eq!(classify(&[0x80, 0x80, 0, 1]), Kind::Rtp);
        assert_eq!(classify(&[0x00, 0x01, 0, 0]), Kind::Other);
        assert_eq!(classify(&[0x80]), Kind::Other);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(RtpDatagram::parse(&[]).is_err());
        assert!(RtpDatagram::parse(&[0x80; 11]).is_err());
        assert_eq!(
            RtpDatagram::parse(&[0x40; 12]),
            Err(PacketError::Version { version: 1 })
        );
        // CSRC count 15 but no CSRCs; extension bit with a huge length.
        assert!(RtpDatagram::parse(&[0x8F; 20]).is_err());
        let mut ext = vec![
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF,
        ];
        assert!(RtpDatagram::parse(&ext).is_err());
        // A one-byte extension element (RFC 8285) claiming 16 bytes inside
        // a one-word extension: the crate's own extension parser panics here.
        ext.truncate(12);
        ext.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x1F, 0, 0, 0]);
        assert_eq!(RtpDatagram::parse(&ext).unwrap().payload, &[] as &[u8]);
        // Every prefix of a real packet is handled.
        let bytes = marshal(header(), &[1, 2, 3]);
        for len in 0..bytes.len() {
            let _ = RtpDatagram::parse(&bytes[..len]);
        }
    }
}

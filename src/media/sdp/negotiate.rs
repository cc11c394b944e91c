//! Reading a peer's SDP and choosing the session's codec (RFC 3264 §6).
//!
//! The answerer may pick any codec the offer allows; RFC 3264 §6.1 only
//! asks it to prefer the offerer's order "if possible". A voicemail
//! server keeps what it records, so by default it picks by its own
//! profile's order (best quality first, [`CodecOrder::Profile`]); a
//! profile can defer to the offerer ([`CodecOrder::Offerer`]).

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use ::sdp::description::common::{Attribute, ConnectionInformation};
use ::sdp::description::media::MediaDescription;
use ::sdp::description::session::SessionDescription;

use super::super::codec::Codec;
use super::{CodecOrder, DeclinedMedia, Direction, Negotiated, SdpError};

/// The packetization time assumed without `a=ptime` (RFC 3551 §4.5).
const DEFAULT_PTIME_MS: u32 = 20;
/// Transports carrying plain RTP; AVPF only adds RTCP feedback we ignore.
const PLAIN_RTP: [&str; 2] = ["RTP/AVP", "RTP/AVPF"];

/// Chooses the codec for an offer by our order: the first codec of
/// `supported` (the profile's list, best first) that the offer allows, on
/// the first audio stream that allows one. The result feeds
/// [`super::build_answer`].
pub fn negotiate(offer: &str, supported: &[Codec]) -> Result<Negotiated, SdpError> {
    negotiate_in_order(offer, supported, CodecOrder::Profile)
}

/// Chooses the codec for an offer by `order`: ours (`supported`'s order)
/// or the offerer's (its first format that we support).
pub fn negotiate_in_order(
    offer: &str,
    supported: &[Codec],
    order: CodecOrder,
) -> Result<Negotiated, SdpError> {
    select(offer, supported, order)
}

/// Reads the answer to our offer (for an INVITE without SDP, the answer
/// arrives in the ACK): the answerer's first codec among those we offered
/// (`supported`), as RFC 3264 §7 has the answerer rank its formats.
pub fn accept_answer(answer: &str, supported: &[Codec]) -> Result<Negotiated, SdpError> {
    select(answer, supported, CodecOrder::Offerer)
}

fn select(body: &str, supported: &[Codec], order: CodecOrder) -> Result<Negotiated, SdpError> {
    let session = SessionDescription::unmarshal(&mut Cursor::new(body.as_bytes()))
        .map_err(|e| SdpError::Parse(e.to_string()))?;
    let mut error = SdpError::NoAudio;
    let mut chosen = None;
    let mut declined = Vec::new();
    for (index, media) in session.media_descriptions.iter().enumerate() {
        if chosen.is_none() {
            match choose_audio(&session, media, supported, order) {
                Ok(negotiated) => {
                    chosen = Some(Negotiated {
                        media_index: index,
                        ..negotiated
                    });
                    continue;
                }
                Err(reason) => error = more_telling(error, reason),
            }
        }
        declined.push(DeclinedMedia {
            index,
            media: media.media_name.media.clone(),
            proto: media.media_name.protos.join("/"),
            formats: media.media_name.formats.clone(),
        });
    }
    chosen
        .map(|negotiated| Negotiated {
            declined,
            ..negotiated
        })
        .ok_or(error)
}

/// Keeps the error that tells the caller most about a rejected offer.
fn more_telling(kept: SdpError, new: SdpError) -> SdpError {
    match (&kept, &new) {
        (SdpError::NoAudio, _) => new,
        (SdpError::UnsupportedTransport { .. }, SdpError::NoCommonCodec { .. }) => new,
        _ => kept,
    }
}

fn choose_audio(
    session: &SessionDescription,
    media: &MediaDescription,
    supported: &[Codec],
    order: CodecOrder,
) -> Result<Negotiated, SdpError> {
    let name = &media.media_name;
    let port = u16::try_from(name.port.value).unwrap_or(0);
    if name.media != "audio" || port == 0 {
        return Err(SdpError::NoAudio);
    }
    let proto = name.protos.join("/");
    if !PLAIN_RTP.contains(&proto.as_str()) {
        return Err(SdpError::UnsupportedTransport { proto });
    }

    let formats: Vec<(u8, Option<Encoding>)> = name
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .map(|pt| (pt, encoding(media, pt)))
        .collect();
    let offered: Vec<(u8, Codec)> = formats
        .iter()
        .filter_map(|(pt, enc)| {
            let codec = match enc {
                Some(enc) => Codec::from_rtpmap(&enc.name, enc.rate),
                None => Codec::from_static_pt(*pt),
            }?;
            Some((*pt, codec))
        })
        .collect();
    let Some((codec, payload_type)) = pick(&offered, supported, order) else {
        let offered = formats
            .iter()
            .map(|(pt, enc)| match (enc, static_name(*pt)) {
                (Some(enc), _) => enc.name.clone(),
                (None, Some(name)) => name.to_owned(),
                (None, None) => format!("PT {pt}"),
            })
            .collect();
        let supported = supported.iter().map(|c| c.name().to_owned()).collect();
        return Err(SdpError::NoCommonCodec { offered, supported });
    };
    // RFC 4733 §2.1: events share the audio's clock, so Opus goes with
    // telephone-event/48000 and the others with telephone-event/8000.
    let telephone_event = formats.iter().find_map(|(pt, enc)| {
        enc.as_ref()
            .filter(|e| e.name.eq_ignore_ascii_case("telephone-event"))
            .filter(|e| e.rate == codec.telephone_event_rate())
            .map(|_| *pt)
    });

    // RFC 3389: comfort noise at the codec's clock (CN/8000 with G.711
    // and G.722, static type 13 even without an rtpmap).
    let comfort_noise = formats.iter().find_map(|(pt, enc)| {
        let is_cn = match enc {
            Some(e) => e.name.eq_ignore_ascii_case("CN") && e.rate == codec.rtp_clock_rate(),
            None => *pt == super::COMFORT_NOISE_PT && codec.rtp_clock_rate() == 8000,
        };
        is_cn.then_some(*pt)
    });
    let rtcp_mux = attribute_keys(&media.attributes).any(|k| k == "rtcp-mux");

    let address = media
        .connection_information
        .as_ref()
        .or(session.connection_information.as_ref())
        .and_then(connection_address);
    let mut direction = attribute_keys(&media.attributes)
        .chain(attribute_keys(&session.attributes))
        .find_map(Direction::from_attribute)
        .unwrap_or_default();
    if address.is_some_and(|ip| ip.is_unspecified()) {
        // RFC 3264 §8.4: the RFC 2543 way of holding sets c=0.0.0.0, which
        // means "do not send to me".
        direction = match direction {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        };
    }
    let ptime_ms = attribute_value(&media.attributes, "ptime")
        .or_else(|| attribute_value(&session.attributes, "ptime"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&ms| ms > 0)
        .unwrap_or(DEFAULT_PTIME_MS);

    let remote_rtp = address
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| SocketAddr::new(ip, port));
    let remote_rtcp = remote_rtp.and_then(|rtp| {
        rtcp_attribute(&media.attributes, rtp.ip()).or_else(|| {
            // RTP + 1 (RFC 3550 §11); an RTP port of 65535 (odd, against
            // the same section) has no next port, and RTCP goes nowhere.
            let port = rtp.port().checked_add(1)?;
            Some(SocketAddr::new(rtp.ip(), port))
        })
    });
    Ok(Negotiated {
        codec,
        payload_type,
        telephone_event,
        remote_rtp,
        direction,
        ptime_ms,
        media_index: 0,
        comfort_noise,
        rtcp_mux,
        remote_rtcp,
        declined: Vec::new(),
    })
}

/// The session's codec and its payload type among the offered formats:
/// by `supported`'s order or by the offer's. The codec returned is our own
/// entry, which carries the rate we decode Opus at.
fn pick(offered: &[(u8, Codec)], supported: &[Codec], order: CodecOrder) -> Option<(Codec, u8)> {
    match order {
        CodecOrder::Profile => supported.iter().find_map(|ours| {
            offered
                .iter()
                .find(|(_, theirs)| theirs.same_encoding(*ours))
                .map(|(pt, _)| (*ours, *pt))
        }),
        CodecOrder::Offerer => offered.iter().find_map(|(pt, theirs)| {
            supported
                .iter()
                .find(|ours| ours.same_encoding(*theirs))
                .map(|ours| (*ours, *pt))
        }),
    }
}

/// An `a=rtpmap` entry: encoding name and clock rate (RFC 4566 §6).
struct Encoding {
    name: String,
    rate: u32,
}

fn encoding(media: &MediaDescription, pt: u8) -> Option<Encoding> {
    media
        .attributes
        .iter()
        .filter(|a| a.key == "rtpmap")
        .filter_map(|a| a.value.as_deref())
        .find_map(|value| {
            let (number, rest) = value.trim().split_once(char::is_whitespace)?;
            if number.parse::<u8>().ok()? != pt {
                return None;
            }
            let mut parts = rest.trim().split('/');
            let name = parts.next()?.to_owned();
            let rate = parts.next()?.parse().ok()?;
            Some(Encoding { name, rate })
        })
}

/// Names of static payload types (RFC 3551 §6, Table 4), for error reports.
fn static_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        8 => "PCMA",
        9 => "G722",
        13 => "CN",
        15 => "G728",
        18 => "G729",
        _ => return None,
    })
}

fn connection_address(connection: &ConnectionInformation) -> Option<IpAddr> {
    let address = connection.address.as_ref()?;
    // Multicast addresses may carry "/ttl"; a host name is not usable here.
    address.address.split('/').next()?.parse().ok()
}

/// The `a=rtcp:port [IN IP4 address]` attribute (RFC 3605 §2.1).
fn rtcp_attribute(attributes: &[Attribute], rtp_ip: IpAddr) -> Option<SocketAddr> {
    let value = attribute_value(attributes, "rtcp")?;
    let mut fields = value.split_whitespace();
    let port = fields.next()?.parse::<u16>().ok().filter(|&p| p != 0)?;
    let ip = match (fields.next(), fields.next(), fields.next()) {
        (Some("IN"), Some(_), Some(address)) => address.parse().ok()?,
        _ => rtp_ip,
    };
    Some(SocketAddr::new(ip, port))
}

fn attribute_keys(attributes: &[Attribute]) -> impl Iterator<Item = &str> {
    attributes.iter().map(|a| a.key.as_str())
}

fn attribute_value<'a>(attributes: &'a [Attribute], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_deref())
}

#[cfg(test)]
#[path = "negotiate_tests.rs"]
mod tests;

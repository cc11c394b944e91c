//! Reading a peer's SDP and choosing the session's codec (RFC 3264 §6).

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use ::sdp::description::common::{Attribute, ConnectionInformation};
use ::sdp::description::media::MediaDescription;
use ::sdp::description::session::SessionDescription;

use super::super::codec::Codec;
use super::{DeclinedMedia, Direction, Negotiated, SdpError};

/// The packetization time assumed without `a=ptime` (RFC 3551 §4.5).
const DEFAULT_PTIME_MS: u32 = 20;
/// The RTP clock rate of G.711 and of its telephone-events.
const NARROWBAND_RATE: u32 = 8000;
/// Transports carrying plain RTP; AVPF only adds RTCP feedback we ignore.
const PLAIN_RTP: [&str; 2] = ["RTP/AVP", "RTP/AVPF"];

/// Chooses the codec for an offer: the first format in the offerer's order
/// (RFC 3264 §6.1 lets the offerer rank them) that is in `supported`, on the
/// first audio stream that has one. The result feeds [`super::build_answer`].
pub fn negotiate(offer: &str, supported: &[Codec]) -> Result<Negotiated, SdpError> {
    select(offer, supported)
}

/// Reads the answer to our offer (for an INVITE without SDP, the answer
/// arrives in the ACK): the answerer's first codec among those we offered
/// (`supported`), as RFC 3264 §7 has the answerer rank its formats.
pub fn accept_answer(answer: &str, supported: &[Codec]) -> Result<Negotiated, SdpError> {
    select(answer, supported)
}

fn select(body: &str, supported: &[Codec]) -> Result<Negotiated, SdpError> {
    let session = SessionDescription::unmarshal(&mut Cursor::new(body.as_bytes()))
        .map_err(|e| SdpError::Parse(e.to_string()))?;
    let mut error = SdpError::NoAudio;
    let mut chosen = None;
    let mut declined = Vec::new();
    for (index, media) in session.media_descriptions.iter().enumerate() {
        if chosen.is_none() {
            match choose_audio(&session, media, supported) {
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
    let codec = formats.iter().find_map(|(pt, enc)| {
        let codec = match enc {
            Some(enc) if enc.rate == NARROWBAND_RATE => Codec::from_name(&enc.name),
            Some(_) => None,
            None => Codec::from_static_pt(*pt),
        }?;
        supported.contains(&codec).then_some((codec, *pt))
    });
    let Some((codec, payload_type)) = codec else {
        let offered = formats
            .iter()
            .map(|(pt, enc)| match (enc, static_name(*pt)) {
                (Some(enc), _) => enc.name.clone(),
                (None, Some(name)) => name.to_owned(),
                (None, None) => format!("PT {pt}"),
            })
            .collect();
        return Err(SdpError::NoCommonCodec { offered });
    };
    let telephone_event = formats.iter().find_map(|(pt, enc)| {
        enc.as_ref()
            .filter(|e| e.name.eq_ignore_ascii_case("telephone-event"))
            .filter(|e| e.rate == NARROWBAND_RATE)
            .map(|_| *pt)
    });

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

    Ok(Negotiated {
        codec,
        payload_type,
        telephone_event,
        remote_rtp: address
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| SocketAddr::new(ip, port)),
        direction,
        ptime_ms,
        media_index: 0,
        declined: Vec::new(),
    })
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

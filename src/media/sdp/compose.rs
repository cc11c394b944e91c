//! Writing our SDP: the answer to an offer, or an offer of our own.
//!
//! Bodies are built as `sdp` crate structures and marshalled by it, so they
//! use CRLF line endings (RFC 4566 §5) and parse back with the same crate.

use std::net::{IpAddr, SocketAddr};

use ::sdp::description::common::{Address, Attribute, ConnectionInformation};
use ::sdp::description::media::{MediaDescription, MediaName, RangedPort};
use ::sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};

use super::super::codec::Codec;
use super::{telephone_event_pt, Direction, Negotiated, COMFORT_NOISE_PT};

/// The DTMF events we accept: digits, `*`, `#`, A-D and flash
/// (RFC 4733 §3.2), the range PBXs offer.
const DTMF_EVENTS: &str = "0-16";
/// Our packetization time in offers (RFC 3551 §4.5 default).
const OFFER_PTIME_MS: u32 = 20;

/// Answers an offer with the one negotiated codec (plus telephone-event at
/// its clock rate, if offered) on the offerer's payload types, rejects the offer's other
/// streams with port 0 (RFC 3264 §6), and mirrors its direction (§6.1).
/// `local` is our RTP socket; `session_id` and `version` fill `o=` (a
/// re-INVITE's answer keeps the id and increments the version, §8).
pub fn build_answer(n: &Negotiated, local: SocketAddr, session_id: u64, version: u64) -> String {
    let mut session = session(local.ip(), session_id, version);
    let streams = n.declined.len() + 1;
    for index in 0..streams {
        let media = match n.declined.iter().find(|d| d.index == index) {
            Some(declined) => MediaDescription {
                media_name: MediaName {
                    media: declined.media.clone(),
                    port: RangedPort {
                        value: 0,
                        range: None,
                    },
                    protos: declined.proto.split('/').map(str::to_owned).collect(),
                    formats: declined.formats.clone(),
                },
                ..MediaDescription::default()
            },
            None => {
                let events: Vec<(u8, u32)> = n
                    .telephone_event
                    .map(|pt| (pt, n.codec.telephone_event_rate()))
                    .into_iter()
                    .collect();
                let mut media = audio(
                    local.port(),
                    &[(n.payload_type, n.codec)],
                    &events,
                    n.ptime_ms,
                    n.direction.mirror(),
                );
                if let Some(pt) = n.comfort_noise {
                    comfort_noise(&mut media, pt, n.codec.rtp_clock_rate());
                }
                if n.rtcp_mux {
                    // RFC 5761 §5.1.1: the answer repeats it to accept.
                    media
                        .attributes
                        .push(Attribute::new("rtcp-mux".to_owned(), None));
                }
                media
            }
        };
        session.media_descriptions.push(media);
    }
    session.marshal()
}

/// Offers every supported codec, in our order of preference, for an
/// INVITE that came without SDP: G.711 and G.722 on their static payload
/// types, Opus on PT 111, telephone-event at each clock rate offered
/// (8000 on PT 101; 48000 on PT 110 when Opus is offered, RFC 4733 §2.1),
/// comfort noise `CN/8000` (RFC 3389) and `a=rtcp-mux` (RFC 5761).
pub fn build_offer(
    supported: &[Codec],
    local: SocketAddr,
    session_id: u64,
    version: u64,
) -> String {
    let mut session = session(local.ip(), session_id, version);
    let codecs: Vec<(u8, Codec)> = supported.iter().map(|&c| (c.payload_type(), c)).collect();
    let mut events: Vec<(u8, u32)> = Vec::with_capacity(2);
    for codec in supported {
        let event = (telephone_event_pt(*codec), codec.telephone_event_rate());
        if !events.contains(&event) {
            events.push(event);
        }
    }
    let mut media = audio(
        local.port(),
        &codecs,
        &events,
        OFFER_PTIME_MS,
        Direction::SendRecv,
    );
    if supported.iter().any(|c| c.rtp_clock_rate() == 8000) {
        comfort_noise(&mut media, COMFORT_NOISE_PT, 8000);
    }
    // RFC 5761 §5.1.1: offered, and RTCP goes on RTP + 1 until the answer
    // accepts it.
    media
        .attributes
        .push(Attribute::new("rtcp-mux".to_owned(), None));
    session.media_descriptions.push(media);
    session.marshal()
}

/// The session-level part: `v=`, `o=`, `s=`, `c=`, `t=0 0`.
fn session(ip: IpAddr, session_id: u64, version: u64) -> SessionDescription {
    let address_type = if ip.is_ipv4() { "IP4" } else { "IP6" };
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "vmesh".to_owned(),
            session_id,
            session_version: version,
            network_type: "IN".to_owned(),
            address_type: address_type.to_owned(),
            unicast_address: ip.to_string(),
        },
        session_name: "vmesh".to_owned(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".to_owned(),
            address_type: address_type.to_owned(),
            address: Some(Address {
                address: ip.to_string(),
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: Vec::new(),
        }],
        ..SessionDescription::default()
    }
}

/// One `m=audio` stream with its `rtpmap`, `fmtp`, `ptime` and direction;
/// `events` are the telephone-event payload types with their clock rates.
fn audio(
    port: u16,
    codecs: &[(u8, Codec)],
    events: &[(u8, u32)],
    ptime_ms: u32,
    direction: Direction,
) -> MediaDescription {
    let mut formats: Vec<String> = codecs.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut attributes: Vec<Attribute> = Vec::with_capacity(codecs.len() * 2 + 4);
    for (pt, codec) in codecs {
        let channels = codec
            .sdp_channels()
            .map_or(String::new(), |n| format!("/{n}"));
        attributes.push(value_attribute(
            "rtpmap",
            format!(
                "{pt} {}/{}{channels}",
                codec.encoding_name(),
                codec.rtp_clock_rate()
            ),
        ));
        if let Some(fmtp) = codec.fmtp() {
            attributes.push(value_attribute("fmtp", format!("{pt} {fmtp}")));
        }
    }
    for (pt, rate) in events {
        formats.push(pt.to_string());
        attributes.push(value_attribute(
            "rtpmap",
            format!("{pt} telephone-event/{rate}"),
        ));
        attributes.push(value_attribute("fmtp", format!("{pt} {DTMF_EVENTS}")));
    }
    attributes.push(value_attribute("ptime", ptime_ms.to_string()));
    attributes.push(Attribute::new(direction.as_str().to_owned(), None));
    MediaDescription {
        media_name: MediaName {
            media: "audio".to_owned(),
            port: RangedPort {
                value: port as isize,
                range: None,
            },
            protos: vec!["RTP".to_owned(), "AVP".to_owned()],
            formats,
        },
        attributes,
        ..MediaDescription::default()
    }
}

/// Adds RFC 3389 comfort noise on `pt` (before `ptime` and the direction).
fn comfort_noise(media: &mut MediaDescription, pt: u8, rate: u32) {
    media.media_name.formats.push(pt.to_string());
    let at = media
        .attributes
        .iter()
        .position(|a| a.key == "ptime")
        .unwrap_or(media.attributes.len());
    media
        .attributes
        .insert(at, value_attribute("rtpmap", format!("{pt} CN/{rate}")));
}

fn value_attribute(key: &str, value: String) -> Attribute {
    Attribute::new(key.to_owned(), Some(value))
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;

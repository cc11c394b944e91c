//! An SDP offer from a caller's INVITE (RFC 3264 over RFC 4566), through
//! `negotiate_in_order` and our answer (`build_answer`).
//!
//! The input is the offer's text. It is negotiated against the codecs of a
//! profile in our order and in the offerer's. Checked beyond "no panic",
//! for every offer that is accepted:
//! - the codec is one we support, on a payload type the chosen `m=` line
//!   offers, and telephone-event and comfort noise only on offered types;
//!   neither RTP nor RTCP goes to port 0;
//! - the answer parses, has one `m=` line per offered one (RFC 3264 §6),
//!   the others with port 0 and their own media type, and the chosen
//!   stream lists only payload types the offer listed on it;
//! - read back as the answer to that offer, our answer gives the same
//!   codec on the same payload type.

#![no_main]

use std::io::Cursor;
use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use sdp::description::session::SessionDescription;
use vmesh::config::CodecOrder;
use vmesh::media::codec::{Codec, OpusRate};
use vmesh::media::sdp::{accept_answer, build_answer, negotiate_in_order};

const PROFILES: [&[Codec]; 2] = [
    &[
        Codec::Opus(OpusRate::Wideband),
        Codec::G722,
        Codec::Pcmu,
        Codec::Pcma,
    ],
    &[Codec::Pcma, Codec::Pcmu],
];

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    for supported in PROFILES {
        for order in [CodecOrder::Profile, CodecOrder::Offerer] {
            if let Ok(n) = negotiate_in_order(offer, supported, order) {
                check(offer, supported, &n);
            }
        }
    }
});

fn formats(session: &SessionDescription, index: usize) -> Vec<String> {
    session.media_descriptions[index].media_name.formats.clone()
}

fn check(offer: &str, supported: &[Codec], n: &vmesh::media::sdp::Negotiated) {
    let parsed = SessionDescription::unmarshal(&mut Cursor::new(offer.as_bytes()))
        .expect("an accepted offer parses");
    let streams = parsed.media_descriptions.len();
    assert!(n.media_index < streams);
    let offered = formats(&parsed, n.media_index);
    let is_offered = |pt: u8| offered.iter().any(|f| f.parse::<u8>() == Ok(pt));
    assert!(supported.contains(&n.codec), "{:?} not supported", n.codec);
    assert!(
        is_offered(n.payload_type),
        "PT {} not offered",
        n.payload_type
    );
    for pt in n.telephone_event.iter().chain(n.comfort_noise.iter()) {
        assert!(is_offered(*pt), "PT {pt} not offered");
    }
    assert_eq!(n.declined.len() + 1, streams);
    for addr in n.remote_rtp.iter().chain(n.remote_rtcp.iter()) {
        assert_ne!(addr.port(), 0, "media to port 0");
    }
    assert!(n.ptime_ms > 0);

    let local: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    let answer = build_answer(n, local, 7, 8);
    let reply = SessionDescription::unmarshal(&mut Cursor::new(answer.as_bytes()))
        .unwrap_or_else(|e| panic!("our answer does not parse ({e}):\n{answer}"));
    assert_eq!(reply.media_descriptions.len(), streams, "{answer}");
    for (index, media) in reply.media_descriptions.iter().enumerate() {
        let theirs = &parsed.media_descriptions[index].media_name;
        if index == n.media_index {
            assert_eq!(media.media_name.port.value, 40000);
            for f in &media.media_name.formats {
                let pt = f.parse::<u8>().expect("we answer with payload type numbers");
                assert!(is_offered(pt), "answer lists {f}, offer {offered:?}");
            }
        } else {
            assert_eq!(media.media_name.port.value, 0, "{answer}");
            assert_eq!(media.media_name.media, theirs.media, "{answer}");
        }
    }
    let back = accept_answer(&answer, supported)
        .unwrap_or_else(|e| panic!("our answer is refused ({e}):\n{answer}"));
    assert_eq!(
        (back.codec, back.payload_type, back.media_index),
        (n.codec, n.payload_type, n.media_index),
        "{answer}"
    );
}

//! The SDP answer to our own offer (an INVITE without SDP is answered with
//! our offer in the 200, and the answer comes in the ACK, RFC 3261
//! §13.2.1), through `accept_answer`.
//!
//! The input is the answer's text. Checked beyond "no panic", for every
//! answer that is taken: the codec is one we offered, on a payload type
//! the answer's chosen `m=` line lists, with telephone-event and comfort
//! noise only on listed types; and a stream that RTCP goes to has an
//! address and a port that is not 0.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sdp::description::session::SessionDescription;
use vmesh::media::codec::{Codec, OpusRate};
use vmesh::media::sdp::accept_answer;

const OFFERED: [&[Codec]; 2] = [
    &[
        Codec::Opus(OpusRate::Fullband),
        Codec::G722,
        Codec::Pcmu,
        Codec::Pcma,
    ],
    &[Codec::Pcmu],
];

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = std::str::from_utf8(data) else {
        return;
    };
    for offered in OFFERED {
        let Ok(n) = accept_answer(answer, offered) else {
            continue;
        };
        let parsed = SessionDescription::unmarshal(&mut Cursor::new(answer.as_bytes()))
            .expect("a taken answer parses");
        let listed = &parsed.media_descriptions[n.media_index].media_name;
        let is_listed = |pt: u8| listed.formats.iter().any(|f| f.parse::<u8>() == Ok(pt));
        assert!(offered.contains(&n.codec), "{:?} was not offered", n.codec);
        assert!(is_listed(n.payload_type));
        for pt in n.telephone_event.iter().chain(n.comfort_noise.iter()) {
            assert!(is_listed(*pt), "PT {pt} not in the answer");
        }
        assert_ne!(listed.port.value, 0, "a rejected stream was taken");
        if let Some(rtp) = n.remote_rtp {
            assert_ne!(rtp.port(), 0);
            assert!(!rtp.ip().is_unspecified());
        }
        if let Some(rtcp) = n.remote_rtcp {
            assert_ne!(rtcp.port(), 0, "RTCP to port 0");
        }
    }
});

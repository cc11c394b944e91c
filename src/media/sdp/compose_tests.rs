use std::io::Cursor;

use super::super::super::codec::OpusRate;
use super::super::{accept_answer, negotiate, negotiate_in_order, CodecOrder};
use super::*;

const BOTH: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
const OPUS: Codec = Codec::Opus(OpusRate::Wideband);

fn local() -> SocketAddr {
    "127.0.0.11:40002".parse().unwrap()
}

fn parse(body: &str) -> SessionDescription {
    SessionDescription::unmarshal(&mut Cursor::new(body.as_bytes())).unwrap()
}

fn offer(m_line: &str, media_extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm={m_line}\r\n{media_extra}"
    )
}

#[test]
fn answer_carries_one_codec_and_telephone_event() {
    let o = offer(
        "audio 4000 RTP/AVP 8 0 96",
        "a=rtpmap:96 telephone-event/8000\r\na=ptime:30\r\n",
    );
    let n = negotiate_in_order(&o, &BOTH, CodecOrder::Offerer).unwrap();
    let answer = build_answer(&n, local(), 42, 7);
    assert!(answer.ends_with("\r\n"));
    assert!(
        !answer.replace("\r\n", "").contains('\n'),
        "bare LF in {answer:?}"
    );
    assert!(answer.contains("o=vmesh 42 7 IN IP4 127.0.0.11\r\n"));
    assert!(answer.contains("c=IN IP4 127.0.0.11\r\n"));
    assert!(answer.contains("m=audio 40002 RTP/AVP 8 96\r\n"));
    assert!(answer.contains("a=rtpmap:8 PCMA/8000\r\n"));
    assert!(answer.contains("a=rtpmap:96 telephone-event/8000\r\n"));
    assert!(answer.contains("a=fmtp:96 0-16\r\n"));
    assert!(answer.contains("a=ptime:30\r\n"));
    assert!(answer.contains("a=sendrecv\r\n"));

    let parsed = parse(&answer);
    assert_eq!(parsed.media_descriptions.len(), 1);
    let media = &parsed.media_descriptions[0];
    assert_eq!(media.media_name.formats, vec!["8", "96"]);
    assert_eq!(media.media_name.port.value, 40002);
}

#[test]
fn answer_mirrors_hold_directions() {
    for (offered, answered) in [
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
    ] {
        let o = offer("audio 4000 RTP/AVP 0", &format!("a={offered}\r\n"));
        let answer = build_answer(&negotiate(&o, &BOTH).unwrap(), local(), 1, 1);
        assert!(
            answer.contains(&format!("a={answered}\r\n")),
            "{offered}: {answer}"
        );
        assert!(!answer.contains("a=sendrecv"));
    }
}

#[test]
fn answer_rejects_other_streams_with_port_zero_in_order() {
    let o = format!(
        "{}m=video 4004 RTP/SAVP 96\r\n",
        offer("audio 4002 RTP/AVP 0", "")
    );
    let answer = build_answer(&negotiate(&o, &BOTH).unwrap(), local(), 1, 1);
    let parsed = parse(&answer);
    let lines: Vec<String> = parsed
        .media_descriptions
        .iter()
        .map(|m| m.media_name.to_string())
        .collect();
    assert_eq!(lines, vec!["audio 40002 RTP/AVP 0", "video 0 RTP/SAVP 96"]);
}

#[test]
fn ipv6_answer_uses_ip6() {
    let n = negotiate(&offer("audio 4000 RTP/AVP 0", ""), &BOTH).unwrap();
    let answer = build_answer(&n, "[::1]:40000".parse().unwrap(), 1, 1);
    assert!(answer.contains("c=IN IP6 ::1\r\n"));
    parse(&answer);
}

#[test]
fn our_offer_round_trips_through_a_peer() {
    let ours = build_offer(&BOTH, local(), 9, 1);
    assert!(ours.contains("m=audio 40002 RTP/AVP 0 8 101 13\r\n"));
    assert!(ours.contains("a=rtpmap:101 telephone-event/8000\r\n"));
    // The peer chooses from our offer and answers...
    let peer = negotiate(&ours, &[Codec::Pcma]).unwrap();
    assert_eq!(peer.remote_rtp, Some(local()));
    let peer_rtp: SocketAddr = "192.0.2.50:7000".parse().unwrap();
    let answer = build_answer(&peer, peer_rtp, 5, 1);
    // ...and the answer in the ACK fixes the session for us.
    let n = accept_answer(&answer, &BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.remote_rtp, Some(peer_rtp));
    assert_eq!(n.direction, Direction::SendRecv);
}

#[test]
fn our_offer_lists_the_profile_order_with_events_at_both_rates() {
    let ours = build_offer(&Codec::ALL, local(), 9, 1);
    assert!(
        ours.contains("m=audio 40002 RTP/AVP 111 9 0 8 110 101 13\r\n"),
        "{ours}"
    );
    assert!(ours.contains("a=rtpmap:111 opus/48000/2\r\n"));
    // Only what differs from RFC 7587's defaults, as Asterisk and
    // FreeSWITCH write it; never sprop-maxcapturerate (FreeSWITCH 1.10
    // then fails its codec comparison).
    assert!(
        ours.contains("a=fmtp:111 maxplaybackrate=16000\r\n"),
        "{ours}"
    );
    assert!(!ours.contains("sprop-maxcapturerate"), "{ours}");
    assert!(ours.contains("a=rtpmap:9 G722/8000\r\n"));
    assert!(ours.contains("a=rtpmap:110 telephone-event/48000\r\n"));
    assert!(ours.contains("a=rtpmap:101 telephone-event/8000\r\n"));
    let narrow = build_offer(&[Codec::G722, Codec::Pcmu], local(), 9, 1);
    assert!(
        narrow.contains("m=audio 40002 RTP/AVP 9 0 101 13\r\n"),
        "{narrow}"
    );
    assert!(!narrow.contains("48000"));
}

#[test]
fn an_opus_answer_keeps_the_offerers_types_and_the_48k_events() {
    let o = offer(
        "audio 4000 RTP/AVP 102 0 100 101",
        "a=rtpmap:102 opus/48000/2\r\na=fmtp:102 useinbandfec=1\r\n\
         a=rtpmap:100 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let n = negotiate(&o, &Codec::ALL).unwrap();
    let answer = build_answer(&n, local(), 1, 1);
    assert!(
        answer.contains("m=audio 40002 RTP/AVP 102 100\r\n"),
        "{answer}"
    );
    assert!(answer.contains("a=rtpmap:102 opus/48000/2\r\n"));
    assert!(
        answer.contains("a=fmtp:102 maxplaybackrate=16000\r\n"),
        "{answer}"
    );
    assert!(!answer.contains("sprop"), "{answer}");
    assert!(answer.contains("a=rtpmap:100 telephone-event/48000\r\n"));
    assert!(!answer.contains("telephone-event/8000"));
}

#[test]
fn an_opus_offer_of_ours_round_trips_through_a_peer() {
    let ours = build_offer(&Codec::ALL, local(), 9, 1);
    let peer = negotiate(&ours, &[OPUS]).unwrap();
    assert_eq!((peer.codec, peer.payload_type), (OPUS, 111));
    assert_eq!(peer.telephone_event, Some(110));
    let answer = build_answer(&peer, "192.0.2.50:7000".parse().unwrap(), 5, 1);
    let n = accept_answer(&answer, &Codec::ALL).unwrap();
    assert!(n.rtcp_mux, "our offer's rtcp-mux is accepted by the answer");
    assert_eq!(
        n,
        Negotiated {
            remote_rtp: n.remote_rtp,
            remote_rtcp: n.remote_rtcp,
            rtcp_mux: true,
            ..Negotiated::before_answer(OPUS)
        }
    );
}

#[test]
fn comfort_noise_and_rtcp_mux_are_answered_when_offered() {
    let o = offer(
        "audio 4000 RTP/AVP 0 8 101 13",
        "a=rtpmap:101 telephone-event/8000\r\na=rtpmap:13 CN/8000\r\na=rtcp-mux\r\n",
    );
    let n = negotiate(&o, &BOTH).unwrap();
    assert_eq!(n.comfort_noise, Some(13));
    assert!(n.rtcp_mux);
    let answer = build_answer(&n, local(), 1, 1);
    assert!(
        answer.contains("m=audio 40002 RTP/AVP 0 101 13\r\n"),
        "{answer}"
    );
    assert!(answer.contains("a=rtpmap:13 CN/8000\r\n"), "{answer}");
    assert!(answer.contains("a=rtcp-mux\r\n"), "{answer}");
    // Without them in the offer, neither is in the answer.
    let plain = offer("audio 4000 RTP/AVP 0", "");
    let answer = build_answer(&negotiate(&plain, &BOTH).unwrap(), local(), 1, 1);
    assert!(
        !answer.contains("CN/") && !answer.contains("rtcp-mux"),
        "{answer}"
    );
}

use super::*;

const BOTH: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

fn offer(session_extra: &str, m_line: &str, media_extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{session_extra}m={m_line}\r\n{media_extra}"
    )
}

/// An offer as Asterisk 20 sends it from a chan_pjsip endpoint.
const ASTERISK: &str = "v=0\r\n\
o=- 1718051526 1718051526 IN IP4 10.1.2.3\r\n\
s=Asterisk\r\n\
c=IN IP4 10.1.2.3\r\n\
t=0 0\r\n\
m=audio 12000 RTP/AVP 0 8 3 111 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:3 GSM/8000\r\n\
a=rtpmap:111 G726-32/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// An offer as FreeSWITCH sends it, Opus first, with a wideband DTMF PT too.
const FREESWITCH: &str = "v=0\n\
o=FreeSWITCH 1718030000 1718030001 IN IP4 10.9.8.7\n\
s=FreeSWITCH\n\
c=IN IP4 10.9.8.7\n\
t=0 0\n\
m=audio 24680 RTP/AVP 102 8 0 9 100 101 13\n\
a=rtpmap:102 opus/48000/2\n\
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:9 G722/8000\n\
a=rtpmap:100 telephone-event/48000\n\
a=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-16\n\
a=rtpmap:13 CN/8000\n\
a=ptime:20\n";

#[test]
fn honours_the_offerers_order() {
    let pcmu_first = offer("", "audio 4000 RTP/AVP 0 8", "");
    let n = negotiate(&pcmu_first, &[Codec::Pcma, Codec::Pcmu]).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
    let pcma_first = offer("", "audio 4000 RTP/AVP 8 0", "");
    let n = negotiate(&pcma_first, &BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    // A codec we do not support is skipped, not fatal.
    let n = negotiate(&pcma_first, &[Codec::Pcmu]).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
}

#[test]
fn reads_a_real_asterisk_offer() {
    let n = negotiate(ASTERISK, &BOTH).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
    assert_eq!(n.payload_type, 0);
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.remote_rtp, Some("10.1.2.3:12000".parse().unwrap()));
    assert_eq!(n.direction, Direction::SendRecv);
    assert_eq!(n.ptime_ms, 20);
    assert!(n.declined.is_empty());
}

#[test]
fn reads_a_freeswitch_offer_with_lf_endings() {
    let n = negotiate(FREESWITCH, &BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    // The 48 kHz telephone-event belongs to Opus; ours is the 8 kHz one.
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.remote_rtp, Some("10.9.8.7:24680".parse().unwrap()));
}

#[test]
fn keeps_a_dynamic_telephone_event_and_codec_pt() {
    let o = offer(
        "",
        "audio 4000 RTP/AVP 96 118",
        "a=rtpmap:96 pcmu/8000\r\na=rtpmap:118 TELEPHONE-EVENT/8000\r\n",
    );
    let n = negotiate(&o, &BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 96));
    assert_eq!(n.telephone_event, Some(118));
}

#[test]
fn no_telephone_event_unless_offered() {
    let n = negotiate(&offer("", "audio 4000 RTP/AVP 0", ""), &BOTH).unwrap();
    assert_eq!(n.telephone_event, None);
}

#[test]
fn g729_only_is_no_common_codec() {
    let o = offer(
        "",
        "audio 4000 RTP/AVP 18 101",
        "a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    assert_eq!(
        negotiate(&o, &BOTH),
        Err(SdpError::NoCommonCodec {
            offered: vec!["G729".into(), "telephone-event".into()]
        })
    );
    let bare = offer("", "audio 4000 RTP/AVP 18 9 98", "");
    assert_eq!(
        negotiate(&bare, &BOTH),
        Err(SdpError::NoCommonCodec {
            offered: vec!["G729".into(), "G722".into(), "PT 98".into()]
        })
    );
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let n = negotiate(&offer("", "audio 4000 RTP/AVP 8 0", ""), &BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
}

#[test]
fn media_level_connection_overrides_session_level() {
    let session_only = offer("", "audio 4000 RTP/AVP 0", "");
    let n = negotiate(&session_only, &BOTH).unwrap();
    assert_eq!(n.remote_rtp, Some("192.0.2.1:4000".parse().unwrap()));
    let media_level = offer("", "audio 4000 RTP/AVP 0", "c=IN IP4 198.51.100.7\r\n");
    let n = negotiate(&media_level, &BOTH).unwrap();
    assert_eq!(n.remote_rtp, Some("198.51.100.7:4000".parse().unwrap()));
    let media_only = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nt=0 0\r\n\
        m=audio 5000 RTP/AVP 0\r\nc=IN IP6 2001:db8::7\r\n";
    let n = negotiate(media_only, &BOTH).unwrap();
    assert_eq!(n.remote_rtp, Some("[2001:db8::7]:5000".parse().unwrap()));
}

#[test]
fn hold_directions_are_read_at_media_or_session_level() {
    for (attr, direction) in [
        ("sendonly", Direction::SendOnly),
        ("recvonly", Direction::RecvOnly),
        ("inactive", Direction::Inactive),
        ("sendrecv", Direction::SendRecv),
    ] {
        let media = offer("", "audio 4000 RTP/AVP 0", &format!("a={attr}\r\n"));
        assert_eq!(negotiate(&media, &BOTH).unwrap().direction, direction);
        let session = offer(&format!("a={attr}\r\n"), "audio 4000 RTP/AVP 0", "");
        assert_eq!(negotiate(&session, &BOTH).unwrap().direction, direction);
    }
    let n = negotiate(&offer("", "audio 4000 RTP/AVP 0", "a=sendonly\r\n"), &BOTH).unwrap();
    assert!(n.on_hold());
    let n = negotiate(&offer("", "audio 4000 RTP/AVP 0", ""), &BOTH).unwrap();
    assert!(!n.on_hold());
}

#[test]
fn zero_address_is_old_style_hold() {
    let o = offer("", "audio 4000 RTP/AVP 0", "c=IN IP4 0.0.0.0\r\n");
    let n = negotiate(&o, &BOTH).unwrap();
    assert_eq!(n.remote_rtp, None);
    assert_eq!(n.direction, Direction::SendOnly);
    assert!(n.on_hold());
}

#[test]
fn ptime_is_read() {
    let o = offer("", "audio 4000 RTP/AVP 0", "a=ptime:30\r\n");
    assert_eq!(negotiate(&o, &BOTH).unwrap().ptime_ms, 30);
    let o = offer("a=ptime:40\r\n", "audio 4000 RTP/AVP 0", "");
    assert_eq!(negotiate(&o, &BOTH).unwrap().ptime_ms, 40);
}

#[test]
fn other_streams_are_declined_in_place() {
    let o = format!(
        "{}m=audio 4002 RTP/AVP 0\r\n",
        offer("", "video 4004 RTP/AVP 96", "a=rtpmap:96 H264/90000\r\n")
    );
    let n = negotiate(&o, &BOTH).unwrap();
    assert_eq!(n.media_index, 1);
    assert_eq!(n.remote_rtp, Some("192.0.2.1:4002".parse().unwrap()));
    assert_eq!(n.declined.len(), 1);
    assert_eq!(n.declined[0].index, 0);
    assert_eq!(n.declined[0].media, "video");
    assert_eq!(n.declined[0].proto, "RTP/AVP");
}

#[test]
fn offers_without_usable_audio_are_refused() {
    let video = offer("", "video 4000 RTP/AVP 96", "");
    assert_eq!(negotiate(&video, &BOTH), Err(SdpError::NoAudio));
    let disabled = offer("", "audio 0 RTP/AVP 0", "");
    assert_eq!(negotiate(&disabled, &BOTH), Err(SdpError::NoAudio));
    let srtp = offer("", "audio 4000 RTP/SAVP 0", "");
    assert_eq!(
        negotiate(&srtp, &BOTH),
        Err(SdpError::UnsupportedTransport {
            proto: "RTP/SAVP".into()
        })
    );
    assert!(matches!(
        negotiate("this is not SDP", &BOTH),
        Err(SdpError::Parse(_))
    ));
    assert!(matches!(
        negotiate("", &BOTH),
        Err(SdpError::Parse(_)) | Err(SdpError::NoAudio)
    ));
}

#[test]
fn accept_answer_takes_the_answerers_first_codec_we_offered() {
    let answer = offer(
        "",
        "audio 6000 RTP/AVP 8 0 101",
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
    );
    let n = accept_answer(&answer, &BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.remote_rtp, Some("192.0.2.1:6000".parse().unwrap()));
    let g729 = offer("", "audio 6000 RTP/AVP 18", "");
    assert!(matches!(
        accept_answer(&g729, &BOTH),
        Err(SdpError::NoCommonCodec { .. })
    ));
}

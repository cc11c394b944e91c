use super::super::super::codec::OpusRate;
use super::super::negotiate_in_order;
use super::*;

const BOTH: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
const OPUS: Codec = Codec::Opus(OpusRate::Wideband);

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

/// An offer as Linphone (desktop 5.x) sends it: Opus first, Speex we do not
/// decode, telephone-event at three rates.
const LINPHONE: &str = "v=0\r\n\
o=alice 1855 2604 IN IP4 192.168.1.20\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

/// A desk phone's wideband offer (Yealink/Polycom style): G.722 first on
/// its static type, G.711 as fallback.
const G722_PHONE: &str = "v=0\r\n\
o=- 20086 20086 IN IP4 10.0.0.31\r\n\
s=SDP data\r\n\
c=IN IP4 10.0.0.31\r\n\
t=0 0\r\n\
m=audio 11796 RTP/AVP 9 0 8 18 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n";

#[test]
fn the_profile_order_picks_unless_the_offerer_is_asked() {
    let pcmu_first = offer("", "audio 4000 RTP/AVP 0 8", "");
    let pcma_first = offer("", "audio 4000 RTP/AVP 8 0", "");
    let ours = [Codec::Pcma, Codec::Pcmu];
    let n = negotiate(&pcmu_first, &ours).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    let n = negotiate_in_order(&pcmu_first, &ours, CodecOrder::Offerer).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
    let n = negotiate_in_order(&pcma_first, &BOTH, CodecOrder::Offerer).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    let n = negotiate_in_order(&pcma_first, &BOTH, CodecOrder::Profile).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
    // A codec we do not support is skipped, not fatal.
    let n = negotiate(&pcma_first, &[Codec::Pcmu]).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
}

#[test]
fn reads_a_real_linphone_opus_offer() {
    let n = negotiate(LINPHONE, &Codec::ALL).unwrap();
    assert_eq!((n.codec, n.payload_type), (OPUS, 96));
    // Opus pairs with the 48 kHz telephone-event (RFC 4733 §2.1).
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.remote_rtp, Some("192.168.1.20:7078".parse().unwrap()));
    assert_eq!(n.ptime_ms, 20);
    // Without Opus on our side, G.711 goes with telephone-event/8000.
    let n = negotiate(LINPHONE, &BOTH).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
    assert_eq!(n.telephone_event, Some(100));
}

#[test]
fn the_opus_we_pick_carries_our_internal_rate() {
    let fullband = Codec::Opus(OpusRate::Fullband);
    let n = negotiate(LINPHONE, &[fullband, Codec::Pcmu]).unwrap();
    assert_eq!(n.codec, fullband);
    assert_eq!(n.codec.audio_rate(), 48_000);
}

#[test]
fn reads_a_g722_desk_phone_offer() {
    let n = negotiate(G722_PHONE, &Codec::ALL).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::G722, 9));
    assert_eq!(n.telephone_event, Some(101));
    // G.722 on its static type needs no rtpmap.
    let bare = offer("", "audio 4000 RTP/AVP 9 0", "");
    assert_eq!(negotiate(&bare, &Codec::ALL).unwrap().codec, Codec::G722);
    // "G722/16000" is not G.722 as RFC 3551 signals it.
    let wrong = offer("", "audio 4000 RTP/AVP 96", "a=rtpmap:96 G722/16000\r\n");
    assert!(matches!(
        negotiate(&wrong, &Codec::ALL),
        Err(SdpError::NoCommonCodec { .. })
    ));
}

#[test]
fn telephone_event_must_share_the_codecs_clock() {
    let opus_with_8k_events = offer(
        "",
        "audio 4000 RTP/AVP 96 101",
        "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let n = negotiate(&opus_with_8k_events, &Codec::ALL).unwrap();
    assert_eq!((n.codec, n.telephone_event), (OPUS, None));
    let g722_with_48k_events = offer(
        "",
        "audio 4000 RTP/AVP 9 110",
        "a=rtpmap:110 telephone-event/48000\r\n",
    );
    let n = negotiate(&g722_with_48k_events, &Codec::ALL).unwrap();
    assert_eq!((n.codec, n.telephone_event), (Codec::G722, None));
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
    let n = negotiate(FREESWITCH, &Codec::ALL).unwrap();
    assert_eq!((n.codec, n.payload_type), (OPUS, 102));
    assert_eq!(n.telephone_event, Some(100));
    assert_eq!(n.remote_rtp, Some("10.9.8.7:24680".parse().unwrap()));
    let n = negotiate_in_order(FREESWITCH, &BOTH, CodecOrder::Offerer).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    // The 48 kHz telephone-event belongs to Opus; G.711's is the 8 kHz one.
    assert_eq!(n.telephone_event, Some(101));
    let n = negotiate(FREESWITCH, &[Codec::G722, Codec::Pcmu]).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::G722, 9));
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
            offered: vec!["G729".into(), "telephone-event".into()],
            supported: vec!["PCMU".into(), "PCMA".into()],
        })
    );
    let bare = offer("", "audio 4000 RTP/AVP 18 9 98", "");
    assert_eq!(
        negotiate(&bare, &BOTH),
        Err(SdpError::NoCommonCodec {
            offered: vec!["G729".into(), "G722".into(), "PT 98".into()],
            supported: vec!["PCMU".into(), "PCMA".into()],
        })
    );
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let n = negotiate(&offer("", "audio 4000 RTP/AVP 8 0", ""), &[Codec::Pcma]).unwrap();
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

/// RFC 3389 comfort noise only at the codec's clock; RFC 3605 `a=rtcp`
/// or RTP + 1 for the caller's RTCP.
#[test]
fn comfort_noise_rtcp_mux_and_the_rtcp_port() {
    let n = negotiate(FREESWITCH, &BOTH).unwrap();
    assert_eq!(n.comfort_noise, Some(13));
    assert!(!n.rtcp_mux);
    assert_eq!(n.remote_rtcp, Some("10.9.8.7:24681".parse().unwrap()));
    // CN/8000 does not go with Opus's 48 kHz clock.
    let opus = negotiate(FREESWITCH, &[OPUS]).unwrap();
    assert_eq!(opus.comfort_noise, None);
    let moved = offer(
        "",
        "audio 5000 RTP/AVP 0",
        "a=rtcp:6001 IN IP4 192.0.2.77\r\na=rtcp-mux\r\n",
    );
    let n = negotiate(&moved, &BOTH).unwrap();
    assert!(n.rtcp_mux);
    assert_eq!(n.remote_rtcp, Some("192.0.2.77:6001".parse().unwrap()));
    let port_only = offer("", "audio 5000 RTP/AVP 0", "a=rtcp:7001\r\n");
    let n = negotiate(&port_only, &BOTH).unwrap();
    assert_eq!(n.remote_rtcp, Some("192.0.2.1:7001".parse().unwrap()));
    assert_eq!(n.comfort_noise, None);
}

/// Found by the sdp_answer fuzz target's check: RTP on port 65535 made
/// RTP + 1 wrap around, and RTCP went to port 0. There is no RTCP port
/// then, unless `a=rtcp` names one.
#[test]
fn rtp_on_the_last_port_has_no_rtcp_port_plus_one() {
    let last = offer("", "audio 65535 RTP/AVP 0", "");
    for n in [
        negotiate(&last, &BOTH).unwrap(),
        accept_answer(&last, &BOTH).unwrap(),
    ] {
        assert_eq!(n.remote_rtp, Some("192.0.2.1:65535".parse().unwrap()));
        assert_eq!(n.remote_rtcp, None);
    }
    let named = offer("", "audio 65535 RTP/AVP 0", "a=rtcp:5001\r\n");
    let n = negotiate(&named, &BOTH).unwrap();
    assert_eq!(n.remote_rtcp, Some("192.0.2.1:5001".parse().unwrap()));
}

//! The call's media against strangers and PBX habits, end to end through
//! the real binary: RTP from a stranger before and during the call, a
//! stranger's `#`, RTCP sent to the RTP port, a spray over the port range,
//! nothing sent before the ACK and no file for an unacknowledged call,
//! DTMF by SIP INFO, a session refresh by UPDATE, and the keep-alive RTP
//! and RTCP a PBX sees while vmesh records. The caller's message is
//! checked by content (aligned correlation against what was sent).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::audio::read_wav_data;
use common::dialog::Dialog;
use common::media::{sdp, sdp_audio_addr, RtpSender, FRAME_BYTES};
use common::net::{RTP_PORT_MAX, RTP_PORT_MIN};
use common::raw_sip::request;
use common::{
    assert_short_speech_recorded, testdata, Server, ServerConfig, SipUdp, TestNet,
    SPEECH_SHORT_ULAW,
};

const ANSWER: Duration = Duration::from_secs(2);
const STORE_WAIT: Duration = Duration::from_secs(5);

fn speech() -> Vec<u8> {
    read_wav_data(&testdata(SPEECH_SHORT_ULAW))
}

/// An RTP packet with the given header fields.
fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7F];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An RTCP receiver report (RFC 3550 §6.4.2) without report blocks.
fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

/// A stranger that sends loud noise and `#` events from its own socket,
/// counting its packets of noise in `sent`.
fn stranger_thread(
    ip: std::net::Ipv4Addr,
    dest: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind((ip, 0)).expect("bind the stranger");
        let mut seq = 9000u16;
        while !stop.load(Ordering::Relaxed) {
            let noise = rtp(0, seq, u32::from(seq) * 160, 0xBAD, &[0x00; FRAME_BYTES]);
            socket.send_to(&noise, dest).ok();
            // and a '#' (RFC 4733 end packet) now and then
            if seq.is_multiple_of(10) {
                let hash = rtp(101, seq.wrapping_add(1), 0, 0xBAD, &[11, 0x8A, 0, 160]);
                socket.send_to(&hash, dest).ok();
            }
            seq = seq.wrapping_add(2);
            sent.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(10));
        }
        sent.load(Ordering::Relaxed)
    })
}

/// A call offering PCMU + telephone-event from `rtp`'s socket; returns
/// the dialog and vmesh's media address. The ACK is not sent.
fn invite(server: &Server, udp: &SipUdp, rtp: SocketAddr, extra: &[&str]) -> (Dialog, SocketAddr) {
    let offer = sdp(rtp, &[(0, "PCMU/8000"), (101, "telephone-event/8000")]);
    let mut headers = vec!["Content-Type: application/sdp"];
    headers.extend_from_slice(extra);
    let uri = format!("sip:1001@{}", server.net.sip_addr());
    let invite = request("INVITE", &uri, udp.local_addr(), "UDP", &headers, &offer);
    let response = udp
        .transact(&invite, ANSWER)
        .unwrap_or_else(|| panic!("no final response to the INVITE"));
    assert_eq!(response.status, 200, "{}", response.raw);
    let media = sdp_audio_addr(&response.body).expect("an audio address in the answer");
    (Dialog::from_2xx(&response, udp.local_addr(), "UDP"), media)
}

fn hang_up(udp: &SipUdp, dialog: &Dialog) {
    udp.send(dialog.bye().as_bytes());
    let response = udp
        .final_response_to("BYE", ANSWER)
        .expect("a response to BYE");
    assert_eq!(response.status, 200);
}

fn one_message(server: &Server) -> serde_json::Value {
    let mut messages = server.wait_messages(1, STORE_WAIT);
    assert_eq!(messages.len(), 1, "want exactly one message: {messages:?}");
    messages.remove(0)
}

/// Issue 9: a stranger streaming noise and `#` to the call's port before
/// the ACK and all through the call neither takes nor ends the message.
#[test]
fn a_stranger_before_and_during_the_call_takes_nothing() {
    let server = Server::start(TestNet::allocate());
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let mut caller = RtpSender::bind(server.net.peer_ip);
    let (dialog, media) = invite(&server, &udp, caller.local_addr(), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let noise = Arc::new(AtomicU64::new(0));
    let stranger = stranger_thread(server.net.peer_ip, media, stop.clone(), noise.clone());
    // The stranger is first: 30 packets of noise and three '#' before the
    // ACK.
    let deadline = Instant::now() + ANSWER;
    while noise.load(Ordering::Relaxed) < 30 {
        assert!(Instant::now() < deadline, "the stranger sent nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    udp.send(dialog.ack(None).as_bytes());
    caller.stream(media, 0, &speech());
    // The 200 to our BYE is the marker: had a stranger's '#' ended the
    // call, vmesh's own BYE would have come before it.
    let (requests, response) = udp.transact_noting_requests(&dialog.bye(), ANSWER);
    assert!(
        requests.iter().all(|r| r.method != "BYE"),
        "vmesh hung up: the stranger's # ended the call: {requests:?}"
    );
    assert_eq!(
        response.as_ref().map(|r| r.status),
        Some(200),
        "our BYE: {response:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let sent = stranger.join().expect("the stranger thread");
    eprintln!("stranger: {sent} packets of noise and a # every 10");
    let message = one_message(&server);
    assert_short_speech_recorded(&server, &message);
}

/// Issue 9: a spray over the whole RTP port range during four calls (a
/// packet to every even port, over and over) loses none of them.
#[test]
fn spraying_the_port_range_loses_no_message() {
    let server = Server::start(TestNet::allocate());
    let stop = Arc::new(AtomicBool::new(false));
    let sprayer = {
        let (stop, ip, server_ip) = (stop.clone(), server.net.peer_ip, server.net.ip);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind((ip, 0)).expect("bind the sprayer");
            let mut sweeps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for port in (RTP_PORT_MIN..=RTP_PORT_MAX).step_by(2) {
                    let packet = rtp(
                        0,
                        sweeps as u16,
                        sweeps * 160,
                        0x5BAA7,
                        &[0x00; FRAME_BYTES],
                    );
                    socket.send_to(&packet, (server_ip, port)).ok();
                }
                sweeps += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            sweeps
        })
    };
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let net = server.net;
            std::thread::spawn(move || {
                let udp = SipUdp::bind(net.peer_ip, net.sip_addr());
                let mut caller = RtpSender::bind(net.peer_ip);
                let offer = sdp(caller.local_addr(), &[(0, "PCMU/8000")]);
                let uri = format!("sip:1001@{}", net.sip_addr());
                let invite = request(
                    "INVITE",
                    &uri,
                    udp.local_addr(),
                    "UDP",
                    &["Content-Type: application/sdp"],
                    &offer,
                );
                let response = udp.transact(&invite, ANSWER).expect("an answer");
                assert_eq!(response.status, 200, "{}", response.raw);
                let media = sdp_audio_addr(&response.body).expect("media address");
                let dialog = Dialog::from_2xx(&response, udp.local_addr(), "UDP");
                udp.send(dialog.ack(None).as_bytes());
                caller.stream(media, 0, &speech());
                std::thread::sleep(Duration::from_millis(200));
                hang_up(&udp, &dialog);
            })
        })
        .collect();
    for call in calls {
        call.join().expect("a call");
    }
    stop.store(true, Ordering::Relaxed);
    let sweeps = sprayer.join().expect("the sprayer");
    eprintln!("spray: {sweeps} sweeps over {RTP_PORT_MIN}-{RTP_PORT_MAX}");
    let messages = server.wait_messages(4, STORE_WAIT);
    assert_eq!(
        messages.len(),
        4,
        "every call kept its message: {messages:?}"
    );
    for message in &messages {
        assert_short_speech_recorded(&server, message);
    }
}

/// What the caller's RTP and RTCP sockets received during a recorded call
/// (speech sent from the RTP socket, the caller's RTCP misdirected to
/// vmesh's RTP port every 240 ms) on a server with `keepalive_ms`:
/// vmesh's RTCP (arrival, packet type, length) and RTP (arrival, packet),
/// listened to for `listen`. The message is checked by content.
type Heard = (Vec<(Duration, u8, usize)>, Vec<(Duration, Vec<u8>)>);
fn what_the_caller_hears(keepalive_ms: Option<u64>, listen: Duration) -> Heard {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            keepalive_ms,
            ..ServerConfig::default()
        },
    );
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    // The caller's RTP and RTCP sockets, on an even port and the next.
    let (rtp_socket, rtcp_socket) = (20_000..40_000u16)
        .step_by(2)
        .find_map(|port| {
            let a = UdpSocket::bind((server.net.peer_ip, port)).ok()?;
            let b = UdpSocket::bind((server.net.peer_ip, port + 1)).ok()?;
            Some((a, b))
        })
        .expect("a free port pair");
    let caller_rtp = rtp_socket.local_addr().unwrap();
    let (dialog, media) = invite(&server, &udp, caller_rtp, &[]);
    // Before the ACK and the caller's RTP: its RTCP, to the RTP port.
    rtcp_socket.send_to(&rtcp_rr(0xCA11), media).unwrap();
    udp.send(dialog.ack(None).as_bytes());
    let listener = {
        let rtcp = rtcp_socket.try_clone().unwrap();
        let rtp = rtp_socket.try_clone().unwrap();
        std::thread::spawn(move || {
            rtcp.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            rtp.set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            let start = Instant::now();
            let (mut reports, mut rtp_packets) = (Vec::new(), Vec::new());
            let mut buf = [0u8; 2048];
            while start.elapsed() < listen {
                if let Ok((n, _)) = rtcp.recv_from(&mut buf) {
                    reports.push((start.elapsed(), buf[1], n));
                }
                while let Ok((n, _)) = rtp.recv_from(&mut buf) {
                    rtp_packets.push((start.elapsed(), buf[..n].to_vec()));
                }
            }
            (reports, rtp_packets)
        })
    };
    let speech = speech();
    let start = Instant::now();
    for (i, frame) in speech.chunks_exact(FRAME_BYTES).enumerate() {
        let due = start + Duration::from_millis(20 * i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let packet = rtp(0, i as u16, i as u32 * 160, 0xCA11, frame);
        rtp_socket.send_to(&packet, media).unwrap();
        if i.is_multiple_of(12) {
            rtcp_socket.send_to(&rtcp_rr(0xCA11), media).unwrap();
        }
    }
    let heard = listener.join().expect("the listener");
    hang_up(&udp, &dialog);
    let message = one_message(&server);
    assert_short_speech_recorded(&server, &message);
    heard
}

fn ssrc(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[8], p[9], p[10], p[11]])
}
fn seq(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}
fn ts(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[4], p[5], p[6], p[7]])
}

/// RTCP from the caller's RTCP port sent to the RTP port (a common
/// mistake) is not audio and does not take the stream; vmesh's own RTCP
/// reaches the caller's RTP port + 1, and its keep-alive RTP the caller:
/// by default a few frames of silence, then one packet every 200 ms, each
/// after a gap with the marker (RFC 3551 §4.1), in one SSRC with
/// consecutive sequence numbers.
#[test]
fn rtcp_on_the_rtp_port_is_not_audio_and_vmesh_reports() {
    // RFC 3550 §6.3: the first report within 1.0-3.1 s, the next 2.1-6.2
    // s later, so two reports are due within 9.3 s.
    let (reports, rtp_packets) = what_the_caller_hears(None, Duration::from_millis(9_500));
    assert!(reports.len() >= 2, "RTCP reports: {reports:?}");
    assert!(
        reports.iter().all(|(_, pt, _)| *pt == 200 || *pt == 201),
        "{reports:?}"
    );
    let gaps: Vec<f64> = reports
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64())
        .collect();
    eprintln!(
        "RTCP: {} reports, first at {:?}, intervals {gaps:?} s",
        reports.len(),
        reports[0].0
    );
    assert!(gaps.iter().all(|g| (1.9..=6.3).contains(g)), "{gaps:?}");

    // What a PBX sees while vmesh records.
    assert!(
        rtp_packets.len() > 40,
        "keep-alive RTP: {}",
        rtp_packets.len()
    );
    let mut steps = Vec::new();
    for pair in rtp_packets.windows(2) {
        let (a, b) = (&pair[0].1, &pair[1].1);
        assert_eq!(ssrc(b), ssrc(a), "one SSRC");
        assert_eq!(seq(b), seq(a).wrapping_add(1), "consecutive numbers");
        assert_eq!(&b[12..], &[0xFF; 160][..], "μ-law silence");
        let step = ts(b).wrapping_sub(ts(a));
        assert_eq!(b[1] >> 7, u8::from(step > 160), "marker after a gap");
        steps.push(step);
    }
    // At most the encoder's few frames in a row (at the start: the
    // keep-alive starts with the call), then 200 ms steps.
    let contiguous = steps.iter().take_while(|s| **s == 160).count();
    assert!(contiguous <= 4, "{steps:?}");
    assert!(steps[contiguous..].iter().all(|s| *s == 1600), "{steps:?}");
    let sparse = &rtp_packets[contiguous..];
    let span = (sparse.last().unwrap().0 - sparse[0].0).as_secs_f64();
    let rate = (sparse.len() - 1) as f64 / span;
    eprintln!(
        "keep-alive: {} packets in a row, then {} over {span:.2} s = {rate:.2} packets/s, SSRC {:#x}",
        contiguous + 1,
        sparse.len(),
        ssrc(&rtp_packets[0].1)
    );
    assert!((4.8..=5.2).contains(&rate), "{rate} packets/s");
}

/// `media.keepalive_ms = 20`: encoded silence in every frame, a continuous
/// stream, for a peer that counts a gap as loss.
#[test]
fn a_keepalive_of_20_ms_sends_every_frame() {
    let (_, rtp_packets) = what_the_caller_hears(Some(20), Duration::from_millis(3_000));
    assert!(
        rtp_packets.len() > 100,
        "keep-alive RTP: {}",
        rtp_packets.len()
    );
    for pair in rtp_packets.windows(2) {
        let (a, b) = (&pair[0].1, &pair[1].1);
        assert_eq!(ssrc(b), ssrc(a), "one SSRC");
        assert_eq!(seq(b), seq(a).wrapping_add(1));
        assert_eq!(ts(b).wrapping_sub(ts(a)), 160, "20 ms steps");
        assert_eq!(b[1], 0, "PCMU without the marker");
        assert_eq!(&b[12..], &[0xFF; 160][..], "μ-law silence");
    }
    let span = (rtp_packets.last().unwrap().0 - rtp_packets[0].0).as_secs_f64();
    let rate = (rtp_packets.len() - 1) as f64 / span;
    eprintln!(
        "keep-alive: {} packets over {span:.2} s = {rate:.2} packets/s",
        rtp_packets.len()
    );
    assert!((49.0..=51.0).contains(&rate), "{rate} packets/s");
}

/// Issue 9: no greeting goes out before the ACK, and an unacknowledged
/// call has created no file; the ACK starts the greeting.
#[test]
fn nothing_before_the_ack_and_no_file_without_it() {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            prompts: true,
            ..ServerConfig::default()
        },
    );
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let rtp_socket = UdpSocket::bind((server.net.peer_ip, 0)).unwrap();
    let (dialog, _) = invite(&server, &udp, rtp_socket.local_addr().unwrap(), &[]);
    // vmesh's own clock is the marker: while no ACK comes it sends its 200
    // again T1 and then 2*T1 later (RFC 3261 13.3.1.4), so 1.5 s of the
    // unacknowledged call have passed in the server when the second copy
    // arrives; a greeting started at the answer would have sent 75
    // packets by then.
    for copy in 1..=2 {
        let again = udp
            .final_response_to("INVITE", ANSWER)
            .unwrap_or_else(|| panic!("no retransmission {copy} of the 200 before the ACK"));
        assert_eq!(again.status, 200, "{}", again.raw);
    }
    rtp_socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let early = rtp_socket.recv_from(&mut buf);
    assert!(
        early
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "vmesh sent RTP before the ACK: {early:?}"
    );
    rtp_socket.set_nonblocking(false).unwrap();
    let recording = server.data_dir().join("recording");
    let files: Vec<_> = std::fs::read_dir(&recording)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "files before the ACK: {files:?}");
    udp.send(dialog.ack(None).as_bytes());
    rtp_socket.set_read_timeout(Some(ANSWER)).unwrap();
    let (n, _) = rtp_socket
        .recv_from(&mut buf)
        .expect("the greeting after the ACK");
    assert_eq!(n, 12 + 160);
    let deadline = Instant::now() + ANSWER;
    let sidecars = || {
        std::fs::read_dir(&recording).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
    };
    while sidecars() == 0 {
        assert!(Instant::now() < deadline, "no recording file after the ACK");
        std::thread::sleep(Duration::from_millis(20));
    }
    hang_up(&udp, &dialog);
}

/// Issue 7: `#` by SIP INFO (FreeSWITCH's dtmf_type=info) ends the
/// recording as RFC 4733 does, and vmesh hangs up; an UPDATE refresh
/// (RFC 4028) during the call is answered and changes nothing.
#[test]
fn an_info_hash_ends_the_message_and_an_update_refresh_is_answered() {
    let server = Server::start(TestNet::allocate());
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let mut caller = RtpSender::bind(server.net.peer_ip);
    let (dialog, media) = invite(
        &server,
        &udp,
        caller.local_addr(),
        &["Supported: timer", "Session-Expires: 90;refresher=uac"],
    );
    udp.send(dialog.ack(None).as_bytes());
    let speech = speech();
    let half = speech.len() / 2 / FRAME_BYTES * FRAME_BYTES;
    caller.stream(media, 0, &speech[..half]);
    let update = dialog.request(
        "UPDATE",
        dialog.invite_cseq + 1,
        &["Supported: timer", "Session-Expires: 90;refresher=uac"],
        "",
    );
    let response = udp.transact(&update, ANSWER).expect("a response to UPDATE");
    assert_eq!(response.status, 200, "{}", response.raw);
    assert!(response.body.is_empty(), "an offerless UPDATE gets no SDP");
    assert_eq!(
        response.header("Session-Expires").map(str::trim),
        Some("90;refresher=uac"),
        "{}",
        response.raw
    );
    caller.stream(media, 0, &speech[half..]);
    std::thread::sleep(Duration::from_millis(100));
    let info = dialog.request(
        "INFO",
        dialog.invite_cseq + 2,
        &["Content-Type: application/dtmf-relay"],
        "Signal=#\r\nDuration=160\r\n",
    );
    let response = udp.transact(&info, ANSWER).expect("a response to INFO");
    assert_eq!(response.status, 200, "{}", response.raw);
    let bye = udp
        .recv_request(Duration::from_secs(3))
        .expect("vmesh hangs up after the INFO #");
    assert_eq!(bye.method, "BYE", "{}", bye.raw);
    udp.send(bye.response(200, "OK").as_bytes());
    let message = one_message(&server);
    assert_short_speech_recorded(&server, &message);
}

//! The media core driven through its async shell over real loopback
//! sockets, as the session drives it: what a caller's packets become.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time;
use tokio_util::sync::CancellationToken;
use webrtc_util::marshal::Marshal;

use super::super::call_media::{MediaSettings, MediaStats};
use super::super::codec::Codec;
use super::super::recorder::{RecordEnd, RecordLimits};
use super::super::sdp::{Direction, Negotiated};
use super::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PTIME: u32 = 160;

fn negotiated(direction: Direction, caller: SocketAddr) -> Negotiated {
    Negotiated {
        remote_rtp: Some(caller),
        direction,
        ..Negotiated::before_answer(Codec::Pcmu)
    }
}

fn limits() -> RecordLimits {
    RecordLimits {
        max_length: Duration::from_secs(60),
        rtp_timeout: Duration::from_secs(5),
        jitter: Duration::from_millis(60),
        max_silence: None,
        silence_threshold_dbfs: -50.0,
    }
}

fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    Packet {
        header: Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

/// A phone's RTP: a plain UDP socket sending to the call's port.
struct Caller {
    socket: UdpSocket,
    to: SocketAddr,
    seq: u16,
    ssrc: u32,
    payload_type: u8,
}

impl Caller {
    async fn new(to: SocketAddr) -> Self {
        Caller {
            socket: UdpSocket::bind((LOOPBACK, 0)).await.unwrap(),
            to,
            seq: 1000,
            ssrc: 77,
            payload_type: 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// `frames` of 20 ms of μ-law `byte`, paced a little so the loopback
    /// socket buffer never overflows.
    async fn send_audio(&mut self, frames: u32, byte: u8) {
        for i in 0..frames {
            let ts = u32::from(self.seq.wrapping_sub(1000)) * PTIME;
            let datagram = packet(
                self.payload_type,
                self.seq,
                ts,
                self.ssrc,
                &[byte; PTIME as usize],
            );
            self.socket.send_to(&datagram, self.to).await.unwrap();
            self.seq = self.seq.wrapping_add(1);
            if i % 10 == 9 {
                time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    /// `frames` packets as a port-range sprayer sends them: the same
    /// bytes, sequence numbers that do not follow on.
    async fn spray(&mut self, frames: u32) {
        for _ in 0..frames {
            let datagram = packet(0, self.seq, 0, self.ssrc, &[0x00; PTIME as usize]);
            self.socket.send_to(&datagram, self.to).await.unwrap();
            self.seq = self.seq.wrapping_add(7);
        }
    }

    /// A key press as RFC 4733 events: two updates and three ends.
    async fn press(&mut self, event: u8) {
        let ts = u32::from(self.seq.wrapping_sub(1000)) * PTIME;
        for end in [false, false, true, true, true] {
            let flags = if end { 0x80 } else { 0 };
            let datagram = packet(101, self.seq, ts, self.ssrc, &[event, flags | 10, 0, 160]);
            self.socket.send_to(&datagram, self.to).await.unwrap();
            self.seq = self.seq.wrapping_add(1);
        }
    }
}

async fn bind() -> RtpSocket {
    RtpSocket::bind_pair(LOOPBACK, 42000..=42999, true)
        .await
        .unwrap()
}

/// Records the call as the session does: confirmed, recording from the
/// start, fed by the port until the recording ends or `stop`.
async fn record(
    socket: RtpSocket,
    n: Negotiated,
    limits: RecordLimits,
    mut updates: mpsc::Receiver<Negotiated>,
    stop: CancellationToken,
    fail_sink: bool,
) -> (RecordEnd, MediaStats, Vec<i16>) {
    let settings = MediaSettings {
        jitter: limits.jitter,
        rtp_timeout: limits.rtp_timeout,
        keepalive: crate::config::DEFAULT_KEEPALIVE,
    };
    let now = time::Instant::now().into_std();
    let mut media = CallMedia::new(&n, settings, now, SystemTime::now(), 9).unwrap();
    media.confirm(now);
    media.record(&limits, Some('#'), now);
    let mut port = MediaPort::new(socket, &media);
    let mut pcm = Vec::new();
    let mut stopping = false;
    loop {
        let now = time::Instant::now().into_std();
        port.transmit(&mut media, now);
        let _ = media.drain_recorded(&mut |p: &[i16]| -> Result<(), String> {
            if fail_sink {
                return Err("disk full".to_owned());
            }
            pcm.extend_from_slice(p);
            Ok(())
        });
        if let Some(end) = media.recording_ended() {
            let _ = media.drain_recorded(&mut |p: &[i16]| -> Result<(), String> {
                pcm.extend_from_slice(p);
                Ok(())
            });
            return (end, media.stats(), pcm);
        }
        port.arm(media.poll_timeout());
        tokio::select! {
            input = std::future::poll_fn(|cx| port.poll_input(cx)) => {
                port.feed(&mut media, input, time::Instant::now().into_std());
            }
            Some(update) = updates.recv() => media.update(&update, time::Instant::now().into_std()),
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                media.stop_recording();
            }
        }
    }
}

#[tokio::test]
async fn two_seconds_of_packets_make_two_seconds_of_pcm() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, updates) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let n = negotiated(Direction::SendRecv, caller.addr());
    let recording = record(socket, n, limits(), updates, stop.clone(), false);
    let call = async {
        caller.send_audio(100, 0x80).await;
        time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
    };
    let ((end, stats, pcm), ()) = tokio::join!(recording, call);
    assert_eq!(end, RecordEnd::Stopped);
    assert_eq!(pcm.len(), 16_000);
    assert_eq!(stats.received.received, 100);
    assert_eq!(stats.received.lost, 0);
}

#[tokio::test]
async fn hash_ends_the_recording() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, updates) = mpsc::channel(4);
    let n = negotiated(Direction::SendRecv, caller.addr());
    let recording = record(
        socket,
        n,
        limits(),
        updates,
        CancellationToken::new(),
        false,
    );
    let call = async {
        caller.send_audio(50, 0x80).await;
        caller.press(11).await;
    };
    let ((end, stats, pcm), ()) = tokio::join!(recording, call);
    assert_eq!(end, RecordEnd::Dtmf('#'));
    assert_eq!(pcm.len(), 8_000, "the buffered audio is flushed");
    assert_eq!(stats.received.dtmf_digits, 1);
}

/// A stranger's packets before and during the call, and its `#`, change
/// nothing of what the caller records.
#[tokio::test]
async fn a_stranger_neither_replaces_nor_ends_the_callers_audio() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let mut stranger = Caller::new(socket.local_addr()).await;
    stranger.ssrc = 666;
    let (_tx, updates) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let n = negotiated(Direction::SendRecv, caller.addr());
    let recording = record(socket, n, limits(), updates, stop.clone(), false);
    let call = async {
        stranger.spray(10).await;
        caller.send_audio(25, 0xFF).await;
        stranger.send_audio(10, 0x00).await;
        stranger.press(11).await;
        caller.send_audio(25, 0xFF).await;
        time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
    };
    let ((end, stats, pcm), ()) = tokio::join!(recording, call);
    assert_eq!(end, RecordEnd::Stopped, "the stranger's # did not end it");
    assert_eq!(pcm.len(), 8_000);
    assert!(pcm.iter().all(|&s| s == 0), "only the caller's silence");
    assert_eq!(stats.received.foreign_source, 25);
}

#[tokio::test]
async fn silence_on_the_wire_times_out() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, updates) = mpsc::channel(4);
    let limits = RecordLimits {
        rtp_timeout: Duration::from_millis(300),
        ..limits()
    };
    let n = negotiated(Direction::SendRecv, caller.addr());
    let started = time::Instant::now();
    let recording = record(socket, n, limits, updates, CancellationToken::new(), false);
    let ((end, _, pcm), ()) = tokio::join!(recording, caller.send_audio(10, 0x80));
    assert_eq!(end, RecordEnd::RtpTimeout);
    assert_eq!(pcm.len(), 1_600);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn hold_suspends_the_timeout_until_resumed() {
    let socket = bind().await;
    let caller = Caller::new(socket.local_addr()).await;
    let (tx, updates) = mpsc::channel(4);
    let limits = RecordLimits {
        rtp_timeout: Duration::from_millis(100),
        ..limits()
    };
    let held = negotiated(Direction::SendOnly, caller.addr());
    let started = time::Instant::now();
    let recording = record(
        socket,
        held,
        limits,
        updates,
        CancellationToken::new(),
        false,
    );
    let call = async {
        time::sleep(Duration::from_millis(400)).await;
        tx.send(negotiated(Direction::SendRecv, caller.addr()))
            .await
            .unwrap();
    };
    let ((end, _, _), ()) = tokio::join!(recording, call);
    assert_eq!(end, RecordEnd::RtpTimeout);
    // On hold for 400 ms, then the timeout counts from the resume.
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn the_maximum_length_cuts_exactly_at_the_codecs_audio_rate() {
    for (codec, pt, samples) in [(Codec::Pcmu, 0, 8_000), (Codec::G722, 9, 16_000)] {
        let socket = bind().await;
        let mut caller = Caller::new(socket.local_addr()).await;
        caller.payload_type = pt;
        let (_tx, updates) = mpsc::channel(4);
        let limits = RecordLimits {
            max_length: Duration::from_millis(1_000),
            ..limits()
        };
        let n = Negotiated {
            codec,
            payload_type: pt,
            ..negotiated(Direction::SendRecv, caller.addr())
        };
        let recording = record(socket, n, limits, updates, CancellationToken::new(), false);
        let ((end, _, pcm), ()) = tokio::join!(recording, caller.send_audio(100, 0x80));
        assert_eq!(end, RecordEnd::MaxLength);
        assert_eq!(pcm.len(), samples, "{codec:?}");
    }
}

#[tokio::test]
async fn a_failing_sink_ends_the_recording() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, updates) = mpsc::channel(4);
    let n = negotiated(Direction::SendRecv, caller.addr());
    let recording = record(socket, n, limits(), updates, CancellationToken::new(), true);
    let ((end, _, _), ()) = tokio::join!(recording, caller.send_audio(20, 0x80));
    assert_eq!(end, RecordEnd::SinkFailed("disk full".to_owned()));
}

/// While recording, the caller receives a keep-alive stream and RTCP.
#[tokio::test]
async fn the_caller_receives_keepalive_rtp_and_rtcp() {
    let socket = bind().await;
    let media_port = socket.local_addr();
    let caller = Caller::new(media_port).await;
    let caller_rtcp = UdpSocket::bind((LOOPBACK, caller.addr().port() + 1)).await;
    let Ok(caller_rtcp) = caller_rtcp else {
        return; // the odd port above is taken on this host: nothing to show
    };
    let (_tx, updates) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let n = Negotiated {
        remote_rtcp: Some(caller_rtcp.local_addr().unwrap()),
        ..negotiated(Direction::SendRecv, caller.addr())
    };
    let recording = record(socket, n, limits(), updates, stop.clone(), false);
    let listen = async {
        let mut buf = [0u8; 2048];
        let mut rtcp_buf = [0u8; 2048];
        let mut rtp = 0;
        let deadline = time::Instant::now() + Duration::from_secs(4);
        let rtcp = loop {
            tokio::select! {
                r = caller.socket.recv_from(&mut buf) => {
                    let (len, from) = r.unwrap();
                    assert_eq!(from, media_port);
                    assert_eq!(len, 12 + 160);
                    rtp += 1;
                }
                r = caller_rtcp.recv_from(&mut rtcp_buf) => {
                    let (len, from) = r.unwrap();
                    assert_eq!(from.port(), media_port.port() + 1, "from our RTCP port");
                    break rtcp_buf[..len].to_vec();
                }
                _ = time::sleep_until(deadline) => panic!("no RTCP within 4 s ({rtp} RTP packets)"),
            }
        };
        stop.cancel();
        (rtp, rtcp)
    };
    let (_, (rtp, rtcp)) = tokio::join!(recording, listen);
    // The first report comes 1 to 3.1 s in (RFC 3550 §6.3); by then the
    // keep-alive sent four frames of silence and one packet per 200 ms.
    assert!(rtp >= 8, "keep-alive: {rtp} packets");
    assert_eq!(rtcp[1], 200, "a sender report");
}

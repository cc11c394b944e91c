use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;
use tokio::net::UdpSocket;
use webrtc_util::marshal::Marshal;

use super::super::codec::Codec;
use super::super::sdp::Direction;
use super::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PTIME: u32 = 160;

fn negotiated(direction: Direction) -> Negotiated {
    Negotiated {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        remote_rtp: None,
        direction,
        ptime_ms: 20,
        media_index: 0,
        declined: Vec::new(),
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

fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    Packet {
        header: Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 77,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

/// The caller's side: a plain UDP socket sending to our RTP socket.
struct Caller {
    socket: UdpSocket,
    to: SocketAddr,
    seq: u16,
    /// The payload type audio goes on: PCMU's unless a test changes it.
    payload_type: u8,
}

impl Caller {
    async fn new(to: SocketAddr) -> Self {
        let socket = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        Caller {
            socket,
            to,
            seq: 1000,
            payload_type: 0,
        }
    }

    /// Sends `frames` frames of 20 ms of μ-law, paced a little so the
    /// loopback socket buffer never overflows.
    async fn send_audio(&mut self, frames: u32) {
        for i in 0..frames {
            let ts = u32::from(self.seq.wrapping_sub(1000)) * PTIME;
            let datagram = packet(self.payload_type, self.seq, ts, &[0x80; PTIME as usize]);
            self.socket.send_to(&datagram, self.to).await.unwrap();
            self.seq = self.seq.wrapping_add(1);
            if i % 10 == 9 {
                time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    /// Sends a key press as RFC 4733 events: two updates and three ends.
    async fn press(&mut self, event: u8) {
        let ts = u32::from(self.seq.wrapping_sub(1000)) * PTIME;
        for end in [false, false, true, true, true] {
            let flags = if end { 0x80 } else { 0 };
            let datagram = packet(101, self.seq, ts, &[event, flags | 10, 0, 160]);
            self.socket.send_to(&datagram, self.to).await.unwrap();
            self.seq = self.seq.wrapping_add(1);
        }
    }
}

async fn bind() -> RtpSocket {
    RtpSocket::bind(LOOPBACK, 42000..=42999).await.unwrap()
}

/// Runs `record` with a sink that keeps the samples.
async fn run(
    socket: &RtpSocket,
    n: &Negotiated,
    limits: RecordLimits,
    commands: &mut mpsc::Receiver<MediaCommand>,
    stop: CancellationToken,
) -> (RecordEnd, ReceiverStats, Vec<i16>) {
    let mut pcm = Vec::new();
    let mut sink = |samples: &[i16]| -> Result<(), String> {
        pcm.extend_from_slice(samples);
        Ok(())
    };
    let (end, stats) = record(socket, n, limits, commands, stop, None, &mut sink).await;
    (end, stats, pcm)
}

#[tokio::test]
async fn two_seconds_of_packets_make_two_seconds_of_pcm() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, mut commands) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let n = negotiated(Direction::SendRecv);
    let recording = run(&socket, &n, limits(), &mut commands, stop.clone());
    let call = async {
        caller.send_audio(100).await;
        time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
    };
    let ((end, stats, pcm), ()) = tokio::join!(recording, call);
    assert_eq!(end, RecordEnd::Stopped);
    assert_eq!(pcm.len(), 16_000);
    assert_eq!(stats.received, 100);
    assert_eq!(stats.lost, 0);
}

#[tokio::test]
async fn hash_ends_the_recording() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, mut commands) = mpsc::channel(4);
    let n = negotiated(Direction::SendRecv);
    let recording = run(
        &socket,
        &n,
        limits(),
        &mut commands,
        CancellationToken::new(),
    );
    let call = async {
        caller.send_audio(50).await;
        caller.press(11).await;
    };
    let ((end, stats, pcm), ()) = tokio::join!(recording, call);
    assert_eq!(end, RecordEnd::Dtmf('#'));
    assert_eq!(pcm.len(), 8_000, "the buffered audio is flushed");
    assert_eq!(stats.dtmf_digits, 1);
}

#[tokio::test]
async fn other_digits_do_not_end_it() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, mut commands) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let n = negotiated(Direction::SendRecv);
    let recording = run(&socket, &n, limits(), &mut commands, stop.clone());
    let call = async {
        caller.press(5).await;
        time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
    };
    let ((end, stats, _), ()) = tokio::join!(recording, call);
    assert_eq!(end, RecordEnd::Stopped);
    assert_eq!(stats.dtmf_digits, 1);
}

#[tokio::test]
async fn silence_on_the_wire_times_out() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, mut commands) = mpsc::channel(4);
    let limits = RecordLimits {
        rtp_timeout: Duration::from_millis(300),
        ..limits()
    };
    let n = negotiated(Direction::SendRecv);
    let started = Instant::now();
    let recording = run(&socket, &n, limits, &mut commands, CancellationToken::new());
    let ((end, _, pcm), ()) = tokio::join!(recording, caller.send_audio(10));
    assert_eq!(end, RecordEnd::RtpTimeout);
    assert_eq!(pcm.len(), 1_600);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn no_rtp_at_all_times_out() {
    let socket = bind().await;
    let (_tx, mut commands) = mpsc::channel(4);
    let limits = RecordLimits {
        rtp_timeout: Duration::from_millis(150),
        ..limits()
    };
    let n = negotiated(Direction::SendRecv);
    let (end, stats, pcm) = run(&socket, &n, limits, &mut commands, CancellationToken::new()).await;
    assert_eq!(end, RecordEnd::RtpTimeout);
    assert!(pcm.is_empty());
    assert_eq!(stats.received, 0);
}

#[tokio::test]
async fn hold_suspends_the_timeout_until_resumed() {
    let socket = bind().await;
    let (tx, mut commands) = mpsc::channel(4);
    let limits = RecordLimits {
        rtp_timeout: Duration::from_millis(100),
        ..limits()
    };
    let held = negotiated(Direction::SendOnly);
    let started = Instant::now();
    let recording = run(
        &socket,
        &held,
        limits,
        &mut commands,
        CancellationToken::new(),
    );
    let call = async {
        time::sleep(Duration::from_millis(400)).await;
        tx.send(MediaCommand::Update(negotiated(Direction::SendRecv)))
            .await
            .unwrap();
    };
    let ((end, _, _), ()) = tokio::join!(recording, call);
    assert_eq!(end, RecordEnd::RtpTimeout);
    // On hold for 400 ms, then the timeout counts from the resume.
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn the_maximum_length_cuts_exactly() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, mut commands) = mpsc::channel(4);
    let limits = RecordLimits {
        max_length: Duration::from_millis(1_000),
        ..limits()
    };
    let n = negotiated(Direction::SendRecv);
    let recording = run(&socket, &n, limits, &mut commands, CancellationToken::new());
    let ((end, _, pcm), ()) = tokio::join!(recording, caller.send_audio(100));
    assert_eq!(end, RecordEnd::MaxLength);
    assert_eq!(pcm.len(), 8_000);
}

/// G.722 records at 16 kHz: the maximum length counts samples at that rate.
#[tokio::test]
async fn the_maximum_length_counts_at_the_codecs_audio_rate() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    caller.payload_type = 9;
    let (_tx, mut commands) = mpsc::channel(4);
    let limits = RecordLimits {
        max_length: Duration::from_millis(1_000),
        ..limits()
    };
    let n = Negotiated {
        codec: Codec::G722,
        payload_type: 9,
        ..negotiated(Direction::SendRecv)
    };
    let recording = run(&socket, &n, limits, &mut commands, CancellationToken::new());
    let ((end, _, pcm), ()) = tokio::join!(recording, caller.send_audio(100));
    assert_eq!(end, RecordEnd::MaxLength);
    assert_eq!(pcm.len(), 16_000);
}

#[tokio::test]
async fn a_failing_sink_ends_the_recording() {
    let socket = bind().await;
    let mut caller = Caller::new(socket.local_addr()).await;
    let (_tx, mut commands) = mpsc::channel(4);
    let n = negotiated(Direction::SendRecv);
    let mut sink = |_: &[i16]| -> Result<(), String> { Err("disk full".to_owned()) };
    let recording = record(
        &socket,
        &n,
        limits(),
        &mut commands,
        CancellationToken::new(),
        None,
        &mut sink,
    );
    let ((end, _), ()) = tokio::join!(recording, caller.send_audio(5));
    assert_eq!(end, RecordEnd::SinkFailed("disk full".to_owned()));
}

#[test]
fn samples_follow_the_recording_rate() {
    assert_eq!(samples_in(Duration::from_secs(2), 8000), 16_000);
    assert_eq!(samples_in(Duration::from_micros(125), 8000), 1);
    assert_eq!(samples_in(Duration::ZERO, 8000), 0);
    assert_eq!(samples_in(Duration::from_secs(2), 16_000), 32_000);
}

//! The caller's side of the media: SDP for an RTP socket the test owns, and
//! G.711 audio sent from it as real-time RTP (RFC 3550), as a phone would.
//!
//! SIPp streams audio only from its scenarios; tests that drive SIP by hand
//! (a call whose SDP travels in the ACK, a caller that falls silent) send
//! their RTP with this.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// G.711 at 8 kHz: 160 one-byte samples per 20 ms packet.
pub const FRAME_BYTES: usize = 160;
/// The packet interval.
pub const FRAME: Duration = Duration::from_millis(20);

/// An RTP sender on a UDP socket of its own (its address goes in the SDP;
/// vmesh latches on it, symmetric RTP).
pub struct RtpSender {
    socket: UdpSocket,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
}

impl RtpSender {
    /// Binds an ephemeral port on `ip`.
    pub fn bind(ip: Ipv4Addr) -> RtpSender {
        let socket = UdpSocket::bind((ip, 0)).expect("bind a UDP socket for RTP");
        let port = socket.local_addr().expect("local address").port();
        RtpSender {
            socket,
            ssrc: 0x5eed_0000 | u32::from(port),
            sequence: port.wrapping_mul(7),
            timestamp: u32::from(port) << 12,
        }
    }

    /// The address the SDP advertises.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// Sends `payload` to `dest` as packets of 20 ms (160 bytes) with
    /// `payload_type`, paced on the wall clock (each packet at its own time
    /// from the first, so the stream does not drift), the marker bit on the
    /// first. Returns the audio time sent, rounded down to whole packets.
    pub fn stream(&mut self, dest: SocketAddr, payload_type: u8, payload: &[u8]) -> Duration {
        let start = Instant::now();
        let mut sent = 0u32;
        for (i, frame) in payload.chunks_exact(FRAME_BYTES).enumerate() {
            let due = start + FRAME * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let marker = if i == 0 { 0x80 } else { 0 };
            let mut packet = Vec::with_capacity(12 + FRAME_BYTES);
            packet.push(0x80); // version 2, no padding, extension or CSRC
            packet.push(marker | (payload_type & 0x7f));
            packet.extend_from_slice(&self.sequence.to_be_bytes());
            packet.extend_from_slice(&self.timestamp.to_be_bytes());
            packet.extend_from_slice(&self.ssrc.to_be_bytes());
            packet.extend_from_slice(frame);
            self.socket
                .send_to(&packet, dest)
                .expect("send an RTP packet");
            self.sequence = self.sequence.wrapping_add(1);
            self.timestamp = self.timestamp.wrapping_add(FRAME_BYTES as u32);
            sent += 1;
        }
        FRAME * sent
    }
}

/// An SDP body (offer or answer) for audio at `rtp` with the given payload
/// types, each `(type, "NAME/8000")`.
pub fn sdp(rtp: SocketAddr, formats: &[(u8, &str)]) -> String {
    let types: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut text = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {types}\r\n",
        ip = rtp.ip(),
        port = rtp.port(),
        types = types.join(" "),
    );
    for (pt, name) in formats {
        text.push_str(&format!("a=rtpmap:{pt} {name}\r\n"));
    }
    text.push_str("a=sendrecv\r\n");
    text
}

/// Where an SDP body asks for audio: the session or media `c=` address
/// and the `m=audio` port.
pub fn sdp_audio_addr(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .filter_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .next_back()?
        .trim();
    let port = sdp_audio_line(sdp)?.first()?.parse::<u16>().ok()?;
    Some(SocketAddr::new(ip.parse().ok()?, port))
}

/// The payload types of the `m=audio` line, in order.
pub fn sdp_payload_types(sdp: &str) -> Vec<u8> {
    sdp_audio_line(sdp)
        .map(|fields| fields[2..].iter().filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default()
}

/// The payload type an `a=rtpmap` line gives to `encoding` (e.g.
/// "telephone-event"), case-insensitively.
pub fn sdp_rtpmap(sdp: &str, encoding: &str) -> Option<u8> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a=rtpmap:"))
        .filter_map(|m| m.split_once(' '))
        .find(|(_, name)| {
            name.split('/')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(encoding))
        })
        .and_then(|(pt, _)| pt.trim().parse().ok())
}

/// The fields after "m=audio ": port, protocol, payload types.
fn sdp_audio_line(sdp: &str) -> Option<Vec<&str>> {
    let line = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields.len() >= 3).then_some(fields)
}

//! The paced sender: each call's RTP stream leaves on its own grid.
//!
//! Call `i` of `n` sends packet `k` at `start + k × 20 ms + phase(i)`, the
//! phases spread evenly over the 20 ms packet time as independent callers'
//! would be (RFC 3551 §4.5.14: PCMU, 8000 Hz, 160 octets per 20 ms). The
//! thread sleeps until the next deadline (absolute, so a late wake-up does
//! not shift later packets), but wakes at most once per `granularity`
//! (a packet due meanwhile waits for the next wake-up, as on a PBX's
//! 1 ms media timer), then sends every packet that is due, up to 64 in one
//! `sendmmsg(2)`, and records how late each left. Without the granularity
//! each packet would cost a wake-up of its own: at thousands of calls the
//! sender would spend more CPU in sleeping than in sending. Each packet is an
//! RFC 3550 §5.1 header (version 2, the marker bit on the first packet, one
//! SSRC, sequence numbers and timestamps from random starting points) and
//! the next 20 ms frame of the call's audio, read in a loop from its
//! offset: 160 octets of G.711 μ-law, or of G.722 at 64 kbit/s whose RTP
//! clock counts 8000 a second (RFC 3551 §4.5.2), or one Opus packet, whose
//! RTP clock counts 48,000 a second whatever the audio's rate (RFC 7587
//! §4.1).

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use crate::audio::{Audio, MAX_FRAME};
use crate::clock::{mono_ns, sleep_until};
use crate::lateness::Histogram;

/// The packet time, in nanoseconds.
pub const PTIME_NS: u64 = 20_000_000;
/// The codecs the calls can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    G722,
    Opus,
}

impl Codec {
    pub fn parse(name: &str) -> Result<Codec, String> {
        match name.to_ascii_lowercase().as_str() {
            "pcmu" => Ok(Codec::Pcmu),
            "g722" => Ok(Codec::G722),
            "opus" => Ok(Codec::Opus),
            _ => Err(format!("--codec {name}: pcmu, g722 or opus")),
        }
    }

    /// The payload type: static for G.711 and G.722 (RFC 3551 table 4),
    /// a dynamic one for Opus (RFC 7587 §7), the one Asterisk uses.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::G722 => 9,
            Codec::Opus => 111,
        }
    }

    /// The SDP rtpmap encoding (RFC 3551 table 4, RFC 7587 §7).
    pub fn rtpmap(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU/8000",
            Codec::G722 => "G722/8000",
            Codec::Opus => "opus/48000/2",
        }
    }

    /// RTP timestamp units per 20 ms packet.
    pub fn timestamp_step(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::G722 => 160,
            Codec::Opus => 960,
        }
    }
}
const HEADER: usize = 12;
const PACKET: usize = HEADER + MAX_FRAME;
const BATCH: usize = 64;

/// One call's outgoing RTP stream.
#[derive(Clone, Debug)]
pub struct Stream {
    pub dest: SocketAddrV4,
    pub ssrc: u32,
    pub first_seq: u16,
    pub first_ts: u32,
    /// Where in the audio the stream starts, in frames (20 ms each).
    pub offset: usize,
    /// When in each 20 ms period this stream's packet is due.
    pub phase_ns: u64,
    pub payload_type: u8,
    /// RTP timestamp units per packet.
    pub timestamp_step: u32,
}

impl Stream {
    /// Writes packet `k` of this stream into `out`; returns its length.
    fn packet(&self, k: u32, audio: &Audio, out: &mut [u8; PACKET]) -> usize {
        let marker = if k == 0 { 0x80 } else { 0 };
        out[0] = 0x80; // version 2, no padding, no extension, no CSRC
        out[1] = marker | self.payload_type;
        out[2..4].copy_from_slice(&self.first_seq.wrapping_add(k as u16).to_be_bytes());
        let ts = self
            .first_ts
            .wrapping_add(k.wrapping_mul(self.timestamp_step));
        out[4..8].copy_from_slice(&ts.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let frame = audio.frame(self.offset + k as usize);
        out[HEADER..HEADER + frame.len()].copy_from_slice(frame);
        HEADER + frame.len()
    }
}

/// What one sender thread did.
#[derive(Default)]
pub struct SendReport {
    pub sent: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub lateness: Histogram,
    /// Number of `sendmmsg` calls made.
    pub syscalls: u64,
}

/// Packets waiting to leave in one `sendmmsg`.
struct Batch {
    packets: Vec<[u8; PACKET]>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_in>,
    deadlines: Vec<u64>,
    len: usize,
}

impl Batch {
    fn new() -> Batch {
        // SAFETY: sockaddr_in is plain data; all zeros is a valid value.
        let zero_addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        Batch {
            packets: vec![[0; PACKET]; BATCH],
            lens: vec![0; BATCH],
            addrs: vec![zero_addr; BATCH],
            deadlines: vec![0; BATCH],
            len: 0,
        }
    }

    fn push(&mut self, stream: &Stream, k: u32, audio: &Audio, deadline: u64) {
        let i = self.len;
        self.lens[i] = stream.packet(k, audio, &mut self.packets[i]);
        let addr = &mut self.addrs[i];
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = stream.dest.port().to_be();
        addr.sin_addr.s_addr = u32::from(*stream.dest.ip()).to_be();
        self.deadlines[i] = deadline;
        self.len += 1;
    }

    fn is_full(&self) -> bool {
        self.len == BATCH
    }

    /// Sends what is queued; records each packet's lateness.
    fn flush(&mut self, fd: i32, report: &mut SendReport) {
        if self.len == 0 {
            return;
        }
        let mut iovs: Vec<libc::iovec> = self
            .packets
            .iter_mut()
            .zip(&self.lens)
            .take(self.len)
            .map(|(p, &len)| libc::iovec {
                iov_base: p.as_mut_ptr().cast(),
                iov_len: len,
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .zip(self.addrs.iter_mut())
            .map(|(iov, addr)| {
                // SAFETY: msghdr is plain data; zero is a valid start.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in).cast();
                h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        let now = mono_ns();
        for &d in &self.deadlines[..self.len] {
            report.lateness.record(now.saturating_sub(d));
        }
        let mut done = 0;
        let mut failed = 0;
        while done < self.len {
            // SAFETY: the headers point at live buffers and addresses of
            // this batch; the count is within the vector.
            let rc = unsafe {
                libc::sendmmsg(
                    fd,
                    headers[done..].as_mut_ptr(),
                    (self.len - done) as u32,
                    0,
                )
            };
            report.syscalls += 1;
            if rc > 0 {
                done += rc as usize;
                continue;
            }
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // The first packet of the rest failed: count it and go on.
            failed += 1;
            report.first_error.get_or_insert_with(|| error.to_string());
            done += 1;
        }
        report.failed += failed;
        report.sent += (self.len as u64) - failed;
        self.len = 0;
    }
}

/// Sends `packets` packets of each stream from `start` (monotonic ns) on
/// `socket`. `streams` must be sorted by phase.
pub fn send_streams(
    socket: &UdpSocket,
    streams: &[Stream],
    audio: &Audio,
    start: u64,
    packets: u32,
    granularity_ns: u64,
) -> SendReport {
    let mut report = SendReport::default();
    if streams.is_empty() {
        return report;
    }
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    let mut woke = 0;
    for k in 0..packets {
        let period = start + u64::from(k) * PTIME_NS;
        for stream in streams {
            let deadline = period + stream.phase_ns;
            if deadline > mono_ns() {
                batch.flush(fd, &mut report);
                sleep_until(deadline.max(woke + granularity_ns));
                woke = mono_ns();
            }
            batch.push(stream, k, audio, deadline);
            if batch.is_full() {
                batch.flush(fd, &mut report);
            }
        }
    }
    batch.flush(fd, &mut report);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_follow_rfc_3550_and_loop_the_audio() {
        let audio = Audio::fixed((0..320u32).map(|i| i as u8).collect()).unwrap();
        let mut s = Stream {
            dest: "127.0.0.1:4000".parse().unwrap(),
            ssrc: 0x0102_0304,
            first_seq: 65535,
            first_ts: u32::MAX - 100,
            offset: 1,
            phase_ns: 0,
            payload_type: 0,
            timestamp_step: Codec::Pcmu.timestamp_step(),
        };
        let mut p = [0u8; PACKET];
        assert_eq!(s.packet(0, &audio, &mut p), 172);
        assert_eq!(&p[..4], &[0x80, 0x80, 0xff, 0xff]);
        assert_eq!(&p[8..12], &[1, 2, 3, 4]);
        assert_eq!(p[12], 160);
        s.packet(1, &audio, &mut p);
        assert_eq!(&p[..4], &[0x80, 0x00, 0x00, 0x00]);
        assert_eq!(u32::from_be_bytes([p[4], p[5], p[6], p[7]]), 59);
        assert_eq!(p[12], 0, "wrapped to the start of the audio");
        // Opus: a 48 kHz clock, 960 units per 20 ms.
        s.payload_type = Codec::Opus.payload_type();
        s.timestamp_step = Codec::Opus.timestamp_step();
        s.packet(1, &audio, &mut p);
        assert_eq!(p[1], 111);
        assert_eq!(u32::from_be_bytes([p[4], p[5], p[6], p[7]]), 859);
    }

    #[test]
    fn every_packet_arrives_on_time() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = match rx.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let audio = Audio::fixed(vec![0xffu8; 1600]).unwrap();
        let streams: Vec<Stream> = (0..3)
            .map(|i| Stream {
                dest,
                ssrc: i,
                first_seq: 0,
                first_ts: 0,
                offset: 0,
                phase_ns: u64::from(i) * 5_000_000,
                payload_type: 0,
                timestamp_step: 160,
            })
            .collect();
        let start = mono_ns() + 1_000_000;
        let report = send_streams(&tx, &streams, &audio, start, 5, 1_000_000);
        assert_eq!((report.sent, report.failed), (15, 0));
        assert_eq!(report.lateness.count(), 15);
        let elapsed = mono_ns() - start;
        assert!(elapsed >= 4 * PTIME_NS + 10_000_000, "{elapsed}");
        let mut buf = [0u8; 400];
        for _ in 0..15 {
            assert_eq!(rx.recv(&mut buf).unwrap(), HEADER + 160);
        }
    }
}

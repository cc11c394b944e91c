//! RTCP for one call (RFC 3550 §6): the reports that tell the caller's
//! PBX, SBC or phone that vmesh is alive and how its stream arrives.
//!
//! PBXs watch RTCP as well as RTP: a silent media path is a dead call to
//! Asterisk's `rtp_timeout` and to an SBC's media-inactivity timer. vmesh
//! sends, every 2 to 6 s ([`interval`]), a compound packet (§6.1) of a
//! sender report (SR, §6.4.1: we send RTP) or a receiver report (RR,
//! §6.4.2: we did not send lately, e.g. while the caller holds the call),
//! with a report block on the caller's stream ([`reception`]), and an SDES
//! CNAME (§6.5.1, a random short-term one as RFC 7022 recommends); and an
//! RTCP BYE (§6.6) when the call's media ends.
//!
//! Reports go to the caller's RTCP port (RTP + 1, §11, or its SDP
//! `a=rtcp`, RFC 3605) from ours (our RTP port + 1), or multiplexed on the
//! RTP ports when both sides said `a=rtcp-mux` (RFC 5761). Incoming RTCP
//! is parsed for the caller's sender reports (for LSR/DLSR) and otherwise
//! only counted.
//!
//! Packets are built and parsed with the `rtcp` crate (webrtc-rs, as the
//! `rtp` crate of the receive path). Sans-IO: the caller of
//! [`RtcpSession`] hands it instants and datagrams and polls it for the
//! next report and its deadline.

pub mod interval;
pub mod reception;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rtcp::goodbye::Goodbye;
use rtcp::packet::Packet;
use rtcp::receiver_report::ReceiverReport;
use rtcp::sender_report::SenderReport;
use rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};

use self::interval::{rtcp_interval, IntervalInputs};
use self::reception::Reception;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// IP + UDP header octets counted into the average RTCP size (§6.3.3).
const LOWER_LAYER_OCTETS: f64 = 28.0;

/// Wall-clock time for SR NTP timestamps, anchored once so the core can
/// derive it from monotonic instants.
#[derive(Debug, Clone, Copy)]
pub struct NtpClock {
    at: Instant,
    /// Nanoseconds since the Unix epoch at `at`.
    unix_nanos: u128,
}

impl NtpClock {
    /// The wall clock `wall` seen at `at`.
    pub fn new(at: Instant, wall: SystemTime) -> NtpClock {
        let unix_nanos = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        NtpClock { at, unix_nanos }
    }

    /// The 64-bit NTP timestamp (RFC 3550 §4) of `now`.
    pub fn ntp(&self, now: Instant) -> u64 {
        let nanos = self.unix_nanos + now.saturating_duration_since(self.at).as_nanos();
        let secs = (nanos / 1_000_000_000) as u64 + NTP_UNIX_OFFSET;
        let frac = ((nanos % 1_000_000_000) << 32) / 1_000_000_000;
        (secs << 32) | frac as u64
    }
}

/// How our RTP timestamps relate to time, for the SR's RTP timestamp:
/// the pacing grid's start and the timestamp it carries.
#[derive(Debug, Clone, Copy)]
pub struct RtpClock {
    /// When the grid's first slot was due.
    pub start: Instant,
    /// The timestamp of that slot.
    pub timestamp: u32,
    /// The RTP clock rate in Hz.
    pub rate: u32,
}

impl RtpClock {
    /// The RTP timestamp that corresponds to `now`.
    pub fn at(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let ticks = elapsed * u128::from(self.rate) / 1_000_000_000;
        self.timestamp.wrapping_add(ticks as u32)
    }
}

/// Counters of the RTCP traffic of one call, for its log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RtcpStats {
    /// Compound reports sent.
    pub sent: u64,
    /// RTCP packets received from the caller.
    pub received: u64,
    /// RTCP datagrams that did not parse.
    pub malformed: u64,
}

/// The RTCP side of one call; see the module documentation.
pub struct RtcpSession {
    ssrc: u32,
    cname: Bytes,
    ntp: NtpClock,
    rtp_clock: Option<RtpClock>,
    session_bps: f64,
    rng: SmallRng,
    next_at: Instant,
    initial: bool,
    avg_size: f64,
    /// RTP packets and payload octets we sent (for the SR).
    packets_sent: u32,
    octets_sent: u32,
    /// Whether we sent RTP since the report before last (§6.4).
    sent_since: [bool; 2],
    reception: Option<Reception>,
    stats: RtcpStats,
}

impl RtcpSession {
    /// The RTCP of a stream whose SSRC is `ssrc`, started at `now` with
    /// the wall clock `wall`; `session_bps` is the session bandwidth
    /// (RFC 3550 §6.2) and `seed` randomizes the CNAME and intervals.
    pub fn new(ssrc: u32, now: Instant, wall: SystemTime, session_bps: u32, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        // RFC 7022 §4.2: 96 random bits, base64-like; hex is as good.
        let cname: String = (0..12)
            .map(|_| format!("{:02x}", rng.random::<u8>()))
            .collect();
        let mut session = RtcpSession {
            ssrc,
            cname: Bytes::from(cname),
            ntp: NtpClock::new(now, wall),
            rtp_clock: None,
            session_bps: f64::from(session_bps),
            rng,
            next_at: now,
            initial: true,
            avg_size: 100.0,
            packets_sent: 0,
            octets_sent: 0,
            sent_since: [false; 2],
            reception: None,
            stats: RtcpStats::default(),
        };
        session.next_at = now + session.interval(false);
        session
    }

    /// Our SSRC, the same as our RTP stream's.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Our stream's SSRC changed (a codec of another clock rate).
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.ssrc = ssrc;
        self.packets_sent = 0;
        self.octets_sent = 0;
    }

    /// The CNAME we report.
    pub fn cname(&self) -> &str {
        std::str::from_utf8(&self.cname).unwrap_or_default()
    }

    /// Where our RTP timestamps stand in time.
    pub fn set_rtp_clock(&mut self, clock: RtpClock) {
        self.rtp_clock = Some(clock);
    }

    /// Counts an RTP packet we sent with `payload_len` octets of payload.
    pub fn on_rtp_sent(&mut self, payload_len: usize) {
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload_len as u32);
        self.sent_since[0] = true;
    }

    /// Counts an RTP packet from the caller (one its source rules took).
    pub fn on_rtp_received(
        &mut self,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        clock: u32,
        now: Instant,
    ) {
        let arrival = {
            let nanos = now.saturating_duration_since(self.ntp.at).as_nanos();
            (nanos * u128::from(clock) / 1_000_000_000) as u32
        };
        let reception = match &mut self.reception {
            Some(r) if r.ssrc() == ssrc => r,
            slot => slot.insert(Reception::new(ssrc, seq)),
        };
        reception.on_packet(seq, timestamp, arrival);
    }

    /// Takes an RTCP datagram from the caller: its sender reports feed the
    /// LSR/DLSR of our next report block.
    pub fn on_rtcp(&mut self, datagram: &[u8], now: Instant) {
        let mut buf = datagram;
        let Ok(packets) = rtcp::packet::unmarshal(&mut buf) else {
            self.stats.malformed += 1;
            return;
        };
        self.stats.received += 1;
        for packet in &packets {
            if let Some(sr) = packet.as_any().downcast_ref::<SenderReport>() {
                if let Some(r) = self.reception.as_mut().filter(|r| r.ssrc() == sr.ssrc) {
                    r.on_sender_report(sr.ntp_time, now);
                }
            }
        }
    }

    /// When the next report is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_at
    }

    /// The report due at `now`, if one is, written into `out` (cleared
    /// first); the next one is then scheduled.
    pub fn poll_report(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if now < self.next_at {
            return false;
        }
        let packets = self.report(now, None);
        self.write(&packets, out);
        self.initial = false;
        self.sent_since = [false, self.sent_since[0]];
        self.next_at = now + self.interval(self.sent_since[1]);
        true
    }

    /// The last report with an RTCP BYE (RFC 3550 §6.6), sent when the
    /// call's media ends.
    pub fn goodbye(&mut self, now: Instant, out: &mut Vec<u8>) {
        let packets = self.report(
            now,
            Some(Goodbye {
                sources: vec![self.ssrc],
                reason: Bytes::new(),
            }),
        );
        self.write(&packets, out);
    }

    /// The counters so far.
    pub fn stats(&self) -> RtcpStats {
        self.stats
    }

    fn report(&mut self, now: Instant, bye: Option<Goodbye>) -> Vec<Box<dyn Packet + Send + Sync>> {
        let reports: Vec<_> = self
            .reception
            .as_mut()
            .map(|r| r.report(now))
            .into_iter()
            .collect();
        let we_sent = self.sent_since.iter().any(|&s| s);
        let first: Box<dyn Packet + Send + Sync> = match (we_sent, self.rtp_clock) {
            (true, Some(clock)) => Box::new(SenderReport {
                ssrc: self.ssrc,
                ntp_time: self.ntp.ntp(now),
                rtp_time: clock.at(now),
                packet_count: self.packets_sent,
                octet_count: self.octets_sent,
                reports,
                profile_extensions: Bytes::new(),
            }),
            _ => Box::new(ReceiverReport {
                ssrc: self.ssrc,
                reports,
                profile_extensions: Bytes::new(),
            }),
        };
        let sdes = SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: self.ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: self.cname.clone(),
                }],
            }],
        };
        let mut packets: Vec<Box<dyn Packet + Send + Sync>> = vec![first, Box::new(sdes)];
        if let Some(bye) = bye {
            packets.push(Box::new(bye));
        }
        packets
    }

    fn write(&mut self, packets: &[Box<dyn Packet + Send + Sync>], out: &mut Vec<u8>) {
        out.clear();
        if let Ok(bytes) = rtcp::packet::marshal(packets) {
            out.extend_from_slice(&bytes);
            self.stats.sent += 1;
            // §6.3.3: a moving average with weight 1/16.
            let size = bytes.len() as f64 + LOWER_LAYER_OCTETS;
            self.avg_size += (size - self.avg_size) / 16.0;
        }
    }

    fn interval(&mut self, we_sent: bool) -> Duration {
        let senders = 1 + u32::from(we_sent);
        let inputs = IntervalInputs {
            members: 2,
            senders,
            session_bps: self.session_bps,
            we_sent,
            avg_rtcp_size: self.avg_size,
            initial: self.initial,
        };
        rtcp_interval(inputs, &mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtcp::packet::unmarshal;

    fn parse(bytes: &[u8]) -> Vec<Box<dyn Packet + Send + Sync>> {
        let mut buf = bytes;
        unmarshal(&mut buf).unwrap()
    }

    #[test]
    fn ntp_time_of_a_known_instant() {
        let at = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(1_500);
        let clock = NtpClock::new(at, wall);
        let ntp = clock.ntp(at + Duration::from_millis(250));
        assert_eq!(ntp >> 32, NTP_UNIX_OFFSET + 1);
        // 0.75 s as a 32-bit fraction.
        assert_eq!(ntp & 0xFFFF_FFFF, 3 << 30);
    }

    #[test]
    fn a_sender_report_with_a_block_on_the_caller_then_receiver_reports() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(0xABCD, t0, SystemTime::now(), 80_000, 3);
        rtcp.set_rtp_clock(RtpClock {
            start: t0,
            timestamp: 1000,
            rate: 8000,
        });
        assert!(!rtcp.poll_report(t0, &mut Vec::new()), "not due at once");
        let first = rtcp.poll_timeout();
        let gap = first - t0;
        assert!(
            gap <= Duration::from_secs_f64(2.5 * 1.5 / 1.218) && gap >= Duration::from_millis(1000)
        );
        for seq in 0..50u16 {
            let now = t0 + Duration::from_millis(20 * u64::from(seq));
            rtcp.on_rtp_received(0x77, seq, u32::from(seq) * 160, 8000, now);
            rtcp.on_rtp_sent(160);
        }
        let mut out = Vec::new();
        assert!(rtcp.poll_report(first, &mut out));
        let packets = parse(&out);
        let sr = packets[0]
            .as_any()
            .downcast_ref::<SenderReport>()
            .expect("an SR first");
        assert_eq!(sr.ssrc, 0xABCD);
        assert_eq!(sr.packet_count, 50);
        assert_eq!(sr.octet_count, 8000);
        let elapsed = (first - t0).as_secs_f64();
        let expected_ts = 1000 + (elapsed * 8000.0) as u32;
        assert!(sr.rtp_time.abs_diff(expected_ts) <= 1);
        assert_eq!(sr.reports.len(), 1);
        assert_eq!(sr.reports[0].ssrc, 0x77);
        assert_eq!(sr.reports[0].last_sequence_number, 49);
        let sdes = packets[1]
            .as_any()
            .downcast_ref::<SourceDescription>()
            .expect("SDES second");
        assert_eq!(sdes.chunks[0].items[0].text.len(), 24);
        // The next one within 2 to 6 s.
        let next = rtcp.poll_timeout() - first;
        assert!(
            (Duration::from_secs(2)..=Duration::from_millis(6200)).contains(&next),
            "{next:?}"
        );
        // Nothing sent for two intervals: receiver reports.
        let second = rtcp.poll_timeout();
        assert!(rtcp.poll_report(second, &mut out));
        let third = rtcp.poll_timeout();
        assert!(rtcp.poll_report(third, &mut out));
        assert!(parse(&out)[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .is_some());
    }

    #[test]
    fn the_callers_sender_report_feeds_lsr_and_a_bye_ends() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(1, t0, SystemTime::now(), 80_000, 1);
        rtcp.on_rtp_received(0x55, 7, 0, 8000, t0);
        let caller = SenderReport {
            ssrc: 0x55,
            ntp_time: 0x0102_0304_0506_0708,
            ..Default::default()
        };
        let bytes =
            rtcp::packet::marshal(&[Box::new(caller) as Box<dyn Packet + Send + Sync>]).unwrap();
        rtcp.on_rtcp(&bytes, t0);
        rtcp.on_rtcp(b"\x80\xc8garbage", t0);
        assert_eq!(rtcp.stats().received, 1);
        assert_eq!(rtcp.stats().malformed, 1);
        let mut out = Vec::new();
        rtcp.goodbye(t0 + Duration::from_secs(1), &mut out);
        let packets = parse(&out);
        let rr = packets[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .unwrap();
        assert_eq!(rr.reports[0].last_sender_report, 0x0304_0506);
        assert_eq!(rr.reports[0].delay, 65_536);
        assert!(packets[2].as_any().downcast_ref::<Goodbye>().is_some());
    }
}

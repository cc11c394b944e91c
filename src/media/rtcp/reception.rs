//! What we know of the caller's RTP stream, for the report block of our
//! RTCP reports (RFC 3550 §6.4.1): packets expected and lost (A.3), the
//! extended highest sequence number (A.1), the interarrival jitter (A.8)
//! and when the caller's last sender report arrived (LSR and DLSR, for its
//! round-trip time).
//!
//! Only packets the call's source rules accepted are counted, so a
//! stranger's packets never appear in what we report.

use std::time::Instant;

use rtcp::reception_report::ReceptionReport;

/// A sequence jump this large is a restarted sender (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// Packets this far behind are reordered ones, not a restart (A.1).
const MAX_MISORDER: u16 = 100;

/// Reception statistics of one source (one SSRC).
#[derive(Debug, Clone, PartialEq)]
pub struct Reception {
    ssrc: u32,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// The previous packet's relative transit time, in RTP clock units.
    transit: Option<i64>,
    /// The interarrival jitter estimate, in RTP clock units (A.8).
    jitter: f64,
    /// The middle 32 bits of the NTP time of the source's last SR.
    last_sr: u32,
    last_sr_at: Option<Instant>,
}

impl Reception {
    /// Starts following `ssrc` from its packet `seq`.
    pub fn new(ssrc: u32, seq: u16) -> Reception {
        Reception {
            ssrc,
            base_seq: u32::from(seq),
            max_seq: seq,
            cycles: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0.0,
            last_sr: 0,
            last_sr_at: None,
        }
    }

    /// The source followed.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Counts one packet: its sequence number, its RTP timestamp and its
    /// arrival time expressed in the same RTP clock (A.8).
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, arrival: u32) {
        let delta = seq.wrapping_sub(self.max_seq);
        if delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A jump: the sender restarted its numbering (A.1 would wait
            // for a second packet; the source rules already vetted it).
            *self = Reception {
                last_sr: self.last_sr,
                last_sr_at: self.last_sr_at,
                ..Reception::new(self.ssrc, seq)
            };
        }
        self.received += 1;
        let transit = i64::from(arrival.wrapping_sub(timestamp) as i32);
        if let Some(previous) = self.transit {
            let d = (transit - previous).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// Notes the caller's sender report: its NTP time (64-bit) and when it
    /// arrived.
    pub fn on_sender_report(&mut self, ntp_time: u64, now: Instant) {
        self.last_sr = (ntp_time >> 16) as u32;
        self.last_sr_at = Some(now);
    }

    /// The report block for our next RTCP packet (RFC 3550 §6.4.1), which
    /// also starts the next reporting interval for the fraction lost.
    pub fn report(&mut self, now: Instant) -> ReceptionReport {
        let extended_max = u64::from(self.cycles) + u64::from(self.max_seq);
        let expected = (extended_max + 1).saturating_sub(u64::from(self.base_seq));
        let lost = i64::try_from(expected).unwrap_or(i64::MAX)
            - i64::try_from(self.received).unwrap_or(i64::MAX);
        // A 24-bit signed count, clamped (A.3).
        let total_lost = lost.clamp(-0x80_0000, 0x7F_FFFF) as i32 as u32 & 0xFF_FFFF;
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        let delay = self.last_sr_at.map_or(0, |at| {
            // DLSR in units of 1/65536 s.
            let since = now.saturating_duration_since(at).as_secs_f64();
            (since * 65_536.0).min(f64::from(u32::MAX)) as u32
        });
        ReceptionReport {
            ssrc: self.ssrc,
            fraction_lost,
            total_lost,
            last_sequence_number: extended_max as u32,
            jitter: self.jitter as u32,
            last_sender_report: self.last_sr,
            delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn losses_and_wrap_follow_rfc_3550_a3() {
        let mut r = Reception::new(9, 65_530);
        for seq in (65_530..=65_535).chain(0..10) {
            if seq == 3 || seq == 4 {
                continue; // lost
            }
            r.on_packet(seq, u32::from(seq) * 160, u32::from(seq) * 160);
        }
        let now = Instant::now();
        let report = r.report(now);
        assert_eq!(report.ssrc, 9);
        assert_eq!(report.last_sequence_number, (1 << 16) + 9);
        assert_eq!(report.total_lost, 2);
        // 2 of 16 lost: 32/256.
        assert_eq!(report.fraction_lost, 32);
        // The next interval starts afresh.
        r.on_packet(10, 1600, 1600);
        assert_eq!(r.report(now).fraction_lost, 0);
    }

    #[test]
    fn jitter_follows_the_transit_variation() {
        let mut r = Reception::new(1, 0);
        // Packets every 160 units, arriving alternately 0 and 80 late.
        for i in 0..400u32 {
            let late = if i % 2 == 0 { 0 } else { 80 };
            r.on_packet(i as u16, i * 160, i * 160 + late);
        }
        let jitter = r.report(Instant::now()).jitter;
        assert!((75..=80).contains(&jitter), "{jitter}");
    }

    #[test]
    fn last_sender_report_and_its_delay() {
        let mut r = Reception::new(1, 0);
        let at = Instant::now();
        r.on_sender_report(0x1122_3344_5566_7788, at);
        let report = r.report(at + Duration::from_millis(500));
        assert_eq!(report.last_sender_report, 0x3344_5566);
        assert_eq!(report.delay, 32_768);
    }
}

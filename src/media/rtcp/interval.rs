//! When the next RTCP report goes out: RFC 3550 §6.3 and Appendix A.7.
//!
//! RTCP takes 5% of the session bandwidth, shared by the members, a
//! quarter of it for senders when they are few (§6.2); the interval is
//! never below 5 s (2.5 s for the first report, §6.2), is randomized over
//! [0.5, 1.5] times the computed value so that members do not synchronize,
//! and divided by e − 3/2 to compensate for timer reconsideration (§6.3.1,
//! A.7). For a two-party voice call the 5 s minimum always wins, so reports
//! go out every 2 to 6 s: well inside any PBX's or SBC's RTCP timeout.

use std::time::Duration;

use rand::Rng;

/// The minimum interval between reports (RFC 3550 §6.2).
pub const RTCP_MIN_TIME: Duration = Duration::from_secs(5);
/// The fraction of the session bandwidth RTCP may use (RFC 3550 §6.2).
const RTCP_FRACTION: f64 = 0.05;
/// Senders' share of the RTCP bandwidth when they are a quarter or less
/// of the members (RFC 3550 §6.2).
const SENDER_FRACTION: f64 = 0.25;
/// e − 3/2, the compensation for timer reconsideration (RFC 3550 A.7).
const COMPENSATION: f64 = std::f64::consts::E - 1.5;

/// What the interval depends on (the arguments of RFC 3550 A.7's
/// `rtcp_interval`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalInputs {
    /// Members of the session, ourselves included.
    pub members: u32,
    /// Members that sent RTP recently, ourselves included when we did.
    pub senders: u32,
    /// The session bandwidth in bits per second (RFC 3550 §6.2: the
    /// codec's rate plus the packet overhead).
    pub session_bps: f64,
    /// Whether we sent RTP since the report before last.
    pub we_sent: bool,
    /// The average size of the compound RTCP packets, with UDP and IP
    /// headers (RFC 3550 §6.3.3), in octets.
    pub avg_rtcp_size: f64,
    /// Whether no report was sent yet (the first one may come after half
    /// the minimum).
    pub initial: bool,
}

/// The randomized interval before the next report (RFC 3550 A.7).
pub fn rtcp_interval(inputs: IntervalInputs, rng: &mut impl Rng) -> Duration {
    let IntervalInputs {
        members,
        senders,
        session_bps,
        we_sent,
        avg_rtcp_size,
        initial,
    } = inputs;
    let mut min_time = RTCP_MIN_TIME.as_secs_f64();
    if initial {
        min_time /= 2.0;
    }
    // Bytes per second for RTCP.
    let mut rtcp_bw = session_bps / 8.0 * RTCP_FRACTION;
    let mut n = f64::from(members.max(1));
    let senders = f64::from(senders);
    if senders <= n * SENDER_FRACTION {
        if we_sent {
            rtcp_bw *= SENDER_FRACTION;
            n = senders.max(1.0);
        } else {
            rtcp_bw *= 1.0 - SENDER_FRACTION;
            n -= senders;
        }
    }
    let mut t = if rtcp_bw > 0.0 {
        avg_rtcp_size * n / rtcp_bw
    } else {
        min_time
    };
    if t < min_time {
        t = min_time;
    }
    t *= rng.random_range(0.5..1.5);
    t /= COMPENSATION;
    Duration::from_secs_f64(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn voice_call(initial: bool) -> IntervalInputs {
        IntervalInputs {
            members: 2,
            senders: 2,
            session_bps: 80_000.0,
            we_sent: true,
            avg_rtcp_size: 100.0,
            initial,
        }
    }

    #[test]
    fn a_voice_call_reports_every_two_to_six_seconds() {
        let mut rng = SmallRng::seed_from_u64(7);
        let (lo, hi) = (5.0 * 0.5 / COMPENSATION, 5.0 * 1.5 / COMPENSATION);
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let t = rtcp_interval(voice_call(false), &mut rng).as_secs_f64();
            assert!((lo..=hi).contains(&t), "{t}");
            seen.push(t);
        }
        let mean = seen.iter().sum::<f64>() / seen.len() as f64;
        assert!((mean - 5.0 / COMPENSATION).abs() < 0.15, "{mean}");
        let first = rtcp_interval(voice_call(true), &mut rng).as_secs_f64();
        assert!(first <= 2.5 * 1.5 / COMPENSATION, "{first}");
    }

    #[test]
    fn a_large_session_spreads_its_reports() {
        let mut rng = SmallRng::seed_from_u64(1);
        let crowd = IntervalInputs {
            members: 1000,
            senders: 1,
            we_sent: false,
            ..voice_call(false)
        };
        // 999 receivers share 75% of 500 bytes/s: about 266 s.
        let t = rtcp_interval(crowd, &mut rng).as_secs_f64();
        assert!(t > 100.0, "{t}");
    }
}

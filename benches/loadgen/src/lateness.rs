//! How late each send left against its deadline, as a histogram.
//!
//! The load generator must show its own limits so that they are not taken
//! for the server's: every packet (and INVITE) records `sent - deadline`.
//! Buckets are 1 µs wide up to 10 ms and 1 ms wide up to 10 s, which keeps
//! the percentiles exact to the microsecond where they matter at a fixed
//! 80 KB per histogram; the maximum is kept exactly.

const FINE: usize = 10_000; // 1 µs buckets: 0 .. 10 ms
const COARSE: usize = 9_990; // 1 ms buckets: 10 ms .. 10 s

/// A latency histogram in microseconds.
#[derive(Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    over: u64,
    count: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; FINE + COARSE],
            over: 0,
            count: 0,
            max_ns: 0,
            sum_ns: 0,
        }
    }
}

impl Histogram {
    /// Records one delay in nanoseconds.
    pub fn record(&mut self, ns: u64) {
        let us = (ns / 1_000) as usize;
        let index = if us < FINE {
            Some(us)
        } else {
            let ms = us / 1_000;
            (ms - 10 < COARSE).then_some(FINE + ms - 10)
        };
        match index.and_then(|i| self.buckets.get_mut(i)) {
            Some(b) => *b += 1,
            None => self.over += 1,
        }
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += u128::from(ns);
    }

    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.over += other.over;
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `p`-th percentile (0 < p <= 100), in µs: the upper edge of the
    /// bucket that holds it (the exact maximum for the top).
    pub fn percentile_us(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let max_us = self.max_ns as f64 / 1_000.0;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let edge = if i < FINE {
                    (i + 1) as f64
                } else {
                    ((i - FINE + 11) * 1_000) as f64
                };
                return edge.min(max_us);
            }
        }
        max_us
    }

    /// The largest sample, in µs.
    pub fn max_us(&self) -> f64 {
        self.max_ns as f64 / 1_000.0
    }

    /// The mean, in µs.
    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum_ns as f64 / self.count as f64 / 1_000.0
    }

    /// `{"count":..,"mean":..,"p50":..,...}` in µs, for the report.
    pub fn json(&self) -> String {
        format!(
            "{{\"count\": {}, \"mean_us\": {:.1}, \"p50_us\": {:.0}, \"p90_us\": {:.0}, \"p99_us\": {:.0}, \"p999_us\": {:.0}, \"max_us\": {:.0}}}",
            self.count,
            self.mean_us(),
            self.percentile_us(50.0),
            self.percentile_us(90.0),
            self.percentile_us(99.0),
            self.percentile_us(99.9),
            self.max_us()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_right_buckets() {
        let mut h = Histogram::default();
        for us in 1..=100u64 {
            h.record(us * 1_000 - 500);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile_us(50.0), 50.0);
        assert_eq!(h.percentile_us(99.0), 99.0);
        assert_eq!(h.max_us(), 99.5);
        assert_eq!(h.percentile_us(100.0), 99.5);
    }

    #[test]
    fn coarse_and_overflow_ranges_keep_the_maximum() {
        let mut h = Histogram::default();
        h.record(25_300_000); // 25.3 ms
        h.record(20_000_000_000); // 20 s: over the buckets
        assert_eq!(h.percentile_us(50.0), 26_000.0);
        assert_eq!(h.percentile_us(100.0), 20_000_000.0);
        let mut other = Histogram::default();
        other.record(1_000);
        other.merge(&h);
        assert_eq!(other.count(), 3);
        assert_eq!(other.percentile_us(30.0), 2.0);
    }
}

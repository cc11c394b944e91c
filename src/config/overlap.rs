//! Whether two mailbox patterns can match the same mailbox.
//!
//! A topology gives every mailbox at most one home server, so the check
//! `vmesh check` runs on it is "no two patterns of different servers share a
//! mailbox". Enumerating mailboxes is out of the question (up to 32 digits),
//! so each pair of pattern kinds is decided in closed form. The key fact is
//! that a range only holds mailboxes with exactly as many digits as its
//! bounds, and among strings of one length digit-wise order is numeric order,
//! so every question reduces to comparing equal-length digit strings.

use super::mailbox_set::MailboxPattern;
use MailboxPattern::{Any, Exact, Prefix, Range};

impl MailboxPattern {
    /// Whether some valid mailbox matches both `self` and `other`.
    ///
    /// Every pattern matches at least one mailbox (an exact mailbox itself, a
    /// prefix's own digits, a range's first mailbox), so `*` overlaps
    /// everything. The relation is symmetric.
    pub fn overlaps(&self, other: &MailboxPattern) -> bool {
        match (self, other) {
            (Any, _) | (_, Any) => true,
            (Exact(a), Exact(b)) => a == b,
            (Exact(m), Prefix(p)) | (Prefix(p), Exact(m)) => m.starts_with(p.as_str()),
            (Exact(m), Range { first, last }) | (Range { first, last }, Exact(m)) => {
                in_range(m, first, last)
            }
            // The longer prefix is itself a mailbox both match.
            (Prefix(a), Prefix(b)) => a.starts_with(b.as_str()) || b.starts_with(a.as_str()),
            (Prefix(p), Range { first, last }) | (Range { first, last }, Prefix(p)) => {
                prefix_meets_range(p, first, last)
            }
            (
                Range {
                    first: first_a,
                    last: last_a,
                },
                Range {
                    first: first_b,
                    last: last_b,
                },
            ) => {
                first_a.len() == first_b.len()
                    && first_a.as_str() <= last_b.as_str()
                    && first_b.as_str() <= last_a.as_str()
            }
        }
    }
}

/// Whether `mailbox` lies in the range `first..=last` (bounds of one length).
fn in_range(mailbox: &str, first: &str, last: &str) -> bool {
    mailbox.len() == first.len() && first <= mailbox && mailbox <= last
}

/// Whether some mailbox of the range starts with `prefix`. The mailboxes of
/// the range's length that start with the prefix form the interval from the
/// prefix padded with 0s to the prefix padded with 9s; the answer is whether
/// that interval meets the range. A prefix longer than the range's mailboxes
/// meets none of them.
fn prefix_meets_range(prefix: &str, first: &str, last: &str) -> bool {
    let Some(pad) = first.len().checked_sub(prefix.len()) else {
        return false;
    };
    let lowest = format!("{prefix}{}", "0".repeat(pad));
    let highest = format!("{prefix}{}", "9".repeat(pad));
    lowest.as_str() <= last && first <= highest.as_str()
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn p(s: &str) -> MailboxPattern {
        s.parse().unwrap()
    }

    /// Each pair of pattern kinds, both ways round.
    #[test]
    fn each_combination_of_kinds() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "*", true),
            ("*", "1001", true),
            ("*", "31*", true),
            ("*", "1000-1999", true),
            ("1001", "1001", true),
            ("1001", "1002", false),
            ("1001", "01001", false),
            ("1001", "10*", true),
            ("1001", "1001*", true),
            ("1001", "10010*", false),
            ("1001", "2*", false),
            ("1500", "1000-1999", true),
            ("1000", "1000-1999", true),
            ("1999", "1000-1999", true),
            ("2000", "1000-1999", false),
            ("150", "1000-1999", false),
            ("31*", "3*", true),
            ("31*", "31*", true),
            ("31*", "32*", false),
            ("31*", "310*", true),
            ("1*", "1000-1999", true),
            ("19*", "1000-1999", true),
            ("2*", "1000-1999", false),
            // A 1-digit prefix meets 4-digit ranges only through 4-digit numbers.
            ("0*", "1000-1999", false),
            ("15*", "1000-1499", false),
            ("14*", "1000-1499", true),
            ("150*", "1000-1500", true),
            ("151*", "1000-1500", false),
            // A prefix longer than the range's mailboxes matches none of them.
            ("10000*", "1000-1999", false),
            ("1000*", "1000-1999", true),
            ("1000-1999", "1500-2500", true),
            ("1000-1999", "1999-2999", true),
            ("1000-1999", "2000-2999", false),
            ("1000-1999", "100-199", false),
            ("0100-0199", "100-199", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(p(a).overlaps(&p(b)), *expected, "{a} vs {b}");
            assert_eq!(p(b).overlaps(&p(a)), *expected, "{b} vs {a}");
        }
    }

    fn digits(rng: &mut StdRng, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect()
    }

    /// A random pattern of 1 to 4 digits, so every witness of an overlap
    /// (the longer prefix, a range's number) has at most 4 digits.
    fn random_pattern(rng: &mut StdRng) -> MailboxPattern {
        let len = rng.random_range(1..=4);
        match rng.random_range(0..10) {
            0 => MailboxPattern::Any,
            1..=3 => MailboxPattern::Exact(digits(rng, len)),
            4..=6 => MailboxPattern::Prefix(digits(rng, len)),
            _ => {
                let (a, b) = (digits(rng, len), digits(rng, len));
                let (first, last) = if a <= b { (a, b) } else { (b, a) };
                MailboxPattern::Range { first, last }
            }
        }
    }

    /// Every mailbox of 1 to 4 digits.
    fn all_short_mailboxes() -> Vec<String> {
        (1..=4usize)
            .flat_map(|len| (0..10u32.pow(len as u32)).map(move |n| format!("{n:0len$}")))
            .collect()
    }

    #[test]
    fn agrees_with_brute_force_enumeration() {
        let mailboxes = all_short_mailboxes();
        assert_eq!(mailboxes.len(), 11_110);
        let mut rng = StdRng::seed_from_u64(0x0076_6d65_7368);
        let (mut overlapping, mut disjoint) = (0, 0);
        for _ in 0..3000 {
            let (a, b) = (random_pattern(&mut rng), random_pattern(&mut rng));
            let enumerated = mailboxes.iter().any(|m| a.matches(m) && b.matches(m));
            assert_eq!(a.overlaps(&b), enumerated, "{a} vs {b}");
            if enumerated {
                overlapping += 1;
            } else {
                disjoint += 1;
            }
        }
        // Both outcomes are exercised, not just the easy one.
        assert!(
            overlapping > 300 && disjoint > 300,
            "{overlapping}/{disjoint}"
        );
    }
}

//! Which mailboxes a server takes calls for (`[mailboxes] accept`).
//!
//! A mailbox id becomes part of file paths and SQL rows, so it has exactly
//! one accepted form everywhere: [`is_valid_mailbox`]. Patterns are a small
//! hand-written language (`*`, `1001`, `31*`, `1000-1999`) because no crate
//! matches digit ranges, and globs would admit forms a mailbox may not take.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use super::reader::{ArrayEntry, Reader};

/// Longest mailbox id, in digits. Long enough for any E.164 number (15
/// digits) with a prefix, short enough to keep paths short.
pub const MAX_MAILBOX_DIGITS: usize = 32;

/// Whether `s` is a mailbox id: 1 to 32 ASCII digits, nothing else.
///
/// This is the only form a mailbox id may take anywhere in vmesh: it is used
/// in file names, so anything else (`../x`, `12a`, an empty string) is
/// refused wherever a mailbox enters, from SIP or from the command line.
pub fn is_valid_mailbox(s: &str) -> bool {
    (1..=MAX_MAILBOX_DIGITS).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// One `accept` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxPattern {
    /// `*`: every valid mailbox.
    Any,
    /// `1001`: that mailbox only.
    Exact(String),
    /// `31*`: every mailbox starting with these digits, including `31` itself.
    Prefix(String),
    /// `1000-1999`: every mailbox with as many digits as the bounds whose
    /// digits lie between them, inclusive. Both bounds have the same number
    /// of digits, so digit-wise order is numeric order and `0100` is never
    /// mistaken for `100`.
    Range {
        /// Lowest mailbox in the range.
        first: String,
        /// Highest mailbox in the range.
        last: String,
    },
}

impl MailboxPattern {
    /// Whether `mailbox` (already known to be valid) matches this pattern.
    pub(super) fn matches(&self, mailbox: &str) -> bool {
        match self {
            MailboxPattern::Any => true,
            MailboxPattern::Exact(m) => m == mailbox,
            MailboxPattern::Prefix(p) => mailbox.starts_with(p.as_str()),
            MailboxPattern::Range { first, last } => {
                mailbox.len() == first.len()
                    && first.as_str() <= mailbox
                    && mailbox <= last.as_str()
            }
        }
    }
}

impl FromStr for MailboxPattern {
    type Err = String;

    /// Parses one pattern; the error says what is wrong with it in words an
    /// operator can act on.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("empty pattern; use \"*\" to accept every mailbox".into());
        }
        if s == "*" {
            return Ok(MailboxPattern::Any);
        }
        if let Some(prefix) = s.strip_suffix('*') {
            return if is_valid_mailbox(prefix) {
                Ok(MailboxPattern::Prefix(prefix.to_owned()))
            } else {
                Err(format!(
                    "{s:?}: a prefix pattern is 1 to {MAX_MAILBOX_DIGITS} digits followed by '*'"
                ))
            };
        }
        if let Some((first, last)) = s.split_once('-') {
            return parse_range(s, first, last);
        }
        if is_valid_mailbox(s) {
            Ok(MailboxPattern::Exact(s.to_owned()))
        } else {
            Err(format!(
                "{s:?}: not a mailbox (1 to {MAX_MAILBOX_DIGITS} digits), prefix (\"31*\"), \
                 range (\"1000-1999\") or \"*\""
            ))
        }
    }
}

fn parse_range(s: &str, first: &str, last: &str) -> Result<MailboxPattern, String> {
    if !is_valid_mailbox(first) || !is_valid_mailbox(last) {
        return Err(format!(
            "{s:?}: both ends of a range must be mailboxes of 1 to {MAX_MAILBOX_DIGITS} digits"
        ));
    }
    if first.len() != last.len() {
        return Err(format!(
            "{s:?}: both ends of a range must have the same number of digits; \
             split it into one range per length"
        ));
    }
    if first > last {
        return Err(format!("{s:?}: the first mailbox is above the last"));
    }
    Ok(MailboxPattern::Range {
        first: first.to_owned(),
        last: last.to_owned(),
    })
}

impl fmt::Display for MailboxPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailboxPattern::Any => f.write_str("*"),
            MailboxPattern::Exact(m) => f.write_str(m),
            MailboxPattern::Prefix(p) => write!(f, "{p}*"),
            MailboxPattern::Range { first, last } => write!(f, "{first}-{last}"),
        }
    }
}

/// A mailbox pattern with where it was written.
pub(super) struct PlacedPattern {
    pub key: String,
    pub span: Range<usize>,
    pub pattern: MailboxPattern,
}

/// The patterns of a `mailboxes`-like array, naming each bad one by its
/// index (`mailboxes.accept[2]`); the good ones with where they stand.
pub(super) fn read_patterns(
    reader: &mut Reader<'_>,
    entries: Vec<ArrayEntry<'_>>,
) -> Vec<PlacedPattern> {
    let mut patterns = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry.value.parse::<MailboxPattern>() {
            Ok(pattern) => patterns.push(PlacedPattern {
                key: entry.key,
                span: entry.span,
                pattern,
            }),
            Err(message) => reader.error(&entry.key, entry.span, message),
        }
    }
    patterns
}

/// The mailboxes a server takes calls for: the union of its patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSet {
    patterns: Vec<MailboxPattern>,
}

impl MailboxSet {
    /// Parses `accept` patterns. All bad patterns are named in the error
    /// (joined with "; "); an empty list is refused because a server that
    /// accepts no mailbox would answer every call with 404.
    pub fn parse(patterns: &[String]) -> Result<Self, String> {
        if patterns.is_empty() {
            return Err("no patterns; use [\"*\"] to accept every mailbox".into());
        }
        let mut parsed = Vec::with_capacity(patterns.len());
        let mut problems = Vec::new();
        for p in patterns {
            match p.parse::<MailboxPattern>() {
                Ok(pattern) => parsed.push(pattern),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(MailboxSet { patterns: parsed })
        } else {
            Err(problems.join("; "))
        }
    }

    /// A set from patterns parsed one by one (the profile reader does this to
    /// name each bad entry by its index).
    pub fn from_patterns(patterns: Vec<MailboxPattern>) -> Self {
        MailboxSet { patterns }
    }

    /// A set from patterns read with [`read_patterns`].
    pub(super) fn from_placed(patterns: Vec<PlacedPattern>) -> Self {
        MailboxSet::from_patterns(patterns.into_iter().map(|p| p.pattern).collect())
    }

    /// Every valid mailbox: the default, so one server alone serves a whole PBX.
    pub fn any_digits() -> Self {
        MailboxSet {
            patterns: vec![MailboxPattern::Any],
        }
    }

    /// Whether calls for `mailbox` are taken here. An invalid mailbox id is
    /// never contained, whatever the patterns say.
    pub fn contains(&self, mailbox: &str) -> bool {
        is_valid_mailbox(mailbox) && self.patterns.iter().any(|p| p.matches(mailbox))
    }

    /// The patterns, in profile order.
    pub fn patterns(&self) -> &[MailboxPattern] {
        &self.patterns
    }
}

impl fmt::Display for MailboxSet {
    /// The patterns joined with ", ", as `vmesh check` shows them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> MailboxSet {
        let owned: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        MailboxSet::parse(&owned).unwrap()
    }

    #[test]
    fn valid_mailboxes_are_1_to_32_digits() {
        assert!(is_valid_mailbox("1"));
        assert!(is_valid_mailbox("0123"));
        assert!(is_valid_mailbox(&"9".repeat(32)));
        assert!(!is_valid_mailbox(&"9".repeat(33)));
        assert!(!is_valid_mailbox(""));
        assert!(!is_valid_mailbox("../x"));
        assert!(!is_valid_mailbox("12a"));
        assert!(!is_valid_mailbox("+1001"));
        assert!(!is_valid_mailbox("１２")); // full-width digits are not ASCII
    }

    #[test]
    fn star_takes_every_valid_mailbox_only() {
        let s = MailboxSet::any_digits();
        assert!(s.contains("1001"));
        assert!(s.contains("0"));
        assert!(!s.contains("abc"));
        assert!(!s.contains(""));
        assert!(!s.contains("../1001"));
        assert_eq!(set(&["*"]), s);
    }

    #[test]
    fn exact_prefix_and_range() {
        let s = set(&["1001", "31*", "2000-2099"]);
        assert!(s.contains("1001"));
        assert!(!s.contains("1002"));
        assert!(!s.contains("10010"));
        assert!(s.contains("31"));
        assert!(s.contains("3100"));
        assert!(!s.contains("3200"));
        assert!(s.contains("2000"));
        assert!(s.contains("2050"));
        assert!(s.contains("2099"));
        assert!(!s.contains("2100"));
        assert!(!s.contains("1999"));
        assert!(!s.contains("20500"));
        assert!(!s.contains("205"));
        assert!(!s.contains("31a"));
    }

    #[test]
    fn range_with_leading_zeros_compares_digit_wise() {
        let s = set(&["0100-0199"]);
        assert!(s.contains("0150"));
        assert!(!s.contains("150"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in [
            "",
            "abc",
            "12a",
            "2000-1000",
            "1-999",
            "1000-",
            "-1000",
            "a*",
            "*1",
            "**",
            "1-2-3",
        ] {
            let err = bad.parse::<MailboxPattern>();
            assert!(err.is_err(), "{bad:?} should be refused");
        }
        let e = "2000-1000".parse::<MailboxPattern>().unwrap_err();
        assert!(e.contains("above"), "{e}");
    }

    #[test]
    fn set_parse_names_every_bad_pattern_and_refuses_empty() {
        let e = MailboxSet::parse(&["1001".into(), "x".into(), "9-1".into()]).unwrap_err();
        assert!(e.contains("\"x\""), "{e}");
        assert!(e.contains("\"9-1\""), "{e}");
        assert!(MailboxSet::parse(&[]).is_err());
    }

    #[test]
    fn display_round_trips() {
        let s = set(&["*", "1001", "31*", "1000-1999"]);
        assert_eq!(s.to_string(), "*, 1001, 31*, 1000-1999");
    }
}

//! How counts, numbers, dates and envelopes are spoken: sentences as lists
//! of [`Clip`]s, never audio.
//!
//! Sans-IO and pure: the menu asks for a sentence and gets the clips to
//! play in order; the prompt folder of the call's language turns clips
//! into sound. The rules here are English ones (cardinals as "two hundred
//! forty-one", times on a 12-hour clock with A.M./P.M., "one new message"
//! but "two new messages"), the same rules voicemail systems have used
//! since Asterisk's `say.c`; a language spoken with the same shapes needs
//! only its own folder of clips.
//!
//! - counts are cardinals: "You have two new and one old messages";
//! - caller numbers and mailbox numbers are read digit by digit
//!   ("five five five one two three four");
//! - envelopes: "Message 3. Received Monday, November 30 at 9:41 AM, from
//!   5 5 5 1 2 3 4", with the time in the mailbox's time zone (from the IANA
//!   database bundled with jiff).

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::clip::{Clip, Month, NumberWord, Phrase};

/// Largest number [`cardinal`] speaks in words; larger counts are read as
/// their digits (no mailbox holds a million messages).
pub const MAX_CARDINAL: u32 = 999_999;

/// "You have N new and M old messages", with the singular, the plural and
/// "no" where English wants them:
///
/// | new | old | spoken |
/// |---|---|---|
/// | 0 | 0 | You have no messages |
/// | 1 | 0 | You have one new message |
/// | 2 | 0 | You have two new messages |
/// | 0 | 1 | You have one old message |
/// | 2 | 1 | You have two new and one old messages |
pub fn message_counts(new: u32, old: u32) -> Vec<Clip> {
    let mut clips = vec![Clip::Phrase(Phrase::YouHave)];
    match (new, old) {
        (0, 0) => clips.extend([Clip::Phrase(Phrase::No), Clip::Phrase(Phrase::Messages)]),
        (n, 0) => counted(&mut clips, n, Phrase::New),
        (0, o) => counted(&mut clips, o, Phrase::Old),
        (n, o) => {
            clips.extend(cardinal(n));
            clips.extend([Clip::Phrase(Phrase::New), Clip::Phrase(Phrase::And)]);
            clips.extend(cardinal(o));
            // "two new and one old messages": the plural, as there are
            // at least two.
            clips.extend([Clip::Phrase(Phrase::Old), Clip::Phrase(Phrase::Messages)]);
        }
    }
    clips
}

/// "N new message(s)" or "N old message(s)".
fn counted(clips: &mut Vec<Clip>, n: u32, adjective: Phrase) {
    clips.extend(cardinal(n));
    clips.push(Clip::Phrase(adjective));
    clips.push(Clip::Phrase(if n == 1 {
        Phrase::Message
    } else {
        Phrase::Messages
    }));
}

/// A cardinal number in words: 241 is "two hundred forty one"
/// (American usage, no "and"), 1005 "one thousand five". Numbers above
/// [`MAX_CARDINAL`] are read digit by digit.
pub fn cardinal(n: u32) -> Vec<Clip> {
    if n > MAX_CARDINAL {
        return digits(&n.to_string());
    }
    if n == 0 {
        return vec![word(0)];
    }
    let mut clips = Vec::new();
    let (thousands, rest) = (n / 1000, n % 1000);
    if thousands > 0 {
        below_thousand(&mut clips, thousands);
        clips.push(Clip::Phrase(Phrase::Thousand));
    }
    below_thousand(&mut clips, rest);
    clips
}

/// 1..=999 in words; nothing for 0 (so "one thousand" has no "zero").
fn below_thousand(clips: &mut Vec<Clip>, n: u32) {
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        clips.push(word(hundreds));
        clips.push(Clip::Phrase(Phrase::Hundred));
    }
    match rest {
        0 => {}
        1..=19 => clips.push(word(rest)),
        _ => {
            clips.push(word(rest - rest % 10));
            if rest % 10 != 0 {
                clips.push(word(rest % 10));
            }
        }
    }
}

/// The clip of a number word; only called with 0..=19 and the tens.
fn word(n: u32) -> Clip {
    // Every caller passes a value below 20 or a multiple of ten below 100,
    // which NumberWord::new accepts; zero is a harmless fallback.
    Clip::Number(NumberWord::new(n).unwrap_or(NumberWord::ZERO))
}

/// A number read digit by digit ("5 5 5 1 2 3 4"), as phone numbers and
/// mailbox numbers are. Anything but ASCII digits (a leading `+`,
/// separators) is skipped.
pub fn digits(number: &str) -> Vec<Clip> {
    number
        .chars()
        .filter_map(|c| c.to_digit(10))
        .map(word)
        .collect()
}

/// A time of day on the 12-hour clock: 9:41 is "nine forty one A.M.",
/// 9:05 "nine oh five A.M.", 21:00 "nine P.M.", 0:30 "twelve thirty A.M.".
pub fn time_of_day(hour: i8, minute: i8) -> Vec<Clip> {
    let hour = u32::try_from(hour.clamp(0, 23)).unwrap_or(0);
    let minute = u32::try_from(minute.clamp(0, 59)).unwrap_or(0);
    let twelve = match hour % 12 {
        0 => 12,
        h => h,
    };
    let mut clips = cardinal(twelve);
    match minute {
        0 => {}
        1..=9 => clips.extend([Clip::Phrase(Phrase::Oh), word(minute)]),
        _ => clips.extend(cardinal(minute)),
    }
    clips.push(Clip::Phrase(if hour < 12 {
        Phrase::Am
    } else {
        Phrase::Pm
    }));
    clips
}

/// The envelope of the message at `position` (1-based) of the listening
/// order: "Message 3. Received Monday, November 30 at 9:41 AM, from
/// 5 5 5 1 2 3 4". `caller` is the caller's number (digits; see
/// [`caller_number`]); without one the envelope ends "from an unknown
/// caller". `received` is spoken in `zone`.
pub fn envelope(
    position: usize,
    received: Timestamp,
    zone: &TimeZone,
    caller: Option<&str>,
) -> Vec<Clip> {
    let mut clips = vec![Clip::Phrase(Phrase::MessageNumber)];
    clips.extend(cardinal(u32::try_from(position).unwrap_or(u32::MAX)));
    clips.push(Clip::Pause);
    clips.push(Clip::Phrase(Phrase::Received));
    let local = zone.to_datetime(received);
    clips.push(Clip::Weekday(local.weekday()));
    if let Some(month) = Month::new(local.month()) {
        clips.push(Clip::Month(month));
    }
    clips.extend(cardinal(u32::try_from(local.day()).unwrap_or(1)));
    clips.push(Clip::Phrase(Phrase::At));
    clips.extend(time_of_day(local.hour(), local.minute()));
    clips.push(Clip::Pause);
    match caller.filter(|c| c.chars().any(|d| d.is_ascii_digit())) {
        Some(number) => {
            clips.push(Clip::Phrase(Phrase::From));
            clips.extend(digits(number));
        }
        None => clips.push(Clip::Phrase(Phrase::FromUnknownCaller)),
    }
    clips
}

/// The number to read out for a caller URI: the user part of a `sip:`,
/// `sips:` or `tel:` URI when it is a telephone number (digits, with an
/// optional leading `+` and visual separators, RFC 3966 §5.1.1), without
/// its parameters. `sip:alice@pbx` or an anonymous caller has none.
pub fn caller_number(uri: &str) -> Option<String> {
    let uri = uri.trim().trim_start_matches('<');
    let (scheme, rest) = uri.split_once(':')?;
    if !["sip", "sips", "tel"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return None;
    }
    let user = match rest.split_once('@') {
        Some((user, _)) => user,
        None if scheme.eq_ignore_ascii_case("tel") => rest,
        None => return None,
    };
    let user = user.split([';', '?', '>']).next().unwrap_or_default();
    let user = user.strip_prefix('+').unwrap_or(user);
    let is_number = !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | '(' | ')'));
    let digits: String = user.chars().filter(char::is_ascii_digit).collect();
    (is_number && !digits.is_empty()).then_some(digits)
}

#[cfg(test)]
#[path = "sentence_tests.rs"]
mod tests;

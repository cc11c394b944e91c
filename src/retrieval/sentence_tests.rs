//! Sentences as the clip names a caller would hear, in order.

use super::*;

/// The clips as their file stems, pauses as ",".
fn spoken(clips: &[Clip]) -> String {
    clips
        .iter()
        .map(|c| c.name().unwrap_or_else(|| ",".to_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[test]
fn counts_use_no_singular_and_plural() {
    assert_eq!(spoken(&message_counts(0, 0)), "you-have no messages");
    assert_eq!(
        spoken(&message_counts(1, 0)),
        "you-have number-1 new message"
    );
    assert_eq!(
        spoken(&message_counts(2, 0)),
        "you-have number-2 new messages"
    );
    assert_eq!(
        spoken(&message_counts(0, 1)),
        "you-have number-1 old message"
    );
    assert_eq!(
        spoken(&message_counts(0, 12)),
        "you-have number-12 old messages"
    );
    assert_eq!(
        spoken(&message_counts(2, 1)),
        "you-have number-2 new and number-1 old messages"
    );
    assert_eq!(
        spoken(&message_counts(1, 1)),
        "you-have number-1 new and number-1 old messages"
    );
}

#[test]
fn cardinals() {
    let cases: &[(u32, &str)] = &[
        (0, "number-0"),
        (7, "number-7"),
        (13, "number-13"),
        (20, "number-20"),
        (41, "number-40 number-1"),
        (99, "number-90 number-9"),
        (100, "number-1 hundred"),
        (105, "number-1 hundred number-5"),
        (241, "number-2 hundred number-40 number-1"),
        (1000, "number-1 thousand"),
        (1005, "number-1 thousand number-5"),
        (2019, "number-2 thousand number-19"),
        (
            999_999,
            "number-9 hundred number-90 number-9 thousand number-9 hundred number-90 number-9",
        ),
        (
            1_000_000,
            "number-1 number-0 number-0 number-0 number-0 number-0 number-0",
        ),
    ];
    for (n, expected) in cases {
        assert_eq!(spoken(&cardinal(*n)), *expected, "{n}");
    }
}

#[test]
fn numbers_are_read_digit_by_digit() {
    assert_eq!(
        spoken(&digits("5551234")),
        "number-5 number-5 number-5 number-1 number-2 number-3 number-4"
    );
    assert_eq!(
        spoken(&digits("+1 (212) 0")),
        "number-1 number-2 number-1 number-2 number-0"
    );
    assert!(digits("alice").is_empty());
}

#[test]
fn times_on_the_twelve_hour_clock() {
    let cases: &[(i8, i8, &str)] = &[
        (9, 41, "number-9 number-40 number-1 am"),
        (9, 5, "number-9 oh number-5 am"),
        (9, 0, "number-9 am"),
        (0, 30, "number-12 number-30 am"),
        (12, 0, "number-12 pm"),
        (12, 10, "number-12 number-10 pm"),
        (21, 15, "number-9 number-15 pm"),
        (23, 59, "number-11 number-50 number-9 pm"),
    ];
    for (h, m, expected) in cases {
        assert_eq!(spoken(&time_of_day(*h, *m)), *expected, "{h}:{m}");
    }
}

#[test]
fn envelope_in_the_mailbox_time_zone() {
    let new_york = TimeZone::get("America/New_York").unwrap();
    // 14:41 UTC is 9:41 EST (UTC-5) on Monday, November 30, 2026.
    assert_eq!(
        spoken(&envelope(
            3,
            at("2026-11-30T14:41:00Z"),
            &new_york,
            Some("5551234")
        )),
        "message-number number-3 , received monday november number-30 at \
         number-9 number-40 number-1 am , from \
         number-5 number-5 number-5 number-1 number-2 number-3 number-4"
    );
    // The same instant in UTC.
    assert_eq!(
        spoken(&envelope(
            3,
            at("2026-11-30T14:41:00Z"),
            &TimeZone::UTC,
            None
        )),
        "message-number number-3 , received monday november number-30 at \
         number-2 number-40 number-1 pm , from-unknown-caller"
    );
    // Summer time (EDT, UTC-4), and a date that is still the day before
    // in the mailbox's zone.
    assert_eq!(
        spoken(&envelope(
            1,
            at("2026-07-01T13:05:00Z"),
            &new_york,
            Some("42")
        )),
        "message-number number-1 , received wednesday july number-1 at \
         number-9 oh number-5 am , from number-4 number-2"
    );
    assert_eq!(
        spoken(&envelope(
            12,
            at("2026-12-01T02:00:00Z"),
            &new_york,
            Some("")
        )),
        "message-number number-12 , received monday november number-30 at \
         number-9 pm , from-unknown-caller"
    );
}

#[test]
fn caller_numbers_come_from_telephone_user_parts() {
    assert_eq!(
        caller_number("sip:5551234@pbx.example").as_deref(),
        Some("5551234")
    );
    assert_eq!(
        caller_number("<sip:+1-212-555-0100@gw;user=phone>").as_deref(),
        Some("12125550100")
    );
    assert_eq!(
        caller_number("tel:+33123456789;phone-context=x").as_deref(),
        Some("33123456789")
    );
    assert_eq!(caller_number("sips:1001@pbx").as_deref(), Some("1001"));
    assert_eq!(caller_number("sip:alice@pbx.example"), None);
    assert_eq!(caller_number("sip:anonymous@anonymous.invalid"), None);
    assert_eq!(caller_number("sip:pbx.example"), None);
    assert_eq!(caller_number("mailto:5551234@x"), None);
    assert_eq!(caller_number(""), None);
}

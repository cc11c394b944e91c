//! Mailbox options: greetings recorded by phone, the temporary greeting,
//! a new PIN.

use super::*;

/// Logged in, in the options menu (its prompt finished).
fn options(temporary_greeting: bool) -> Call {
    let (mut call, _) = Call::logged_in(MailboxContents {
        messages: Vec::new(),
        temporary_greeting,
    });
    assert_eq!(heard(&call.press("0")), "mailbox-options");
    call.finish();
    call
}

fn start(kind: GreetingKind) -> Action {
    Action::StartRecording {
        mailbox: "1001".into(),
        kind,
    }
}

fn discard(kind: GreetingKind) -> Action {
    Action::DiscardGreeting {
        mailbox: "1001".into(),
        kind,
    }
}

fn recorded(call: &mut Call, seconds: u64) -> Vec<Action> {
    call.event(Event::RecordingFinished {
        length: Duration::from_secs(seconds),
    })
}

#[test]
fn a_greeting_is_recorded_played_back_and_kept_on_1() {
    let mut call = options(false);
    assert_eq!(heard(&call.press("1")), "record-unavailable");
    assert_eq!(call.finish(), [start(GreetingKind::Unavailable)]);
    assert_eq!(call.press("#"), [Action::StopRecording]);
    assert_eq!(heard(&recorded(&mut call, 4)), "<greeting unavailable>");
    assert_eq!(heard(&call.finish()), "review-greeting");
    call.finish();
    let actions = call.press("1");
    assert_eq!(
        effects(&actions),
        [Action::AcceptGreeting {
            mailbox: "1001".into(),
            kind: GreetingKind::Unavailable
        }]
    );
    assert_eq!(heard(&actions), "greeting-saved , mailbox-options");
}

#[test]
fn two_records_again_and_star_cancels() {
    let mut call = options(false);
    call.press("2");
    call.finish();
    call.press("#");
    recorded(&mut call, 3);
    // 2 during the playback: stop it, discard, and record again.
    let actions = call.press("2");
    assert_eq!(actions[0], Action::StopPlayback);
    assert_eq!(effects(&actions), [discard(GreetingKind::Busy)]);
    assert_eq!(heard(&actions), "record-busy");
    assert_eq!(call.finish(), [start(GreetingKind::Busy)]);
    call.press("#");
    recorded(&mut call, 3);
    call.finish();
    call.finish();
    let actions = call.press("*");
    assert_eq!(effects(&actions), [discard(GreetingKind::Busy)]);
    assert_eq!(heard(&actions), "greeting-not-changed , mailbox-options");
}

#[test]
fn a_recording_that_is_too_short_is_discarded_and_redone() {
    let mut call = options(false);
    call.press("1");
    call.finish();
    call.press("#");
    let actions = call.event(Event::RecordingFinished {
        length: Duration::from_millis(400),
    });
    assert_eq!(effects(&actions), [discard(GreetingKind::Unavailable)]);
    assert_eq!(heard(&actions), "recording-too-short record-unavailable");
}

#[test]
fn a_key_skips_the_instructions_and_star_leaves() {
    let mut call = options(false);
    call.press("1");
    assert_eq!(
        call.press("5"),
        [Action::StopPlayback, start(GreetingKind::Unavailable)]
    );
    let mut call = options(false);
    call.press("1");
    let actions = call.press("*");
    assert_eq!(effects(&actions), []);
    assert_eq!(heard(&actions), "greeting-not-changed , mailbox-options");
}

#[test]
fn recording_stops_at_the_limit_or_by_itself() {
    let max = MenuConfig::default().max_greeting;
    let mut call = options(false);
    call.press("1");
    call.finish();
    assert!(call.wait(max - Duration::from_millis(1)).is_empty());
    assert_eq!(call.wait(Duration::from_millis(1)), [Action::StopRecording]);
    assert_eq!(heard(&recorded(&mut call, 120)), "<greeting unavailable>");
    // The media path may end it (silence) before any key.
    let mut call = options(false);
    call.press("1");
    call.finish();
    assert_eq!(heard(&recorded(&mut call, 7)), "<greeting unavailable>");
}

#[test]
fn the_review_prompt_times_out_into_goodbye_and_discards() {
    let mut call = options(false);
    call.press("4");
    call.finish();
    call.press("#");
    recorded(&mut call, 3);
    call.finish();
    call.finish();
    for _ in 0..2 {
        assert_eq!(heard(&call.wait(input_timeout())), "review-greeting");
        call.finish();
    }
    let actions = call.wait(input_timeout());
    assert_eq!(effects(&actions), [discard(GreetingKind::Temporary)]);
    assert_eq!(heard(&actions), "goodbye");
    assert_eq!(heard(&call.press("9")), "", "nothing after goodbye");
}

#[test]
fn the_temporary_greeting_offers_removal_when_set() {
    // Not set: 4 records it at once; once accepted, 4 offers to remove it.
    let mut call = options(false);
    assert_eq!(heard(&call.press("4")), "record-temporary");
    call.finish();
    call.press("#");
    recorded(&mut call, 2);
    call.finish();
    call.press("1");
    call.finish();
    assert_eq!(heard(&call.press("4")), "temporary-greeting-on");
    let actions = call.press("1");
    assert_eq!(
        effects(&actions),
        [Action::RemoveTemporaryGreeting {
            mailbox: "1001".into()
        }]
    );
    assert_eq!(
        heard(&actions),
        "temporary-greeting-removed , mailbox-options"
    );
    call.finish();
    assert_eq!(heard(&call.press("4")), "record-temporary");
    // Set at login: 4 offers removal; 2 records a new one.
    let mut call = options(true);
    assert_eq!(heard(&call.press("4")), "temporary-greeting-on");
    assert_eq!(heard(&call.press("2")), "record-temporary");
    let mut call = options(true);
    call.press("4");
    assert_eq!(
        heard(&call.press("7")),
        "invalid-option temporary-greeting-on"
    );
    assert_eq!(heard(&call.press("*")), "mailbox-options");
}

#[test]
fn a_new_pin_is_typed_twice_then_stored() {
    let mut call = options(false);
    assert_eq!(heard(&call.press("5")), "enter-new-pin");
    call.finish();
    assert_eq!(heard(&call.press("2580#")), "reenter-new-pin");
    call.finish();
    assert_eq!(
        call.press("2580#"),
        [Action::SetPin {
            mailbox: "1001".into(),
            pin: Pin::parse("2580").unwrap()
        }]
    );
    assert!(call.press("1").is_empty(), "keys wait for the store");
    assert_eq!(
        heard(&call.event(Event::PinSaved(true))),
        "pin-changed , mailbox-options"
    );
    // A store failure is said so.
    let mut call = options(false);
    call.press("5");
    call.press("2580#");
    call.press("2580#");
    assert_eq!(
        heard(&call.event(Event::PinSaved(false))),
        "pin-not-changed , mailbox-options"
    );
}

#[test]
fn trivial_or_mismatched_pins_are_refused_three_times_at_most() {
    let mut call = options(false);
    call.press("5");
    call.finish();
    // All one digit, then a run.
    assert_eq!(heard(&call.press("0000#")), "pin-refused , enter-new-pin");
    call.finish();
    // The mailbox number itself.
    assert_eq!(heard(&call.press("1001#")), "pin-refused , enter-new-pin");
    call.finish();
    call.press("2580#");
    call.finish();
    let actions = call.press("2581#");
    assert_eq!(effects(&actions), []);
    assert_eq!(
        heard(&actions),
        "pins-differ , pin-not-changed , mailbox-options"
    );
    // Star gives up at once.
    let mut call = options(false);
    call.press("5");
    call.finish();
    assert_eq!(heard(&call.press("*")), "pin-not-changed , mailbox-options");
    // A run and a short PIN are refused too.
    let mut call = options(false);
    call.press("5");
    assert_eq!(heard(&call.press("1234#")), "pin-refused , enter-new-pin");
    assert_eq!(heard(&call.press("258#")), "pin-refused , enter-new-pin");
}

#[test]
fn hanging_up_discards_a_greeting_not_yet_accepted() {
    // While recording: stop and discard.
    let mut call = options(false);
    call.press("1");
    call.finish();
    assert_eq!(
        call.event(Event::HungUp),
        [Action::StopRecording, discard(GreetingKind::Unavailable)]
    );
    assert!(call.menu.is_ended());
    // While reviewing: discard.
    let mut call = options(false);
    call.press("2");
    call.finish();
    call.press("#");
    recorded(&mut call, 3);
    assert_eq!(call.event(Event::HungUp), [discard(GreetingKind::Busy)]);
    // During the instructions there is nothing to discard.
    let mut call = options(false);
    call.press("1");
    assert!(call.event(Event::HungUp).is_empty());
}

#[test]
fn options_keys_and_the_way_back() {
    let mut call = options(false);
    assert_eq!(heard(&call.press("8")), "invalid-option mailbox-options");
    assert_eq!(heard(&call.press("*")), "main-menu");
    assert_eq!(heard(&call.press("0")), "mailbox-options");
    assert_eq!(heard(&call.press("#")), "main-menu");
    call.finish();
    for _ in 0..2 {
        assert_eq!(heard(&call.wait(input_timeout())), "main-menu");
        call.finish();
    }
    assert_eq!(heard(&call.wait(input_timeout())), "goodbye");
}

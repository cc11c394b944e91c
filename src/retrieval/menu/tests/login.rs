//! Access: the mailbox, the PIN, wrong PINs, lockout, timeouts.

use super::*;

fn verify(mailbox: &str, pin: &str) -> Action {
    Action::VerifyPin {
        mailbox: mailbox.into(),
        pin: Pin::parse(pin).unwrap(),
    }
}

#[test]
fn the_callers_own_mailbox_needs_only_the_pin() {
    let (mut call, actions) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    assert_eq!(heard(&actions), "enter-pin");
    call.finish();
    assert_eq!(call.press("4862#"), [verify("1001", "4862")]);
}

#[test]
fn star98_always_asks_for_the_mailbox() {
    let (mut call, actions) = Call::start(PilotKind::AskMailbox, Some("1001"));
    assert_eq!(heard(&actions), "enter-mailbox");
    call.finish();
    assert_eq!(heard(&call.press("1002#")), "enter-pin");
    call.finish();
    assert_eq!(call.press("4862#"), [verify("1002", "4862")]);
}

#[test]
fn a_caller_without_a_mailbox_is_asked_for_one() {
    let (_, actions) = Call::start(PilotKind::CallerMailbox, None);
    assert_eq!(heard(&actions), "enter-mailbox");
}

#[test]
fn a_key_interrupts_the_prompt_and_counts() {
    let (mut call, _) = Call::start(PilotKind::AskMailbox, None);
    // Typed over the prompt: the first key stops it, and is kept.
    let actions = call.press("1");
    assert_eq!(actions, [Action::StopPlayback]);
    assert_eq!(heard(&call.press("002#")), "enter-pin");
    assert_eq!(call.press("4"), [Action::StopPlayback]);
    assert_eq!(call.press("862#"), [verify("1002", "4862")]);
}

#[test]
fn a_pause_after_the_digits_ends_the_entry() {
    let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    call.finish();
    call.press("4862");
    let digit_timeout = MenuConfig::default().digit_timeout;
    assert!(call
        .wait(digit_timeout - Duration::from_millis(1))
        .is_empty());
    assert_eq!(
        call.wait(Duration::from_millis(1)),
        [verify("1001", "4862")]
    );
}

#[test]
fn star_starts_the_number_over() {
    let (mut call, _) = Call::start(PilotKind::AskMailbox, None);
    call.finish();
    assert_eq!(heard(&call.press("99*")), "enter-mailbox");
    call.finish();
    call.press("1001#");
    call.finish();
    assert_eq!(heard(&call.press("12*")), "enter-pin");
    // The new prompt plays: the first digit stops it.
    assert_eq!(
        call.press("4862#"),
        [Action::StopPlayback, verify("1001", "4862")]
    );
}

#[test]
fn a_wrong_pin_asks_for_the_pin_again_then_goodbye_after_three() {
    let (mut call, _) = Call::start(PilotKind::AskMailbox, None);
    call.finish();
    call.press("1001#");
    call.finish();
    for attempt in 1..=2 {
        assert_eq!(
            call.press("1111#"),
            [verify("1001", "1111")],
            "attempt {attempt}"
        );
        let actions = call.event(Event::PinVerdict(PinVerdict::Rejected));
        // The PIN again, never the mailbox.
        assert_eq!(heard(&actions), "login-incorrect enter-pin");
        call.finish();
    }
    call.press("1111#");
    let actions = call.event(Event::PinVerdict(PinVerdict::Rejected));
    assert_eq!(heard(&actions), "login-incorrect goodbye");
    assert!(!call.menu.is_ended());
    assert_eq!(call.finish(), [Action::HangUp]);
    assert!(call.menu.is_ended());
    // Nothing happens after the end.
    assert!(call.press("4862#").is_empty());
    assert_eq!(call.menu.poll_timeout(), None);
}

#[test]
fn a_malformed_pin_is_wrong_without_a_check() {
    let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    call.finish();
    // Three digits, then thirteen: neither can be a PIN.
    assert_eq!(heard(&call.press("486#")), "login-incorrect enter-pin");
    call.finish();
    assert_eq!(
        heard(&call.press("1234567890123#")),
        "login-incorrect enter-pin"
    );
    call.finish();
    assert_eq!(heard(&call.press("48a")), "");
    assert_eq!(heard(&call.press("#")), "login-incorrect goodbye");
}

#[test]
fn a_locked_pair_is_told_and_hung_up_on() {
    let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    call.finish();
    call.press("4862#");
    let actions = call.event(Event::PinVerdict(PinVerdict::Locked));
    assert_eq!(heard(&actions), "too-many-attempts goodbye");
    assert_eq!(call.finish(), [Action::HangUp]);
}

#[test]
fn keys_during_the_check_are_ignored() {
    let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    call.finish();
    call.press("4862#");
    assert!(call.press("12#").is_empty());
    assert_eq!(call.menu.poll_timeout(), None);
    assert_eq!(
        call.event(Event::PinVerdict(PinVerdict::Accepted)),
        [Action::LoadMailbox {
            mailbox: "1001".into()
        }]
    );
    assert_eq!(call.menu.mailbox(), None, "not logged in until loaded");
}

#[test]
fn silence_reprompts_twice_then_goodbye() {
    let (mut call, _) = Call::start(PilotKind::AskMailbox, None);
    // No deadline while the prompt plays.
    assert_eq!(call.menu.poll_timeout(), None);
    assert!(call.wait(Duration::from_secs(60)).is_empty());
    call.finish();
    for _ in 0..2 {
        assert!(call
            .wait(input_timeout() - Duration::from_millis(1))
            .is_empty());
        assert_eq!(heard(&call.wait(Duration::from_millis(1))), "enter-mailbox");
        call.finish();
    }
    assert_eq!(heard(&call.wait(input_timeout())), "goodbye");
    assert_eq!(call.finish(), [Action::HangUp]);
}

#[test]
fn an_empty_entry_is_a_reprompt() {
    let (mut call, _) = Call::start(PilotKind::AskMailbox, None);
    call.finish();
    assert_eq!(heard(&call.press("#")), "enter-mailbox");
    call.finish();
    assert_eq!(heard(&call.press("#")), "enter-mailbox");
    call.finish();
    assert_eq!(heard(&call.press("#")), "goodbye");
}

#[test]
fn after_login_the_counts_then_the_main_menu() {
    let (call, actions) = Call::logged_in(mailbox());
    // Two new; one old and one saved count as old.
    assert_eq!(
        heard(&actions),
        "you-have number-2 new and number-2 old messages , main-menu"
    );
    assert_eq!(call.menu.mailbox(), Some("1001"));
    let (_, actions) = Call::logged_in(MailboxContents::default());
    assert_eq!(heard(&actions), "you-have no messages , main-menu");
    let (_, actions) = Call::logged_in(MailboxContents {
        messages: vec![message("n", Folder::New, "2026-11-30T14:41:00Z", None)],
        temporary_greeting: false,
    });
    assert_eq!(heard(&actions), "you-have number-1 new message , main-menu");
}

#[test]
fn an_unreadable_mailbox_ends_the_call() {
    let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    call.finish();
    call.press("4862#");
    call.event(Event::PinVerdict(PinVerdict::Accepted));
    assert_eq!(heard(&call.event(Event::MailboxUnavailable)), "goodbye");
    assert_eq!(call.finish(), [Action::HangUp]);
}

#[test]
fn the_goodbye_hangs_up_even_if_its_end_is_never_reported() {
    let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    call.finish();
    call.press("4862#");
    call.event(Event::PinVerdict(PinVerdict::Locked));
    assert!(call
        .wait(GOODBYE_LIMIT - Duration::from_millis(1))
        .is_empty());
    assert_eq!(call.wait(Duration::from_millis(1)), [Action::HangUp]);
}

#[test]
fn a_hang_up_ends_the_menu_quietly() {
    let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    assert!(call.event(Event::HungUp).is_empty());
    assert!(call.menu.is_ended());
    assert_eq!(call.menu.poll_timeout(), None);
}

#[test]
fn keys_that_are_not_on_a_phone_keypad_are_ignored() {
    let (mut call, _) = Call::start(PilotKind::CallerMailbox, Some("1001"));
    assert!(call.press("AD").is_empty());
    assert!(call.playing.is_some(), "the prompt goes on");
}

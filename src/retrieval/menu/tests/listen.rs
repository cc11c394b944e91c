//! Listening: order, envelopes, the message keys, heard and not heard.

use super::*;
use crate::retrieval::sentence::envelope;

/// The envelope of message `position` as heard, then a pause.
fn env(position: usize, id: &str) -> String {
    let m = mailbox().messages.into_iter().find(|m| m.id == id).unwrap();
    let clips = envelope(
        position,
        m.received_at,
        &jiff::tz::TimeZone::UTC,
        m.caller.as_deref(),
    );
    heard(&[Action::Play {
        playback: PlaybackId(0),
        clips,
    }]) + " ,"
}

/// Logged in to [`mailbox`], listening: the first envelope plays.
fn listening() -> Call {
    let (mut call, _) = Call::logged_in(mailbox());
    let actions = call.press("1");
    assert_eq!(actions[0], Action::StopPlayback);
    assert_eq!(heard(&actions), env(1, "n1"));
    call
}

fn mark_heard(id: &str) -> Action {
    Action::MarkHeard { id: id.into() }
}

#[test]
fn the_envelope_says_when_and_from_whom() {
    assert_eq!(
        env(1, "n1"),
        "message-number number-1 , received sunday november number-20 number-9 at \
         number-9 oh number-5 am , from number-4 number-2 ,"
    );
}

#[test]
fn new_messages_oldest_first_then_old_then_saved() {
    let mut call = listening();
    let order = [("n1", true), ("n2", true), ("o1", false), ("s1", false)];
    for (position, (id, new)) in order.iter().enumerate() {
        assert_eq!(heard(&call.finish()), format!("<message {id}>"));
        call.wait(Duration::from_secs(30));
        let end = call.finish();
        assert_eq!(heard(&end), "message-options");
        let expected: Vec<Action> = if *new { vec![mark_heard(id)] } else { vec![] };
        assert_eq!(effects(&end), expected, "{id}");
        let next = call.press("6");
        match order.get(position + 1) {
            Some((next_id, _)) => assert_eq!(heard(&next), env(position + 2, next_id)),
            None => assert_eq!(heard(&next), "no-more-messages , main-menu"),
        }
    }
}

#[test]
fn a_message_skipped_after_five_seconds_is_heard() {
    let heard_after = MenuConfig::default().heard_after;
    // Skipped too soon with 6: still new.
    let mut call = listening();
    call.finish();
    call.wait(heard_after - Duration::from_millis(1));
    let actions = call.press("6");
    assert_eq!(actions[0], Action::StopPlayback);
    assert_eq!(effects(&actions), []);
    assert_eq!(heard(&actions), env(2, "n2"));
    // Skipped with 6 after five seconds: heard.
    let mut call = listening();
    call.finish();
    call.wait(heard_after);
    assert_eq!(effects(&call.press("6")), [mark_heard("n1")]);
    // Skipped during the envelope: never started, still new.
    let mut call = listening();
    call.wait(Duration::from_secs(10));
    assert_eq!(effects(&call.press("6")), []);
}

#[test]
fn pound_skips_to_the_end_then_returns_to_the_main_menu() {
    let mut call = listening();
    call.finish();
    call.wait(Duration::from_secs(6));
    let actions = call.press("#");
    assert_eq!(actions[0], Action::StopPlayback);
    assert_eq!(effects(&actions), [mark_heard("n1")]);
    assert_eq!(heard(&actions), "message-options");
    let actions = call.press("#");
    assert_eq!(heard(&actions), "main-menu");
    // Too early a skip leaves the message new.
    let mut call = listening();
    call.finish();
    call.wait(Duration::from_secs(2));
    assert_eq!(effects(&call.press("#")), []);
}

#[test]
fn previous_repeat_envelope_and_help() {
    let mut call = listening();
    // 4 on the first message: there is none before it.
    assert_eq!(
        heard(&call.press("4")),
        "no-previous-message message-options"
    );
    // 5 plays the message again, from its start, without the envelope.
    assert_eq!(heard(&call.press("5")), "<message n1>");
    assert_eq!(heard(&call.press("5")), "<message n1>");
    call.finish();
    call.press("6");
    call.finish();
    // On the second message, 4 goes back to the first.
    assert_eq!(heard(&call.press("4")), env(1, "n1"));
    call.finish();
    // 3 says the envelope again, then the options.
    assert_eq!(
        heard(&call.press("3")),
        format!("{} message-options", env(1, "n1"))
    );
    // * is the help; a re-prompt is the short options again.
    assert_eq!(heard(&call.press("*")), "message-help");
    call.finish();
    assert_eq!(heard(&call.wait(input_timeout())), "message-options");
}

#[test]
fn delete_and_save_move_on_to_the_next_message() {
    let mut call = listening();
    call.finish();
    call.finish();
    let actions = call.press("7");
    assert_eq!(effects(&actions), [Action::Delete { id: "n1".into() }]);
    // The next message is now the first.
    assert_eq!(
        heard(&actions),
        format!("message-deleted , {}", env(1, "n2"))
    );
    call.finish();
    let actions = call.press("9");
    assert_eq!(effects(&actions), [Action::Save { id: "n2".into() }]);
    assert_eq!(heard(&actions), format!("message-saved , {}", env(2, "o1")));
    call.press("6");
    // Saving a saved message changes nothing but moves on.
    let actions = call.press("9");
    assert_eq!(effects(&actions), []);
    assert_eq!(
        heard(&actions),
        "message-saved , no-more-messages , main-menu"
    );
    // Listening again: three messages left, the deleted one gone.
    call.press("1");
    let mut ids = Vec::new();
    loop {
        let actions = call.finish();
        match &actions[..] {
            [Action::PlayMessage { id, .. }] => ids.push(id.clone()),
            _ => panic!("{actions:?}"),
        }
        call.press("6");
        if ids.len() == 3 {
            break;
        }
    }
    // Old first, then the saved ones oldest first; n1 is gone.
    assert_eq!(ids, ["o1", "s1", "n2"]);
}

#[test]
fn deleting_the_last_message_returns_to_the_main_menu() {
    let (mut call, _) = Call::logged_in(MailboxContents {
        messages: vec![message("only", Folder::Old, "2026-11-30T14:41:00Z", None)],
        temporary_greeting: false,
    });
    call.press("1");
    call.finish();
    let actions = call.press("7");
    assert_eq!(effects(&actions), [Action::Delete { id: "only".into() }]);
    assert_eq!(
        heard(&actions),
        "message-deleted , no-more-messages , main-menu"
    );
    assert_eq!(heard(&call.press("1")), "you-have no messages , main-menu");
}

#[test]
fn other_keys_do_not_interrupt_a_message() {
    let mut call = listening();
    assert!(call.press("0128").is_empty(), "nor the envelope");
    call.finish();
    assert!(call.press("0128").is_empty());
    // After the message they are invalid options.
    call.finish();
    assert_eq!(heard(&call.press("2")), "invalid-option message-options");
}

#[test]
fn a_late_end_of_an_interrupted_playback_is_ignored() {
    let mut call = listening();
    let first_envelope = call.playing.unwrap();
    call.press("6");
    // The stopped envelope's end, reported late, must not start message n1.
    assert!(call
        .event(Event::PlaybackFinished(first_envelope))
        .is_empty());
    assert_eq!(heard(&call.finish()), "<message n2>");
    let message = call.playing.unwrap();
    call.press("5");
    // Nor the first run of n2 mark it heard.
    assert!(call.event(Event::PlaybackFinished(message)).is_empty());
    assert_eq!(effects(&call.finish()), [mark_heard("n2")]);
}

#[test]
fn silence_after_a_message_reprompts_twice_then_goodbye() {
    let mut call = listening();
    call.finish();
    call.finish();
    call.finish();
    for _ in 0..2 {
        assert_eq!(heard(&call.wait(input_timeout())), "message-options");
        call.finish();
    }
    assert_eq!(heard(&call.wait(input_timeout())), "goodbye");
    assert_eq!(call.finish(), [Action::HangUp]);
}

#[test]
fn an_empty_mailbox_has_nothing_to_listen_to() {
    let (mut call, _) = Call::logged_in(MailboxContents::default());
    assert_eq!(heard(&call.press("1")), "you-have no messages , main-menu");
}

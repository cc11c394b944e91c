//! One owner's whole call, from the pilot's answer to the goodbye, with
//! every prompt it plays rendered from the built-in English set.

use super::*;
use crate::retrieval::prompts::Prompts;

#[test]
fn a_whole_call() {
    let start = Instant::now();
    let (mut call, _) = Call::start(PilotKind::AskMailbox, None);
    call.now = start;
    call.finish();
    call.press("1001#");
    call.finish();
    // One wrong PIN first.
    call.press("1111#");
    let a = call.event(Event::PinVerdict(PinVerdict::Rejected));
    assert_eq!(heard(&a), "login-incorrect enter-pin");
    call.finish();
    call.press("4862#");
    call.event(Event::PinVerdict(PinVerdict::Accepted));
    let a = call.event(Event::MailboxLoaded(mailbox()));
    assert_eq!(
        heard(&a),
        "you-have number-2 new and number-2 old messages , main-menu"
    );
    // Help, then listen.
    call.wait(Duration::from_secs(2));
    let a = call.press("*");
    assert_eq!(heard(&a), "main-help");
    call.press("1");
    let a = call.finish();
    assert_eq!(heard(&a), "<message n1>");
    call.wait(Duration::from_secs(12));
    let a = call.finish();
    assert_eq!(effects(&a), [Action::MarkHeard { id: "n1".into() }]);
    // Save n1 (heard), delete n2 after a few seconds of it, skip o1 and s1.
    let a = call.press("9");
    assert_eq!(effects(&a), [Action::Save { id: "n1".into() }]);
    call.finish();
    call.wait(Duration::from_secs(3));
    let a = call.press("7");
    assert_eq!(effects(&a), [Action::Delete { id: "n2".into() }]);
    call.press("6");
    let a = call.press("6");
    assert_eq!(heard(&a), "no-more-messages , main-menu");
    // Record a busy greeting and change the PIN.
    call.press("0");
    call.press("2");
    call.finish();
    call.wait(Duration::from_secs(5));
    call.press("#");
    let a = call.event(Event::RecordingFinished {
        length: Duration::from_secs(5),
    });
    assert_eq!(heard(&a), "<greeting busy>");
    call.finish();
    let a = call.press("1");
    assert_eq!(heard(&a), "greeting-saved , mailbox-options");
    call.press("5");
    call.press("2580#");
    call.press("2580#");
    let a = call.event(Event::PinSaved(true));
    assert_eq!(heard(&a), "pin-changed , mailbox-options");
    // Back to the main menu, and goodbye.
    call.press("*");
    let a = call.press("#");
    assert_eq!(heard(&a), "goodbye");
    assert_eq!(call.finish(), [Action::HangUp]);
    assert!(call.menu.is_ended());
    assert!(call.now > start);

    // Everything said exists in the English prompts.
    let prompts = Prompts::built_in();
    for action in &call.log {
        if let Action::Play { clips, .. } = action {
            let pcm = prompts.render(clips, 16_000).unwrap();
            assert!(!pcm.is_empty());
        }
    }
}

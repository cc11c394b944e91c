//! Whole owner's calls through the flow, without sockets: the test plays
//! the shell (it queues prompts under ids of its own, answers jobs, ends
//! prompts) and checks the effects in order.

use std::time::{Duration, Instant};

use super::*;
use crate::config::PilotKind;
use crate::retrieval::menu::{Folder, MailboxContents, MessageSummary, PinVerdict};
use crate::retrieval::Phrase;

const MAILBOX: &str = "1001";

/// The shell's side of a call: its clock and prompt ids.
struct Shell {
    flow: OwnerFlow,
    now: Instant,
    next_prompt: PromptId,
}

impl Shell {
    fn new(pilot: PilotKind, caller_mailbox: Option<&str>) -> Shell {
        let start = Start {
            pilot,
            caller_mailbox: caller_mailbox.map(str::to_owned),
        };
        Shell {
            flow: OwnerFlow::new(MenuConfig::default(), start),
            now: Instant::now(),
            next_prompt: 1,
        }
    }

    fn handle(&mut self, event: OwnerEvent) -> Vec<Effect> {
        self.flow.handle(event, self.now);
        self.effects()
    }

    fn effects(&mut self) -> Vec<Effect> {
        std::iter::from_fn(|| self.flow.poll_effect()).collect()
    }

    fn media(&mut self, event: MediaEvent) -> Vec<Effect> {
        self.handle(OwnerEvent::Media(event))
    }

    fn key(&mut self, digit: char) -> Vec<Effect> {
        self.now += Duration::from_millis(300);
        let at = self.now;
        self.media(MediaEvent::Digit {
            digit,
            at,
            via: crate::media::DigitSource::Rtp,
        })
    }

    /// Plays what `effect` asks for, as the shell does (a load is loaded,
    /// then played); its prompt id and the effects of queueing it.
    fn queue(&mut self, effect: &Effect) -> (PromptId, Vec<Effect>) {
        let sound = match effect {
            Effect::Job(Job::Load { playback, .. }) => {
                let play = self.handle(OwnerEvent::Loaded {
                    playback: *playback,
                    pcm: vec![0; 160],
                    rate: 8000,
                });
                assert!(
                    matches!(&play[..], [Effect::PlayAudio { playback: p, .. }] if p == playback),
                    "{play:?}"
                );
                Sound::Menu(*playback)
            }
            Effect::PlayAudio { playback, .. } => Sound::Menu(*playback),
            Effect::Tone => Sound::Tone,
            other => panic!("{other:?} plays nothing"),
        };
        let prompt = self.next_prompt;
        self.next_prompt += 1;
        let effects = self.handle(OwnerEvent::Queued { sound, prompt });
        (prompt, effects)
    }

    /// The prompt ran to its end.
    fn finished(&mut self, prompt: PromptId) -> Vec<Effect> {
        self.now += Duration::from_secs(2);
        self.media(MediaEvent::PromptEnded {
            id: prompt,
            end: PromptEnd::Finished,
        })
    }

    /// Logs in with the PIN and loads `messages`; returns the prompt id of
    /// the counts sentence and the effects of loading.
    fn log_in(&mut self, messages: Vec<MessageSummary>) -> (PromptId, Vec<Clip>) {
        let first = self.handle(OwnerEvent::Confirmed);
        let (prompt, _) = self.queue(saying(&first, Phrase::EnterPin));
        assert_eq!(
            self.key('2'),
            [Effect::Stop],
            "the first key stops the prompt"
        );
        for digit in ['5', '8', '0'] {
            assert!(self.key(digit).is_empty());
        }
        let verify = self.key('#');
        assert!(
            matches!(&verify[..], [Effect::Job(Job::VerifyPin { mailbox, pin })]
                if mailbox == MAILBOX && pin.digits() == "2580"),
            "{verify:?}"
        );
        // A prompt stopped before is no business of the menu any more.
        assert!(self
            .media(MediaEvent::PromptEnded {
                id: prompt,
                end: PromptEnd::Interrupted
            })
            .is_empty());
        let load = self.handle(OwnerEvent::Answer(Event::PinVerdict(PinVerdict::Accepted)));
        assert_eq!(
            load,
            [Effect::Job(Job::LoadMailbox {
                mailbox: MAILBOX.into()
            })]
        );
        let counts = self.handle(OwnerEvent::Answer(Event::MailboxLoaded(MailboxContents {
            messages,
            temporary_greeting: false,
        })));
        let say = saying(&counts, Phrase::YouHave).clone();
        let Effect::Job(Job::Load {
            audio: Audio::Clips(clips),
            ..
        }) = &say
        else {
            unreachable!()
        };
        let clips = clips.clone();
        let (prompt, _) = self.queue(&say);
        assert_eq!(self.flow.mailbox(), Some(MAILBOX));
        (prompt, clips)
    }
}

fn message(id: &str, folder: Folder) -> MessageSummary {
    MessageSummary {
        id: id.into(),
        folder,
        received_at: "2026-11-30T09:41:00Z".parse().unwrap(),
        caller: Some("5551234".into()),
    }
}

/// Whether `effect` loads clips that say `phrase`.
fn says(effect: &Effect, phrase: Phrase) -> bool {
    matches!(effect, Effect::Job(Job::Load { audio: Audio::Clips(clips), .. })
        if clips.contains(&Clip::Phrase(phrase)))
}

/// The effect among `effects` that says `phrase`.
fn saying(effects: &[Effect], phrase: Phrase) -> &Effect {
    effects
        .iter()
        .find(|e| says(e, phrase))
        .unwrap_or_else(|| panic!("nothing says {phrase:?}: {effects:?}"))
}

#[test]
fn nothing_plays_before_the_ack_or_the_callers_media() {
    let mut shell = Shell::new(PilotKind::AskMailbox, None);
    assert!(shell.effects().is_empty());
    assert_eq!(shell.flow.poll_timeout(), None);
    let first = shell.media(MediaEvent::CallerMedia);
    assert_eq!(first[0], Effect::Stop);
    assert!(says(&first[1], Phrase::EnterMailbox), "{first:?}");
    assert!(shell.handle(OwnerEvent::Confirmed).is_empty(), "once only");
}

#[test]
fn login_counts_envelope_message_then_heard() {
    let mut shell = Shell::new(PilotKind::CallerMailbox, Some(MAILBOX));
    let (counts, clips) = shell.log_in(vec![
        message("m-old", Folder::Old),
        message("m-new", Folder::New),
    ]);
    assert_eq!(
        &clips[..3],
        [
            Clip::Phrase(Phrase::YouHave),
            Clip::Number(crate::retrieval::clip::NumberWord::new(1).unwrap()),
            Clip::Phrase(Phrase::New)
        ],
        "{clips:?}"
    );
    // 1 during the counts: barge-in, then the first (new) message's envelope.
    let listen = shell.key('1');
    assert_eq!(listen[0], Effect::Stop);
    assert!(says(&listen[1], Phrase::MessageNumber), "{listen:?}");
    let (envelope, _) = shell.queue(&listen[1]);
    assert!(
        shell.finished(counts).is_empty(),
        "a replaced prompt is ignored"
    );
    let load = shell.finished(envelope);
    let [Effect::Stop, Effect::Job(Job::Load { playback, audio })] = &load[..] else {
        panic!("{load:?}")
    };
    assert_eq!(audio, &Audio::Message("m-new".into()));
    let playback = *playback;
    let play = shell.handle(OwnerEvent::Loaded {
        playback,
        pcm: vec![1; 800],
        rate: 16_000,
    });
    assert_eq!(
        play,
        [Effect::PlayAudio {
            playback,
            pcm: vec![1; 800],
            rate: 16_000
        }]
    );
    let (audio_prompt, _) = shell.queue(&play[0]);
    // A key that is no command does not stop a message.
    assert!(shell.key('2').is_empty());
    let after = shell.finished(audio_prompt);
    assert_eq!(after[0], Effect::Job(Job::MarkHeard { id: "m-new".into() }));
    saying(&after, Phrase::MessageOptions);
    assert!(
        shell.flow.poll_timeout().is_none(),
        "no deadline while a prompt plays"
    );
}

#[test]
fn a_late_load_is_dropped_and_an_unplayable_message_stays_unheard() {
    let mut shell = Shell::new(PilotKind::CallerMailbox, Some(MAILBOX));
    shell.log_in(vec![message("a", Folder::New), message("b", Folder::New)]);
    let listen = shell.key('1');
    let (envelope, _) = shell.queue(&listen[1]);
    let load = shell.finished(envelope);
    let Effect::Job(Job::Load { playback, .. }) = load[1] else {
        panic!("{load:?}")
    };
    // 6 before the message could play: the next envelope; the load that
    // comes late plays nothing.
    let next = shell.key('6');
    assert_eq!(next[0], Effect::Stop);
    assert!(says(&next[1], Phrase::MessageNumber), "{next:?}");
    assert!(shell
        .handle(OwnerEvent::Loaded {
            playback,
            pcm: vec![0; 160],
            rate: 8000
        })
        .is_empty());
    let (envelope, _) = shell.queue(&next[1]);
    let load = shell.finished(envelope);
    let Effect::Job(Job::Load {
        playback,
        ref audio,
    }) = load[1]
    else {
        panic!("{load:?}")
    };
    assert_eq!(audio, &Audio::Message("b".into()));
    let after = shell.handle(OwnerEvent::LoadFailed { playback });
    assert!(
        !after
            .iter()
            .any(|e| matches!(e, Effect::Job(Job::MarkHeard { .. }))),
        "{after:?}"
    );
    saying(&after, Phrase::MessageOptions);
}

#[test]
fn delete_and_save_are_jobs_in_key_order() {
    let mut shell = Shell::new(PilotKind::CallerMailbox, Some(MAILBOX));
    shell.log_in(vec![message("a", Folder::New), message("b", Folder::New)]);
    let listen = shell.key('1');
    shell.queue(&listen[1]);
    let deleted = shell.key('7');
    assert_eq!(deleted[0], Effect::Stop);
    assert_eq!(deleted[1], Effect::Job(Job::Delete { id: "a".into() }));
    shell.queue(saying(&deleted, Phrase::MessageDeleted));
    let saved = shell.key('9');
    assert_eq!(saved[1], Effect::Job(Job::Save { id: "b".into() }));
    saying(&saved, Phrase::NoMoreMessages);
}

/// Options, 1: instructions, tone, recording until `#`, the take saved,
/// played back, accepted.
#[test]
fn a_greeting_is_recorded_after_the_tone_played_back_and_accepted() {
    let mut shell = Shell::new(PilotKind::CallerMailbox, Some(MAILBOX));
    shell.log_in(Vec::new());
    let options = shell.key('0');
    shell.queue(&options[1]);
    let instruct = shell.key('1');
    assert!(
        says(&instruct[1], Phrase::RecordUnavailable),
        "{instruct:?}"
    );
    let (instructions, _) = shell.queue(&instruct[1]);
    assert_eq!(shell.finished(instructions), [Effect::Tone]);
    let (tone, _) = shell.queue(&Effect::Tone);
    assert_eq!(shell.finished(tone), [Effect::Record]);
    assert_eq!(shell.key('#'), [Effect::StopRecording]);
    let save = shell.media(MediaEvent::RecordingEnded(RecordEnd::Dtmf('#')));
    assert_eq!(
        save,
        [Effect::Job(Job::SaveTake {
            mailbox: MAILBOX.into(),
            kind: GreetingKind::Unavailable
        })]
    );
    let playback = shell.handle(OwnerEvent::TakeSaved {
        length: Duration::from_secs(3),
    });
    let [Effect::Stop, Effect::Job(Job::Load {
        playback: id,
        audio,
    })] = &playback[..]
    else {
        panic!("{playback:?}")
    };
    assert_eq!(
        audio,
        &Audio::Take {
            mailbox: MAILBOX.into(),
            kind: GreetingKind::Unavailable
        }
    );
    let play = shell.handle(OwnerEvent::Loaded {
        playback: *id,
        pcm: vec![7; 24_000],
        rate: 8000,
    });
    let (take, _) = shell.queue(&play[0]);
    let review = shell.finished(take);
    shell.queue(saying(&review, Phrase::ReviewGreeting));
    let accept = shell.key('1');
    assert_eq!(accept[0], Effect::Stop);
    assert_eq!(
        accept[1],
        Effect::Job(Job::AcceptGreeting {
            mailbox: MAILBOX.into(),
            kind: GreetingKind::Unavailable
        })
    );
    saying(&accept, Phrase::GreetingSaved);
}

#[test]
fn a_key_during_the_tone_records_nothing() {
    let mut shell = Shell::new(PilotKind::CallerMailbox, Some(MAILBOX));
    shell.log_in(Vec::new());
    let options = shell.key('0');
    shell.queue(saying(&options, Phrase::MailboxOptions));
    let instruct = shell.key('2');
    let (instructions, _) = shell.queue(saying(&instruct, Phrase::RecordBusy));
    assert_eq!(shell.finished(instructions), [Effect::Tone]);
    shell.queue(&Effect::Tone);
    let stopped = shell.key('#');
    assert_eq!(stopped[0], Effect::Stop);
    assert!(stopped.contains(&Effect::Job(Job::DiscardGreeting {
        mailbox: MAILBOX.into(),
        kind: GreetingKind::Busy
    })));
    assert!(
        stopped.iter().any(|e| says(e, Phrase::RecordingTooShort)),
        "{stopped:?}"
    );
    assert!(!stopped.contains(&Effect::Record));
}

#[test]
fn hanging_up_while_recording_discards_the_take() {
    let mut shell = Shell::new(PilotKind::CallerMailbox, Some(MAILBOX));
    shell.log_in(Vec::new());
    let options = shell.key('0');
    shell.queue(saying(&options, Phrase::MailboxOptions));
    let instruct = shell.key('1');
    let (instructions, _) = shell.queue(saying(&instruct, Phrase::RecordUnavailable));
    shell.finished(instructions);
    let (tone, _) = shell.queue(&Effect::Tone);
    shell.finished(tone);
    let gone = shell.handle(OwnerEvent::CallerLeft);
    assert_eq!(
        gone,
        [
            Effect::StopRecording,
            Effect::Job(Job::DiscardGreeting {
                mailbox: MAILBOX.into(),
                kind: GreetingKind::Unavailable
            }),
            Effect::Finish { hang_up: false }
        ]
    );
    assert!(shell.flow.is_ended());
    assert!(shell.key('1').is_empty(), "nothing after the end");
}

#[test]
fn three_wrong_pins_say_goodbye_then_hang_up() {
    let mut shell = Shell::new(PilotKind::CallerMailbox, Some(MAILBOX));
    let first = shell.handle(OwnerEvent::Confirmed);
    shell.queue(saying(&first, Phrase::EnterPin));
    let mut last = Vec::new();
    for attempt in 0..3 {
        for digit in ['1', '3', '5', '7', '#'] {
            shell.key(digit);
        }
        last = shell.handle(OwnerEvent::Answer(Event::PinVerdict(PinVerdict::Rejected)));
        let incorrect = saying(&last, Phrase::LoginIncorrect).clone();
        let (prompt, _) = shell.queue(&incorrect);
        if attempt < 2 {
            assert!(says(&incorrect, Phrase::EnterPin), "{attempt}: {last:?}");
            shell.finished(prompt);
        } else {
            assert!(says(&incorrect, Phrase::Goodbye), "{last:?}");
            // Keys do not cut the goodbye short.
            assert!(shell.key('1').is_empty());
            assert_eq!(shell.finished(prompt), [Effect::Finish { hang_up: true }]);
        }
    }
    assert!(!last.is_empty());
    assert!(shell.flow.is_ended());
}

#[test]
fn a_silent_caller_is_reprompted_then_hung_up_on() {
    let mut shell = Shell::new(PilotKind::AskMailbox, None);
    let first = shell.handle(OwnerEvent::Confirmed);
    let (prompt, _) = shell.queue(saying(&first, Phrase::EnterMailbox));
    assert!(shell.finished(prompt).is_empty());
    let mut reprompts = 0;
    loop {
        let deadline = shell.flow.poll_timeout().expect("waiting for a key");
        shell.now = deadline;
        shell.flow.handle_timeout(deadline);
        let effects = shell.effects();
        if let Some(goodbye) = effects.iter().find(|e| says(e, Phrase::Goodbye)) {
            let (goodbye, _) = shell.queue(goodbye);
            assert_eq!(shell.finished(goodbye), [Effect::Finish { hang_up: true }]);
            break;
        }
        reprompts += 1;
        let (prompt, _) = shell.queue(saying(&effects, Phrase::EnterMailbox));
        shell.finished(prompt);
    }
    assert_eq!(reprompts, 2);
}

#[test]
fn no_rtp_or_a_shutdown_ends_the_call_with_bye() {
    let mut shell = Shell::new(PilotKind::CallerMailbox, Some(MAILBOX));
    shell.log_in(Vec::new());
    assert_eq!(
        shell.media(MediaEvent::RtpTimeout),
        [Effect::Finish { hang_up: true }]
    );
    let mut shell = Shell::new(PilotKind::AskMailbox, None);
    assert_eq!(
        shell.handle(OwnerEvent::Shutdown),
        [Effect::Finish { hang_up: true }]
    );
}

/// A prompt the media path cut (a codec it cannot encode after a
/// re-INVITE) ends for the menu like a finished one, so the call goes on.
#[test]
fn a_prompt_cut_by_the_media_path_counts_as_ended() {
    let mut shell = Shell::new(PilotKind::AskMailbox, None);
    let first = shell.handle(OwnerEvent::Confirmed);
    let (prompt, _) = shell.queue(saying(&first, Phrase::EnterMailbox));
    assert!(shell
        .media(MediaEvent::PromptEnded {
            id: prompt,
            end: PromptEnd::Interrupted
        })
        .is_empty());
    assert!(shell.flow.poll_timeout().is_some(), "waiting for a key now");
}

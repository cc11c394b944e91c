//! The life of a voicemail deposit call, as a sans-IO state machine:
//! which phase the call is in, and what each event makes it do.
//!
//! ```text
//! Answered ──ACK / caller's RTP──▶ Greeting ──prompt ends──▶ Beep ──prompt ends──▶ Recording
//!     │  (no prompts: straight to Recording)    │ digit: the greeting stops (barge-in)      │
//!     └──────────────── BYE, shutdown, RTP timeout, recording ends ────────────▶ Ending ◀─┘
//! ```
//!
//! Two rules from the trust model live here: nothing is played before
//! the ACK or the caller's first RTP (the media core sends nothing
//! before either), and the recording's files are created only once the
//! ACK confirms the call ([`Action::OpenFile`]), so an INVITE from a
//! spoofed address that is never acknowledged costs no file and no fsync.
//!
//! Hold is not a phase: a caller that holds the call (RFC 3264 §8.4)
//! changes the media's direction, which the media core applies in any
//! phase (no RTP sent, RTP timeout paused), and the flow goes on.
//! [`DepositFlow::handle`] returns the actions in order; the session
//! carries them out.

use crate::media::RecordEnd;

/// Where the call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The 200 is sent; waiting for the ACK or the caller's first packet.
    Answered,
    /// The greeting plays; a digit stops it.
    Greeting,
    /// The beep plays; the recording starts after it.
    Beep,
    /// The caller's message is recorded.
    Recording,
    /// The call is over: the message is stored, and a BYE is sent when
    /// `hang_up` (vmesh ends the call rather than the caller).
    Ending {
        /// Why.
        reason: RecordEnd,
        /// Whether vmesh sends the BYE.
        hang_up: bool,
    },
}

/// What happened to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The ACK arrived (RFC 3261 §13.3.1.4): the dialog is confirmed.
    Confirmed,
    /// The caller's first RTP packet was taken.
    CallerMedia,
    /// The prompt playing ended (finished or interrupted).
    PromptEnded,
    /// The recording ended.
    RecordingEnded(RecordEnd),
    /// No RTP for the RTP timeout outside a recording.
    RtpTimeout,
    /// The caller left: BYE, or the dialog ended otherwise.
    CallerLeft,
    /// The server is stopping.
    Shutdown,
}

/// What the session must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create the recording's files (sidecar, WAV) now.
    OpenFile,
    /// Queue the greeting (with barge-in).
    PlayGreeting,
    /// Queue the beep (without barge-in).
    PlayBeep,
    /// Start recording (audio from now on).
    Record,
    /// End the recording with what is buffered.
    StopRecording,
    /// Leave the call: flush, say BYE if the phase says so, store.
    Finish,
}

/// Whether the recording's files were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum File {
    NotYet,
    Asked,
}

/// The deposit call's state machine; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositFlow {
    phase: Phase,
    prompts: bool,
    file: File,
}

impl DepositFlow {
    /// A call just answered; `prompts` plays the greeting and the beep
    /// before recording (`media.prompts`).
    pub fn new(prompts: bool) -> DepositFlow {
        DepositFlow {
            phase: Phase::Answered,
            prompts,
            file: File::NotYet,
        }
    }

    /// The phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether the call is over.
    pub fn is_ending(&self) -> bool {
        matches!(self.phase, Phase::Ending { .. })
    }

    /// Whether the recording's files were asked for (the ACK came).
    pub fn file_requested(&self) -> bool {
        self.file == File::Asked
    }

    /// One event; the actions it calls for, in order.
    pub fn handle(&mut self, event: CallEvent) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.is_ending() {
            return actions;
        }
        match event {
            CallEvent::Confirmed => {
                if self.file == File::NotYet {
                    self.file = File::Asked;
                    actions.push(Action::OpenFile);
                }
                if self.phase == Phase::Answered {
                    self.start(&mut actions);
                }
            }
            CallEvent::CallerMedia => {
                if self.phase == Phase::Answered {
                    self.start(&mut actions);
                }
            }
            CallEvent::PromptEnded => match self.phase {
                Phase::Greeting => {
                    self.phase = Phase::Beep;
                    actions.push(Action::PlayBeep);
                }
                Phase::Beep => {
                    self.phase = Phase::Recording;
                    actions.push(Action::Record);
                }
                _ => {}
            },
            CallEvent::RecordingEnded(reason) => {
                if self.phase == Phase::Recording {
                    // It ended by itself: nothing to stop.
                    let hang_up = reason != RecordEnd::Stopped;
                    self.phase = Phase::Ending { reason, hang_up };
                    actions.push(Action::Finish);
                }
            }
            CallEvent::RtpTimeout => self.end(RecordEnd::RtpTimeout, true, &mut actions),
            CallEvent::CallerLeft => self.end(RecordEnd::Stopped, false, &mut actions),
            CallEvent::Shutdown => self.end(RecordEnd::Shutdown, true, &mut actions),
        }
        actions
    }

    fn start(&mut self, actions: &mut Vec<Action>) {
        if self.prompts {
            self.phase = Phase::Greeting;
            actions.push(Action::PlayGreeting);
        } else {
            self.phase = Phase::Recording;
            actions.push(Action::Record);
        }
    }

    fn end(&mut self, reason: RecordEnd, hang_up: bool, actions: &mut Vec<Action>) {
        if self.phase == Phase::Recording {
            actions.push(Action::StopRecording);
        }
        self.phase = Phase::Ending { reason, hang_up };
        actions.push(Action::Finish);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_then_greeting_beep_and_recording_until_hash() {
        let mut flow = DepositFlow::new(true);
        assert_eq!(
            flow.handle(CallEvent::Confirmed),
            [Action::OpenFile, Action::PlayGreeting]
        );
        assert_eq!(flow.phase(), &Phase::Greeting);
        assert_eq!(flow.handle(CallEvent::PromptEnded), [Action::PlayBeep]);
        assert_eq!(flow.handle(CallEvent::PromptEnded), [Action::Record]);
        assert_eq!(flow.phase(), &Phase::Recording);
        // Re-confirmations (after a re-INVITE, INFO) change nothing.
        assert!(flow.handle(CallEvent::Confirmed).is_empty());
        assert_eq!(
            flow.handle(CallEvent::RecordingEnded(RecordEnd::Dtmf('#'))),
            [Action::Finish]
        );
        assert_eq!(
            flow.phase(),
            &Phase::Ending {
                reason: RecordEnd::Dtmf('#'),
                hang_up: true
            }
        );
        assert!(flow.handle(CallEvent::CallerLeft).is_empty());
    }

    /// The caller's RTP may start the prompts before a late ACK, but the
    /// files wait for the ACK.
    #[test]
    fn caller_media_starts_the_prompts_but_not_the_file() {
        let mut flow = DepositFlow::new(true);
        assert_eq!(flow.handle(CallEvent::CallerMedia), [Action::PlayGreeting]);
        assert!(!flow.file_requested());
        assert!(flow.handle(CallEvent::CallerMedia).is_empty());
        assert_eq!(flow.handle(CallEvent::Confirmed), [Action::OpenFile]);
        assert!(flow.file_requested());
    }

    #[test]
    fn a_call_never_acknowledged_asks_for_no_file() {
        let mut flow = DepositFlow::new(false);
        assert_eq!(flow.handle(CallEvent::CallerMedia), [Action::Record]);
        assert_eq!(
            flow.handle(CallEvent::CallerLeft),
            [Action::StopRecording, Action::Finish]
        );
        assert!(!flow.file_requested());
        let mut silent = DepositFlow::new(true);
        assert_eq!(silent.handle(CallEvent::CallerLeft), [Action::Finish]);
        assert!(!silent.file_requested());
    }

    #[test]
    fn without_prompts_the_ack_starts_the_recording() {
        let mut flow = DepositFlow::new(false);
        assert_eq!(
            flow.handle(CallEvent::Confirmed),
            [Action::OpenFile, Action::Record]
        );
        assert_eq!(
            flow.handle(CallEvent::RecordingEnded(RecordEnd::MaxLength)),
            [Action::Finish]
        );
        assert!(matches!(flow.phase(), Phase::Ending { hang_up: true, .. }));
    }

    #[test]
    fn who_hangs_up() {
        let mut caller = DepositFlow::new(false);
        caller.handle(CallEvent::Confirmed);
        assert_eq!(
            caller.handle(CallEvent::CallerLeft),
            [Action::StopRecording, Action::Finish]
        );
        assert!(matches!(
            caller.phase(),
            Phase::Ending { hang_up: false, .. }
        ));

        let mut stopping = DepositFlow::new(true);
        stopping.handle(CallEvent::Confirmed);
        assert_eq!(stopping.handle(CallEvent::Shutdown), [Action::Finish]);
        assert!(matches!(
            stopping.phase(),
            Phase::Ending {
                reason: RecordEnd::Shutdown,
                hang_up: true
            }
        ));

        let mut silent = DepositFlow::new(true);
        silent.handle(CallEvent::Confirmed);
        silent.handle(CallEvent::PromptEnded);
        assert_eq!(silent.handle(CallEvent::RtpTimeout), [Action::Finish]);
        assert!(matches!(
            silent.phase(),
            Phase::Ending {
                reason: RecordEnd::RtpTimeout,
                hang_up: true
            }
        ));
    }

    /// A digit's interruption ends the greeting like its end: the beep
    /// still plays, so the caller knows the recording starts.
    #[test]
    fn an_interrupted_greeting_still_beeps() {
        let mut flow = DepositFlow::new(true);
        flow.handle(CallEvent::Confirmed);
        assert_eq!(flow.handle(CallEvent::PromptEnded), [Action::PlayBeep]);
        assert_eq!(flow.phase(), &Phase::Beep);
    }
}

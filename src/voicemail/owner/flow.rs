//! The life of an owner's call, as a sans-IO state machine beside the
//! deposit's ([`crate::voicemail::flow`]): it runs the owner's menu
//! ([`Menu`]) on a live call, turning the menu's actions into what the
//! media core and the store must do, and what they report into the
//! menu's events.
//!
//! ```text
//! Answered ──ACK / caller's RTP──▶ InMenu(Menu) ──menu hangs up, caller leaves,──▶ Ending
//!     │                                        RTP timeout, shutdown            ▲
//!     └──────────────── caller leaves, shutdown ───────────────────────────────┘
//! ```
//!
//! Besides the phase, the flow keeps two small machines of its own:
//!
//! - **what plays for the menu** ([`Output`]): a playback (clips to say,
//!   a message, the greeting just recorded) is loaded first, off the
//!   call's task ([`Job::Load`]: clips rendered, a message decoded), then
//!   queued in the media core under a prompt id the shell reports back
//!   ([`OwnerEvent::Queued`]); its end is told to the menu only when it is
//!   the current one, so a late load or the end of a stopped prompt is
//!   never mistaken for the end of the one playing;
//! - **the greeting take** ([`Take`]): the recording tone, then the
//!   recording (`#` or any key stops it), then the take written to its
//!   temporary file ([`Job::SaveTake`]), whose length the menu is told.
//!
//! Every prompt is queued without the media core's own barge-in: which
//! keys interrupt is the menu's decision (a key that is no command does
//! not stop a message, a goodbye is never cut short), and it stops a
//! prompt with [`Action::StopPlayback`] in the same step the key arrives.
//!
//! Work that touches the disk or is slow (PIN checks, the store, decoding
//! a message, the greeting's files) leaves as [`Job`]s; the shell runs
//! them one after the other off the call's task and reports each result,
//! so a message marked heard and then deleted is written in that order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::{MediaEvent, PromptEnd, PromptId, RecordEnd};
use crate::retrieval::menu::{Action, Event, GreetingKind, Menu, MenuConfig, PlaybackId, Start};
use crate::retrieval::{Clip, Pin};

/// What happened on the call, as the shell reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerEvent {
    /// The ACK arrived: the dialog is confirmed.
    Confirmed,
    /// The media core's event (digits from RFC 4733 and SIP INFO alike).
    Media(MediaEvent),
    /// An [`Effect::PlayAudio`] or [`Effect::Tone`] was queued in the
    /// media core as `prompt`.
    Queued {
        /// What was queued.
        sound: Sound,
        /// The media core's id for it.
        prompt: PromptId,
    },
    /// The audio [`Job::Load`] asked for, as PCM at `rate`.
    Loaded {
        /// The playback it is for.
        playback: PlaybackId,
        /// The samples.
        pcm: Vec<i16>,
        /// Their rate.
        rate: u32,
    },
    /// [`Job::Load`] failed (logged by the shell).
    LoadFailed {
        /// The playback it was for.
        playback: PlaybackId,
    },
    /// [`Job::SaveTake`] wrote the take (this long; zero when it could not
    /// be written or held no speech).
    TakeSaved {
        /// Its length.
        length: Duration,
    },
    /// A job's answer for the menu: [`Event::PinVerdict`],
    /// [`Event::MailboxLoaded`], [`Event::MailboxUnavailable`] or
    /// [`Event::PinSaved`].
    Answer(Event),
    /// The caller hung up (BYE, or the dialog ended).
    CallerLeft,
    /// The server is stopping.
    Shutdown,
}

/// What a queued prompt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sound {
    /// A playback of the menu.
    Menu(PlaybackId),
    /// The tone before a greeting is recorded.
    Tone,
}

/// Where the audio of a [`Job::Load`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audio {
    /// Clips of the prompts, said one after the other.
    Clips(Vec<Clip>),
    /// A stored message, by id.
    Message(String),
    /// The greeting take just recorded (not yet accepted).
    Take {
        /// Its mailbox.
        mailbox: String,
        /// Which greeting.
        kind: GreetingKind,
    },
}

/// Work for the shell to run off the call's task, in order; each reports
/// back as an [`OwnerEvent`] (some report nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// The login lockout, then the PIN against the mailbox's hash;
    /// reports [`Event::PinVerdict`].
    VerifyPin {
        /// The mailbox typed or taken from the caller.
        mailbox: String,
        /// The PIN typed.
        pin: Pin,
    },
    /// The mailbox's messages and temporary greeting; reports
    /// [`Event::MailboxLoaded`] or [`Event::MailboxUnavailable`].
    LoadMailbox {
        /// The mailbox.
        mailbox: String,
    },
    /// Renders or decodes audio to play; reports [`OwnerEvent::Loaded`]
    /// or [`OwnerEvent::LoadFailed`]. Only the latest load matters: the
    /// shell may run loads beside the other jobs.
    Load {
        /// The playback it is for.
        playback: PlaybackId,
        /// What to load.
        audio: Audio,
    },
    /// A new message was heard: into `old`.
    MarkHeard {
        /// The message.
        id: String,
    },
    /// Into `saved`.
    Save {
        /// The message.
        id: String,
    },
    /// Into `deleted` (restorable).
    Delete {
        /// The message.
        id: String,
    },
    /// Hashes and stores a new PIN; reports [`Event::PinSaved`].
    SetPin {
        /// The mailbox.
        mailbox: String,
        /// The new PIN.
        pin: Pin,
    },
    /// Writes the recorded take to its temporary file; reports
    /// [`OwnerEvent::TakeSaved`].
    SaveTake {
        /// The mailbox.
        mailbox: String,
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Makes the take the mailbox's `kind` greeting (atomically).
    AcceptGreeting {
        /// The mailbox.
        mailbox: String,
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Removes the take; the greeting stays as it was.
    DiscardGreeting {
        /// The mailbox.
        mailbox: String,
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Removes the mailbox's temporary greeting.
    RemoveTemporaryGreeting {
        /// The mailbox.
        mailbox: String,
    },
}

/// What the shell must do, in the order polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Stop what plays, then play this audio; report
    /// [`OwnerEvent::Queued`].
    PlayAudio {
        /// The playback.
        playback: PlaybackId,
        /// The samples.
        pcm: Vec<i16>,
        /// Their rate (the media core converts it to the call's).
        rate: u32,
    },
    /// Stop what plays.
    Stop,
    /// Play the recording tone; report [`OwnerEvent::Queued`].
    Tone,
    /// Start recording the greeting take (`#` stops it).
    Record,
    /// Stop recording.
    StopRecording,
    /// Run this job after the ones before it.
    Job(Job),
    /// The call is over; send BYE when `hang_up`.
    Finish {
        /// Whether vmesh ends the call.
        hang_up: bool,
    },
}

/// Where the call is.
#[derive(Debug)]
enum Phase {
    /// Answered; the menu's first prompt waits for the ACK or the caller's
    /// first packet (nothing is sent before either).
    Answered(Menu),
    /// The menu runs.
    InMenu(Menu),
    /// Over.
    Ending,
}

/// What plays for the menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Nothing (or something stopped).
    Silent,
    /// Being loaded ([`Job::Load`]).
    Loading(PlaybackId),
    /// Loaded and handed to the shell; its prompt id not yet known.
    Requested(PlaybackId),
    /// Playing as this prompt.
    Playing {
        playback: PlaybackId,
        prompt: PromptId,
    },
}

/// The greeting being recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Take {
    /// None.
    Idle,
    /// The tone plays (its prompt id once known); recording follows.
    Tone {
        mailbox: String,
        kind: GreetingKind,
        prompt: Option<PromptId>,
    },
    /// Recording.
    Recording { mailbox: String, kind: GreetingKind },
    /// Being written to its temporary file.
    Saving,
}

/// One owner's call; see the module documentation.
#[derive(Debug)]
pub struct OwnerFlow {
    phase: Phase,
    output: Output,
    take: Take,
    /// The message of the current load, and those that could not be
    /// loaded: a message nobody could hear is not marked heard.
    loading: Option<String>,
    unplayable: Vec<String>,
    effects: VecDeque<Effect>,
}

impl OwnerFlow {
    /// A call just answered through a pilot, as `start` says.
    pub fn new(config: MenuConfig, start: Start) -> OwnerFlow {
        OwnerFlow {
            phase: Phase::Answered(Menu::new(config, start)),
            output: Output::Silent,
            take: Take::Idle,
            loading: None,
            unplayable: Vec::new(),
            effects: VecDeque::new(),
        }
    }

    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ending)
    }

    /// The logged-in mailbox, once there is one.
    pub fn mailbox(&self) -> Option<&str> {
        match &self.phase {
            Phase::InMenu(menu) => menu.mailbox(),
            _ => None,
        }
    }

    /// The next effect to carry out.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`OwnerFlow::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::InMenu(menu) => menu.poll_timeout(),
            Phase::Answered(_) | Phase::Ending => None,
        }
    }

    /// Fires the menu's deadline if `now` has reached it.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::InMenu(menu) = &mut self.phase {
            menu.handle_timeout(now);
        }
        self.pump(now);
    }

    /// One event at `now`.
    pub fn handle(&mut self, event: OwnerEvent, now: Instant) {
        match event {
            OwnerEvent::Confirmed | OwnerEvent::Media(MediaEvent::CallerMedia) => self.go_live(),
            OwnerEvent::Media(event) => self.media(event, now),
            OwnerEvent::Queued { sound, prompt } => self.queued(sound, prompt),
            OwnerEvent::Loaded {
                playback,
                pcm,
                rate,
            } => {
                if self.output == Output::Loading(playback) {
                    self.output = Output::Requested(playback);
                    self.effects.push_back(Effect::PlayAudio {
                        playback,
                        pcm,
                        rate,
                    });
                }
            }
            OwnerEvent::LoadFailed { playback } => {
                // Nothing to hear: the menu goes on as after its end.
                if self.output == Output::Loading(playback) {
                    self.output = Output::Silent;
                    self.unplayable.extend(self.loading.take());
                    self.tell_menu(Event::PlaybackFinished(playback), now);
                }
            }
            OwnerEvent::TakeSaved { length } => {
                if self.take == Take::Saving {
                    self.take = Take::Idle;
                    self.tell_menu(Event::RecordingFinished { length }, now);
                }
            }
            OwnerEvent::Answer(event) => self.tell_menu(event, now),
            OwnerEvent::CallerLeft => self.end(false, now),
            OwnerEvent::Shutdown => self.end(true, now),
        }
        self.pump(now);
    }

    /// The call is confirmed (or the caller's media arrived): the menu's
    /// first prompt may play.
    fn go_live(&mut self) {
        if let Phase::Answered(_) = self.phase {
            if let Phase::Answered(menu) = std::mem::replace(&mut self.phase, Phase::Ending) {
                self.phase = Phase::InMenu(menu);
            }
        }
    }

    fn media(&mut self, event: MediaEvent, now: Instant) {
        match event {
            MediaEvent::Digit { digit, .. } => self.tell_menu(Event::Digit(digit), now),
            MediaEvent::PromptEnded { id, end } => self.prompt_ended(id, end, now),
            MediaEvent::RecordingEnded(RecordEnd::RtpTimeout) | MediaEvent::RtpTimeout => {
                tracing::info!("no RTP from the caller: ending the call");
                self.end(true, now);
            }
            MediaEvent::RecordingEnded(end) => {
                if let Take::Recording { mailbox, kind } =
                    std::mem::replace(&mut self.take, Take::Idle)
                {
                    tracing::debug!(?end, "greeting recording ended");
                    self.take = Take::Saving;
                    self.effects
                        .push_back(Effect::Job(Job::SaveTake { mailbox, kind }));
                }
            }
            MediaEvent::CallerMedia => self.go_live(),
        }
    }

    fn prompt_ended(&mut self, id: PromptId, end: PromptEnd, now: Instant) {
        if let Take::Tone {
            mailbox,
            kind,
            prompt: Some(tone),
        } = &self.take
        {
            if *tone == id {
                self.take = Take::Recording {
                    mailbox: mailbox.clone(),
                    kind: *kind,
                };
                self.effects.push_back(Effect::Record);
                return;
            }
        }
        if let Output::Playing { playback, prompt } = self.output {
            // A prompt this flow stopped is no longer `Playing`; one that
            // ended otherwise (finished, or cut by an encoding failure) is
            // over for the menu either way.
            if prompt == id {
                if end == PromptEnd::Interrupted {
                    tracing::debug!(%playback, "prompt cut short by the media path");
                }
                self.output = Output::Silent;
                self.tell_menu(Event::PlaybackFinished(playback), now);
            }
        }
    }

    fn queued(&mut self, sound: Sound, prompt: PromptId) {
        match sound {
            Sound::Menu(playback) => {
                if self.output == Output::Requested(playback) {
                    self.output = Output::Playing { playback, prompt };
                }
            }
            Sound::Tone => {
                if let Take::Tone { prompt: slot, .. } = &mut self.take {
                    *slot = Some(prompt);
                }
            }
        }
    }

    /// Hands an event to the menu, if it runs.
    fn tell_menu(&mut self, event: Event, now: Instant) {
        if let Phase::InMenu(menu) = &mut self.phase {
            menu.handle(event, now);
        }
    }

    /// The call ends: the menu cleans up (a take not accepted is thrown
    /// away), then the shell finishes.
    fn end(&mut self, hang_up: bool, now: Instant) {
        let menu = match std::mem::replace(&mut self.phase, Phase::Ending) {
            Phase::Answered(menu) | Phase::InMenu(menu) => menu,
            Phase::Ending => return,
        };
        let mut menu = menu;
        menu.handle(Event::HungUp, now);
        while let Some(action) = menu.poll_action() {
            match action {
                Action::DiscardGreeting { mailbox, kind } => self
                    .effects
                    .push_back(Effect::Job(Job::DiscardGreeting { mailbox, kind })),
                Action::StopRecording => self.effects.push_back(Effect::StopRecording),
                _ => {}
            }
        }
        self.effects.push_back(Effect::Finish { hang_up });
    }

    /// Turns the menu's pending actions into effects.
    fn pump(&mut self, now: Instant) {
        loop {
            let Phase::InMenu(menu) = &mut self.phase else {
                return;
            };
            let mailbox = menu.mailbox().map(str::to_owned);
            let Some(action) = menu.poll_action() else {
                return;
            };
            self.act(action, mailbox, now);
        }
    }

    fn act(&mut self, action: Action, mailbox: Option<String>, now: Instant) {
        let job = |job| Effect::Job(job);
        let effect = match action {
            Action::Play { playback, clips } => {
                self.load(playback, Audio::Clips(clips));
                return;
            }
            Action::PlayMessage { playback, id } => {
                self.load(playback, Audio::Message(id));
                return;
            }
            Action::PlayRecordedGreeting { playback, kind } => {
                let Some(mailbox) = mailbox else {
                    return;
                };
                self.load(playback, Audio::Take { mailbox, kind });
                return;
            }
            Action::StopPlayback => {
                self.output = Output::Silent;
                Effect::Stop
            }
            Action::StartRecording { mailbox, kind } => {
                self.take = Take::Tone {
                    mailbox,
                    kind,
                    prompt: None,
                };
                Effect::Tone
            }
            Action::StopRecording => match std::mem::replace(&mut self.take, Take::Idle) {
                Take::Tone { .. } => {
                    // Stopped during the tone: nothing was recorded.
                    self.effects.push_back(Effect::Stop);
                    self.tell_menu(
                        Event::RecordingFinished {
                            length: Duration::ZERO,
                        },
                        now,
                    );
                    return;
                }
                take @ Take::Recording { .. } => {
                    self.take = take;
                    Effect::StopRecording
                }
                other => {
                    self.take = other;
                    return;
                }
            },
            Action::AcceptGreeting { mailbox, kind } => job(Job::AcceptGreeting { mailbox, kind }),
            Action::DiscardGreeting { mailbox, kind } => {
                job(Job::DiscardGreeting { mailbox, kind })
            }
            Action::RemoveTemporaryGreeting { mailbox } => {
                job(Job::RemoveTemporaryGreeting { mailbox })
            }
            Action::VerifyPin { mailbox, pin } => job(Job::VerifyPin { mailbox, pin }),
            Action::LoadMailbox { mailbox } => job(Job::LoadMailbox { mailbox }),
            Action::MarkHeard { id } if self.unplayable.contains(&id) => {
                tracing::warn!(id, "message could not be played: left unheard");
                return;
            }
            Action::MarkHeard { id } => job(Job::MarkHeard { id }),
            Action::Save { id } => job(Job::Save { id }),
            Action::Delete { id } => job(Job::Delete { id }),
            Action::SetPin { mailbox, pin } => job(Job::SetPin { mailbox, pin }),
            Action::HangUp => {
                self.phase = Phase::Ending;
                Effect::Finish { hang_up: true }
            }
        };
        self.effects.push_back(effect);
    }

    /// Stops what plays and loads `audio` for `playback`.
    fn load(&mut self, playback: PlaybackId, audio: Audio) {
        self.loading = match &audio {
            Audio::Message(id) => Some(id.clone()),
            Audio::Clips(_) | Audio::Take { .. } => None,
        };
        self.output = Output::Loading(playback);
        if self.effects.back() != Some(&Effect::Stop) {
            self.effects.push_back(Effect::Stop);
        }
        self.effects
            .push_back(Effect::Job(Job::Load { playback, audio }));
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;

//! An answered voicemail call: ring, answer, greet, record, hang up, store.
//!
//! The session is one task with one flat loop: it waits on the call's
//! media (the media engine's wake-up, [`MediaPort`]), the dialog's events, the
//! recording file being opened and the server's shutdown, and feeds each
//! to the sans-IO cores: the media state machine ([`CallMedia`]) and the
//! deposit flow ([`DepositFlow`]), whose actions it carries out. The SIP
//! side of the call (answer, ACK, re-INVITE, UPDATE, INFO DTMF, BYE) is
//! the [`CallLeg`]'s, shared with owners' calls. When vmesh ends the call
//! it sends BYE itself. The message is made durable before `run` returns.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::flow::{Action, CallEvent, DepositFlow, Phase};
use super::greeting_cache::GreetingCache;
use super::greetings::{Greeting, Greetings};
use super::leg::{CallLeg, LegEvent};
use super::{storage_policy, Context};
use crate::call::mailbox::MailboxTarget;
use crate::call::parties::caller_of;
use crate::media::{
    shared_beep, CallMedia, Codec, MediaEvent, MediaPort, Negotiated, Prompt, RecordEnd,
    RecordLimits, RtpSocket,
};
use crate::store::{Finished, NewMessage, Recording, Route, StoreError};

/// One answered (or about to be answered) call.
pub struct Session {
    ctx: Arc<Context>,
    leg: CallLeg,
    target: MailboxTarget,
    call_id: String,
    /// When the call was answered, for the message's time.
    answered_at: time::OffsetDateTime,
    message_id: Uuid,
}

/// Where the recorded audio goes: held in memory until the ACK has
/// confirmed the call and the files exist, then into the WAV file.
enum RecordingFile {
    /// No file yet (no ACK yet, or being created): audio waits here.
    Waiting(Vec<i16>),
    /// The file being written (boxed: the writer and its buffer state are
    /// large beside the other variants).
    Open(Box<Recording>),
    /// The file could not be made; the recording ends.
    Failed(String),
}

impl RecordingFile {
    fn write(&mut self, pcm: &[i16]) -> Result<(), String> {
        match self {
            RecordingFile::Waiting(held) => {
                held.extend_from_slice(pcm);
                Ok(())
            }
            RecordingFile::Open(recording) => recording.write(pcm).map_err(|e| e.to_string()),
            RecordingFile::Failed(error) => Err(error.clone()),
        }
    }

    /// The files exist: what waited goes in first. A write the disk
    /// refuses (full) keeps the recording: what it could not take stays
    /// buffered in it and is tried again at the close, where the space
    /// reserve is given up for it, so the call is still stored as a
    /// partial message; the next write meets the full disk again and ends
    /// the recording.
    fn opened(&mut self, mut recording: Recording) {
        let held = match std::mem::replace(self, RecordingFile::Waiting(Vec::new())) {
            RecordingFile::Waiting(held) => held,
            _ => Vec::new(),
        };
        if let Err(e) = recording.write(&held) {
            warn!(error = %e, "cannot write the audio held until the ACK");
        }
        *self = RecordingFile::Open(Box::new(recording));
    }
}

/// The prompts of this call, ready before the answer.
struct Prompts {
    greeting: Prompt,
    beep: Prompt,
}

impl Session {
    /// A deposit for `target` on the dialog `leg`.
    pub fn new(ctx: Arc<Context>, leg: CallLeg, target: MailboxTarget, call_id: String) -> Self {
        Session {
            ctx,
            leg,
            target,
            call_id,
            answered_at: time::OffsetDateTime::now_utc(),
            message_id: Uuid::new_v4(),
        }
    }

    /// Runs the call to its end and stores what it recorded.
    pub async fn run(
        mut self,
        offer: Option<Negotiated>,
        socket: RtpSocket,
        slot: OwnedSemaphorePermit,
    ) {
        let Some(codec) = self.leg.prepare(offer.as_ref()).await else {
            return;
        };
        let prompts = if self.ctx.profile.media.prompts {
            self.prompts(codec.audio_rate()).await
        } else {
            None
        };
        info!(id = %self.message_id, "deposit");
        let Some(mut media) = self.leg.answer(offer, codec) else {
            return;
        };
        self.answered_at = time::OffsetDateTime::now_utc();
        let mut port = MediaPort::new(socket, &media);
        let (end, hang_up, file) = self.drive(&mut media, &mut port, prompts).await;
        let stats = media.stats();
        info!(
            ?end,
            ?stats,
            send_errors = port.send_errors(),
            "call media ended"
        );
        port.goodbye(&mut media, tokio::time::Instant::now().into_std());
        drop(port);
        drop(slot);
        // The message is stored while the BYE waits for its answer: a
        // caller that no longer answers holds the BYE for 32 s (Timer F),
        // which must not delay the message.
        let bye = hang_up.then(|| self.leg.bye());
        let store = async {
            match file {
                Some(mut recording) => {
                    if let Some(n) = self.leg.negotiated() {
                        // The codec the call settled on (the ACK's answer to our offer).
                        if let Err(e) = recording.set_codec(n.codec.name()) {
                            warn!(error = %e, "cannot record the codec");
                        }
                    }
                    self.store(recording, &end).await;
                }
                None => info!("the call was never confirmed by an ACK: nothing stored"),
            }
        };
        let bye = async {
            if let Some(bye) = bye {
                bye.await;
            }
        };
        tokio::join!(bye, store);
    }

    /// The call's one loop; returns how the recording ended, whether vmesh
    /// hangs up, and the recording file when there is one.
    async fn drive(
        &mut self,
        media: &mut CallMedia,
        port: &mut MediaPort,
        prompts: Option<Prompts>,
    ) -> (RecordEnd, bool, Option<Recording>) {
        let mut flow = DepositFlow::new(prompts.is_some());
        let mut file = RecordingFile::Waiting(Vec::new());
        let mut opening: Option<JoinHandle<Result<Recording, StoreError>>> = None;
        let shutdown_token = self.ctx.shutdown.clone();
        let shutdown = shutdown_token.cancelled();
        tokio::pin!(shutdown);
        let mut stopping = false;
        let limits = self.limits();
        loop {
            let now = tokio::time::Instant::now().into_std();
            port.transmit(media, now);
            let mut actions = Vec::new();
            while let Some(event) = media.poll_event() {
                if let Some(event) = call_event(&event) {
                    actions.extend(flow.handle(event));
                }
                if let MediaEvent::Digit { digit, via, .. } = event {
                    debug!(%digit, ?via, "DTMF");
                }
            }
            if let Err(error) = media.drain_recorded(&mut |pcm: &[i16]| file.write(pcm)) {
                warn!(%error, "cannot write the recording");
                if let Some(end) = media.recording_ended() {
                    actions.extend(flow.handle(CallEvent::RecordingEnded(end)));
                }
            }
            for action in actions {
                self.act(action, media, &prompts, &limits, &mut opening, now);
            }
            if flow.is_ending() {
                break;
            }
            port.arm(media.poll_timeout());
            tokio::select! {
                biased;
                input = std::future::poll_fn(|cx| port.poll_input(cx)) => {
                    port.feed(media, input, tokio::time::Instant::now().into_std());
                }
                state = self.leg.next_state() => {
                    let event = self.leg.on_state(state, media).await.map(|e| match e {
                        LegEvent::Confirmed => CallEvent::Confirmed,
                        LegEvent::CallerLeft => CallEvent::CallerLeft,
                    });
                    if let Some(event) = event {
                        let actions = flow.handle(event);
                        let now = tokio::time::Instant::now().into_std();
                        for action in actions {
                            self.act(action, media, &prompts, &limits, &mut opening, now);
                        }
                    }
                }
                opened = async { opening.as_mut().expect("guarded").await }, if opening.is_some() => {
                    opening = None;
                    match opened {
                        Ok(Ok(recording)) => file.opened(recording),
                        Ok(Err(e)) => file = RecordingFile::Failed(e.to_string()),
                        Err(e) => file = RecordingFile::Failed(e.to_string()),
                    }
                }
                _ = &mut shutdown, if !stopping => {
                    stopping = true;
                    info!("server stopping: ending the call");
                    let now = tokio::time::Instant::now().into_std();
                    for action in flow.handle(CallEvent::Shutdown) {
                        self.act(action, media, &prompts, &limits, &mut opening, now);
                    }
                }
            }
        }
        // The last audio, into the file once it exists.
        if let Some(handle) = opening.take() {
            match handle.await {
                Ok(Ok(recording)) => file.opened(recording),
                Ok(Err(e)) => file = RecordingFile::Failed(e.to_string()),
                Err(e) => file = RecordingFile::Failed(e.to_string()),
            }
        }
        if let Err(error) = media.drain_recorded(&mut |pcm: &[i16]| file.write(pcm)) {
            warn!(%error, "cannot write the end of the recording");
        }
        let (end, hang_up) = match flow.phase() {
            Phase::Ending { reason, hang_up } => (reason.clone(), *hang_up),
            _ => (RecordEnd::Stopped, false),
        };
        let end = match media.recording_ended() {
            Some(RecordEnd::SinkFailed(e)) => RecordEnd::SinkFailed(e.clone()),
            _ => end,
        };
        let recording = match file {
            RecordingFile::Open(recording) => Some(*recording),
            RecordingFile::Waiting(_) => None,
            RecordingFile::Failed(error) => {
                warn!(%error, "the recording's file failed");
                None
            }
        };
        (end, hang_up, recording)
    }

    /// Carries out one of the flow's actions.
    fn act(
        &mut self,
        action: Action,
        media: &mut CallMedia,
        prompts: &Option<Prompts>,
        limits: &RecordLimits,
        opening: &mut Option<JoinHandle<Result<Recording, StoreError>>>,
        now: std::time::Instant,
    ) {
        match action {
            Action::OpenFile => {
                let codec = self
                    .leg
                    .negotiated()
                    .map_or(media.negotiated().codec, |n| n.codec);
                let meta = self.new_message(codec, media.sample_rate());
                let store = self.ctx.store.clone();
                *opening = Some(tokio::task::spawn_blocking(move || {
                    store.start_recording(meta)
                }));
            }
            Action::PlayGreeting => {
                if let Some(p) = prompts {
                    media.play(p.greeting.clone());
                }
            }
            Action::PlayBeep => {
                if let Some(p) = prompts {
                    media.play(p.beep.clone());
                }
            }
            Action::Record => media.record(limits, Some(END_KEY), now),
            Action::StopRecording => media.stop_recording(),
            Action::Finish => {}
        }
    }

    fn limits(&self) -> RecordLimits {
        let media = &self.ctx.profile.media;
        RecordLimits {
            max_length: media.max_message,
            rtp_timeout: media.rtp_timeout,
            jitter: media.jitter,
            max_silence: media.max_silence,
            silence_threshold_dbfs: media.silence_threshold_dbfs as f32,
        }
    }

    /// The metadata of the message this call records.
    fn new_message(&self, codec: Codec, sample_rate: u32) -> NewMessage {
        let invite = self.leg.initial_request();
        let caller = caller_of(&invite);
        NewMessage {
            id: self.message_id,
            mailbox: self.target.mailbox.clone(),
            caller_uri: caller.uri,
            caller_name: caller.display_name,
            called_uri: self.target.party.clone(),
            reason: self.target.reason.clone(),
            received_at: self.answered_at,
            codec: codec.name().to_string(),
            sample_rate,
            origin: self.ctx.profile.server.name.clone(),
            call_id: self.call_id.clone(),
        }
    }

    /// The greeting for this call (the mailbox's temporary one, else busy or
    /// unavailable by the diversion reason, else the built-in one) and the
    /// beep, at `rate`, ready to play. `None` only when the prompts cannot
    /// be prepared at all; the call then records at once.
    async fn prompts(&self, rate: u32) -> Option<Prompts> {
        let greetings = Greetings::new(&self.ctx.profile.server.data_dir);
        let chosen = greetings.choose(&self.target.mailbox, self.target.reason.as_deref());
        let cache = GreetingCache::global();
        // Most calls find their greeting decoded already; the others read
        // it on a blocking thread.
        let loaded = match cache.cached(&chosen, rate) {
            Some(pcm) => Ok(Ok(pcm)),
            None => {
                tokio::task::spawn_blocking(move || {
                    cache.shared(&chosen, rate).or_else(|e| {
                        warn!(error = %e, "greeting unreadable; playing the default one");
                        cache.shared(&Greeting::Default, rate)
                    })
                })
                .await
            }
        };
        let greeting = match loaded {
            Ok(Ok(pcm)) => pcm,
            Ok(Err(e)) => {
                warn!(error = %e, "no greeting can be played");
                Arc::from([])
            }
            Err(e) => {
                warn!(error = %e, "greeting task failed");
                return None;
            }
        };
        let media = &self.ctx.profile.media;
        let millis = u32::try_from(media.beep.as_millis()).unwrap_or(u32::MAX);
        Some(Prompts {
            greeting: Prompt {
                pcm: greeting,
                rate,
                barge_in: true,
            },
            beep: Prompt {
                pcm: shared_beep(rate, media.beep_hz, millis),
                rate,
                barge_in: false,
            },
        })
    }

    /// Makes the message durable, queued for its home in the same
    /// transaction when that is another server, and wakes that courier.
    /// Encoding and committing run on the bounded encoder pool; the call's
    /// slot is already free by then. A call the server cut (`end`) is
    /// stored as partial, whatever it holds.
    async fn store(&self, mut recording: Recording, end: &RecordEnd) {
        // What the caller said is in the kernel before the job may wait
        // for a worker; a crash meanwhile leaves a recoverable recording.
        if let Err(e) = recording.flush() {
            warn!(error = %e, "cannot flush the recording");
        }
        let store = self.ctx.store.clone();
        let policy = storage_policy(&self.ctx.profile);
        let partial = cut_by_server(end);
        let route = self.ctx.route_of(&self.target.mailbox);
        let queued_for = match &route {
            Route::Forward { peer } => Some(peer.clone()),
            Route::Home => None,
        };
        let finished = self
            .ctx
            .encoders
            .run(move || store.finish(recording, &policy, partial, &route))
            .await;
        match finished {
            Ok(Ok(Finished::Stored(m))) => {
                info!(id = %m.id, duration_ms = m.duration_ms, home = ?queued_for, "message stored");
                if let (Some(peer), Some(mesh)) = (queued_for, &self.ctx.mesh) {
                    mesh.queued(&peer);
                }
            }
            Ok(Ok(Finished::Discarded { duration, reason })) => {
                info!(?duration, ?reason, "message discarded")
            }
            Ok(Err(e)) | Err(e) => warn!(error = %e, "cannot store the message"),
        }
    }
}

/// Whether the server, not the caller, cut the recording: it is stopping,
/// or the disk refused the audio. The caller was answered and meant to
/// leave a message, so what was recorded is kept as partial, never judged
/// as a hang-up (too short, silent).
fn cut_by_server(end: &RecordEnd) -> bool {
    matches!(end, RecordEnd::Shutdown | RecordEnd::SinkFailed(_))
}

/// The key that ends a recording ("press # when done").
const END_KEY: char = '#';

/// What a media event means for the deposit flow.
fn call_event(event: &MediaEvent) -> Option<CallEvent> {
    match event {
        MediaEvent::CallerMedia => Some(CallEvent::CallerMedia),
        MediaEvent::PromptEnded { .. } => Some(CallEvent::PromptEnded),
        MediaEvent::RecordingEnded(end) => Some(CallEvent::RecordingEnded(end.clone())),
        MediaEvent::RtpTimeout => Some(CallEvent::RtpTimeout),
        MediaEvent::Digit { .. } => None,
    }
}

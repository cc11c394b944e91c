//! An answered voicemail call: ring, answer, greet, record, hang up, store.
//!
//! The session is one task with one flat loop: it waits on the call's
//! media sockets and timer ([`MediaPort`]), the dialog's events, the
//! recording file being opened and the server's shutdown, and feeds each
//! to the sans-IO cores: the media state machine ([`CallMedia`]) and the
//! deposit flow ([`DepositFlow`]), whose actions it carries out. In-dialog
//! requests are answered meanwhile: the ACK (which carries the SDP answer
//! when the INVITE had none, RFC 3264 §5), re-INVITEs and UPDATEs for
//! hold, resume, a codec change or a session-timer refresh (RFC 3264 §8,
//! RFC 3311, RFC 4028; answered on the same RTP port so the recording goes
//! on), and INFO carrying DTMF, which acts exactly as RFC 4733 digits.
//! When vmesh ends the call it sends BYE itself. The message is made
//! durable before `run` returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use rsipstack::dialog::dialog::TransactionHandle;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Method, Request, StatusCode};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::flow::{Action, CallEvent, DepositFlow, Phase};
use super::greetings::{load_pcm, Greeting, Greetings};
use super::{session_timer, storage_policy, Context};
use crate::call::mailbox::MailboxTarget;
use crate::call::parties::caller_of;
use crate::media::dtmf_info::{self, InfoDtmfError};
use crate::media::{
    accept_answer, beep, build_answer, build_offer, negotiate_in_order, CallMedia, Codec,
    MediaEvent, MediaPort, MediaSettings, Negotiated, Prompt, RecordEnd, RecordLimits, RtpSocket,
    SdpError,
};
use crate::sip::responses;
use crate::store::{Finished, NewMessage, Recording, Route, StoreError};

/// One answered (or about to be answered) call.
pub struct Session {
    ctx: Arc<Context>,
    dialog: InviteDialog,
    states: DialogStateReceiver,
    target: MailboxTarget,
    call_id: String,
    codecs: Vec<Codec>,
    /// Our RTP address, as our SDP gives it.
    local_rtp: SocketAddr,
    /// SDP `o=` session id and version (RFC 4566 §5.2), bumped per answer.
    sdp_session: u64,
    sdp_version: u64,
    /// The media agreed so far; `None` until the ACK answers our offer.
    negotiated: Option<Negotiated>,
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

    /// The files exist: what waited goes in first.
    fn opened(&mut self, mut recording: Recording) {
        let held = match std::mem::replace(self, RecordingFile::Waiting(Vec::new())) {
            RecordingFile::Waiting(held) => held,
            _ => Vec::new(),
        };
        *self = match recording.write(&held) {
            Ok(()) => RecordingFile::Open(Box::new(recording)),
            Err(e) => RecordingFile::Failed(e.to_string()),
        };
    }
}

/// The prompts of this call, ready before the answer.
struct Prompts {
    greeting: Prompt,
    beep: Prompt,
}

impl Session {
    pub fn new(
        ctx: Arc<Context>,
        dialog: InviteDialog,
        states: DialogStateReceiver,
        target: MailboxTarget,
        call_id: String,
        codecs: Vec<Codec>,
        local_rtp: SocketAddr,
    ) -> Self {
        Session {
            ctx,
            dialog,
            states,
            target,
            call_id,
            codecs,
            local_rtp,
            sdp_session: u64::from(rand::random::<u32>()),
            sdp_version: 1,
            negotiated: None,
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
        let local = self.local_rtp;
        if !self.ring().await {
            info!("caller gave up before the answer");
            return;
        }
        if self.ctx.shutdown.is_cancelled() {
            // Admitted just before the server began to stop: refuse rather
            // than answer a call that would be ended at once.
            self.dialog
                .reject(Some(StatusCode::ServiceUnavailable), None)
                .ok();
            return;
        }
        let Some(&first) = self.codecs.first() else {
            self.dialog
                .reject(Some(StatusCode::NotAcceptableHere), None)
                .ok();
            return;
        };
        let codec = offer.as_ref().map_or(first, |n| n.codec);
        let initial = offer
            .clone()
            .unwrap_or_else(|| Negotiated::before_answer(codec));
        let prompts = if self.ctx.profile.media.prompts {
            self.prompts(codec.audio_rate()).await
        } else {
            None
        };
        let media = &self.ctx.profile.media;
        let settings = MediaSettings {
            jitter: media.jitter,
            rtp_timeout: media.rtp_timeout,
        };
        let now = tokio::time::Instant::now().into_std();
        let mut media =
            match CallMedia::new(&initial, settings, now, SystemTime::now(), rand::random()) {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "cannot set up the call's media");
                    self.dialog
                        .reject(Some(StatusCode::ServerInternalError), None)
                        .ok();
                    return;
                }
            };
        let body = match &offer {
            Some(n) => build_answer(n, local, self.sdp_session, self.sdp_version),
            None => build_offer(&self.codecs, local, self.sdp_session, self.sdp_version),
        };
        self.negotiated = offer;
        self.answered_at = time::OffsetDateTime::now_utc();
        info!(id = %self.message_id, rtp = %local, codec = codec.name(), "answering");
        let mut headers = vec![responses::sdp_content_type()];
        headers.extend(session_timer::response_headers(
            &self.dialog.initial_request(),
        ));
        if let Err(e) = self.dialog.accept(Some(headers), Some(body.into_bytes())) {
            warn!(error = %e, "cannot send 200");
        }
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
        // which must not delay the message, nor a shutdown's.
        let dialog = self.dialog.clone();
        let stopping = self.ctx.shutdown.is_cancelled();
        let bye = async move {
            if !hang_up {
                return;
            }
            let answered = async {
                if let Err(e) = dialog.bye().await {
                    warn!(error = %e, "BYE failed");
                }
            };
            // A stopping server does not wait out Timer F for a caller that
            // is gone; the BYE was sent (and retransmitted meanwhile).
            if stopping {
                if tokio::time::timeout(SHUTDOWN_BYE_WAIT, answered)
                    .await
                    .is_err()
                {
                    info!("no answer to the BYE while stopping; not waiting for it");
                }
            } else {
                answered.await;
            }
        };
        let store = async {
            match file {
                Some(mut recording) => {
                    if let Some(n) = &self.negotiated {
                        // The codec the call settled on (the ACK's answer to our offer).
                        if let Err(e) = recording.set_codec(n.codec.name()) {
                            warn!(error = %e, "cannot record the codec");
                        }
                    }
                    self.store(recording).await;
                }
                None => info!("the call was never confirmed by an ACK: nothing stored"),
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
                state = self.states.recv() => {
                    let event = match state {
                        Some(state) => self.on_state(state, media).await,
                        None => Some(CallEvent::CallerLeft),
                    };
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
                    .negotiated
                    .as_ref()
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

    /// Rings for the profile's answer delay, if any; false if the call
    /// ended meanwhile (a CANCEL, RFC 3261 §9.2: the INVITE transaction
    /// answers 487 itself) or the server is stopping.
    async fn ring(&mut self) -> bool {
        let delay = self.ctx.profile.sip.answer_delay;
        if delay.is_zero() {
            return true;
        }
        if let Err(e) = self.dialog.ringing(None, None) {
            warn!(error = %e, "cannot send 180");
            return false;
        }
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                _ = self.ctx.shutdown.cancelled() => {
                    self.dialog.reject(Some(StatusCode::ServiceUnavailable), None).ok();
                    return false;
                }
                state = self.states.recv() => match state {
                    Some(DialogState::Terminated(..)) | None => return false,
                    _ => {}
                },
            }
        }
    }

    /// The metadata of the message this call records.
    fn new_message(&self, codec: Codec, sample_rate: u32) -> NewMessage {
        let invite = self.dialog.initial_request();
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

    /// Handles one dialog event; what it means for the flow, if anything.
    async fn on_state(&mut self, state: DialogState, media: &mut CallMedia) -> Option<CallEvent> {
        let now = || tokio::time::Instant::now().into_std();
        match state {
            DialogState::Confirmed(..) => {
                if self.negotiated.is_none() {
                    match self.answer_from_ack() {
                        Ok(n) => {
                            media.update(&n, now());
                            self.negotiated = Some(n);
                        }
                        Err(e) => {
                            // We cannot know what the caller sends; RFC 3261
                            // §13.3.1.4 ends such a session with BYE.
                            info!(error = %e, "ACK carried no usable SDP answer; hanging up");
                            self.dialog.bye().await.ok();
                            return Some(CallEvent::CallerLeft);
                        }
                    }
                }
                media.confirm(now());
                Some(CallEvent::Confirmed)
            }
            DialogState::Updated(_, req, handle) => {
                if let Some(n) = self.renegotiate(&req, handle).await {
                    media.update(&n, now());
                    self.negotiated = Some(n);
                }
                None
            }
            DialogState::Info(_, req, handle) => {
                self.info(&req, handle, media).await;
                None
            }
            DialogState::Options(_, _, handle)
            | DialogState::Notify(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Publish(_, _, handle) => {
                handle.reply(StatusCode::OK).await.ok();
                None
            }
            DialogState::Refer(_, _, handle) => {
                handle.reply(StatusCode::NotImplemented).await.ok();
                None
            }
            DialogState::Terminated(_, reason) => {
                info!(?reason, "dialog ended");
                (!matches!(reason, TerminatedReason::UasBye)).then_some(CallEvent::CallerLeft)
            }
            _ => None,
        }
    }

    /// INFO with a DTMF body acts as an RFC 4733 digit; an empty INFO (a
    /// keep-alive some PBXs send) is answered 200; another body is not
    /// understood (415 with what we accept, RFC 3261 §21.4.13).
    async fn info(&mut self, req: &Request, handle: TransactionHandle, media: &mut CallMedia) {
        if req.body.is_empty() {
            handle.reply(StatusCode::OK).await.ok();
            return;
        }
        let content_type = req
            .headers
            .iter()
            .find_map(|h| match h {
                Header::ContentType(c) => Some(c.value().to_string()),
                _ => None,
            })
            .unwrap_or_default();
        match dtmf_info::parse_info_dtmf(&content_type, &req.body) {
            Ok(key) => {
                debug!(digit = %key.digit, "DTMF by SIP INFO");
                media.signalled_digit(key.digit, tokio::time::Instant::now().into_std());
                handle.reply(StatusCode::OK).await.ok();
            }
            Err(InfoDtmfError::Malformed(body)) => {
                info!(%body, "INFO DTMF body names no key");
                handle.reply(StatusCode::BadRequest).await.ok();
            }
            Err(InfoDtmfError::NotDtmf(_)) => {
                let accept = Header::Accept(
                    format!("{}, {}", dtmf_info::DTMF_RELAY, dtmf_info::DTMF).into(),
                );
                handle
                    .respond(StatusCode::UnsupportedMediaType, Some(vec![accept]), None)
                    .await
                    .ok();
            }
        }
    }

    /// The greeting for this call (the mailbox's temporary one, else busy or
    /// unavailable by the diversion reason, else the built-in one) and the
    /// beep, at `rate`, ready to play. `None` only when the prompts cannot
    /// be prepared at all; the call then records at once.
    async fn prompts(&self, rate: u32) -> Option<Prompts> {
        let greetings = Greetings::new(&self.ctx.profile.server.data_dir);
        let chosen = greetings.choose(&self.target.mailbox, self.target.reason.as_deref());
        let loaded = tokio::task::spawn_blocking(move || {
            load_pcm(&chosen, rate).or_else(|e| {
                warn!(error = %e, "greeting unreadable; playing the default one");
                load_pcm(&Greeting::Default, rate)
            })
        })
        .await;
        let greeting = match loaded {
            Ok(Ok(pcm)) => pcm,
            Ok(Err(e)) => {
                warn!(error = %e, "no greeting can be played");
                Vec::new()
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
                pcm: beep(rate, media.beep_hz, millis),
                rate,
                barge_in: false,
            },
        })
    }

    /// The SDP answer carried by the ACK, for an INVITE that had no offer.
    fn answer_from_ack(&self) -> Result<Negotiated, SdpError> {
        let ack = self.dialog.last_remote_ack().ok_or(SdpError::NoAudio)?;
        let sdp =
            std::str::from_utf8(&ack.body).map_err(|_| SdpError::Parse("not UTF-8".into()))?;
        accept_answer(sdp, &self.codecs)
    }

    /// Answers a re-INVITE or an UPDATE (hold, resume, codec change,
    /// session-timer refresh) on the same RTP port with the next SDP
    /// version (RFC 3264 §8). An offerless re-INVITE gets our offer (its
    /// answer comes in the ACK, and the current codec stays in use); an
    /// offerless UPDATE, the usual RFC 4028 refresh, gets a 200 without a
    /// body (RFC 3311 §5.2).
    async fn renegotiate(
        &mut self,
        req: &Request,
        handle: TransactionHandle,
    ) -> Option<Negotiated> {
        let local = self.local_rtp;
        let offer = std::str::from_utf8(&req.body)
            .ok()
            .filter(|s| !s.trim().is_empty());
        let mut headers = session_timer::response_headers(req);
        let (body, negotiated) = match offer
            .map(|sdp| negotiate_in_order(sdp, &self.codecs, self.ctx.profile.media.codec_order))
        {
            None if req.method == Method::Update => {
                handle
                    .respond(StatusCode::OK, Some(headers), None)
                    .await
                    .ok();
                debug!("session refreshed by UPDATE");
                return None;
            }
            None => (
                build_offer(&self.codecs, local, self.sdp_session, self.sdp_version + 1),
                None,
            ),
            Some(Ok(n)) => (
                build_answer(&n, local, self.sdp_session, self.sdp_version + 1),
                Some(n),
            ),
            Some(Err(e)) => {
                // RFC 3261 §14.2: a refused offer leaves the session as it was.
                info!(error = %e, method = %req.method, "offer refused");
                handle.reply(StatusCode::NotAcceptableHere).await.ok();
                return None;
            }
        };
        self.sdp_version += 1;
        headers.push(responses::sdp_content_type());
        handle
            .respond(StatusCode::OK, Some(headers), Some(body.into_bytes()))
            .await
            .ok();
        if let Some(n) = &negotiated {
            info!(method = %req.method, codec = n.codec.name(), direction = ?n.direction, "offer answered");
        }
        negotiated
    }

    /// Makes the message durable, queued for its home in the same
    /// transaction when that is another server, and wakes that courier.
    /// Encoding and committing run on the bounded encoder pool; the call's
    /// slot is already free by then.
    async fn store(&self, mut recording: Recording) {
        // What the caller said is in the kernel before the job may wait
        // for a worker; a crash meanwhile leaves a recoverable recording.
        if let Err(e) = recording.flush() {
            warn!(error = %e, "cannot flush the recording");
        }
        let store = self.ctx.store.clone();
        let policy = storage_policy(&self.ctx.profile);
        let route = self.ctx.route_of(&self.target.mailbox);
        let queued_for = match &route {
            Route::Forward { peer } => Some(peer.clone()),
            Route::Home => None,
        };
        let finished = self
            .ctx
            .encoders
            .run(move || store.finish(recording, &policy, false, &route))
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

/// The key that ends a recording ("press # when done").
const END_KEY: char = '#';

/// How long a stopping server waits for the answer to a BYE it sent.
const SHUTDOWN_BYE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

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

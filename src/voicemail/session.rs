//! An answered voicemail call: ring, answer, record, hang up, store.
//!
//! The session owns the dialog's state events and the recording. It
//! records until the media loop ends (caller's BYE, `#`, maximum length, RTP
//! silence) and answers in-dialog events meanwhile: the ACK (which carries
//! the SDP answer when the INVITE had none, RFC 3264 §5), re-INVITEs for
//! hold, resume or a codec change (RFC 3264 §8, answered on the same RTP
//! port so the recording goes on), and shutdown. When vmesh ends the call
//! it sends BYE itself. The message is made durable before `run` returns.

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::dialog::dialog::TransactionHandle;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Request, StatusCode};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use super::greetings::{load_pcm, Greeting, Greetings};
use super::{storage_policy, Context};
use crate::call::mailbox::MailboxTarget;
use crate::call::parties::caller_of;
use crate::media::{
    accept_answer, beep, build_answer, build_offer, negotiate_in_order, record, Codec,
    MediaCommand, Negotiated, Playback, RecordEnd, RecordLimits, RtpSocket, SdpError,
};
use crate::sip::responses;
use crate::store::{Finished, NewMessage, Recording, Route};

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
}

/// What the dialog events ask of the media loop.
enum Step {
    Continue,
    /// End the recording; the caller has already left (no BYE to send).
    CallerLeft,
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
        let mut recording = match self.start_recording(codec).await {
            Some(r) => r,
            None => {
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
        info!(id = %recording.id(), rtp = %local, codec = codec.name(), "answering");
        let headers = Some(vec![responses::sdp_content_type()]);
        if let Err(e) = self.dialog.accept(headers, Some(body.into_bytes())) {
            warn!(error = %e, "cannot send 200");
        }
        let initial = self
            .negotiated
            .clone()
            .unwrap_or_else(|| Negotiated::before_answer(codec));
        let (end, caller_left) = self.record(&socket, &initial, &mut recording).await;
        if let Some(n) = &self.negotiated {
            // The codec the call settled on (the ACK's answer to our offer).
            if let Err(e) = recording.set_codec(n.codec.name()) {
                warn!(error = %e, "cannot record the codec");
            }
        }
        let hang_up =
            !caller_left && (self.ctx.shutdown.is_cancelled() || end != RecordEnd::Stopped);
        if hang_up {
            if let Err(e) = self.dialog.bye().await {
                warn!(error = %e, "BYE failed");
            }
        }
        drop(socket);
        drop(slot);
        self.store(recording).await;
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

    async fn start_recording(&self, codec: Codec) -> Option<Recording> {
        let invite = self.dialog.initial_request();
        let caller = caller_of(&invite);
        let meta = NewMessage {
            id: Uuid::new_v4(),
            mailbox: self.target.mailbox.clone(),
            caller_uri: caller.uri,
            caller_name: caller.display_name,
            called_uri: self.target.party.clone(),
            reason: self.target.reason.clone(),
            received_at: time::OffsetDateTime::now_utc(),
            codec: codec.name().to_string(),
            sample_rate: codec.audio_rate(),
            origin: self.ctx.profile.server.name.clone(),
            call_id: self.call_id.clone(),
        };
        let store = self.ctx.store.clone();
        match tokio::task::spawn_blocking(move || store.start_recording(meta)).await {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                warn!(error = %e, "cannot start recording");
                None
            }
            Err(e) => {
                warn!(error = %e, "recording task failed");
                None
            }
        }
    }

    /// Records until the media loop ends, answering dialog events
    /// meanwhile. Returns how it ended and whether the caller already left.
    async fn record(
        &mut self,
        socket: &RtpSocket,
        initial: &Negotiated,
        recording: &mut Recording,
    ) -> (RecordEnd, bool) {
        let media = &self.ctx.profile.media;
        let limits = RecordLimits {
            max_length: media.max_message,
            rtp_timeout: media.rtp_timeout,
            jitter: media.jitter,
            max_silence: media.max_silence,
            silence_threshold_dbfs: media.silence_threshold_dbfs as f32,
        };
        let prelude = if media.prompts {
            self.prelude(initial).await
        } else {
            None
        };
        let (commands, mut command_rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        let mut sink = |pcm: &[i16]| recording.write(pcm);
        let recorder = record(
            socket,
            initial,
            limits,
            &mut command_rx,
            stop.clone(),
            prelude,
            &mut sink,
        );
        tokio::pin!(recorder);
        let shutdown = self.ctx.shutdown.clone();
        let mut caller_left = false;
        loop {
            tokio::select! {
                (end, stats) = &mut recorder => {
                    info!(?end, ?stats, "recording ended");
                    return (end, caller_left);
                }
                _ = shutdown.cancelled(), if !stop.is_cancelled() => {
                    info!("server stopping: ending the call");
                    stop.cancel();
                }
                state = self.states.recv() => {
                    let step = match state {
                        Some(state) => self.on_state(state, &commands).await,
                        None => Step::CallerLeft,
                    };
                    if let Step::CallerLeft = step {
                        caller_left = true;
                        stop.cancel();
                    }
                }
            }
        }
    }

    /// Handles one dialog event during the recording.
    async fn on_state(
        &mut self,
        state: DialogState,
        commands: &mpsc::Sender<MediaCommand>,
    ) -> Step {
        match state {
            DialogState::Confirmed(..) if self.negotiated.is_none() => match self.answer_from_ack()
            {
                Ok(n) => {
                    commands.send(MediaCommand::Update(n.clone())).await.ok();
                    self.negotiated = Some(n);
                }
                Err(e) => {
                    // We cannot know what the caller sends; RFC 3261
                    // §13.3.1.4 ends such a session with BYE.
                    info!(error = %e, "ACK carried no usable SDP answer; hanging up");
                    self.dialog.bye().await.ok();
                    return Step::CallerLeft;
                }
            },
            DialogState::Updated(_, req, handle) => {
                if let Some(n) = self.reinvite(&req, handle).await {
                    commands.send(MediaCommand::Update(n.clone())).await.ok();
                    self.negotiated = Some(n);
                }
            }
            DialogState::Info(_, _, handle)
            | DialogState::Options(_, _, handle)
            | DialogState::Notify(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Publish(_, _, handle) => {
                handle.reply(StatusCode::OK).await.ok();
            }
            DialogState::Refer(_, _, handle) => {
                handle.reply(StatusCode::NotImplemented).await.ok();
            }
            DialogState::Terminated(_, reason) => {
                info!(?reason, "dialog ended");
                if !matches!(reason, TerminatedReason::UasBye) {
                    return Step::CallerLeft;
                }
            }
            _ => {}
        }
        Step::Continue
    }

    /// The greeting for this call (the mailbox's temporary one, else busy or
    /// unavailable by the diversion reason, else the built-in one) and the
    /// beep, at the codec's rate, ready to play (issue 4). `None` only when
    /// the prompts cannot be prepared at all; the call then records at once.
    async fn prelude(&self, n: &Negotiated) -> Option<Playback> {
        let rate = n.codec.audio_rate();
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
                Vec::new()
            }
        };
        let media = &self.ctx.profile.media;
        let millis = u32::try_from(media.beep.as_millis()).unwrap_or(u32::MAX);
        let tone = beep(rate, media.beep_hz, millis);
        match Playback::new(
            greeting,
            tone,
            n.codec,
            n.payload_type,
            std::time::Instant::now(),
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(error = %e, "cannot encode the prompts");
                None
            }
        }
    }

    /// The SDP answer carried by the ACK, for an INVITE that had no offer.
    fn answer_from_ack(&self) -> Result<Negotiated, SdpError> {
        let ack = self.dialog.last_remote_ack().ok_or(SdpError::NoAudio)?;
        let sdp =
            std::str::from_utf8(&ack.body).map_err(|_| SdpError::Parse("not UTF-8".into()))?;
        accept_answer(sdp, &self.codecs)
    }

    /// Answers a re-INVITE (hold, resume, codec change) on the same RTP port
    /// with the next SDP version (RFC 3264 §8). An offerless re-INVITE (a
    /// session refresh) gets our offer; the current codec stays in use.
    async fn reinvite(&mut self, req: &Request, handle: TransactionHandle) -> Option<Negotiated> {
        let local = self.local_rtp;
        let offer = std::str::from_utf8(&req.body)
            .ok()
            .filter(|s| !s.trim().is_empty());
        let (body, negotiated) = match offer
            .map(|sdp| negotiate_in_order(sdp, &self.codecs, self.ctx.profile.media.codec_order))
        {
            None => (
                build_offer(&self.codecs, local, self.sdp_session, self.sdp_version + 1),
                None,
            ),
            Some(Ok(n)) => (
                build_answer(&n, local, self.sdp_session, self.sdp_version + 1),
                Some(n),
            ),
            Some(Err(e)) => {
                // RFC 3261 §14.2: a refused re-INVITE leaves the session as it was.
                info!(error = %e, "re-INVITE refused");
                handle.reply(StatusCode::NotAcceptableHere).await.ok();
                return None;
            }
        };
        self.sdp_version += 1;
        let headers = Some(vec![responses::sdp_content_type()]);
        handle
            .respond(StatusCode::OK, headers, Some(body.into_bytes()))
            .await
            .ok();
        if let Some(n) = &negotiated {
            info!(codec = n.codec.name(), direction = ?n.direction, "re-INVITE answered");
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

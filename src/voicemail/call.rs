//! One voicemail call, from INVITE to stored message.
//!
//! The steps, each of which can end the call with the response a PBX
//! expects: capacity (503 + Retry-After), mailbox (404), SDP (488), RTP port
//! (503), then the dialog: optional ringing, 200 with the SDP answer (or our
//! offer, when the INVITE had none and the answer comes in the ACK), and the
//! recording until BYE, `#`, the maximum length or RTP silence, after which
//! vmesh hangs up itself. The message is made durable by the store before
//! the task ends, whatever ended the call.

use std::sync::Arc;

use rsipstack::dialog::dialog::{DialogState, TerminatedReason, TransactionHandle};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Request, StatusCode, Uri};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use super::Context;
use crate::call::mailbox::MailboxTarget;
use crate::call::parties::{called_of, caller_of, mailbox_of};
use crate::media::{
    accept_answer, build_answer, build_offer, negotiate, record, Codec, MediaCommand, Negotiated,
    RecordEnd, RecordLimits, RtpSocket, SdpError,
};
use crate::sip::responses;
use crate::store::{Finished, NewMessage};

/// Seconds a PBX should wait before retrying when vmesh is full or stopping.
const RETRY_AFTER_S: u32 = 5;

/// Runs one call to its end. Every failure is answered on `tx` or ends the
/// dialog; nothing here panics on what the caller sent.
pub async fn run(ctx: Arc<Context>, tx: Transaction) {
    let call_id = tx
        .original
        .call_id_header()
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("call", %call_id, mailbox = tracing::field::Empty);
    answer(ctx, tx, call_id).instrument(span).await
}

use rsipstack::sip::prelude::HeadersExt;

async fn answer(ctx: Arc<Context>, mut tx: Transaction, call_id: String) {
    if ctx.shutdown.is_cancelled() {
        reply(&mut tx, StatusCode::ServiceUnavailable, vec![responses::retry_after(RETRY_AFTER_S)]).await;
        return;
    }
    let Ok(slot) = ctx.calls.clone().try_acquire_owned() else {
        warn!("over capacity; refusing call");
        reply(&mut tx, StatusCode::ServiceUnavailable, vec![responses::retry_after(RETRY_AFTER_S)]).await;
        return;
    };
    let target = match mailbox_of(&tx.original) {
        Ok(t) if ctx.profile.mailboxes.contains(&t.mailbox) => t,
        Ok(t) => {
            info!(mailbox = %t.mailbox, "mailbox not served here");
            reply(&mut tx, StatusCode::NotFound, vec![]).await;
            return;
        }
        Err(e) => {
            info!(error = %e, "no mailbox in the request");
            reply(&mut tx, StatusCode::NotFound, vec![]).await;
            return;
        }
    };
    tracing::Span::current().record("mailbox", target.mailbox.as_str());
    let codecs = ctx.codecs();
    let offer = match offer_of(&tx.original, &codecs) {
        Ok(o) => o,
        Err(e) => {
            info!(error = %e, "SDP offer refused");
            let status = match e {
                SdpError::Parse(_) => StatusCode::BadRequest,
                _ => StatusCode::NotAcceptableHere,
            };
            reply(&mut tx, status, vec![Header::Warning(format!("304 vmesh \"{e}\"").into())]).await;
            return;
        }
    };
    let media = &ctx.profile.media;
    let socket = match RtpSocket::bind(media.rtp_ip, media.rtp_ports.clone()).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "no RTP port");
            reply(&mut tx, StatusCode::ServiceUnavailable, vec![responses::retry_after(RETRY_AFTER_S)]).await;
            return;
        }
    };
    let contact = contact_for(&tx, &ctx);
    let (state_tx, state_rx) = ctx.sip.dialogs.new_dialog_state_channel();
    let dialog = match ctx
        .sip
        .dialogs
        .get_or_create_server_invite(&tx, state_tx, None, contact)
    {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot create dialog");
            reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
            return;
        }
    };
    let mut driver = dialog.clone();
    let dialog_id = dialog.id();
    tokio::spawn(async move {
        // Runs the INVITE server transaction: 100 Trying, retransmissions,
        // CANCEL, the ACK (RFC 3261 §17.2.1, RFC 6026 §7.1).
        if let Err(e) = driver.handle(&mut tx).await {
            tracing::debug!(error = %e, "INVITE transaction ended with an error");
        }
    });
    let call = Call {
        ctx: ctx.clone(),
        dialog,
        state_rx,
        target,
        call_id,
        session_id: rand::random::<u32>() as u64,
        sdp_version: 1,
    };
    call.run(offer, &codecs, socket).await;
    ctx.sip.dialogs.remove_dialog(&dialog_id);
    drop(slot);
}

/// What the INVITE's body asks for: an offer to answer, or none (we offer).
fn offer_of(req: &Request, codecs: &[Codec]) -> Result<Option<Negotiated>, SdpError> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let sdp = std::str::from_utf8(&req.body).map_err(|_| SdpError::Parse("not UTF-8".into()))?;
    negotiate(sdp, codecs).map(Some)
}

/// Our Contact for this dialog: the address the INVITE arrived on, with the
/// transport when it is not UDP (RFC 3261 §12.1.1), so in-dialog requests
/// come back the same way.
fn contact_for(tx: &Transaction, ctx: &Context) -> Option<Uri> {
    let conn = tx.connection.as_ref()?;
    let addr = conn.get_addr();
    let transport = match conn {
        SipConnection::Udp(_) => "",
        _ => ";transport=tcp",
    };
    let text = format!("sip:vmesh@{}{}", addr.addr, transport);
    let _ = ctx;
    Uri::try_from(text.as_str()).ok()
}

async fn reply(tx: &mut Transaction, status: StatusCode, headers: Vec<Header>) {
    if let Err(e) = tx.reply_with(status, headers, None).await {
        warn!(error = %e, "cannot send response");
    }
}

/// An answered call in progress.
struct Call {
    ctx: Arc<Context>,
    dialog: InviteDialog,
    state_rx: rsipstack::dialog::dialog::DialogStateReceiver,
    target: MailboxTarget,
    call_id: String,
    session_id: u64,
    sdp_version: u64,
}

/// Why the call ended, as far as hanging up is concerned.
enum Hangup {
    /// The caller ended it (BYE, CANCEL, no ACK): nothing to send.
    ByCaller,
    /// vmesh ends it: send BYE.
    ByUs,
}

impl Call {
    async fn run(mut self, offer: Option<Negotiated>, codecs: &[Codec], socket: RtpSocket) {
        let local = socket.local_addr();
        // Ring first if the profile says so; a CANCEL meanwhile ends it.
        let delay = self.ctx.profile.sip.answer_delay;
        if !delay.is_zero() {
            if let Err(e) = self.dialog.ringing(None, None) {
                warn!(error = %e, "cannot send 180");
                return;
            }
            if !self.wait_while_ringing(delay).await {
                info!("caller gave up before the answer");
                return;
            }
        }
        let (body, mut negotiated) = match &offer {
            Some(n) => (build_answer(n, local, self.session_id, self.sdp_version), Some(n.clone())),
            None => (build_offer(codecs, local, self.session_id, self.sdp_version), None),
        };
        let codec = negotiated.as_ref().map(|n| n.codec).unwrap_or(codecs[0]);
        let caller = caller_of(&self.dialog.initial_request());
        let meta = NewMessage {
            id: Uuid::new_v4(),
            mailbox: self.target.mailbox.clone(),
            caller_uri: caller.uri,
            caller_name: caller.display_name,
            called_uri: called_of(&self.dialog.initial_request()),
            reason: self.target.reason.clone(),
            received_at: time::OffsetDateTime::now_utc(),
            codec: codec.name().to_string(),
            sample_rate: codec.clock_rate(),
            origin: self.ctx.profile.server.name.clone(),
            call_id: self.call_id.clone(),
        };
        let store = self.ctx.store.clone();
        let mut recording = match tokio::task::spawn_blocking(move || store.start_recording(meta)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot start recording");
                self.dialog.reject(Some(StatusCode::ServerInternalError), None).ok();
                return;
            }
            Err(e) => {
                warn!(error = %e, "recording task failed");
                self.dialog.reject(Some(StatusCode::ServerInternalError), None).ok();
                return;
            }
        };
        info!(id = %recording.id(), rtp = %local, "answering");
        if let Err(e) = self.dialog.accept(Some(vec![responses::sdp_content_type()]), Some(body.into_bytes())) {
            warn!(error = %e, "cannot send 200");
        }

        let (commands_tx, mut commands_rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        let media = &self.ctx.profile.media;
        let limits = RecordLimits {
            max_length: media.max_message,
            rtp_timeout: media.rtp_timeout,
            jitter: media.jitter,
        };
        // Until the ACK brings the answer to our offer, record as if the
        // first codec was chosen: nothing arrives before it anyway.
        let initial = negotiated.clone().unwrap_or_else(|| Negotiated::before_answer(codec));
        let mut hangup = Hangup::ByUs;
        let mut shutdown_seen = false;
        let (end, stats) = {
            let mut sink = |pcm: &[i16]| recording.write(pcm);
            let recorder = record(&socket, &initial, limits, &mut commands_rx, stop.clone(), &mut sink);
            tokio::pin!(recorder);
            loop {
                tokio::select! {
                    result = &mut recorder => break result,
                    _ = self.ctx.shutdown.cancelled(), if !shutdown_seen => {
                        shutdown_seen = true;
                        info!("shutting down: ending the call");
                        stop.cancel();
                    }
                    state = self.state_rx.recv() => {
                        let Some(state) = state else { stop.cancel(); continue };
                        match state {
                            DialogState::Confirmed(..) => {
                                if negotiated.is_none() {
                                    match self.answer_from_ack(codecs) {
                                        Ok(n) => {
                                            commands_tx.send(MediaCommand::Update(n.clone())).await.ok();
                                            negotiated = Some(n);
                                        }
                                        Err(e) => {
                                            info!(error = %e, "ACK carried no usable answer; hanging up");
                                            stop.cancel();
                                        }
                                    }
                                }
                            }
                            DialogState::Updated(_, req, handle) => {
                                if let Some(n) = self.reinvite(&req, handle, codecs, local).await {
                                    commands_tx.send(MediaCommand::Update(n.clone())).await.ok();
                                    negotiated = Some(n);
                                }
                            }
                            DialogState::Info(_, _, handle) | DialogState::Options(_, _, handle)
                            | DialogState::Notify(_, _, handle) | DialogState::Message(_, _, handle)
                            | DialogState::Publish(_, _, handle) => {
                                handle.reply(StatusCode::OK).await.ok();
                            }
                            DialogState::Refer(_, _, handle) => {
                                handle.reply(StatusCode::NotImplemented).await.ok();
                            }
                            DialogState::Terminated(_, reason) => {
                                info!(?reason, "dialog ended");
                                if !matches!(reason, TerminatedReason::UasBye) {
                                    hangup = Hangup::ByCaller;
                                }
                                stop.cancel();
                            }
                            _ => {}
                        }
                    }
                }
            }
        };
        info!(?end, ?stats, "recording ended");
        let by_us = matches!(hangup, Hangup::ByUs)
            && (shutdown_seen || !matches!(end, RecordEnd::Stopped));
        if by_us {
            if let Err(e) = self.dialog.bye().await {
                warn!(error = %e, "BYE failed");
            }
        }
        let store = self.ctx.store.clone();
        let min = self.ctx.profile.media.min_message;
        match tokio::task::spawn_blocking(move || store.finish(recording, min, false)).await {
            Ok(Ok(Finished::Stored(m))) => {
                info!(id = %m.id, duration_ms = m.duration_ms, "message stored")
            }
            Ok(Ok(Finished::Discarded { duration })) => {
                info!(?duration, "message shorter than the minimum; discarded")
            }
            Ok(Err(e)) => warn!(error = %e, "cannot store the message"),
            Err(e) => warn!(error = %e, "store task failed"),
        }
    }

    /// Waits out the answer delay; false if the dialog ended meanwhile
    /// (CANCEL, RFC 3261 §9.2: the transaction answers 487 itself).
    async fn wait_while_ringing(&mut self, delay: std::time::Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                _ = self.ctx.shutdown.cancelled() => {
                    self.dialog.reject(Some(StatusCode::ServiceUnavailable), None).ok();
                    return false;
                }
                state = self.state_rx.recv() => match state {
                    Some(DialogState::Terminated(..)) | None => return false,
                    _ => {}
                },
            }
        }
    }

    /// The SDP answer carried by the ACK, for an INVITE that had no offer
    /// (RFC 3264 §5, RFC 3261 §13.2.1).
    fn answer_from_ack(&self, codecs: &[Codec]) -> Result<Negotiated, SdpError> {
        let ack = self
            .dialog
            .last_remote_ack()
            .ok_or(SdpError::NoAudio)?;
        let sdp = std::str::from_utf8(&ack.body).map_err(|_| SdpError::Parse("not UTF-8".into()))?;
        accept_answer(sdp, codecs)
    }

    /// Answers a re-INVITE (hold, resume, codec change) without touching the
    /// recording: same RTP port, a new SDP version (RFC 3264 §8).
    async fn reinvite(
        &mut self,
        req: &Request,
        handle: TransactionHandle,
        codecs: &[Codec],
        local: std::net::SocketAddr,
    ) -> Option<Negotiated> {
        let sdp = std::str::from_utf8(&req.body).ok().filter(|s| !s.trim().is_empty());
        let Some(sdp) = sdp else {
            // An offerless re-INVITE is a session refresh: answer with an
            // offer of what we support; the ACK's answer is not needed to
            // keep recording on the current codec.
            self.sdp_version += 1;
            let body = build_offer(codecs, local, self.session_id, self.sdp_version);
            handle
                .respond(StatusCode::OK, Some(vec![responses::sdp_content_type()]), Some(body.into_bytes()))
                .await
                .ok();
            return None;
        };
        match negotiate(sdp, codecs) {
            Ok(n) => {
                self.sdp_version += 1;
                let body = build_answer(&n, local, self.session_id, self.sdp_version);
                handle
                    .respond(StatusCode::OK, Some(vec![responses::sdp_content_type()]), Some(body.into_bytes()))
                    .await
                    .ok();
                info!(codec = n.codec.name(), direction = ?n.direction, "re-INVITE answered");
                Some(n)
            }
            Err(e) => {
                info!(error = %e, "re-INVITE refused");
                handle.reply(StatusCode::NotAcceptableHere).await.ok();
                None
            }
        }
    }
}

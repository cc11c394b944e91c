//! The SIP side of one answered call, whatever the call is for: the
//! dialog from the 200 to the BYE, shared by a deposit ([`super::session`])
//! and an owner's call ([`super::owner`]).
//!
//! A [`CallLeg`] rings (180 for `sip.answer_delay_ms`; a CANCEL or the
//! server stopping ends it there), answers with our SDP (RFC 3264: the
//! answer to the INVITE's offer, or our offer when it had none) and the
//! session-timer headers (RFC 4028), and then answers what the caller
//! sends in the dialog while the call's own loop runs:
//!
//! - the ACK, which confirms the dialog and carries the SDP answer when
//!   the INVITE had no offer (RFC 3264 §5; one that carries none usable
//!   ends the call, RFC 3261 §13.3.1.4);
//! - re-INVITEs and UPDATEs for hold, resume, a codec change or a
//!   session-timer refresh (RFC 3264 §8, RFC 3311, RFC 4028), answered on
//!   the same RTP port so the media goes on;
//! - INFO carrying DTMF (`application/dtmf-relay`, `application/dtmf`),
//!   which reaches the media core exactly as an RFC 4733 digit does;
//! - OPTIONS, NOTIFY, MESSAGE, PUBLISH in the dialog (200), REFER (501);
//! - BYE, which ends the call ([`LegEvent::CallerLeft`]).
//!
//! Media (the sockets, [`CallMedia`]) stay with the call's loop: the leg
//! updates the media core when the session changes and is otherwise only
//! SIP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle,
};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Method, Request, StatusCode};
use tracing::{debug, info, warn};

use super::{session_timer, Context};
use crate::media::dtmf_info::{self, InfoDtmfError};
use crate::media::{
    accept_answer, build_answer, build_offer, negotiate_in_order, CallMedia, Codec, MediaSettings,
    Negotiated, SdpError,
};
use crate::sip::responses;

/// How long a stopping server waits for the answer to a BYE it sent.
pub const SHUTDOWN_BYE_WAIT: Duration = Duration::from_secs(2);

/// What a dialog event means for the call's flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    /// The ACK arrived (RFC 3261 §13.3.1.4): the dialog is confirmed.
    Confirmed,
    /// The caller left: BYE, or the dialog ended otherwise.
    CallerLeft,
}

/// The dialog of one call, from the 200 on; see the module documentation.
pub struct CallLeg {
    ctx: Arc<Context>,
    dialog: InviteDialog,
    states: DialogStateReceiver,
    codecs: Vec<Codec>,
    /// Our RTP address, as our SDP gives it.
    local_rtp: SocketAddr,
    /// SDP `o=` session id and version (RFC 4566 §5.2), bumped per answer.
    sdp_session: u64,
    sdp_version: u64,
    /// The media agreed so far; `None` until the ACK answers our offer.
    negotiated: Option<Negotiated>,
}

impl CallLeg {
    /// The leg of a dialog created for an INVITE; `codecs` are the
    /// profile's, `local_rtp` the call's RTP socket.
    pub fn new(
        ctx: Arc<Context>,
        dialog: InviteDialog,
        states: DialogStateReceiver,
        codecs: Vec<Codec>,
        local_rtp: SocketAddr,
    ) -> CallLeg {
        CallLeg {
            ctx,
            dialog,
            states,
            codecs,
            local_rtp,
            sdp_session: u64::from(rand::random::<u32>()),
            sdp_version: 1,
            negotiated: None,
        }
    }

    /// The INVITE that created the dialog.
    pub fn initial_request(&self) -> Request {
        self.dialog.initial_request()
    }

    /// Our RTP address.
    pub fn local_rtp(&self) -> SocketAddr {
        self.local_rtp
    }

    /// The session as last agreed; `None` while our offer awaits the ACK.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Rings if the profile asks for it, then picks the call's codec: the
    /// offer's, or our first when we offer. `None` when the call ended
    /// meanwhile or must be refused (the refusal is sent).
    pub async fn prepare(&mut self, offer: Option<&Negotiated>) -> Option<Codec> {
        if !self.ring().await {
            info!("caller gave up before the answer");
            return None;
        }
        if self.ctx.shutdown.is_cancelled() {
            // Admitted just before the server began to stop: refuse rather
            // than answer a call that would be ended at once.
            self.dialog
                .reject(Some(StatusCode::ServiceUnavailable), None)
                .ok();
            return None;
        }
        match (offer, self.codecs.first()) {
            (Some(n), _) => Some(n.codec),
            (None, Some(&first)) => Some(first),
            (None, None) => {
                self.dialog
                    .reject(Some(StatusCode::NotAcceptableHere), None)
                    .ok();
                None
            }
        }
    }

    /// Sets up the call's media in `codec` and sends the 200 with our SDP;
    /// `None` (after a 500) when the media cannot be set up.
    pub fn answer(&mut self, offer: Option<Negotiated>, codec: Codec) -> Option<CallMedia> {
        let initial = offer
            .clone()
            .unwrap_or_else(|| Negotiated::before_answer(codec));
        let settings = MediaSettings {
            jitter: self.ctx.profile.media.jitter,
            rtp_timeout: self.ctx.profile.media.rtp_timeout,
            keepalive: self.ctx.profile.media.keepalive,
        };
        let now = tokio::time::Instant::now().into_std();
        let media = match CallMedia::new(&initial, settings, now, SystemTime::now(), rand::random())
        {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot set up the call's media");
                self.dialog
                    .reject(Some(StatusCode::ServerInternalError), None)
                    .ok();
                return None;
            }
        };
        let local = self.local_rtp;
        let body = match &offer {
            Some(n) => build_answer(n, local, self.sdp_session, self.sdp_version),
            None => build_offer(&self.codecs, local, self.sdp_session, self.sdp_version),
        };
        self.negotiated = offer;
        info!(rtp = %local, codec = codec.name(), "answering");
        let mut headers = vec![responses::sdp_content_type()];
        headers.extend(session_timer::response_headers(
            &self.dialog.initial_request(),
        ));
        if let Err(e) = self.dialog.accept(Some(headers), Some(body.into_bytes())) {
            warn!(error = %e, "cannot send 200");
        }
        Some(media)
    }

    /// The next dialog event (`None` once the dialog is gone).
    pub async fn next_state(&mut self) -> Option<DialogState> {
        self.states.recv().await
    }

    /// Ends the call from our side (BYE). The future holds the dialog
    /// itself, so the call's other work (storing its message) goes on
    /// while the BYE waits for its answer. A caller that is gone holds a
    /// BYE for 32 s (Timer F, RFC 3261 §17.1.2.2), longer than a
    /// shutdown's grace: a stopping server waits at most
    /// [`SHUTDOWN_BYE_WAIT`] for the answer (the BYE is sent, and
    /// retransmitted meanwhile).
    pub fn bye(&self) -> impl Future<Output = ()> + Send + 'static {
        let dialog = self.dialog.clone();
        let stopping = self.ctx.shutdown.is_cancelled();
        async move {
            let answered = async {
                if let Err(e) = dialog.bye().await {
                    warn!(error = %e, "BYE failed");
                }
            };
            if !stopping {
                answered.await;
            } else if tokio::time::timeout(SHUTDOWN_BYE_WAIT, answered)
                .await
                .is_err()
            {
                info!("no answer to the BYE while stopping; not waiting for it");
            }
        }
    }

    /// Handles one dialog event (`None`: the dialog is gone); what it
    /// means for the call's flow, if anything.
    pub async fn on_state(
        &mut self,
        state: Option<DialogState>,
        media: &mut CallMedia,
    ) -> Option<LegEvent> {
        let now = || tokio::time::Instant::now().into_std();
        let Some(state) = state else {
            return Some(LegEvent::CallerLeft);
        };
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
                            return Some(LegEvent::CallerLeft);
                        }
                    }
                }
                media.confirm(now());
                Some(LegEvent::Confirmed)
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
                (!matches!(reason, TerminatedReason::UasBye)).then_some(LegEvent::CallerLeft)
            }
            _ => None,
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
}

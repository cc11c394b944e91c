//! Admission of one voicemail call: from INVITE to an answered session.
//!
//! Each step can end the call with the response a PBX expects: who may
//! call (403 outside `sip.allow`, 401 without good digest credentials, see
//! [`super::callers`]), capacity or shutdown (503 + Retry-After), then
//! what the call is for ([`crate::call::access`]): a deposit needs room on
//! the disk (503 + Retry-After, before the answer) and a mailbox (404); an
//! owner calling a retrieval pilot needs neither (the menu asks for the
//! mailbox when the caller's own is not known). Then SDP (400 when
//! unparseable, 488 when nothing in it is usable) and an RTP port (503).
//! What passes becomes a dialog ([`CallLeg`]) and either a [`Session`]
//! that records until the call ends or an [`OwnerSession`] that runs the
//! owner's menu.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Request, StatusCode, Transport, Uri};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipConnection;
use tracing::{info, warn, Instrument};

use super::callers::{caller_source, Admission};
use super::leg::CallLeg;
use super::owner::{self, OwnerSession};
use super::session::Session;
use super::Context;
use crate::call::access::{purpose_of, CallPurpose};
use crate::call::mailbox::MailboxTarget;
use crate::call::parties::mailbox_of;
use crate::config::{CodecOrder, ListenAddr, ListenTransport};
use crate::media::{negotiate_in_order, Codec, Negotiated, RtpSocket, SdpError};
use crate::retrieval::Start;
use crate::sip::responses;

/// Seconds a PBX should wait before retrying when vmesh is full or stopping.
const RETRY_AFTER_S: u32 = 5;

/// Seconds a PBX should wait before retrying when the disk is full: space
/// comes back when an operator acts, not in seconds.
const DISK_FULL_RETRY_AFTER_S: u32 = 300;

/// Runs one call to its end, inside a span naming its Call-ID and mailbox.
/// Every failure is answered on `tx` or ends the dialog.
pub async fn run(ctx: Arc<Context>, tx: Transaction) {
    let call_id = tx
        .original
        .call_id_header()
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("call", %call_id, mailbox = tracing::field::Empty);
    admit(ctx, tx, call_id).instrument(span).await
}

async fn admit(ctx: Arc<Context>, mut tx: Transaction, call_id: String) {
    if let Admission::Refuse { status, headers } = ctx.callers.check(&tx, Instant::now()) {
        return reply(&mut tx, status, headers).await;
    }
    let slot = match ctx.calls.clone().try_acquire_owned() {
        Ok(slot) if !ctx.shutdown.is_cancelled() => slot,
        _ => {
            warn!("over capacity or stopping; refusing call");
            let retry = vec![responses::retry_after(RETRY_AFTER_S)];
            return reply(&mut tx, StatusCode::ServiceUnavailable, retry).await;
        }
    };
    let purpose = match purpose_of(&tx.original, &ctx.profile.retrieval) {
        CallPurpose::Deposit => match deposit_target(&ctx, &mut tx).await {
            Some(target) => Purpose::Deposit(target),
            None => return,
        },
        CallPurpose::Retrieval(pilot) => {
            let start = owner::start_of(&ctx, &tx.original, pilot).await;
            let source = caller_source(&tx);
            info!(?pilot, caller_mailbox = ?start.caller_mailbox, ?source, "owner calling in");
            Purpose::Retrieval { start, source }
        }
    };
    let codecs = ctx.codecs();
    let offer = match offer_of(&tx.original, &codecs, ctx.profile.media.codec_order) {
        Ok(o) => o,
        Err(e) => {
            info!(error = %e, "SDP offer refused");
            let status = match e {
                SdpError::Parse(_) => StatusCode::BadRequest,
                _ => StatusCode::NotAcceptableHere,
            };
            // RFC 3261 §20.43: 304 "Media type not available".
            let warning = Header::Warning(format!("304 vmesh \"{e}\"").into());
            return reply(&mut tx, status, vec![warning]).await;
        }
    };
    let media = &ctx.profile.media;
    // RTCP gets the odd port above unless the offer multiplexes it (RFC 5761).
    let rtcp_port = offer.as_ref().is_none_or(|n| !n.rtcp_mux);
    let socket = match RtpSocket::bind_pair(media.rtp_ip, media.rtp_ports.clone(), rtcp_port).await
    {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "no RTP port");
            let retry = vec![responses::retry_after(RETRY_AFTER_S)];
            return reply(&mut tx, StatusCode::ServiceUnavailable, retry).await;
        }
    };
    let (state_tx, state_rx) = ctx.sip.dialogs.new_dialog_state_channel();
    let contact = contact_for(&tx, &ctx.profile.sip.listen);
    let dialog = match ctx
        .sip
        .dialogs
        .get_or_create_server_invite(&tx, state_tx, None, contact)
    {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot create dialog");
            return reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
        }
    };
    let mut driver = dialog.clone();
    tokio::spawn(async move {
        // The INVITE server transaction: 100 Trying, response
        // retransmissions, CANCEL, the ACK (RFC 3261 §17.2.1, RFC 6026 §7.1).
        if let Err(e) = driver.handle(&mut tx).await {
            tracing::debug!(error = %e, "INVITE transaction ended with an error");
        }
    });
    let dialog_id = dialog.id();
    let leg = CallLeg::new(ctx.clone(), dialog, state_rx, codecs, socket.local_addr());
    // Boxed: the call's task is spawned (and its future moved) while only
    // its admission is under way; the session's much larger state is
    // allocated once, when it starts.
    match purpose {
        Purpose::Deposit(target) => {
            let session = Session::new(ctx.clone(), leg, target, call_id);
            Box::pin(session.run(offer, socket, slot)).await;
        }
        Purpose::Retrieval { start, source } => {
            let session = OwnerSession::new(ctx.clone(), leg, start, source);
            Box::pin(session.run(offer, socket, slot)).await;
        }
    }
    ctx.sip.dialogs.remove_dialog(&dialog_id);
}

/// What an admitted call is for.
enum Purpose {
    /// Leave a message for this mailbox.
    Deposit(MailboxTarget),
    /// An owner calling in, from this address (the login lockout's key).
    Retrieval {
        start: Start,
        source: Option<IpAddr>,
    },
}

/// The mailbox a deposit is for, once the disk has room for it; `None`
/// when the INVITE was answered with a refusal.
async fn deposit_target(ctx: &Context, tx: &mut Transaction) -> Option<MailboxTarget> {
    // A full disk is found before the call is answered: the PBX can send
    // the caller elsewhere, and nothing recorded is lost (RFC 3261
    // §21.5.4).
    let store = ctx.store.clone();
    let min_free = ctx.profile.storage.min_free_bytes;
    let room = match store.had_room_lately(min_free) {
        true => Ok(true),
        false => tokio::task::spawn_blocking(move || store.has_room(min_free)).await,
    };
    if !room.unwrap_or(true) {
        warn!("data directory nearly full; refusing call");
        let retry = vec![
            responses::retry_after(DISK_FULL_RETRY_AFTER_S),
            responses::warning("voicemail storage full"),
        ];
        reply(tx, StatusCode::ServiceUnavailable, retry).await;
        return None;
    }
    let target = match mailbox_of(&tx.original) {
        Ok(t) if ctx.profile.mailboxes.contains(&t.mailbox) => t,
        Ok(t) => {
            info!(mailbox = %t.mailbox, "mailbox not served here");
            reply(tx, StatusCode::NotFound, vec![]).await;
            return None;
        }
        Err(e) => {
            info!(error = %e, "no mailbox in the request");
            reply(tx, StatusCode::NotFound, vec![]).await;
            return None;
        }
    };
    tracing::Span::current().record("mailbox", target.mailbox.as_str());
    Some(target)
}

/// What the INVITE's body asks for: an offer to answer, or none (we offer).
fn offer_of(
    req: &Request,
    codecs: &[Codec],
    order: CodecOrder,
) -> Result<Option<Negotiated>, SdpError> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let sdp = std::str::from_utf8(&req.body).map_err(|_| SdpError::Parse("not UTF-8".into()))?;
    negotiate_in_order(sdp, codecs, order).map(Some)
}

/// Our Contact for this dialog (RFC 3261 §12.1.1): the listen address of
/// the transport the INVITE arrived on, so in-dialog requests come back to
/// a socket that accepts them. Not a stream connection's own address: a PBX
/// may send the INVITE over a connection vmesh opened itself (a REGISTER's,
/// from an ephemeral port that closes). Of several listeners of that
/// transport, the one on the UDP socket's address or the one the
/// Request-URI names, else the first.
fn contact_for(tx: &Transaction, listen: &[ListenAddr]) -> Option<Uri> {
    let connection = tx.connection.as_ref()?;
    let (transport, param, local_ip) = match connection {
        SipConnection::Udp(udp) => (
            ListenTransport::Udp,
            "",
            udp.get_addr().get_socketaddr().ok().map(|a| a.ip()),
        ),
        other => match other.get_addr().r#type {
            Some(Transport::Tls) => (ListenTransport::Tls, ";transport=tls", None),
            _ => (ListenTransport::Tcp, ";transport=tcp", None),
        },
    };
    let addressed =
        local_ip.or_else(|| tx.original.uri.host_with_port.host.to_string().parse().ok());
    let candidates = || listen.iter().filter(|l| l.transport == transport);
    let entry = candidates()
        .find(|l| Some(l.addr.ip()) == addressed)
        .or_else(|| candidates().next())?;
    let host = match (entry.addr.ip().is_unspecified(), addressed) {
        (true, Some(ip)) => ip,
        _ => entry.addr.ip(),
    };
    let addr = std::net::SocketAddr::new(host, entry.addr.port());
    Uri::try_from(format!("sip:vmesh@{addr}{param}").as_str()).ok()
}

async fn reply(tx: &mut Transaction, status: StatusCode, headers: Vec<Header>) {
    if let Err(e) = tx.reply_with(status, headers, None).await {
        warn!(error = %e, "cannot send response");
    }
}

//! An owner calling in to listen: the owner's menu
//! ([`crate::retrieval::menu`]) run on a live call.
//!
//! A call to a retrieval pilot (decided by [`crate::call::access`]) is
//! admitted like a deposit (the same SIP, SDP, RTP and trust rules, the
//! same [`CallLeg`](super::leg::CallLeg)) and then run by an
//! [`OwnerSession`] instead of a recording session:
//!
//! - [`flow`]: the sans-IO state machine between the menu, the media core
//!   and the store (what plays, the greeting take, the call's phase);
//! - [`session`]: the thin tokio shell: the call's one loop, prompts
//!   rendered from the clips loaded at start-up, audio queued in the
//!   media core, jobs run in order off the call's task;
//! - [`jobs`]: that work: PIN checks, the store's folders (and the lamps),
//!   decoding messages, the greetings' files;
//! - [`login`]: the failed-login lockout and argon2 off the runtime;
//! - [`take`]: a greeting recorded by phone, until it is accepted.

pub mod flow;
pub mod jobs;
pub mod login;
pub mod session;
pub mod take;

use rsipstack::sip::Request;
use tracing::warn;

use super::Context;
use crate::call::access::caller_mailbox_of;
use crate::config::PilotKind;
use crate::retrieval::Start;

pub use flow::{Effect, Job, OwnerEvent, OwnerFlow};
pub use login::LoginGate;
pub use session::OwnerSession;

/// How the menu begins for a call through a `pilot`: `*97`-style pilots
/// take the caller's own mailbox (P-Asserted-Identity, then From) when it
/// is served here and was added to the store; otherwise, and on `*98`,
/// the menu asks for the mailbox number.
pub async fn start_of(ctx: &Context, invite: &Request, pilot: PilotKind) -> Start {
    let caller_mailbox = match pilot {
        PilotKind::AskMailbox => None,
        PilotKind::CallerMailbox => match caller_mailbox_of(invite) {
            Some(mailbox) if ctx.profile.mailboxes.contains(&mailbox) => {
                let store = ctx.store.clone();
                let known = tokio::task::spawn_blocking(move || {
                    store.mailbox(&mailbox).map(|m| m.map(|m| m.mailbox))
                })
                .await;
                match known {
                    Ok(Ok(found)) => found,
                    Ok(Err(e)) => {
                        warn!(error = %e, "cannot look the caller's mailbox up; asking for it");
                        None
                    }
                    Err(e) => {
                        warn!(error = %e, "mailbox lookup failed to run; asking for it");
                        None
                    }
                }
            }
            _ => None,
        },
    };
    Start {
        pilot,
        caller_mailbox,
    }
}

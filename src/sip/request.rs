//! Requests vmesh sends on its own: the headers every one of them needs
//! (RFC 3261 §8.1.1), built in one place for the mesh (OPTIONS pings,
//! MESSAGE transfers) and for message-waiting NOTIFYs.
//!
//! - Via: the address the request leaves from and its transport, with a
//!   fresh branch and `rport` (RFC 3581), as rsipstack's endpoint writes it.
//! - Out of any dialog (§8.1.1): the Request-URI and To are the target,
//!   To without a tag; From is `sip:USER@LOCAL` with a fresh tag; a fresh
//!   Call-ID; CSeq 1; Max-Forwards 70.
//!
//! Requests inside a dialog take their From, To, Call-ID and CSeq from the
//! dialog (`mwi::request::in_dialog`) and only their Via from here. The
//! REGISTER is the exception that is written as text
//! (`register::request`), where every header is the registration's own.

use std::net::SocketAddr;

use rsipstack::sip::typed::{From as FromHeader, To as ToHeader, Via};
use rsipstack::sip::{Method, Param, Request, Transport, Uri};
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transaction::make_tag;
use rsipstack::transport::SipAddr;

/// Why a request could not be built: a URI that does not parse, or an
/// endpoint that cannot write a Via.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// The Via of a request leaving from `local` over `transport`.
pub fn via(
    endpoint: &EndpointInner,
    local: SocketAddr,
    transport: Transport,
) -> Result<Via, BuildError> {
    let addr = SipAddr {
        r#type: Some(transport),
        addr: local.into(),
    };
    endpoint
        .get_via(Some(addr), None)
        .map_err(|e| BuildError(e.to_string()))
}

/// A request out of any dialog from `sip:USER@LOCAL` to `target`, leaving
/// from `local` over `transport`.
pub fn out_of_dialog(
    endpoint: &EndpointInner,
    method: Method,
    target: Uri,
    user: &str,
    local: SocketAddr,
    transport: Transport,
) -> Result<Request, BuildError> {
    let from_uri = Uri::try_from(format!("sip:{user}@{local}").as_str())
        .map_err(|e| BuildError(format!("From sip:{user}@{local}: {e}")))?;
    let from = FromHeader {
        display_name: None,
        uri: from_uri,
        params: vec![Param::Tag(make_tag())],
    };
    let to = ToHeader {
        display_name: None,
        uri: target.clone(),
        params: vec![],
    };
    let via = via(endpoint, local, transport)?;
    Ok(endpoint.make_request(method, target, via, from, to, 1, None))
}

//! Building NOTIFY requests: in a subscription's dialog (RFC 6665 §4.2.2,
//! RFC 3261 §12.2.1.1) from its persisted record, or unsolicited (out of
//! any dialog, as Asterisk sends them to PBX endpoints).
//!
//! In a dialog the Request-URI is the remote target (the subscriber's
//! Contact), the route set from its Record-Route goes into Route headers
//! in order, and the request goes to the first route when there is one
//! (loose routing, §12.2.1.1) or else to the remote target. From and To
//! carry our and the subscriber's tags, and the CSeq is the dialog's next.
//!
//! An unsolicited NOTIFY gets a fresh Call-ID and From tag, no To tag, and
//! `Subscription-State: terminated`, the way Asterisk's own unsolicited
//! MWI is sent (an in-dialog-looking NOTIFY would be refused with 481 by
//! devices that expect it out of dialog).

use std::net::SocketAddr;

use rsipstack::sip::typed::{From as FromHeader, To as ToHeader};
use rsipstack::sip::{Header, Host, Method, Param, Request, Transport, Uri};
use rsipstack::transaction::endpoint::EndpointInner;

use super::subscription::SubscriptionStatus;
use super::summary::{CONTENT_TYPE, EVENT_PACKAGE};
use crate::sip::request;
use crate::store::SubscriptionRecord;

/// Why a NOTIFY could not be built (a stored URI that no longer parses).
#[derive(Debug, thiserror::Error)]
#[error("cannot build NOTIFY: {0}")]
pub struct BuildError(pub String);

impl From<request::BuildError> for BuildError {
    fn from(e: request::BuildError) -> Self {
        BuildError(e.0)
    }
}

/// Where a request goes first: transport, host (a name or an address)
/// and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// UDP or TCP.
    pub transport: Transport,
    /// Host name or IP address.
    pub host: String,
    /// Port (5060 when the URI has none).
    pub port: u16,
}

impl NextHop {
    /// The next hop a URI names (RFC 3263 without DNS SRV: the URI's host
    /// and port, transport from its `transport` parameter, else UDP).
    pub fn of(uri: &Uri) -> NextHop {
        let transport = uri
            .params
            .iter()
            .find_map(|p| match p {
                Param::Transport(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(Transport::Udp);
        let host = match &uri.host_with_port.host {
            Host::IpAddr(ip) => ip.to_string(),
            Host::Domain(d) => d.to_string(),
        };
        let port = uri.host_with_port.port.as_ref().map_or(5060, |p| p.value());
        NextHop {
            transport,
            host,
            port,
        }
    }
}

/// The URIs of one `Record-Route`/`Route` value (`<a>, <b>`), in order.
pub fn route_uris(value: &str) -> Vec<String> {
    let mut uris = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for ch in value.chars() {
        match ch {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                uris.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    uris.push(current);
    uris.into_iter()
        .map(|u| {
            let u = u.trim();
            let inner = u
                .strip_prefix('<')
                .and_then(|r| r.split_once('>'))
                .map_or(u, |(inner, _)| inner);
            inner.trim().to_owned()
        })
        .filter(|u| !u.is_empty())
        .collect()
}

/// Where the NOTIFYs of `record`'s dialog go first: its first route, or
/// its remote target.
pub fn dialog_next_hop(record: &SubscriptionRecord) -> Result<NextHop, BuildError> {
    let first = record
        .route_set
        .iter()
        .flat_map(|v| route_uris(v))
        .next()
        .unwrap_or_else(|| record.remote_target.clone());
    Uri::try_from(first.as_str())
        .map(|uri| NextHop::of(&uri))
        .map_err(|e| BuildError(format!("next hop {first:?}: {e}")))
}

/// What a NOTIFY is about.
pub struct Content<'a> {
    /// `Subscription-State` value.
    pub state: String,
    /// The summary body.
    pub body: String,
    /// The Event `id` parameter, if the subscription has one.
    pub event_id: Option<&'a str>,
}

/// A NOTIFY in `record`'s dialog with CSeq `cseq`, leaving from `local`
/// over `transport`; and where it goes first.
pub fn in_dialog(
    endpoint: &EndpointInner,
    record: &SubscriptionRecord,
    cseq: u32,
    status: SubscriptionStatus,
    body: String,
    local: SocketAddr,
) -> Result<(Request, NextHop), BuildError> {
    let parse = |what: &str, text: &str| {
        Uri::try_from(text).map_err(|e| BuildError(format!("{what} {text:?}: {e}")))
    };
    let target = parse("remote target", &record.remote_target)?;
    let hop = dialog_next_hop(record)?;
    let from = FromHeader {
        display_name: None,
        uri: parse("local URI", &record.local_uri)?,
        params: vec![Param::Tag(record.local_tag.clone().into())],
    };
    let to = ToHeader {
        display_name: None,
        uri: parse("remote URI", &record.remote_uri)?,
        params: vec![Param::Tag(record.remote_tag.clone().into())],
    };
    let via = request::via(endpoint, local, hop.transport)?;
    let mut req = endpoint.make_request(
        Method::Notify,
        target,
        via,
        from,
        to,
        cseq,
        Some(record.call_id.clone().into()),
    );
    for route in &record.route_set {
        req.headers.push(Header::Route(route.clone().into()));
    }
    let content = Content {
        state: status.header_value(),
        body,
        event_id: record.event_id.as_deref(),
    };
    finish(&mut req, content, local, hop.transport);
    Ok((req, hop))
}

/// An unsolicited NOTIFY to `target`, leaving from `local`.
pub fn unsolicited(
    endpoint: &EndpointInner,
    target: &str,
    body: String,
    local: SocketAddr,
) -> Result<(Request, NextHop), BuildError> {
    let uri = Uri::try_from(target).map_err(|e| BuildError(format!("{target:?}: {e}")))?;
    let hop = NextHop::of(&uri);
    let mut req =
        request::out_of_dialog(endpoint, Method::Notify, uri, "vmesh", local, hop.transport)?;
    let content = Content {
        state: "terminated".into(),
        body,
        event_id: None,
    };
    finish(&mut req, content, local, hop.transport);
    Ok((req, hop))
}

/// The host part of a URI (for `Message-Account` when no domain is set).
pub fn host_of(uri: &str) -> Option<String> {
    let uri = Uri::try_from(uri).ok()?;
    Some(match uri.host_with_port.host {
        Host::IpAddr(ip) => ip.to_string(),
        Host::Domain(d) => d.to_string(),
    })
}

/// Contact, Event, Subscription-State, Allow-Events and the body.
fn finish(req: &mut Request, content: Content<'_>, local: SocketAddr, transport: Transport) {
    let contact = match transport {
        Transport::Udp => format!("<sip:vmesh@{local}>"),
        _ => format!("<sip:vmesh@{local};transport=tcp>"),
    };
    let event = match content.event_id {
        Some(id) => format!("{EVENT_PACKAGE};id={id}"),
        None => EVENT_PACKAGE.to_owned(),
    };
    req.headers.push(Header::Contact(contact.into()));
    req.headers.push(Header::Event(event.into()));
    req.headers
        .push(Header::SubscriptionState(content.state.into()));
    req.headers.push(Header::Other(
        "Allow-Events".into(),
        EVENT_PACKAGE.to_owned(),
    ));
    req.headers.push(Header::ContentType(CONTENT_TYPE.into()));
    req.body = content.body.into_bytes();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_values_split_into_uris_in_order() {
        assert_eq!(
            route_uris("<sip:p1.example;lr>, <sip:p2.example;lr;foo=\"a,b\">"),
            vec!["sip:p1.example;lr", "sip:p2.example;lr;foo=\"a,b\""]
        );
        assert_eq!(route_uris("sip:p3.example;lr"), vec!["sip:p3.example;lr"]);
        assert!(route_uris("").is_empty());
    }

    #[test]
    fn next_hops_follow_the_uri() {
        let hop = |s: &str| NextHop::of(&Uri::try_from(s).unwrap());
        assert_eq!(
            hop("sip:1001@192.0.2.7"),
            NextHop {
                transport: Transport::Udp,
                host: "192.0.2.7".into(),
                port: 5060
            }
        );
        assert_eq!(
            hop("sip:pbx.example.com:5070;transport=tcp"),
            NextHop {
                transport: Transport::Tcp,
                host: "pbx.example.com".into(),
                port: 5070
            }
        );
        assert_eq!(
            host_of("sip:1001@pbx.example.com:5080").as_deref(),
            Some("pbx.example.com")
        );
    }
}

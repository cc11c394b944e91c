//! The caller's half of a dialog set up with a raw INVITE: what RFC 3261
//! 12.1.2 has a UAC keep from the 2xx (Call-ID, tags, remote target, route
//! set), and the in-dialog requests built from it (ACK, BYE).

use std::net::SocketAddr;

use super::raw_sip::{unique_token, SipResponse};

/// A dialog from the caller's side.
#[derive(Clone, Debug)]
pub struct Dialog {
    /// Call-ID of the dialog.
    pub call_id: String,
    /// Our From header value, with our tag.
    pub from: String,
    /// The To header value of the 2xx, with vmesh's tag.
    pub to: String,
    /// vmesh's Contact URI: the Request-URI of requests in the dialog.
    pub remote_target: String,
    /// The route set: the 2xx's Record-Route values reversed (RFC 3261
    /// 12.1.2). Each becomes a Route header of requests in the dialog.
    pub route_set: Vec<String>,
    /// The CSeq number of the INVITE.
    pub invite_cseq: u32,
    local: SocketAddr,
    transport: String,
}

impl Dialog {
    /// The dialog a 2xx to our INVITE creates; `local` and `transport`
    /// ("UDP" or "TCP") go in the Via of later requests.
    pub fn from_2xx(response: &SipResponse, local: SocketAddr, transport: &str) -> Dialog {
        let required = |name: &str| {
            response
                .header(name)
                .unwrap_or_else(|| panic!("the 2xx has no {name}: {}", response.raw))
                .to_string()
        };
        let contact = required("Contact");
        let remote_target = contact
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(uri, _)| uri.to_string())
            .unwrap_or_else(|| contact.split(';').next().unwrap_or("").trim().to_string());
        let invite_cseq = required("CSeq")
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unreadable CSeq in {}", response.raw));
        let mut route_set = split_header_values(&response.headers_named("Record-Route"));
        route_set.reverse();
        Dialog {
            call_id: required("Call-ID"),
            from: required("From"),
            to: required("To"),
            remote_target,
            route_set,
            invite_cseq,
            local,
            transport: transport.to_string(),
        }
    }

    /// A request in the dialog with a fresh branch, CSeq `cseq`, the given
    /// extra header lines and body.
    pub fn request(&self, method: &str, cseq: u32, extra_headers: &[&str], body: &str) -> String {
        let mut text = format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n",
            target = self.remote_target,
            transport = self.transport,
            local = self.local,
            branch = unique_token(),
            from = self.from,
            to = self.to,
            call_id = self.call_id,
        );
        for route in &self.route_set {
            text.push_str(&format!("Route: {route}\r\n"));
        }
        for header in extra_headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text
    }

    /// The ACK of the 2xx (RFC 3261 13.2.2.4: the INVITE's CSeq number, a
    /// new branch), with an SDP answer when the INVITE had no offer.
    pub fn ack(&self, sdp_answer: Option<&str>) -> String {
        match sdp_answer {
            Some(sdp) => self.request(
                "ACK",
                self.invite_cseq,
                &["Content-Type: application/sdp"],
                sdp,
            ),
            None => self.request("ACK", self.invite_cseq, &[], ""),
        }
    }

    /// Our BYE, the request after the INVITE.
    pub fn bye(&self) -> String {
        self.request("BYE", self.invite_cseq + 1, &[], "")
    }
}

/// The ACK of a non-2xx final response to `invite` (RFC 3261 17.1.1.3):
/// the INVITE's Request-URI, top Via (same branch), From, Call-ID and CSeq
/// number, and the response's To (with its tag).
pub fn ack_for_failure(invite: &str, response: &SipResponse) -> String {
    let lines: Vec<&str> = invite.split("\r\n").collect();
    let uri = lines[0]
        .split(' ')
        .nth(1)
        .expect("INVITE has a Request-URI");
    let find = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("the INVITE has no {prefix}"))
            .to_string()
    };
    let cseq = find("CSeq:");
    let number = cseq
        .trim_start_matches("CSeq:")
        .split_whitespace()
        .next()
        .expect("CSeq number");
    format!(
        "ACK {uri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\nTo: {to}\r\n\
         {call_id}\r\nCSeq: {number} ACK\r\nContent-Length: 0\r\n\r\n",
        via = find("Via:"),
        from = find("From:"),
        to = response.header("To").expect("the response has a To"),
        call_id = find("Call-ID:"),
    )
}

/// The values of a header that may appear several times and list several
/// values each (Record-Route, Route): split on commas outside `<...>` and
/// quotes, trimmed, in order.
pub fn split_header_values(values: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for value in values {
        let (mut depth, mut quoted, mut start) = (0i32, false, 0);
        for (i, c) in value.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '<' if !quoted => depth += 1,
                '>' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    out.push(value[start..i].trim().to_string());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(value[start..].trim().to_string());
    }
    out.retain(|v| !v.is_empty());
    out
}

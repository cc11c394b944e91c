//! The few SIP messages a calling PBX sends, and what it reads back.
//!
//! RFC 3261 over UDP: an INVITE with a PCMU offer (RFC 3264, RFC 4566;
//! telephone-event per RFC 4733 as PBXs offer it), the ACK of a 2xx (a new
//! transaction, §13.2.2.4, to the remote target of the 200's Contact), the
//! ACK of a non-2xx (same branch as the INVITE, §17.1.1.3), BYE (§15.1.1),
//! and 200 to what the server may send in the dialog (its own BYE). The
//! parser reads only the fields a caller needs: status or method, Call-ID,
//! CSeq, the To tag, Contact and the SDP's connection address and port;
//! compact header names (§7.3.3) are accepted.

use std::net::{Ipv4Addr, SocketAddrV4};

/// What identifies our side of one call.
#[derive(Clone, Debug)]
pub struct CallIds {
    pub call_id: String,
    pub from_tag: String,
    /// Our SIP address (Via, Contact).
    pub local: SocketAddrV4,
    /// The mailbox called (the Request-URI user).
    pub mailbox: String,
    /// The server (Request-URI host and port).
    pub server: SocketAddrV4,
    /// What the offer proposes (with telephone-event).
    pub codec: crate::rtp::Codec,
}

impl CallIds {
    fn caller_header(&self) -> String {
        format!(
            "From: \"Bench Caller\" <sip:5550100@{}>;tag={}",
            self.local.ip(),
            self.from_tag
        )
    }

    fn callee_header(&self, to_tag: Option<&str>) -> String {
        match to_tag {
            Some(tag) => format!("To: <sip:{}@{}>;tag={tag}", self.mailbox, self.server),
            None => format!("To: <sip:{}@{}>", self.mailbox, self.server),
        }
    }

    fn via(&self, branch: &str) -> String {
        format!("Via: SIP/2.0/UDP {};rport;branch={branch}", self.local)
    }

    /// The INVITE, offering the call's codec on `rtp` (our media address).
    pub fn invite(&self, branch: &str, rtp: SocketAddrV4) -> Vec<u8> {
        let sdp = format!(
            "v=0\r\no=- {sess} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {rtpmap}\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
            sess = self.from_tag.len() as u64 + u64::from(rtp.port()),
            ip = rtp.ip(),
            port = rtp.port(),
            pt = self.codec.payload_type(),
            rtpmap = self.codec.rtpmap(),
        );
        format!(
            "INVITE sip:{mb}@{srv} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\n{to}\r\n\
             Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:5550100@{local}>\r\n\
             Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\nUser-Agent: vmesh-loadgen\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            mb = self.mailbox,
            srv = self.server,
            via = self.via(branch),
            from = self.caller_header(),
            to = self.callee_header(None),
            cid = self.call_id,
            local = self.local,
            len = sdp.len(),
        )
        .into_bytes()
    }

    /// A request in the dialog (ACK of the 2xx, BYE) to `target`.
    pub fn in_dialog(
        &self,
        method: &str,
        cseq: u32,
        branch: &str,
        target: &str,
        to_tag: &str,
    ) -> Vec<u8> {
        format!(
            "{method} {target} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\n{to}\r\n\
             Call-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            via = self.via(branch),
            from = self.caller_header(),
            to = self.callee_header(Some(to_tag)),
            cid = self.call_id,
        )
        .into_bytes()
    }

    /// The ACK of a non-2xx final response: the INVITE's branch and
    /// Request-URI, the response's To (RFC 3261 §17.1.1.3).
    pub fn ack_failure(&self, branch: &str, to_tag: Option<&str>) -> Vec<u8> {
        format!(
            "ACK sip:{mb}@{srv} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\n{to}\r\n\
             Call-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            mb = self.mailbox,
            srv = self.server,
            via = self.via(branch),
            from = self.caller_header(),
            to = self.callee_header(to_tag),
            cid = self.call_id,
        )
        .into_bytes()
    }
}

/// A SIP message as far as the caller cares.
#[derive(Debug, Default)]
pub struct Message {
    /// The status code of a response; `None` for a request.
    pub status: Option<u16>,
    /// The method of a request.
    pub method: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<(u32, String)>,
    pub to_tag: Option<String>,
    /// The Contact URI (without angle brackets).
    pub contact: Option<String>,
    /// The SDP's audio address: `c=` and `m=audio` port.
    pub media: Option<SocketAddrV4>,
    /// The header lines a response to this request copies (Via, From, To,
    /// Call-ID, CSeq), in order.
    pub copied: Vec<String>,
}

/// The full name of a compact header name (RFC 3261 §7.3.3).
fn full_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "i" => "call-id".into(),
        "t" => "to".into(),
        "f" => "from".into(),
        "v" => "via".into(),
        "m" => "contact".into(),
        "l" => "content-length".into(),
        _ => lower,
    }
}

/// The `tag` parameter of a From/To value.
fn tag_of(value: &str) -> Option<String> {
    let params = match value.rfind('>') {
        Some(end) => &value[end..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("tag")
            .then(|| v.trim().to_string())
    })
}

/// The URI of a Contact value.
fn contact_uri(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].to_string(),
        _ => value.split(';').next().unwrap_or(value).trim().to_string(),
    }
}

/// The audio address of an SDP body.
fn sdp_media(body: &str) -> Option<SocketAddrV4> {
    let mut ip: Option<Ipv4Addr> = None;
    let mut port: Option<u16> = None;
    for line in body.lines() {
        let line = line.trim_end();
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            ip = c.split_whitespace().next().and_then(|a| a.parse().ok());
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            port = m.split_whitespace().next().and_then(|p| p.parse().ok());
        }
    }
    Some(SocketAddrV4::new(ip?, port?))
}

/// Parses one datagram; `None` if it is not SIP.
pub fn parse(datagram: &[u8]) -> Option<Message> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let mut m = Message::default();
    if let Some(rest) = start.strip_prefix("SIP/2.0 ") {
        m.status = rest.get(..3)?.parse().ok();
    } else {
        let method = start.split(' ').next()?;
        m.method = Some(method.to_string());
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = full_name(name.trim());
        let value = value.trim();
        match name.as_str() {
            "call-id" => m.call_id = Some(value.to_string()),
            "cseq" => {
                let mut parts = value.split_whitespace();
                let n = parts.next().and_then(|n| n.parse().ok());
                let method = parts.next().map(str::to_string);
                m.cseq = n.zip(method);
            }
            "to" => m.to_tag = tag_of(value),
            "contact" => m.contact = Some(contact_uri(value)),
            _ => {}
        }
        if matches!(name.as_str(), "via" | "from" | "to" | "call-id" | "cseq") {
            m.copied.push(line.to_string());
        }
    }
    m.media = sdp_media(body);
    Some(m)
}

/// A 200 OK answering request `m` (its Via, From, To, Call-ID, CSeq).
pub fn ok_to(m: &Message) -> Vec<u8> {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in &m.copied {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_200_with_sdp_and_compact_headers() {
        let raw = "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
                   f: <sip:a@x>;tag=abc\r\nt: <sip:1001@127.0.0.51:5060>;tag=xyz;foo=1\r\n\
                   i: call-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nm: <sip:vm@127.0.0.51:5060;transport=udp>\r\n\
                   Content-Type: application/sdp\r\n\r\n\
                   v=0\r\no=- 1 1 IN IP4 127.0.0.51\r\ns=-\r\nc=IN IP4 127.0.0.51\r\nt=0 0\r\nm=audio 20002 RTP/AVP 0\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.status, Some(200));
        assert_eq!(m.call_id.as_deref(), Some("call-1@127.0.0.1"));
        assert_eq!(m.cseq, Some((1, "INVITE".to_string())));
        assert_eq!(m.to_tag.as_deref(), Some("xyz"));
        assert_eq!(
            m.contact.as_deref(),
            Some("sip:vm@127.0.0.51:5060;transport=udp")
        );
        assert_eq!(m.media, Some("127.0.0.51:20002".parse().unwrap()));
    }

    #[test]
    fn answers_a_bye_with_its_own_headers() {
        let raw = "BYE sip:5550100@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.51:5060;branch=z9hG4bK-9\r\n\
                   From: <sip:1001@x>;tag=s\r\nTo: <sip:5550100@y>;tag=c\r\nCall-ID: c1\r\nCSeq: 7 BYE\r\n\
                   Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.method.as_deref(), Some("BYE"));
        let ok = String::from_utf8(ok_to(&m)).unwrap();
        assert!(ok.starts_with(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.51:5060;branch=z9hG4bK-9\r\n"
        ));
        assert!(ok.contains("CSeq: 7 BYE\r\n") && !ok.contains("Max-Forwards"));
    }

    #[test]
    fn an_invite_carries_the_codecs_offer_of_exact_length() {
        let ids = CallIds {
            call_id: "c1".into(),
            from_tag: "t1".into(),
            local: "127.0.0.1:5070".parse().unwrap(),
            mailbox: "1001".into(),
            server: "127.0.0.51:5060".parse().unwrap(),
            codec: crate::rtp::Codec::Pcmu,
        };
        for (codec, offer) in [
            (crate::rtp::Codec::Pcmu, "m=audio 16000 RTP/AVP 0 101\r\n"),
            (
                crate::rtp::Codec::G722,
                "m=audio 16000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\n",
            ),
            (
                crate::rtp::Codec::Opus,
                "m=audio 16000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n",
            ),
        ] {
            let ids = CallIds {
                codec,
                ..ids.clone()
            };
            let invite =
                String::from_utf8(ids.invite("z9hG4bK-a", "127.0.0.1:16000".parse().unwrap()))
                    .unwrap();
            let (head, body) = invite.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("INVITE sip:1001@127.0.0.51:5060 SIP/2.0\r\n"));
            assert!(head.contains(&format!("Content-Length: {}", body.len())));
            assert!(body.contains(offer), "{codec:?}: {body}");
        }
    }
}

//! Answers for requests that the SIP parser could not take.
//!
//! RFC 3261 §8.2 wants a 400 for a malformed request whenever the server can
//! still answer it, and §16.3/§18 imply it cannot when the headers a response
//! is built from (Via, From, To, Call-ID, CSeq) are missing: such a message is
//! dropped. The parser (rsipstack's rsip fork) rejects a message as a whole, so
//! this module scans the raw text line by line for those five headers and
//! builds the response itself. It never panics on any input and never answers
//! an ACK (§17.1.1.3: an ACK gets no response), a response, or a request
//! whose copied headers hold control characters (they would not survive
//! the copy as one header line each).

use std::fmt::Write;

/// The headers a response must copy from its request (RFC 3261 §8.2.6.2).
const COPIED: [(&str, &str); 5] = [
    ("via", "v"),
    ("from", "f"),
    ("to", "t"),
    ("call-id", "i"),
    ("cseq", ""),
];

/// A raw response to a request that could not be parsed or is invalid, or
/// `None` when nothing can be answered (not a request, an ACK, or a header
/// needed to build the response is missing). `extra` lines (complete
/// headers without CRLF, such as an Allow) are added as they are.
pub fn error_response(
    raw: &[u8],
    status: u16,
    reason: &str,
    warning: &str,
    user_agent: &str,
    extra: &[String],
) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let method = request_method(lines.next()?)?;
    if method.eq_ignore_ascii_case("ACK") {
        return None;
    }
    let mut found: [Vec<&str>; 5] = Default::default();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if let Some(i) = COPIED
            .iter()
            .position(|(long, short)| name == *long || (!short.is_empty() && name == *short))
        {
            found[i].push(value.trim());
        }
    }
    if found.iter().any(|v| v.is_empty()) {
        return None;
    }
    // A value with a control character (a bare CR, NUL...; RFC 3261 §25.1
    // allows only HTAB) cannot be copied into a well-formed response: a
    // bare CR would split the line, and whoever reads the answer would see
    // headers the sender wrote into a Via. Such a request is not answered.
    if found
        .iter()
        .flatten()
        .any(|v| v.chars().any(|c| c.is_control() && c != '\t'))
    {
        return None;
    }
    let mut out = String::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {status} {reason}\r\n");
    for via in &found[0] {
        let _ = write!(out, "Via: {via}\r\n");
    }
    let _ = write!(out, "From: {}\r\n", found[1][0]);
    let to = found[2][0];
    if to.to_ascii_lowercase().contains(";tag=") {
        let _ = write!(out, "To: {to}\r\n");
    } else {
        let _ = write!(out, "To: {to};tag={}\r\n", reject_tag(raw));
    }
    let _ = write!(out, "Call-ID: {}\r\n", found[3][0]);
    let _ = write!(out, "CSeq: {}\r\n", found[4][0]);
    let warning: String = warning
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    let _ = write!(out, "Warning: 399 vmesh \"{warning}\"\r\n");
    for line in extra {
        let _ = write!(out, "{line}\r\n");
    }
    let _ = write!(out, "Server: {user_agent}\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// The method of a raw request, if its first line is a request line.
pub fn method_of(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
    let line = String::from_utf8_lossy(&raw[..end]);
    request_method(line.trim_end_matches('\r')).map(str::to_string)
}

/// The method of a request line `METHOD SP Request-URI SP SIP/2.0`, if it is
/// one (RFC 3261 §7.1).
fn request_method(line: &str) -> Option<&str> {
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let _uri = parts.next()?;
    let version = parts.next()?;
    let token = !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    (token && version.eq_ignore_ascii_case("SIP/2.0")).then_some(method)
}

/// A To tag that is the same for retransmissions of one request, so that the
/// client sees one consistent answer (a stable hash of the raw bytes).
fn reject_tag(raw: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in raw {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Option<Vec<u8>>) -> String {
        String::from_utf8(v.expect("an answer")).expect("utf8")
    }

    const BROKEN: &str = "INVITE sip:1001@vm SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
        v: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK0\r\n\
        From: <sip:a@x>;tag=1\r\n\
        To: <sip:1001@vm>\r\n\
        Call-ID: abc\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <<<garbage\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn copies_the_dialog_headers_and_every_via() {
        let r = text(error_response(
            BROKEN.as_bytes(),
            400,
            "Bad Request",
            "bad Contact",
            "vmesh",
            &[],
        ));
        assert!(r.starts_with("SIP/2.0 400 Bad Request\r\n"));
        assert!(r.contains(
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP 127.0.0.2"
        ));
        assert!(r.contains("From: <sip:a@x>;tag=1\r\n"));
        assert!(r.contains("To: <sip:1001@vm>;tag="));
        assert!(r.contains("Call-ID: abc\r\nCSeq: 1 INVITE\r\n"));
        assert!(r.contains("Warning: 399 vmesh \"bad Contact\""));
        assert!(r.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn the_tag_is_stable_across_retransmissions() {
        let a = error_response(BROKEN.as_bytes(), 400, "Bad Request", "x", "v", &[]);
        let b = error_response(BROKEN.as_bytes(), 400, "Bad Request", "x", "v", &[]);
        assert_eq!(a, b);
    }

    #[test]
    fn unanswerable_inputs_are_dropped() {
        let no_callid = BROKEN.replace("Call-ID: abc\r\n", "");
        assert!(error_response(no_callid.as_bytes(), 400, "B", "w", "v", &[]).is_none());
        let ack = BROKEN.replace("INVITE sip", "ACK sip");
        assert!(error_response(ack.as_bytes(), 400, "B", "w", "v", &[]).is_none());
        let response = "SIP/2.0 200 OK\r\nVia: x\r\n\r\n";
        assert!(error_response(response.as_bytes(), 400, "B", "w", "v", &[]).is_none());
        assert!(error_response(b"", 400, "B", "w", "v", &[]).is_none());
        assert!(error_response(b"\xff\xfe\x00garbage", 400, "B", "w", "v", &[]).is_none());
    }

    /// Found by fuzzing (sip_datagram): a Via holding a bare CR was copied
    /// into the 400, where the CR split the line and the rest of the Via
    /// (here a compact Contact) became a header of our answer.
    #[test]
    fn control_characters_in_copied_headers_get_no_answer() {
        let injected = BROKEN.replacen(
            "branch=z9hG4bK1\r\n",
            "branch=z9hG4bK1\r\0\0\u{11}\0m: <sip:phone-1001@127/0.77.11:5071>;tag=956\r\n",
            1,
        );
        assert!(error_response(injected.as_bytes(), 400, "B", "w", "v", &[]).is_none());
        let nul_in_call_id = BROKEN.replace("Call-ID: abc", "Call-ID: a\0bc");
        assert!(error_response(nul_in_call_id.as_bytes(), 400, "B", "w", "v", &[]).is_none());
        // A tab is allowed whitespace, and the answer keeps it.
        let tab = BROKEN.replace("Call-ID: abc", "Call-ID: a\tbc");
        let r = text(error_response(tab.as_bytes(), 400, "B", "w", "v", &[]));
        assert!(r.contains("Call-ID: a\tbc\r\n"));
    }

    #[test]
    fn never_panics_on_mangled_input() {
        let base = BROKEN.as_bytes();
        let mut seed: u32 = 7;
        for round in 0..2000 {
            let mut m = base.to_vec();
            for _ in 0..(round % 20) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = seed as usize % m.len();
                m[i] = (seed >> 16) as u8;
            }
            let cut = (seed as usize) % (m.len() + 1);
            let _ = error_response(&m[..cut], 400, "Bad Request", "w\"\r\n", "v", &[]);
        }
    }
}

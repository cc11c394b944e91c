//! Session timers (RFC 4028) seen from the side that never refreshes.
//!
//! PBXs keep long calls alive with refreshes: a re-INVITE or an UPDATE
//! every half of `Session-Expires`. vmesh answers each (the session keeps
//! recording through them) and, as RFC 4028 §9 asks of a UAS, echoes the
//! interval in its 2xx with the refresher: the one the request named, or
//! the caller (`uac`) when it named none, since the caller is the side
//! that sends refreshes; `Require: timer` tells it the timer is on. A
//! request without `Session-Expires` gets neither header.

use rsipstack::sip::{Header, Request};

/// The headers of our 2xx to `req` (an INVITE, re-INVITE or UPDATE).
pub fn response_headers(req: &Request) -> Vec<Header> {
    let Some(value) = header(req, &["session-expires", "x"]) else {
        return Vec::new();
    };
    let mut parts = value.split(';').map(str::trim);
    let Some(delta) = parts.next().and_then(|d| d.parse::<u32>().ok()) else {
        return Vec::new();
    };
    let refresher = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("refresher"))
        .map(|(_, v)| v.trim().to_ascii_lowercase())
        .filter(|v| v == "uac" || v == "uas")
        .unwrap_or_else(|| "uac".to_owned());
    vec![
        Header::Other(
            "Session-Expires".into(),
            format!("{delta};refresher={refresher}"),
        ),
        Header::Other("Require".into(), "timer".into()),
    ]
}

/// The value of the first header named one of `names` (full or compact
/// form, RFC 3261 §7.3.3), any case.
fn header(req: &Request, names: &[&str]) -> Option<String> {
    req.headers.iter().find_map(|h| {
        let name = h.name();
        names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
            .then(|| h.value().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: &str) -> Request {
        let text = format!(
            "UPDATE sip:vmesh@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n\
             Call-ID: c1\r\nCSeq: 3 UPDATE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).unwrap()
    }

    fn rendered(headers: &[Header]) -> Vec<String> {
        headers.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn echoes_the_interval_with_the_callers_refresher() {
        let req = request("Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n");
        assert_eq!(
            rendered(&response_headers(&req)),
            ["Session-Expires: 120;refresher=uac", "Require: timer"]
        );
        let req = request("Session-Expires: 1800\r\n");
        assert_eq!(
            rendered(&response_headers(&req))[0],
            "Session-Expires: 1800;refresher=uac"
        );
        let req = request("x: 90 ; Refresher=UAS\r\n");
        assert_eq!(
            rendered(&response_headers(&req))[0],
            "Session-Expires: 90;refresher=uas"
        );
    }

    #[test]
    fn no_timer_no_headers() {
        assert!(response_headers(&request("")).is_empty());
        assert!(response_headers(&request("Session-Expires: soon\r\n")).is_empty());
    }
}

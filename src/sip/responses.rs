//! Headers that vmesh's responses share.

use rsipstack::sip::{Header, Method};

use super::ALLOWED;

/// `Allow` listing the methods vmesh answers (RFC 3261 §20.5), sent with
/// 200 to OPTIONS and with 405 (§21.4.6 requires it there).
pub fn allow() -> Header {
    Header::Allow(allowed_methods().into())
}

/// The same Allow as a raw header line, for responses built by hand.
pub fn allow_line() -> String {
    format!("Allow: {}", allowed_methods())
}

fn allowed_methods() -> String {
    let methods: Vec<String> = ALLOWED.iter().map(Method::to_string).collect();
    methods.join(", ")
}

/// `Accept`: the bodies vmesh understands (RFC 3261 §20.1).
pub fn accept() -> Header {
    Header::Accept("application/sdp".into())
}

/// `Supported`: no option tags beyond the base protocol yet; sent empty as
/// RFC 3261 §11.2 suggests for OPTIONS answers.
pub fn supported() -> Header {
    Header::Supported("".into())
}

/// `Retry-After` in seconds, for 503 when over capacity or shutting down
/// (RFC 3261 §20.33).
pub fn retry_after(seconds: u32) -> Header {
    Header::RetryAfter(seconds.to_string().into())
}

/// `Content-Type: application/sdp`.
pub fn sdp_content_type() -> Header {
    Header::ContentType("application/sdp".into())
}

/// `Warning: 399 vmesh "TEXT"` (RFC 3261 §20.43): why a request was
/// refused, for the operator at the other end. Controls and quotes are
/// dropped and the text is cut at 200 characters, so any reason (even
/// one quoting peer input) stays one well-formed header.
pub fn warning(text: &str) -> Header {
    let text: String = text
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(200)
        .collect();
    Header::Warning(format!("399 vmesh \"{text}\"").into())
}

//! Content-Length framing of SIP messages on a byte stream (RFC 3261 §18.3).
//!
//! On TCP the only thing that separates one message from the next is the
//! Content-Length header, so a stream transport needs a framer that finds the
//! end of the header block, reads Content-Length and waits for that many body
//! bytes. It is sans-IO: bytes go in with [`StreamFramer::push`], complete
//! messages come out of [`StreamFramer::next_frame`]. Every buffer is bounded,
//! so a peer that never sends CRLFCRLF or announces a huge body cannot make us
//! hold more than its method's limit. rsipstack's own stream codec has a fixed
//! 64 KiB limit and closes the connection without an answer on any error,
//! which is why the stream transports are ours (see `sip::transport`).

use bytes::{Buf, Bytes, BytesMut};

use super::inbound::SizeLimits;
use super::malformed::method_of;

/// Why a stream can no longer be framed. After any of these the connection is
/// out of sync and must be closed (after answering, when possible).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// No end of headers within the size limit.
    #[error("header block longer than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    /// The Content-Length header is not a number.
    #[error("invalid Content-Length {value:?}")]
    BadContentLength { value: String },
    /// The announced body would make the message exceed the limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// One framing step's result.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message (headers and body), ready for the parser: the
    /// stream's own bytes, not a copy.
    Message(Bytes),
    /// A keep-alive (RFC 5626 §3.5.1 CRLFCRLF ping); answer with CRLF.
    Ping,
    /// The stream is broken; `head` is what was buffered, for an error reply.
    Error { error: FramingError, head: Vec<u8> },
}

/// Splits a byte stream into SIP messages by Content-Length.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: SizeLimits,
    failed: bool,
}

impl StreamFramer {
    /// A framer that accepts messages within `limits`: the size allowed for
    /// its method once the headers are in (a MESSAGE may carry a voicemail),
    /// and headers of at most the general message limit.
    pub fn new(limits: SizeLimits) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            limits,
            failed: false,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, or `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.failed {
            return None;
        }
        // Leading CRLFs between messages are allowed (RFC 3261 §7.5); a
        // double CRLF on its own is a keep-alive ping.
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            return Some(Frame::Ping);
        }
        while self.buf.starts_with(b"\r\n") && self.buf.len() > 2 && self.buf[2] != b'\r' {
            self.buf.advance(2);
        }
        let Some(headers_end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > self.limits.message {
                return Some(self.fail(FramingError::HeadersTooLarge {
                    limit: self.limits.message,
                }));
            }
            return None;
        };
        let head_len = headers_end + 4;
        let body_len = match content_length(&self.buf[..head_len]) {
            Ok(n) => n,
            Err(value) => return Some(self.fail(FramingError::BadContentLength { value })),
        };
        let size = head_len.saturating_add(body_len);
        let limit = self
            .limits
            .for_method(method_of(&self.buf[..head_len]).as_deref());
        if size > limit {
            return Some(self.fail(FramingError::TooLarge { size, limit }));
        }
        if self.buf.len() < size {
            return None;
        }
        let message = self.buf.split_to(size).freeze();
        if self.buf.is_empty() {
            // Let go of the allocation, so it is freed with the message
            // (a transfer may have grown it to megabytes).
            self.buf = BytesMut::new();
        }
        Some(Frame::Message(message))
    }

    fn fail(&mut self, error: FramingError) -> Frame {
        self.failed = true;
        let head_len = self.buf.len().min(8192);
        let head = self.buf[..head_len].to_vec();
        self.buf.clear();
        Frame::Error { error, head }
    }
}

/// The Content-Length value of a header block (0 when absent, as RFC 3261
/// §20.14 allows for messages without a body); `Err` carries a bad value.
pub fn content_length(head: &[u8]) -> Result<usize, String> {
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = String::from_utf8_lossy(line[colon + 1..].trim_ascii()).into_owned();
            return value.parse::<usize>().map_err(|_| value);
        }
    }
    Ok(0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(message: usize) -> SizeLimits {
        SizeLimits {
            message,
            transfer_body: message,
        }
    }

    const OPTIONS: &[u8] =
        b"OPTIONS sip:vm@127.0.0.1 SIP/2.0\r\nCall-ID: a\r\nContent-Length: 0\r\n\r\n";

    fn msg_with_body(body: &str) -> Vec<u8> {
        format!(
            "MESSAGE sip:vm@h SIP/2.0\r\nl: {}\r\n\r\n{}",
            body.len(),
            body
        )
        .into_bytes()
    }

    #[test]
    fn frames_back_to_back_messages() {
        let mut f = StreamFramer::new(limits(65536));
        let mut stream = OPTIONS.to_vec();
        stream.extend(msg_with_body("hello"));
        stream.extend(OPTIONS);
        f.push(&stream);
        assert_eq!(
            f.next_frame(),
            Some(Frame::Message(Bytes::from(OPTIONS.to_vec())))
        );
        assert_eq!(
            f.next_frame(),
            Some(Frame::Message(Bytes::from(msg_with_body("hello"))))
        );
        assert_eq!(
            f.next_frame(),
            Some(Frame::Message(Bytes::from(OPTIONS.to_vec())))
        );
        assert_eq!(f.next_frame(), None);
    }

    #[test]
    fn waits_for_the_body_byte_by_byte() {
        let mut f = StreamFramer::new(limits(65536));
        let m = msg_with_body("0123456789");
        for (i, b) in m.iter().enumerate() {
            f.push(&[*b]);
            let frame = f.next_frame();
            if i + 1 < m.len() {
                assert_eq!(frame, None, "premature frame at byte {i}");
            } else {
                assert_eq!(frame, Some(Frame::Message(Bytes::from(m.clone()))));
            }
        }
    }

    #[test]
    fn keepalive_ping_and_leading_crlf() {
        let mut f = StreamFramer::new(limits(65536));
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Ping));
        f.push(b"\r\n");
        f.push(OPTIONS);
        assert_eq!(
            f.next_frame(),
            Some(Frame::Message(Bytes::from(OPTIONS.to_vec())))
        );
    }

    #[test]
    fn oversized_body_is_refused_before_it_is_buffered() {
        let mut f = StreamFramer::new(limits(1024));
        f.push(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 100000000\r\n\r\n");
        match f.next_frame() {
            Some(Frame::Error {
                error: FramingError::TooLarge { size, limit },
                head,
            }) => {
                assert!(size > 100_000_000);
                assert_eq!(limit, limits(1024).for_method(Some("MESSAGE")));
                assert!(head.starts_with(b"MESSAGE"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // The stream is dead: nothing more comes out.
        f.push(OPTIONS);
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn only_a_message_may_be_large() {
        let body = "x".repeat(5000);
        for (method, ok) in [("MESSAGE", true), ("INVITE", false)] {
            let mut f = StreamFramer::new(limits(4096));
            f.push(format!("{method} sip:x SIP/2.0\r\nl: 5000\r\n\r\n{body}").as_bytes());
            match f.next_frame() {
                Some(Frame::Message(m)) => assert!(ok, "{method} framed: {}", m.len()),
                Some(Frame::Error {
                    error: FramingError::TooLarge { .. },
                    ..
                }) => {
                    assert!(!ok, "{method} refused")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn endless_headers_are_bounded() {
        let mut f = StreamFramer::new(limits(2048));
        for _ in 0..100 {
            f.push(b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
            if let Some(frame) = f.next_frame() {
                assert!(matches!(
                    frame,
                    Frame::Error {
                        error: FramingError::HeadersTooLarge { .. },
                        ..
                    }
                ));
                return;
            }
        }
        panic!("no error after 3.9 KB of headers");
    }

    #[test]
    fn bad_content_length() {
        let mut f = StreamFramer::new(limits(2048));
        f.push(b"INVITE sip:x SIP/2.0\r\nContent-Length: ten\r\n\r\n");
        assert!(matches!(
            f.next_frame(),
            Some(Frame::Error {
                error: FramingError::BadContentLength { .. },
                ..
            })
        ));
    }

    #[test]
    fn content_length_forms() {
        assert_eq!(
            content_length(b"A: b\r\nCONTENT-LENGTH :  12 \r\n\r\n"),
            Ok(12)
        );
        assert_eq!(content_length(b"l: 3\r\n\r\n"), Ok(3));
        assert_eq!(content_length(b"A: b\r\n\r\n"), Ok(0));
        assert!(content_length(b"Content-Length: -1\r\n\r\n").is_err());
    }
}

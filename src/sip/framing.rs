//! Content-Length framing of SIP messages on a byte stream (RFC 3261 §18.3).
//!
//! On TCP the only thing that separates one message from the next is the
//! Content-Length header, so a stream transport needs a framer that finds the
//! end of the header block, reads Content-Length and waits for that many body
//! bytes. It is sans-IO: bytes go in with [`StreamFramer::push`], complete
//! messages come out of [`StreamFramer::next_frame`]. Every buffer is bounded,
//! so a peer that never sends CRLFCRLF or announces a huge body cannot make us
//! hold more than its method's limit; and every message has a deadline
//! counted from its first byte ([`StreamFramer::deadline`]), never reset by
//! later bytes, so a client that trickles a request a byte at a time cannot
//! hold a connection open past it. rsipstack's own stream codec has a fixed
//! 64 KiB limit and closes the connection without an answer on any error,
//! which is why the stream transports are ours (see `sip::transport`).

use std::time::{Duration, Instant};

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
    /// How long one message may take from its first byte to its last.
    request_deadline: Duration,
    /// When the first byte of the message being buffered arrived.
    started: Option<Instant>,
    /// When the last bytes arrived.
    last_push: Option<Instant>,
}

impl StreamFramer {
    /// A framer that accepts messages within `limits`: the size allowed for
    /// its method once the headers are in (a MESSAGE may carry a voicemail),
    /// and headers of at most the general message limit.
    pub fn new(limits: SizeLimits, request_deadline: Duration) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            limits,
            failed: false,
            request_deadline,
            started: None,
            last_push: None,
        }
    }

    /// Appends bytes read from the stream at `now`.
    pub fn push(&mut self, data: &[u8], now: Instant) {
        if self.failed || data.is_empty() {
            return;
        }
        if self.started.is_none() {
            self.started = Some(now);
        }
        self.last_push = Some(now);
        self.buf.extend_from_slice(data);
    }

    /// When the message being buffered must be complete: its first byte's
    /// arrival plus the request deadline. `None` while nothing is pending.
    /// The caller closes the connection when this passes.
    pub fn deadline(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        self.started.map(|t| t + self.request_deadline)
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
        let frame = self.frame();
        if self.buf.is_empty() || self.buf[..] == b"\r\n"[..] {
            // A lone CRLF is not the start of a request: it is a keep-alive
            // pong (RFC 5626 §4.4.1), or the first half of a CRLFCRLF ping
            // whose second half is in the next read. It stays buffered, so
            // that a ping cut in two by the reads is still answered, but
            // starts no clock.
            self.started = None;
        } else if frame.is_some() {
            // What follows a framed message arrived with the last bytes at
            // the latest.
            self.started = self.last_push;
        }
        frame
    }

    fn frame(&mut self) -> Option<Frame> {
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
        self.started = None;
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

    const DEADLINE: Duration = Duration::from_secs(20);

    fn t0() -> Instant {
        use std::sync::OnceLock;
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    #[test]
    fn the_deadline_counts_from_the_first_byte_and_trickling_does_not_reset_it() {
        let mut f = StreamFramer::new(limits(65536), DEADLINE);
        assert_eq!(f.deadline(), None);
        let start = t0();
        let m = msg_with_body("0123456789");
        for (i, b) in m[..m.len() - 1].iter().enumerate() {
            f.push(&[*b], start + Duration::from_secs(3 * i as u64));
            assert_eq!(f.next_frame(), None);
            assert_eq!(f.deadline(), Some(start + DEADLINE), "after byte {i}");
        }
        f.push(&m[m.len() - 1..], start + Duration::from_secs(500));
        assert_eq!(f.next_frame(), Some(Frame::Message(Bytes::from(m.clone()))));
        assert_eq!(f.deadline(), None, "nothing pending after the message");
        // The next message starts its own clock.
        let later = start + Duration::from_secs(600);
        f.push(&OPTIONS[..5], later);
        assert_eq!(f.deadline(), Some(later + DEADLINE));
    }

    /// Found by fuzzing (sip_stream_framing): a CRLFCRLF ping whose two
    /// halves came in two reads was taken for two pongs and never answered,
    /// so the framing depended on how TCP cut the stream.
    #[test]
    fn a_ping_split_across_reads_is_still_a_ping() {
        let mut f = StreamFramer::new(limits(65536), DEADLINE);
        f.push(b"\r\n", t0());
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.deadline(), None, "half a ping starts no clock");
        f.push(b"\r\n", t0());
        assert_eq!(f.next_frame(), Some(Frame::Ping));
        assert_eq!(f.buffered(), 0);

        // The fuzzer's input: a stray LF, then pings, read in one piece
        // and in two; both give the same frames.
        let stream = b"\n\r\n\r\n\r\n\r\n\r\n\r\n";
        let frames = |cuts: &[usize]| {
            let mut f = StreamFramer::new(limits(65536), DEADLINE);
            let mut out = Vec::new();
            let mut at = 0;
            for &cut in cuts.iter().chain([stream.len()].iter()) {
                f.push(&stream[at..cut], t0());
                at = cut;
                while let Some(frame) = f.next_frame() {
                    out.push(frame);
                }
            }
            out
        };
        assert_eq!(frames(&[]), frames(&[11]));
        assert_eq!(frames(&[11]).last(), Some(&Frame::Ping));
    }

    #[test]
    fn a_request_after_a_lone_crlf_has_its_deadline() {
        let mut f = StreamFramer::new(limits(65536), DEADLINE);
        f.push(b"\r\n", t0());
        assert_eq!(f.next_frame(), None);
        let later = t0() + Duration::from_secs(30);
        f.push(&OPTIONS[..10], later);
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.deadline(), Some(later + DEADLINE));
        f.push(&OPTIONS[10..], later);
        assert_eq!(
            f.next_frame(),
            Some(Frame::Message(Bytes::from(OPTIONS.to_vec())))
        );
    }

    #[test]
    fn keepalives_start_no_clock() {
        let mut f = StreamFramer::new(limits(65536), DEADLINE);
        f.push(b"\r\n\r\n", t0());
        assert_eq!(f.next_frame(), Some(Frame::Ping));
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.deadline(), None);
        f.push(b"\r\n", t0());
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.deadline(), None, "a lone CRLF is a pong");
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
        let mut f = StreamFramer::new(limits(65536), DEADLINE);
        let mut stream = OPTIONS.to_vec();
        stream.extend(msg_with_body("hello"));
        stream.extend(OPTIONS);
        f.push(&stream, t0());
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
        let mut f = StreamFramer::new(limits(65536), DEADLINE);
        let m = msg_with_body("0123456789");
        for (i, b) in m.iter().enumerate() {
            f.push(&[*b], t0());
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
        let mut f = StreamFramer::new(limits(65536), DEADLINE);
        f.push(b"\r\n\r\n", t0());
        assert_eq!(f.next_frame(), Some(Frame::Ping));
        f.push(b"\r\n", t0());
        f.push(OPTIONS, t0());
        assert_eq!(
            f.next_frame(),
            Some(Frame::Message(Bytes::from(OPTIONS.to_vec())))
        );
    }

    #[test]
    fn oversized_body_is_refused_before_it_is_buffered() {
        let mut f = StreamFramer::new(limits(1024), DEADLINE);
        f.push(
            b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 100000000\r\n\r\n",
            t0(),
        );
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
        f.push(OPTIONS, t0());
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn only_a_message_may_be_large() {
        let body = "x".repeat(5000);
        for (method, ok) in [("MESSAGE", true), ("INVITE", false)] {
            let mut f = StreamFramer::new(limits(4096), DEADLINE);
            f.push(
                format!("{method} sip:x SIP/2.0\r\nl: 5000\r\n\r\n{body}").as_bytes(),
                t0(),
            );
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
        let mut f = StreamFramer::new(limits(2048), DEADLINE);
        for _ in 0..100 {
            f.push(b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", t0());
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
        let mut f = StreamFramer::new(limits(2048), DEADLINE);
        f.push(b"INVITE sip:x SIP/2.0\r\nContent-Length: ten\r\n\r\n", t0());
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

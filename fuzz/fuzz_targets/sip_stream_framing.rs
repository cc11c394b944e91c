//! SIP over a byte stream (TCP, TLS): `StreamFramer` splits it into
//! messages by Content-Length (RFC 3261 §18.3).
//!
//! The input is the stream. It is framed three ways: pushed whole and
//! pushed in chunks (sizes taken from the stream's own bytes) under the
//! limits of a stranger, and in chunks under the limits of an
//! authenticated peer (a MESSAGE may carry a transfer). Checked beyond
//! "no panic":
//! - no frame is larger than the limit for its method, and a framed
//!   message is exactly its header block plus Content-Length bytes;
//! - frames are the stream's own bytes, in order;
//! - the framer never holds more than the largest message plus one read;
//! - while a request is partly buffered it has a deadline (a client that
//!   trickles bytes cannot hold a connection without one), and a lone CRLF
//!   (a keep-alive) starts none;
//! - after an error nothing more comes out;
//! - how the stream was cut into reads changes nothing: the same messages
//!   and pings come out, and an error either way.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vmesh::sip::framing::{content_length, Frame, StreamFramer};
use vmesh::sip::inbound::SizeLimits;
use vmesh::sip::malformed::method_of;

const STRANGER: SizeLimits = SizeLimits {
    message: 512,
    transfer_body: 0,
};
const PEER: SizeLimits = SizeLimits {
    message: 512,
    transfer_body: 1024,
};

/// What came out of a framer, errors reduced to the fact of one.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Message(Vec<u8>),
    Ping,
    Error,
}

fn frame(stream: &[u8], limits: SizeLimits, chunked: bool) -> Vec<Out> {
    let t0 = Instant::now();
    let deadline = Duration::from_secs(20);
    let mut framer = StreamFramer::new(limits, deadline);
    let mut out = Vec::new();
    let mut failed = false;
    let mut at = 0;
    let mut reads = 0u64;
    // Where each frame must start in the stream, at the earliest.
    let mut consumed = 0;
    while at < stream.len() {
        let len = if chunked {
            1 + usize::from(stream[at] % 37)
        } else {
            stream.len()
        };
        let chunk = &stream[at..(at + len).min(stream.len())];
        at += chunk.len();
        reads += 1;
        let now = t0 + Duration::from_millis(reads);
        framer.push(chunk, now);
        while let Some(f) = framer.next_frame() {
            assert!(!failed, "a frame after an error");
            match f {
                Frame::Message(m) => {
                    check_message(&m, limits);
                    let found = find(&stream[consumed..], &m)
                        .unwrap_or_else(|| panic!("frame is not the stream's bytes in order"));
                    consumed += found + m.len();
                    out.push(Out::Message(m.to_vec()));
                }
                Frame::Ping => out.push(Out::Ping),
                Frame::Error { head, .. } => {
                    assert!(head.len() <= 8192);
                    failed = true;
                    out.push(Out::Error);
                }
            }
        }
        if !failed {
            assert!(
                framer.buffered() <= limits.largest() + chunk.len(),
                "{} bytes buffered, limit {}",
                framer.buffered(),
                limits.largest()
            );
            // A lone CRLF left over is a keep-alive (or half of one), not a
            // request begun.
            let keepalive = framer.buffered() == 2 && stream[at - 2..at] == *b"\r\n";
            if framer.buffered() > 0 && !keepalive {
                let deadline_at = framer.deadline().expect("a partial request has a deadline");
                assert!(deadline_at <= now + deadline);
            }
        } else {
            assert_eq!(framer.buffered(), 0);
            assert_eq!(framer.deadline(), None);
        }
    }
    out
}

fn check_message(m: &[u8], limits: SizeLimits) {
    let head_end = find(m, b"\r\n\r\n").expect("a framed message has a header block") + 4;
    let body = content_length(&m[..head_end]).expect("a framed message has a valid length");
    assert_eq!(
        m.len(),
        head_end + body,
        "message is its headers plus Content-Length"
    );
    let limit = limits.for_method(method_of(&m[..head_end]).as_deref());
    assert!(m.len() <= limit, "{} bytes framed, limit {limit}", m.len());
    assert!(m.len() <= limits.largest());
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn same_except_errors(a: &[Out], b: &[Out]) -> bool {
    fn errors(o: &[Out]) -> bool {
        o.contains(&Out::Error)
    }
    fn frames(o: &[Out]) -> Vec<&Out> {
        o.iter().filter(|x| **x != Out::Error).collect()
    }
    errors(a) == errors(b) && frames(a) == frames(b)
}

fuzz_target!(|stream: &[u8]| {
    let whole = frame(stream, STRANGER, false);
    let chunked = frame(stream, STRANGER, true);
    // The kind of error may differ (a header block over the limit is
    // seen before its end arrives when read in pieces), not the rest.
    assert!(
        same_except_errors(&whole, &chunked),
        "reads change the framing:\nwhole   {whole:?}\nchunked {chunked:?}"
    );
    frame(stream, PEER, true);
});

//! What a home server does with hostile or unusable transfers from a peer's
//! address, through the real binary: a multipart body of millions of empty
//! parts (a memory ceiling, RSS from /proc), metadata that cannot be stored
//! (400 with a Warning, so the sender parks it instead of retrying), and
//! nothing stored or broken afterwards.

mod common;

use std::time::Duration;

use common::memory::{mib, peak_rss, reset_peak, rss};
use common::mesh::MeshNet;
use common::transfer;
use common::SipTcp;

/// The largest transfer body a server accepts by default (16 MiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Memory a server may touch for any one request besides its copies of
/// the request (buffers, the response, task state, a thread's stack for
/// the store): measured between 0.1 and 1.2 MiB; 2 MiB.
const PER_REQUEST_SLACK: u64 = 2 * 1024 * 1024;

/// A `multipart/mixed; boundary=b` body of `len` bytes made of empty parts
/// (`--b` CRLF CRLF, seven bytes each: 2.4 million of them in 16 MiB).
fn part_bomb(len: usize) -> Vec<u8> {
    const PART: &[u8] = b"--b\r\n\r\n";
    const CLOSE: &[u8] = b"--b--\r\n";
    let mut body = Vec::with_capacity(len);
    while body.len() + PART.len() + CLOSE.len() <= len {
        body.extend_from_slice(PART);
    }
    body.extend_from_slice(CLOSE);
    body.resize(len, b' ');
    body
}

#[test]
fn a_part_bomb_is_refused_within_twice_its_size() {
    let mut mesh = MeshNet::allocate(2);
    // The test poses as site-a over plain TCP: an insecure peer, known by
    // its address.
    mesh.set_insecure(0);
    mesh[1].start();
    let (b, a_ip) = (&mesh[1], mesh[0].ip);
    let pid = b.pid().expect("site-b runs");
    let body = part_bomb(MAX_BODY);
    let mut client = SipTcp::connect_from(a_ip, b.sip_addr());
    let request = transfer::request(client.local_addr(), b.sip_addr(), &body);
    wait_prompts_ready(b);
    let baseline = rss(pid);
    reset_peak(pid);
    let response = client
        .transact_bytes(&request, Duration::from_secs(60))
        .expect("an answer to the part bomb");
    let peak = peak_rss(pid);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "part bomb of {:.1} MiB ({} parts): {} {}; RSS {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB, {:.2}x the body)",
        mib(body.len() as u64),
        body.len() / 7,
        response.status,
        response.header("Warning").unwrap_or("-"),
        mib(baseline),
        mib(peak),
        mib(growth),
        growth as f64 / body.len() as f64
    );
    assert_eq!(response.status, 400, "{}", response.raw);
    assert!(
        response
            .header("Warning")
            .is_some_and(|w| w.contains("parts")),
        "{}",
        response.raw
    );
    // Two copies of the transfer at most (the stream's bytes and the parsed
    // request's body), plus what handling any one request allocates.
    let ceiling = 2 * request.len() as u64 + PER_REQUEST_SLACK;
    assert!(
        growth <= ceiling,
        "peak RSS grew by {:.1} MiB for a {:.1} MiB request (ceiling {:.1} MiB)",
        mib(growth),
        mib(request.len() as u64),
        mib(ceiling)
    );
    assert!(b.messages().is_empty());
}

#[test]
fn metadata_that_cannot_be_stored_gets_400_with_a_warning() {
    let mut mesh = MeshNet::allocate(2);
    // The test poses as site-a over plain TCP: an insecure peer, known by
    // its address.
    mesh.set_insecure(0);
    mesh[1].start();
    let (b, a_ip) = (&mesh[1], mesh[0].ip);
    let audio = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
    let id = "5d1c7a40-8f4e-4b0a-9c61-3e2f10a7b9d4";
    let send = |meta: &serde_json::Value| {
        let mut client = SipTcp::connect_from(a_ip, b.sip_addr());
        let body = transfer::body(meta, &audio);
        let request = transfer::request(client.local_addr(), b.sip_addr(), &body);
        client
            .transact_bytes(&request, Duration::from_secs(10))
            .expect("an answer")
    };
    let cases: [(&str, &str, serde_json::Value); 5] = [
        (
            "a receive time in year 10000 once in UTC",
            "received_at",
            serde_json::json!("9999-12-31T23:59:59.999-23:59"),
        ),
        (
            "a receive time that is no time",
            "received_at",
            serde_json::json!("soon"),
        ),
        (
            "a duration SQLite cannot hold",
            "duration_ms",
            serde_json::json!(u64::MAX),
        ),
        ("an unknown format", "format", serde_json::json!("mp3")),
        (
            "a caller name of 8 KB",
            "caller_name",
            serde_json::json!("x".repeat(8192)),
        ),
    ];
    for (what, key, value) in cases {
        let mut meta = transfer::transfer_meta(id, "2001", "site-a", &audio);
        meta[key] = value;
        let response = send(&meta);
        assert_eq!(response.status, 400, "{what}: {}", response.raw);
        let warning = response.header("Warning").unwrap_or_default();
        assert!(warning.contains(key), "{what}: Warning {warning:?}");
    }
    // Not a field the wire format allows: a 400 too, not a 500.
    let mut meta = transfer::transfer_meta(id, "2001", "site-a", &audio);
    meta["size_bytes"] = serde_json::json!(-1);
    assert_eq!(send(&meta).status, 400);
    // The server is well and stores the same message once it is right.
    let meta = transfer::transfer_meta(id, "2001", "site-a", &audio);
    let response = send(&meta);
    assert_eq!(response.status, 200, "{}", response.raw);
    assert_eq!(b.messages().len(), 1);
    assert!(!b.log().contains("panicked"), "{}", b.log());
}

#[test]
fn a_maximal_transfer_is_stored_within_twice_its_size() {
    let mut mesh = MeshNet::allocate(2);
    // The test poses as site-a over plain TCP: an insecure peer, known by
    // its address.
    mesh.set_insecure(0);
    mesh[1].start();
    let (b, a_ip) = (&mesh[1], mesh[0].ip);
    let pid = b.pid().expect("site-b runs");
    let id = "0d9f3b6e-2a41-4c8e-b7d5-91c0e6a2f384";
    // Audio that fills the body up to the limit with its metadata.
    let probe = transfer::body(&transfer::transfer_meta(id, "2001", "site-a", b""), b"");
    let audio: Vec<u8> = (0..MAX_BODY - probe.len() - 64)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let body = transfer::body(
        &transfer::transfer_meta(id, "2001", "site-a", &audio),
        &audio,
    );
    assert!(body.len() <= MAX_BODY);
    let mut client = SipTcp::connect_from(a_ip, b.sip_addr());
    let request = transfer::request(client.local_addr(), b.sip_addr(), &body);
    wait_prompts_ready(b);
    let baseline = rss(pid);
    reset_peak(pid);
    let response = client
        .transact_bytes(&request, Duration::from_secs(60))
        .expect("an answer to the transfer");
    let growth = peak_rss(pid).saturating_sub(baseline);
    eprintln!(
        "maximal transfer of {:.1} MiB: {}; peak RSS +{:.1} MiB ({:.2}x the request)",
        mib(request.len() as u64),
        response.status,
        mib(growth),
        growth as f64 / request.len() as f64
    );
    assert_eq!(response.status, 200, "{}", response.raw);
    let ceiling = 2 * request.len() as u64 + PER_REQUEST_SLACK;
    assert!(growth <= ceiling, "peak RSS grew by {:.1} MiB", mib(growth));
    let stored = b.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        std::fs::read(b.export(id)).expect("read the export"),
        audio,
        "the stored audio differs from what was sent"
    );
}

/// The owners' prompts are decoded in the background after start-up, a
/// few MiB of audio: the baseline is taken once that is done, or the
/// prompts' memory would count as the request's.
fn wait_prompts_ready(node: &common::mesh::Site) {
    common::mesh::wait_for(Duration::from_secs(60), || {
        node.log().contains("prompts ready").then_some(())
    })
    .unwrap_or_else(|| panic!("no 'prompts ready' in the log\n{}", node.log_tail()));
}

//! Bounded resources, through the real binary: a TCP client that stops
//! reading cannot hold up other callers; a half-open INVITE flood leaves
//! memory near its baseline; the transaction tables answer 503 with
//! Retry-After beyond their bounds.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::raw_sip::{options_udp, request};
use common::{Server, TestNet};
use vmesh::sip::transport::stream::SEND_TIMEOUT;

/// A TCP connection from `local_ip` with a tiny receive buffer, so the
/// server's answers back up after a few kilobytes once it stops reading.
fn stubborn_connection(local_ip: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.bind(SocketAddr::from((local_ip, 0))).unwrap();
        let stream = socket.connect(server).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// Bytes the server has queued on the connection from `client` but that
/// the client has not taken (the server socket's send queue, from
/// /proc/net/tcp): > 0 means the server's writes to it are stuck.
fn server_send_queue(server: SocketAddr, client: SocketAddr) -> u64 {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    let (local, remote) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.get(1) == Some(&local.as_str()) && f.get(2) == Some(&remote.as_str()))
                .then(|| {
                    f[4].split(':')
                        .next()
                        .map(|q| u64::from_str_radix(q, 16).unwrap())
                })
                .flatten()
        })
        .unwrap_or(0)
}

/// Bytes waiting unread in `stream`'s receive queue (FIONREAD).
fn unread(stream: &TcpStream) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer we pass.
    unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    n
}

#[test]
fn a_client_that_stops_reading_does_not_hold_up_other_callers() {
    let server = Server::start(TestNet::allocate());
    let addr = server.net.sip_addr();
    // Another host than the PBX's: answers are budgeted per source address.
    let octets = server.net.peer_ip.octets();
    let stranger = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3] + 1);
    let mut stubborn = stubborn_connection(stranger, addr);
    let local = stubborn.local_addr().unwrap();
    stubborn
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // Requests whose answers it will never read, until the server's writes
    // to it are stuck: its send queue is full (it stops growing). A batch
    // goes out only while the queue still grows, so few answers wait
    // behind the stuck write (a backlog of hundreds is a reader the server
    // gives up on, by design, and a busy machine must not make one).
    // Until the first answers arrive, no more requests go: a server
    // slowed by a busy machine is waited for, not buried.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut sent, mut queued, mut stable_since) = (0u32, 0u64, None::<Instant>);
    let mut grew = true;
    let stuck_at = loop {
        if let Some(at) = stable_since.filter(|at| at.elapsed() >= Duration::from_secs(1)) {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "the server's answers never backed up ({sent} requests, send queue {queued})"
        );
        let answering = sent == 0 || queued > 0 || unread(&stubborn) > 0;
        let batch = if answering && (grew || queued == 0) {
            100
        } else {
            0
        };
        for _ in 0..batch {
            let options = request("OPTIONS", &format!("sip:{addr}"), local, "TCP", &[], "");
            if stubborn.write_all(options.as_bytes()).is_err() {
                break;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
        let now = server_send_queue(addr, local);
        grew = now > queued;
        if grew {
            (queued, stable_since) = (now, Some(Instant::now()));
        }
    };
    eprintln!(
        "{sent} requests sent; server send queue {queued} bytes, client holds {} unread",
        unread(&stubborn)
    );
    assert!(queued > 0);

    // Meanwhile everyone else is served at once, and a call records.
    let started = Instant::now();
    let answer = options_udp(server.net.peer_ip, addr, Duration::from_secs(2));
    assert_eq!(answer.map(|r| r.status), Some(200), "OPTIONS over UDP");
    assert!(started.elapsed() < Duration::from_secs(1));
    let mut other = common::SipTcp::connect(addr);
    let text = request(
        "OPTIONS",
        &format!("sip:{addr}"),
        other.local_addr(),
        "TCP",
        &[],
        "",
    );
    let answer = other.transact(&text, Duration::from_secs(2));
    assert_eq!(answer.map(|r| r.status), Some(200), "OPTIONS over TCP");
    // The stubborn client is still connected and still not reading.
    assert!(server_send_queue(addr, local) > 0);
    let mut byte = [0u8; 1];
    stubborn.set_nonblocking(true).unwrap();
    assert!(
        stubborn.read(&mut byte).is_ok(),
        "the connection is still up"
    );
    server.leave_short_message("1001");
    let messages = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(messages.len(), 1, "{messages:?}");
    // Still up unless its send deadline (of a stuck write) has passed.
    if stuck_at.elapsed() < SEND_TIMEOUT - Duration::from_secs(1) {
        assert!(
            server_send_queue(addr, local) > 0,
            "closed before its deadline"
        );
    }
}

/// An INVITE over UDP from `local` that will never be acknowledged.
fn half_open_invite(server: &Server, local: SocketAddr) -> String {
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ip = local.ip()
    );
    request(
        "INVITE",
        &format!("sip:1001@{}", server.net.sip_addr()),
        local,
        "UDP",
        &["Content-Type: application/sdp"],
        &sdp,
    )
}

/// How long the last half-open INVITE of a flood may hold state: Timer H
/// ends its transaction (64·T1, RFC 3261 §17.2.1), then the transaction's
/// last answer is kept as long again to absorb retransmissions.
const HALF_OPEN_LIFETIME: Duration = Duration::from_secs(70);

/// How far above its baseline "back near its baseline" may be.
const NEAR_BASELINE: u64 = 8 * 1024 * 1024;

#[test]
fn memory_returns_near_its_baseline_after_a_half_open_invite_flood() {
    let server = Server::start(TestNet::allocate());
    let pid = server.pid().expect("the server runs");
    // Warm up (first call, first transfer of each kind of work), then take
    // the baseline.
    server.leave_short_message("1001");
    server.wait_messages(1, Duration::from_secs(10));
    // The owners' prompts, decoded in the background after start-up.
    server.wait_log("prompts ready", 1, Duration::from_secs(60));
    let baseline = common::memory::rss(pid);
    common::memory::reset_peak(pid);

    // 5,000 INVITEs that are never ACKed, from a socket that never reads.
    let octets = server.net.peer_ip.octets();
    let flooder_ip = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3] + 1);
    let flooder = std::net::UdpSocket::bind((flooder_ip, 0)).unwrap();
    let local = flooder.local_addr().unwrap();
    let started = Instant::now();
    for _ in 0..50 {
        for _ in 0..100 {
            flooder
                .send_to(
                    half_open_invite(&server, local).as_bytes(),
                    server.net.sip_addr(),
                )
                .unwrap();
        }
        // Paced by the server itself: an OPTIONS sent after the burst is
        // answered once the burst has been read.
        let answered = options_udp(
            server.net.peer_ip,
            server.net.sip_addr(),
            Duration::from_secs(10),
        );
        assert!(
            answered.is_some(),
            "the server stopped answering during the flood"
        );
    }
    let flood_time = started.elapsed();
    let peak = common::memory::peak_rss(pid);

    // Everything a half-open INVITE holds ends by 64*T1 after its last
    // answer (Timer H, then the transaction's cleanup): poll until the
    // server is back near its baseline.
    let flood_end = Instant::now();
    let deadline = flood_end + Duration::from_secs(150);
    let near = baseline + NEAR_BASELINE;
    let mut now = common::memory::rss(pid);
    while (flood_end.elapsed() < HALF_OPEN_LIFETIME || now > near) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        now = common::memory::rss(pid);
    }
    eprintln!(
        "half-open INVITE flood: 5000 in {flood_time:?}; RSS {:.1} MiB before, peak {:.1} MiB, {:.1} MiB after {:?}",
        common::memory::mib(baseline),
        common::memory::mib(peak),
        common::memory::mib(now),
        started.elapsed()
    );
    assert!(
        now <= near,
        "RSS stays at {:.1} MiB, {:.1} MiB over its baseline",
        common::memory::mib(now),
        common::memory::mib(now - baseline)
    );
    // And the server still takes calls.
    server.leave_short_message("1001");
}

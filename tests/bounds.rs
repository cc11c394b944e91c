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
use common::{call_timeout, Server, TestNet, SPEECH_SHORT_MS};

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
    // to it are stuck: its send queue is full (it stops growing while
    // requests keep coming).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut sent, mut queued, mut stable_since) = (0u32, 0u64, Instant::now());
    while stable_since.elapsed() < Duration::from_secs(1) {
        assert!(
            Instant::now() < deadline,
            "the server's answers never backed up ({sent} requests, send queue {queued})"
        );
        for _ in 0..200 {
            let options = request("OPTIONS", &format!("sip:{addr}"), local, "TCP", &[], "");
            if stubborn.write_all(options.as_bytes()).is_err() {
                break;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
        let now = server_send_queue(addr, local);
        if now > queued {
            (queued, stable_since) = (now, Instant::now());
        }
    }
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
    server
        .sipp(
            "uac_pilot_diversion.xml",
            &["-s", "1001"],
            call_timeout(SPEECH_SHORT_MS),
        )
        .assert_success();
    let messages = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(messages.len(), 1, "{messages:?}");
    // The stubborn client is still connected and still not reading.
    assert!(server_send_queue(addr, local) > 0);
    let mut byte = [0u8; 1];
    stubborn.set_nonblocking(true).unwrap();
    assert!(
        stubborn.read(&mut byte).is_ok(),
        "the connection is still up"
    );
}

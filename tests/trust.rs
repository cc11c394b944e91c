//! End-to-end tests of trust between mesh servers, tried as an attacker
//! would on loopback: forged transfers over UDP and TCP, certificates of
//! another CA or another server, a server posing at a peer's address, and
//! floods of slow clients that must not make a peer look down. Every
//! verdict is read from outside: SIP responses, handshakes refused, and
//! the CLI's JSON (nothing stored, peers up).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::mesh::{wait_for, MeshNet, Site};
use common::raw_sip::{tcp_connect_from, SipTcp, SipUdp};
use common::transfer::{tone_wav, transfer_meta, transfer_request};
use common::{cli, field};

const REFUSED_LINE: &str = "request refused (403)";

fn id(n: u8) -> String {
    format!("3c9d2b7e-0a41-4d5e-9f60-0000000000{n:02}")
}

fn state_of(site: &Site, peer: &str) -> Option<String> {
    site.peer(peer)
        .and_then(|p| p.get("state").and_then(Value::as_str).map(str::to_string))
}

fn wait_peer_state(site: &Site, peer: &str, state: &str, timeout: Duration) {
    let seen = wait_for(timeout, || {
        (state_of(site, peer).as_deref() == Some(state)).then_some(())
    });
    assert!(
        seen.is_some(),
        "{}: peer {peer} not {state} after {timeout:?}: {:?}",
        site.name,
        site.peer(peer)
    );
}

fn assert_nothing_stored(site: &Site, what: &str) {
    let stored = site.messages();
    assert!(stored.is_empty(), "{what}: stored {stored:#?}");
}

#[test]
fn forged_udp_message_with_a_peers_received_is_refused() {
    let mut mesh = MeshNet::allocate(3);
    mesh[1].start();
    let (b, c_ip, stranger) = (&mesh[1], mesh[2].ip, mesh.spare_ip(0));
    let audio = tone_wav(100);
    // From a stranger, with a top Via whose received names site-c; and
    // from site-c's own address: a datagram authenticates nobody.
    for (from, n) in [(stranger, 1), (c_ip, 2), (stranger, 3)] {
        let client = SipUdp::bind(from, b.sip_addr());
        let meta = transfer_meta(&id(n), "2001", "site-c", &audio);
        let request = transfer_request(client.local_addr(), b.sip_addr(), "UDP", &meta, &audio);
        let request = String::from_utf8_lossy(&request).replacen(
            ";branch=",
            &format!(";received={c_ip};branch="),
            1,
        );
        let response = client
            .transact(&request, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("no answer to a UDP MESSAGE from {from}"));
        assert_eq!(response.status, 403, "{}", response.raw);
        assert!(response.header("Warning").is_some(), "{}", response.raw);
    }
    // Twenty more from the stranger: still one log line for it a minute.
    for n in 10..30 {
        let client = SipUdp::bind(stranger, b.sip_addr());
        let meta = transfer_meta(&id(n), "2001", "site-c", &audio);
        let request = transfer_request(client.local_addr(), b.sip_addr(), "UDP", &meta, &audio);
        let response = client.transact(&String::from_utf8_lossy(&request), Duration::from_secs(3));
        assert_eq!(response.map(|r| r.status), Some(403));
    }
    assert_nothing_stored(b, "forged UDP MESSAGEs");
    let lines: Vec<String> = b
        .log()
        .lines()
        .filter(|l| l.contains(REFUSED_LINE) && l.contains(&stranger.to_string()))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "refusals of one source logged: {lines:#?}");
}

#[test]
fn forged_tcp_message_from_a_peers_address_without_its_certificate_is_refused() {
    let mut mesh = MeshNet::allocate(3);
    mesh[1].start();
    let (b, c_ip) = (&mesh[1], mesh[2].ip);
    let audio = tone_wav(500);
    // Plain TCP from site-c's own address: site-c is a TLS peer, so its
    // address alone proves nothing.
    let meta = transfer_meta(&id(1), "2001", "site-c", &audio);
    let mut tcp = SipTcp::connect_from(c_ip, b.sip_addr());
    let request = transfer_request(tcp.local_addr(), b.sip_addr(), "TCP", &meta, &audio);
    let response = tcp
        .transact_bytes(&request, Duration::from_secs(5))
        .expect("an answer to the TCP MESSAGE");
    assert_eq!(response.status, 403, "{}", response.raw);
    // An OPTIONS from there gets 403 too: it must not pass for a peer's ping.
    let options = common::raw_sip::request(
        "OPTIONS",
        &format!("sip:{}", b.sip_addr()),
        tcp.local_addr(),
        "TCP",
        &[],
        "",
    );
    let response = tcp
        .transact(&options, Duration::from_secs(5))
        .expect("an answer to the TCP OPTIONS");
    assert_eq!(response.status, 403, "{}", response.raw);
    // A stranger's transfer-sized body is refused on its head alone: 413
    // before a byte of the body is sent, so nothing of it is buffered.
    let mut big = SipTcp::connect_from(c_ip, b.sip_addr());
    let head = transfer_request(big.local_addr(), b.sip_addr(), "TCP", &meta, &audio);
    let head_end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block")
        + 4;
    let head = String::from_utf8_lossy(&head[..head_end]).replace(
        &format!("Content-Length: {}\r\n", head.len() - head_end),
        "Content-Length: 10000000\r\n",
    );
    let response = big
        .transact(&head, Duration::from_secs(5))
        .expect("an answer to the head alone");
    assert_eq!(response.status, 413, "{}", response.raw);
    // TLS without a client certificate: refused in the handshake.
    let refused = b.tls_connect(c_ip, None);
    assert!(
        refused.is_err(),
        "a TLS client without a certificate was let in"
    );
    assert_nothing_stored(b, "forged TCP MESSAGE");
}

#[test]
fn a_certificate_of_another_ca_is_refused() {
    let mut mesh = MeshNet::allocate(3);
    mesh[1].start();
    let (b, c_ip) = (&mesh[1], mesh[2].ip);
    // A CA of the attacker's, and a certificate from it named site-c.
    let other = mesh.dir().join("other-ca");
    let dir = other.to_str().expect("UTF-8 path");
    for args in [
        vec!["certs", "init", "--dir", dir],
        vec!["certs", "issue", "site-c", "--dir", dir],
    ] {
        let out = cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (cert, key) = (other.join("site-c.pem"), other.join("site-c.key"));
    let refused = b.tls_connect(c_ip, Some((&cert, &key)));
    let why = refused
        .err()
        .expect("a certificate of another CA was accepted");
    eprintln!("another CA's certificate: {why}");
    // The server's log says why.
    let logged = wait_for(Duration::from_secs(5), || {
        b.log().contains("TLS handshake refused").then_some(())
    });
    assert!(logged.is_some(), "{}", b.log_tail());
    assert_nothing_stored(b, "another CA");
}

#[test]
fn a_valid_certificate_under_another_servers_name_is_refused() {
    let mut mesh = MeshNet::allocate(3);
    // A certificate of the mesh CA for a server the topology does not list.
    let certs = mesh.certs_dir();
    let out = cli(&[
        "certs",
        "issue",
        "intruder",
        "--dir",
        certs.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    mesh[1].start();
    let (b, a_ip, c_ip) = (&mesh[1], mesh[0].ip, mesh[2].ip);
    let audio = tone_wav(500);

    // site-a's certificate, claiming the transfer comes from site-c.
    let (a_cert, a_key) = mesh[0].cert_files();
    let meta = transfer_meta(&id(1), "2001", "site-c", &audio);
    let response = transfer_over_tls(b, c_ip, (&a_cert, &a_key), &meta, &audio);
    assert_eq!(response, 403, "site-a posing as site-c");
    // The intruder's certificate is the mesh CA's but names no peer.
    let (i_cert, i_key) = (certs.join("intruder.pem"), certs.join("intruder.key"));
    let meta = transfer_meta(&id(2), "2001", "site-c", &audio);
    assert_eq!(
        transfer_over_tls(b, c_ip, (&i_cert, &i_key), &meta, &audio),
        403,
        "a certificate naming no server of the topology"
    );
    assert_nothing_stored(b, "wrong names");
    // The same transfer with site-c's own certificate is taken: the
    // refusals above were for the names.
    let (c_cert, c_key) = mesh[2].cert_files();
    let meta = transfer_meta(&id(3), "2001", "site-c", &audio);
    assert_eq!(
        transfer_over_tls(b, a_ip, (&c_cert, &c_key), &meta, &audio),
        200
    );
    assert_eq!(b.messages().len(), 1);
}

/// A server that answers at a peer's address with its own (valid)
/// certificate is not that peer: the sender refuses it in the handshake,
/// keeps the message queued, and the impostor stores nothing.
#[test]
fn a_server_at_a_peers_address_without_its_key_gets_nothing() {
    let mut mesh = MeshNet::allocate(3);
    // site-a's own file swaps the addresses of site-b and site-c, so it
    // dials "site-b" where site-c listens.
    let mut entries = mesh.entries();
    let (b_ip, c_ip) = (entries[1].ip, entries[2].ip);
    entries[1].ip = c_ip;
    entries[2].ip = b_ip;
    mesh[0].own_topology(&entries);
    mesh[2].start();
    mesh[0].start();
    let outcome = mesh[0].sipp(
        "uac_message_short.xml",
        &["-s", "2001", "-m", "1"],
        Duration::from_secs(30),
    );
    outcome.assert_success();
    let (a, c) = (&mesh[0], &mesh[2]);
    let queued = wait_for(Duration::from_secs(15), || {
        let queue = a.queue();
        let entry = queue.first()?.clone();
        let error = entry.get("last_error").and_then(Value::as_str)?.to_string();
        (!error.is_empty()).then_some(error)
    });
    let failures = a.peer("site-b");
    eprintln!("site-a's queue error: {queued:?}; site-b seen as {failures:?}");
    assert_ne!(
        state_of(a, "site-b").as_deref(),
        Some("up"),
        "the impostor passed for site-b"
    );
    wait_peer_state(a, "site-b", "down", Duration::from_secs(15));
    let peer = a.peer("site-b").expect("site-b listed");
    let error = peer.get("last_error").and_then(Value::as_str).unwrap_or("");
    assert!(
        error.contains("certificate") || error.contains("TLS"),
        "site-b's last error says nothing of the certificate: {peer}"
    );
    assert_eq!(a.queue().len(), 1, "the message left the queue");
    assert_nothing_stored(c, "the impostor");
}

/// Sends a transfer over TLS presenting `cert`, returns the status.
fn transfer_over_tls(
    site: &Site,
    from: Ipv4Addr,
    cert: (&Path, &Path),
    meta: &Value,
    audio: &[u8],
) -> u16 {
    let mut client = site
        .tls_connect(from, Some(cert))
        .unwrap_or_else(|e| panic!("TLS handshake with {}: {e}", site.name));
    let request = transfer_request(client.local_addr(), site.tls_addr(), "TLS", meta, audio);
    client
        .transact_bytes(&request, Duration::from_secs(5))
        .map(|r| r.status)
        .expect("an answer to the transfer")
}

/// One attacking connection.
struct Slow {
    stream: TcpStream,
    closed: Option<Instant>,
    first_byte: Option<Instant>,
}

/// Whether the server has closed `stream` (EOF or reset on a read that
/// does not wait).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).ok();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).ok();
    closed
}

#[test]
fn trickling_and_non_reading_clients_do_not_make_a_peer_look_down() {
    const DEADLINE_S: u64 = 4;
    let mut mesh = MeshNet::allocate(2);
    mesh[1].extra_sip = format!(
        "request_deadline_s = {DEADLINE_S}\nmax_connections = 60\nmax_connections_per_source = 6\n"
    );
    mesh[1].start();
    mesh[0].start();
    wait_peer_state(&mesh[0], "site-b", "up", Duration::from_secs(10));
    let (b_sip, b_tls) = (mesh[1].sip_addr(), mesh[1].tls_addr());
    let baseline = mesh[1].rss_kib();

    // Tricklers from 20 addresses, 6 connections each (TCP and TLS ports
    // alike), re-opened as soon as they close, one byte per second each:
    // more than max_connections can hold.
    let mut tricklers: Vec<(Ipv4Addr, SocketAddr, Slow)> = Vec::new();
    let open = |ip: Ipv4Addr, to: SocketAddr| -> Option<Slow> {
        let stream = tcp_connect_from(ip, to).ok()?;
        Some(Slow {
            stream,
            closed: None,
            first_byte: None,
        })
    };
    for k in 0..20 {
        let ip = mesh.spare_ip(k);
        for n in 0..6 {
            let to = if n % 2 == 0 { b_sip } else { b_tls };
            if let Some(slow) = open(ip, to) {
                tricklers.push((ip, to, slow));
            }
        }
    }
    // Non-reading clients: they pour requests and never read an answer.
    let mut pourers: Vec<Slow> = (20..30)
        .filter_map(|k| open(mesh.spare_ip(k), b_sip))
        .collect();
    let options = |local: SocketAddr| {
        common::raw_sip::request("OPTIONS", &format!("sip:{b_sip}"), local, "TCP", &[], "")
    };
    for p in &pourers {
        p.stream.set_nonblocking(true).ok();
    }

    // While the flood goes on: site-a restarts (so it must connect anew
    // through the flood), a call is recorded at site-b, and site-a moves a
    // message to site-b; site-a must see site-b up throughout.
    let started = Instant::now();
    let mut restarted = false;
    let mut call = None;
    let mut down_seen = Vec::new();
    let mut trickle_lifetimes = Vec::new();
    let mut reopened = 0usize;
    while started.elapsed() < Duration::from_secs(25) {
        let now = Instant::now();
        for (ip, to, slow) in tricklers.iter_mut() {
            if slow.closed.is_none() {
                let wrote = slow.stream.write(b"O").is_ok();
                slow.first_byte.get_or_insert(now);
                if !wrote || closed_by_server(&mut slow.stream) {
                    slow.closed = Some(now);
                    if let Some(first) = slow.first_byte {
                        trickle_lifetimes.push(now - first);
                    }
                }
            } else if let Some(fresh) = open(*ip, *to) {
                *slow = fresh;
                reopened += 1;
            }
        }
        for p in pourers.iter_mut().filter(|p| p.closed.is_none()) {
            let local = p.stream.local_addr().expect("local address");
            for _ in 0..2000 {
                match p.stream.write(options(local).as_bytes()) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        p.closed = Some(now);
                        break;
                    }
                }
            }
        }
        if !restarted && started.elapsed() > Duration::from_secs(3) {
            mesh[0].terminate();
            mesh[0].start();
            restarted = true;
            call = Some((
                mesh[1].sipp_start(
                    "uac_message_short.xml",
                    &["-s", "2002", "-m", "1"],
                    Duration::from_secs(40),
                ),
                mesh[0].sipp_start(
                    "uac_message_short.xml",
                    &["-s", "2003", "-m", "1"],
                    Duration::from_secs(40),
                ),
            ));
        }
        if restarted {
            if let Some(state) = state_of(&mesh[0], "site-b") {
                if state == "down" {
                    down_seen.push(started.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let (at_b, at_a) = call.expect("the calls were started");
    at_b.wait().assert_success();
    at_a.wait().assert_success();
    let (a, b) = (&mesh[0], &mesh[1]);
    assert!(
        down_seen.is_empty(),
        "site-a saw site-b down at {down_seen:?}"
    );
    wait_peer_state(a, "site-b", "up", Duration::from_secs(5));
    let stored = wait_for(Duration::from_secs(15), || {
        let list = b.messages();
        (list.len() >= 2).then_some(list)
    })
    .unwrap_or_else(|| {
        panic!(
            "site-b has {:#?}\nqueue at a: {:#?}",
            b.messages(),
            a.queue()
        )
    });
    let mut mailboxes: Vec<&str> = stored.iter().map(|m| field(m, "mailbox")).collect();
    mailboxes.sort();
    assert_eq!(mailboxes, ["2002", "2003"]);

    // Every trickled request was cut at its deadline, never later.
    eprintln!(
        "{} trickling connections closed ({} re-opened), longest {:?}; {} of {} non-readers closed",
        trickle_lifetimes.len(),
        reopened,
        trickle_lifetimes.iter().max(),
        pourers.iter().filter(|p| p.closed.is_some()).count(),
        pourers.len()
    );
    assert!(!trickle_lifetimes.is_empty());
    let bound = Duration::from_secs(DEADLINE_S + 3);
    assert!(
        trickle_lifetimes.iter().all(|d| *d <= bound),
        "a trickling connection outlived the deadline: {:?}",
        trickle_lifetimes.iter().max()
    );
    // The flood was bigger than the room for strangers.
    assert!(
        b.log()
            .contains("connection refused: over the connection limits"),
        "no connection was refused: the flood did not fill the limits"
    );
    // The non-readers were cut off (send deadline or backlog).
    for p in pourers.iter_mut().filter(|p| p.closed.is_none()) {
        if closed_by_server(&mut p.stream) {
            p.closed = Some(Instant::now());
        }
    }
    let open_pourers = pourers.iter().filter(|p| p.closed.is_none()).count();
    assert_eq!(open_pourers, 0, "non-reading clients still connected");
    let elapsed = started.elapsed();
    drop(tricklers);
    drop(pourers);
    eprintln!(
        "site-b RSS {baseline} KiB before, {} KiB after {elapsed:?} of flood",
        b.rss_kib()
    );
}

#[test]
fn check_validates_the_tls_settings() {
    let mesh = MeshNet::allocate(2);
    let a = &mesh[0];
    a.write_profile();
    let check = |what: &str| {
        let out = cli(&["check", "--profile", a.profile().to_str().unwrap()]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{what}: {text}");
        (out.status.success(), text)
    };
    let (ok, text) = check("as made");
    assert!(ok, "{text}");
    assert!(text.contains("are issued by the mesh CA"), "{text}");

    let profile = std::fs::read_to_string(a.profile()).unwrap();
    let (cert, key) = a.cert_files();
    let (b_cert, _) = mesh[1].cert_files();
    let cases = [
        (
            "another server's certificate",
            profile.replace("certs/site-a.pem", "certs/site-b.pem"),
            "does not match the key",
        ),
        (
            "no key",
            profile.replace("key = \"certs/site-a.key\"\n", ""),
            "tls.key: missing",
        ),
        (
            "a missing file",
            profile.replace("certs/site-a.pem", "certs/nowhere.pem"),
            "cannot read",
        ),
    ];
    for (what, text, expected) in cases {
        std::fs::write(a.profile(), text).unwrap();
        let (ok, out) = check(what);
        assert!(!ok, "{what}: check passed\n{out}");
        assert!(out.contains(expected), "{what}: {out}");
    }
    // The right pair for the wrong server: site-b's key and certificate.
    let (_, b_key) = mesh[1].cert_files();
    let swapped = profile
        .replace("certs/site-a.pem", b_cert.to_str().unwrap())
        .replace("certs/site-a.key", b_key.to_str().unwrap());
    std::fs::write(a.profile(), swapped).unwrap();
    let (ok, out) = check("site-b's pair");
    assert!(
        !ok && out.contains("does not name server \"site-a\""),
        "{out}"
    );
    // A certificate of another CA.
    let other = mesh.dir().join("other-ca");
    let dir = other.to_str().unwrap();
    assert!(cli(&["certs", "init", "--dir", dir]).status.success());
    assert!(cli(&["certs", "issue", "site-a", "--dir", dir])
        .status
        .success());
    let foreign = profile
        .replace(
            "certs/site-a.pem",
            other.join("site-a.pem").to_str().unwrap(),
        )
        .replace(
            "certs/site-a.key",
            other.join("site-a.key").to_str().unwrap(),
        );
    std::fs::write(a.profile(), foreign).unwrap();
    let (ok, out) = check("another CA");
    assert!(!ok && out.contains("is not issued by the mesh CA"), "{out}");
    let _ = (cert, key);
}

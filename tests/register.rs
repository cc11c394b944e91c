//! vmesh registered with a real registrar: Kamailio (Debian's 5.6, with its
//! registrar, usrloc, auth and auth_db modules, credentials in db_text)
//! running the registrar variant of `sip-profiles/kamailio/voicemail.cfg`.
//!
//! vmesh registers as user `voicemail` with digest authentication; a call
//! for user 1001 rings the phone (a SIPp UAS that is busy), and Kamailio's
//! failure route looks `voicemail` up in its location table and sends the
//! call to the Contact vmesh registered, with a Diversion header naming
//! 1001. So a message stored for 1001 proves the binding was stored and
//! used. On SIGTERM vmesh removes its binding (Expires: 0), after which the
//! same call gets 480 from Kamailio; restarted, it registers again.
//!
//! Each test has its own loopback addresses (Kamailio on the vmesh
//! server's address, port 5080; phone and caller on the test's caller
//! address), so the tests run in parallel.

mod common;
#[path = "kamailio/proxy.rs"]
mod proxy;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::raw_sip::{request, SipUdp};
use common::sipp::{SippOutcome, SippRun, SippSetup};
use common::{
    assert_short_speech_recorded, call_timeout, cli, field, Server, ServerConfig, TestNet,
    SPEECH_SHORT_MS,
};
use proxy::{wait_udp_bound, Kamailio, KamailioConfig, RegistrarSetup};
use serde_json::Value;

/// Kamailio's port, on the vmesh server's address.
const PROXY_PORT: u16 = 5080;
/// The caller's SIP port, on the test's caller address.
const CALLER_PORT: u16 = 5070;
/// The phone's SIP port, on the test's caller address.
const PHONE_PORT: u16 = 5090;
/// How long the phone rings before Kamailio gives up on it.
const NO_ANSWER_MS: u64 = 2_000;
/// The password of user `voicemail` in sip-profiles/kamailio/dbtext/subscriber.
const PASSWORD: &str = "vmesh-secret";
/// How long a registration may take against a registrar on loopback.
const REGISTER_WAIT: Duration = Duration::from_secs(10);

/// Kamailio as vmesh's registrar, in a directory of its own (vmesh must
/// find it up when it starts).
struct Setup {
    net: TestNet,
    proxy: SocketAddrV4,
    kamailio: Kamailio,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(registrar: RegistrarSetup) -> Setup {
        let net = TestNet::allocate();
        let dir = tempfile::Builder::new()
            .prefix("vmesh-registrar-")
            .tempdir()
            .expect("create Kamailio's directory");
        let proxy = SocketAddrV4::new(net.ip, PROXY_PORT);
        let kamailio = Kamailio::start(
            KamailioConfig {
                listen: proxy,
                phone: phone_addr(&net),
                vmesh: net.sip_addr(),
                no_answer_ms: NO_ANSWER_MS,
                pilot: false,
                registrar: Some(registrar),
            },
            dir.path(),
        );
        Setup {
            net,
            proxy,
            kamailio,
            dir,
        }
    }

    /// Starts vmesh with one `[[register]]` entry for this Kamailio
    /// (`registrar_params` after its URI, `extra` keys after the others);
    /// the password is read from a file, as an operator would keep it.
    fn start_vmesh(&self, password: &str, registrar_params: &str, extra: &str) -> Server {
        let secret = self.dir.path().join("voicemail.secret");
        std::fs::write(&secret, format!("{password}\n")).expect("write the password file");
        let register = format!(
            "[[register]]\nregistrar = \"sip:{proxy}{registrar_params}\"\nuser = \"voicemail\"\n\
             password_file = {secret:?}\n{extra}",
            proxy = self.proxy,
            secret = secret.display().to_string(),
        );
        Server::start_with(
            self.net,
            ServerConfig {
                extra: register,
                ..ServerConfig::default()
            },
        )
    }

    /// Counts lines of Kamailio's log that contain `text`.
    fn log_count(&self, text: &str) -> usize {
        self.kamailio
            .log()
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Polls Kamailio's log until `text` shows `count` times.
    fn wait_log(&self, text: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log_count(text) < count {
            assert!(
                Instant::now() < deadline,
                "Kamailio did not log {text:?} {count} times within {timeout:?}\n{}",
                self.kamailio.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sipp(&self, port: u16, media_port: u16) -> SippSetup<'_> {
        SippSetup {
            remote: self.proxy.to_string(),
            local_ip: self.net.peer_ip.to_string(),
            local_port: port,
            media_port,
            log_dir: self.dir.path(),
        }
    }
}

fn phone_addr(net: &TestNet) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(net.peer_ip, PHONE_PORT))
}

/// `vmesh registrations --json`.
fn registrations(server: &Server) -> Vec<Value> {
    match server.cli_json(&["registrations", "--json"]) {
        Value::Array(items) => items,
        other => panic!("registrations --json is not an array: {other}"),
    }
}

/// Polls the status file until the one registration is `state`, then
/// returns it as the CLI shows it.
fn wait_state(server: &Server, state: &str, timeout: Duration) -> Value {
    let file = server.data_dir().join("registrations.json");
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let statuses: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        if statuses.first().and_then(|s| s["state"].as_str()) == Some(state) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the registration is not {state} within {timeout:?}: {text}\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut all = registrations(server);
    assert_eq!(all.len(), 1, "one registration: {all:?}");
    all.remove(0)
}

/// Milliseconds between the first log lines containing `from` and `to`,
/// by their timestamps.
fn log_interval_ms(log: &str, from: &str, to: &str) -> i128 {
    let at = |text: &str| {
        let line = log
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no log line with {text:?}"));
        let stamp = line.split_whitespace().next().unwrap_or_default();
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("log timestamp {stamp:?}: {e}"))
    };
    (at(to) - at(from)).whole_milliseconds()
}

fn number(status: &Value, key: &str) -> u64 {
    status[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {status}"))
}

/// Calls 1001 through Kamailio while the phone is busy; the call must end
/// up recorded by vmesh. Returns what the caller saw.
fn busy_call_recorded(setup: &Setup, server: &Server) -> SippOutcome {
    let phone = SippRun::start(
        &setup.sipp(PHONE_PORT, 6100),
        "uas_busy.xml",
        &[],
        Duration::from_secs(30),
    );
    wait_udp_bound(phone_addr(&setup.net), Duration::from_secs(5));
    let caller = SippRun::start(
        &setup.sipp(CALLER_PORT, 6000),
        "uac_pbx_caller.xml",
        &["-s", "1001"],
        call_timeout(SPEECH_SHORT_MS),
    )
    .wait();
    phone.wait().assert_success();
    caller.assert_success();
    let messages = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(messages.len(), 1, "one message stored: {messages:#?}");
    let message = &messages[0];
    assert_eq!(field(message, "mailbox"), "1001", "{message:#}");
    assert_eq!(field(message, "reason"), "user-busy", "{message:#}");
    assert_short_speech_recorded(server, message);
    caller
}

#[test]
fn registers_with_digest_takes_calls_through_its_contact_and_unregisters_on_sigterm() {
    let setup = Setup::new(RegistrarSetup::default());
    let ip = setup.net.ip;
    let started = Instant::now();
    let mut server = setup.start_vmesh(PASSWORD, "", "");
    let status = wait_state(&server, "registered", REGISTER_WAIT);
    eprintln!(
        "registered with Kamailio {} ms after vmesh was started, {} ms after it was serving",
        started.elapsed().as_millis(),
        log_interval_ms(&server.log(), "vmesh serving", "registered granted_s")
    );
    assert_eq!(field(&status, "aor"), format!("sip:voicemail@{ip}"));
    assert_eq!(
        field(&status, "contact"),
        format!("sip:voicemail@{ip}:5060")
    );
    assert_eq!(number(&status, "expires_s"), 600);
    assert_eq!(number(&status, "last_status"), 200);
    assert!(status["last_error"].is_null(), "{status}");
    assert!(status["refresh_at"].is_string(), "{status}");

    // Kamailio challenged the first REGISTER and took the second one's
    // Authorization, then stored the Contact.
    assert_eq!(
        setup.log_count(&format!(
            "REGISTER for sip:voicemail@{ip} without valid credentials: challenging"
        )),
        1,
        "{}",
        setup.kamailio.log_tail()
    );
    let stored = format!(
        "REGISTER for sip:voicemail@{ip} authorized as voicemail: contact <sip:voicemail@{ip}:5060>, expires 600"
    );
    assert_eq!(setup.log_count(&stored), 1, "{}", setup.kamailio.log_tail());

    // The call for the busy phone goes to the looked-up contact.
    busy_call_recorded(&setup, &server);
    let relayed = format!("sending the call to vmesh's registered contact sip:voicemail@{ip}:5060");
    assert_eq!(
        setup.log_count(&relayed),
        1,
        "{}",
        setup.kamailio.log_tail()
    );

    // SIGTERM: vmesh removes its binding before it exits.
    let exit = server.terminate();
    assert!(exit.success(), "vmesh exit status {exit}");
    let removed = format!(
        "REGISTER for sip:voicemail@{ip} authorized as voicemail: contact <sip:voicemail@{ip}:5060>, expires 0"
    );
    assert_eq!(
        setup.log_count(&removed),
        1,
        "{}",
        setup.kamailio.log_tail()
    );
    let status = registrations(&server).remove(0);
    assert_eq!(field(&status, "state"), "unregistered", "{status}");
    assert_eq!(number(&status, "last_status"), 200);

    // Now the busy phone's call finds no voicemail: Kamailio answers 480.
    let phone = SippRun::start(
        &setup.sipp(PHONE_PORT, 6100),
        "uas_busy.xml",
        &[],
        Duration::from_secs(30),
    );
    wait_udp_bound(phone_addr(&setup.net), Duration::from_secs(5));
    let client = SipUdp::bind(setup.net.peer_ip, SocketAddr::V4(setup.proxy));
    let invite = request(
        "INVITE",
        &format!("sip:1001@{}", setup.proxy),
        client.local_addr(),
        "UDP",
        &[],
        "",
    );
    let answer = client
        .transact(&invite, Duration::from_secs(10))
        .expect("Kamailio answers the INVITE");
    assert_eq!(answer.status, 480, "{answer:?}");
    client.send(common::dialog::ack_for_failure(&invite, &answer).as_bytes());
    phone.wait().assert_success();
    assert!(setup.log_count("voicemail is not registered") >= 1);

    // Started again, vmesh registers again at once.
    server.restart();
    wait_state(&server, "registered", REGISTER_WAIT);
    setup.wait_log(&stored, 2, REGISTER_WAIT);
}

#[test]
fn registers_with_sha_256_follows_min_expires_and_refreshes_with_the_same_nonce() {
    let setup = Setup::new(RegistrarSetup {
        sha256: true,
        tcp: false,
    });
    let ip = setup.net.ip;
    // Kamailio's registrar wants at least 60 s: it answers 423 with
    // Min-Expires: 60, and vmesh asks again with 60.
    let server = setup.start_vmesh(PASSWORD, "", "expires = 30\n");
    let status = wait_state(&server, "registered", REGISTER_WAIT);
    assert_eq!(number(&status, "expires_s"), 60, "{status}");
    assert_eq!(number(&status, "requested_expires_s"), 60, "{status}");
    let asked = |expires: u32| {
        format!(
            "REGISTER for sip:voicemail@{ip} authorized as voicemail: contact <sip:voicemail@{ip}:5060>, expires {expires}"
        )
    };
    assert_eq!(
        setup.log_count(&asked(30)),
        1,
        "{}",
        setup.kamailio.log_tail()
    );
    assert_eq!(
        setup.log_count(&asked(60)),
        1,
        "{}",
        setup.kamailio.log_tail()
    );
    // The registrar only offers SHA-256: registering proves the answer
    // used it (RFC 8760).
    assert_eq!(setup.log_count("without valid credentials: challenging"), 1);

    // The refresh comes half-way through the 60 s and reuses the nonce
    // (nc=2): no new challenge.
    setup.wait_log(&asked(60), 2, Duration::from_secs(45));
    assert_eq!(
        setup.log_count("without valid credentials: challenging"),
        1,
        "the refresh was challenged again\n{}",
        setup.kamailio.log_tail()
    );
    let status = wait_state(&server, "registered", REGISTER_WAIT);
    assert_eq!(number(&status, "last_status"), 200);
}

#[test]
fn registers_over_tcp_and_takes_calls_over_tcp() {
    let setup = Setup::new(RegistrarSetup {
        sha256: false,
        tcp: true,
    });
    let ip = setup.net.ip;
    let server = setup.start_vmesh(PASSWORD, ";transport=tcp", "");
    let status = wait_state(&server, "registered", REGISTER_WAIT);
    assert_eq!(
        field(&status, "contact"),
        format!("sip:voicemail@{ip}:5060;transport=tcp")
    );
    assert_eq!(
        field(&status, "registrar"),
        format!("sip:{}:{PROXY_PORT};transport=tcp", ip)
    );
    setup.wait_log(
        &format!("contact <sip:voicemail@{ip}:5060;transport=tcp>, expires 600"),
        1,
        REGISTER_WAIT,
    );
    busy_call_recorded(&setup, &server);
    assert_eq!(
        setup.log_count(&format!(
            "sending the call to vmesh's registered contact sip:voicemail@{ip}:5060;transport=tcp"
        )),
        1,
        "{}",
        setup.kamailio.log_tail()
    );
}

#[test]
fn a_wrong_password_is_reported_and_not_retried_in_a_loop() {
    let setup = Setup::new(RegistrarSetup::default());
    let server = setup.start_vmesh("not-the-password", "", "");
    let status = wait_state(&server, "failing", REGISTER_WAIT);
    assert_eq!(number(&status, "last_status"), 401, "{status}");
    let error = field(&status, "last_error");
    assert!(error.contains("credentials rejected"), "{status}");
    // The next attempt is minutes away (a refusal is retried slowly), and
    // so far exactly the REGISTER and its answer reached Kamailio.
    let next = field(&status, "next_attempt_at");
    let next = time::OffsetDateTime::parse(next, &time::format_description::well_known::Rfc3339)
        .expect("next_attempt_at is RFC 3339");
    let ahead = next - time::OffsetDateTime::now_utc();
    assert!(
        ahead >= time::Duration::seconds(140),
        "next attempt in {ahead} only: {status}"
    );
    assert_eq!(setup.log_count("REGISTER for sip:voicemail@"), 2);
    assert!(
        server
            .log()
            .contains("registration refused by the registrar"),
        "{}",
        server.log_tail()
    );
    // The human table says the same.
    let table = server.cli(&["registrations"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success());
    assert!(text.contains("failing") && text.contains("401"), "{text}");
}

#[test]
fn registrations_cli_reports_nothing_to_show_and_a_missing_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let out = cli(&[
        "registrations",
        "--json",
        "--data",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no data directory"), "{stderr}");

    let out = cli(&[
        "registrations",
        "--json",
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json, Value::Array(vec![]));

    std::fs::write(dir.path().join("registrations.json"), "[{").unwrap();
    let out = cli(&["registrations", "--data", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("registrations.json"), "{stderr}");
}

/// The INVITEs PBXs send through a registered Contact, as vmesh receives
/// them: the Request-URI is vmesh's Contact (user `voicemail`, vmesh's
/// own address), and the mailbox is found as for any pilot call.
#[test]
fn calls_through_a_registered_contact_find_the_mailbox_as_pilot_calls() {
    use vmesh::call::mailbox::{resolve, MailboxRequest, TargetSource};
    let contact = "sip:voicemail@192.0.2.20:5060";
    let cases: &[(&str, MailboxRequest, &str, TargetSource, Option<&str>)] = &[
        (
            "Kamailio: lookup() after add_diversion",
            MailboxRequest {
                request_uri: contact,
                to: Some("<sip:1001@192.0.2.10:5080>"),
                history_info: &[],
                diversion: &["<sip:1001@192.0.2.10:5080>;reason=user-busy"],
            },
            "1001",
            TargetSource::Diversion,
            Some("user-busy"),
        ),
        (
            "Kamailio: lookup() without Diversion, the To names the called user",
            MailboxRequest {
                request_uri: contact,
                to: Some("<sip:1001@192.0.2.10:5080>"),
                history_info: &[],
                diversion: &[],
            },
            "1001",
            TargetSource::To,
            None,
        ),
        (
            "Asterisk: Dial(PJSIP/voicemail@voicemail) with send_history_info",
            MailboxRequest {
                request_uri: contact,
                to: Some("<sip:voicemail@192.0.2.20>"),
                history_info: &[
                    "<sip:1001@192.0.2.10>;index=1",
                    "<sip:voicemail@192.0.2.20;cause=486>;index=1.1",
                ],
                diversion: &["<sip:1001@192.0.2.10>;reason=user-busy"],
            },
            "1001",
            TargetSource::HistoryInfo,
            Some("user-busy"),
        ),
        (
            "FreeSWITCH: user/voicemail with sip_h_Diversion",
            MailboxRequest {
                request_uri: contact,
                to: Some("<sip:voicemail@192.0.2.10>"),
                history_info: &[],
                diversion: &["<sip:1002@192.0.2.10>;reason=no-answer"],
            },
            "1002",
            TargetSource::Diversion,
            Some("no-answer"),
        ),
    ];
    for (what, request, mailbox, source, reason) in cases {
        let target = resolve(request).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(target.mailbox, *mailbox, "{what}");
        assert_eq!(target.source, *source, "{what}");
        assert_eq!(target.reason.as_deref(), *reason, "{what}");
    }
    // With nothing naming a mailbox, the pilot user is not one: 404.
    let pilot_only = MailboxRequest {
        request_uri: contact,
        to: Some("<sip:voicemail@192.0.2.10>"),
        history_info: &[],
        diversion: &[],
    };
    assert!(resolve(&pilot_only).is_err());
}

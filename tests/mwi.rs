//! Message-waiting lamps end to end (RFC 3842 over RFC 6665): SIPp phones
//! SUBSCRIBE to a mailbox and check every NOTIFY as the mailbox changes
//! (a message recorded, marked heard and deleted with the CLI, one
//! arriving from a peer), subscriptions survive a restart, refresh,
//! unsubscribe and expiry, a dead subscriber is dropped without slowing
//! calls, and a SIPp UAS standing in for a PBX takes unsolicited NOTIFYs,
//! with and without a digest challenge (MD5 and SHA-256).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::mesh::{wait_for, MeshNet};
use common::sipp::{SippOutcome, TracedMessage};
use common::{call_timeout, field, Server, ServerConfig, TestNet, SPEECH_SHORT_MS};

/// The phone scenario: subscribe, take N NOTIFYs, unsubscribe.
const SUBSCRIBER: &str = "uac_mwi_subscriber.xml";
/// A 3 s message for mailbox `-s`.
const SHORT_CALL: &str = "uac_message_short.xml";
/// How long a NOTIFY may take to come after a change: the once-a-second
/// pacing, the change poll and a loaded machine.
const NOTIFY_WAIT: Duration = Duration::from_secs(10);

/// What a NOTIFY body says (RFC 3842 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    waiting: String,
    account: String,
    voice: String,
}

/// The summary of a NOTIFY's body; panics if a line is missing.
fn summary(notify: &TracedMessage) -> Summary {
    let body = notify
        .text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("NOTIFY without a body:\n{}", notify.text));
    let line = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("NOTIFY body lacks {name}:\n{}", notify.text))
    };
    Summary {
        waiting: line("Messages-Waiting:"),
        account: line("Message-Account:"),
        voice: line("Voice-Message:"),
    }
}

/// `(Messages-Waiting, Voice-Message)` of each summary.
fn lamps(notifies: &[TracedMessage]) -> Vec<(String, String)> {
    notifies
        .iter()
        .map(summary)
        .map(|s| (s.waiting, s.voice))
        .collect()
}

fn lamp(waiting: &str, voice: &str) -> (String, String) {
    (waiting.to_string(), voice.to_string())
}

/// A header of a traced message, by name (case-insensitive).
fn header(message: &TracedMessage, name: &str) -> Option<String> {
    message.text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The CSeq number of a traced message.
fn cseq(message: &TracedMessage) -> u32 {
    header(message, "CSeq")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no CSeq:\n{}", message.text))
}

/// The `tag` parameter of a header.
fn tag(message: &TracedMessage, name: &str) -> String {
    header(message, name)
        .and_then(|v| {
            v.split(';')
                .find_map(|p| p.trim().strip_prefix("tag=").map(str::to_string))
        })
        .unwrap_or_else(|| panic!("no {name} tag:\n{}", message.text))
}

/// Lines in `file` (the subscriber appends one per NOTIFY it answers).
fn lines(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Waits until the subscriber writing to `file` has answered `n` NOTIFYs.
fn wait_notifies(file: &Path, n: usize, what: &str) {
    let seen = wait_for(NOTIFY_WAIT, || (lines(file) >= n).then_some(()));
    assert!(
        seen.is_some(),
        "{what}: NOTIFY {n} did not come within {NOTIFY_WAIT:?} ({} so far)",
        lines(file)
    );
}

/// A directory for one subscriber's progress file.
fn progress_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("create the progress directory");
    dir
}

/// Subscriber arguments: mailbox, progress directory, Expires, NOTIFYs to
/// take before unsubscribing.
fn subscriber_args(mailbox: &str, dir: &Path, expires: u32, notifies: u32) -> Vec<String> {
    vec![
        "-s".into(),
        mailbox.into(),
        "-key".into(),
        "dir".into(),
        dir.to_str().expect("UTF-8 path").into(),
        "-key".into(),
        "expires".into(),
        expires.to_string(),
        "-set".into(),
        "notifies".into(),
        notifies.to_string(),
    ]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The NOTIFYs a subscriber run received, in order, after checking it
/// succeeded; also checks they are one dialog with rising CSeqs, the
/// notifier's tag as the 200 gave it.
fn dialog_notifies(outcome: &SippOutcome) -> Vec<TracedMessage> {
    outcome.assert_success();
    let ok = outcome
        .received("SIP/2.0 200")
        .into_iter()
        .next()
        .expect("the 200 to SUBSCRIBE");
    let notifier_tag = tag(&ok, "To");
    let notifies = outcome.received("NOTIFY ");
    let mut last = 0;
    for n in &notifies {
        assert_eq!(
            tag(n, "From"),
            notifier_tag,
            "NOTIFY outside the dialog:\n{}",
            n.text
        );
        let c = cseq(n);
        assert!(c > last, "CSeq {c} after {last}:\n{}", n.text);
        last = c;
        assert_eq!(header(n, "Event").as_deref(), Some("message-summary"));
        assert_eq!(
            header(n, "Content-Type").as_deref(),
            Some("application/simple-message-summary")
        );
    }
    notifies
}

#[test]
fn a_subscriber_sees_a_message_recorded_heard_and_deleted() {
    let server = Server::start(TestNet::allocate());
    let dir = progress_dir(server.dir(), "phone");
    let progress = dir.join("notifies");
    let args = subscriber_args("1001", &dir, 3600, 4);
    let phone = server.sipp_start(SUBSCRIBER, &strs(&args), Duration::from_secs(90));
    wait_notifies(&progress, 1, "subscribed");

    server
        .sipp(SHORT_CALL, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    wait_notifies(&progress, 2, "a message recorded");
    let messages = server.wait_messages(1, Duration::from_secs(5));
    let id = field(&messages[0], "id").to_string();
    assert_eq!(field(&messages[0], "folder"), "new");

    let heard = server.cli(&["messages", "mark", &id, "--heard"]);
    assert!(
        heard.status.success(),
        "{}",
        String::from_utf8_lossy(&heard.stderr)
    );
    wait_notifies(&progress, 3, "marked heard with the CLI");

    let deleted = server.cli(&["messages", "delete", &id]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    wait_notifies(&progress, 4, "deleted with the CLI");

    let outcome = phone.wait();
    let notifies = dialog_notifies(&outcome);
    assert_eq!(
        lamps(&notifies),
        vec![
            lamp("no", "0/0 (0/0)"),
            lamp("yes", "1/0 (0/0)"),
            lamp("no", "0/1 (0/0)"),
            lamp("no", "0/0 (0/0)"),
            lamp("no", "0/0 (0/0)"),
        ],
        "initial, recorded, heard, deleted, final"
    );
    let account = format!("sip:1001@{}", server.net.ip);
    assert!(notifies.iter().all(|n| summary(n).account == account));
    let last = notifies.last().expect("the final NOTIFY");
    assert_eq!(
        header(last, "Subscription-State").as_deref(),
        Some("terminated;reason=timeout")
    );
    let first_state = header(&notifies[0], "Subscription-State").unwrap_or_default();
    assert!(
        first_state.starts_with("active;expires=") && first_state.ends_with("3600"),
        "{first_state}"
    );
}

/// `vmesh subscriptions --json` of a server.
fn subscriptions(server: &Server) -> Vec<serde_json::Value> {
    match server.cli_json(&["subscriptions", "--json"]) {
        serde_json::Value::Array(items) => items,
        other => panic!("subscriptions --json is not an array: {other}"),
    }
}

#[test]
fn subscriptions_survive_a_restart() {
    let mut server = Server::start(TestNet::allocate());
    let dir = progress_dir(server.dir(), "phone");
    let progress = dir.join("notifies");
    let args = subscriber_args("1001", &dir, 3600, 3);
    let phone = server.sipp_start(SUBSCRIBER, &strs(&args), Duration::from_secs(90));
    wait_notifies(&progress, 1, "subscribed");
    let kept = subscriptions(&server);
    assert_eq!(kept.len(), 1, "{kept:#?}");
    assert_eq!(field(&kept[0], "mailbox"), "1001");
    assert_eq!(
        field(&kept[0], "contact"),
        format!("sip:phone-1001@{}:5070", server.net.peer_ip)
    );

    // Restarted, the server tells the phone the state again, in the same
    // dialog, and goes on notifying it.
    server.restart();
    wait_notifies(&progress, 2, "after the restart");
    server
        .sipp(SHORT_CALL, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    wait_notifies(&progress, 3, "a message recorded after the restart");

    // The phone unsubscribes from the restarted server (the dialog was
    // found in the store): a 200 and a final NOTIFY.
    let notifies = dialog_notifies(&phone.wait());
    assert_eq!(
        lamps(&notifies),
        vec![
            lamp("no", "0/0 (0/0)"),
            lamp("no", "0/0 (0/0)"),
            lamp("yes", "1/0 (0/0)"),
            lamp("yes", "1/0 (0/0)"),
        ]
    );
    let gone = wait_for(Duration::from_secs(5), || {
        subscriptions(&server).is_empty().then_some(())
    });
    assert!(gone.is_some(), "{:#?}", subscriptions(&server));
}

#[test]
fn a_refresh_is_notified_a_too_brief_one_refused_and_an_unsubscribe_ends_it() {
    let server = Server::start(TestNet::allocate());
    server
        .sipp(
            "uac_mwi_refresh.xml",
            &["-s", "1001"],
            Duration::from_secs(30),
        )
        .assert_success();
    let gone = wait_for(Duration::from_secs(5), || {
        subscriptions(&server).is_empty().then_some(())
    });
    assert!(gone.is_some(), "{:#?}", subscriptions(&server));
}

#[test]
fn an_expired_subscription_gets_a_final_notify() {
    let config = ServerConfig {
        extra: "[mwi]\nmin_expires_s = 1\n".into(),
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    let started = Instant::now();
    let outcome = server.sipp(
        "uac_mwi_expiry.xml",
        &["-s", "1001", "-key", "expires", "2"],
        Duration::from_secs(30),
    );
    outcome.assert_success();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2),
        "the subscription ended after {elapsed:?}, before its 2 s"
    );
    let notifies = outcome.received("NOTIFY ");
    assert_eq!(
        header(&notifies[1], "Subscription-State").as_deref(),
        Some("terminated;reason=timeout")
    );
    assert!(subscriptions(&server).is_empty());
}

#[test]
fn a_gone_subscriber_is_dropped_and_calls_never_wait_for_it() {
    let config = ServerConfig {
        extra: "[mwi]\nretry_attempts = 1\n".into(),
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    server
        .sipp("uac_mwi_gone.xml", &["-s", "1001"], Duration::from_secs(20))
        .assert_success();
    assert_eq!(subscriptions(&server).len(), 1);

    // Two calls while the NOTIFYs to the vanished phone go unanswered:
    // both are taken and stored as usual.
    for n in 1..=2 {
        server
            .sipp(SHORT_CALL, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
            .assert_success();
        assert_eq!(server.wait_messages(n, Duration::from_secs(5)).len(), n);
    }
    assert_eq!(
        subscriptions(&server).len(),
        1,
        "still trying the vanished phone (Timer F is 32 s)"
    );
    // Its NOTIFY times out (Timer F): the subscription is dropped.
    let dropped = wait_for(Duration::from_secs(50), || {
        subscriptions(&server).is_empty().then_some(())
    });
    assert!(dropped.is_some(), "{:#?}", subscriptions(&server));
    assert!(server.log().contains("subscription dropped"));
}

#[test]
fn subscribe_refusals() {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            accept: vec!["1000-1999".into()],
            ..ServerConfig::default()
        },
    );
    let udp = common::SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let ask = |user: &str, extra: &str| {
        let token = common::raw_sip::unique_token();
        let local = udp.local_addr();
        let text = format!(
            "SUBSCRIBE sip:{user}@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{token}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:phone@{local}>;tag=f{token}\r\n\
             To: <sip:{user}@{server}>\r\n\
             Call-ID: {token}@test\r\n\
             CSeq: 1 SUBSCRIBE\r\n\
             Contact: <sip:phone@{local}>\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            server = server.net.sip_addr(),
        );
        udp.transact(&text, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no answer to SUBSCRIBE {extra}"))
    };
    let bad_event = ask("1001", "Event: presence\r\n");
    assert_eq!(bad_event.status, 489, "{}", bad_event.raw);
    assert_eq!(bad_event.header("Allow-Events"), Some("message-summary"));
    let brief = ask("1001", "Event: message-summary\r\nExpires: 10\r\n");
    assert_eq!(brief.status, 423, "{}", brief.raw);
    assert_eq!(brief.header("Min-Expires"), Some("60"));
    let elsewhere = ask("2001", "Event: message-summary\r\n");
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.raw);
    let xml = ask(
        "1001",
        "Event: message-summary\r\nAccept: application/pidf+xml\r\n",
    );
    assert_eq!(xml.status, 406, "{}", xml.raw);
    assert!(subscriptions(&server).is_empty());
    // A flood cannot fill the store: 32 subscriptions per mailbox.
    for n in 1..=32 {
        let ok = ask("1002", "Event: message-summary\r\n");
        assert_eq!(ok.status, 200, "subscription {n}: {}", ok.raw);
    }
    let flood = ask("1002", "Event: message-summary\r\n");
    assert_eq!(flood.status, 403, "{}", flood.raw);
    assert_eq!(subscriptions(&server).len(), 32);
    // A refresh in a dialog nobody has: 481.
    let token = common::raw_sip::unique_token();
    let local = udp.local_addr();
    let stray = format!(
        "SUBSCRIBE sip:1001@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{token}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:phone@{local}>;tag=f{token}\r\n\
         To: <sip:1001@{server}>;tag=nobody\r\n\
         Call-ID: {token}@test\r\n\
         CSeq: 5 SUBSCRIBE\r\n\
         Contact: <sip:phone@{local}>\r\n\
         Event: message-summary\r\nContent-Length: 0\r\n\r\n",
        server = server.net.sip_addr(),
    );
    let answer = udp
        .transact(&stray, Duration::from_secs(5))
        .expect("an answer");
    assert_eq!(answer.status, 481, "{}", answer.raw);
}

/// Waits until a UAS SIPp has bound `addr` (UDP).
fn wait_bound(addr: std::net::SocketAddr) {
    let bound = wait_for(Duration::from_secs(5), || {
        std::net::UdpSocket::bind(addr).is_err().then_some(())
    });
    assert!(bound.is_some(), "SIPp did not bind {addr}");
}

/// The port the stand-in PBX listens on, on the test's caller address.
const PBX_PORT: u16 = 5090;

/// Starts the stand-in PBX on the test's caller address.
fn start_pbx(
    server: &Server,
    scenario: &str,
    dir: &Path,
    extra: &[&str],
    calls: u32,
) -> common::sipp::SippRun {
    let setup = common::sipp::SippSetup {
        remote: server.net.sip_addr().to_string(),
        local_ip: server.net.peer_ip.to_string(),
        local_port: PBX_PORT,
        media_port: 6900,
        log_dir: server.dir(),
    };
    let calls = calls.to_string();
    let mut args = vec![
        "-key",
        "dir",
        dir.to_str().expect("UTF-8 path"),
        "-m",
        &calls,
    ];
    args.extend_from_slice(extra);
    let run = common::sipp::SippRun::start(&setup, scenario, &args, Duration::from_secs(90));
    wait_bound(std::net::SocketAddr::new(
        server.net.peer_ip.into(),
        PBX_PORT,
    ));
    run
}

fn pbx_profile(net: &TestNet, keys: &str) -> ServerConfig {
    ServerConfig {
        extra: format!(
            "[mwi]\nnotify = [\"sip:{{mailbox}}@{}:{PBX_PORT}\"]\nmailboxes = [\"1000-1999\"]\n{keys}",
            net.peer_ip
        ),
        ..ServerConfig::default()
    }
}

#[test]
fn unsolicited_notifies_reach_the_pbx_for_its_mailboxes_only() {
    let net = TestNet::allocate();
    let server = Server::start_with(net, pbx_profile(&net, ""));
    let dir = progress_dir(server.dir(), "pbx");
    let progress = dir.join("notifies");
    let pbx = start_pbx(&server, "uas_mwi_pbx.xml", &dir, &[], 2);

    // 2001 is not in [mwi] mailboxes: its message sends nothing, so the
    // first NOTIFY the PBX sees must be 1001's.
    server
        .sipp(SHORT_CALL, &["-s", "2001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    server
        .sipp(SHORT_CALL, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    wait_notifies(&progress, 1, "a message for 1001");
    let listed = server.wait_messages(2, Duration::from_secs(5));
    let id = listed
        .iter()
        .find(|m| field(m, "mailbox") == "1001")
        .map(|m| field(m, "id").to_string())
        .expect("1001's message");
    let saved = server.cli(&["messages", "move", &id, "--to", "saved"]);
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    wait_notifies(&progress, 2, "saved with the CLI");

    let outcome = pbx.wait();
    assert!(
        outcome.successful == 2 && outcome.failed == 0 && outcome.exit_code == Some(0),
        "{}\n{}",
        outcome.errors_log,
        outcome.messages_log
    );
    let notifies = outcome.received("NOTIFY ");
    assert_eq!(notifies.len(), 2);
    for n in &notifies {
        assert_eq!(
            n.start_line(),
            format!("NOTIFY sip:1001@{}:{PBX_PORT} SIP/2.0", net.peer_ip),
            "{}",
            n.text
        );
        let to = header(n, "To").unwrap_or_default();
        assert!(!to.contains("tag="), "out of any dialog: {to}");
        assert_eq!(
            header(n, "Subscription-State").as_deref(),
            Some("terminated")
        );
        assert_eq!(summary(n).account, format!("sip:1001@{}", net.peer_ip));
    }
    assert_eq!(
        lamps(&notifies),
        vec![lamp("yes", "1/0 (0/0)"), lamp("no", "0/1 (0/0)")]
    );
}

/// A call for 1001 while a stand-in PBX running `scenario` challenges the
/// unsolicited NOTIFY: the NOTIFY must come again, as the next request of
/// the same Call-ID, with credentials for the challenge that this test
/// checks with its own digest code (RFC 7616 §3.4.1), and the PBX takes
/// it. Returns the Authorization sent.
fn notify_answers_challenge(scenario: &str, algorithm: &str) -> String {
    let net = TestNet::allocate();
    let server = Server::start_with(
        net,
        pbx_profile(&net, "username = \"vmesh\"\npassword = \"s3cret\"\n"),
    );
    let dir = progress_dir(server.dir(), "pbx");
    let progress = dir.join("notifies");
    let pbx = start_pbx(&server, scenario, &dir, &[], 1);
    server
        .sipp(SHORT_CALL, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    wait_notifies(&progress, 1, "a message for 1001");
    let outcome = pbx.wait();
    outcome.assert_success();
    let notifies = outcome.received("NOTIFY ");
    assert_eq!(notifies.len(), 2, "challenged, then sent again");
    assert!(header(&notifies[0], "Authorization").is_none());
    let challenge = outcome
        .messages()
        .into_iter()
        .find(|m| !m.received && m.start_line().starts_with("SIP/2.0 401"))
        .and_then(|m| header(&m, "WWW-Authenticate"))
        .expect("the PBX's challenge");
    let challenge = common::digest::Challenge::parse(&challenge);
    assert_eq!(challenge.algorithm, algorithm);
    let authorization = header(&notifies[1], "Authorization").expect("Authorization");
    challenge.check(&authorization, "vmesh", "s3cret", "NOTIFY");
    for part in [
        format!("uri=\"sip:1001@{}:{PBX_PORT}\"", net.peer_ip),
        "nc=00000001".to_string(),
        format!("algorithm={algorithm},"),
    ] {
        assert!(
            authorization.contains(&part),
            "{part} not in {authorization}"
        );
    }
    assert_eq!(cseq(&notifies[1]), cseq(&notifies[0]) + 1);
    assert_eq!(
        header(&notifies[0], "Call-ID"),
        header(&notifies[1], "Call-ID")
    );
    assert_eq!(lamps(&notifies[1..]), vec![lamp("yes", "1/0 (0/0)")]);
    authorization
}

#[test]
fn unsolicited_notifies_answer_a_digest_challenge() {
    // Checked twice: by this test, and by SIPp's own digest code (the PBX
    // answers 403 to a wrong response).
    notify_answers_challenge("uas_mwi_pbx_auth.xml", "MD5");
}

#[test]
fn unsolicited_notifies_answer_a_sha_256_challenge() {
    // RFC 8760 spells it SHA-256; a PBX that offers only SHA-256 refuses
    // any other spelling (SIPp cannot check SHA-256: the test does).
    let authorization = notify_answers_challenge("uas_mwi_pbx_auth_sha256.xml", "SHA-256");
    let response = common::digest::params(&authorization)["response"].clone();
    assert_eq!(response.len(), 64, "a SHA-256 digest: {authorization}");
}

#[test]
fn wrong_credentials_are_refused_by_the_pbx() {
    // The check can fail: with the wrong password SIPp's digest check
    // refuses the NOTIFY (403), and vmesh does not loop on it.
    let net = TestNet::allocate();
    let server = Server::start_with(
        net,
        pbx_profile(&net, "username = \"vmesh\"\npassword = \"wrong\"\n"),
    );
    let dir = progress_dir(server.dir(), "pbx");
    let pbx = start_pbx(&server, "uas_mwi_pbx_auth.xml", &dir, &[], 1);
    server
        .sipp(SHORT_CALL, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    let outcome = pbx.wait();
    assert_eq!(
        (outcome.successful, outcome.failed),
        (0, 1),
        "{}",
        outcome.messages_log
    );
    assert!(outcome
        .messages()
        .iter()
        .any(|m| !m.received && m.start_line().starts_with("SIP/2.0 403")));
    let failed = wait_for(Duration::from_secs(5), || {
        server.log().contains("NOTIFY failed").then_some(())
    });
    assert!(failed.is_some(), "{}", server.log_tail());
}

/// A bare SUBSCRIBE for `mailbox` to `to` from `from`; the answer.
fn subscribe_once(
    from: std::net::Ipv4Addr,
    to: std::net::SocketAddr,
    mailbox: &str,
) -> common::SipResponse {
    let udp = common::SipUdp::bind(from, to);
    let token = common::raw_sip::unique_token();
    let local = udp.local_addr();
    let text = format!(
        "SUBSCRIBE sip:{mailbox}@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{token}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:phone@{local}>;tag=f{token}\r\n\
         To: <sip:{mailbox}@{to}>\r\n\
         Call-ID: {token}@test\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:phone@{local}>\r\n\
         Event: message-summary\r\n\
         Expires: 0\r\n\
         Content-Length: 0\r\n\r\n"
    );
    udp.transact(&text, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no answer to SUBSCRIBE for {mailbox}"))
}

#[test]
fn a_message_from_a_peer_lights_the_lamp_at_its_home_only() {
    let mut mesh = MeshNet::allocate(2);
    // Both sites would tell the PBX, but only the home of a mailbox does.
    let pbx_ip = mesh.spare_ip(0);
    for i in 0..2 {
        mesh[i].extra = format!("[mwi]\nnotify = [\"sip:{{mailbox}}@{pbx_ip}:{PBX_PORT}\"]\n");
    }
    let pbx_dir = progress_dir(mesh.dir(), "pbx");
    let pbx = common::sipp::SippRun::start(
        &common::sipp::SippSetup {
            remote: mesh[1].sip_addr().to_string(),
            local_ip: pbx_ip.to_string(),
            local_port: PBX_PORT,
            media_port: 6900,
            log_dir: mesh.dir(),
        },
        "uas_mwi_pbx.xml",
        &[
            "-key",
            "dir",
            pbx_dir.to_str().expect("UTF-8 path"),
            "-m",
            "1",
        ],
        Duration::from_secs(60),
    );
    wait_bound(std::net::SocketAddr::new(pbx_ip.into(), PBX_PORT));
    mesh[1].start();
    mesh[0].start();
    let (a, b) = (&mesh[0], &mesh[1]);

    // Only the home takes subscriptions for the mailbox.
    let elsewhere = subscribe_once(a.caller_ip, a.sip_addr(), "2001");
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.raw);
    assert!(
        elsewhere
            .header("Warning")
            .is_some_and(|w| w.contains("site-b")),
        "{}",
        elsewhere.raw
    );

    let dir = progress_dir(mesh.dir(), "phone-2001");
    let progress = dir.join("notifies");
    let args = subscriber_args("2001", &dir, 3600, 2);
    let phone = b.sipp_start(SUBSCRIBER, &strs(&args), Duration::from_secs(90));
    wait_notifies(&progress, 1, "subscribed at the home");

    // Recorded at site-a, the message travels home to site-b, whose lamp
    // lights when it is stored there.
    a.sipp(SHORT_CALL, &["-s", "2001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    wait_notifies(&progress, 2, "the message arrived home");
    let at_home = b.wait_messages(1, Duration::from_secs(5));
    assert_eq!(field(&at_home[0], "origin"), "site-a");
    assert_eq!(field(&at_home[0], "folder"), "new");

    let outcome = phone.wait();
    let notifies = dialog_notifies(&outcome);
    assert_eq!(
        lamps(&notifies),
        vec![
            lamp("no", "0/0 (0/0)"),
            lamp("yes", "1/0 (0/0)"),
            lamp("yes", "1/0 (0/0)"),
        ]
    );
    assert_eq!(summary(&notifies[1]).account, format!("sip:2001@{}", b.ip));

    // The PBX's one NOTIFY came from the home, not from where the message
    // was recorded.
    let told = pbx.wait();
    told.assert_success();
    let unsolicited = told.received("NOTIFY ");
    assert_eq!(unsolicited.len(), 1);
    let via = header(&unsolicited[0], "Via").unwrap_or_default();
    assert!(via.contains(&format!("{}:5060", b.ip)), "sent by {via}");
    assert_eq!(lamps(&unsolicited), vec![lamp("yes", "1/0 (0/0)")]);
}

#[test]
fn a_subscriber_over_tcp_gets_its_notifies_on_its_connection() {
    let server = Server::start(TestNet::allocate());
    let dir = progress_dir(server.dir(), "phone-tcp");
    let progress = dir.join("notifies");
    let mut args = subscriber_args("1001", &dir, 3600, 2);
    args.extend(["-t".to_string(), "t1".to_string()]);
    let phone = server.sipp_start(SUBSCRIBER, &strs(&args), Duration::from_secs(60));
    wait_notifies(&progress, 1, "subscribed over TCP");
    server
        .sipp(SHORT_CALL, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    wait_notifies(&progress, 2, "a message recorded");
    let notifies = dialog_notifies(&phone.wait());
    assert_eq!(
        lamps(&notifies),
        vec![
            lamp("no", "0/0 (0/0)"),
            lamp("yes", "1/0 (0/0)"),
            lamp("yes", "1/0 (0/0)"),
        ]
    );
    for n in &notifies {
        let via = header(n, "Via").unwrap_or_default();
        assert!(via.starts_with("SIP/2.0/TCP"), "{via}");
    }
}

#[test]
fn a_notify_is_retransmitted_on_udp_until_answered() {
    let server = Server::start(TestNet::allocate());
    let phone = common::SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let local = phone.local_addr();
    let token = common::raw_sip::unique_token();
    let subscribe = format!(
        "SUBSCRIBE sip:1001@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{token}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:phone@{local}>;tag=f{token}\r\n\
         To: <sip:1001@{to}>\r\n\
         Call-ID: {token}@test\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:phone@{local}>\r\n\
         Event: message-summary\r\n\
         Content-Length: 0\r\n\r\n",
        to = server.net.sip_addr(),
    );
    phone.send(subscribe.as_bytes());
    let ok = phone
        .final_response_to("SUBSCRIBE", Duration::from_secs(5))
        .expect("the 200");
    assert_eq!(ok.status, 200, "{}", ok.raw);

    // Not answered: the same NOTIFY again (Timer E), same branch and CSeq.
    let first = phone
        .recv_request(Duration::from_secs(5))
        .expect("the first NOTIFY");
    let sent = Instant::now();
    let again = phone
        .recv_request(Duration::from_secs(5))
        .expect("a retransmission");
    let gap = sent.elapsed();
    assert_eq!(again.method, "NOTIFY");
    assert_eq!(again.header("Via"), first.header("Via"), "same transaction");
    assert_eq!(again.header("CSeq"), first.header("CSeq"));
    assert!(
        gap >= Duration::from_millis(300),
        "retransmitted after {gap:?}"
    );
    phone.send(again.response(200, "OK").as_bytes());

    // Answered: the next NOTIFY is a new transaction with the next CSeq.
    server
        .sipp(SHORT_CALL, &["-s", "1001"], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
    let next = loop {
        let n = phone
            .recv_request(NOTIFY_WAIT)
            .expect("a NOTIFY for the message");
        if n.header("Via") != first.header("Via") {
            break n;
        }
    };
    let number = |r: &common::raw_sip::SipRequest| -> u32 {
        r.header("CSeq")
            .and_then(|c| c.split_whitespace().next()?.parse().ok())
            .expect("CSeq")
    };
    assert_eq!(number(&next), number(&first) + 1);
    assert!(next.body.contains("Messages-Waiting: yes"), "{}", next.raw);
    phone.send(next.response(200, "OK").as_bytes());
}

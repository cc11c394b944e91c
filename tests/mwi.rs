//! Message-waiting lamps end to end (RFC 3842 over RFC 6665): SIPp phones
//! SUBSCRIBE to a mailbox and check every NOTIFY as the mailbox changes
//! (a message recorded, marked heard and deleted with the CLI, one
//! arriving from a peer), subscriptions survive a restart, refresh,
//! unsubscribe and expiry, a dead subscriber is dropped without slowing
//! calls, and a SIPp UAS standing in for a PBX takes unsolicited NOTIFYs,
//! with and without a digest challenge.

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
        assert_eq!(tag(n, "From"), notifier_tag, "NOTIFY outside the dialog:\n{}", n.text);
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
    assert!(heard.status.success(), "{}", String::from_utf8_lossy(&heard.stderr));
    wait_notifies(&progress, 3, "marked heard with the CLI");

    let deleted = server.cli(&["messages", "delete", &id]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
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

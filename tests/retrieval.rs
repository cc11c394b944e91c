//! Owners calling in to listen, end to end through the real binary: a
//! desk phone (tests/common/phone.rs: raw SIP, RTP sent and heard in real
//! time, G.711 decoded by table and Opus by FFmpeg, never by vmesh) calls
//! the retrieval pilots, logs in with a PIN by RFC 4733 or SIP INFO,
//! hears the counts and the messages, saves, deletes, records a greeting;
//! the CLI's JSON, a SIPp phone's message-waiting NOTIFYs and the next
//! caller's greeting show the result.
//!
//! What the phone hears is checked against what it should be: prompts
//! against the clip files (decoded by FFmpeg, put together as the menu
//! says them), messages against the stored audio (the WAV as stored, or
//! an Ogg Opus file decoded by FFmpeg), each found in the received stream
//! by normalized cross-correlation.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::audio::{locate, read_wav_data, read_wav_mono_i16};
use common::phone::{clip, sentence, Heard, Keys, Phone, PhoneCodec, PhoneSetup};
use common::sipp::{SippRun, TracedMessage};
use common::{call_timeout, field, testdata, Server, ServerConfig, TestNet, SPEECH_SHORT_MS};

/// The owner's PIN in these tests.
const PIN: &str = "2580";
/// A 3 s message, left by SIPp for mailbox `-s`.
const SHORT_CALL: &str = "uac_message_short.xml";
/// The MWI phone: subscribe, take N NOTIFYs, unsubscribe.
const SUBSCRIBER: &str = "uac_mwi_subscriber.xml";
/// How long a prompt may take to begin after what starts it.
const PROMPT_WAIT: Duration = Duration::from_secs(10);
/// How long a NOTIFY may take after a change.
const NOTIFY_WAIT: Duration = Duration::from_secs(10);
/// The least NCC of a prompt or message against its reference.
const MIN_NCC: f64 = 0.9;

// ---------------------------------------------------------------------
// Set-up: owners, messages.
// ---------------------------------------------------------------------

/// Runs `vmesh ARGS --profile P` with `stdin` on its standard input.
fn cli_with_input(server: &Server, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmesh"))
        .args(args)
        .arg("--profile")
        .arg(server.profile())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the vmesh CLI");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the PIN");
    child.wait_with_output().expect("the CLI ends")
}

/// `vmesh mailbox add MAILBOX [--pin]`, the PIN on standard input.
fn add_owner(server: &Server, mailbox: &str, pin: Option<&str>) {
    let output = match pin {
        Some(pin) => cli_with_input(
            server,
            &["mailbox", "add", mailbox, "--pin"],
            &format!("{pin}\n"),
        ),
        None => server.cli(&["mailbox", "add", mailbox]),
    };
    assert!(
        output.status.success(),
        "mailbox add {mailbox}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Leaves a 3 s message for `mailbox` with SIPp.
fn leave_message(server: &Server, mailbox: &str) {
    server
        .sipp(SHORT_CALL, &["-s", mailbox], call_timeout(SPEECH_SHORT_MS))
        .assert_success();
}

/// The stored messages, oldest first.
fn messages_oldest_first(server: &Server, count: usize) -> Vec<serde_json::Value> {
    let mut messages = server.wait_messages(count, Duration::from_secs(10));
    assert_eq!(messages.len(), count, "{messages:#?}");
    messages.sort_by(|a, b| field(a, "received_at").cmp(field(b, "received_at")));
    messages
}

/// A stored message's audio as the phone should hear it at `rate`: the
/// WAV as stored (resampled by FFmpeg when its rate differs), or an Ogg
/// Opus message decoded by FFmpeg.
fn stored_audio(server: &Server, message: &serde_json::Value, rate: u32) -> Vec<i16> {
    let id = field(message, "id");
    let raw = server.dir().join(format!("raw-{id}"));
    let output = server.cli(&[
        "messages",
        "export",
        id,
        "--raw",
        "--force",
        "--out",
        raw.to_str().expect("UTF-8 path"),
    ]);
    assert!(
        output.status.success(),
        "export --raw {id}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    ffmpeg_pcm(&raw, rate)
}

/// Any audio file FFmpeg reads, as mono 16-bit PCM at `rate`.
fn ffmpeg_pcm(path: &Path, rate: u32) -> Vec<i16> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-ac", "1", "-ar", &rate.to_string(), "-f", "s16le", "-"])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg cannot run ({e}); scripts/test.sh installs it"));
    assert!(
        output.status.success(),
        "ffmpeg cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

// ---------------------------------------------------------------------
// What the phone hears.
// ---------------------------------------------------------------------

/// Waits until the phone has heard audio up to `until` (vmesh keeps its
/// stream going between prompts, so packets keep arriving), or until the
/// stream has ended (vmesh hung up).
fn heard_until(phone: &Phone, until: Instant) {
    let deadline = until + Duration::from_secs(10);
    loop {
        let last = phone.packets().last().map(|p| p.at);
        match last {
            Some(at) if at >= until => return,
            Some(at) if at.elapsed() > Duration::from_millis(500) => return,
            _ => {}
        }
        assert!(Instant::now() < deadline, "vmesh stopped sending RTP");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn duration_of(samples: usize, rate: u32) -> Duration {
    Duration::from_secs_f64(samples as f64 / f64::from(rate))
}

/// Waits for the next sound after `after` and checks that it is `clips`
/// said one after the other: found by correlation near the sound's start,
/// NCC above [`MIN_NCC`]. Returns when the sentence began and ends.
fn hear(
    phone: &Phone,
    dir: &Path,
    rate: u32,
    after: Instant,
    clips: &[&str],
) -> (Instant, Instant) {
    let reference = sentence(clips, rate);
    let sound = phone.wait_sound(after, PROMPT_WAIT);
    let length = duration_of(reference.len(), rate);
    heard_until(phone, sound + length + Duration::from_millis(300));
    let heard = phone.heard(rate, dir);
    let around = heard.index_at(sound);
    let slack = (rate / 2) as usize;
    let (offset, ncc) = locate(
        &reference,
        &heard.pcm,
        around.saturating_sub(slack),
        around + slack,
    );
    let began = heard.time_of(offset);
    eprintln!(
        "heard {clips:?}: NCC {ncc:.3}, {:.0} ms after the sound began",
        began.saturating_duration_since(sound).as_secs_f64() * 1000.0
    );
    assert!(
        ncc > MIN_NCC,
        "the phone did not hear {clips:?} (NCC {ncc:.3} near the sound at +{:?})",
        sound.saturating_duration_since(phone.answered_at)
    );
    (began, began + length)
}

/// Finds `message` (its audio at the phone's rate) in what the phone heard
/// after `after`; returns where it starts (sample index) and the NCC.
fn find_message(heard: &Heard, reference: &[i16], after: Instant) -> (usize, f64) {
    let from = heard.index_at(after);
    let to = heard.pcm.len().saturating_sub(reference.len());
    assert!(to > from, "the phone has not heard the whole message yet");
    locate(reference, &heard.pcm, from, to)
}

// ---------------------------------------------------------------------
// Message-waiting: a SIPp phone subscribed to the mailbox.
// ---------------------------------------------------------------------

/// A subscribed SIPp phone that takes `notifies` NOTIFYs, then leaves.
struct Lamp {
    run: SippRun,
    progress: PathBuf,
}

impl Lamp {
    fn subscribe(server: &Server, mailbox: &str, notifies: u32) -> Lamp {
        let dir = server.dir().join(format!("lamp-{mailbox}"));
        std::fs::create_dir_all(&dir).expect("the lamp's directory");
        let args = [
            "-s".to_string(),
            mailbox.to_string(),
            "-key".into(),
            "dir".into(),
            dir.to_str().expect("UTF-8 path").into(),
            "-key".into(),
            "expires".into(),
            "3600".into(),
            "-set".into(),
            "notifies".into(),
            notifies.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = server.sipp_start(SUBSCRIBER, &args, Duration::from_secs(180));
        Lamp {
            run,
            progress: dir.join("notifies"),
        }
    }

    /// Waits until the phone has taken `n` NOTIFYs, for `NOTIFY_WAIT`
    /// after `after` (after the change is known to have been made).
    fn wait(&self, n: usize, what: &str, after: Duration) {
        let deadline = Instant::now() + after + NOTIFY_WAIT;
        let seen = || {
            std::fs::read_to_string(&self.progress)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        while seen() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: NOTIFY {n} did not come within {NOTIFY_WAIT:?} ({} so far)",
                seen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `(Messages-Waiting, Voice-Message)` of every NOTIFY, in order.
    fn states(self) -> Vec<(String, String)> {
        let outcome = self.run.wait();
        outcome.assert_success();
        outcome
            .received("NOTIFY ")
            .iter()
            .map(|n| (body_line(n, "Messages-Waiting:"), body_line(n, "Voice-Message:")))
            .collect()
    }
}

fn body_line(notify: &TracedMessage, name: &str) -> String {
    let body = notify.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    body.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("NOTIFY body lacks {name}:\n{}", notify.text))
}

fn lamp(waiting: &str, voice: &str) -> (String, String) {
    (waiting.into(), voice.into())
}

// ---------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------

/// The whole visit: PIN, counts, a message heard to its end (the audio
/// the phone receives is the stored message), saved; the next deleted
/// while its envelope plays; goodbye. The CLI's folders and the lamp's
/// NOTIFYs follow.
#[test]
fn an_owner_logs_in_hears_the_counts_listens_saves_and_deletes() {
    let server = Server::start(TestNet::allocate());
    add_owner(&server, "1001", Some(PIN));
    leave_message(&server, "1001");
    leave_message(&server, "1001");
    let messages = messages_oldest_first(&server, 2);
    let (first, second) = (field(&messages[0], "id"), field(&messages[1], "id"));
    let lamp_phone = Lamp::subscribe(&server, "1001", 3);
    lamp_phone.wait(1, "subscribed", Duration::ZERO);

    let dir = server.dir();
    let mut phone = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(server.net.peer_ip, "*97", "1001"),
    );
    let (_, _) = hear(&phone, dir, 8000, phone.answered_at, &["enter-pin"]);
    let hash = *phone.press(&format!("{PIN}#")).last().unwrap();
    let (_, counts_end) = hear(
        &phone,
        dir,
        8000,
        hash,
        &["you-have", "number-2", "new", "messages"],
    );
    // The main menu follows the counts; 1 interrupts it.
    heard_until(&phone, counts_end + Duration::from_millis(500));
    let one = phone.press("1")[0];
    hear(&phone, dir, 8000, one, &["message-number", "number-1"]);
    // Heard to its end (after its envelope of some 6 s and its 2.6 s), the
    // first message is old: the lamp says so.
    lamp_phone.wait(2, "the first message heard", Duration::from_secs(12));
    let reference = stored_audio(&server, &messages[0], 8000);
    heard_until(&phone, Instant::now() + Duration::from_millis(200));
    let heard = phone.heard(8000, dir);
    let (offset, ncc) = find_message(&heard, &reference, one);
    eprintln!(
        "message {first}: heard {:.2} s after pressing 1, NCC {ncc:.4}",
        heard.time_of(offset).duration_since(one).as_secs_f64()
    );
    assert!(ncc > MIN_NCC, "the phone did not hear the message: NCC {ncc:.3}");

    // 9 saves it; the next one's envelope follows and 7 deletes that one.
    let nine = phone.press("9")[0];
    let (_, saved_end) = hear(&phone, dir, 8000, nine, &["message-saved"]);
    heard_until(&phone, saved_end + Duration::from_millis(800));
    let seven = phone.press("7")[0];
    hear(&phone, dir, 8000, seven, &["message-deleted"]);
    lamp_phone.wait(3, "the second message deleted", Duration::ZERO);
    let hash = phone.press("#")[0];
    hear(&phone, dir, 8000, hash, &["goodbye"]);
    assert!(phone.wait_bye(PROMPT_WAIT), "vmesh did not hang up after goodbye");

    // Saving a heard message changes no count: no NOTIFY for it. The last
    // NOTIFY is the one that ends the subscription.
    assert_eq!(
        lamp_phone.states(),
        [
            lamp("yes", "2/0 (0/0)"),
            lamp("yes", "1/1 (0/0)"),
            lamp("no", "0/1 (0/0)"),
            lamp("no", "0/1 (0/0)")
        ]
    );
    let folder_of = |id: &str, listing: &[serde_json::Value]| {
        listing
            .iter()
            .find(|m| field(m, "id") == id)
            .map(|m| field(m, "folder").to_string())
    };
    let listed = server.messages();
    assert_eq!(folder_of(first, &listed).as_deref(), Some("saved"), "{listed:#?}");
    let deleted = match server.cli_json(&["messages", "list", "--folder", "deleted", "--json"]) {
        serde_json::Value::Array(items) => items,
        other => panic!("not a list: {other}"),
    };
    assert_eq!(folder_of(second, &deleted).as_deref(), Some("deleted"), "{deleted:#?}");
}

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
#[path = "kamailio/proxy.rs"]
mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::audio::{locate, read_wav_data, read_wav_mono_i16};
use common::phone::{clip, ffmpeg_pcm, Heard, Keys, Phone, PhoneCodec, PhoneSetup};
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
/// said one after the other: the sentence is found by correlation from
/// half a second before `after` (it may be an estimate) to a second past
/// the first sound (a key stops a prompt some 40 ms after it is sent, so
/// the end of the prompt it interrupted may come first); then each clip
/// is checked where it should follow the one before (within 5 ms: two
/// decoders may round a clip's length differently by a sample), each with
/// an NCC above [`MIN_NCC`]. Returns when the sentence began and ends.
fn hear(
    phone: &Phone,
    dir: &Path,
    rate: u32,
    after: Instant,
    clips: &[&str],
) -> (Instant, Instant) {
    let parts: Vec<Vec<i16>> = clips.iter().map(|c| clip(c, rate)).collect();
    let reference: Vec<i16> = parts.concat();
    let sound = phone.wait_sound(after, PROMPT_WAIT);
    let length = duration_of(reference.len(), rate);
    let slack = Duration::from_secs(1);
    heard_until(phone, sound + slack + length);
    let heard = phone.heard(rate, dir);
    let from = heard.index_at(after).saturating_sub(rate as usize / 2);
    let to = heard.index_at(sound) + rate as usize;
    let (start, _) = locate(&reference, &heard.pcm, from, to);
    let drift = rate as usize / 200;
    let mut at = start;
    let mut worst = f64::MAX;
    for (name, part) in clips.iter().zip(&parts) {
        if part.iter().all(|&s| s == 0) {
            at += part.len();
            continue;
        }
        let (found, ncc) = locate(part, &heard.pcm, at.saturating_sub(drift), at + drift);
        worst = worst.min(ncc);
        if ncc <= MIN_NCC {
            let kept = dir.join("heard.wav");
            write_wav(&kept, rate, &heard.pcm);
            panic!(
                "the phone did not hear {name:?} of {clips:?} (NCC {ncc:.3} at +{:?}; the \
                 first sound after the key at +{:?} came at +{:?}); what it heard is in {}",
                heard
                    .time_of(found)
                    .saturating_duration_since(phone.answered_at),
                after.saturating_duration_since(phone.answered_at),
                sound.saturating_duration_since(phone.answered_at),
                kept.display()
            );
        }
        at = found + part.len();
    }
    let began = heard.time_of(start);
    eprintln!(
        "heard {clips:?}: least NCC {worst:.3}, {:.0} ms after the first sound",
        began.saturating_duration_since(sound).as_secs_f64() * 1000.0
    );
    (began, began + length)
}

fn write_wav(path: &Path, rate: u32, pcm: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create a WAV");
    for &sample in pcm {
        writer.write_sample(sample).expect("write a sample");
    }
    writer.finalize().expect("finish the WAV");
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
            .map(|n| {
                (
                    body_line(n, "Messages-Waiting:"),
                    body_line(n, "Voice-Message:"),
                )
            })
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
    assert!(
        ncc > MIN_NCC,
        "the phone did not hear the message: NCC {ncc:.3}"
    );

    // 9 saves it; the next one's envelope follows and 7 deletes that one.
    let nine = phone.press("9")[0];
    let (_, saved_end) = hear(&phone, dir, 8000, nine, &["message-saved"]);
    heard_until(&phone, saved_end + Duration::from_millis(800));
    let seven = phone.press("7")[0];
    hear(&phone, dir, 8000, seven, &["message-deleted"]);
    lamp_phone.wait(3, "the second message deleted", Duration::ZERO);
    let hash = phone.press("#")[0];
    hear(&phone, dir, 8000, hash, &["goodbye"]);
    assert!(
        phone.wait_bye(PROMPT_WAIT),
        "vmesh did not hang up after goodbye"
    );

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
    assert_eq!(
        folder_of(first, &listed).as_deref(),
        Some("saved"),
        "{listed:#?}"
    );
    let deleted = match server.cli_json(&["messages", "list", "--folder", "deleted", "--json"]) {
        serde_json::Value::Array(items) => items,
        other => panic!("not a list: {other}"),
    };
    assert_eq!(
        folder_of(second, &deleted).as_deref(),
        Some("deleted"),
        "{deleted:#?}"
    );
}

/// Logs in on a phone that hears `first` as its first prompt; returns
/// when the counts sentence `counts` ended.
fn log_in(phone: &mut Phone, dir: &Path, rate: u32, counts: &[&str]) -> Instant {
    hear(phone, dir, rate, phone.answered_at, &["enter-pin"]);
    let hash = *phone.press(&format!("{PIN}#")).last().unwrap();
    hear(phone, dir, rate, hash, counts).1
}

/// A second address on the test's network, for a caller elsewhere.
fn other_source(net: &TestNet) -> std::net::Ipv4Addr {
    let [a, b, c, _] = net.peer_ip.octets();
    std::net::Ipv4Addr::new(a, b, c, 3)
}

/// Three wrong PINs: "Login incorrect" each time, then goodbye and BYE.
#[test]
fn three_wrong_pins_end_with_goodbye_and_bye() {
    let server = Server::start(TestNet::allocate());
    add_owner(&server, "1001", Some(PIN));
    let dir = server.dir();
    let mut phone = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(server.net.peer_ip, "*98", "5551234"),
    );
    hear(&phone, dir, 8000, phone.answered_at, &["enter-mailbox"]);
    let hash = *phone.press("1001#").last().unwrap();
    hear(&phone, dir, 8000, hash, &["enter-pin"]);
    for attempt in 1..=3 {
        let hash = *phone.press("1357#").last().unwrap();
        if attempt < 3 {
            // Asked for the PIN again, not the mailbox.
            hear(&phone, dir, 8000, hash, &["login-incorrect", "enter-pin"]);
        } else {
            let (_, end) = hear(&phone, dir, 8000, hash, &["login-incorrect", "goodbye"]);
            assert!(phone.wait_bye(PROMPT_WAIT), "no BYE after the goodbye");
            let after = Instant::now().saturating_duration_since(end);
            assert!(
                after < Duration::from_secs(2),
                "BYE {after:?} after the goodbye"
            );
        }
    }
    assert_eq!(server.log().matches("login incorrect").count(), 3);
}

/// A mailbox that has no PIN cannot be logged into: its owner hears the
/// same "Login incorrect" as for a wrong PIN.
#[test]
fn a_mailbox_without_a_pin_cannot_be_logged_into() {
    let server = Server::start(TestNet::allocate());
    add_owner(&server, "1002", None);
    let listed = server.cli_json(&["mailbox", "list", "--json"]);
    assert_eq!(listed[0]["has_pin"], serde_json::json!(false), "{listed}");
    let dir = server.dir();
    let mut phone = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(server.net.peer_ip, "*97", "1002"),
    );
    // The caller's own mailbox exists: the PIN is asked for at once.
    hear(&phone, dir, 8000, phone.answered_at, &["enter-pin"]);
    let hash = *phone.press(&format!("{PIN}#")).last().unwrap();
    hear(&phone, dir, 8000, hash, &["login-incorrect", "enter-pin"]);
    assert!(!server.log().contains("owner logged in"));
    phone.hang_up();
}

/// Three callers at once from one address try nine wrong PINs: five are
/// checked, then the (mailbox, address) pair is locked, and the right PIN
/// from that address is refused too; from another address it works.
#[test]
fn the_lockout_holds_under_a_burst_from_one_address_but_not_another() {
    let server = Server::start(TestNet::allocate());
    add_owner(&server, "1001", Some(PIN));
    let dir = server.dir().to_path_buf();
    std::thread::scope(|scope| {
        for caller in 0..3 {
            let server = &server;
            scope.spawn(move || {
                let mut phone = Phone::call(
                    server.net.sip_addr(),
                    PhoneSetup::new(server.net.peer_ip, "*98", &format!("555000{caller}")),
                );
                let mut after = *phone.press("1001#").last().unwrap();
                for _ in 0..3 {
                    phone.wait_sound(after, PROMPT_WAIT);
                    after = *phone.press("9753#").last().unwrap();
                }
                assert!(
                    phone.wait_bye(Duration::from_secs(30)),
                    "caller {caller}: no BYE"
                );
            });
        }
    });
    let locks = server
        .log()
        .matches("too many failed logins: locking this mailbox for this source address")
        .count();
    assert_eq!(locks, 1, "one lock for the pair");
    let checked = server.log().matches("login incorrect").count();
    let refused = server
        .log()
        .matches("login refused: this mailbox is locked")
        .count();
    eprintln!("burst: {checked} PINs checked and wrong, {refused} refused unchecked");
    assert_eq!(checked, 5, "only five PINs are checked before the lock");
    // Each caller still trying when the lock came is refused once, told
    // so and hung up on.
    assert!((1..=3).contains(&refused), "{refused} refused");

    let mut locked = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(server.net.peer_ip, "*97", "1001"),
    );
    hear(&locked, &dir, 8000, locked.answered_at, &["enter-pin"]);
    let hash = *locked.press(&format!("{PIN}#")).last().unwrap();
    hear(&locked, &dir, 8000, hash, &["too-many-attempts", "goodbye"]);
    assert!(locked.wait_bye(PROMPT_WAIT), "no BYE for the locked pair");

    let mut elsewhere = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(other_source(&server.net), "*97", "1001"),
    );
    log_in(&mut elsewhere, &dir, 8000, &["you-have", "no", "messages"]);
    elsewhere.hang_up();
}

/// `*97` takes the caller's own mailbox (P-Asserted-Identity before From)
/// when it exists; `*98` always asks, and then logs in like `*97`.
#[test]
fn star97_takes_the_callers_mailbox_and_star98_asks_for_it() {
    let server = Server::start(TestNet::allocate());
    add_owner(&server, "1001", Some(PIN));
    let dir = server.dir();
    let first_prompt = |user: &str, from: &str, headers: &[&str], clip: &str| {
        let mut setup = PhoneSetup::new(server.net.peer_ip, user, from);
        setup.headers = headers.iter().map(|h| h.to_string()).collect();
        let phone = Phone::call(server.net.sip_addr(), setup);
        hear(&phone, dir, 8000, phone.answered_at, &[clip]);
        phone.hang_up();
    };
    first_prompt("*97", "1001", &[], "enter-pin");
    first_prompt("voicemail-main", "1001", &[], "enter-pin");
    first_prompt(
        "*97",
        "anonymous",
        &["P-Asserted-Identity: <sip:1001@pbx.example.com>"],
        "enter-pin",
    );
    first_prompt("*97", "5551234", &[], "enter-mailbox");
    first_prompt("*98", "1001", &[], "enter-mailbox");

    let mut phone = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(server.net.peer_ip, "*98", "1001"),
    );
    hear(&phone, dir, 8000, phone.answered_at, &["enter-mailbox"]);
    let hash = *phone.press("1001#").last().unwrap();
    hear(&phone, dir, 8000, hash, &["enter-pin"]);
    let hash = *phone.press(&format!("{PIN}#")).last().unwrap();
    hear(&phone, dir, 8000, hash, &["you-have", "no", "messages"]);
    phone.hang_up();
}

/// A phone without telephone-event sends its keys as SIP INFO: the PIN
/// as `application/dtmf-relay`, the menu keys as `application/dtmf`.
#[test]
fn keys_by_sip_info_work_where_rfc4733_is_not_offered() {
    let server = Server::start(TestNet::allocate());
    add_owner(&server, "1001", Some(PIN));
    leave_message(&server, "1001");
    let dir = server.dir();
    let mut setup = PhoneSetup::new(server.net.peer_ip, "*97", "1001");
    setup.keys = Keys::InfoRelay;
    let mut phone = Phone::call(server.net.sip_addr(), setup);
    let counts_end = log_in(
        &mut phone,
        dir,
        8000,
        &["you-have", "number-1", "new", "message"],
    );
    heard_until(&phone, counts_end + Duration::from_millis(300));
    phone.set_keys(Keys::InfoDtmf);
    let one = phone.press("1")[0];
    hear(&phone, dir, 8000, one, &["message-number", "number-1"]);
    phone.hang_up();
}

/// Options, 1: the unavailable greeting recorded after the tone until `#`,
/// played back as recorded, accepted; the next caller hears it.
#[test]
fn a_greeting_recorded_by_phone_is_what_the_next_caller_hears() {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            prompts: true,
            ..ServerConfig::default()
        },
    );
    add_owner(&server, "1001", Some(PIN));
    let dir = server.dir();
    let mut phone = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(server.net.peer_ip, "*97", "1001"),
    );
    let counts_end = log_in(&mut phone, dir, 8000, &["you-have", "no", "messages"]);
    heard_until(&phone, counts_end + Duration::from_millis(300));
    let zero = phone.press("0")[0];
    let (_, options_end) = hear(&phone, dir, 8000, zero, &["mailbox-options"]);
    heard_until(&phone, options_end);
    let one = phone.press("1")[0];
    let (_, instructions_end) = hear(&phone, dir, 8000, one, &["record-unavailable"]);
    // The tone, then the recording: speak once vmesh is quiet again.
    let tone = phone.wait_sound(instructions_end - Duration::from_millis(100), PROMPT_WAIT);
    let quiet = phone.wait_quiet(tone, Duration::from_millis(100), PROMPT_WAIT);
    eprintln!(
        "greeting: tone of {} ms",
        quiet.duration_since(tone).as_millis()
    );
    let speech = read_wav_data(&testdata("speech-short-ulaw.wav"));
    let spoken = phone.speak(common::phone::ulaw_frames(&speech));
    let hash = phone.press("#")[0];
    // vmesh plays the take back, without the silence that ended it.
    let (_, mut said) = read_wav_mono_i16(&testdata("speech-short-ulaw.wav"));
    let trailing = vmesh::audio::silence::trailing_silence(
        &said,
        8000,
        vmesh::audio::silence::DEFAULT_THRESHOLD_DBFS,
    );
    said.truncate(said.len() - trailing);
    let sound = phone.wait_sound(hash, PROMPT_WAIT);
    heard_until(&phone, sound + duration_of(said.len(), 8000));
    let heard = phone.heard(8000, dir);
    let from = heard.index_at(hash);
    // Within 3 s: the take opens with the second or so before the owner
    // spoke.
    let (offset, ncc) = locate(&said, &heard.pcm, from, from + 24_000);
    let take_at = heard.time_of(offset);
    eprintln!(
        "greeting: played back {:.0} ms after #, NCC {ncc:.4}",
        take_at.duration_since(hash).as_secs_f64() * 1000.0
    );
    assert!(
        ncc > MIN_NCC,
        "the take played back is not what was said: NCC {ncc:.3}"
    );
    assert!(spoken < hash);
    let take_end = take_at + duration_of(said.len(), 8000);
    let (_, review_end) = hear(&phone, dir, 8000, take_end, &["review-greeting"]);
    heard_until(&phone, review_end);
    let accept = phone.press("1")[0];
    hear(&phone, dir, 8000, accept, &["greeting-saved"]);
    phone.hang_up();
    let greetings = server.cli_json(&["mailbox", "greetings", "1001", "--json"]);
    assert_eq!(
        greetings[0]["kind"],
        serde_json::json!("unavailable"),
        "{greetings}"
    );

    // The next caller leaves a message for 1001 and hears the greeting.
    let caller = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(server.net.peer_ip, "1001", "5551234"),
    );
    let sound = caller.wait_sound(caller.answered_at, PROMPT_WAIT);
    heard_until(
        &caller,
        sound + duration_of(said.len(), 8000) + Duration::from_secs(2),
    );
    let heard = caller.heard(8000, dir);
    write_wav(&dir.join("next-caller.wav"), 8000, &heard.pcm);
    let from = heard.index_at(caller.answered_at);
    let (offset, ncc) = locate(&said, &heard.pcm, from, from + 24_000);
    eprintln!(
        "greeting: the next caller hears it {:.0} ms after the answer, NCC {ncc:.4}",
        heard
            .time_of(offset)
            .duration_since(caller.answered_at)
            .as_secs_f64()
            * 1000.0
    );
    assert!(
        ncc > MIN_NCC,
        "the next caller did not hear the new greeting: NCC {ncc:.3}"
    );
    caller.hang_up();
}

/// A message recorded from an Opus call at 16 kHz and stored as Ogg
/// Opus plays on a PCMU phone.
#[test]
fn an_opus_stored_wideband_message_plays_on_a_pcmu_call() {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            codecs: vec!["OPUS".into(), "PCMU".into()],
            storage_format: Some("opus".into()),
            ..ServerConfig::default()
        },
    );
    add_owner(&server, "1001", Some(PIN));
    let (rate, speech) = read_wav_mono_i16(&testdata("speech-16k.wav"));
    assert_eq!(rate, 16_000);
    let mut setup = PhoneSetup::new(server.net.peer_ip, "1001", "5551234");
    setup.codec = PhoneCodec::Opus;
    let caller = Phone::call(server.net.sip_addr(), setup);
    caller.speak(common::phone::opus_frames(&speech[..16_000 * 4]));
    caller.hang_up();
    let message = messages_oldest_first(&server, 1).remove(0);
    assert_eq!(
        (field(&message, "format"), field(&message, "codec")),
        ("opus", "OPUS"),
        "{message}"
    );
    assert_eq!(
        message["sample_rate"],
        serde_json::json!(16_000),
        "{message}"
    );
    listen_to_the_message(&server, PhoneCodec::Pcmu, &message);
}

/// A message recorded from a PCMU call (an 8 kHz WAV) plays on an Opus
/// phone.
#[test]
fn a_pcmu_recorded_message_plays_on_an_opus_call() {
    let server = Server::start_with(
        TestNet::allocate(),
        ServerConfig {
            codecs: vec!["OPUS".into(), "PCMU".into()],
            ..ServerConfig::default()
        },
    );
    add_owner(&server, "1001", Some(PIN));
    leave_message(&server, "1001");
    let message = messages_oldest_first(&server, 1).remove(0);
    assert_eq!(
        (field(&message, "format"), field(&message, "codec")),
        ("wav", "PCMU"),
        "{message}"
    );
    listen_to_the_message(&server, PhoneCodec::Opus, &message);
}

/// Logs in on a `codec` phone, listens to the one message and checks it
/// against the stored audio.
fn listen_to_the_message(server: &Server, codec: PhoneCodec, message: &serde_json::Value) {
    let dir = server.dir();
    let mut setup = PhoneSetup::new(server.net.peer_ip, "*97", "1001");
    setup.codec = codec;
    let mut phone = Phone::call(server.net.sip_addr(), setup);
    // What the phone hears at its codec's rate: G.711 narrowband, Opus
    // wideband (where two generations of Opus keep prompts above 0.96).
    let rate = match codec {
        PhoneCodec::Pcmu => 8000,
        PhoneCodec::Opus => 16_000,
    };
    let counts_end = log_in(
        &mut phone,
        dir,
        rate,
        &["you-have", "number-1", "new", "message"],
    );
    heard_until(&phone, counts_end + Duration::from_millis(300));
    let one = phone.press("1")[0];
    let (_, _) = hear(&phone, dir, rate, one, &["message-number", "number-1"]);
    let reference = stored_audio(server, message, rate);
    // The envelope takes about 10 s; the message follows.
    heard_until(
        &phone,
        one + Duration::from_secs(12) + duration_of(reference.len(), rate),
    );
    let heard = phone.heard(rate, dir);
    let (offset, ncc) = find_message(&heard, &reference, one);
    eprintln!(
        "{codec:?} phone: message {} heard {:.2} s after 1, NCC {ncc:.4}",
        field(message, "id"),
        heard.time_of(offset).duration_since(one).as_secs_f64()
    );
    assert!(
        ncc > MIN_NCC,
        "the {codec:?} phone did not hear the message: NCC {ncc:.3}"
    );
    phone.hang_up();
}

/// A prompt folder that lacks a clip keeps the server from starting,
/// with the clip named: owners' calls would otherwise be silent.
#[test]
fn the_server_refuses_to_start_without_its_prompts() {
    let net = TestNet::allocate();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let prompts = dir.path().join("prompts");
    std::fs::create_dir_all(prompts.join("en")).expect("an empty prompt folder");
    let config = ServerConfig {
        extra: format!(
            "[retrieval]\nprompts_dir = {:?}\n",
            prompts.display().to_string()
        ),
        ..ServerConfig::default()
    };
    let profile = dir.path().join("profile.toml");
    std::fs::write(
        &profile,
        config.profile_toml(&net, &dir.path().join("data")),
    )
    .expect("write the profile");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmesh"))
        .arg("serve")
        .arg("--profile")
        .arg(&profile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmesh serve");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for vmesh") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("vmesh serve kept running without its prompts");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("vmesh's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "vmesh serve succeeded: {stderr}");
    assert!(
        stderr.contains("prompt you-have") && stderr.contains("you-have.opus"),
        "the error names the missing clip: {stderr}"
    );
}

/// Behind Kamailio (sip-profiles/kamailio/voicemail.cfg): `*97` and
/// `8500` (vmesh's pilot `voicemail-main`) reach the owner's menu through
/// the proxy, which Record-Routes, so the keys, the ACK and the BYE take
/// the same way.
#[test]
fn owners_call_in_through_kamailio() {
    let server = Server::start(TestNet::allocate());
    add_owner(&server, "1001", Some(PIN));
    let net = server.net;
    let listen = std::net::SocketAddrV4::new(net.ip, 5080);
    let _kamailio = proxy::Kamailio::start(
        proxy::KamailioConfig {
            listen,
            phone: std::net::SocketAddr::from((net.peer_ip, 5090)),
            vmesh: net.sip_addr(),
            no_answer_ms: 2000,
            pilot: false,
            registrar: None,
        },
        server.dir(),
    );
    let dir = server.dir();
    let via_proxy = std::net::SocketAddr::V4(listen);
    let mut phone = Phone::call(via_proxy, PhoneSetup::new(net.peer_ip, "*97", "1001"));
    log_in(&mut phone, dir, 8000, &["you-have", "no", "messages"]);
    phone.hang_up();
    let main = Phone::call(via_proxy, PhoneSetup::new(net.peer_ip, "8500", "1001"));
    hear(&main, dir, 8000, main.answered_at, &["enter-pin"]);
    main.hang_up();
    let log = server.log();
    assert_eq!(log.matches("owner calling in").count(), 2, "{log}");
}

/// A server told to stop ends an owner's call with BYE, and exits 0.
#[test]
fn a_stopping_server_hangs_up_on_owners() {
    let mut server = Server::start(TestNet::allocate());
    add_owner(&server, "1001", Some(PIN));
    let dir = server.dir().to_path_buf();
    let mut phone = Phone::call(
        server.net.sip_addr(),
        PhoneSetup::new(server.net.peer_ip, "*97", "1001"),
    );
    log_in(&mut phone, &dir, 8000, &["you-have", "no", "messages"]);
    server.send_sigterm();
    assert!(
        phone.wait_bye(Duration::from_secs(10)),
        "no BYE from a stopping server"
    );
    let status = server.wait_exit();
    assert!(status.success(), "vmesh exited with {status}");
}

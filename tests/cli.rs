//! The operator's CLI on a real data directory: list, show, export, delete
//! (JSON and human output), its errors, and `vmesh check` on profiles.

mod common;

use std::time::Duration;

use common::{
    assert_short_speech_recorded, cli, field, number, Server, TestNet, SPEECH_SHORT_ULAW,
};

const FIELDS: [&str; 18] = [
    "id",
    "mailbox",
    "caller",
    "caller_name",
    "called",
    "reason",
    "received_at",
    "duration_ms",
    "codec",
    "format",
    "sample_rate",
    "size_bytes",
    "sha256",
    "folder",
    "deleted_at",
    "partial",
    "origin",
    "call_id",
];

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A server holding one 3 s message for mailbox 1001.
fn server_with_a_message() -> (Server, serde_json::Value) {
    let server = Server::start(TestNet::allocate());
    server.leave_short_message("1001");
    let mut messages = server.wait_messages(1, Duration::from_secs(5));
    assert_eq!(messages.len(), 1, "{messages:?}");
    (server, messages.remove(0))
}

#[test]
fn list_show_export_delete() {
    let (server, message) = server_with_a_message();
    for key in FIELDS {
        assert!(
            message.get(key).is_some(),
            "list --json lacks {key}: {message}"
        );
    }
    let id = field(&message, "id").to_string();
    assert_eq!(field(&message, "mailbox"), "1001");
    assert_eq!(field(&message, "reason"), "user-busy");
    let sha = field(&message, "sha256");
    assert!(
        sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
        "sha256 is 64 hex digits: {sha}"
    );
    assert!(number(&message, "size_bytes") > 0);

    // Filter by mailbox, and --data gives the same as --profile.
    let data = server.data_dir();
    let data = data.to_str().expect("UTF-8 path");
    let listed = |mailbox: &str| {
        let output = cli(&[
            "messages",
            "list",
            "--mailbox",
            mailbox,
            "--json",
            "--data",
            data,
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let value: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("list --json prints JSON");
        value.as_array().map(Vec::len).expect("an array")
    };
    assert_eq!(listed("1001"), 1);
    assert_eq!(listed("1002"), 0);

    // Human output names the message.
    let output = server.cli(&["messages", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&id[..8]) && text.contains("1001"), "{text}");

    // show --json describes the same message.
    let shown = server.cli_json(&["messages", "show", &id, "--json"]);
    assert_eq!(field(&shown, "id"), id);
    assert_eq!(field(&shown, "sha256"), sha);
    assert_eq!(field(&shown, "call_id"), field(&message, "call_id"));

    // export writes the audio as a WAV file.
    assert_short_speech_recorded(&server, &message);

    // delete moves it to the deleted folder: out of the default listing,
    // still shown, and its audio kept until it is purged.
    let output = server.cli(&["messages", "delete", &id]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(server.messages().is_empty());
    let shown = server.cli_json(&["messages", "show", &id, "--json"]);
    assert_eq!(field(&shown, "folder"), "deleted");
    assert!(server.export(&id).exists());
}

#[test]
fn unknown_ids_fail_with_a_message_on_stderr() {
    let server = Server::start(TestNet::allocate());
    let unknown = "00000000-0000-4000-8000-000000000000";
    let out = server.dir().join("nothing.wav");
    let out = out.to_str().expect("UTF-8 path");
    for args in [
        vec!["messages", "show", unknown, "--json"],
        vec!["messages", "export", unknown, "--out", out],
        vec!["messages", "delete", unknown],
    ] {
        let output = server.cli(&args);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(
            stderr(&output).contains(unknown),
            "{args:?}: stderr should name the id: {}",
            stderr(&output)
        );
        if args.contains(&"--json") {
            // A JSON consumer must not mistake an error for a result.
            assert!(
                serde_json::from_slice::<serde_json::Value>(&output.stdout).is_err(),
                "{args:?}: an error must not print a JSON document on stdout"
            );
        }
    }
    assert!(!server.dir().join("nothing.wav").exists());
}

#[test]
fn check_accepts_a_good_profile_and_names_file_and_key_of_a_bad_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n[media]\nrtp_port_min = 30000\nrtp_port_max = 30099\n",
    )
    .expect("write profile");
    let output = cli(&["check", "--profile", good.to_str().expect("UTF-8 path")]);
    assert!(
        output.status.success(),
        "a good profile: {}",
        stderr(&output)
    );

    let cases = [
        (
            "wrong-type.toml",
            "[media]\nrtp_port_min = \"low\"\n",
            "rtp_port_min",
        ),
        (
            "bad-range.toml",
            "[media]\nrtp_port_min = 30100\nrtp_port_max = 30000\n",
            "rtp_port",
        ),
        (
            "bad-listen.toml",
            "[sip]\nlisten = [\"carrier-pigeon:1\"]\n",
            "listen",
        ),
    ];
    for (name, text, key) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write profile");
        let output = cli(&["check", "--profile", path.to_str().expect("UTF-8 path")]);
        let message = stderr(&output);
        assert!(!output.status.success(), "{name} must be refused");
        assert!(
            message.contains(name),
            "{name}: stderr should name the file: {message}"
        );
        assert!(
            message.contains(key),
            "{name}: stderr should name {key}: {message}"
        );
    }
}

/// `messages list --folder FOLDER --json` at `server`.
fn in_folder(server: &Server, folder: &str) -> Vec<serde_json::Value> {
    match server.cli_json(&["messages", "list", "--folder", folder, "--json"]) {
        serde_json::Value::Array(items) => items,
        other => panic!("list --folder {folder} is not an array: {other}"),
    }
}

/// Runs a folder command with `--json` and returns the message it prints.
fn moved(server: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    server.cli_json(&all)
}

#[test]
fn folders_move_mark_delete_and_restore() {
    let (server, message) = server_with_a_message();
    let id = field(&message, "id").to_string();
    assert_eq!(field(&message, "folder"), "new");
    assert!(message["deleted_at"].is_null());
    assert_eq!(in_folder(&server, "new").len(), 1);
    assert!(in_folder(&server, "old").is_empty());

    let heard = moved(&server, &["messages", "mark", &id[..8], "--heard"]);
    assert_eq!(field(&heard, "folder"), "old");
    assert_eq!(in_folder(&server, "old").len(), 1);
    assert!(in_folder(&server, "new").is_empty());
    let unheard = moved(&server, &["messages", "mark", &id, "--new"]);
    assert_eq!(field(&unheard, "folder"), "new");
    let saved = moved(&server, &["messages", "move", &id, "--to", "saved"]);
    assert_eq!(field(&saved, "folder"), "saved");
    // Saved is heard already: marking it heard keeps it saved.
    let still = moved(&server, &["messages", "mark", &id, "--heard"]);
    assert_eq!(field(&still, "folder"), "saved");

    let deleted = moved(&server, &["messages", "delete", &id]);
    assert_eq!(field(&deleted, "folder"), "deleted");
    assert!(deleted["deleted_at"].is_string(), "{deleted}");
    assert!(
        server.messages().is_empty(),
        "deleted is out of the default list"
    );
    assert_eq!(in_folder(&server, "deleted").len(), 1);
    // Human output says the folder.
    let text = server.cli(&["messages", "list", "--folder", "deleted"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("deleted"));

    // Only restore applies to a deleted message; it goes back to saved.
    let refused = server.cli(&["messages", "mark", &id, "--heard"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("restore"), "{}", stderr(&refused));
    let restored = moved(&server, &["messages", "restore", &id]);
    assert_eq!(field(&restored, "folder"), "saved");
    assert!(restored["deleted_at"].is_null());
    let again = server.cli(&["messages", "restore", &id]);
    assert!(
        !again.status.success(),
        "restoring a message that is not deleted"
    );
    assert!(stderr(&again).contains("not deleted"), "{}", stderr(&again));
    // Its audio was kept all along.
    assert_short_speech_recorded(&server, &restored);
}

#[test]
fn folder_commands_refuse_bad_input_with_a_message() {
    let (server, message) = server_with_a_message();
    let id = field(&message, "id").to_string();
    let unknown = "00000000-0000-4000-8000-000000000000";
    for args in [
        vec!["messages", "mark", unknown, "--heard"],
        vec!["messages", "move", unknown, "--to", "saved"],
        vec!["messages", "delete", unknown],
        vec!["messages", "restore", unknown],
    ] {
        let output = server.cli(&args);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(
            stderr(&output).contains(unknown),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // A folder that does not exist, one `move` may not go to, no mark.
    for (args, words) in [
        (vec!["messages", "list", "--folder", "archive"], "archive"),
        (vec!["messages", "move", &id, "--to", "deleted"], "deleted"),
        (vec!["messages", "move", &id, "--to", "trash"], "trash"),
        (vec!["messages", "mark", &id], "--heard"),
        (vec!["messages", "mark", &id, "--heard", "--new"], "--new"),
    ] {
        let output = server.cli(&args);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(
            stderr(&output).contains(words),
            "{args:?}: stderr should name {words}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?} printed on stdout");
    }
    // Nothing changed.
    let shown = server.cli_json(&["messages", "show", &id, "--json"]);
    assert_eq!(field(&shown, "folder"), "new");
}

/// A display name that would act on a terminal printed raw: it sets the
/// window title, clears the screen and colours what follows.
const HOSTILE_NAME: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mEvil\u{202e}\u{1b}[0m";

/// Leaves a 2 s message for mailbox 1001 from a caller named `name`, by a
/// raw INVITE (SIPp cannot send control characters in a header).
fn call_with_display_name(server: &Server, name: &str) -> serde_json::Value {
    use common::dialog::Dialog;
    use common::media::{sdp, sdp_audio_addr, RtpSender};
    use common::raw_sip::request;
    let udp = common::SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let mut rtp = RtpSender::bind(server.net.peer_ip);
    let body = sdp(rtp.local_addr(), &[(0, "PCMU/8000")]);
    let invite = request(
        "INVITE",
        &format!("sip:1001@{}", server.net.sip_addr()),
        udp.local_addr(),
        "UDP",
        &["Content-Type: application/sdp"],
        &body,
    )
    .replacen("From: <sip:", &format!("From: \"{name}\" <sip:"), 1);
    let ok = udp
        .transact(&invite, Duration::from_secs(3))
        .expect("an answer to the INVITE");
    assert_eq!(ok.status, 200, "{}", ok.raw);
    let media = sdp_audio_addr(&ok.body).expect("an audio address in the answer");
    let dialog = Dialog::from_2xx(&ok, udp.local_addr(), "UDP");
    udp.send(dialog.ack(None).as_bytes());
    let mut speech = common::audio::read_wav_data(&common::testdata(SPEECH_SHORT_ULAW));
    speech.truncate(2 * 8000);
    rtp.stream(media, 0, &speech);
    udp.send(dialog.bye().as_bytes());
    let mut messages = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(messages.len(), 1, "{messages:?}");
    messages.remove(0)
}

#[test]
fn human_output_escapes_control_characters_and_json_keeps_them() {
    let server = Server::start(TestNet::allocate());
    let message = call_with_display_name(&server, HOSTILE_NAME);
    // JSON is exact: what the INVITE said.
    assert_eq!(field(&message, "caller_name"), HOSTILE_NAME);
    let id = field(&message, "id").to_string();
    for args in [
        vec!["messages", "list"],
        vec!["messages", "show", id.as_str()],
    ] {
        let output = server.cli(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = String::from_utf8(output.stdout).expect("UTF-8 output");
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "{args:?} printed control characters: {text:?}"
        );
        assert!(
            text.contains("\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mEvil\\u{202e}\\x1b[0m"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn export_keeps_an_existing_file_unless_forced_and_never_follows_a_symlink() {
    let (server, message) = server_with_a_message();
    let id = field(&message, "id").to_string();
    let dir = server.dir();
    let export = |out: &std::path::Path, force: bool| {
        let mut args = vec!["messages", "export", id.as_str(), "--out"];
        args.push(out.to_str().expect("UTF-8 path"));
        if force {
            args.push("--force");
        }
        server.cli(&args)
    };

    let out = dir.join("kept.wav");
    std::fs::write(&out, b"precious").unwrap();
    let output = export(&out, false);
    assert!(!output.status.success(), "overwrote without --force");
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let output = export(&out, true);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(std::fs::read(&out).unwrap().starts_with(b"RIFF"));

    // A link planted where the export goes, to a file the operator can
    // write: neither form writes through it.
    let target = dir.join("victim");
    std::fs::write(&target, b"victim").unwrap();
    let link = dir.join("link.wav");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for force in [false, true] {
        let output = export(&link, force);
        assert!(
            !output.status.success(),
            "wrote through a symlink (force {force})"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"victim");
    }
    assert!(stderr(&export(&link, true)).contains("symbolic link"));
    // A dangling link does not create its target either.
    let dangling = dir.join("dangling.wav");
    std::os::unix::fs::symlink(dir.join("created-through-link"), &dangling).unwrap();
    assert!(!export(&dangling, false).status.success());
    assert!(!export(&dangling, true).status.success());
    assert!(!dir.join("created-through-link").exists());
}

#[test]
fn a_profile_error_is_said_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[sip]\nmax_calls = 0\n").unwrap();
    let path = path.to_str().expect("UTF-8 path");
    for args in [
        vec!["check", "--profile", path],
        vec!["messages", "list", "--profile", path],
    ] {
        let output = cli(&args);
        assert!(!output.status.success());
        let text = stderr(&output);
        assert_eq!(
            text.matches("sip.max_calls").count(),
            1,
            "{args:?} said it more than once: {text}"
        );
    }
}

#[test]
fn check_warns_about_a_listener_any_host_may_call() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let open = dir.path().join("open.toml");
    std::fs::write(
        &open,
        "[sip]\nlisten = [\"udp:0.0.0.0:5060\"]\n[media]\nrtp_ip = \"127.0.0.1\"\n",
    )
    .unwrap();
    let output = cli(&["check", "--profile", open.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: udp:0.0.0.0:5060"),
        "{}",
        stderr(&output)
    );
    let guarded = dir.path().join("guarded.toml");
    std::fs::write(
        &guarded,
        "[sip]\nlisten = [\"udp:0.0.0.0:5060\"]\nallow = [\"192.0.2.0/24\"]\n\
         [media]\nrtp_ip = \"127.0.0.1\"\n",
    )
    .unwrap();
    let output = cli(&["check", "--profile", guarded.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
}

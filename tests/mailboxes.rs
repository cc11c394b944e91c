//! Mailbox owners' PINs through the real CLI: `vmesh mailbox add`,
//! `set-pin` (the PIN on standard input, never on the command line) and
//! `list --json`, which never shows the hash; refusals exit non-zero with
//! a message and change nothing.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use vmesh::retrieval::pin::{verify, Pin};
use vmesh::store::Store;

/// Runs `vmesh ARGS`, writing `stdin` to its standard input (a pipe, not a
/// terminal).
fn vmesh(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmesh"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmesh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("vmesh output")
}

fn data_args<'a>(dir: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--data", dir.to_str().expect("UTF-8 path")]);
    all
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts a refusal: non-zero exit and `message` on stderr.
fn refused(output: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a failure: {stderr}");
    assert!(
        stderr.contains(message),
        "expected {message:?} in: {stderr}"
    );
}

fn list_json(dir: &Path) -> serde_json::Value {
    let out = ok(&vmesh(&data_args(dir, &["mailbox", "list", "--json"]), ""));
    serde_json::from_str(&out).expect("one JSON document")
}

fn pin_hash(dir: &Path, mailbox: &str) -> Option<String> {
    Store::open(dir).unwrap().pin_hash(mailbox).unwrap()
}

#[test]
fn add_set_pin_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(&vmesh(
        &data_args(d, &["mailbox", "add", "1001", "--pin"]),
        "2580\n",
    ));
    assert!(out.contains("added mailbox 1001 with a PIN"), "{out}");
    let out = ok(&vmesh(&data_args(d, &["mailbox", "add", "1002"]), ""));
    assert!(out.contains("set-pin 1002"), "{out}");

    let list = list_json(d);
    let rows = list.as_array().expect("an array");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["mailbox"], "1001");
    assert_eq!(rows[0]["has_pin"], true);
    assert!(rows[0]["pin_set_at"].as_str().unwrap().ends_with('Z'));
    assert!(rows[0]["created_at"].is_string());
    assert_eq!(rows[1]["mailbox"], "1002");
    assert_eq!(rows[1]["has_pin"], false);
    assert!(rows[1]["pin_set_at"].is_null());
    let text = list.to_string();
    assert!(!text.contains("argon2") && !text.contains("2580") && !text.contains("hash"));

    // Stored as a salted argon2id hash that verifies the PIN, and nothing else.
    let hash = pin_hash(d, "1001").expect("a hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(verify(&Pin::parse("2580").unwrap(), &hash));
    assert!(!verify(&Pin::parse("2581").unwrap(), &hash));

    // set-pin from standard input, with a CRLF line end.
    let out = ok(&vmesh(
        &data_args(d, &["mailbox", "set-pin", "1002"]),
        "135790\r\n",
    ));
    assert!(out.contains("set the PIN of mailbox 1002"), "{out}");
    assert_eq!(list_json(d)[1]["has_pin"], true);
    assert!(verify(
        &Pin::parse("135790").unwrap(),
        &pin_hash(d, "1002").unwrap()
    ));
    // Replacing a PIN: the old one no longer works.
    ok(&vmesh(
        &data_args(d, &["mailbox", "set-pin", "1001"]),
        "8642\n",
    ));
    let hash = pin_hash(d, "1001").unwrap();
    assert!(verify(&Pin::parse("8642").unwrap(), &hash));
    assert!(!verify(&Pin::parse("2580").unwrap(), &hash));

    // The human listing.
    let out = ok(&vmesh(&data_args(d, &["mailbox", "list"]), ""));
    assert!(
        out.contains("1001") && out.contains("yes") && out.contains("2 mailbox(es)"),
        "{out}"
    );
}

#[test]
fn bad_pins_and_mailboxes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&vmesh(
        &data_args(d, &["mailbox", "add", "1001", "--pin"]),
        "2580\n",
    ));
    let before = pin_hash(d, "1001");
    let set_pin = |pin: &str| vmesh(&data_args(d, &["mailbox", "set-pin", "1001"]), pin);
    refused(&set_pin("1111\n"), "must not be one digit repeated");
    refused(&set_pin("1001\n"), "must not be the mailbox number");
    refused(&set_pin("4567\n"), "consecutive digits");
    refused(&set_pin("9876\n"), "consecutive digits");
    refused(&set_pin("258\n"), "4 to 12 digits");
    refused(&set_pin("1357924680135\n"), "4 to 12 digits");
    refused(&set_pin("25a0\n"), "digits only");
    refused(&set_pin(" 2580\n"), "digits only");
    refused(&set_pin(""), "no PIN on standard input");
    assert_eq!(pin_hash(d, "1001"), before, "the PIN is unchanged");

    refused(
        &vmesh(
            &data_args(d, &["mailbox", "add", "1001", "--pin"]),
            "1357\n",
        ),
        "mailbox 1001 already exists",
    );
    assert_eq!(pin_hash(d, "1001"), before);
    refused(
        &vmesh(&data_args(d, &["mailbox", "set-pin", "1003"]), "1357\n"),
        "no mailbox 1003",
    );
    refused(
        &vmesh(&data_args(d, &["mailbox", "add", "10a1"]), ""),
        "invalid mailbox",
    );
    // A refused --pin adds no mailbox.
    refused(
        &vmesh(
            &data_args(d, &["mailbox", "add", "1004", "--pin"]),
            "0000\n",
        ),
        "one digit repeated",
    );
    let list = list_json(d);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    // A PIN is never taken from the command line.
    refused(
        &vmesh(&data_args(d, &["mailbox", "set-pin", "1001", "2468"]), ""),
        "unexpected argument",
    );
    refused(
        &vmesh(&data_args(d, &["mailbox", "add", "1005", "--pin=2468"]), ""),
        "unexpected value",
    );
    // A data directory that does not exist is reported, not created.
    let missing = d.join("typo");
    refused(
        &vmesh(&data_args(&missing, &["mailbox", "list"]), ""),
        "no data directory",
    );
    assert!(!missing.exists());
}

#[test]
fn a_profile_names_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let profile = dir.path().join("site.toml");
    std::fs::write(
        &profile,
        format!("[server]\ndata_dir = {:?}\n", data.to_str().unwrap()),
    )
    .unwrap();
    let p = profile.to_str().unwrap();
    ok(&vmesh(
        &["mailbox", "add", "2001", "--pin", "--profile", p],
        "97531\n",
    ));
    let out = ok(&vmesh(&["mailbox", "list", "--json", "--profile", p], ""));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["mailbox"], "2001");
    assert!(verify(
        &Pin::parse("97531").unwrap(),
        &pin_hash(&data, "2001").unwrap()
    ));
}

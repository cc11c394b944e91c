//! Independent audio tools the unit tests check vmesh's codecs and files
//! against: `opusinfo` (Debian `opus-tools`), `ffprobe` and `ffmpeg`
//! (Debian `ffmpeg`). scripts/test.sh installs them. A missing tool fails
//! the test that needs it: a check that did not run proves nothing.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `program` with `args`; its standard output and error as text.
/// Panics if it cannot run or fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{program} cannot run ({err}); scripts/test.sh installs it"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{program} failed:\n{text}");
    text
}

/// Runs `program` with `args`, `input` on its standard input; its binary
/// standard output. Panics if it cannot run or fails.
pub fn run_bytes(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{program} cannot run ({err}); scripts/test.sh installs it"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for the tool");
    writer.join().expect("stdin writer");
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

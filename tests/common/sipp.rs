//! Running SIPp scenarios from tests/sipp/ against a test server.
//!
//! Every run is bounded twice: by SIPp's own `-timeout` and by a deadline
//! here after which SIPp is killed, so a scenario that waits for a message
//! that never comes ends the test with a failure instead of hanging it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo_root;

/// What a SIPp run left behind.
#[derive(Debug)]
pub struct SippOutcome {
    /// The scenario file name, for messages.
    pub scenario: String,
    /// Calls SIPp counted as successful.
    pub successful: u64,
    /// Calls SIPp counted as failed.
    pub failed: u64,
    /// SIPp's exit code (0 all calls successful, 1 some failed); `None` if
    /// it was killed at the deadline.
    pub exit_code: Option<i32>,
    /// SIPp's screen output.
    pub stdout: String,
    /// SIPp's error output.
    pub stderr: String,
    /// Every SIP message sent and received (`-trace_msg`).
    pub messages_log: String,
    /// SIPp's error log (`-trace_err`): why a call failed.
    pub errors_log: String,
}

/// One message from SIPp's `-trace_msg` log.
#[derive(Clone, Debug)]
pub struct TracedMessage {
    /// True if SIPp received it, false if SIPp sent it.
    pub received: bool,
    /// The message text (start line, headers, body), CRLF line ends.
    pub text: String,
}

impl TracedMessage {
    /// The start line, e.g. "SIP/2.0 200 OK" or "BYE sip:... SIP/2.0".
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
}

impl SippOutcome {
    /// Panics with everything SIPp said unless exactly one call succeeded.
    pub fn assert_success(&self) {
        assert!(
            self.successful == 1 && self.failed == 0 && self.exit_code == Some(0),
            "SIPp scenario {} did not succeed ({} successful, {} failed, exit {:?})\n\
             --- errors ---\n{}\n--- messages ---\n{}\n--- stderr ---\n{}",
            self.scenario,
            self.successful,
            self.failed,
            self.exit_code,
            self.errors_log,
            self.messages_log,
            self.stderr
        );
    }

    /// The messages of the run in order, parsed from the `-trace_msg` log.
    pub fn messages(&self) -> Vec<TracedMessage> {
        let mut out = Vec::new();
        for block in self
            .messages_log
            .split("\n----------------------------------------------- ")
        {
            let mut lines = block
                .lines()
                .skip_while(|l| !(l.contains("message received") || l.contains("message sent")));
            let Some(header) = lines.next() else { continue };
            let text: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
            out.push(TracedMessage {
                received: header.contains("received"),
                text: text.join("\r\n").trim_end().to_string(),
            });
        }
        out
    }

    /// Messages SIPp received whose start line begins with `prefix`
    /// (e.g. "SIP/2.0 200", "BYE ").
    pub fn received(&self, prefix: &str) -> Vec<TracedMessage> {
        self.messages()
            .into_iter()
            .filter(|m| m.received && m.start_line().starts_with(prefix))
            .collect()
    }
}

/// A SIPp run started in the background (for tests that act on the server
/// while a call is up); killed on drop if still running.
pub struct SippRun {
    child: Option<Child>,
    deadline: Instant,
    scenario: String,
    message_file: PathBuf,
    error_file: PathBuf,
    stdout_file: PathBuf,
    stderr_file: PathBuf,
}

/// Where one SIPp run sends from and writes its logs.
pub struct SippSetup<'a> {
    /// The server's SIP address, "ip:port".
    pub remote: String,
    /// The caller's address.
    pub local_ip: String,
    /// The caller's SIP port.
    pub local_port: u16,
    /// The caller's media port (-mp; rtp_stream and pcap play from it).
    pub media_port: u16,
    /// Directory for the logs.
    pub log_dir: &'a Path,
}

/// Fails the test with a clear message if SIPp is not installed.
pub fn require_sipp() {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "sipp is not installed: the end-to-end tests need it \
         (Debian package sip-tester; scripts/test.sh installs it)"
    );
}

impl SippRun {
    /// Starts `tests/sipp/<scenario>` with `args` appended (e.g. `-s 1001`,
    /// `-t t1`, `-nr`), one call, bounded by `timeout`.
    pub fn start(setup: &SippSetup, scenario: &str, args: &[&str], timeout: Duration) -> SippRun {
        require_sipp();
        let scenario_path = repo_root().join("tests/sipp").join(scenario);
        assert!(
            scenario_path.is_file(),
            "no scenario {}",
            scenario_path.display()
        );
        let stem = format!(
            "sipp-{}-{}",
            setup.local_port,
            scenario.trim_end_matches(".xml")
        );
        let file = |ext: &str| setup.log_dir.join(format!("{stem}.{ext}"));
        let (message_file, error_file) = (file("messages.log"), file("errors.log"));
        let (stdout_file, stderr_file) = (file("stdout"), file("stderr"));
        let secs = timeout.as_secs().max(1);
        let mut command = Command::new("sipp");
        command
            .arg(&setup.remote)
            .arg("-sf")
            .arg(&scenario_path)
            .args(["-i", &setup.local_ip, "-mi", &setup.local_ip])
            .args(["-p", &setup.local_port.to_string()])
            .args(["-mp", &setup.media_port.to_string()])
            .args(["-m", "1", "-nostdin", "-trace_msg", "-trace_err"])
            .arg("-message_file")
            .arg(&message_file)
            .arg("-error_file")
            .arg(&error_file)
            .args(["-timeout", &format!("{secs}s"), "-timeout_error"])
            .args(args)
            // rtp_stream paths in the scenarios are relative to the repository.
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_file).expect("create SIPp stdout file"))
            .stderr(std::fs::File::create(&stderr_file).expect("create SIPp stderr file"));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start sipp: {e}"));
        SippRun {
            child: Some(child),
            deadline: Instant::now() + Duration::from_secs(secs + 5),
            scenario: scenario.to_string(),
            message_file,
            error_file,
            stdout_file,
            stderr_file,
        }
    }

    /// Whether SIPp has exited, without waiting for it.
    pub fn finished(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Waits for SIPp to end (killing it 5 s after its own timeout) and
    /// collects its counts and logs.
    pub fn wait(mut self) -> SippOutcome {
        let status = self.child.take().and_then(|mut child| loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < self.deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    child.kill().ok();
                    child.wait().ok();
                    break None;
                }
            }
        });
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let stdout = read(&self.stdout_file);
        SippOutcome {
            scenario: self.scenario.clone(),
            successful: stat_count(&stdout, "Successful call"),
            failed: stat_count(&stdout, "Failed call"),
            exit_code: status.and_then(|s| s.code()),
            stderr: read(&self.stderr_file),
            messages_log: read(&self.message_file),
            errors_log: read(&self.error_file),
            stdout,
        }
    }
}

impl Drop for SippRun {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// The cumulative count on the last statistics line named `label`.
fn stat_count(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| {
            l.split('|')
                .rev()
                .find_map(|f| f.trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
}

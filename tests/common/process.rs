//! The child processes the tests start (vmesh servers, baresip): signals,
//! bounded waits for their exit, and the tail of their logs for failure
//! messages.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Sends `signal` to a child that has not been reaped; panics if kill(2)
/// fails.
pub fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// Waits up to `within` for `child` to exit and returns its status; past
/// the deadline it is killed and reaped, and the answer is `None`.
pub fn exit_within(mut child: Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A log file's text (lossy UTF-8); empty if it cannot be read.
pub fn read_log(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The last 80 lines of `who`'s log at `path`, headed by its name and
/// file, for failure messages.
pub fn log_tail(who: &str, path: &Path) -> String {
    let log = read_log(path);
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(80);
    format!(
        "--- {who} log ({}), last {} lines ---\n{}",
        path.display(),
        lines.len() - from,
        lines[from..].join("\n")
    )
}

//! One vmesh server process per test: its profile, data directory and log
//! in a temporary directory, started and stopped the ways operators do it.
//!
//! The process is killed when the `Server` is dropped, so a failing test
//! leaves nothing running; on failure the tail of the server's log is
//! printed and the temporary directory is kept for inspection.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::net::{TestNet, RTP_PORT_MAX, RTP_PORT_MIN, SIP_PORT};
use super::process;
use super::raw_sip::options_udp;
use super::sipp::{SippOutcome, SippRun, SippSetup};
use super::{call_timeout, SPEECH_SHORT_MS};

/// How long a server may take to answer its first OPTIONS.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// The profile settings tests change; everything else keeps the defaults.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `[mailboxes] accept`.
    pub accept: Vec<String>,
    /// `[sip] answer_delay_ms`: ring this long before answering.
    pub answer_delay_ms: u64,
    /// `[sip] max_calls`.
    pub max_calls: u32,
    /// `[sip] tcp_idle_timeout_s`; `None` leaves the key out (the profile
    /// default applies).
    pub tcp_idle_timeout_s: Option<u64>,
    /// `[media] codecs`.
    pub codecs: Vec<String>,
    /// `[media] rtp_timeout_s`.
    pub rtp_timeout_s: u64,
    /// `[media] max_message_s`.
    pub max_message_s: u64,
    /// `[media] min_message_ms`.
    pub min_message_ms: u64,
    /// `[media] prompts`: play the greeting and the beep before recording.
    /// Off by default here, so a test's audio is recorded from its start;
    /// the tests of the prompts turn it on.
    pub prompts: bool,
    /// `[media] max_silence_s`; `None` leaves the key out (the profile
    /// default applies).
    pub max_silence_s: Option<u64>,
    /// `[media] keepalive_ms`; `None` leaves the key out (the profile
    /// default applies).
    pub keepalive_ms: Option<u64>,
    /// `[storage] format` ("wav" or "opus"); `None` leaves the section out
    /// (the profile default applies).
    pub storage_format: Option<String>,
    /// Profile text appended as it is, after every section: whole sections
    /// of their own, such as `[mwi]`, or arrays of tables such as
    /// `[[register]]`.
    pub extra: String,
    /// More `[sip]` keys, one `key = value` line each (e.g. `allow`).
    pub sip_lines: Vec<String>,
    /// Where the data directory is; `None` for `data` in the test's
    /// temporary directory.
    pub data_dir: Option<PathBuf>,
    /// The open files limit (soft and hard `RLIMIT_NOFILE`) vmesh runs
    /// under; `None` inherits the test's.
    pub open_files: Option<u64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            accept: vec!["*".into()],
            answer_delay_ms: 0,
            max_calls: 100,
            tcp_idle_timeout_s: None,
            codecs: vec!["PCMU".into(), "PCMA".into()],
            rtp_timeout_s: 30,
            max_message_s: 180,
            min_message_ms: 1000,
            prompts: false,
            max_silence_s: None,
            keepalive_ms: None,
            storage_format: None,
            extra: String::new(),
            sip_lines: Vec::new(),
            data_dir: None,
            open_files: None,
        }
    }
}

impl ServerConfig {
    /// The profile TOML for a server on `net` keeping its data in `data_dir`.
    pub fn profile_toml(&self, net: &TestNet, data_dir: &Path) -> String {
        let list = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let tcp_idle = self
            .tcp_idle_timeout_s
            .map(|s| format!("tcp_idle_timeout_s = {s}\n"))
            .unwrap_or_default();
        let max_silence = self
            .max_silence_s
            .map(|s| format!("max_silence_s = {s}\n"))
            .unwrap_or_default()
            + &self
                .keepalive_ms
                .map(|ms| format!("keepalive_ms = {ms}\n"))
                .unwrap_or_default();
        let storage = self
            .storage_format
            .as_ref()
            .map(|f| format!("\n[storage]\nformat = {f:?}\n"))
            .unwrap_or_default();
        let sip_lines: String = self.sip_lines.iter().map(|l| format!("{l}\n")).collect();
        format!(
            "[server]\nname = \"test-{ip}\"\ndata_dir = {data:?}\n\n\
             [sip]\nlisten = [\"udp:{ip}:{SIP_PORT}\", \"tcp:{ip}:{SIP_PORT}\"]\n\
             answer_delay_ms = {delay}\nmax_calls = {max_calls}\n{tcp_idle}{sip_lines}\n\
             [mailboxes]\naccept = [{accept}]\n\n\
             [media]\nrtp_port_min = {RTP_PORT_MIN}\nrtp_port_max = {RTP_PORT_MAX}\n\
             codecs = [{codecs}]\nrtp_timeout_s = {rtp_timeout}\n\
             max_message_s = {max_message}\nmin_message_ms = {min_message}\n\
             prompts = {prompts}\n{max_silence}{storage}\n{extra}",
            ip = net.ip,
            data = data_dir.display().to_string(),
            delay = self.answer_delay_ms,
            max_calls = self.max_calls,
            accept = list(&self.accept),
            codecs = list(&self.codecs),
            rtp_timeout = self.rtp_timeout_s,
            max_message = self.max_message_s,
            min_message = self.min_message_ms,
            prompts = self.prompts,
            extra = self.extra,
        )
    }
}

/// A running (or stopped) vmesh server of one test.
pub struct Server {
    /// The test's addresses.
    pub net: TestNet,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    next_sipp_port: AtomicU16,
    /// Its open files limit, applied at each start.
    open_files: Option<u64>,
}

impl Server {
    /// Starts a server with the default test profile on `net`.
    pub fn start(net: TestNet) -> Server {
        Server::start_with(net, ServerConfig::default())
    }

    /// Starts a server with `config` on `net` and waits until it answers
    /// OPTIONS with 200 (panics with its log after 10 s).
    pub fn start_with(net: TestNet, config: ServerConfig) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("vmesh-test-")
            .tempdir()
            .expect("create the test's temporary directory");
        let root = dir.path().to_path_buf();
        let data_dir = config.data_dir.clone().unwrap_or_else(|| root.join("data"));
        std::fs::write(
            root.join("profile.toml"),
            config.profile_toml(&net, &data_dir),
        )
        .expect("write the test profile");
        let mut server = Server {
            net,
            dir: Some(dir),
            root,
            data_dir,
            child: None,
            next_sipp_port: AtomicU16::new(0),
            open_files: config.open_files,
        };
        server.spawn();
        server
    }

    /// The profile file the server runs with.
    pub fn profile(&self) -> PathBuf {
        self.root.join("profile.toml")
    }

    /// The server's data directory (`[server] data_dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// The test's temporary directory (exports and SIPp logs go here).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The server's log (its stderr and stdout, over all restarts).
    pub fn log(&self) -> String {
        process::read_log(&self.log_path())
    }

    /// How many lines of the server log contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log().lines().filter(|l| l.contains(text)).count()
    }

    /// Polls the log until `text` shows in at least `count` lines: the
    /// server says it got that far. Panics with the log's tail after
    /// `timeout`.
    pub fn wait_log(&self, text: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log_count(text) < count {
            assert!(
                Instant::now() < deadline,
                "the server did not log {text:?} {count} times within {timeout:?}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Call sessions that answered so far, by the line each logs as it
    /// answers.
    pub fn calls_answered(&self) -> usize {
        self.log_count(ANSWERING_LINE)
    }

    /// Call sessions that are over, by the last line each logs: its message
    /// stored, discarded, or never recorded.
    pub fn calls_ended(&self) -> usize {
        CALL_END_LINES.iter().map(|l| self.log_count(l)).sum()
    }

    /// Polls the log until at least `count` call sessions are over: after
    /// that, nothing more is stored for them. Panics after `timeout`.
    pub fn wait_calls_ended(&self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.calls_ended() < count {
            assert!(
                Instant::now() < deadline,
                "{} of {count} calls ended within {timeout:?}\n{}",
                self.calls_ended(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The recording in progress, once its file holds at least `bytes`:
    /// a call is being recorded. Panics after `timeout`.
    pub fn wait_recording(&self, bytes: u64, timeout: Duration) -> PathBuf {
        let dir = self.data_dir.join("recording");
        let deadline = Instant::now() + timeout;
        loop {
            let found = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.extension().is_some_and(|e| e == "wav")
                        && p.metadata().is_ok_and(|m| m.len() >= bytes)
                });
            if let Some(path) = found {
                return path;
            }
            assert!(
                Instant::now() < deadline,
                "no recording of {bytes} bytes in progress within {timeout:?}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("vmesh.log")
    }

    fn spawn(&mut self) {
        let mut command = serve_command(&self.profile(), &self.log_path(), None);
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("start vmesh serve");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "vmesh exited during start-up ({status})\n{}",
                        self.log_tail()
                    );
                }
            }
            let answer = options_udp(
                self.net.peer_ip,
                self.net.sip_addr(),
                Duration::from_millis(200),
            );
            if answer.is_some_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "vmesh did not answer OPTIONS with 200 on {} within {READY_TIMEOUT:?}\n{}",
                self.net.sip_addr(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server with SIGKILL (a crash or power cut, as far as the
    /// data directory can tell) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts the server again on the same profile and data; waits until
    /// it answers OPTIONS.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        self.spawn();
    }

    /// Sends SIGTERM and waits (up to 15 s) for the server to exit; returns
    /// its exit status. The graceful shutdown contract: refuse new calls
    /// with 503, BYE the calls in progress, store them, exit 0.
    pub fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting (to act while the server shuts down).
    pub fn send_sigterm(&self) {
        if let Some(child) = self.child.as_ref() {
            process::signal(child, libc::SIGTERM);
        }
    }

    /// Waits (up to 15 s) for a server that was told to stop.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self
            .child
            .take()
            .expect("wait_exit: the server is not running");
        process::exit_within(child, EXIT_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "vmesh did not exit within {EXIT_TIMEOUT:?}\n{}",
                self.log_tail()
            )
        })
    }

    /// The last 80 lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        process::log_tail("vmesh", &self.log_path())
    }

    /// Runs a SIPp scenario against this server from the test's caller
    /// address, each run on its own SIP and media ports.
    pub fn sipp(&self, scenario: &str, args: &[&str], timeout: Duration) -> SippOutcome {
        self.sipp_start(scenario, args, timeout).wait()
    }

    /// Leaves a 3 s message for `mailbox` the way a PBX forwards a call:
    /// SIPp calls the pilot user with the mailbox in a Diversion header
    /// (`uac_pilot_diversion.xml`). Panics if the call fails.
    pub fn leave_short_message(&self, mailbox: &str) {
        self.sipp(
            "uac_pilot_diversion.xml",
            &["-s", mailbox],
            call_timeout(SPEECH_SHORT_MS),
        )
        .assert_success();
    }

    /// Starts a SIPp scenario in the background; `wait()` collects it.
    pub fn sipp_start(&self, scenario: &str, args: &[&str], timeout: Duration) -> SippRun {
        let n = self.next_sipp_port.fetch_add(1, Ordering::Relaxed);
        let setup = SippSetup {
            remote: self.net.sip_addr().to_string(),
            local_ip: self.net.peer_ip.to_string(),
            local_port: 5070 + 2 * n,
            media_port: 6000 + 10 * n,
            log_dir: &self.root,
        };
        SippRun::start(&setup, scenario, args, timeout)
    }

    /// Runs `vmesh ARGS --profile <this server's profile>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with_profile(&self.profile(), args)
    }

    /// Runs a CLI command that must succeed and print one JSON document.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        json_of(self.cli(args), "vmesh", args)
    }

    /// `vmesh messages list --json`: every stored message.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        match self.cli_json(&["messages", "list", "--json"]) {
            serde_json::Value::Array(items) => items,
            other => panic!("messages list --json is not an array: {other}"),
        }
    }

    /// Polls `messages list` until `count` messages are stored (recording
    /// is finalized just after the call ends), up to `timeout`.
    pub fn wait_messages(&self, count: usize, timeout: Duration) -> Vec<serde_json::Value> {
        poll_messages(|| self.messages(), count, timeout)
    }

    /// Exports message `id` to a WAV file in the test directory.
    pub fn export(&self, id: &str) -> PathBuf {
        export_message(
            &self.profile(),
            id,
            &self.root.join(format!("export-{id}.wav")),
        )
    }
}

/// Exports message `id` of the server running `profile` to `out` (replaced
/// if it exists: a test may export one message twice); panics if the CLI
/// fails.
pub fn export_message(profile: &Path, id: &str, out: &Path) -> PathBuf {
    std::fs::remove_file(out).ok();
    let output = cli_with_profile(
        profile,
        &[
            "messages",
            "export",
            id,
            "--out",
            out.to_str().expect("UTF-8 temp path"),
        ],
    );
    assert!(
        output.status.success(),
        "vmesh messages export {id} ({}) failed: {}",
        profile.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out.to_path_buf()
}

/// What the server logs for each call session as it answers.
pub const ANSWERING_LINE: &str = ": answering ";
/// The last line a call session logs: its message stored, discarded (too
/// short or silent), or never recorded (no ACK came).
pub const CALL_END_LINES: [&str; 3] = ["message stored", "message discarded", "nothing stored"];

/// Starts `vmesh serve --profile PROFILE`, its output appended to `log`
/// (over all its runs), inside network namespace `netns` when given. Its
/// log level is the binary's default unless `VMESH_LOG` says otherwise.
pub fn spawn_serve(profile: &Path, log: &Path, netns: Option<&str>) -> Child {
    serve_command(profile, log, netns)
        .spawn()
        .expect("start vmesh serve")
}

/// The command [`spawn_serve`] runs.
pub fn serve_command(profile: &Path, log: &Path, netns: Option<&str>) -> Command {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let err = out.try_clone().expect("clone the log handle");
    let binary = env!("CARGO_BIN_EXE_vmesh");
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, binary]);
            c
        }
        None => Command::new(binary),
    };
    command
        .arg("serve")
        .arg("--profile")
        .arg(profile)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    command
}

/// Runs the vmesh binary with `args` (no profile added) and captures it.
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmesh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the vmesh CLI")
}

/// Polls `list` until it returns at least `count` messages or `timeout`
/// passes; returns the last list.
pub fn poll_messages(
    list: impl Fn() -> Vec<serde_json::Value>,
    count: usize,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let messages = list();
        if messages.len() >= count || Instant::now() > deadline {
            return messages;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `vmesh ARGS --profile PROFILE`.
pub fn cli_with_profile(profile: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--profile");
    all.push(profile.to_str().expect("UTF-8 temp path"));
    cli(&all)
}

/// The JSON document a CLI command printed; panics (naming `who` and the
/// command) if it failed or printed none.
pub fn json_of(output: Output, who: &str, args: &[&str]) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{who}: vmesh {args:?} failed ({})\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{who}: vmesh {args:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
            if let Some(dir) = self.dir.take() {
                eprintln!("test files kept in {}", dir.keep().display());
            }
        }
    }
}

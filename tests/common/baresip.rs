//! A real softphone for the end-to-end tests: baresip 1.0 (Debian package
//! `baresip-core`, which also holds its G.711, G.722 and Opus codec
//! modules), calling vmesh from the test's caller address with a WAV file
//! as its microphone.
//!
//! How it is set up, and why:
//!
//! - A configuration directory of its own per test (`-f DIR`): `config`
//!   loads only the modules the call needs (the codecs, `aufile` as the
//!   audio source, `account`, `menu` for the commands, `ctrl_tcp` to drive
//!   it) and no audio player at all: with no player module registered
//!   baresip starts no player and plays no ring or alert sounds, so it
//!   needs no sound device. `accounts` holds one account that does not
//!   register (`regint=0`) and offers only the codec under test
//!   (`audio_codecs=...`), so the call's codec does not depend on which
//!   order vmesh prefers.
//! - Loopback only: `-n IP` binds it to the test's caller address (without
//!   it baresip advertises the machine's other interface in its SDP),
//!   `sip_listen` and `ctrl_tcp_listen` are on that address too, and `-4`
//!   keeps it to IPv4.
//! - `audio_source aufile,FILE`: the `aufile` source of 1.0 reads a WAV
//!   file that must have the codec's clock rate and channel count
//!   (48 kHz stereo for Opus, 16 kHz mono for G.722, 8 kHz mono for
//!   G.711), starts when the call is established and, at the end of the
//!   file, makes baresip hang up (its call closes with "end of file").
//! - Driven without a terminal through `ctrl_tcp`: JSON commands in
//!   netstrings (`dial`, `sndcode` to send an RFC 4733 digit, `quit`), and
//!   events back (`CALL_ESTABLISHED`, `CALL_CLOSED` with the reason: "end of
//!   file" when baresip hung up, "Connection reset by peer" when the other
//!   side sent BYE).
//! - `-s` traces every SIP message it sends and receives to its log, so a
//!   test can assert on what went over the wire.
//! - Bounded twice: baresip quits by itself after `-t` seconds, and every
//!   wait here has a deadline. It is stopped on drop (`quit`, then SIGTERM,
//!   then SIGKILL), also when the test fails, and the kernel sends it
//!   SIGTERM should the test process die (`PR_SET_PDEATHSIG`).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::process;

/// Where the Debian package installs baresip and its modules.
const BARESIP_BIN: &str = "/usr/bin/baresip";
const MODULE_PATH: &str = "/usr/lib/baresip/modules";
/// The modules a test call loads (codecs, microphone, account, commands).
const MODULES: &[&str] = &["g711", "g722", "opus", "aufile"];
const APP_MODULES: &[&str] = &["account", "menu", "ctrl_tcp"];
/// Its SIP port and control port, on the test's caller address.
pub const SIP_PORT: u16 = 5060;
const CTRL_PORT: u16 = 4444;
/// How long baresip may take to open its control socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it may take to answer a command, or to exit after `quit`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// One softphone call's setup.
#[derive(Clone, Debug)]
pub struct SoftphoneConfig {
    /// The only address it uses (the test's caller address).
    pub ip: Ipv4Addr,
    /// The one codec its account offers, as baresip names it:
    /// "opus/48000/2", "G722", "PCMU", "PCMA".
    pub codec: String,
    /// Its microphone: a 16-bit WAV file at the codec's rate and channels.
    pub source: PathBuf,
    /// The user part of its address (the caller's number).
    pub user: String,
    /// Its display name.
    pub display_name: String,
    /// It quits by itself after this long (`-t`), whatever happens.
    pub max_run: Duration,
}

/// An event baresip reported on its control connection.
#[derive(Clone, Debug)]
pub struct Event {
    /// Its type: "CALL_ESTABLISHED", "CALL_CLOSED", ...
    pub kind: String,
    /// Its parameter: for CALL_CLOSED, why the call ended.
    pub param: String,
    /// When the test received it.
    pub at: Instant,
    /// The whole event.
    pub json: serde_json::Value,
}

/// A SIP message from baresip's trace (`-s`).
#[derive(Clone, Debug)]
pub struct TracedSip {
    /// Who sent it, "ip:port".
    pub from: String,
    /// Who it went to, "ip:port".
    pub to: String,
    /// The message (start line, headers, body).
    pub text: String,
}

impl TracedSip {
    /// The start line: "INVITE sip:... SIP/2.0", "SIP/2.0 200 OK", ...
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    /// The method of the CSeq header ("INVITE", "BYE", ...).
    pub fn cseq_method(&self) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix("CSeq:"))
            .and_then(|c| c.split_whitespace().nth(1))
    }
}

/// A running baresip; stopped on drop.
pub struct Softphone {
    child: Option<Child>,
    config: SoftphoneConfig,
    log_path: PathBuf,
    control: TcpStream,
    received: Vec<u8>,
    /// Events received and not yet waited for, oldest first.
    pending: Vec<Event>,
    next_token: u64,
}

/// Fails the test with a clear message if baresip or its modules are not
/// installed.
pub fn require_baresip() {
    assert!(
        Path::new(BARESIP_BIN).is_file(),
        "baresip is not installed ({BARESIP_BIN} not found): the softphone tests need it \
         (Debian package baresip-core; scripts/test.sh installs it)"
    );
    for module in MODULES.iter().chain(APP_MODULES) {
        let path = Path::new(MODULE_PATH).join(format!("{module}.so"));
        assert!(
            path.is_file(),
            "baresip module {} is missing (Debian package baresip-core)",
            path.display()
        );
    }
}

impl Softphone {
    /// Writes its configuration under `dir` (with its log), starts baresip
    /// and connects to its control socket; panics with its log on failure.
    pub fn start(config: SoftphoneConfig, dir: &Path) -> Softphone {
        require_baresip();
        std::fs::create_dir_all(dir).expect("create the softphone's directory");
        std::fs::write(dir.join("config"), config_file(&config))
            .expect("write the softphone's config");
        std::fs::write(dir.join("accounts"), accounts_file(&config))
            .expect("write the softphone's accounts");
        let log_path = dir.join("baresip.log");
        let log = File::create(&log_path).expect("create the softphone's log");
        let log_err = log.try_clone().expect("clone the softphone's log handle");
        let mut command = Command::new(BARESIP_BIN);
        command
            .arg("-f")
            .arg(dir)
            .args(["-4", "-s", "-n", &config.ip.to_string()])
            .args(["-t", &config.max_run.as_secs().max(1).to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: prctl(2) is async-signal-safe and touches only the new
        // process; it runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {BARESIP_BIN}: {e}"));
        let control = match connect_control(&mut child, &config, &log_path) {
            Ok(control) => control,
            Err(why) => {
                child.kill().ok();
                child.wait().ok();
                panic!("{why}\n{}", process::log_tail("baresip", &log_path));
            }
        };
        Softphone {
            child: Some(child),
            config,
            log_path,
            control,
            received: Vec::new(),
            pending: Vec::new(),
            next_token: 0,
        }
    }

    /// Its SIP address.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from((self.config.ip, SIP_PORT))
    }

    /// Calls `uri`; panics unless baresip accepts the command.
    pub fn dial(&mut self, uri: &str) {
        self.command("dial", uri);
    }

    /// Sends `digit` in the current call as an RFC 4733 telephone-event.
    pub fn send_digit(&mut self, digit: char) {
        self.command("sndcode", &digit.to_string());
    }

    /// Runs a menu command and waits for its response; panics unless it
    /// succeeded.
    pub fn command(&mut self, command: &str, params: &str) -> serde_json::Value {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let request = serde_json::json!({ "command": command, "params": params, "token": token });
        self.send(&request);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let message = self
                .receive(deadline)
                .unwrap_or_else(|why| panic!("baresip: no response to {command} {params}: {why}"));
            if message["response"] == true && message["token"] == token.as_str() {
                assert!(
                    message["ok"] == true,
                    "baresip: {command} {params} failed: {message}"
                );
                return message;
            }
            self.queue_event(message);
        }
    }

    /// Waits up to `timeout` for the next event of type `kind` (events of
    /// other types before it are dropped); panics if none (the log is
    /// printed when the `Softphone` is dropped).
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.pending.iter().position(|e| e.kind == kind) {
                return self
                    .pending
                    .drain(..=i)
                    .next_back()
                    .expect("the matched event");
            }
            match self.receive(deadline) {
                Ok(message) => self.queue_event(message),
                Err(why) => panic!(
                    "baresip: no {kind} event within {timeout:?}: {why} (other events: {:?})",
                    self.pending.iter().map(|e| &e.kind).collect::<Vec<_>>(),
                ),
            }
        }
    }

    /// Tells baresip to quit (ending any call with BYE) and waits for it to
    /// exit; returns its exit status.
    pub fn quit(&mut self) -> ExitStatus {
        self.next_token += 1;
        let request =
            serde_json::json!({ "command": "quit", "token": format!("t{}", self.next_token) });
        // It may close the connection before it answers: only the exit counts.
        let _ = self.control.write_all(&netstring(&request));
        let child = self.child.take().expect("quit: baresip is not running");
        process::exit_within(child, COMMAND_TIMEOUT)
            .unwrap_or_else(|| panic!("baresip did not exit within {COMMAND_TIMEOUT:?} of quit"))
    }

    /// The SIP messages it sent and received, in order (complete once it
    /// has exited).
    pub fn sip_trace(&self) -> Vec<TracedSip> {
        parse_sip_trace(&self.log())
    }

    /// Everything it printed.
    pub fn log(&self) -> String {
        process::read_log(&self.log_path)
    }

    /// The last 80 lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        process::log_tail("baresip", &self.log_path)
    }

    fn send(&mut self, request: &serde_json::Value) {
        if let Err(e) = self.control.write_all(&netstring(request)) {
            panic!("baresip: send {request}: {e}");
        }
    }

    fn queue_event(&mut self, message: serde_json::Value) {
        if message["event"] != true {
            return;
        }
        let text = |key: &str| message[key].as_str().unwrap_or_default().to_owned();
        self.pending.push(Event {
            kind: text("type"),
            param: text("param"),
            at: Instant::now(),
            json: message,
        });
    }

    /// The next netstring-framed JSON message, before `deadline`.
    fn receive(&mut self, deadline: Instant) -> Result<serde_json::Value, String> {
        loop {
            if let Some((message, used)) = parse_netstring(&self.received)? {
                self.received.drain(..used);
                return serde_json::from_slice(&message)
                    .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&message)));
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or("timed out")?;
            self.control
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 4096];
            match self.control.read(&mut chunk) {
                Ok(0) => return Err("baresip closed its control connection".into()),
                Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Stops baresip if it still runs: quit is not tried here (it may be
    /// what hangs); SIGTERM ends its calls, SIGKILL after 5 s.
    fn stop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child, not reaped yet (it may have
            // exited: then the signal is lost, which is what we want).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        process::exit_within(child, COMMAND_TIMEOUT);
    }
}

impl Drop for Softphone {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Connects to the control socket once baresip has opened it.
fn connect_control(
    child: &mut Child,
    config: &SoftphoneConfig,
    log_path: &Path,
) -> Result<TcpStream, String> {
    let addr = SocketAddr::from((config.ip, CTRL_PORT));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "baresip exited during start-up ({status}); log {}",
                log_path.display()
            ));
        }
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => return Ok(stream),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Err(format!(
                    "baresip did not open its control socket {addr} within {READY_TIMEOUT:?}: {e}"
                ))
            }
        }
    }
}

/// The `config` file: only what the call needs (see the module doc).
fn config_file(config: &SoftphoneConfig) -> String {
    let ip = config.ip;
    let mut text = format!(
        "# One test call from {ip}, nothing else.\n\
         poll_method epoll\n\
         sip_listen {ip}:{SIP_PORT}\n\
         ctrl_tcp_listen {ip}:{CTRL_PORT}\n\
         # The microphone. No audio player module is loaded: no sound device.\n\
         audio_source aufile,{source}\n\
         # A typical wideband phone's Opus bit rate.\n\
         opus_bitrate 32000\n\
         # No call status line every second, no ring tones.\n\
         statmode_default off\n\
         ringback_disabled yes\n\
         module_path {MODULE_PATH}\n",
        source = config.source.display(),
    );
    for module in MODULES {
        text.push_str(&format!("module {module}.so\n"));
    }
    for module in APP_MODULES {
        text.push_str(&format!("module_app {module}.so\n"));
    }
    text
}

/// The `accounts` file: one account that does not register and offers
/// only the codec under test (RFC 4733 telephone-event is always added).
fn accounts_file(config: &SoftphoneConfig) -> String {
    format!(
        "\"{name}\" <sip:{user}@{ip}>;regint=0;answermode=manual;audio_codecs={codec}\n",
        name = config.display_name,
        user = config.user,
        ip = config.ip,
        codec = config.codec,
    )
}

/// `request` as a netstring: "LENGTH:JSON,".
fn netstring(request: &serde_json::Value) -> Vec<u8> {
    let body = request.to_string();
    format!("{}:{body},", body.len()).into_bytes()
}

/// The first netstring in `buffer`: its payload and the bytes it took, or
/// `None` if it is not complete yet.
fn parse_netstring(buffer: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let Some(colon) = buffer.iter().position(|&b| b == b':') else {
        return Ok(None);
    };
    let length: usize = std::str::from_utf8(&buffer[..colon])
        .ok()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| format!("bad netstring length: {:?}", &buffer[..colon]))?;
    let end = colon + 1 + length;
    match buffer.get(end) {
        None => Ok(None),
        Some(b',') => Ok(Some((buffer[colon + 1..end].to_vec(), end + 1))),
        Some(other) => Err(format!("netstring not ended by ',' but {other:#x}")),
    }
}

/// The SIP messages in a log written with `-s`: each is printed as
/// `ESC[36;1m#`, a line `UDP FROM -> TO`, the message, then `ESC[;m`.
fn parse_sip_trace(log: &str) -> Vec<TracedSip> {
    log.split("\x1b[36;1m#\n")
        .skip(1)
        .filter_map(|block| {
            let block = block.split("\x1b[;m").next()?;
            let (route, text) = block.split_once('\n')?;
            let (_, route) = route.split_once(' ')?;
            let (from, to) = route.split_once(" -> ")?;
            Some(TracedSip {
                from: from.trim().to_owned(),
                to: to.trim().to_owned(),
                text: text.replace("\r\n", "\n").trim_end().to_owned(),
            })
        })
        .collect()
}

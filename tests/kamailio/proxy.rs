//! A real PBX-side peer for the end-to-end tests: Kamailio (Debian package
//! `kamailio`, 5.6) running `sip-profiles/kamailio/voicemail.cfg`, which
//! rings a phone and redirects a busy or unanswered call to vmesh with a
//! Diversion header (RFC 5806), Record-Routing so the dialog's requests
//! pass through it. In its registrar variant vmesh registers with it (digest
//! credentials from `sip-profiles/kamailio/dbtext/`, copied into the test's
//! directory) and the failure route looks vmesh's contact up. Other
//! configurations of `sip-profiles/kamailio/` (the dispatcher in front of
//! several servers) run through [`Kamailio::start_template`].
//!
//! Kamailio runs in the foreground (`-DD`: it forks its workers but does
//! not daemonize), in a process group of its own, bound only to the one
//! UDP socket the test gives it. It is stopped when the `Kamailio` is
//! dropped, also when the test fails: SIGTERM (its main process stops its
//! workers), then SIGKILL to its group if it lingers. Should the test
//! process die without dropping it, the kernel sends it SIGTERM
//! (`PR_SET_PDEATHSIG`).
//!
//! Each test file that includes this module uses a part of it.
#![allow(dead_code)]

use std::fs::File;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::raw_sip::options_udp;
use crate::common::repo_root;

/// Where the Debian package installs the binary (not always on a user's
/// PATH, since it is under sbin).
const KAMAILIO_BIN: &str = "/usr/sbin/kamailio";
/// How long Kamailio may take to answer its first OPTIONS.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Kamailio may take to stop its workers and exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the Kamailio of one test does.
#[derive(Clone, Debug)]
pub struct KamailioConfig {
    /// Its only socket (UDP).
    pub listen: SocketAddrV4,
    /// The phone it rings first.
    pub phone: SocketAddr,
    /// The vmesh server it redirects busy and unanswered calls to.
    pub vmesh: SocketAddr,
    /// How long the phone rings before the call counts as unanswered
    /// (tm's `fr_inv_timer`, which runs once the phone sent a provisional
    /// response).
    pub no_answer_ms: u64,
    /// Redirect to the pilot user `voicemail` instead of keeping the
    /// called user in the Request-URI (only Diversion names the mailbox).
    pub pilot: bool,
    /// Be vmesh's registrar (`WITH_REGISTRAR`) instead of sending calls to
    /// `vmesh`.
    pub registrar: Option<RegistrarSetup>,
}

/// How Kamailio acts as vmesh's registrar.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegistrarSetup {
    /// Challenge with SHA-256 instead of MD5 (`WITH_SHA256`).
    pub sha256: bool,
    /// Listen on TCP too (`WITH_TCP`), on the same port.
    pub tcp: bool,
}

/// A running Kamailio; stopped on drop.
pub struct Kamailio {
    child: Option<Child>,
    /// Its only socket (UDP).
    listen: SocketAddrV4,
    /// Where its readiness probes are sent from.
    probe_from: Ipv4Addr,
    log_path: PathBuf,
}

/// The binary: `/usr/sbin/kamailio`, or `kamailio` on the PATH.
fn binary() -> PathBuf {
    if Path::new(KAMAILIO_BIN).is_file() {
        return PathBuf::from(KAMAILIO_BIN);
    }
    let on_path = Command::new("kamailio")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        on_path,
        "kamailio is not installed ({KAMAILIO_BIN} not found, none on the PATH): \
         the PBX tests need it (Debian package kamailio; scripts/test.sh installs it)"
    );
    PathBuf::from("kamailio")
}

impl Kamailio {
    /// Writes the configuration into `dir` (with its pid file and log),
    /// checks it with `kamailio -c`, starts Kamailio and waits until it
    /// answers OPTIONS; panics with its output on any failure.
    pub fn start(config: KamailioConfig, dir: &Path) -> Kamailio {
        let db_dir = dir.join("dbtext");
        std::fs::create_dir_all(&db_dir).expect("create the db_text directory");
        for table in ["version", "subscriber"] {
            let from = repo_root().join("sip-profiles/kamailio/dbtext").join(table);
            std::fs::copy(&from, db_dir.join(table))
                .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
        let mut defines: Vec<&str> = Vec::new();
        if config.pilot {
            defines.extend(["-A", "VM_PILOT"]);
        }
        if let Some(registrar) = config.registrar {
            defines.extend(["-A", "WITH_REGISTRAR"]);
            if registrar.sha256 {
                defines.extend(["-A", "WITH_SHA256"]);
            }
            if registrar.tcp {
                defines.extend(["-A", "WITH_TCP"]);
            }
        }
        let probe_from = match config.phone {
            SocketAddr::V4(phone) => *phone.ip(),
            SocketAddr::V6(_) => Ipv4Addr::LOCALHOST,
        };
        let replacements = [
            ("@LISTEN_IP@", config.listen.ip().to_string()),
            ("@LISTEN_PORT@", config.listen.port().to_string()),
            ("@NO_ANSWER_MS@", config.no_answer_ms.to_string()),
            ("@PHONE@", config.phone.to_string()),
            ("@VMESH@", config.vmesh.to_string()),
            ("@DB_DIR@", db_dir.display().to_string()),
        ];
        Kamailio::start_template(
            "voicemail.cfg",
            &replacements,
            &defines,
            config.listen,
            probe_from,
            dir,
        )
    }

    /// Fills the `@...@` placeholders of `sip-profiles/kamailio/<template>`
    /// with `replacements` (every placeholder must be filled), writes the
    /// result into `dir`, checks it with `kamailio -c` (with `defines`,
    /// `-A NAME` pairs), starts Kamailio on `listen` and waits until it
    /// answers an OPTIONS sent from `probe_from`; panics with its output on
    /// any failure.
    pub fn start_template(
        template: &str,
        replacements: &[(&str, String)],
        defines: &[&str],
        listen: SocketAddrV4,
        probe_from: Ipv4Addr,
        dir: &Path,
    ) -> Kamailio {
        let binary = binary();
        let template_path = repo_root().join("sip-profiles/kamailio").join(template);
        let text = std::fs::read_to_string(&template_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", template_path.display()));
        let cfg = fill_placeholders(&text, replacements);
        let cfg_path = dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).expect("write the Kamailio configuration");

        let check = Command::new(&binary)
            .arg("-c")
            .arg("-f")
            .arg(&cfg_path)
            .args(defines)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {} -c: {e}", binary.display()));
        assert!(
            check.status.success(),
            "kamailio -c rejects {} ({}):\n{}{}",
            cfg_path.display(),
            check.status,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );

        let log_path = dir.join("kamailio.log");
        let log = File::create(&log_path).expect("create the Kamailio log");
        let log_err = log.try_clone().expect("clone the Kamailio log handle");
        let mut command = Command::new(&binary);
        command
            .arg("-f")
            .arg(&cfg_path)
            .args(defines)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-w")
            .arg(dir)
            .arg("-Y")
            .arg(dir)
            // Foreground, log to stderr, 32 MB shared and 4 MB private memory.
            .args(["-DD", "-E", "-m", "32", "-M", "4"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
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
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut kamailio = Kamailio {
            child: Some(child),
            listen,
            probe_from,
            log_path,
        };
        kamailio.wait_ready();
        kamailio
    }

    /// Its SIP address (UDP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(self.listen)
    }

    /// Everything it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last 60 lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!(
            "--- kamailio log ({}), last {} lines ---\n{}",
            self.log_path.display(),
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let from = self.probe_from;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "kamailio exited during start-up ({status})\n{}",
                        self.log_tail()
                    );
                }
            }
            let answer = options_udp(from, self.addr(), Duration::from_millis(200));
            if answer.is_some_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not answer OPTIONS on {} within {READY_TIMEOUT:?}\n{}",
                self.addr(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops Kamailio: SIGTERM, then SIGKILL to its process group after
    /// 5 s. Its main process is only reaped after the group is signalled,
    /// so the group id cannot have been reused.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => break,
            }
        }
        eprintln!("kamailio did not exit within {EXIT_TIMEOUT:?} of SIGTERM: killing its group");
        // SAFETY: the group Kamailio was started in (process_group(0)), whose
        // leader is not reaped yet.
        unsafe { libc::killpg(pid, libc::SIGKILL) };
        child.wait().ok();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Waits until something is bound to UDP `addr` (a SIPp phone that was
/// just started), so the first INVITE does not hit a closed port; panics
/// after `timeout`.
pub fn wait_udp_bound(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match UdpSocket::bind(addr) {
            Err(e) if e.kind() == ErrorKind::AddrInUse => return,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "nothing bound UDP {addr} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `text` with each placeholder of `replacements` replaced everywhere;
/// panics with the first line (outside comments) that still holds an
/// `@NAME@` placeholder.
pub fn fill_placeholders(text: &str, replacements: &[(&str, String)]) -> String {
    let filled = replacements
        .iter()
        .fold(text.to_string(), |t, (from, to)| t.replace(from, to));
    let unfilled = filled
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && has_placeholder(l));
    assert!(unfilled.is_none(), "unfilled placeholder: {unfilled:?}");
    filled
}

/// Whether `line` holds `@NAME@`, NAME of capitals, digits and '_'.
fn has_placeholder(line: &str) -> bool {
    line.match_indices('@').any(|(at, _)| {
        let rest = &line[at + 1..];
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        name_len > 0 && rest[name_len..].starts_with('@')
    })
}

//! A mesh of vmesh servers for one test: a topology file and one profile per
//! server in a temporary directory, each server on an address of its own,
//! started, stopped, killed, frozen and thawed one by one.
//!
//! Servers talk over mutual TLS (port 5061) with certificates made by the
//! real `vmesh certs init` and `vmesh certs issue` in the mesh's `certs/`;
//! a site marked insecure ([`MeshNet::set_insecure`]) is reached by plain
//! TCP on 5060 and known by its address. Every server has its own IP. On loopback a
//! mesh takes a fresh 127.x.y.0/24 block (servers at .11, .12, ..., their
//! callers at .101, .102, ..., spare addresses for relays and strangers at
//! .201 and up), so tests run in parallel without sharing anything. For a
//! real partition, [`MeshNet::allocate_netns`] puts two servers in two
//! network namespaces joined by one link ([`super::netns`]).
//!
//! Servers are started with short mesh timings ([`MeshTimings`]) so that
//! health changes and retries happen within seconds. Every process is
//! killed when the [`MeshNet`] is dropped; on failure each server's log
//! tail is printed and the directory is kept for inspection.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::ops::{Index, IndexMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::net::{RTP_PORT_MAX, RTP_PORT_MIN, SIP_PORT};
use super::netns::{in_netns, NetnsPair};
use super::process;
use super::raw_sip::options_udp;
use super::server::{cli, cli_with_profile, export_message, json_of, poll_messages, spawn_serve};
use super::sipp::{SippOutcome, SippRun, SippSetup};
use super::tls_sip::{ClientIdentity, SipTls};

/// How long a server may take to answer its first OPTIONS.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// The TLS port of every server (RFC 3261 §19.1.2's default for sips).
pub const TLS_PORT: u16 = 5061;

/// Names of the servers of a mesh, in order.
pub const SITE_NAMES: [&str; 4] = ["site-a", "site-b", "site-c", "site-d"];

static NEXT_BLOCK: AtomicU32 = AtomicU32::new(0);

/// The `[mesh]` keys of a test profile: short, so that a peer is found down
/// after about three seconds and found up again within a second.
#[derive(Clone, Debug)]
pub struct MeshTimings {
    /// `mesh.ping_interval_s`.
    pub ping_interval_s: u64,
    /// `mesh.ping_idle_interval_s`.
    pub ping_idle_interval_s: u64,
    /// `mesh.ping_timeout_s`.
    pub ping_timeout_s: u64,
    /// `mesh.failures_for_down`.
    pub failures_for_down: u32,
    /// `mesh.retry_initial_s`.
    pub retry_initial_s: u64,
    /// `mesh.retry_max_s`.
    pub retry_max_s: u64,
    /// `mesh.transfer_timeout_s`.
    pub transfer_timeout_s: u64,
    /// `mesh.max_in_flight`.
    pub max_in_flight: u32,
    /// `mesh.max_transfer_bytes`.
    pub max_transfer_bytes: u64,
}

impl Default for MeshTimings {
    fn default() -> Self {
        MeshTimings {
            ping_interval_s: 1,
            ping_idle_interval_s: 5,
            ping_timeout_s: 1,
            failures_for_down: 3,
            retry_initial_s: 1,
            retry_max_s: 5,
            transfer_timeout_s: 3,
            max_in_flight: 8,
            max_transfer_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One `[[server]]` of a topology file.
#[derive(Clone, Debug)]
pub struct TopologyEntry {
    /// `name`.
    pub name: String,
    /// The IP of its `uri` (port 5060, TCP).
    pub ip: Ipv4Addr,
    /// `mailboxes`.
    pub mailboxes: Vec<String>,
    /// `insecure = true`: reached by plain TCP, known by its IP.
    pub insecure: bool,
}

impl TopologyEntry {
    /// The entry's `uri`: TLS on 5061, or TCP on 5060 when insecure.
    pub fn uri(&self) -> String {
        if self.insecure {
            format!("sip:{}:{SIP_PORT};transport=tcp", self.ip)
        } else {
            format!("sip:{}:{TLS_PORT};transport=tls", self.ip)
        }
    }
}

/// Writes a topology file listing `entries`.
pub fn write_topology(path: &Path, entries: &[TopologyEntry]) {
    let mut text = String::new();
    if entries.iter().any(|e| !e.insecure) {
        text.push_str("[tls]\nca = \"certs/ca.pem\"\n\n");
    }
    for entry in entries {
        let mailboxes = entry
            .mailboxes
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(
            "[[server]]\nname = {:?}\nuri = {:?}\nmailboxes = [{mailboxes}]\n{}\n",
            entry.name,
            entry.uri(),
            if entry.insecure {
                "insecure = true\n"
            } else {
                ""
            }
        ));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write topology {}: {e}", path.display()));
}

/// The servers of one test and their shared directory.
pub struct MeshNet {
    /// The servers, in topology order (site-a, site-b, ...).
    pub sites: Vec<Site>,
    /// The first three octets of the loopback block (unused in namespaces).
    block: [u8; 3],
    root: PathBuf,
    dir: Option<tempfile::TempDir>,
    /// Dropped after the servers (field order), so no server outlives
    /// its namespace.
    netns: Option<NetnsPair>,
}

impl MeshNet {
    /// `n` servers on a fresh loopback block, none started. Server `i` is
    /// `SITE_NAMES[i]` at `.11 + i`, home to mailboxes `(i+1)000-(i+1)999`;
    /// all share `topology.toml`.
    pub fn allocate(n: usize) -> MeshNet {
        assert!(n <= SITE_NAMES.len(), "at most {} sites", SITE_NAMES.len());
        let process = 210 + (std::process::id() % 40) as u8;
        let block = loop {
            let k = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed);
            assert!(k < 250, "no free loopback block left for this test binary");
            let block = [127, process, 1 + k as u8];
            let probe = Ipv4Addr::new(block[0], block[1], block[2], 11);
            if UdpSocket::bind(SocketAddrV4::new(probe, SIP_PORT)).is_ok() {
                break block;
            }
        };
        let ip = |last: u8| Ipv4Addr::new(block[0], block[1], block[2], last);
        let placed = (0..n)
            .map(|i| (ip(11 + i as u8), ip(101 + i as u8), None))
            .collect();
        MeshNet::build(block, placed, None)
    }

    /// Two servers (site-a, site-b) in two network namespaces joined by one
    /// link that [`MeshNet::cut`] and [`MeshNet::heal`] act on; each
    /// server's callers are inside its namespace (127.0.0.1). An error says
    /// why namespaces cannot be made here.
    pub fn allocate_netns() -> Result<MeshNet, String> {
        let pair = NetnsPair::create()?;
        let placed = (0..2)
            .map(|i| {
                (
                    pair.ips[i],
                    Ipv4Addr::LOCALHOST,
                    Some(pair.names[i].clone()),
                )
            })
            .collect();
        Ok(MeshNet::build([0, 0, 0], placed, Some(pair)))
    }

    fn build(
        block: [u8; 3],
        placed: Vec<(Ipv4Addr, Ipv4Addr, Option<String>)>,
        netns: Option<NetnsPair>,
    ) -> MeshNet {
        let dir = tempfile::Builder::new()
            .prefix("vmesh-mesh-")
            .tempdir()
            .expect("create the mesh's temporary directory");
        let root = dir.path().to_path_buf();
        let sipp_ports = Arc::new(AtomicU16::new(0));
        let sites = placed
            .into_iter()
            .enumerate()
            .map(|(i, (ip, caller_ip, netns))| Site {
                name: SITE_NAMES[i].to_string(),
                ip,
                caller_ip,
                mailboxes: vec![format!("{0}000-{0}999", i + 1)],
                timings: MeshTimings::default(),
                extra: String::new(),
                insecure: false,
                extra_sip: String::new(),
                topology_file: "topology.toml".into(),
                netns,
                root: root.clone(),
                child: None,
                sipp_ports: sipp_ports.clone(),
            })
            .collect();
        let mesh = MeshNet {
            sites,
            block,
            root,
            dir: Some(dir),
            netns,
        };
        mesh.make_certificates();
        write_topology(&mesh.root.join("topology.toml"), &mesh.entries());
        mesh
    }

    /// The mesh CA and one certificate per site, by the real `vmesh certs`.
    fn make_certificates(&self) {
        let certs = self.certs_dir();
        let dir = certs.to_str().expect("UTF-8 temp path");
        let run = |args: &[&str]| {
            let out = cli(args);
            assert!(
                out.status.success(),
                "vmesh {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["certs", "init", "--dir", dir]);
        for site in &self.sites {
            run(&["certs", "issue", &site.name, "--dir", dir]);
        }
    }

    /// Where the mesh CA and the sites' certificates are.
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs")
    }

    /// The mesh CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.certs_dir().join("ca.pem")
    }

    /// Marks site `i` insecure (plain TCP, known by its IP) and rewrites
    /// the shared topology.
    pub fn set_insecure(&mut self, i: usize) {
        self.sites[i].insecure = true;
        write_topology(&self.root.join("topology.toml"), &self.entries());
    }

    /// The shared topology: every site with its address and mailboxes.
    pub fn entries(&self) -> Vec<TopologyEntry> {
        self.sites
            .iter()
            .map(|s| TopologyEntry {
                name: s.name.clone(),
                ip: s.ip,
                mailboxes: s.mailboxes.clone(),
                insecure: s.insecure,
            })
            .collect()
    }

    /// A loopback address of this mesh's block that no server uses
    /// (`k` < 50): for relays and hosts outside the topology.
    pub fn spare_ip(&self, k: u8) -> Ipv4Addr {
        assert!(self.netns.is_none(), "spare addresses are loopback only");
        assert!(k < 50, "spare address index {k} out of range");
        Ipv4Addr::new(self.block[0], self.block[1], self.block[2], 201 + k)
    }

    /// The mesh's directory (topology, profiles, data, logs).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Cuts the link between the two namespaces.
    pub fn cut(&self) {
        self.netns
            .as_ref()
            .expect("cut: this mesh has no namespaces")
            .cut();
    }

    /// Drops every packet between the two namespaces, silently.
    pub fn blackhole(&self) {
        self.netns
            .as_ref()
            .expect("blackhole: this mesh has no namespaces")
            .blackhole();
    }

    /// Ends the blackhole.
    pub fn unblackhole(&self) {
        self.netns
            .as_ref()
            .expect("unblackhole: this mesh has no namespaces")
            .unblackhole();
    }

    /// Restores the link between the two namespaces.
    pub fn heal(&self) {
        self.netns
            .as_ref()
            .expect("heal: this mesh has no namespaces")
            .heal();
    }
}

impl Index<usize> for MeshNet {
    type Output = Site;
    fn index(&self, i: usize) -> &Site {
        &self.sites[i]
    }
}

impl IndexMut<usize> for MeshNet {
    fn index_mut(&mut self, i: usize) -> &mut Site {
        &mut self.sites[i]
    }
}

impl Drop for MeshNet {
    fn drop(&mut self) {
        for site in &mut self.sites {
            site.kill9();
        }
        if std::thread::panicking() {
            for site in &self.sites {
                eprintln!("{}", site.log_tail());
            }
            if let Some(dir) = self.dir.take() {
                eprintln!("mesh files kept in {}", dir.keep().display());
            }
        }
    }
}

/// One server of a mesh.
pub struct Site {
    /// Its name in the topology.
    pub name: String,
    /// Its address (SIP on port 5060 UDP and TCP, RTP, outgoing mesh TCP).
    pub ip: Ipv4Addr,
    /// Where its callers (SIPp, probes) send from.
    pub caller_ip: Ipv4Addr,
    /// The mailboxes it is home to in the shared topology.
    pub mailboxes: Vec<String>,
    /// Its `[mesh]` keys, written at each start.
    pub timings: MeshTimings,
    /// Profile text appended as it is at each start: whole sections of
    /// their own, such as `[mwi]` or `[storage]`.
    pub extra: String,
    /// Reached by plain TCP (see [`MeshNet::set_insecure`]).
    pub insecure: bool,
    /// Lines added to its profile's `[sip]` (keys under test).
    pub extra_sip: String,
    topology_file: String,
    netns: Option<String>,
    root: PathBuf,
    child: Option<Child>,
    sipp_ports: Arc<AtomicU16>,
}

impl Site {
    /// Gives this server a topology file of its own listing `entries`
    /// (each server validates and routes by its own file).
    pub fn own_topology(&mut self, entries: &[TopologyEntry]) {
        self.topology_file = format!("topology-{}.toml", self.name);
        write_topology(&self.root.join(&self.topology_file), entries);
    }

    /// Its SIP address (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, SIP_PORT))
    }

    /// Its TLS address.
    pub fn tls_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, TLS_PORT))
    }

    /// Its certificate and key.
    pub fn cert_files(&self) -> (PathBuf, PathBuf) {
        let certs = self.root.join("certs");
        (
            certs.join(format!("{}.pem", self.name)),
            certs.join(format!("{}.key", self.name)),
        )
    }

    /// A TLS connection to it from `local_ip`, presenting `client` (cert
    /// and key files) or no certificate; the error says why it failed.
    pub fn tls_connect(
        &self,
        local_ip: Ipv4Addr,
        client: Option<(&Path, &Path)>,
    ) -> Result<SipTls, String> {
        SipTls::connect(
            local_ip,
            self.tls_addr(),
            &self.name,
            &self.root.join("certs").join("ca.pem"),
            client.map(|(cert, key)| ClientIdentity { cert, key }),
        )
    }

    /// Its profile file.
    pub fn profile(&self) -> PathBuf {
        self.root.join(format!("{}.toml", self.name))
    }

    /// Its data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(format!("data-{}", self.name))
    }

    fn log_path(&self) -> PathBuf {
        self.root.join(format!("{}.log", self.name))
    }

    /// Its log over all its runs.
    pub fn log(&self) -> String {
        process::read_log(&self.log_path())
    }

    /// The last 80 lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        process::log_tail(&self.name, &self.log_path())
    }

    fn profile_toml(&self) -> String {
        let t = &self.timings;
        let (listen_tls, tls) = if self.insecure {
            (String::new(), String::new())
        } else {
            (
                format!(", \"tls:{}:{TLS_PORT}\"", self.ip),
                format!(
                    "[tls]\ncert = \"certs/{0}.pem\"\nkey = \"certs/{0}.key\"\n\n",
                    self.name
                ),
            )
        };
        format!(
            "[server]\nname = {name:?}\ntopology = {topology:?}\ndata_dir = {data:?}\n\n\
             [sip]\nlisten = [\"udp:{ip}:{SIP_PORT}\", \"tcp:{ip}:{SIP_PORT}\"{listen_tls}]\n\
             {extra_sip}\n\n{tls}\
             [media]\nrtp_port_min = {RTP_PORT_MIN}\nrtp_port_max = {RTP_PORT_MAX}\n\
             prompts = false\n\n\
             [mesh]\nping_interval_s = {}\nping_idle_interval_s = {}\nping_timeout_s = {}\n\
             failures_for_down = {}\nretry_initial_s = {}\nretry_max_s = {}\n\
             transfer_timeout_s = {}\nmax_in_flight = {}\nmax_transfer_bytes = {}\n\n{extra}",
            t.ping_interval_s,
            t.ping_idle_interval_s,
            t.ping_timeout_s,
            t.failures_for_down,
            t.retry_initial_s,
            t.retry_max_s,
            t.transfer_timeout_s,
            t.max_in_flight,
            t.max_transfer_bytes,
            name = self.name,
            topology = self.topology_file,
            data = self.data_dir().display().to_string(),
            ip = self.ip,
            extra = self.extra,
            extra_sip = self.extra_sip,
        )
    }

    /// Whether its process is running (possibly stopped by SIGSTOP).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its resident memory (VmRSS, KiB) while it runs; 0 if unknown.
    pub fn rss_kib(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    /// CPU seconds (user + system) its process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let Some(pid) = self.pid() else { return 0.0 };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces): state is
        // the 3rd field, utime and stime the 14th and 15th.
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks(11) + ticks(12)) / hz.max(1.0)
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Writes its profile, starts `vmesh serve` (inside its namespace, if
    /// any, with `ip netns exec`, which execs the server in place so the
    /// pid is the server's) and waits until it answers OPTIONS with 200.
    /// Writes its profile (as `start` does) without starting it.
    pub fn write_profile(&self) {
        std::fs::write(self.profile(), self.profile_toml()).expect("write the site profile");
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.write_profile();
        self.child = Some(spawn_serve(
            &self.profile(),
            &self.log_path(),
            self.netns.as_deref(),
        ));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "{} exited during start-up ({status})\n{}",
                        self.name,
                        self.log_tail()
                    );
                }
            }
            if self.answers_options(Duration::from_millis(200)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer OPTIONS on {} within {READY_TIMEOUT:?}\n{}",
                self.name,
                self.sip_addr(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether it answers an OPTIONS over UDP from its callers' address
    /// within `timeout`: with 403, since in a mesh OPTIONS is answered 200
    /// to authenticated peers only, but an answer shows it serves.
    pub fn answers_options(&self, timeout: Duration) -> bool {
        let (from, to) = (self.caller_ip, self.sip_addr());
        let probe = move || options_udp(from, to, timeout).is_some_and(|r| r.status >= 200);
        match &self.netns {
            Some(ns) => in_netns(ns, probe),
            None => probe(),
        }
    }

    /// SIGKILL (a crash or power cut) and reap; nothing if not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// SIGTERM, then waits (up to 15 s) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("terminate: {} is not running", self.name));
        process::signal(&child, libc::SIGTERM);
        process::exit_within(child, EXIT_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}",
                self.name,
                self.log_tail()
            )
        })
    }

    /// SIGSTOP: the process freezes with its sockets open (a hung host: its
    /// peers' connections stay up but nothing answers).
    pub fn freeze(&self) {
        process::signal(
            self.child.as_ref().expect("freeze: not running"),
            libc::SIGSTOP,
        );
    }

    /// SIGCONT: a frozen process goes on.
    pub fn thaw(&self) {
        process::signal(
            self.child.as_ref().expect("thaw: not running"),
            libc::SIGCONT,
        );
    }

    /// Runs `vmesh ARGS --profile <its profile>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with_profile(&self.profile(), args)
    }

    /// A CLI command that must succeed and print one JSON document.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        json_of(self.cli(args), &self.name, args)
    }

    fn cli_array(&self, args: &[&str]) -> Vec<serde_json::Value> {
        match self.cli_json(args) {
            serde_json::Value::Array(items) => items,
            other => panic!("{}: vmesh {args:?} is not an array: {other}", self.name),
        }
    }

    /// `vmesh messages list --json`.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        self.cli_array(&["messages", "list", "--json"])
    }

    /// `vmesh queue --json`: waiting and failed transfers.
    pub fn queue(&self) -> Vec<serde_json::Value> {
        self.cli_array(&["queue", "--json"])
    }

    /// `vmesh peers --json`.
    pub fn peers(&self) -> Vec<serde_json::Value> {
        self.cli_array(&["peers", "--json"])
    }

    /// The record of peer `name` in `vmesh peers --json`, if any.
    pub fn peer(&self, name: &str) -> Option<serde_json::Value> {
        self.peers()
            .into_iter()
            .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))
    }

    /// Polls `messages list` until at least `count` messages are listed or
    /// `timeout` passes; returns the last list.
    pub fn wait_messages(&self, count: usize, timeout: Duration) -> Vec<serde_json::Value> {
        poll_messages(|| self.messages(), count, timeout)
    }

    /// Exports message `id` into the mesh directory; returns the file.
    pub fn export(&self, id: &str) -> PathBuf {
        let out = self.root.join(format!("export-{}-{id}.wav", self.name));
        export_message(&self.profile(), id, &out)
    }

    /// Starts a SIPp scenario against this server from its callers' address
    /// (inside its namespace, if any), each run on SIP and media ports of
    /// its own; `wait()` collects it.
    pub fn sipp_start(&self, scenario: &str, args: &[&str], timeout: Duration) -> SippRun {
        self.sipp_start_from(self.caller_ip, scenario, args, timeout)
    }

    /// Like [`Site::sipp_start`], sending from `local_ip` (e.g. another
    /// server's topology address, to pose as that server).
    pub fn sipp_start_from(
        &self,
        local_ip: Ipv4Addr,
        scenario: &str,
        args: &[&str],
        timeout: Duration,
    ) -> SippRun {
        let n = self.sipp_ports.fetch_add(1, Ordering::Relaxed);
        assert!(n < 200, "too many SIPp runs in one mesh");
        let remote = self.sip_addr().to_string();
        let log_dir = self.root.clone();
        let scenario = scenario.to_string();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let run = move || {
            let setup = SippSetup {
                remote,
                local_ip: local_ip.to_string(),
                local_port: 5070 + 2 * n,
                media_port: 10_000 + 100 * n,
                log_dir: &log_dir,
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            SippRun::start(&setup, &scenario, &args, timeout)
        };
        match &self.netns {
            Some(ns) => in_netns(ns, run),
            None => run(),
        }
    }

    /// Runs a SIPp scenario to its end (see [`Site::sipp_start`]).
    pub fn sipp(&self, scenario: &str, args: &[&str], timeout: Duration) -> SippOutcome {
        self.sipp_start(scenario, args, timeout).wait()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `check` every 50 ms until it gives a value or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

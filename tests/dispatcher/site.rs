//! One site of three vmesh servers behind Kamailio's dispatcher, for the
//! end-to-end tests of `tests/dispatcher.rs`: the three servers of one mesh
//! topology (mutual TLS between them, certificates by `vmesh certs`), a
//! real Kamailio running `sip-profiles/kamailio/dispatcher.cfg` with the
//! servers of `sip-profiles/kamailio/dispatcher.list`, a phone that is
//! always busy, and callers, all SIPp, on one loopback block.
//!
//! The test is the load generator ([`Load`]): it starts one SIPp caller at
//! a time, each calling a user at Kamailio and leaving 3 s of speech for
//! one of [`MAILBOXES`]; the phone answers 486 and Kamailio sends the call,
//! with a Diversion header, to a vmesh server. Kamailio logs each dispatch,
//! failover and change of a server's state with the time it happened
//! (`$TV(Sn)`, seconds since the epoch); [`events`] reads them back, so the
//! tests know which server took each call and when a server was marked
//! down or up.
//!
//! Everything stops when the [`DispatchedSite`] is dropped, also when a
//! test fails: the callers and the phone (SIPp is killed), Kamailio
//! (SIGTERM, then SIGKILL to its group), then the servers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::mesh::{wait_for, MeshNet, Site};
use crate::common::sipp::{SippOutcome, SippRun, SippSetup};
use crate::common::{field, number, repo_root, SPEECH_SHORT_MS};
use crate::proxy::{fill_placeholders, wait_udp_bound, Kamailio};

/// Kamailio's SIP port, on a spare address of the mesh's block.
const KAMAILIO_PORT: u16 = 5060;
/// The phone's SIP port.
const PHONE_PORT: u16 = 5090;
/// How long the phone would ring (it is always busy: never reached).
const NO_ANSWER_MS: u64 = 2_000;
/// The first caller's SIP port; caller `n` uses `CALLER_PORT + 2n`.
const CALLER_PORT: u16 = 5100;
/// The first caller's media port; caller `n` uses `MEDIA_PORT + 20n`.
const MEDIA_PORT: u16 = 16_000;
/// How long one caller may take, failovers included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The mailboxes the calls are for, in turn: some homed on each server,
/// in a cycle whose length (8) is prime to the number of servers, so that
/// round robin sends each mailbox's calls to every server.
pub const MAILBOXES: [&str; 8] = [
    "1001", "2001", "3001", "3002", "1002", "2002", "3003", "1003",
];
/// Time between two callers' starts: with calls of about 4 s, 8 to 10
/// calls are up at a time.
pub const CALL_SPACING: Duration = Duration::from_millis(400);

/// What Kamailio logged about the calls and the servers (dispatcher.cfg's
/// xlog lines).
#[derive(Clone, Debug)]
pub enum Event {
    /// A call sent to a server.
    Dispatch {
        call_id: String,
        to: String,
        at: f64,
    },
    /// A server that did not take a call (no answer in time, or 5xx); the
    /// call goes on to the next.
    Failover {
        call_id: String,
        from: String,
        refused: bool,
        at: f64,
    },
    /// A server marked down by the probes.
    Down { server: String, at: f64 },
    /// A server marked up by the probes.
    Up { server: String, at: f64 },
}

/// The events in Kamailio's log, in order.
pub fn events(log: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for line in log.lines() {
        let Some((_, text)) = line.split_once("<script>: ") else {
            continue;
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let at = |time: &str| {
            time.parse::<f64>()
                .unwrap_or_else(|_| panic!("no time in Kamailio's line {line:?}"))
        };
        let event = match words.as_slice() {
            ["dispatch:", call_id, "for", _user, "to", to, "at", time] => Event::Dispatch {
                call_id: call_id.to_string(),
                to: to.to_string(),
                at: at(time),
            },
            ["failover:", call_id, from, what @ .., "at", time] => Event::Failover {
                call_id: call_id.trim_end_matches(':').to_string(),
                from: from.to_string(),
                refused: what.first() == Some(&"refused"),
                at: at(time),
            },
            ["vmesh", "server", server, "is", "down", "at", time] => Event::Down {
                server: server.to_string(),
                at: at(time),
            },
            ["vmesh", "server", server, "is", "up", "at", time] => Event::Up {
                server: server.to_string(),
                at: at(time),
            },
            _ => continue,
        };
        out.push(event);
    }
    out
}

/// The server that finally took call `call_id` (its last dispatch).
pub fn served_by<'a>(events: &'a [Event], call_id: &str) -> Option<&'a str> {
    events.iter().rev().find_map(|e| match e {
        Event::Dispatch { call_id: c, to, .. } if c == call_id => Some(to.as_str()),
        _ => None,
    })
}

/// Seconds since the epoch, the clock of Kamailio's `$TV(Sn)`.
pub fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// The index of the home server of `mailbox` (site-a is home to 1xxx,
/// site-b to 2xxx, site-c to 3xxx).
pub fn home_of(mailbox: &str) -> usize {
    match mailbox.as_bytes().first() {
        Some(b'1') => 0,
        Some(b'2') => 1,
        Some(b'3') => 2,
        _ => panic!("mailbox {mailbox} is homed nowhere"),
    }
}

/// The messages `site` (server `index`) lists for the mailboxes it is home
/// to.
pub fn home_messages(index: usize, site: &Site) -> Vec<Value> {
    site.messages()
        .into_iter()
        .filter(|m| home_of(field(m, "mailbox")) == index)
        .collect()
}

/// One caller.
pub struct Call {
    pub mailbox: &'static str,
    /// The Call-ID SIPp gives it (`-cid_str`).
    pub call_id: String,
    run: Option<SippRun>,
    outcome: Option<SippOutcome>,
}

/// The callers, one SIPp each, started one at a time by the test.
pub struct Load {
    kamailio: SocketAddr,
    caller_ip: Ipv4Addr,
    log_dir: PathBuf,
    pub calls: Vec<Call>,
}

impl Load {
    fn new(kamailio: SocketAddr, caller_ip: Ipv4Addr, log_dir: &Path) -> Load {
        Load {
            kamailio,
            caller_ip,
            log_dir: log_dir.to_path_buf(),
            calls: Vec::new(),
        }
    }

    /// Starts the next caller: a call to the next mailbox, through
    /// Kamailio, leaving 3 s of speech.
    pub fn launch(&mut self) {
        let n = self.calls.len();
        let mailbox = MAILBOXES[n % MAILBOXES.len()];
        let setup = SippSetup {
            remote: self.kamailio.to_string(),
            local_ip: self.caller_ip.to_string(),
            local_port: CALLER_PORT + 2 * n as u16,
            media_port: MEDIA_PORT + 20 * n as u16,
            log_dir: &self.log_dir,
        };
        let cid_str = format!("dispatch-{n}@%s");
        let run = SippRun::start(
            &setup,
            "uac_pbx_caller.xml",
            &["-s", mailbox, "-cid_str", &cid_str],
            CALL_TIMEOUT,
        );
        self.calls.push(Call {
            mailbox,
            call_id: format!("dispatch-{n}@{}", self.caller_ip),
            run: Some(run),
            outcome: None,
        });
    }

    /// Starts `count` callers, [`CALL_SPACING`] apart.
    pub fn launch_paced(&mut self, count: usize) {
        for i in 0..count {
            if i > 0 {
                std::thread::sleep(CALL_SPACING);
            }
            self.launch();
        }
    }

    /// Waits for call `n` to end.
    pub fn finish(&mut self, n: usize) {
        if let Some(run) = self.calls[n].run.take() {
            self.calls[n].outcome = Some(run.wait());
        }
    }

    /// Waits for every call to end.
    pub fn finish_all(&mut self) {
        for n in 0..self.calls.len() {
            self.finish(n);
        }
    }

    /// The calls still up (their SIPp has not exited).
    pub fn in_progress(&mut self) -> Vec<usize> {
        (0..self.calls.len())
            .filter(|&n| self.calls[n].run.as_mut().is_some_and(|r| !r.finished()))
            .collect()
    }

    /// Waits for every call to end; panics with SIPp's account of the
    /// first one that did not succeed.
    pub fn assert_all_succeeded(&mut self) {
        self.finish_all();
        for (n, call) in self.calls.iter().enumerate() {
            let outcome = call.outcome.as_ref().expect("every call finished");
            assert!(
                outcome.successful == 1 && outcome.failed == 0 && outcome.exit_code == Some(0),
                "call {n} ({}) for {} did not succeed ({} successful, {} failed, exit {:?})\n\
                 --- errors ---\n{}\n--- messages ---\n{}",
                call.call_id,
                call.mailbox,
                outcome.successful,
                outcome.failed,
                outcome.exit_code,
                outcome.errors_log,
                outcome.messages_log
            );
        }
    }
}

/// The site: three servers, Kamailio in front of them, the phone and the
/// callers. Fields drop in order: callers, phone, Kamailio, servers.
pub struct DispatchedSite {
    pub load: Load,
    phone: Option<SippRun>,
    pub kamailio: Kamailio,
    kamailio_ip: Ipv4Addr,
    /// The SIP URI Kamailio knows each server by, in mesh order.
    pub uris: Vec<String>,
    pub mesh: MeshNet,
}

impl DispatchedSite {
    /// Starts the three servers, Kamailio with the shipped configuration
    /// and destination list, and a busy phone that takes `calls` calls.
    pub fn start(calls: usize) -> DispatchedSite {
        DispatchedSite::start_with(calls, |_| {})
    }

    /// Like [`DispatchedSite::start`], with the servers' profiles changed
    /// by `configure` first.
    pub fn start_with(calls: usize, configure: impl FnOnce(&mut MeshNet)) -> DispatchedSite {
        let mut mesh = MeshNet::allocate(3);
        let kamailio_addr = SocketAddrV4::new(mesh.spare_ip(0), KAMAILIO_PORT);
        let phone_addr = SocketAddrV4::new(mesh.spare_ip(1), PHONE_PORT);
        let caller_ip = mesh.spare_ip(2);
        configure(&mut mesh);
        for i in 0..3 {
            // Calls from Kamailio only, as README advises.
            let allow = format!("allow = [\"{}\"]", kamailio_addr.ip());
            mesh[i].extra_sip = format!("{}\n{allow}", mesh[i].extra_sip);
            mesh[i].start();
        }
        let uris: Vec<String> = mesh
            .sites
            .iter()
            .map(|s| format!("sip:{}", s.sip_addr()))
            .collect();

        let list_template = repo_root().join("sip-profiles/kamailio/dispatcher.list");
        let list = fill_placeholders(
            &std::fs::read_to_string(&list_template).expect("read dispatcher.list"),
            &[
                ("@VMESH_1@", mesh[0].sip_addr().to_string()),
                ("@VMESH_2@", mesh[1].sip_addr().to_string()),
                ("@VMESH_3@", mesh[2].sip_addr().to_string()),
            ],
        );
        let list_path = mesh.dir().join("dispatcher.list");
        std::fs::write(&list_path, list).expect("write the destination list");
        let kamailio = Kamailio::start_template(
            "dispatcher.cfg",
            &[
                ("@LISTEN_IP@", kamailio_addr.ip().to_string()),
                ("@LISTEN_PORT@", KAMAILIO_PORT.to_string()),
                ("@PHONE@", phone_addr.to_string()),
                ("@NO_ANSWER_MS@", NO_ANSWER_MS.to_string()),
                ("@DISPATCHER_LIST@", list_path.display().to_string()),
            ],
            &[],
            kamailio_addr,
            *phone_addr.ip(),
            mesh.dir(),
        );

        let phone = SippRun::start(
            &SippSetup {
                remote: kamailio_addr.to_string(),
                local_ip: phone_addr.ip().to_string(),
                local_port: PHONE_PORT,
                media_port: 6100,
                log_dir: mesh.dir(),
            },
            "uas_busy.xml",
            &["-m", &calls.to_string()],
            Duration::from_secs(120),
        );
        wait_udp_bound(SocketAddr::V4(phone_addr), Duration::from_secs(5));
        let load = Load::new(SocketAddr::V4(kamailio_addr), caller_ip, mesh.dir());
        DispatchedSite {
            load,
            phone: Some(phone),
            kamailio,
            kamailio_ip: *kamailio_addr.ip(),
            uris,
            mesh,
        }
    }

    /// What Kamailio logged so far.
    pub fn events(&self) -> Vec<Event> {
        events(&self.kamailio.log())
    }

    /// The index of the server Kamailio knows as `uri`.
    pub fn index_of(&self, uri: &str) -> usize {
        self.uris
            .iter()
            .position(|u| u == uri)
            .unwrap_or_else(|| panic!("Kamailio sent a call to {uri}, no server of the site"))
    }

    /// Waits until Kamailio has sent every call started so far to a
    /// server; returns, per call, the URI of the server that took it.
    pub fn wait_dispatched(&self) -> Vec<String> {
        let events = wait_for(Duration::from_secs(10), || {
            let events = self.events();
            self.load
                .calls
                .iter()
                .all(|c| served_by(&events, &c.call_id).is_some())
                .then_some(events)
        })
        .unwrap_or_else(|| {
            panic!(
                "Kamailio did not dispatch every call within 10 s\n{}",
                self.kamailio.log_tail()
            )
        });
        self.load
            .calls
            .iter()
            .map(|c| {
                served_by(&events, &c.call_id)
                    .expect("dispatched")
                    .to_string()
            })
            .collect()
    }

    /// Waits until Kamailio marks server `index` up after `since`; returns
    /// when it did.
    pub fn wait_marked_up(&self, index: usize, since: f64) -> f64 {
        wait_for(Duration::from_secs(10), || {
            self.events().into_iter().find_map(|e| match e {
                Event::Up { server, at } if server == self.uris[index] && at > since => Some(at),
                _ => None,
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "{} not marked up within 10 s\n{}",
                self.mesh[index].name,
                self.kamailio.log_tail()
            )
        })
    }

    /// Every message at its home exactly once: each home lists one message
    /// per call for its mailboxes (no call missing, none twice), recorded
    /// by the server Kamailio sent the call to, with the Diversion's reason
    /// and the speech's length; some reached each home over the mesh.
    /// Then no transfer is left anywhere and every copy sent is marked
    /// delivered. Waits up to 30 s for the transfers.
    pub fn assert_every_message_home_once(&self) {
        let events = self.events();
        let recorded_by: BTreeMap<&str, &str> = self
            .load
            .calls
            .iter()
            .map(|c| {
                let uri = served_by(&events, &c.call_id).expect("dispatched");
                (
                    c.call_id.as_str(),
                    self.mesh[self.index_of(uri)].name.as_str(),
                )
            })
            .collect();
        for (i, site) in self.mesh.sites.iter().enumerate() {
            let expected: BTreeSet<&str> = self
                .load
                .calls
                .iter()
                .filter(|c| home_of(c.mailbox) == i)
                .map(|c| c.call_id.as_str())
                .collect();
            let at_home = wait_for(Duration::from_secs(30), || {
                let list = home_messages(i, site);
                let calls: BTreeSet<&str> = list.iter().map(|m| field(m, "call_id")).collect();
                (calls == expected).then_some(list)
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} does not hold the messages for its mailboxes within 30 s: want calls \
                     {expected:?}\n{:#?}",
                    site.name,
                    home_messages(i, site)
                )
            });
            assert_eq!(
                at_home.len(),
                expected.len(),
                "{}: a call's message is stored twice: {at_home:#?}",
                site.name
            );
            let ids: BTreeSet<&str> = at_home.iter().map(|m| field(m, "id")).collect();
            assert_eq!(
                ids.len(),
                at_home.len(),
                "{}: an id listed twice",
                site.name
            );
            for message in &at_home {
                let call_id = field(message, "call_id");
                assert_eq!(
                    field(message, "origin"),
                    recorded_by[call_id],
                    "{}: the message of call {call_id} was recorded elsewhere than Kamailio \
                     sent the call",
                    site.name
                );
                assert_eq!(field(message, "delivery"), "home", "{message:#}");
                assert_eq!(field(message, "reason"), "user-busy", "{message:#}");
                let duration = number(message, "duration_ms");
                assert!(
                    duration.abs_diff(SPEECH_SHORT_MS) < 500,
                    "{}: the message of call {call_id} lasts {duration} ms for \
                     {SPEECH_SHORT_MS} ms of speech",
                    site.name
                );
            }
            assert!(
                at_home.iter().any(|m| field(m, "origin") != site.name),
                "{}: no message reached it over the mesh",
                site.name
            );
        }
        for site in &self.mesh.sites {
            let settled = wait_for(Duration::from_secs(10), || {
                let sent: Vec<Value> = site
                    .messages()
                    .into_iter()
                    .filter(|m| field(m, "origin") == site.name && field(m, "delivery") != "home")
                    .collect();
                (site.queue().is_empty()
                    && sent.iter().all(|m| field(m, "delivery") == "delivered"))
                .then_some(())
            });
            assert!(
                settled.is_some(),
                "{}: transfers not all delivered: {:#?}\nqueue: {:#?}",
                site.name,
                site.messages(),
                site.queue()
            );
        }
    }

    /// Waits for the phone to end: it must have seen every call once
    /// (Kamailio rings it once per call, whatever the failovers).
    pub fn assert_phone_saw_every_call(&mut self) {
        let phone = self.phone.take().expect("the phone is checked once").wait();
        assert_eq!(
            (phone.successful, phone.failed),
            (self.load.calls.len() as u64, 0),
            "the phone did not see every call once\n{}",
            phone.errors_log
        );
    }

    /// Each server answered Kamailio's probes with 403 (Kamailio is no
    /// mesh peer), which its log shows once a minute.
    pub fn assert_probed_with_403(&self) {
        let kamailio_ip = self.kamailio_ip.to_string();
        for site in &self.mesh.sites {
            let refused = site.log().lines().any(|l| {
                l.contains("request refused (403)")
                    && l.contains("method=OPTIONS")
                    && l.contains(&format!("source={kamailio_ip}:"))
            });
            assert!(
                refused,
                "{} never answered Kamailio's probes with 403\n{}",
                site.name,
                site.log_tail()
            );
        }
    }
}

//! One site of three vmesh servers behind Kamailio's dispatcher module, as
//! README's "A site of several servers (Kamailio dispatcher)" describes,
//! end to end: a real Kamailio running `sip-profiles/kamailio/dispatcher.cfg`
//! with the servers of `dispatcher.list`, three real vmesh servers of one
//! mesh topology (mutual TLS between them, certificates by `vmesh certs`),
//! a phone that is always busy and callers, all SIPp, on loopback.
//!
//! Each caller calls a user at Kamailio; the phone answers 486, and
//! Kamailio sends the call with a Diversion header to one of the three
//! servers in turn. The test is the load generator: it starts one SIPp
//! caller every [`CALL_SPACING`], each leaving a 3 s message for one of
//! [`MAILBOXES`] (homed on all three servers). Then:
//!
//! 1. the calls spread over the three servers;
//! 2. one server is killed with SIGKILL while calls are up on the others,
//!    at a moment when it holds no call itself (a call being recorded on a
//!    server that dies is lost with it; no balancer can save that one), and
//!    the calls go on at once: those Kamailio still sends to the dead
//!    server before its probes mark it down fail over to the next server
//!    in the same INVITE transaction, and every caller's call succeeds;
//! 3. the server is started again; its probes bring it back into the
//!    rotation and it takes calls again;
//! 4. every message reaches its mailbox's home exactly once, seen with
//!    `vmesh messages list --json` at each home: the messages for the
//!    killed server's mailboxes wait in the others' queues until it is
//!    back, and those it recorded before it died, queued or not, are not
//!    lost or doubled.
//!
//! Kamailio logs each dispatch, failover and change of a server's state
//! with the time it happened (seconds since the epoch); the test reads the
//! log to know which server took each call and to measure the failover
//! window, and prints the figures.

mod common;
#[path = "kamailio/proxy.rs"]
mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::mesh::{wait_for, MeshNet, Site};
use common::sipp::{SippOutcome, SippRun, SippSetup};
use common::{field, number, SPEECH_SHORT_MS};
use proxy::{wait_udp_bound, Kamailio};

/// Kamailio's SIP port, on a spare address of the mesh's block.
const KAMAILIO_PORT: u16 = 5060;
/// The phone's SIP port.
const PHONE_PORT: u16 = 5090;
/// How long the phone would ring (it is always busy, so never used).
const NO_ANSWER_MS: u64 = 2_000;
/// The first caller's SIP port; caller `n` uses `CALLER_PORT + 2n`.
const CALLER_PORT: u16 = 5100;
/// The first caller's media port; caller `n` uses `MEDIA_PORT + 20n`.
const MEDIA_PORT: u16 = 16_000;
/// The mailboxes the calls are for, in turn: some homed on each server,
/// in a cycle whose length (8) is prime to the number of servers, so that
/// round robin sends each mailbox's calls to every server.
const MAILBOXES: [&str; 8] = [
    "1001", "2001", "3001", "3002", "1002", "2002", "3003", "1003",
];
/// Calls started before the kill, after it, and after the server is back.
const CALLS_BEFORE: usize = 12;
const CALLS_DURING: usize = 18;
const CALLS_AFTER: usize = 6;
const TOTAL_CALLS: usize = CALLS_BEFORE + CALLS_DURING + CALLS_AFTER;
/// Time between two callers' starts: with calls of about 4 s, 8 to 10
/// calls are up at a time.
const CALL_SPACING: Duration = Duration::from_millis(400);
/// The server that is killed (site-c, home of 3000-3999).
const VICTIM: usize = 2;
/// dispatcher.cfg's probe interval (ds_ping_interval) plus the time an
/// unanswered probe takes to fail (tm's fr_timer): the longest a dead
/// server may stay up in Kamailio's eyes.
const MARK_DOWN_BOUND: Duration = Duration::from_millis(1_000 + 2_000);
/// Slack over a bound measured on a loaded machine.
const SLACK: Duration = Duration::from_secs(2);

/// What Kamailio logged about the calls and the servers (dispatcher.cfg's
/// xlog lines).
#[derive(Clone, Debug, PartialEq)]
enum Event {
    /// A call sent to a server.
    Dispatch {
        call_id: String,
        to: String,
        at: f64,
    },
    /// A server that did not take a call; the call goes on to the next.
    Failover {
        call_id: String,
        from: String,
        at: f64,
    },
    /// A server marked down by the probes.
    Down { server: String, at: f64 },
    /// A server marked up again.
    Up { server: String, at: f64 },
}

/// The events in Kamailio's log, in order.
fn events(log: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for line in log.lines() {
        let Some((_, text)) = line.split_once("<script>: ") else {
            continue;
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let at = |w: Option<&&str>| {
            w.and_then(|w| w.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no time in Kamailio's line {line:?}"))
        };
        match words.as_slice() {
            ["dispatch:", call_id, "for", _user, "to", to, "at", time] => {
                out.push(Event::Dispatch {
                    call_id: call_id.to_string(),
                    to: to.to_string(),
                    at: at(Some(time)),
                })
            }
            ["failover:", call_id, from, .., "at", time] => out.push(Event::Failover {
                call_id: call_id.trim_end_matches(':').to_string(),
                from: from.to_string(),
                at: at(Some(time)),
            }),
            ["vmesh", "server", server, "is", "down", "at", time] => out.push(Event::Down {
                server: server.to_string(),
                at: at(Some(time)),
            }),
            ["vmesh", "server", server, "is", "up", "at", time] => out.push(Event::Up {
                server: server.to_string(),
                at: at(Some(time)),
            }),
            _ => {}
        }
    }
    out
}

/// The server that finally took call `call_id` (its last dispatch).
fn served_by<'a>(events: &'a [Event], call_id: &str) -> Option<&'a str> {
    events.iter().rev().find_map(|e| match e {
        Event::Dispatch { call_id: c, to, .. } if c == call_id => Some(to.as_str()),
        _ => None,
    })
}

/// Seconds since the epoch, the clock of Kamailio's `$TV(Sn)`.
fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// The SIP URI Kamailio knows a server by (dispatcher.list).
fn uri_of(site: &Site) -> String {
    format!("sip:{}", site.sip_addr())
}

/// The index of the home server of `mailbox` (site-a is home to 1xxx,
/// site-b to 2xxx, site-c to 3xxx).
fn home_of(mailbox: &str) -> usize {
    match mailbox.as_bytes().first() {
        Some(b'1') => 0,
        Some(b'2') => 1,
        Some(b'3') => 2,
        _ => panic!("mailbox {mailbox} is homed nowhere"),
    }
}

/// One caller.
struct Call {
    mailbox: &'static str,
    /// The Call-ID SIPp gives it (`-cid_str`).
    call_id: String,
    run: Option<SippRun>,
    outcome: Option<SippOutcome>,
}

/// The callers, one SIPp each, started one at a time by the test.
struct Load {
    kamailio: SocketAddr,
    caller_ip: Ipv4Addr,
    log_dir: PathBuf,
    calls: Vec<Call>,
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
    fn launch(&mut self) {
        let n = self.calls.len();
        let mailbox = MAILBOXES[n % MAILBOXES.len()];
        let call_id = format!("dispatch-{n}@{}", self.caller_ip);
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
            Duration::from_secs(30),
        );
        self.calls.push(Call {
            mailbox,
            call_id,
            run: Some(run),
            outcome: None,
        });
    }

    /// Starts `count` callers, [`CALL_SPACING`] apart.
    fn launch_paced(&mut self, count: usize) {
        for i in 0..count {
            if i > 0 {
                std::thread::sleep(CALL_SPACING);
            }
            self.launch();
        }
    }

    /// Waits for call `n` to end.
    fn finish(&mut self, n: usize) {
        if let Some(run) = self.calls[n].run.take() {
            self.calls[n].outcome = Some(run.wait());
        }
    }

    /// Waits for every call to end.
    fn finish_all(&mut self) {
        for n in 0..self.calls.len() {
            self.finish(n);
        }
    }

    /// The calls still up (their SIPp has not exited).
    fn in_progress(&mut self) -> Vec<usize> {
        (0..self.calls.len())
            .filter(|&n| self.calls[n].run.as_mut().is_some_and(|r| !r.finished()))
            .collect()
    }

    /// Panics with SIPp's account of the first call that did not succeed.
    fn assert_all_succeeded(&self) {
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

/// The messages `site` lists for the mailboxes it is home to.
fn home_messages(site_index: usize, site: &Site) -> Vec<Value> {
    site.messages()
        .into_iter()
        .filter(|m| home_of(field(m, "mailbox")) == site_index)
        .collect()
}

#[test]
fn calls_spread_over_three_servers_and_survive_one_killed() {
    let mut mesh = MeshNet::allocate(3);
    for i in 0..3 {
        mesh[i].start();
    }
    let uris: Vec<String> = mesh.sites.iter().map(uri_of).collect();
    let names: Vec<String> = mesh.sites.iter().map(|s| s.name.clone()).collect();
    let name_of = |uri: &str| -> String {
        let i = uris
            .iter()
            .position(|u| u == uri)
            .unwrap_or_else(|| panic!("Kamailio sent a call to {uri}, no server of the site"));
        names[i].clone()
    };

    // Kamailio with the shipped configuration and destination list.
    let kamailio_addr = SocketAddrV4::new(mesh.spare_ip(0), KAMAILIO_PORT);
    let phone_addr = SocketAddrV4::new(mesh.spare_ip(1), PHONE_PORT);
    let caller_ip = mesh.spare_ip(2);
    let list_template = common::repo_root().join("sip-profiles/kamailio/dispatcher.list");
    let list = proxy::fill_placeholders(
        &std::fs::read_to_string(&list_template).expect("read dispatcher.list"),
        &[
            ("@VMESH_1@", mesh[0].sip_addr().to_string()),
            ("@VMESH_2@", mesh[1].sip_addr().to_string()),
            ("@VMESH_3@", mesh[2].sip_addr().to_string()),
        ],
    );
    let list_path = mesh.dir().join("dispatcher.list");
    std::fs::write(&list_path, list).expect("write the destination list");
    // Declared after the mesh, so stopped before its servers.
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
        &["-m", &TOTAL_CALLS.to_string()],
        Duration::from_secs(120),
    );
    wait_udp_bound(SocketAddr::V4(phone_addr), Duration::from_secs(5));
    let mut load = Load::new(SocketAddr::V4(kamailio_addr), caller_ip, mesh.dir());

    // 1. Calls spread over the three servers.
    load.launch_paced(CALLS_BEFORE);

    // 2. Kill the victim while calls are up on the others but none on it:
    // the test starts no call until it is dead, waits until Kamailio has
    // sent every call somewhere, and lets the victim's own calls end.
    let dispatched = wait_for(Duration::from_secs(10), || {
        let events = events(&kamailio.log());
        load.calls
            .iter()
            .all(|c| served_by(&events, &c.call_id).is_some())
            .then_some(events)
    })
    .unwrap_or_else(|| {
        panic!(
            "Kamailio did not dispatch every call within 10 s\n{}",
            kamailio.log_tail()
        )
    });
    let before: Vec<String> = load
        .calls
        .iter()
        .map(|c| {
            served_by(&dispatched, &c.call_id)
                .expect("dispatched")
                .to_string()
        })
        .collect();
    for (i, uri) in uris.iter().enumerate() {
        let taken = before.iter().filter(|u| *u == uri).count();
        assert!(
            taken > 0,
            "{} took none of the first {CALLS_BEFORE} calls: {before:?}",
            mesh[i].name
        );
    }
    for n in (0..before.len()).filter(|&n| before[n] == uris[VICTIM]) {
        load.finish(n);
    }
    let up_elsewhere = load.in_progress();
    let killed_at = wall_clock();
    mesh[VICTIM].kill9();
    let log_at_kill = kamailio.log().len();
    load.launch_paced(CALLS_DURING);
    load.finish_all();
    eprintln!(
        "{} killed with {} calls up on the other servers",
        mesh[VICTIM].name,
        up_elsewhere.len()
    );
    assert!(
        !up_elsewhere.is_empty(),
        "no call was up on the other servers when {} was killed",
        mesh[VICTIM].name
    );

    // Every caller's call succeeded, those in the failover window too.
    let during = events(&kamailio.log());
    for n in 0..load.calls.len() {
        let call = &load.calls[n];
        assert!(
            served_by(&during, &call.call_id).is_some(),
            "Kamailio never dispatched call {n}\n{}",
            kamailio.log_tail()
        );
    }
    load.assert_all_succeeded();

    // The probes marked the victim down, and only the victim; until then,
    // calls sent to it failed over; after that, none was sent to it.
    let downs: Vec<(&String, f64)> = during
        .iter()
        .filter_map(|e| match e {
            Event::Down { server, at } => Some((server, *at)),
            _ => None,
        })
        .collect();
    assert_eq!(
        downs.len(),
        1,
        "one server marked down, once (403 to a probe proves a server alive): {downs:?}\n{}",
        kamailio.log_tail()
    );
    let (down_server, down_at) = downs[0];
    assert_eq!(
        down_server, &uris[VICTIM],
        "the killed server is marked down"
    );
    let window = down_at - killed_at;
    assert!(
        window > 0.0 && window <= (MARK_DOWN_BOUND + SLACK).as_secs_f64(),
        "{} marked down {window:.3} s after it was killed (want within {MARK_DOWN_BOUND:?}, \
         and {SLACK:?} of slack)",
        mesh[VICTIM].name
    );
    let to_dead: Vec<(&String, f64)> = during
        .iter()
        .filter_map(|e| match e {
            Event::Dispatch { call_id, to, at } if *to == uris[VICTIM] && *at > killed_at => {
                Some((call_id, *at))
            }
            _ => None,
        })
        .collect();
    let failovers: Vec<(&String, &String, f64)> = during
        .iter()
        .filter_map(|e| match e {
            Event::Failover { call_id, from, at } => Some((call_id, from, *at)),
            _ => None,
        })
        .collect();
    assert!(
        !to_dead.is_empty(),
        "no call was sent to {} between its death and its marking down: the failover \
         was not exercised\n{}",
        mesh[VICTIM].name,
        kamailio.log_tail()
    );
    let mut extra_delays = Vec::new();
    for (call_id, sent_at) in &to_dead {
        assert!(
            *sent_at < down_at,
            "call {call_id} was sent to {} after it was marked down",
            mesh[VICTIM].name
        );
        let failover = failovers
            .iter()
            .find(|(c, from, _)| c == call_id && **from == uris[VICTIM])
            .unwrap_or_else(|| panic!("call {call_id} sent to the dead server never failed over"));
        let next = served_by(&during, call_id).expect("dispatched");
        assert_ne!(
            next, uris[VICTIM],
            "call {call_id} failed over to the dead server"
        );
        extra_delays.push(failover.2 - sent_at);
    }
    assert_eq!(
        failovers.len(),
        to_dead.len(),
        "a failover from a live server: {failovers:?}"
    );
    eprintln!(
        "{} marked down {window:.3} s after it was killed; {} calls were sent to it \
         meanwhile and failed over, each {:.3?} s later than it would have been answered",
        mesh[VICTIM].name,
        to_dead.len(),
        extra_delays
    );
    let after_kill = &kamailio.log()[log_at_kill..];
    assert!(
        !after_kill.contains("no vmesh server") && !after_kill.contains("cannot relay"),
        "a call found no server to go to:\n{}",
        kamailio.log_tail()
    );

    // The messages for the victim's mailboxes recorded since its death
    // wait in the others' queues (those recorded before may have reached
    // it already).
    let mut waiting_for_victim = 0;
    for live in (0..3).filter(|&i| i != VICTIM) {
        let site = &mesh[live];
        let mine: BTreeMap<&str, bool> = load
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| home_of(c.mailbox) == VICTIM)
            .filter(|(_, c)| {
                name_of(served_by(&during, &c.call_id).expect("dispatched")) == site.name
            })
            .map(|(n, c)| (c.call_id.as_str(), n >= CALLS_BEFORE))
            .collect();
        let listed = wait_for(Duration::from_secs(10), || {
            let list: BTreeMap<String, String> = site
                .messages()
                .iter()
                .filter(|m| home_of(field(m, "mailbox")) == VICTIM)
                .map(|m| {
                    (
                        field(m, "call_id").to_string(),
                        field(m, "delivery").to_string(),
                    )
                })
                .collect();
            let complete = list.len() == mine.len()
                && mine.iter().all(|(call_id, after_kill)| {
                    list.get(*call_id).is_some_and(|delivery| {
                        delivery == "queued" || (!after_kill && delivery == "delivered")
                    })
                });
            complete.then_some(list)
        });
        let listed = listed.unwrap_or_else(|| {
            panic!(
                "{} does not hold the messages it recorded for {}'s mailboxes, those since \
                 its death queued: want {mine:?}\n{:#?}\nqueue: {:#?}",
                site.name,
                mesh[VICTIM].name,
                site.messages(),
                site.queue()
            )
        });
        waiting_for_victim += listed.values().filter(|d| *d == "queued").count();
    }
    assert!(
        waiting_for_victim > 0,
        "no message waited for {} while it was dead",
        mesh[VICTIM].name
    );
    eprintln!(
        "{waiting_for_victim} messages waited for {} at the other servers",
        mesh[VICTIM].name
    );

    // 3. The victim comes back: the probes put it back into the rotation,
    // and the queued messages reach it.
    let restarted_at = wall_clock();
    let restart = Instant::now();
    mesh[VICTIM].start();
    let up_at = wait_for(Duration::from_secs(10), || {
        events(&kamailio.log()).into_iter().find_map(|e| match e {
            Event::Up { server, at } if server == uris[VICTIM] && at > restarted_at => Some(at),
            _ => None,
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "{} not marked up within 10 s of its restart\n{}",
            mesh[VICTIM].name,
            kamailio.log_tail()
        )
    });
    let expected_at_victim: BTreeSet<&str> = load
        .calls
        .iter()
        .filter(|c| home_of(c.mailbox) == VICTIM)
        .map(|c| c.call_id.as_str())
        .collect();
    let delivered_after = wait_for(Duration::from_secs(30), || {
        let list = home_messages(VICTIM, &mesh[VICTIM]);
        let calls: BTreeSet<&str> = list.iter().map(|m| field(m, "call_id")).collect();
        (calls == expected_at_victim).then(|| restart.elapsed())
    })
    .unwrap_or_else(|| {
        panic!(
            "{} does not hold the messages for its mailboxes within 30 s of its restart: \
             want calls {expected_at_victim:?}\n{:#?}",
            mesh[VICTIM].name,
            home_messages(VICTIM, &mesh[VICTIM])
        )
    });
    eprintln!(
        "{} restarted: marked up {:.3} s later, every message for its mailboxes there \
         {delivered_after:.3?} after the restart",
        mesh[VICTIM].name,
        up_at - restarted_at
    );

    load.launch_paced(CALLS_AFTER);
    load.finish_all();
    load.assert_all_succeeded();
    let all = events(&kamailio.log());
    let after: Vec<&str> = load.calls[CALLS_BEFORE + CALLS_DURING..]
        .iter()
        .map(|c| served_by(&all, &c.call_id).expect("dispatched"))
        .collect();
    assert!(
        after.iter().any(|u| *u == uris[VICTIM]),
        "{} took none of the calls after it came back: {after:?}",
        mesh[VICTIM].name
    );
    assert!(
        !all.iter().any(|e| matches!(e,
            Event::Dispatch { to, at, .. } if *to == uris[VICTIM] && *at > down_at && *at < up_at)),
        "a call was sent to {} while it was marked down",
        mesh[VICTIM].name
    );

    // 4. Every message at its home, exactly once, recorded where
    // Kamailio sent its call, with the reason of the Diversion.
    let recorded_by: BTreeMap<&str, String> = load
        .calls
        .iter()
        .map(|c| {
            let by = served_by(&all, &c.call_id).expect("dispatched");
            (c.call_id.as_str(), name_of(by))
        })
        .collect();
    for (i, site) in mesh.sites.iter().enumerate() {
        let expected: BTreeSet<&str> = load
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
                "{}: message of call {call_id} recorded elsewhere than Kamailio sent it",
                site.name
            );
            assert_eq!(field(message, "delivery"), "home", "{message:#}");
            assert_eq!(field(message, "reason"), "user-busy", "{message:#}");
            let duration = number(message, "duration_ms");
            assert!(
                duration.abs_diff(SPEECH_SHORT_MS) < 500,
                "{}: message of call {call_id} lasts {duration} ms for {SPEECH_SHORT_MS} ms \
                 of speech",
                site.name
            );
        }
        let by_mesh = at_home
            .iter()
            .filter(|m| field(m, "origin") != site.name)
            .count();
        assert!(
            by_mesh > 0,
            "{}: no message reached it over the mesh",
            site.name
        );
    }
    // Nothing left to send anywhere, every copy sent marked delivered.
    for site in &mesh.sites {
        let settled = wait_for(Duration::from_secs(10), || {
            let sent: Vec<Value> = site
                .messages()
                .into_iter()
                .filter(|m| field(m, "origin") == site.name && field(m, "delivery") != "home")
                .collect();
            (site.queue().is_empty() && sent.iter().all(|m| field(m, "delivery") == "delivered"))
                .then_some(sent.len())
        });
        assert!(
            settled.is_some(),
            "{}: transfers not all delivered: {:#?}\nqueue: {:#?}",
            site.name,
            site.messages(),
            site.queue()
        );
    }
    let phone = phone.wait();
    assert_eq!(
        (phone.successful, phone.failed),
        (TOTAL_CALLS as u64, 0),
        "the phone saw every call once\n{}",
        phone.errors_log
    );
    // The probes reached every server and got 403 (they are no mesh peers).
    for site in &mesh.sites {
        let refused = site.log().lines().any(|l| {
            l.contains("request refused (403)")
                && l.contains("OPTIONS")
                && l.contains(&kamailio_addr.ip().to_string())
        });
        assert!(
            refused,
            "{} never answered Kamailio's probe with 403\n{}",
            site.name,
            site.log_tail()
        );
    }
    drop(kamailio);
}

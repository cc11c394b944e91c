//! One site of three vmesh servers behind Kamailio's dispatcher module, as
//! README's "A site of several servers (Kamailio dispatcher)" describes,
//! end to end through a real Kamailio, three real servers of one mesh and
//! SIPp callers ([`site::DispatchedSite`]).
//!
//! - A server killed with SIGKILL: the calls spread over the three servers;
//!   one is killed while calls are up on the others, at a moment when it
//!   holds no call itself (a call being recorded on a server that dies is
//!   lost with it, which no balancer can prevent: the test starts no new
//!   call meanwhile, picks the server whose last call started first and
//!   lets that call end). The calls go on at once: those Kamailio still
//!   sends to the dead server before its probes mark it down time out and
//!   fail over to the next server in the same INVITE transaction, and every
//!   caller's call succeeds. The messages for its mailboxes wait in the
//!   others' queues; once it is started again, the probes bring it back,
//!   it takes calls again, and every message reaches its home exactly once.
//! - A server that is full (`sip.max_calls`): it answers 503 with
//!   Retry-After, and Kamailio passes the call on to the next server at
//!   once, in the same transaction; the probes keep it in the rotation.
//!
//! Each test prints what it measured (`--nocapture`).

mod common;
#[path = "kamailio/proxy.rs"]
mod proxy;
#[path = "dispatcher/site.rs"]
mod site;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::field;
use common::mesh::wait_for;
use site::{home_messages, home_of, served_by, wall_clock, DispatchedSite, Event};

/// dispatcher.cfg's probe interval (ds_ping_interval) plus the time an
/// unanswered probe takes to fail (tm's fr_timer): the longest a dead
/// server stays up in Kamailio's eyes.
const MARK_DOWN_BOUND: Duration = Duration::from_millis(1_000 + 2_000);
/// dispatcher.cfg's VMESH_NO_REPLY_MS: how long a call waits for a dead
/// server before it fails over.
const NO_REPLY: Duration = Duration::from_millis(2_000);
/// Slack over a bound measured on a loaded machine.
const SLACK: Duration = Duration::from_secs(2);

#[test]
fn calls_go_on_when_a_server_is_killed_and_every_message_reaches_its_home() {
    const CALLS_BEFORE: usize = 12;
    const CALLS_DURING: usize = 18;
    const CALLS_AFTER: usize = 6;
    let mut site = DispatchedSite::start(CALLS_BEFORE + CALLS_DURING + CALLS_AFTER);

    // The calls spread over the three servers.
    site.load.launch_paced(CALLS_BEFORE);
    let before = site.wait_dispatched();
    for (i, uri) in site.uris.iter().enumerate() {
        assert!(
            before.contains(uri),
            "{} took none of the first {CALLS_BEFORE} calls: {before:?}",
            site.mesh[i].name
        );
    }

    // The victim: the server whose last call started first, so that the
    // others' later calls are still up when its own have ended.
    let last_call_of = |uri: &String| before.iter().rposition(|u| u == uri);
    let victim = (0..3)
        .min_by_key(|&i| last_call_of(&site.uris[i]))
        .expect("three servers");
    let victim_uri = site.uris[victim].clone();
    let victim_name = site.mesh[victim].name.clone();
    for n in (0..before.len()).filter(|&n| before[n] == victim_uri) {
        site.load.finish(n);
    }
    let up_elsewhere = site.load.in_progress();
    let killed_at = wall_clock();
    site.mesh[victim].kill9();
    site.load.launch_paced(CALLS_DURING);
    site.load.assert_all_succeeded();
    eprintln!(
        "{victim_name} killed with {} calls up on the other servers",
        up_elsewhere.len()
    );
    assert!(
        !up_elsewhere.is_empty(),
        "no call was up on the other servers when {victim_name} was killed"
    );

    // The probes marked the victim down, and only the victim; until then,
    // the calls sent to it timed out and failed over to a live server.
    let during = site.events();
    let downs: Vec<(&str, f64)> = during
        .iter()
        .filter_map(|e| match e {
            Event::Down { server, at } => Some((server.as_str(), *at)),
            _ => None,
        })
        .collect();
    assert!(
        downs.len() == 1 && downs[0].0 == victim_uri,
        "only {victim_name} marked down, once (a 403 to a probe proves a server alive): \
         {downs:?}\n{}",
        site.kamailio.log_tail()
    );
    let down_at = downs[0].1;
    let window = down_at - killed_at;
    assert!(
        window > 0.0 && window <= (MARK_DOWN_BOUND + SLACK).as_secs_f64(),
        "{victim_name} marked down {window:.3} s after it was killed (want within \
         {MARK_DOWN_BOUND:?}, and {SLACK:?} of slack)"
    );
    let to_dead: Vec<(&str, f64)> = during
        .iter()
        .filter_map(|e| match e {
            Event::Dispatch { call_id, to, at } if *to == victim_uri && *at > killed_at => {
                Some((call_id.as_str(), *at))
            }
            _ => None,
        })
        .collect();
    assert!(
        !to_dead.is_empty(),
        "no call was sent to {victim_name} between its death and its marking down: the \
         failover was not exercised\n{}",
        site.kamailio.log_tail()
    );
    let failovers: Vec<(&str, &str, bool, f64)> = during
        .iter()
        .filter_map(|e| match e {
            Event::Failover {
                call_id,
                from,
                refused,
                at,
            } => Some((call_id.as_str(), from.as_str(), *refused, *at)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failovers.len(),
        to_dead.len(),
        "one failover per call sent to the dead server, none from a live one: {failovers:?}"
    );
    let mut waits = Vec::new();
    for (call_id, sent_at) in &to_dead {
        assert!(
            *sent_at < down_at,
            "call {call_id} was sent to {victim_name} after it was marked down"
        );
        let &(_, _, refused, failed_at) = failovers
            .iter()
            .find(|(c, from, _, _)| c == call_id && *from == victim_uri)
            .unwrap_or_else(|| panic!("call {call_id} sent to the dead server never failed over"));
        assert!(!refused, "a dead server refused call {call_id}");
        let next = served_by(&during, call_id).expect("dispatched");
        assert_ne!(
            next, victim_uri,
            "call {call_id} failed over to the dead server"
        );
        let waited = failed_at - sent_at;
        assert!(
            (waited - NO_REPLY.as_secs_f64()).abs() < 0.5,
            "call {call_id} waited {waited:.3} s for the dead server (want {NO_REPLY:?})"
        );
        waits.push(waited);
    }
    eprintln!(
        "{victim_name} marked down {window:.3} s after it was killed; {} calls were sent to \
         it meanwhile and failed over, after waiting {waits:.3?} s",
        to_dead.len(),
    );
    let log = site.kamailio.log();
    assert!(
        !log.contains("no vmesh server") && !log.contains("cannot relay"),
        "a call found no server to go to:\n{}",
        site.kamailio.log_tail()
    );

    // The messages for the victim's mailboxes recorded since its death
    // wait in the others' queues (those recorded before may have reached
    // it already).
    let mut waiting = 0;
    for live in (0..3).filter(|&i| i != victim) {
        let server = &site.mesh[live];
        let recorded_here: BTreeMap<&str, bool> = site
            .load
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| home_of(c.mailbox) == victim)
            .filter(|(_, c)| served_by(&during, &c.call_id) == Some(site.uris[live].as_str()))
            .map(|(n, c)| (c.call_id.as_str(), n >= CALLS_BEFORE))
            .collect();
        let listed = wait_for(Duration::from_secs(10), || {
            let list: BTreeMap<String, String> = server
                .messages()
                .iter()
                .filter(|m| home_of(field(m, "mailbox")) == victim)
                .map(|m| {
                    let delivery = field(m, "delivery").to_string();
                    (field(m, "call_id").to_string(), delivery)
                })
                .collect();
            let as_expected = list.len() == recorded_here.len()
                && recorded_here.iter().all(|(call_id, after_kill)| {
                    list.get(*call_id).is_some_and(|delivery| {
                        delivery == "queued" || (!after_kill && delivery == "delivered")
                    })
                });
            as_expected.then_some(list)
        })
        .unwrap_or_else(|| {
            panic!(
                "{} does not hold the messages it recorded for {victim_name}'s mailboxes, \
                 those since its death queued: want {recorded_here:?}\n{:#?}\nqueue: {:#?}",
                server.name,
                server.messages(),
                server.queue()
            )
        });
        waiting += listed.values().filter(|d| *d == "queued").count();
    }
    assert!(waiting > 0, "no message waited for {victim_name}");

    // The victim comes back: the probes put it back into the rotation and
    // the messages waiting for it arrive.
    let restarted_at = wall_clock();
    let restart = Instant::now();
    site.mesh[victim].start();
    let up_at = site.wait_marked_up(victim, restarted_at);
    let expected: Vec<&str> = site
        .load
        .calls
        .iter()
        .filter(|c| home_of(c.mailbox) == victim)
        .map(|c| c.call_id.as_str())
        .collect();
    let delivered_after = wait_for(Duration::from_secs(30), || {
        let list = home_messages(victim, &site.mesh[victim]);
        expected
            .iter()
            .all(|c| list.iter().any(|m| field(m, "call_id") == *c))
            .then(|| restart.elapsed())
    })
    .unwrap_or_else(|| {
        panic!(
            "{victim_name} lacks messages for its mailboxes 30 s after its restart: want \
             calls {expected:?}\n{:#?}",
            home_messages(victim, &site.mesh[victim])
        )
    });
    eprintln!(
        "{victim_name} restarted: marked up {:.3} s later; the {waiting} messages waiting \
         for it at the others, and those it had recorded, all at home {delivered_after:.3?} \
         after the restart",
        up_at - restarted_at
    );

    // It takes calls again, and never took one while marked down.
    site.load.launch_paced(CALLS_AFTER);
    site.load.assert_all_succeeded();
    let after = site.wait_dispatched();
    assert!(
        after[CALLS_BEFORE + CALLS_DURING..].contains(&victim_uri),
        "{victim_name} took none of the calls after it came back: {after:?}"
    );
    let sent_while_down = site.events().into_iter().any(|e| {
        matches!(e, Event::Dispatch { to, at, .. }
            if to == victim_uri && at > down_at && at < up_at)
    });
    assert!(
        !sent_while_down,
        "a call was sent to {victim_name} while it was marked down"
    );

    site.assert_every_message_home_once();
    site.assert_phone_saw_every_call();
    site.assert_probed_with_403();
}

#[test]
fn a_full_server_answers_503_and_its_calls_go_to_the_next_at_once() {
    const CALLS: usize = 15;
    // site-a records one call at a time (sip.max_calls = 1): while one is
    // up, it answers 503 with Retry-After to the next.
    const FULL: usize = 0;
    let mut site = DispatchedSite::start_with(CALLS, |mesh| {
        mesh[FULL].extra_sip = "max_calls = 1".into();
    });
    let full_uri = site.uris[FULL].clone();
    let full_name = site.mesh[FULL].name.clone();

    site.load.launch_paced(CALLS);
    site.load.assert_all_succeeded();
    let served = site.wait_dispatched();
    let events = site.events();

    // Each call it refused went on to another server at once, and it was
    // never marked down: it answered every probe.
    let mut refused = Vec::new();
    for e in &events {
        let Event::Failover {
            call_id,
            from,
            refused: true,
            at,
        } = e
        else {
            continue;
        };
        assert_eq!(
            *from, full_uri,
            "a server that is not full refused {call_id}"
        );
        let sent_at = events
            .iter()
            .find_map(|d| match d {
                Event::Dispatch { call_id: c, to, at } if c == call_id && *to == full_uri => {
                    Some(*at)
                }
                _ => None,
            })
            .expect("a refused call was sent to the full server");
        assert_ne!(
            served_by(&events, call_id),
            Some(full_uri.as_str()),
            "call {call_id} was refused, then recorded by {full_name}"
        );
        refused.push(at - sent_at);
    }
    assert!(
        !refused.is_empty(),
        "{full_name} refused none of the calls sent to it\n{}",
        site.kamailio.log_tail()
    );
    assert!(
        refused.iter().all(|waited| *waited < 0.5),
        "a refused call waited before its failover: {refused:.3?} s"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Down { .. })),
        "a server was marked down\n{}",
        site.kamailio.log_tail()
    );
    let took = served.iter().filter(|u| **u == full_uri).count();
    assert!(took > 0, "{full_name} took no call at all: {served:?}");
    eprintln!(
        "{full_name} (max_calls = 1) took {took} of {CALLS} calls and refused {} with 503, \
         each passed on after {refused:.4?} s",
        refused.len()
    );

    site.assert_every_message_home_once();
    site.assert_phone_saw_every_call();
}

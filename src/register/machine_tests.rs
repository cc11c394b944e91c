//! The registration state machine, driven with injected time: refresh
//! timing, granted lifetimes, backoff, refusals retried slowly, 423, stale
//! nonces, lapsed bindings and unregistering.

use std::time::{Duration, Instant};

use super::*;
use crate::config::Password;
use crate::register::backoff::{REJECTED, TRANSIENT};

const S: fn(u64) -> Duration = Duration::from_secs;

fn registration(expires: u64, password: bool) -> Registration {
    let authorizer = password.then(|| Authorizer::new("vm", Password::new("pw"), "sip:10.0.0.1"));
    Registration::new(Settings {
        expires: S(expires),
        authorizer,
        seed: 42,
    })
}

fn answer(cseq: u32, status: u16) -> Answer {
    Answer {
        cseq,
        status,
        reason: "Reason".into(),
        granted: None,
        min_expires: None,
        retry_after: None,
        challenge: Err(ChallengeError::NoChallenge),
    }
}

fn ok(cseq: u32, granted: u64) -> Answer {
    Answer {
        granted: Some(S(granted)),
        ..answer(cseq, 200)
    }
}

fn challenge(cseq: u32, nonce: &str, stale: bool) -> Answer {
    let header = format!("Digest realm=\"r\", nonce=\"{nonce}\", qop=\"auth\", stale={stale}");
    Answer {
        challenge: Challenge::parse(&header),
        ..answer(cseq, 401)
    }
}

/// Sends the due REGISTER, panicking if there is none.
fn send(r: &mut Registration, now: Instant) -> Register {
    r.poll_transmit(now).expect("a REGISTER is due")
}

fn auth_of(register: &Register) -> &str {
    match register.authorization.as_slice() {
        [header] => &header.value,
        other => panic!("expected one Authorization, got {other:?}"),
    }
}

/// Registered at `t0` after a challenge; returns the time.
fn registered(r: &mut Registration, t0: Instant, granted: u64) -> Instant {
    let first = send(r, t0);
    assert!(first.authorization.is_empty());
    r.on_response(&challenge(first.cseq, "n1", false), t0);
    let second = send(r, t0);
    assert!(auth_of(&second).contains("nonce=\"n1\""));
    r.on_response(&ok(second.cseq, granted), t0);
    assert_eq!(r.snapshot().phase, Phase::Registered);
    t0
}

#[test]
fn registers_at_once_answers_the_challenge_and_refreshes_before_expiry() {
    let t0 = Instant::now();
    let mut r = registration(600, true);
    assert_eq!(r.snapshot().phase, Phase::Registering);
    let first = send(&mut r, t0);
    assert_eq!((first.cseq, first.expires), (1, 600));
    assert!(r.poll_transmit(t0).is_none(), "one REGISTER at a time");
    r.on_response(&challenge(1, "n1", false), t0 + S(0));
    let second = send(&mut r, t0);
    assert_eq!(second.cseq, 2, "the answer is a new transaction");
    assert!(auth_of(&second).contains("nc=00000001"));
    // The 200 comes 1 s after the REGISTER left: the lifetime runs from
    // the send.
    r.on_response(&ok(2, 600), t0 + S(1));
    let snap = r.snapshot();
    let binding = snap.binding.unwrap();
    assert_eq!(snap.phase, Phase::Registered);
    assert_eq!(binding.expires_at, t0 + S(600));
    assert_eq!(binding.refresh_at, t0 + S(480), "2 minutes before expiry");
    assert_eq!(r.poll_timeout(), Some(t0 + S(480)));
    r.handle_timeout(t0 + S(479));
    assert!(r.poll_transmit(t0 + S(479)).is_none());
    r.handle_timeout(t0 + S(480));
    let refresh = send(&mut r, t0 + S(480));
    assert_eq!((refresh.cseq, refresh.expires), (3, 600));
    // The nonce is reused pre-emptively, counted.
    assert!(auth_of(&refresh).contains("nonce=\"n1\""));
    assert!(auth_of(&refresh).contains("nc=00000002"));
    assert_eq!(
        r.snapshot().phase,
        Phase::Registered,
        "still bound while refreshing"
    );
    r.on_response(&ok(3, 600), t0 + S(480));
    assert_eq!(r.poll_timeout(), Some(t0 + S(960)));
}

#[test]
fn follows_the_lifetime_the_registrar_granted() {
    let t0 = Instant::now();
    let mut r = registration(600, false);
    let first = send(&mut r, t0);
    r.on_response(&ok(first.cseq, 60), t0);
    let binding = r.snapshot().binding.unwrap();
    assert_eq!(binding.granted, S(60));
    assert_eq!(binding.expires_at, t0 + S(60));
    assert_eq!(
        binding.refresh_at,
        t0 + S(30),
        "half-way for short lifetimes"
    );
    // The next REGISTER still asks for what the profile says.
    r.handle_timeout(t0 + S(30));
    assert_eq!(send(&mut r, t0 + S(30)).expires, 600);
    // A longer grant is followed too.
    r.on_response(&ok(2, 3600), t0 + S(30));
    assert_eq!(r.poll_timeout(), Some(t0 + S(30 + 3600 - 120)));
}

#[test]
fn an_unreachable_registrar_is_retried_with_growing_delays() {
    let t0 = Instant::now();
    let mut r = registration(600, false);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..10 {
        send(&mut r, now);
        r.on_transport_failure("no response within 32 s", now);
        let snap = r.snapshot();
        assert_eq!(snap.phase, Phase::Failing);
        assert_eq!(snap.last_failure.as_ref().unwrap().status, None);
        let next = snap.next_attempt.unwrap();
        delays.push(next - now);
        assert!(r.poll_transmit(now).is_none(), "nothing before the delay");
        r.handle_timeout(next - Duration::from_millis(1));
        assert!(r.poll_transmit(now).is_none(), "nothing before the delay");
        now = next;
        r.handle_timeout(now);
    }
    for (n, delay) in delays.iter().enumerate() {
        let nominal = TRANSIENT.nominal(n as u32 + 1);
        assert!(
            *delay >= nominal / 2 && *delay <= nominal,
            "failure {}: {delay:?} not within [{:?}, {nominal:?}]",
            n + 1,
            nominal / 2
        );
    }
    assert!(delays[0] <= S(2) && delays[9] >= S(150), "{delays:?}");
    assert_eq!(r.snapshot().failures, 10);
}

#[test]
fn forbidden_is_retried_slowly_never_in_a_tight_loop() {
    let t0 = Instant::now();
    let mut r = registration(600, true);
    let mut now = t0;
    let mut sent = 0;
    // An hour of a registrar that answers 403 to everything.
    while now < t0 + S(3600) {
        if let Some(register) = r.poll_transmit(now) {
            sent += 1;
            r.on_response(&answer(register.cseq, 403), now);
            let snap = r.snapshot();
            let failure = snap.last_failure.unwrap();
            assert_eq!(
                (failure.status, failure.kind),
                (Some(403), FailureKind::Rejected)
            );
            assert_eq!(failure.reason, "403 Reason");
            if sent == 1 {
                let delay = snap.next_attempt.unwrap() - now;
                assert!(delay >= REJECTED.initial / 2, "{delay:?}");
            }
        }
        now = r.poll_timeout().expect("a retry is scheduled");
        r.handle_timeout(now);
    }
    assert!(
        (3..=6).contains(&sent),
        "{sent} REGISTERs in an hour of 403"
    );
}

#[test]
fn a_rejected_password_is_reported_and_retried_slowly() {
    let t0 = Instant::now();
    let mut r = registration(600, true);
    let first = send(&mut r, t0);
    r.on_response(&challenge(first.cseq, "n1", false), t0);
    let second = send(&mut r, t0);
    r.on_response(&challenge(second.cseq, "n2", false), t0);
    let snap = r.snapshot();
    assert_eq!(snap.phase, Phase::Failing);
    let failure = snap.last_failure.unwrap();
    assert_eq!(failure.kind, FailureKind::Rejected);
    assert!(
        failure.reason.contains("credentials rejected"),
        "{failure:?}"
    );
    assert!(failure.reason.contains("\"vm\""), "{failure:?}");
    assert!(snap.next_attempt.unwrap() - t0 >= S(150));
    assert!(r.poll_transmit(t0 + S(60)).is_none());
}

#[test]
fn a_challenge_without_a_password_is_a_refusal() {
    let t0 = Instant::now();
    let mut r = registration(600, false);
    let first = send(&mut r, t0);
    r.on_response(&challenge(first.cseq, "n1", false), t0);
    let failure = r.snapshot().last_failure.unwrap();
    assert_eq!(failure.kind, FailureKind::Rejected);
    assert!(failure.reason.contains("no password"), "{failure:?}");
}

#[test]
fn interval_too_brief_raises_expires_to_min_expires() {
    let t0 = Instant::now();
    let mut r = registration(60, false);
    let first = send(&mut r, t0);
    assert_eq!(first.expires, 60);
    r.on_response(
        &Answer {
            min_expires: Some(1800),
            ..answer(first.cseq, 423)
        },
        t0,
    );
    let second = send(&mut r, t0);
    assert_eq!(second.expires, 1800, "asked again at once with Min-Expires");
    r.on_response(&ok(second.cseq, 1800), t0);
    assert_eq!(r.snapshot().requested, S(1800));
    r.handle_timeout(t0 + S(1680));
    assert_eq!(send(&mut r, t0 + S(1680)).expires, 1800, "and kept");
    // A 423 that does not say how long is enough cannot be followed.
    let mut r = registration(60, false);
    let first = send(&mut r, t0);
    r.on_response(&answer(first.cseq, 423), t0);
    let failure = r.snapshot().last_failure.unwrap();
    assert_eq!(
        (failure.status, failure.kind),
        (Some(423), FailureKind::Rejected)
    );
    assert!(
        failure.reason.contains("Min-Expires missing"),
        "{failure:?}"
    );
}

#[test]
fn a_stale_nonce_is_answered_with_the_new_one() {
    let t0 = Instant::now();
    let mut r = registration(600, true);
    registered(&mut r, t0, 600);
    r.handle_timeout(t0 + S(480));
    let refresh = send(&mut r, t0 + S(480));
    assert!(auth_of(&refresh).contains("nonce=\"n1\""));
    r.on_response(&challenge(refresh.cseq, "n2", true), t0 + S(480));
    let again = send(&mut r, t0 + S(480));
    assert!(auth_of(&again).contains("nonce=\"n2\""));
    assert!(auth_of(&again).contains("nc=00000001"));
    r.on_response(&ok(again.cseq, 600), t0 + S(480));
    assert_eq!(r.snapshot().phase, Phase::Registered);
    assert_eq!(r.snapshot().last_failure, None);
}

#[test]
fn stale_nonces_in_a_row_are_bounded() {
    let t0 = Instant::now();
    let mut r = registration(600, true);
    let first = send(&mut r, t0);
    r.on_response(&challenge(first.cseq, "n0", false), t0);
    let mut sent = 1;
    while let Some(register) = r.poll_transmit(t0) {
        sent += 1;
        r.on_response(&challenge(register.cseq, "nx", true), t0);
    }
    assert_eq!(sent, 4, "the answer, then two stale rounds");
    let failure = r.snapshot().last_failure.unwrap();
    assert_eq!(failure.kind, FailureKind::Transient);
    assert!(failure.reason.contains("stale"), "{failure:?}");
}

#[test]
fn a_binding_is_kept_while_refreshes_fail_until_it_expires() {
    let t0 = Instant::now();
    let mut r = registration(600, true);
    registered(&mut r, t0, 600);
    let mut now = t0 + S(480);
    r.handle_timeout(now);
    send(&mut r, now);
    r.on_response(&answer(3, 503), now);
    let snap = r.snapshot();
    assert_eq!(snap.phase, Phase::Failing);
    assert_eq!(snap.binding.map(|b| b.expires_at), Some(t0 + S(600)));
    // Retries go on; the next one is a refresh of the binding.
    now = snap.next_attempt.unwrap();
    r.handle_timeout(now);
    assert_eq!(r.snapshot().phase, Phase::Registered);
    send(&mut r, now);
    r.on_transport_failure("no response", now);
    // Past the expiry the binding is gone; the next attempt registers anew.
    let mut lapsed = false;
    for _ in 0..20 {
        now = r.poll_timeout().unwrap();
        r.handle_timeout(now);
        if now >= t0 + S(600) && r.snapshot().binding.is_none() {
            lapsed = true;
        }
        if r.poll_transmit(now).is_some() {
            r.on_transport_failure("no response", now);
        }
        if lapsed {
            break;
        }
    }
    assert!(lapsed, "the binding lapsed at its expiry");
    assert_eq!(r.snapshot().phase, Phase::Failing);
    assert_eq!(r.snapshot().binding, None);
}

#[test]
fn retry_after_is_honoured() {
    let t0 = Instant::now();
    let mut r = registration(600, false);
    let first = send(&mut r, t0);
    r.on_response(
        &Answer {
            retry_after: Some(S(120)),
            ..answer(first.cseq, 503)
        },
        t0,
    );
    assert_eq!(r.snapshot().next_attempt, Some(t0 + S(120)));
}

#[test]
fn a_200_without_our_contact_or_with_expires_zero_is_a_failure() {
    let t0 = Instant::now();
    for granted in [None, Some(S(0))] {
        let mut r = registration(600, false);
        let first = send(&mut r, t0);
        r.on_response(
            &Answer {
                granted,
                ..answer(first.cseq, 200)
            },
            t0,
        );
        let snap = r.snapshot();
        assert_eq!(snap.phase, Phase::Failing);
        assert_eq!(snap.last_failure.unwrap().kind, FailureKind::Transient);
    }
}

#[test]
fn answers_to_abandoned_requests_are_ignored() {
    let t0 = Instant::now();
    let mut r = registration(600, false);
    let first = send(&mut r, t0);
    r.on_response(&ok(first.cseq + 7, 600), t0);
    assert_eq!(r.snapshot().phase, Phase::Registering);
    r.on_response(&answer(first.cseq, 100), t0);
    assert_eq!(r.snapshot().phase, Phase::Registering);
    r.on_response(&ok(first.cseq, 600), t0);
    assert_eq!(r.snapshot().phase, Phase::Registered);
    // A late duplicate changes nothing.
    r.on_response(&answer(first.cseq, 500), t0);
    assert_eq!(r.snapshot().phase, Phase::Registered);
}

#[test]
fn shutdown_unregisters_with_expires_zero_and_the_credentials() {
    let t0 = Instant::now();
    let mut r = registration(600, true);
    registered(&mut r, t0, 600);
    r.shutdown();
    assert_eq!(r.snapshot().phase, Phase::Unregistering);
    let bye = send(&mut r, t0 + S(10));
    assert_eq!((bye.cseq, bye.expires), (3, 0));
    assert!(auth_of(&bye).contains("nonce=\"n1\""));
    // Challenged again: answered, then done.
    r.on_response(&challenge(bye.cseq, "n2", true), t0 + S(10));
    let again = send(&mut r, t0 + S(10));
    assert_eq!(again.expires, 0);
    r.on_response(&ok(again.cseq, 0), t0 + S(10));
    assert!(r.is_finished());
    assert_eq!(r.snapshot().phase, Phase::Unregistered);
    assert_eq!(r.snapshot().last_failure, None);
    assert!(r.poll_transmit(t0 + S(11)).is_none());
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn shutdown_abandons_a_request_in_flight_and_unregisters() {
    let t0 = Instant::now();
    let mut r = registration(600, false);
    let first = send(&mut r, t0);
    r.shutdown();
    let bye = send(&mut r, t0);
    assert_eq!((bye.cseq, bye.expires), (first.cseq + 1, 0));
    r.on_response(&ok(first.cseq, 600), t0);
    assert!(
        !r.is_finished(),
        "the abandoned REGISTER's answer is ignored"
    );
    r.on_transport_failure("no response", t0);
    assert!(r.is_finished());
    let failure = r.snapshot().last_failure.unwrap();
    assert_eq!(failure.reason, "no response");
}

#[test]
fn shutdown_without_a_binding_sends_nothing() {
    let t0 = Instant::now();
    let mut r = registration(600, false);
    let first = send(&mut r, t0);
    r.on_response(&answer(first.cseq, 403), t0);
    r.shutdown();
    assert!(r.is_finished());
    assert!(r.poll_transmit(t0).is_none());
}

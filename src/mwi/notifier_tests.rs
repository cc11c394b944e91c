//! The notifier core driven by hand: subscriptions through their life,
//! coalescing, pacing, retries, dead subscribers, unsolicited targets and
//! the bound on NOTIFYs in flight, all with injected time.

use std::time::{Duration, Instant};

use super::delivery::{NotifyOutcome, RetryPolicy};
use super::notifier::{Action, Ended, Notifier, NotifierConfig, Notify, Target};
use super::subscription::{SubscriptionStatus, TerminationReason};
use super::summary::MessageSummary;

const HOUR: Duration = Duration::from_secs(3600);

fn config(max_in_flight: usize) -> NotifierConfig {
    NotifierConfig {
        retry: RetryPolicy {
            attempts: 3,
            initial: Duration::from_secs(2),
        },
        min_interval: Duration::from_secs(1),
        max_in_flight,
    }
}

fn counts(new: u32, old: u32) -> MessageSummary {
    MessageSummary {
        new,
        old,
        ..MessageSummary::default()
    }
}

fn subscription(id: &str) -> Target {
    Target::Subscription(id.into())
}

/// Every action queued, in order.
fn drain(n: &mut Notifier) -> Vec<Action> {
    std::iter::from_fn(|| n.poll_action()).collect()
}

/// The NOTIFYs among `actions`.
fn notifies(actions: &[Action]) -> Vec<Notify> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some(n.clone()),
            Action::Forget { .. } => None,
        })
        .collect()
}

fn only_notify(n: &mut Notifier) -> Notify {
    let actions = drain(n);
    assert_eq!(actions.len(), 1, "{actions:?}");
    notifies(&actions).remove(0)
}

fn no_unsolicited() -> Notifier {
    Notifier::new(config(16), 0, Box::new(|_| true))
}

#[test]
fn a_subscription_gets_its_state_at_once_then_every_change_then_a_final_notify() {
    let t0 = Instant::now();
    let mut n = no_unsolicited();
    n.set_summary("1001", counts(0, 2), t0);
    assert!(drain(&mut n).is_empty(), "nobody to tell");

    n.subscribe("s1", "1001", t0 + HOUR, t0);
    let first = only_notify(&mut n);
    assert_eq!(first.target, subscription("s1"));
    assert_eq!(first.summary, counts(0, 2));
    assert_eq!(
        first.status,
        Some(SubscriptionStatus::Active { expires_in: HOUR })
    );
    n.finished(&first.target, NotifyOutcome::Delivered, t0);

    // A message is recorded two seconds later: one NOTIFY, lamp on.
    let t1 = t0 + Duration::from_secs(2);
    n.set_summary("1001", counts(1, 2), t1);
    let change = only_notify(&mut n);
    assert_eq!(change.summary, counts(1, 2));
    assert!(change.summary.messages_waiting());
    n.finished(&change.target, NotifyOutcome::Delivered, t1);
    // The same counts again (a move between old and saved): no NOTIFY.
    n.set_summary("1001", counts(1, 2), t1);
    assert!(drain(&mut n).is_empty());
    // Another mailbox's change: not this subscription's business.
    n.set_summary("1002", counts(5, 0), t1);
    assert!(drain(&mut n).is_empty());

    // Unsubscribe: a final NOTIFY with the state, then it is forgotten.
    let t2 = t1 + Duration::from_secs(5);
    assert!(n.end("s1", TerminationReason::Timeout, t2));
    let last = only_notify(&mut n);
    assert_eq!(
        last.status,
        Some(SubscriptionStatus::Terminated {
            reason: TerminationReason::Timeout
        })
    );
    assert_eq!(last.summary, counts(1, 2));
    n.finished(&last.target, NotifyOutcome::Delivered, t2);
    assert_eq!(
        drain(&mut n),
        vec![Action::Forget {
            id: "s1".into(),
            ended: Ended::Terminated(TerminationReason::Timeout)
        }]
    );
    assert_eq!(n.subscription_count(), 0);
    assert!(!n.refresh("s1", t2 + HOUR, t2), "gone: 481");
    assert!(!n.end("s1", TerminationReason::Timeout, t2));
}

#[test]
fn a_refresh_notifies_at_once_and_moves_the_expiry() {
    let t0 = Instant::now();
    let mut n = no_unsolicited();
    n.subscribe("s1", "1001", t0 + Duration::from_secs(60), t0);
    let first = only_notify(&mut n);
    n.finished(&first.target, NotifyOutcome::Delivered, t0);
    assert_eq!(n.poll_timeout(), Some(t0 + Duration::from_secs(60)));

    let t1 = t0 + Duration::from_millis(200);
    assert!(n.refresh("s1", t1 + Duration::from_secs(120), t1));
    let refreshed = only_notify(&mut n);
    assert_eq!(
        refreshed.status,
        Some(SubscriptionStatus::Active {
            expires_in: Duration::from_secs(120)
        })
    );
    n.finished(&refreshed.target, NotifyOutcome::Delivered, t1);
    // Not expired at the old time.
    n.handle_timeout(t0 + Duration::from_secs(61));
    assert!(drain(&mut n).is_empty());
    assert!(n.is_active("s1"));
    assert_eq!(n.poll_timeout(), Some(t1 + Duration::from_secs(120)));
}

#[test]
fn an_expired_subscription_gets_a_final_notify() {
    let t0 = Instant::now();
    let mut n = no_unsolicited();
    n.set_summary("1001", counts(3, 0), t0);
    n.subscribe("s1", "1001", t0 + Duration::from_secs(60), t0);
    let first = only_notify(&mut n);
    n.finished(&first.target, NotifyOutcome::Delivered, t0);

    let deadline = n.poll_timeout().expect("the expiry");
    assert_eq!(deadline, t0 + Duration::from_secs(60));
    n.handle_timeout(deadline);
    let last = only_notify(&mut n);
    assert_eq!(
        last.status.map(|s| s.header_value()),
        Some("terminated;reason=timeout".to_string())
    );
    assert_eq!(last.summary, counts(3, 0));
    // Even unanswered, it is forgotten once the retries are spent.
    let mut now = deadline;
    for _ in 0..3 {
        now += Duration::from_secs(32);
        n.finished(&last.target, NotifyOutcome::NoAnswer, now);
        if let Some(at) = n.poll_timeout() {
            now = at;
            n.handle_timeout(now);
        }
    }
    let rest = drain(&mut n);
    assert!(
        rest.contains(&Action::Forget {
            id: "s1".into(),
            ended: Ended::Terminated(TerminationReason::Timeout)
        }),
        "{rest:?}"
    );
    assert_eq!(n.subscription_count(), 0);
    assert_eq!(n.poll_timeout(), None);
}

#[test]
fn a_burst_of_changes_makes_one_paced_notify_with_the_latest_counts() {
    let t0 = Instant::now();
    let mut n = no_unsolicited();
    n.subscribe("s1", "1001", t0 + HOUR, t0);
    let first = only_notify(&mut n);
    let t1 = t0 + Duration::from_millis(5);
    n.finished(&first.target, NotifyOutcome::Delivered, t1);

    // Five messages land within 300 ms of the first NOTIFY.
    for k in 1..=5u32 {
        n.set_summary(
            "1001",
            counts(k, 0),
            t1 + Duration::from_millis(60 * u64::from(k)),
        );
    }
    assert!(drain(&mut n).is_empty(), "held for pacing");
    let due = n.poll_timeout().expect("due");
    assert_eq!(due, t0 + Duration::from_secs(1), "a second after the last");
    n.handle_timeout(due);
    let coalesced = only_notify(&mut n);
    assert_eq!(coalesced.summary, counts(5, 0));
}

#[test]
fn changes_while_a_notify_is_in_flight_follow_it_in_order() {
    let t0 = Instant::now();
    let mut n = no_unsolicited();
    n.subscribe("s1", "1001", t0 + HOUR, t0);
    let first = only_notify(&mut n);
    // Still unanswered when the counts change twice.
    n.set_summary("1001", counts(1, 0), t0 + Duration::from_millis(100));
    n.set_summary("1001", counts(2, 0), t0 + Duration::from_millis(200));
    assert!(drain(&mut n).is_empty(), "one NOTIFY in flight at a time");
    let t1 = t0 + Duration::from_millis(1500);
    n.finished(&first.target, NotifyOutcome::Delivered, t1);
    let next = only_notify(&mut n);
    assert_eq!(next.summary, counts(2, 0));
}

#[test]
fn a_subscriber_that_refuses_or_never_answers_is_dropped() {
    let t0 = Instant::now();
    let mut n = no_unsolicited();
    n.subscribe("gone", "1001", t0 + HOUR, t0);
    n.subscribe("silent", "1001", t0 + HOUR, t0);
    let first = notifies(&drain(&mut n));
    assert_eq!(first.len(), 2);
    // 481: the dialog is gone at the subscriber; dropped at once.
    n.finished(&subscription("gone"), NotifyOutcome::Refused(481), t0);
    assert_eq!(
        drain(&mut n),
        vec![Action::Forget {
            id: "gone".into(),
            ended: Ended::SubscriberGone
        }]
    );
    // Timer F three times, with 2 s and 4 s between attempts.
    let mut now = t0 + Duration::from_secs(32);
    n.finished(&subscription("silent"), NotifyOutcome::NoAnswer, now);
    for wait in [2, 4] {
        assert_eq!(n.poll_timeout(), Some(now + Duration::from_secs(wait)));
        now += Duration::from_secs(wait);
        n.handle_timeout(now);
        let retry = only_notify(&mut n);
        assert_eq!(retry.target, subscription("silent"));
        now += Duration::from_secs(32);
        n.finished(&retry.target, NotifyOutcome::NoAnswer, now);
    }
    assert_eq!(
        drain(&mut n),
        vec![Action::Forget {
            id: "silent".into(),
            ended: Ended::SubscriberGone
        }]
    );
    assert_eq!(n.subscription_count(), 0);
    // A change after that notifies nobody.
    n.set_summary("1001", counts(1, 0), now);
    assert!(drain(&mut n).is_empty());
}

#[test]
fn unsolicited_notifies_go_to_every_template_of_the_mailboxes_it_covers() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(16), 2, Box::new(|m| m.starts_with('1')));
    // A mailbox seen for the first time with no messages: nothing changed.
    n.set_summary("1002", counts(0, 0), t0);
    assert!(drain(&mut n).is_empty());
    n.set_summary("2001", counts(1, 0), t0);
    assert!(drain(&mut n).is_empty(), "not covered");
    n.set_summary("1001", counts(1, 0), t0);
    let sent = notifies(&drain(&mut n));
    let targets: Vec<Target> = sent.iter().map(|s| s.target.clone()).collect();
    assert_eq!(
        targets,
        vec![
            Target::Unsolicited {
                mailbox: "1001".into(),
                template: 0
            },
            Target::Unsolicited {
                mailbox: "1001".into(),
                template: 1
            }
        ]
    );
    assert!(sent.iter().all(|s| s.status.is_none()));
    // One PBX refuses for good: it waits for the next change, the other
    // is unaffected.
    n.finished(&targets[0], NotifyOutcome::Refused(403), t0);
    n.finished(&targets[1], NotifyOutcome::Delivered, t0);
    assert!(drain(&mut n).is_empty());
    let t1 = t0 + Duration::from_secs(5);
    n.set_summary("1001", counts(0, 1), t1);
    assert_eq!(notifies(&drain(&mut n)).len(), 2);

    // A restart announces even unchanged counts.
    for t in &targets {
        n.finished(t, NotifyOutcome::Delivered, t1);
    }
    n.announce("1001", counts(0, 1), t1 + Duration::from_millis(10));
    assert_eq!(
        notifies(&drain(&mut n)).len(),
        2,
        "paced announcements are still sent"
    );
}

#[test]
fn no_more_than_max_in_flight_notifies_are_on_the_wire() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(3), 1, Box::new(|_| true));
    for k in 0..10 {
        n.announce(&format!("10{k:02}"), counts(1, 0), t0);
    }
    let first = notifies(&drain(&mut n));
    assert_eq!(first.len(), 3);
    // Nothing due while the wire is full (no busy loop).
    assert_eq!(n.poll_timeout(), None);
    let mut sent = first.len();
    let mut in_flight = first;
    while let Some(done) = in_flight.pop() {
        n.finished(&done.target, NotifyOutcome::Delivered, t0);
        let more = notifies(&drain(&mut n));
        assert!(more.len() <= 1, "{more:?}");
        sent += more.len();
        in_flight.extend(more);
        assert!(in_flight.len() <= 3);
    }
    assert_eq!(sent, 10);
}

#[test]
fn a_fetch_gets_one_terminated_notify() {
    let t0 = Instant::now();
    let mut n = no_unsolicited();
    n.set_summary("1001", counts(2, 1), t0);
    n.fetch("f1", "1001", t0);
    let only = only_notify(&mut n);
    assert_eq!(only.summary, counts(2, 1));
    assert_eq!(
        only.status,
        Some(SubscriptionStatus::Terminated {
            reason: TerminationReason::Timeout
        })
    );
    n.finished(&only.target, NotifyOutcome::Delivered, t0);
    assert_eq!(
        drain(&mut n),
        vec![Action::Forget {
            id: "f1".into(),
            ended: Ended::Terminated(TerminationReason::Timeout)
        }]
    );
}

#[test]
fn an_unsubscribe_during_a_notify_is_followed_by_the_final_one() {
    let t0 = Instant::now();
    let mut n = no_unsolicited();
    n.subscribe("s1", "1001", t0 + HOUR, t0);
    let first = only_notify(&mut n);
    assert!(n.end("s1", TerminationReason::Timeout, t0));
    assert!(drain(&mut n).is_empty());
    n.finished(&first.target, NotifyOutcome::Delivered, t0);
    let last = only_notify(&mut n);
    assert!(matches!(
        last.status,
        Some(SubscriptionStatus::Terminated { .. })
    ));
    n.finished(&last.target, NotifyOutcome::Delivered, t0);
    assert!(matches!(drain(&mut n).as_slice(), [Action::Forget { .. }]));
}

//! Tests of `retry.rs`.

use super::*;

const S: Duration = Duration::from_secs(1);

fn response(status: u16, reason: &str) -> TransferOutcome {
    TransferOutcome::Response {
        status,
        reason: reason.to_owned(),
        retry_after: None,
    }
}

fn decide(outcome: &TransferOutcome) -> Disposition {
    RetryPolicy::default().decide(outcome, 1, 1.0)
}

#[test]
fn only_200_delivers() {
    assert_eq!(decide(&response(200, "OK")), Disposition::Delivered);
    // 202 Accepted (RFC 3428 §7) and any other 2xx promise no durable
    // storage at home: the message is kept and sent again later.
    for (status, reason) in [(202, "Accepted"), (204, "No Content"), (299, "Odd")] {
        assert_eq!(
            decide(&response(status, reason)),
            Disposition::Retry {
                after: S,
                error: format!("{status} {reason}"),
            },
            "{status}"
        );
    }
}

#[test]
fn transient_responses_are_retried_with_backoff() {
    for (status, reason) in [
        (408, "Request Timeout"),
        (429, "Too Many Requests"),
        (480, "Temporarily Unavailable"),
        (486, "Busy Here"),
        (500, "Server Internal Error"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Server Time-out"),
        (180, "Ringing"),
    ] {
        assert_eq!(
            decide(&response(status, reason)),
            Disposition::Retry {
                after: S,
                error: format!("{status} {reason}"),
            },
        );
    }
}

#[test]
fn permanent_responses_park_the_message() {
    for (status, reason) in [
        (400, "Bad Request"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (413, "Request Entity Too Large"),
        (415, "Unsupported Media Type"),
        (513, "Message Too Large"),
        (301, "Moved Permanently"),
        (302, "Moved Temporarily"),
        (603, "Decline"),
        (699, "Custom"),
        (0, "Nonsense"),
    ] {
        assert_eq!(
            decide(&response(status, reason)),
            Disposition::Failed {
                error: format!("{status} {reason}"),
            },
        );
    }
}

#[test]
fn timeouts_and_lost_connections_are_retried() {
    let policy = RetryPolicy::default();
    assert_eq!(
        policy.decide(&TransferOutcome::Timeout, 3, 1.0),
        Disposition::Retry {
            after: 4 * S,
            error: "timeout".to_owned(),
        }
    );
    assert_eq!(
        policy.decide(
            &TransferOutcome::ConnectionLost("reset by peer".into()),
            2,
            0.0
        ),
        Disposition::Retry {
            after: S,
            error: "connection lost: reset by peer".to_owned(),
        }
    );
}

#[test]
fn retry_after_overrides_the_backoff_and_is_capped() {
    let policy = RetryPolicy::default();
    let busy = |secs| TransferOutcome::Response {
        status: 503,
        reason: "Service Unavailable".into(),
        retry_after: Some(Duration::from_secs(secs)),
    };
    assert_eq!(
        policy.decide(&busy(30), 1, 0.5),
        Disposition::Retry {
            after: 30 * S,
            error: "503 Service Unavailable (retry after 30 s)".to_owned(),
        }
    );
    assert_eq!(
        policy.decide(&busy(0), 9, 0.5),
        Disposition::Retry {
            after: Duration::ZERO,
            error: "503 Service Unavailable (retry after 0 s)".to_owned(),
        }
    );
    assert_eq!(
        policy.decide(&busy(86_400), 1, 0.5),
        Disposition::Retry {
            after: MAX_RETRY_AFTER,
            error: "503 Service Unavailable (retry after 86400 s, capped at 3600 s)".to_owned(),
        }
    );
}

#[test]
fn retry_after_on_a_permanent_response_does_not_retry() {
    let outcome = TransferOutcome::Response {
        status: 404,
        reason: "Not Found".into(),
        retry_after: Some(10 * S),
    };
    assert!(matches!(decide(&outcome), Disposition::Failed { .. }));
}

#[test]
fn empty_reason_shows_the_status_alone() {
    assert_eq!(response(503, "  ").to_string(), "503");
}

#[test]
fn backoff_grows_exponentially_up_to_the_cap() {
    let policy = RetryPolicy::default();
    let full: Vec<u64> = (1..=11).map(|n| policy.backoff(n, 1.0).as_secs()).collect();
    assert_eq!(full, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    assert_eq!(policy.backoff(0, 1.0), S, "0 attempts counts as 1");
}

#[test]
fn equal_jitter_stays_in_the_upper_half() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.backoff(4, 0.0), 4 * S);
    assert_eq!(policy.backoff(4, 0.5), 6 * S);
    assert_eq!(policy.backoff(4, 1.0), 8 * S);
    assert_eq!(policy.backoff(4, -3.0), 4 * S, "clamped");
    assert_eq!(policy.backoff(4, 7.0), 8 * S, "clamped");
    assert_eq!(policy.backoff(4, f64::NAN), 4 * S);
    for i in 0..=100 {
        let d = policy.backoff(30, f64::from(i) / 100.0);
        assert!(d >= policy.max / 2 && d <= policy.max, "{d:?}");
    }
}

#[test]
fn huge_attempt_counts_and_odd_policies_never_panic() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.backoff(u32::MAX, 1.0), policy.max);
    let odd = [
        RetryPolicy {
            initial: Duration::MAX,
            max: Duration::MAX,
            multiplier: f64::INFINITY,
        },
        RetryPolicy {
            initial: Duration::ZERO,
            max: Duration::MAX,
            multiplier: f64::INFINITY,
        },
        RetryPolicy {
            initial: S,
            max: Duration::ZERO,
            multiplier: f64::NAN,
        },
        RetryPolicy {
            initial: 10 * S,
            max: S,
            multiplier: 0.5,
        },
    ];
    for policy in odd {
        for attempts in [0, 1, 2, 64, 1025, u32::MAX] {
            assert!(policy.backoff(attempts, 1.0) <= policy.max, "{policy:?}");
        }
    }
}

#[test]
fn multiplier_below_one_is_a_constant_delay() {
    let policy = RetryPolicy {
        multiplier: 0.1,
        ..RetryPolicy::default()
    };
    assert_eq!(policy.backoff(5, 1.0), S);
}

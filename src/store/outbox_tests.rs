//! The outbox through the public API: queueing with the message row,
//! scheduling, the failed/retry path, delivery and purge.

use std::sync::Arc;
use std::thread;

use super::tests::{crash, home, new_meta, open_tmp, record, samples, wav};
use super::*;

fn to_b() -> Route {
    Route::Forward {
        peer: "site-b".into(),
    }
}

/// Mailboxes 2xxx live at site-b, the rest here.
fn topology(mailbox: &str) -> Route {
    if mailbox.starts_with('2') {
        to_b()
    } else {
        Route::Home
    }
}

fn forwarded(store: &Store, mailbox: &str, route: &Route) -> Message {
    let mut rec = store.start_recording(new_meta(mailbox)).unwrap();
    record(&mut rec, &samples(8000, 0));
    match store.finish(rec, &wav(), false, route).unwrap() {
        Finished::Stored(m) => m,
        other => panic!("expected stored, got {other:?}"),
    }
}

fn ids(entries: &[OutboxEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn forward_lists_and_queues_the_message() {
    let (_dir, store) = open_tmp();
    let m = forwarded(&store, "2001", &to_b());
    assert_eq!(m.home.as_deref(), Some("site-b"));
    assert_eq!(m.delivery, DELIVERY_QUEUED);
    assert_eq!(store.get(&m.id).unwrap(), m);

    let queue = store.outbox_list().unwrap();
    assert_eq!(queue.len(), 1);
    let entry = &queue[0];
    assert_eq!(
        (entry.id.as_str(), entry.mailbox.as_str()),
        (m.id.as_str(), "2001")
    );
    assert_eq!(
        (entry.peer.as_str(), entry.state.as_str()),
        ("site-b", OUTBOX_WAITING)
    );
    assert_eq!((entry.attempts, entry.last_error.as_ref()), (0, None));
    let (now, _) = message::now_unix_ms();
    let due = entry.next_attempt_ms.unwrap();
    assert!(
        due <= now && now - due < 60_000,
        "due at once: {due} vs {now}"
    );
    assert!(entry.next_attempt_at.is_some());
    assert_eq!(store.outbox_due("site-b", now, 10).unwrap(), queue);
    assert_eq!(store.outbox_next_due("site-b").unwrap(), Some(due));
    assert_eq!(
        store.outbox_waiting_counts().unwrap(),
        vec![("site-b".to_owned(), 1)]
    );
    assert!(store.outbox_due("site-c", i64::MAX, 10).unwrap().is_empty());
}

#[test]
fn home_messages_are_never_queued() {
    let (_dir, store) = open_tmp();
    let m = forwarded(&store, "1001", &Route::Home);
    assert_eq!(
        (m.home.as_ref(), m.delivery.as_str()),
        (None, DELIVERY_HOME)
    );
    assert!(store.outbox_list().unwrap().is_empty());
    assert!(store.outbox_waiting_counts().unwrap().is_empty());
    assert_eq!(store.outbox_entry(&m.id).unwrap(), None);
    assert_eq!(store.list(None).unwrap(), vec![m]);
}

#[test]
fn a_failed_outbox_insert_leaves_no_message_row() {
    let (_dir, store) = open_tmp();
    store
        .lock()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox \
             BEGIN SELECT RAISE(ABORT, 'outbox refused'); END;",
        )
        .unwrap();
    let mut rec = store.start_recording(new_meta("2001")).unwrap();
    let id = rec.id().to_string();
    record(&mut rec, &samples(8000, 0));
    assert!(matches!(
        store.finish(rec, &wav(), false, &to_b()),
        Err(StoreError::Database { .. })
    ));
    assert!(
        store.list(None).unwrap().is_empty(),
        "row without outbox row"
    );

    // Once the cause is gone, recovery lists and queues it, not partial.
    store.lock().execute_batch("DROP TRIGGER refuse").unwrap();
    let recovered = store.recover(&topology, &wav()).unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        (recovered[0].id.as_str(), recovered[0].partial),
        (id.as_str(), false)
    );
    assert_eq!(recovered[0].delivery, DELIVERY_QUEUED);
    assert_eq!(ids(&store.outbox_list().unwrap()), vec![id.as_str()]);
}

#[test]
fn finish_refuses_a_bad_peer_name() {
    let (_dir, store) = open_tmp();
    let rec = store.start_recording(new_meta("2001")).unwrap();
    let bad = Route::Forward { peer: "".into() };
    assert!(matches!(
        store.finish(rec, &wav(), false, &bad),
        Err(StoreError::InvalidPeer { .. })
    ));
}

#[test]
fn recovered_recordings_are_queued_per_mailbox() {
    let (_dir, store) = open_tmp();
    for mailbox in ["2001", "1001"] {
        let mut rec = store.start_recording(new_meta(mailbox)).unwrap();
        record(&mut rec, &samples(16_000, 0));
        crash(rec);
    }
    let recovered = store.recover(&topology, &wav()).unwrap();
    let by_mailbox = |mb: &str| recovered.iter().find(|m| m.mailbox == mb).unwrap();
    assert_eq!(by_mailbox("2001").delivery, DELIVERY_QUEUED);
    assert_eq!(by_mailbox("1001").delivery, DELIVERY_HOME);
    assert_eq!(
        ids(&store.outbox_list().unwrap()),
        vec![by_mailbox("2001").id.as_str()]
    );
}

#[test]
fn due_entries_are_filtered_by_time_and_peer_oldest_first() {
    let (_dir, store) = open_tmp();
    let to_c = Route::Forward {
        peer: "site-c".into(),
    };
    let first = forwarded(&store, "2001", &to_b());
    let second = forwarded(&store, "2002", &to_b());
    let third = forwarded(&store, "2003", &to_b());
    let other = forwarded(&store, "3001", &to_c);
    store
        .outbox_retry_later(&first.id, 1000, "timeout")
        .unwrap();
    store.outbox_retry_later(&second.id, 500, "503").unwrap();
    store.outbox_retry_later(&third.id, 2000, "408").unwrap();
    store.outbox_retry_later(&third.id, 2000, "408").unwrap();

    let due = store.outbox_due("site-b", 1000, 10).unwrap();
    assert_eq!(ids(&due), vec![first.id.as_str(), second.id.as_str()]);
    assert_eq!(
        (due[0].attempts, due[0].last_error.as_deref()),
        (1, Some("timeout"))
    );
    assert_eq!(
        due[0].next_attempt_at.as_deref(),
        Some("1970-01-01T00:00:01.000Z")
    );
    assert_eq!(
        ids(&store.outbox_due("site-b", 999, 10).unwrap()),
        vec![second.id.as_str()]
    );
    assert_eq!(
        ids(&store.outbox_due("site-b", 1000, 1).unwrap()),
        vec![first.id.as_str()]
    );
    assert!(store.outbox_due("site-b", 499, 10).unwrap().is_empty());
    let all = store.outbox_due("site-b", i64::MAX, 10).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].attempts, 2);
    assert_eq!(store.outbox_next_due("site-b").unwrap(), Some(500));
    assert_eq!(
        store.outbox_waiting_counts().unwrap(),
        vec![("site-b".to_owned(), 3), ("site-c".to_owned(), 1)]
    );
    assert_eq!(
        ids(&store.outbox_due("site-c", i64::MAX, 10).unwrap()),
        vec![other.id.as_str()]
    );
}

#[test]
fn a_failed_entry_is_parked_until_retried() {
    let (_dir, store) = open_tmp();
    let m = forwarded(&store, "2001", &to_b());
    store.outbox_failed(&m.id, "404 Not Found").unwrap();
    assert!(store.outbox_due("site-b", i64::MAX, 10).unwrap().is_empty());
    assert_eq!(store.outbox_next_due("site-b").unwrap(), None);
    assert_eq!(store.get(&m.id).unwrap().delivery, DELIVERY_FAILED);
    let listed = store.outbox_list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].state.as_str(), listed[0].attempts),
        (OUTBOX_FAILED, 1)
    );
    assert_eq!(listed[0].next_attempt_at, None);
    assert_eq!(listed[0].last_error.as_deref(), Some("404 Not Found"));

    let retried = store.outbox_retry(&m.id[..8].to_uppercase(), 7000).unwrap();
    assert_eq!(retried.state, OUTBOX_WAITING);
    assert_eq!((retried.next_attempt_ms, retried.attempts), (Some(7000), 1));
    assert_eq!(retried.last_error.as_deref(), Some("404 Not Found"));
    assert_eq!(store.outbox_due("site-b", 7000, 10).unwrap(), vec![retried]);
    assert_eq!(store.get(&m.id).unwrap().delivery, DELIVERY_QUEUED);

    assert!(matches!(
        store.outbox_retry("deadbeef", 0),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.outbox_retry("x", 0),
        Err(StoreError::InvalidId { .. })
    ));
    // A message that is not queued (its home is here) cannot be retried.
    let local = forwarded(&store, "1001", &Route::Home);
    assert!(matches!(
        store.outbox_retry(&local.id, 0),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn delivery_is_final() {
    let (_dir, store) = open_tmp();
    let m = forwarded(&store, "2001", &to_b());
    store.outbox_delivered(&m.id, 5000).unwrap();
    store.outbox_delivered(&m.id, 9000).unwrap();
    assert_eq!(store.get(&m.id).unwrap().delivery, DELIVERY_DELIVERED);
    assert!(store.outbox_list().unwrap().is_empty());
    assert!(store.outbox_waiting_counts().unwrap().is_empty());
    let entry = store.outbox_entry(&m.id).unwrap().unwrap();
    assert_eq!(
        (entry.state.as_str(), entry.next_attempt_ms),
        (OUTBOX_DELIVERED, None)
    );
    for outcome in [
        store.outbox_retry_later(&m.id, 0, "late 503"),
        store.outbox_failed(&m.id, "late 404"),
    ] {
        assert!(matches!(outcome, Err(StoreError::AlreadyDelivered { .. })));
    }
    assert!(matches!(
        store.outbox_retry(&m.id, 0),
        Err(StoreError::NotFound { .. })
    ));
    let unknown = Uuid::new_v4().to_string();
    assert!(matches!(
        store.outbox_delivered(&unknown, 0),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.outbox_failed(&unknown, "x"),
        Err(StoreError::NotFound { .. })
    ));
    // The first 200 starts the retention period.
    assert_eq!(store.purge_delivered(5001).unwrap(), vec![m.id]);
}

#[test]
fn purge_removes_origin_copies_after_retention_only() {
    let (_dir, store) = open_tmp();
    let old = forwarded(&store, "2001", &to_b());
    let recent = forwarded(&store, "2002", &to_b());
    let waiting = forwarded(&store, "2003", &to_b());
    let local = forwarded(&store, "1001", &Route::Home);
    store.outbox_delivered(&old.id, 1000).unwrap();
    store.outbox_delivered(&recent.id, 5000).unwrap();

    assert!(store.purge_delivered(1000).unwrap().is_empty());
    assert_eq!(store.purge_delivered(2000).unwrap(), vec![old.id.clone()]);
    assert!(!store.audio_path(&old).exists());
    assert!(matches!(
        store.get(&old.id),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.outbox_entry(&old.id).unwrap(), None);
    for kept in [&recent, &waiting, &local] {
        assert!(store.audio_path(kept).exists());
        assert!(store.get(&kept.id).is_ok());
    }
    assert!(store.purge_delivered(2000).unwrap().is_empty());
    assert_eq!(store.list(None).unwrap().len(), 3);
}

#[test]
fn purging_a_deleted_queued_message_dequeues_it() {
    let (_dir, store) = open_tmp();
    let m = forwarded(&store, "2001", &to_b());
    store.delete(&m.id).unwrap();
    assert!(store.outbox_due("site-b", i64::MAX, 10).unwrap().is_empty());
    store.purge_deleted(i64::MAX).unwrap();
    assert!(store.outbox_list().unwrap().is_empty());
    assert_eq!(store.outbox_entry(&m.id).unwrap(), None);
}

#[test]
fn concurrent_recordings_and_transfers() {
    let (_dir, store) = open_tmp();
    let store = Arc::new(store);
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let mut ids = Vec::new();
                for j in 0..4 {
                    let m = forwarded(&store, &format!("2{i}{j}"), &to_b());
                    store.outbox_retry_later(&m.id, 10, "busy").unwrap();
                    store.outbox_delivered(&m.id, 20).unwrap();
                    ids.push(m.id);
                }
                forwarded(&store, &format!("1{i}"), &Route::Home);
                ids
            })
        })
        .collect();
    let mut delivered: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    delivered.sort();
    assert_eq!(store.list(None).unwrap().len(), 30);
    assert!(store.outbox_list().unwrap().is_empty());
    let mut purged = store.purge_delivered(21).unwrap();
    purged.sort();
    assert_eq!(purged, delivered);
    let left = store.list(None).unwrap();
    assert_eq!(left.len(), 6);
    assert!(left.iter().all(|m| m.delivery == DELIVERY_HOME));
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
}

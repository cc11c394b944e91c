//! Folders, soft deletion and its purge, the counts behind the lamps, the
//! change log other processes' writes show up in, and the persisted
//! subscriptions.

use std::time::Duration;

use time::macros::datetime;
use uuid::Uuid;

use super::tests::{meta, new_meta, open_tmp, samples, stored};
use super::*;

fn ids(list: &[Message]) -> Vec<String> {
    list.iter().map(|m| m.id.clone()).collect()
}

#[test]
fn a_message_moves_between_folders_and_back() {
    let (_dir, store) = open_tmp();
    let m = stored(&store, new_meta("1001"), &samples(8000, 1));
    assert_eq!((m.folder, m.deleted_at.clone()), (Folder::New, None));

    let heard = store.mark_heard(&m.id[..8]).unwrap();
    assert_eq!(
        (heard.from, heard.message.folder),
        (Folder::New, Folder::Old)
    );
    assert!(heard.changed());
    // Heard again: nothing to do.
    let again = store.mark_heard(&m.id).unwrap();
    assert!(!again.changed());
    assert_eq!(again.message.folder, Folder::Old);

    let saved = store.move_to(&m.id, Folder::Saved).unwrap();
    assert_eq!(
        (saved.from, saved.message.folder),
        (Folder::Old, Folder::Saved)
    );
    // A saved message is already heard: marking it heard keeps it saved.
    assert_eq!(
        store.mark_heard(&m.id).unwrap().message.folder,
        Folder::Saved
    );

    let deleted = store.delete(&m.id).unwrap();
    assert_eq!(
        (deleted.from, deleted.message.folder),
        (Folder::Saved, Folder::Deleted)
    );
    let deleted_at = deleted.message.deleted_at.clone().expect("deleted_at");
    assert!(
        deleted_at.ends_with('Z') && deleted_at.len() == 24,
        "{deleted_at}"
    );
    assert!(
        store.audio_path(&m).exists(),
        "soft deletion keeps the audio"
    );
    // Deleted: out of the default listing, in the deleted folder.
    assert!(store.list(None).unwrap().is_empty());
    assert_eq!(
        ids(&store.list_in(None, Some(Folder::Deleted)).unwrap()),
        vec![m.id.clone()]
    );
    assert_eq!(store.get(&m.id).unwrap().folder, Folder::Deleted);
    // Deleting again changes nothing, not even the time.
    let twice = store.delete(&m.id).unwrap();
    assert!(!twice.changed());
    assert_eq!(twice.message.deleted_at, Some(deleted_at));
    // Only restore applies to a deleted message.
    for result in [
        store.mark_heard(&m.id),
        store.mark_new(&m.id),
        store.move_to(&m.id, Folder::Old),
    ] {
        assert!(
            matches!(result, Err(StoreError::Deleted { ref id }) if *id == m.id),
            "{result:?}"
        );
    }

    // Restore puts it back where it was deleted from.
    let restored = store.restore(&m.id).unwrap();
    assert_eq!(
        (
            restored.from,
            restored.message.folder,
            restored.message.deleted_at
        ),
        (Folder::Deleted, Folder::Saved, None)
    );
    assert!(matches!(
        store.restore(&m.id),
        Err(StoreError::NotDeleted { .. })
    ));
    assert_eq!(store.mark_new(&m.id).unwrap().message.folder, Folder::New);
    assert!(matches!(
        store.mark_heard("00000000-0000-4000-8000-000000000000"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        "archive".parse::<Folder>(),
        Err(StoreError::InvalidFolder { .. })
    ));
    assert_eq!("Saved".parse::<Folder>().unwrap(), Folder::Saved);
}

#[test]
fn counts_and_listening_order_follow_the_folders_of_home_messages() {
    let (_dir, store) = open_tmp();
    let at = |s: u32| {
        meta(
            "1001",
            Uuid::new_v4(),
            datetime!(2024-05-01 10:00:00 UTC) + Duration::from_secs(u64::from(s)),
        )
    };
    let audio = samples(8000, 0);
    let first = stored(&store, at(1), &audio);
    let second = stored(&store, at(2), &audio);
    let third = stored(&store, at(3), &audio);
    let fourth = stored(&store, at(4), &audio);
    let fifth = stored(&store, at(5), &audio);
    store.mark_heard(&second.id).unwrap();
    store.move_to(&first.id, Folder::Saved).unwrap();
    store.delete(&fourth.id).unwrap();
    // Another mailbox, and a message waiting here for its home peer: the
    // latter is the home's to count.
    stored(&store, new_meta("1002"), &audio);
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    rec.write(&audio).unwrap();
    let forward = Route::Forward {
        peer: "site-b".into(),
    };
    store
        .finish(rec, &StoragePolicy::wav(Duration::ZERO), false, &forward)
        .unwrap();

    let counts = store.counts("1001").unwrap();
    assert_eq!(
        counts,
        MailboxCounts {
            new: 2,
            old: 1,
            saved: 1,
            deleted: 1,
            urgent_new: 0,
            urgent_old: 0,
        }
    );
    assert_eq!(counts.heard(), 2);
    assert_eq!(store.counts("1003").unwrap(), MailboxCounts::default());
    // New ones oldest first, then the heard ones oldest first.
    assert_eq!(
        ids(&store.listening_order("1001").unwrap()),
        vec![third.id, fifth.id, first.id, second.id]
    );
    assert!(matches!(
        store.counts("../x"),
        Err(StoreError::InvalidMailbox { .. })
    ));
}

#[test]
fn purge_removes_deleted_messages_past_the_cutoff_and_keeps_tombstones() {
    let (_dir, store) = open_tmp();
    let audio = samples(8000, 3);
    let old = stored(&store, new_meta("1001"), &audio);
    let kept = stored(&store, new_meta("1001"), &audio);
    store.delete(&old.id).unwrap();
    // Nothing is deleted before the cutoff yet.
    assert!(store.purge_deleted(0).unwrap().is_empty());
    let (now_ms, _) = now_unix_ms();
    let cutoff = now_ms + 1;
    store.delete(&kept.id).unwrap();
    store.restore(&kept.id).unwrap();

    assert_eq!(store.purge_deleted(cutoff).unwrap(), vec![old.id.clone()]);
    assert!(!store.audio_path(&old).exists());
    assert!(matches!(
        store.get(&old.id),
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.is_tombstoned(&old.id).unwrap());
    assert!(!store.is_tombstoned(&kept.id).unwrap());
    assert_eq!(ids(&store.list(None).unwrap()), vec![kept.id.clone()]);
    assert!(store.audio_path(&kept).exists());
    // Idempotent.
    assert!(store.purge_deleted(cutoff).unwrap().is_empty());
    // Recovery leaves everything as it is.
    assert!(store
        .recover(&super::tests::home, &super::tests::wav())
        .unwrap()
        .is_empty());
    assert!(store.audio_path(&kept).exists());
}

#[test]
fn a_message_deleted_while_queued_is_not_sent_until_restored() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("2001")).unwrap();
    rec.write(&samples(8000, 4)).unwrap();
    let forward = Route::Forward {
        peer: "site-b".into(),
    };
    let Finished::Stored(m) = store
        .finish(rec, &StoragePolicy::wav(Duration::ZERO), false, &forward)
        .unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(store.outbox_due("site-b", i64::MAX, 10).unwrap().len(), 1);
    store.delete(&m.id).unwrap();
    assert!(store.outbox_due("site-b", i64::MAX, 10).unwrap().is_empty());
    assert_eq!(store.outbox_next_due("site-b").unwrap(), None);
    assert!(store.outbox_waiting_counts().unwrap().is_empty());
    store.restore(&m.id).unwrap();
    assert_eq!(store.outbox_due("site-b", i64::MAX, 10).unwrap().len(), 1);
}

#[test]
fn the_change_watcher_sees_commits_of_every_connection() {
    let (dir, store) = open_tmp();
    let mut watcher = store.change_watcher().unwrap();
    let signal = store.change_signal();
    assert!(watcher.changed().unwrap().is_empty());

    let m = stored(&store, new_meta("1001"), &samples(8000, 5));
    stored(&store, new_meta("1002"), &samples(8000, 6));
    assert_eq!(watcher.changed().unwrap(), vec!["1001", "1002"]);
    assert!(watcher.changed().unwrap().is_empty());
    // This process's commits raise the signal (a permit is kept).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(1), signal.notified())
            .await
            .expect("signalled")
    });

    // Another process (here another connection) marks it heard.
    let cli = Store::open(dir.path()).unwrap();
    cli.mark_heard(&m.id).unwrap();
    assert_eq!(watcher.changed().unwrap(), vec!["1001"]);
    // A no-op move is no change.
    cli.mark_heard(&m.id).unwrap();
    assert!(watcher.changed().unwrap().is_empty());
    cli.delete(&m.id).unwrap();
    cli.purge_deleted(i64::MAX).unwrap();
    assert_eq!(watcher.changed().unwrap(), vec!["1001"]);
    assert_eq!(store.known_mailboxes().unwrap(), vec!["1001", "1002"]);
}

fn subscription(id: &str) -> SubscriptionRecord {
    SubscriptionRecord {
        id: id.into(),
        mailbox: "1001".into(),
        call_id: format!("call-{id}"),
        local_tag: "ours".into(),
        remote_tag: "theirs".into(),
        event_id: Some("7".into()),
        local_uri: "sip:1001@vm.example".into(),
        remote_uri: "sip:phone@pbx.example".into(),
        remote_target: "sip:phone@192.0.2.7:5062".into(),
        route_set: vec!["sip:proxy.example;lr".into()],
        transport: "udp".into(),
        local_addr: "127.0.0.1:5060".into(),
        account: "sip:1001@vm.example".into(),
        local_cseq: 0,
        remote_cseq: 1,
        expires_ms: 1_000,
    }
}

#[test]
fn subscriptions_persist_with_their_dialog_and_cseq() {
    let dir = tempfile::tempdir().unwrap();
    let a = subscription("a");
    {
        let store = Store::open(dir.path()).unwrap();
        store.save_subscription(&a).unwrap();
        store.save_subscription(&subscription("b")).unwrap();
        assert_eq!(store.next_notify_cseq("a").unwrap(), Some(1));
        assert_eq!(store.next_notify_cseq("a").unwrap(), Some(2));
        assert_eq!(store.next_notify_cseq("gone").unwrap(), None);
    }
    let store = Store::open(dir.path()).unwrap();
    let mut refreshed = a.clone();
    refreshed.remote_cseq = 5;
    refreshed.expires_ms = 9_000;
    refreshed.remote_target = "sip:phone@192.0.2.8:5062".into();
    store.save_subscription(&refreshed).unwrap();
    let found = store
        .subscription_of_dialog("call-a", "ours", "theirs")
        .unwrap()
        .expect("found by dialog");
    assert_eq!(found.local_cseq, 2, "the CSeq survives the restart");
    assert_eq!(
        (found.remote_cseq, found.expires_ms, found.route_set.clone()),
        (5, 9_000, vec!["sip:proxy.example;lr".to_string()])
    );
    assert_eq!(store.next_notify_cseq("a").unwrap(), Some(3));
    assert_eq!(
        store
            .subscriptions()
            .unwrap()
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        vec!["b", "a"]
    );
    store.remove_subscription("b").unwrap();
    assert_eq!(store.subscriptions().unwrap().len(), 1);
    assert!(store
        .subscription_of_dialog("call-a", "ours", "other")
        .unwrap()
        .is_none());
    let mut bad = subscription("c");
    bad.mailbox = "../x".into();
    assert!(matches!(
        store.save_subscription(&bad),
        Err(StoreError::InvalidMailbox { .. })
    ));
}

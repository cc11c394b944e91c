//! Messages received from peers: exact bytes, idempotence by id, and
//! refusal of anything that does not check out.

use std::fs;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::tests::{home, open_tmp, wav};
use super::*;

/// Bytes that are not a valid WAV on purpose: the store keeps what it is
/// sent, byte for byte, without interpreting it.
fn audio(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn incoming(id: &str, bytes: &[u8]) -> IncomingMessage {
    IncomingMessage {
        id: id.into(),
        mailbox: "2001".into(),
        caller: "sip:1001@pbx-a.example".into(),
        caller_name: Some("Bob".into()),
        called: "sip:2001@pbx-a.example".into(),
        reason: Some("no-answer".into()),
        received_at: "2024-05-01T12:00:00.250+02:00".into(),
        duration_ms: 1500,
        codec: "PCMA".into(),
        format: "wav".into(),
        sample_rate: 8000,
        size_bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
        origin: "site-a".into(),
        partial: true,
        call_id: "abc@pbx-a".into(),
    }
}

/// Spoils one metadata field; the name says which.
type Spoil = (fn(&mut IncomingMessage), &'static str);

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

fn assert_nothing_stored(store: &Store) {
    assert!(store.list(None).unwrap().is_empty());
    let mailbox_dir = store.data_dir().join(MESSAGES_DIR).join("2001");
    assert!(!mailbox_dir.exists() || fs::read_dir(mailbox_dir).unwrap().next().is_none());
}

#[test]
fn stores_the_exact_bytes_as_a_home_message() {
    let (_dir, store) = open_tmp();
    let bytes = audio(1, 10_000);
    let meta = incoming(&new_id(), &bytes);
    let Received::Stored(m) = store.store_received(&meta, &bytes).unwrap() else {
        panic!("not stored");
    };
    assert_eq!(fs::read(store.audio_path(&m)).unwrap(), bytes);
    assert!(store
        .audio_path(&m)
        .ends_with(format!("messages/2001/{}.wav", m.id)));
    assert_eq!(store.read_audio(&m).unwrap(), bytes);
    assert_eq!((m.origin.as_str(), m.home.as_ref()), ("site-a", None));
    assert_eq!(
        (m.delivery.as_str(), m.folder),
        (DELIVERY_HOME, Folder::New)
    );
    assert_eq!(m.received_at, "2024-05-01T10:00:00.250Z");
    assert_eq!(
        (m.size_bytes, m.duration_ms, m.partial),
        (10_000, 1500, true)
    );
    assert_eq!(m.sha256, meta.sha256);
    assert_eq!(store.list(None).unwrap(), vec![m]);
    assert!(
        store.outbox_list().unwrap().is_empty(),
        "home: never queued"
    );
}

#[test]
fn opus_messages_keep_their_format_and_extension() {
    let (_dir, store) = open_tmp();
    let bytes = audio(2, 3000);
    let mut meta = incoming(&new_id(), &bytes);
    meta.format = FORMAT_OPUS.into();
    meta.sample_rate = 48_000;
    let Received::Stored(m) = store.store_received(&meta, &bytes).unwrap() else {
        panic!("not stored");
    };
    assert_eq!(m.format, FORMAT_OPUS);
    assert!(store.audio_path(&m).ends_with(format!("{}.opus", m.id)));
    assert_eq!(store.read_audio(&m).unwrap(), bytes);
    // Recovery knows the extension and leaves a listed Opus file alone.
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert!(store.audio_path(&m).exists());
    store.delete(&m.id).unwrap();
    assert!(
        store.audio_path(&m).exists(),
        "a deleted message keeps its audio"
    );
    assert_eq!(store.purge_deleted(i64::MAX).unwrap(), vec![m.id.clone()]);
    assert!(!store.audio_path(&m).exists());
}

#[test]
fn a_retransmission_is_a_duplicate_and_changes_nothing() {
    let (_dir, store) = open_tmp();
    let bytes = audio(3, 5000);
    let meta = incoming(&new_id(), &bytes);
    let Received::Stored(first) = store.store_received(&meta, &bytes).unwrap() else {
        panic!("not stored");
    };
    let path = store.audio_path(&first);
    let past = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(past)
        .unwrap();

    // The id in another spelling is the same message.
    let mut again = meta.clone();
    again.id = meta.id.to_uppercase();
    assert_eq!(
        store.store_received(&again, &bytes).unwrap(),
        Received::Duplicate(first.clone())
    );
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), past);
    assert_eq!(store.list(None).unwrap(), vec![first]);
}

#[test]
fn the_same_id_with_other_audio_is_a_conflict() {
    let (_dir, store) = open_tmp();
    let id = new_id();
    let bytes = audio(4, 5000);
    store
        .store_received(&incoming(&id, &bytes), &bytes)
        .unwrap();
    let other = audio(5, 5000);
    assert!(matches!(
        store.store_received(&incoming(&id, &other), &other),
        Err(StoreError::Conflict { .. })
    ));
    let kept = store.get(&id).unwrap();
    assert_eq!(store.read_audio(&kept).unwrap(), bytes);
}

#[test]
fn audio_that_does_not_match_its_sha256_is_refused() {
    let (_dir, store) = open_tmp();
    let bytes = audio(6, 5000);
    let meta = incoming(&new_id(), &bytes);
    let mut damaged = bytes.clone();
    damaged[100] ^= 1;
    let outcome = store.store_received(&meta, &damaged);
    assert!(matches!(outcome, Err(StoreError::Checksum { .. })));
    assert!(outcome.is_err_and(|e| e.is_invalid_input()));
    assert_nothing_stored(&store);
}

#[test]
fn bad_metadata_is_refused_before_touching_disk() {
    let (_dir, store) = open_tmp();
    let bytes = audio(7, 100);
    let base = incoming(&new_id(), &bytes);
    let cases: Vec<Spoil> = vec![
        (|m| m.mailbox = "../2001".into(), "mailbox"),
        (|m| m.mailbox = "".into(), "mailbox"),
        (|m| m.id = "not-a-uuid".into(), "id"),
        (|m| m.format = "mp3".into(), "format"),
        (|m| m.format = "../wav".into(), "format"),
        (|m| m.received_at = "yesterday".into(), "received_at"),
        (
            |m| m.received_at = "9999-12-31T23:59:59.999-23:59".into(),
            "received_at",
        ),
        (|m| m.duration_ms = u64::MAX, "duration_ms"),
        (|m| m.caller_name = Some("x".repeat(5000)), "caller_name"),
        (|m| m.call_id = "c".repeat(4097), "call_id"),
        (|m| m.sample_rate = 0, "sample_rate"),
        (|m| m.sha256 = "zz".into(), "sha256"),
        (|m| m.origin = "site a".into(), "origin"),
    ];
    for (spoil, what) in cases {
        let mut meta = base.clone();
        spoil(&mut meta);
        let outcome = store.store_received(&meta, &bytes);
        assert!(
            outcome.as_ref().is_err_and(StoreError::is_invalid_input),
            "{what}: {outcome:?}"
        );
        let refused = match (&outcome, what) {
            (Err(StoreError::InvalidMailbox { .. }), "mailbox") => true,
            (Err(StoreError::InvalidPeer { .. }), "origin") => true,
            (Err(StoreError::InvalidMetadata { field, .. }), _) => *field == what,
            _ => false,
        };
        assert!(refused, "{what}: {outcome:?}");
    }
    assert_nothing_stored(&store);
}

#[test]
fn copies_arriving_at_once_are_stored_once() {
    let (_dir, store) = open_tmp();
    let store = Arc::new(store);
    let bytes = Arc::new(audio(8, 50_000));
    let meta = incoming(&new_id(), &bytes);
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (store, bytes, meta) = (Arc::clone(&store), Arc::clone(&bytes), meta.clone());
            thread::spawn(move || store.store_received(&meta, &bytes).unwrap())
        })
        .collect();
    let outcomes: Vec<Received> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Received::Stored(_)))
        .count();
    assert_eq!(stored, 1);
    let listed = store.list(None).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(store.read_audio(&listed[0]).unwrap(), *bytes);
}

#[test]
fn recovery_drops_receipts_cut_before_their_commit() {
    let (_dir, store) = open_tmp();
    let dir = store.data_dir().join(MESSAGES_DIR).join("2001");
    fs::create_dir_all(&dir).unwrap();
    let id = new_id();
    let tmp = dir.join(format!("{id}.tmp"));
    let unindexed = dir.join(format!("{}.opus", new_id()));
    fs::write(&tmp, b"half").unwrap();
    fs::write(&unindexed, b"never acknowledged").unwrap();
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert!(!tmp.exists() && !unindexed.exists());
    // The sender sends it again, and it is stored normally.
    let bytes = audio(9, 1000);
    assert!(matches!(
        store.store_received(&incoming(&id, &bytes), &bytes),
        Ok(Received::Stored(_))
    ));
}

#[test]
fn read_audio_reports_a_file_damaged_on_disk() {
    let (_dir, store) = open_tmp();
    let bytes = audio(10, 1000);
    let Received::Stored(m) = store
        .store_received(&incoming(&new_id(), &bytes), &bytes)
        .unwrap()
    else {
        panic!("not stored");
    };
    fs::write(store.audio_path(&m), b"bit rot").unwrap();
    assert!(matches!(
        store.read_audio(&m),
        Err(StoreError::Checksum { .. })
    ));
}

#[test]
fn a_message_deleted_at_home_is_not_stored_again_before_or_after_the_purge() {
    let (_dir, store) = open_tmp();
    let bytes = audio(9, 4000);
    let meta = incoming(&new_id(), &bytes);
    let Received::Stored(m) = store.store_received(&meta, &bytes).unwrap() else {
        panic!("not stored");
    };
    store.delete(&m.id).unwrap();

    // Soft-deleted: a retry is a duplicate and the message stays deleted.
    let Received::Duplicate(held) = store.store_received(&meta, &bytes).unwrap() else {
        panic!("not a duplicate");
    };
    assert_eq!(held.folder, Folder::Deleted);
    assert_eq!(store.get(&m.id).unwrap().folder, Folder::Deleted);

    // Purged: the tombstone absorbs the retry; nothing comes back.
    store.purge_deleted(i64::MAX).unwrap();
    assert_eq!(
        store.store_received(&meta, &bytes).unwrap(),
        Received::Purged {
            id: m.id.clone(),
            mailbox: "2001".into()
        }
    );
    assert_nothing_stored(&store);
    assert!(store
        .list_in(None, Some(Folder::Deleted))
        .unwrap()
        .is_empty());
    // The same id with other audio is still a conflict.
    let other = audio(10, 4000);
    let mut forged = incoming(&m.id, &other);
    forged.id = m.id.clone();
    assert!(matches!(
        store.store_received(&forged, &other),
        Err(StoreError::Conflict { .. })
    ));
    assert_nothing_stored(&store);
}

//! Behaviour of the store through its public API, with crash states made
//! by hand on disk for recovery.

use std::fs;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

pub(super) const RATE: u32 = 8000;
pub(super) const MIN: Duration = Duration::from_secs(1);

/// WAV, no silence rules, a 1 s minimum: the store as before formats.
pub(super) fn wav() -> StoragePolicy {
    StoragePolicy::wav(MIN)
}

pub(super) fn meta(mailbox: &str, id: Uuid, at: OffsetDateTime) -> NewMessage {
    NewMessage {
        id,
        mailbox: mailbox.into(),
        caller_uri: "sip:2002@pbx.example".into(),
        caller_name: Some("Alice".into()),
        called_uri: format!("sip:{mailbox}@pbx.example"),
        reason: Some("user-busy".into()),
        received_at: at,
        codec: "PCMU".into(),
        sample_rate: RATE,
        origin: "site-a".into(),
        call_id: format!("call-{id}"),
    }
}

pub(super) fn new_meta(mailbox: &str) -> NewMessage {
    meta(mailbox, Uuid::new_v4(), datetime!(2024-05-01 10:00:00 UTC))
}

/// A recognizable ramp, so sample-exact comparisons mean something.
pub(super) fn samples(n: usize, seed: i32) -> Vec<i16> {
    (0..n)
        .map(|i| ((i as i32 * 37 + seed) % 65536 - 32768) as i16)
        .collect()
}

/// Writes `audio` in 20 ms frames as the media path would.
pub(super) fn record(rec: &mut Recording, audio: &[i16]) {
    for frame in audio.chunks(160) {
        rec.write(frame).unwrap();
    }
}

/// Every mailbox is this server's own.
pub(super) fn home(_mailbox: &str) -> Route {
    Route::Home
}

pub(super) fn stored(store: &Store, meta: NewMessage, audio: &[i16]) -> Message {
    let mut rec = store.start_recording(meta).unwrap();
    record(&mut rec, audio);
    match store.finish(rec, &wav(), false, &Route::Home).unwrap() {
        Finished::Stored(m) => m,
        other => panic!("expected stored, got {other:?}"),
    }
}

pub(super) fn read_wav(path: &std::path::Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    (spec, reader.samples::<i16>().map(|s| s.unwrap()).collect())
}

pub(super) fn open_tmp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// Nothing left in `recording/` but spent sidecars kept for reuse.
pub(super) fn recording_dir_is_empty(store: &Store) -> bool {
    fs::read_dir(store.data_dir().join(RECORDING_DIR))
        .unwrap()
        .all(|e| {
            e.unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == spare::SPARE_EXTENSION)
        })
}

/// Simulates a process crash mid-call: nothing of the writer is dropped, so
/// neither its buffer nor a final header reaches the file.
pub(super) fn crash(rec: Recording) {
    std::mem::forget(rec);
}

#[test]
fn finish_stores_exact_audio_and_a_matching_row() {
    let (_dir, store) = open_tmp();
    let audio = samples(12_000, 0);
    let m = stored(&store, new_meta("1001"), &audio);

    assert_eq!(m.duration_ms, 1500);
    assert_eq!(m.mailbox, "1001");
    assert_eq!(m.caller_name.as_deref(), Some("Alice"));
    assert_eq!(m.reason.as_deref(), Some("user-busy"));
    assert_eq!(m.received_at, "2024-05-01T10:00:00.000Z");
    assert_eq!((m.format.as_str(), m.folder), ("wav", Folder::New));
    assert!(!m.partial);

    let path = store.audio_path(&m);
    assert!(path.ends_with(format!("messages/1001/{}.wav", m.id)));
    let bytes = fs::read(&path).unwrap();
    assert_eq!(m.size_bytes, bytes.len() as u64);
    assert_eq!(m.size_bytes, 44 + 2 * 12_000);
    assert_eq!(m.sha256, hex::encode(Sha256::digest(&bytes)));
    let (spec, read) = read_wav(&path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, RATE, 16)
    );
    assert_eq!(read, audio);

    assert_eq!(store.list(None).unwrap(), vec![m.clone()]);
    assert_eq!(store.get(&m.id).unwrap(), m);
    assert!(recording_dir_is_empty(&store));
}

#[test]
fn header_is_valid_on_disk_while_recording() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    record(&mut rec, &samples(RATE as usize, 0));
    assert_eq!(rec.duration(), Duration::from_secs(1));
    let (_, read) = read_wav(rec.path());
    assert_eq!(read.len(), RATE as usize);
    store.finish(rec, &wav(), false, &Route::Home).unwrap();
}

/// Blocks of a tenth of a second reach the kernel a second at a time, each
/// time with the header's sizes, and the rest at the explicit flush.
#[test]
fn blocks_reach_the_file_every_second_with_the_header() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    let audio = samples(2 * RATE as usize + 400, 5);
    for block in audio.chunks(RATE as usize / 10) {
        rec.write(block).unwrap();
    }
    let (spec, on_disk) = read_wav(rec.path());
    assert_eq!(spec.sample_rate, RATE);
    assert_eq!(on_disk, audio[..2 * RATE as usize], "two whole seconds");
    rec.flush().unwrap();
    assert_eq!(read_wav(rec.path()).1, audio);
    let len = std::fs::metadata(rec.path()).unwrap().len();
    assert_eq!(len, 44 + 2 * audio.len() as u64);
    let m = match store.finish(rec, &wav(), false, &Route::Home).unwrap() {
        Finished::Stored(m) => m,
        other => panic!("expected stored, got {other:?}"),
    };
    assert_eq!(m.duration_ms, 2050);
}

/// A second or more handed over at once (as the media engine does) goes
/// to the file straight away with the header; a smaller piece after it is
/// buffered, and one more whole second after that piece keeps the order.
#[test]
fn whole_seconds_reach_the_file_at_once() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    let audio = samples(3 * RATE as usize + 800, 9);
    let (first, rest) = audio.split_at(RATE as usize + 160);
    rec.write(first).unwrap();
    assert_eq!(read_wav(rec.path()).1, first, "on disk without a flush");
    let (piece, last) = rest.split_at(640);
    rec.write(piece).unwrap();
    assert_eq!(
        read_wav(rec.path()).1,
        first,
        "a piece waits for its second"
    );
    rec.write(last).unwrap();
    assert_eq!(read_wav(rec.path()).1, audio);
    let len = std::fs::metadata(rec.path()).unwrap().len();
    assert_eq!(len, 44 + 2 * audio.len() as u64);
    let m = match store.finish(rec, &wav(), false, &Route::Home).unwrap() {
        Finished::Stored(m) => m,
        other => panic!("expected stored, got {other:?}"),
    };
    assert_eq!(m.duration_ms, 3100);
}

#[test]
fn below_minimum_is_discarded_without_trace() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    record(&mut rec, &samples(4000, 0));
    let outcome = store.finish(rec, &wav(), false, &Route::Home).unwrap();
    assert_eq!(
        outcome,
        Finished::Discarded {
            duration: Duration::from_millis(500),
            reason: DiscardReason::TooShort,
        }
    );
    assert!(store.list(None).unwrap().is_empty());
    assert!(recording_dir_is_empty(&store));
    assert!(!store.data_dir().join(MESSAGES_DIR).join("1001").exists());
}

#[test]
fn mailbox_outside_digits_is_rejected_before_touching_disk() {
    let (_dir, store) = open_tmp();
    for bad in ["../x", "", "1001/..", "a1"] {
        assert!(matches!(
            store.start_recording(new_meta(bad)),
            Err(StoreError::InvalidMailbox { .. })
        ));
        assert!(matches!(
            store.list(Some(bad)),
            Err(StoreError::InvalidMailbox { .. })
        ));
    }
    assert!(recording_dir_is_empty(&store));
}

#[test]
fn list_is_newest_first_and_filters_by_mailbox() {
    let (_dir, store) = open_tmp();
    let audio = samples(8000, 0);
    let old = stored(
        &store,
        meta("1001", Uuid::new_v4(), datetime!(2024-05-01 10:00:00 UTC)),
        &audio,
    );
    let new = stored(
        &store,
        meta("1001", Uuid::new_v4(), datetime!(2024-05-01 10:00:00.5 UTC)),
        &audio,
    );
    let other = stored(
        &store,
        meta("1002", Uuid::new_v4(), datetime!(2024-05-01 09:00:00 UTC)),
        &audio,
    );
    let ids = |v: Vec<Message>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list(None).unwrap()),
        vec![new.id.clone(), old.id.clone(), other.id.clone()]
    );
    assert_eq!(ids(store.list(Some("1001")).unwrap()), vec![new.id, old.id]);
    assert!(store.list(Some("1003")).unwrap().is_empty());
}

#[test]
fn get_by_unique_prefix_and_reports_ambiguity() {
    let (_dir, store) = open_tmp();
    let audio = samples(8000, 0);
    let at = datetime!(2024-05-01 10:00:00 UTC);
    let a = Uuid::from_u128(0x12345678_0000_4000_8000_00000000000a);
    let b = Uuid::from_u128(0x12345678_0000_4000_8000_00000000000b);
    let c = Uuid::from_u128(0xabcdef01_0000_4000_8000_000000000001);
    for id in [a, b, c] {
        stored(&store, meta("1001", id, at), &audio);
    }
    assert_eq!(store.get("abcdef01").unwrap().id, c.to_string());
    assert_eq!(store.get("ABCDEF01-00").unwrap().id, c.to_string());
    assert_eq!(
        store.get(&a.simple().to_string()).unwrap().id,
        a.to_string()
    );
    assert_eq!(store.get(&b.to_string()).unwrap().id, b.to_string());
    match store.get("12345678") {
        Err(StoreError::Ambiguous { matches, .. }) => {
            assert_eq!(matches, vec![a.to_string(), b.to_string()])
        }
        other => panic!("expected ambiguous, got {other:?}"),
    }
    for bad in ["1234567", "zzzzzzzz", "1234567%", ""] {
        assert!(
            matches!(store.get(bad), Err(StoreError::InvalidId { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        store.get("deadbeef"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get(&Uuid::new_v4().to_string()),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn reopening_keeps_messages_and_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let m = {
        let store = Store::open(dir.path()).unwrap();
        stored(&store, new_meta("1001"), &samples(8000, 0))
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::latest_version());
    assert_eq!(store.list(None).unwrap(), vec![m]);
    let mode: String = store
        .lock()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn concurrent_recordings_on_threads() {
    let (_dir, store) = open_tmp();
    let store = Arc::new(store);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let audio = samples(8800, i);
                let m = stored(&store, new_meta(&format!("10{i}")), &audio);
                (m, audio)
            })
        })
        .collect();
    for handle in handles {
        let (m, audio) = handle.join().unwrap();
        assert_eq!(m.duration_ms, 1100);
        assert_eq!(read_wav(&store.audio_path(&m)).1, audio);
    }
    assert_eq!(store.list(None).unwrap().len(), 8);
}

#[test]
fn recover_finishes_a_recording_cut_by_a_crash_as_partial() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    let id = rec.id().to_string();
    // 2.5 s: the last flush happened at 2 s, the rest was in the buffer.
    record(&mut rec, &samples(20_000, 0));
    crash(rec);

    let recovered = store.recover(&home, &wav()).unwrap();
    assert_eq!(recovered.len(), 1);
    let m = &recovered[0];
    assert_eq!(m.id, id);
    assert!(m.partial);
    assert_eq!(m.duration_ms, 2000);
    assert_eq!(read_wav(&store.audio_path(m)).1, samples(16_000, 0));
    assert_eq!(store.list(None).unwrap(), recovered);
    assert!(recording_dir_is_empty(&store));

    assert!(
        store.recover(&home, &wav()).unwrap().is_empty(),
        "recover is idempotent"
    );
    assert_eq!(store.list(None).unwrap(), recovered);
}

#[test]
fn recover_rebuilds_a_stale_header_and_keeps_short_audio() {
    let (_dir, store) = open_tmp();
    let rec = store.start_recording(new_meta("1001")).unwrap();
    let path = rec.path().to_owned();
    crash(rec);
    // The file as its first audio leaves it when the process dies before
    // the header's sizes are written: the header made with the file still
    // says zero samples; 500 samples and half of one more follow it.
    let audio = samples(500, 3);
    let mut bytes = wav_header::canonical_header(&path, RATE, 0).unwrap();
    assert_eq!(bytes.len(), 44);
    bytes.extend(audio.iter().flat_map(|s| s.to_le_bytes()));
    bytes.push(0x7f);
    fs::write(&path, &bytes).unwrap();

    let recovered = store.recover(&home, &wav()).unwrap();
    assert_eq!(
        recovered.len(),
        1,
        "short partial audio is kept, not dropped"
    );
    let m = &recovered[0];
    assert!(m.partial);
    assert_eq!(m.duration_ms, 62);
    assert_eq!(m.size_bytes, 44 + 1000);
    let final_bytes = fs::read(store.audio_path(m)).unwrap();
    assert_eq!(m.sha256, hex::encode(Sha256::digest(&final_bytes)));
    assert_eq!(read_wav(&store.audio_path(m)).1, audio);
}

#[test]
fn recover_lists_a_recording_with_no_samples_as_an_empty_partial_message() {
    // A crash in the call's first second: the sidecar (written at the ACK)
    // reached the disk, no audio did, so neither did a WAV file (it is made
    // with the first audio), or only its header did. The caller was
    // answered; the call is listed, in every storage format, as WAV.
    let opus_strict = StoragePolicy {
        format: StoreFormat::Opus { bitrate: 24_000 },
        silence: Some(SilenceRules {
            threshold_dbfs: -50.0,
            discard_silent: true,
        }),
        ..wav()
    };
    for (policy, header_only) in [(wav(), false), (opus_strict, false), (wav(), true)] {
        let (_dir, store) = open_tmp();
        let rec = store.start_recording(new_meta("1001")).unwrap();
        let id = rec.id().to_string();
        assert!(!rec.path().exists(), "no audio, no file");
        if header_only {
            let header = wav_header::canonical_header(rec.path(), RATE, 0).unwrap();
            fs::write(rec.path(), header).unwrap();
        }
        crash(rec);
        let recovered = store.recover(&home, &policy).unwrap();
        assert_eq!(recovered.len(), 1, "{policy:?}");
        let m = &recovered[0];
        assert_eq!(m.id, id);
        assert!(m.partial);
        assert_eq!((m.duration_ms, m.format.as_str()), (0, "wav"));
        assert_eq!(m.size_bytes, 44);
        let (spec, audio) = read_wav(&store.audio_path(m));
        assert_eq!((spec.sample_rate, audio.len()), (8000, 0));
        let bytes = fs::read(store.audio_path(m)).unwrap();
        assert_eq!(m.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(store.list(None).unwrap(), recovered);
        assert!(recording_dir_is_empty(&store));
        assert!(store.recover(&home, &policy).unwrap().is_empty());
    }
}

/// Finishes a message normally, then puts back its sidecar, as if the crash
/// happened before the sidecar was removed.
fn stored_with_sidecar_restored(store: &Store) -> Message {
    let rec = store.start_recording(new_meta("1001")).unwrap();
    let sidecar_path = store.sidecar_path(&rec.id().to_string());
    let sidecar = fs::read(&sidecar_path).unwrap();
    let mut rec = rec;
    record(&mut rec, &samples(9000, 0));
    let Finished::Stored(m) = store.finish(rec, &wav(), false, &Route::Home).unwrap() else {
        panic!("not stored");
    };
    fs::write(&sidecar_path, sidecar).unwrap();
    m
}

#[test]
fn recover_indexes_a_final_file_whose_commit_was_lost() {
    let (_dir, store) = open_tmp();
    let m = stored_with_sidecar_restored(&store);
    assert!(index::delete(&store.lock(), &m.id).unwrap());

    let recovered = store.recover(&home, &wav()).unwrap();
    assert_eq!(recovered, vec![m.clone()]);
    assert!(!recovered[0].partial);
    assert!(recording_dir_is_empty(&store));
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert_eq!(store.list(None).unwrap(), vec![m]);
}

#[test]
fn recover_drops_a_sidecar_whose_row_is_committed() {
    let (_dir, store) = open_tmp();
    let m = stored_with_sidecar_restored(&store);
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert!(recording_dir_is_empty(&store));
    assert_eq!(store.list(None).unwrap(), vec![m]);
}

/// A discard removes the sidecar, then the audio: a crash in between
/// leaves audio without a sidecar, which recovery removes, with a sidecar
/// that never got renamed into place.
#[test]
fn recover_removes_audio_without_a_sidecar_and_unfinished_sidecars() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    record(&mut rec, &samples(RATE as usize, 0));
    let id = rec.id().to_string();
    assert!(rec.path().exists());
    crash(rec);
    fs::remove_file(store.sidecar_path(&id)).unwrap();
    fs::write(store.data_dir().join(RECORDING_DIR).join("x.tmp"), b"{").unwrap();
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert!(recording_dir_is_empty(&store));
    assert!(store.list(None).unwrap().is_empty());
}

/// A call hung up before any audio reached the file (during the greeting):
/// it never made a WAV file, and its discard leaves nothing behind.
#[test]
fn a_recording_without_audio_makes_no_file_and_its_discard_leaves_nothing() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    rec.flush().unwrap();
    assert!(!rec.path().exists(), "no audio, no file");
    let outcome = store.finish(rec, &wav(), false, &Route::Home).unwrap();
    assert!(
        matches!(
            outcome,
            Finished::Discarded {
                reason: DiscardReason::TooShort,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(recording_dir_is_empty(&store));
    assert!(store.list(None).unwrap().is_empty());
}

#[test]
fn recover_keeps_rows_whose_file_is_missing() {
    let (_dir, store) = open_tmp();
    let m = stored(&store, new_meta("1001"), &samples(8000, 0));
    fs::remove_file(store.audio_path(&m)).unwrap();
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert_eq!(store.list(None).unwrap(), vec![m]);
}

#[test]
fn recover_completes_an_interrupted_delete() {
    let (_dir, store) = open_tmp();
    let m = stored(&store, new_meta("1001"), &samples(8000, 0));
    assert!(index::delete(&store.lock(), &m.id).unwrap());
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert!(!store.audio_path(&m).exists());
}

#[test]
fn recover_leaves_an_unreadable_sidecar_and_its_audio() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    record(&mut rec, &samples(RATE as usize, 0));
    let id = rec.id().to_string();
    let audio = rec.path().to_owned();
    crash(rec);
    fs::write(store.sidecar_path(&id), b"not json").unwrap();
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert!(audio.exists() && store.sidecar_path(&id).exists());
}

/// The schema as the first release created it (migration 1), kept verbatim
/// so the upgrade is tested against what is really on disk at sites.
const SCHEMA_V1: &str = "CREATE TABLE messages (
    id TEXT PRIMARY KEY NOT NULL, mailbox TEXT NOT NULL, caller_uri TEXT NOT NULL,
    caller_name TEXT, called_uri TEXT NOT NULL, reason TEXT, received_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL, codec TEXT NOT NULL, format TEXT NOT NULL,
    sample_rate INTEGER NOT NULL, size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
    state TEXT NOT NULL, partial INTEGER NOT NULL, origin TEXT NOT NULL, call_id TEXT NOT NULL);
CREATE INDEX messages_by_received ON messages (received_at DESC, id DESC);
CREATE INDEX messages_by_mailbox ON messages (mailbox, received_at DESC, id DESC);
PRAGMA user_version = 1;";

#[test]
fn a_version_1_database_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4().to_string();
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute(
            "INSERT INTO messages VALUES (?1, '1001', 'sip:a@b', NULL, 'sip:1001@b', NULL, \
             '2024-05-01T10:00:00.000Z', 1000, 'PCMU', 'wav', 8000, 16044, 'ab', 'new', 0, \
             'vmesh', 'c1')",
            [&id],
        )
        .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::latest_version());
    let old = store.get(&id).unwrap();
    assert_eq!((old.folder, old.deleted_at.as_deref()), (Folder::New, None));
    // The change log knows the mailboxes that were there before it.
    assert_eq!(store.known_mailboxes().unwrap(), vec!["1001"]);
    assert_eq!(
        (old.home.as_ref(), old.delivery.as_str()),
        (None, DELIVERY_HOME)
    );
    assert_eq!(old.origin, "vmesh");
    assert!(store.outbox_list().unwrap().is_empty());
    assert!(store.peers().unwrap().is_empty());

    // The upgraded database takes forwarded messages like a new one.
    let mut rec = store.start_recording(new_meta("2001")).unwrap();
    record(&mut rec, &samples(8000, 0));
    let forward = Route::Forward {
        peer: "site-b".into(),
    };
    store.finish(rec, &wav(), false, &forward).unwrap();
    assert_eq!(store.outbox_list().unwrap().len(), 1);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.list(None).unwrap().len(), 2);
}

/// Room found stands for a moment; a full disk is never remembered.
#[test]
fn room_found_is_remembered_briefly_and_only_when_there_is_room() {
    let (_dir, store) = open_tmp();
    assert!(!store.had_room_lately(0), "nothing checked yet");
    assert!(store.has_room(0));
    assert!(store.had_room_lately(0));
    assert!(
        !store.had_room_lately(1),
        "a larger minimum is checked again"
    );
    assert!(!store.has_room(u64::MAX / 2), "no disk is that large");
    assert!(!store.had_room_lately(0), "a refusal forgets the room seen");
}

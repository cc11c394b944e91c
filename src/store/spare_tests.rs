//! Spent sidecars reused by the next recordings (`spare.rs`), through the
//! store: the file is the same, what a crash leaves is recovered as before.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::spare::{MAX_SPARES, SIDECAR_BYTES, SPARE_EXTENSION};
use super::tests::{crash, home, new_meta, open_tmp, record, samples, wav};
use super::*;

/// The files in `recording/` with extension `ext`.
fn with_extension(store: &Store, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(store.data_dir().join(RECORDING_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    found
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

/// A call hung up during the greeting: its sidecar is left as a spare.
fn discarded_call(store: &Store) -> PathBuf {
    let rec = store.start_recording(new_meta("1001")).unwrap();
    let outcome = store.finish(rec, &wav(), false, &Route::Home).unwrap();
    assert!(matches!(outcome, Finished::Discarded { .. }), "{outcome:?}");
    let spares = with_extension(store, SPARE_EXTENSION);
    assert_eq!(spares.len(), 1, "{spares:?}");
    spares[0].clone()
}

/// A spare whose retirement is durable: a discarded call's, after another
/// recording started (its sidecar's write synced the directory).
fn usable_spare(store: &Store) -> PathBuf {
    let spare = discarded_call(store);
    crash(store.start_recording(new_meta("1002")).unwrap());
    spare
}

/// The rename that retired a sidecar is not synced; until the directory
/// is, the spare is not overwritten (a power cut could bring its old name
/// back over the new metadata), and the next recording makes a new file.
#[test]
fn a_spare_is_overwritten_only_once_its_retirement_is_durable() {
    let (_dir, store) = open_tmp();
    let spare = discarded_call(&store);
    let spare_inode = inode(&spare);
    let first = store.start_recording(new_meta("2001")).unwrap();
    let first_sidecar = store.sidecar_path(&first.id().to_string());
    assert_ne!(inode(&first_sidecar), spare_inode, "a new file");
    assert!(spare.exists());
    let second = store.start_recording(new_meta("2002")).unwrap();
    let second_sidecar = store.sidecar_path(&second.id().to_string());
    assert_eq!(inode(&second_sidecar), spare_inode, "the spare, now");
    assert!(!spare.exists());
    crash(first);
    crash(second);
}

#[test]
fn the_next_recording_overwrites_a_spent_sidecar_in_place() {
    let (_dir, store) = open_tmp();
    let spare = usable_spare(&store);
    let spare_inode = inode(&spare);

    let meta = new_meta("2001");
    let id = meta.id.to_string();
    let rec = store.start_recording(meta).unwrap();
    let sidecar = store.sidecar_path(&id);
    assert_eq!(inode(&sidecar), spare_inode, "the same file, renamed");
    assert!(!spare.exists());
    let bytes = fs::read(&sidecar).unwrap();
    assert_eq!(bytes.len(), SIDECAR_BYTES);
    let read = Sidecar::read(&sidecar).unwrap();
    assert_eq!((read.id.to_string(), read.mailbox.as_str()), (id, "2001"));
    // Nothing of the previous call's metadata is left in it.
    let text = String::from_utf8(bytes).unwrap();
    assert!(!text.contains("1001"), "{text}");
    crash(rec);
}

#[test]
fn a_stored_message_leaves_its_sidecar_as_a_spare_too() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    let sidecar = store.sidecar_path(&rec.id().to_string());
    let sidecar_inode = inode(&sidecar);
    record(&mut rec, &samples(8000, 0));
    let Finished::Stored(_) = store.finish(rec, &wav(), false, &Route::Home).unwrap() else {
        panic!("not stored");
    };
    let spares = with_extension(&store, SPARE_EXTENSION);
    assert_eq!(spares.len(), 1);
    assert_eq!(inode(&spares[0]), sidecar_inode);
    assert!(with_extension(&store, "json").is_empty());
}

/// A crash after a spare was overwritten with a new call's metadata but
/// before its rename: that recording never started (no audio could be
/// written), and the spare is not read as a sidecar.
#[test]
fn a_spare_overwritten_but_not_renamed_is_no_recording() {
    let (dir, store) = open_tmp();
    let spare = discarded_call(&store);
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    let meta = new_meta("2001");
    let sidecar = Sidecar::from_new(meta).unwrap();
    fs::write(&spare, sidecar.to_bytes(&spare).unwrap()).unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert!(store.list(None).unwrap().is_empty());
    // Taken over for reuse, once a sidecar's write has synced the directory.
    let spare_inode = inode(&spare);
    crash(store.start_recording(new_meta("3001")).unwrap());
    let rec = store.start_recording(new_meta("3002")).unwrap();
    assert_eq!(
        inode(&store.sidecar_path(&rec.id().to_string())),
        spare_inode
    );
    crash(rec);
}

/// Recovery takes over the spares it finds, up to the bound, and removes
/// the rest; a short one (an older sidecar layout) grows to a whole
/// sidecar when it is used.
#[test]
fn recovery_takes_over_spares_and_removes_those_beyond_the_bound() {
    let (dir, store) = open_tmp();
    let recording = store.data_dir().join(RECORDING_DIR);
    // Spares from an older sidecar layout (short files) and more than kept.
    for i in 0..MAX_SPARES + 3 {
        fs::write(recording.join(format!("{i:05}.{SPARE_EXTENSION}")), b"{}").unwrap();
    }
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert_eq!(with_extension(&store, SPARE_EXTENSION).len(), MAX_SPARES);
    // Idempotent: a second recovery takes nothing twice.
    assert!(store.recover(&home, &wav()).unwrap().is_empty());
    assert_eq!(with_extension(&store, SPARE_EXTENSION).len(), MAX_SPARES);

    // The first recording syncs the directory (a new file); the second
    // takes a short spare, which grows to a whole sidecar, synced as a
    // size change.
    let first = store.start_recording(new_meta("1001")).unwrap();
    assert_eq!(with_extension(&store, SPARE_EXTENSION).len(), MAX_SPARES);
    let mut rec = store.start_recording(new_meta("1001")).unwrap();
    let sidecar = store.sidecar_path(&rec.id().to_string());
    assert_eq!(fs::metadata(&sidecar).unwrap().len(), SIDECAR_BYTES as u64);
    assert_eq!(
        with_extension(&store, SPARE_EXTENSION).len(),
        MAX_SPARES - 1
    );
    record(&mut rec, &samples(8000, 0));
    store.finish(rec, &wav(), false, &Route::Home).unwrap();
    // Retired again while below the bound; beyond it, removed.
    assert_eq!(with_extension(&store, SPARE_EXTENSION).len(), MAX_SPARES);
    store.finish(first, &wav(), false, &Route::Home).unwrap();
    assert_eq!(with_extension(&store, SPARE_EXTENSION).len(), MAX_SPARES);
    assert!(with_extension(&store, "json").is_empty());
}

/// A spare that is gone (removed by hand) costs the recording nothing: it
/// is written as a new file.
#[test]
fn a_spare_that_is_gone_is_replaced_by_a_new_file() {
    let (_dir, store) = open_tmp();
    let spare = usable_spare(&store);
    fs::remove_file(&spare).unwrap();
    let rec = store.start_recording(new_meta("2001")).unwrap();
    let sidecar = store.sidecar_path(&rec.id().to_string());
    assert_eq!(Sidecar::read(&sidecar).unwrap().mailbox, "2001");
    crash(rec);
    let recovered = store.recover(&home, &wav()).unwrap();
    assert_eq!(recovered.len(), 2, "both calls are listed after a crash");
    assert!(recovered.iter().all(|m| m.partial));
}

//! A voicemail transfer as the home server receives it: the MESSAGE's
//! `multipart/mixed` body (RFC 2046 §5.1) with its JSON metadata, through
//! `mesh::wire::decode`, then the store's checks of the metadata and the
//! durable write (`Store::store_received`) in a temporary directory.
//!
//! The input is the Content-Type value, a line feed, then the body.
//! Checked beyond "no panic":
//! - audio without a transfer encoding is a slice of the body, not a copy;
//! - a decoded transfer encodes back (`wire::encode`) to a body that
//!   decodes to the same metadata, audio and audio type;
//! - metadata the store cannot take is refused as invalid input (answered
//!   400, never a 500 that the sender would retry forever); with the
//!   audio's own size and hash filled in, what is stored reads back as
//!   sent, lies inside the data directory, and comes again as a duplicate.

#![no_main]

use std::borrow::Cow;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use vmesh::mesh::wire::{self, sha256_hex};
use vmesh::store::{Received, Store, StoreError};

/// A store in a temporary directory (the fuzz script points TMPDIR at a
/// memory file system), started afresh every few hundred messages so the
/// run's disk use stays small.
struct Scratch {
    store: Store,
    dir: tempfile::TempDir,
    stored: u32,
}

static SCRATCH: Mutex<Option<Scratch>> = Mutex::new(None);

fn with_store(f: impl FnOnce(&Store, &std::path::Path) -> bool) {
    let mut scratch = SCRATCH.lock().unwrap_or_else(|p| p.into_inner());
    if scratch.as_ref().is_none_or(|s| s.stored >= 500) {
        *scratch = None;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(dir.path()).expect("a store in a fresh directory");
        *scratch = Some(Scratch {
            store,
            dir,
            stored: 0,
        });
    }
    let s = scratch.as_mut().unwrap();
    if f(&s.store, s.dir.path()) {
        s.stored += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(content_type);
    let Ok(decoded) = wire::decode(&content_type, body) else {
        return;
    };
    if let Cow::Borrowed(audio) = &decoded.audio {
        let range = body.as_ptr_range();
        assert!(range.start <= audio.as_ptr() && audio.as_ptr_range().end <= range.end);
    }
    assert!(decoded.audio_content_type.starts_with("audio/"));

    let filename = decoded.filename.clone().unwrap_or_default();
    let (again_type, again) = wire::encode(
        &decoded.meta,
        &decoded.audio,
        &decoded.audio_content_type,
        &filename,
    );
    let back = wire::decode(&again_type, &again)
        .unwrap_or_else(|e| panic!("our own body does not decode: {e}"));
    assert_eq!(back.meta, decoded.meta);
    assert_eq!(back.audio, decoded.audio);
    // Characters a header cannot hold are written as `_` (wire::encode).
    let written: String = decoded
        .audio_content_type
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
        .collect();
    assert_eq!(back.audio_content_type, written.to_ascii_lowercase());

    let audio = decoded.audio.as_ref();
    with_store(|store, dir| {
        if let Err(e) = store.store_received(&decoded.meta, audio) {
            assert_refused(&e);
        }
        // The same metadata with the audio's own size and hash: the checks
        // past the checksum, and the write.
        let mut meta = decoded.meta.clone();
        meta.size_bytes = audio.len() as u64;
        meta.sha256 = sha256_hex(audio);
        match store.store_received(&meta, audio) {
            Ok(Received::Stored(m)) => {
                let path = store.audio_path(&m);
                assert!(
                    path.starts_with(dir),
                    "{} outside the store",
                    path.display()
                );
                assert_eq!(
                    store.read_audio(&m).expect("stored audio reads back"),
                    audio
                );
                assert_eq!(store.get(&m.id).expect("stored message is listed"), m);
                assert!(matches!(
                    store.store_received(&meta, audio),
                    Ok(Received::Duplicate(_))
                ));
                true
            }
            Ok(Received::Duplicate(_) | Received::Purged { .. }) => false,
            Err(e) => {
                assert_refused(&e);
                false
            }
        }
    });
});

fn assert_refused(e: &StoreError) {
    assert!(
        e.is_invalid_input() || matches!(e, StoreError::Conflict { .. }),
        "metadata refused as a server failure: {e:?}"
    );
}

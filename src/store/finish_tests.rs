//! Finishing under a storage policy: Ogg Opus storage, silence trimming
//! and discard, their crash states, and export to WAV.

use std::fs;
use std::io::Cursor;

use sha2::{Digest, Sha256};

use super::tests::{crash, home, new_meta, open_tmp, read_wav, recording_dir_is_empty, MIN};
use super::*;
use crate::audio::{read_ogg_opus, resample, DEFAULT_THRESHOLD_DBFS};

const WIDE: u32 = 16_000;
const BITRATE: u32 = 24_000;

/// The 14.5 s spoken message of `testdata/`, upsampled to 16 kHz as a
/// wideband call carries it.
fn speech_16k() -> Vec<i16> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/speech-8k.wav");
    let (spec, pcm) = read_wav(std::path::Path::new(path));
    assert_eq!(spec.sample_rate, 8000);
    resample(&pcm, 8000, WIDE).unwrap()
}

/// Normalized cross-correlation at the best lag within ±`max_lag`.
fn best_ncc(reference: &[i16], test: &[i16], max_lag: isize) -> f64 {
    (-max_lag..=max_lag)
        .map(|lag| {
            let (mut dot, mut er, mut et) = (0.0, 0.0, 0.0);
            for (i, &r) in reference.iter().enumerate() {
                let Some(&t) = usize::try_from(i as isize + lag)
                    .ok()
                    .and_then(|j| test.get(j))
                else {
                    continue;
                };
                let (r, t) = (f64::from(r), f64::from(t));
                dot += r * t;
                er += r * r;
                et += t * t;
            }
            dot / (er * et).sqrt().max(1e-9)
        })
        .fold(f64::MIN, f64::max)
}

fn wide_meta(mailbox: &str) -> NewMessage {
    NewMessage {
        sample_rate: WIDE,
        codec: "G722".into(),
        ..new_meta(mailbox)
    }
}

fn opus() -> StoragePolicy {
    StoragePolicy {
        min_duration: MIN,
        format: StoreFormat::Opus { bitrate: BITRATE },
        silence: None,
    }
}

fn with_silence(mut policy: StoragePolicy, discard_silent: bool) -> StoragePolicy {
    policy.silence = Some(SilenceRules {
        threshold_dbfs: f64::from(DEFAULT_THRESHOLD_DBFS),
        discard_silent,
    });
    policy
}

/// Records `audio` in 20 ms frames at the recording's rate.
fn record_frames(rec: &mut Recording, audio: &[i16], rate: u32) {
    for frame in audio.chunks(rate as usize / 50) {
        rec.write(frame).unwrap();
    }
}

fn finish(store: &Store, meta: NewMessage, audio: &[i16], policy: &StoragePolicy) -> Finished {
    let rate = meta.sample_rate;
    let mut rec = store.start_recording(meta).unwrap();
    record_frames(&mut rec, audio, rate);
    store.finish(rec, policy, false, &Route::Home).unwrap()
}

fn stored(finished: Finished) -> Message {
    match finished {
        Finished::Stored(m) => m,
        other => panic!("expected stored, got {other:?}"),
    }
}

fn decode(store: &Store, m: &Message) -> crate::audio::OggOpusAudio {
    read_ogg_opus(Cursor::new(fs::read(store.audio_path(m)).unwrap())).unwrap()
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn opus_messages_decode_to_the_recorded_speech_with_their_metadata() {
    let (_dir, store) = open_tmp();
    let speech = speech_16k();
    let m = stored(finish(&store, wide_meta("1001"), &speech, &opus()));

    assert_eq!((m.format.as_str(), m.sample_rate), ("opus", WIDE));
    assert_eq!(m.duration_ms, speech.len() as u64 * 1000 / u64::from(WIDE));
    let path = store.audio_path(&m);
    assert!(path.ends_with(format!("messages/1001/{}.opus", m.id)));
    let bytes = fs::read(&path).unwrap();
    assert_eq!(m.size_bytes, bytes.len() as u64);
    assert_eq!(m.sha256, hex::encode(Sha256::digest(&bytes)));
    // 24 kbit/s: a tenth of the 16-bit PCM, plus the Ogg framing.
    assert!(bytes.len() < speech.len() * 2 / 8, "{} bytes", bytes.len());

    let audio = decode(&store, &m);
    assert_eq!((audio.input_rate, audio.sample_rate), (WIDE, WIDE));
    assert_eq!(audio.pcm.len(), speech.len(), "length exact");
    let ncc = best_ncc(&speech, &audio.pcm, 8);
    assert!(ncc > 0.9, "NCC {ncc}");

    assert_eq!(audio.vendor, "vmesh");
    let tags = &audio.tags;
    assert_eq!(tag(tags, "MAILBOX"), Some("1001"));
    assert_eq!(tag(tags, "MESSAGE_ID"), Some(m.id.as_str()));
    assert_eq!(tag(tags, "CALLER"), Some(m.caller.as_str()));
    assert_eq!(tag(tags, "CALLER_NAME"), Some("Alice"));
    assert_eq!(tag(tags, "CALLED"), Some(m.called.as_str()));
    assert_eq!(tag(tags, "REASON"), Some("user-busy"));
    assert_eq!(tag(tags, "RECEIVED_AT"), Some(m.received_at.as_str()));
    assert_eq!(tag(tags, "ORIGIN"), Some("site-a"));

    assert_eq!(store.list(None).unwrap(), vec![m]);
    assert!(
        recording_dir_is_empty(&store),
        "recording WAV and sidecar gone"
    );
}

#[test]
fn opus_messages_for_a_peer_are_queued_with_their_row() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(new_meta("2001")).unwrap();
    record_frames(&mut rec, &speech_16k()[..16_000], WIDE);
    let forward = Route::Forward {
        peer: "site-b".into(),
    };
    let m = stored(store.finish(rec, &opus(), false, &forward).unwrap());
    assert_eq!(
        (m.format.as_str(), m.delivery.as_str()),
        ("opus", DELIVERY_QUEUED)
    );
    assert_eq!(store.outbox_list().unwrap().len(), 1);
}

#[test]
fn a_rate_opus_cannot_take_is_stored_as_wav() {
    let (_dir, store) = open_tmp();
    let meta = NewMessage {
        sample_rate: 11_025,
        ..new_meta("1001")
    };
    let m = stored(finish(&store, meta, &speech_16k()[..22_050], &opus()));
    assert_eq!((m.format.as_str(), m.duration_ms), ("wav", 2000));
}

/// Speech, then `seconds` of digital silence as a caller who stopped
/// talking but did not hang up.
fn speech_then_silence(seconds: usize) -> Vec<i16> {
    let mut audio = speech_16k();
    audio.extend(vec![0; seconds * WIDE as usize]);
    audio
}

#[test]
fn trailing_silence_is_trimmed_in_both_formats() {
    let (_dir, store) = open_tmp();
    let audio = speech_then_silence(5);
    let trailing = crate::audio::trailing_silence(&audio, WIDE, DEFAULT_THRESHOLD_DBFS);
    assert!(trailing > 5 * WIDE as usize - 4800, "{trailing}");
    let kept = audio.len() - trailing;
    let ms = kept as u64 * 1000 / u64::from(WIDE);

    let wav = stored(finish(
        &store,
        wide_meta("1001"),
        &audio,
        &with_silence(StoragePolicy::wav(MIN), true),
    ));
    assert_eq!(wav.duration_ms, ms);
    let (_, samples) = read_wav(&store.audio_path(&wav));
    assert_eq!(samples, audio[..kept]);
    let bytes = fs::read(store.audio_path(&wav)).unwrap();
    assert_eq!(wav.size_bytes, bytes.len() as u64);
    assert_eq!(wav.sha256, hex::encode(Sha256::digest(&bytes)));

    let opus = stored(finish(
        &store,
        wide_meta("1001"),
        &audio,
        &with_silence(opus(), true),
    ));
    assert_eq!(opus.duration_ms, ms);
    assert_eq!(decode(&store, &opus).pcm.len(), kept);
    assert!(recording_dir_is_empty(&store));
}

#[test]
fn a_silent_message_is_discarded_when_the_policy_says_so() {
    let (_dir, store) = open_tmp();
    let silence = vec![0i16; 3 * WIDE as usize];
    for policy in [
        with_silence(opus(), true),
        with_silence(StoragePolicy::wav(MIN), true),
    ] {
        assert_eq!(
            finish(&store, wide_meta("1001"), &silence, &policy),
            Finished::Discarded {
                duration: Duration::from_secs(3),
                reason: DiscardReason::Silent,
            }
        );
    }
    assert!(store.list(None).unwrap().is_empty());
    assert!(recording_dir_is_empty(&store));

    // Kept whole, untrimmed, when silent messages are not discarded.
    let kept = stored(finish(
        &store,
        wide_meta("1001"),
        &silence,
        &with_silence(opus(), false),
    ));
    assert_eq!(kept.duration_ms, 3000);
}

#[test]
fn the_minimum_applies_after_trimming() {
    let (_dir, store) = open_tmp();
    // Half a second of speech, then 3 s of silence: long enough untrimmed.
    let mut audio = speech_16k()[WIDE as usize..WIDE as usize * 3 / 2].to_vec();
    audio.extend(vec![0; 3 * WIDE as usize]);
    let Finished::Discarded { duration, reason } = finish(
        &store,
        wide_meta("1001"),
        &audio,
        &with_silence(opus(), true),
    ) else {
        panic!("kept a message shorter than the minimum once trimmed");
    };
    assert_eq!(reason, DiscardReason::TooShort);
    assert!(duration < MIN, "{duration:?}");
    assert!(store.list(None).unwrap().is_empty());
    assert!(recording_dir_is_empty(&store));
}

#[test]
fn a_call_cut_by_a_crash_is_recovered_as_opus_once() {
    let (_dir, store) = open_tmp();
    let speech = speech_16k();
    let mut rec = store.start_recording(wide_meta("1001")).unwrap();
    let id = rec.id().to_string();
    // 2.5 s: the last flush happened at 2 s, the rest was in the buffer.
    record_frames(&mut rec, &speech[..40_000], WIDE);
    crash(rec);

    let recovered = store.recover(&home, &opus()).unwrap();
    assert_eq!(recovered.len(), 1);
    let m = &recovered[0];
    assert_eq!(
        (m.id.as_str(), m.format.as_str(), m.partial),
        (id.as_str(), "opus", true)
    );
    assert_eq!(m.duration_ms, 2000);
    let audio = decode(&store, m);
    assert_eq!(audio.pcm.len(), 32_000);
    assert!(best_ncc(&speech[..32_000], &audio.pcm, 8) > 0.9);
    assert!(recording_dir_is_empty(&store));
    assert!(store.recover(&home, &opus()).unwrap().is_empty());
    assert_eq!(store.list(None).unwrap(), recovered);
}

/// The caller was answered and the call cut by a crash: neither silence
/// nor shortness is a reason to drop what the call left, whatever the
/// policy says about callers' own hang-ups.
#[test]
fn a_silent_or_short_call_cut_by_a_crash_is_kept_as_partial() {
    let strict = with_silence(opus(), true);
    let speech = speech_16k();
    // 1.5 s of silence (1 s of it flushed); 1.2 s of speech (1 s flushed,
    // under the 1 s minimum once trailing silence is trimmed).
    let silent = vec![0i16; 24_000];
    for (audio, flushed) in [(&silent[..], 16_000), (&speech[..19_200], 16_000)] {
        let (_dir, store) = open_tmp();
        let mut rec = store.start_recording(wide_meta("1001")).unwrap();
        record_frames(&mut rec, audio, WIDE);
        crash(rec);
        let recovered = store.recover(&home, &strict).unwrap();
        assert_eq!(recovered.len(), 1);
        let m = &recovered[0];
        assert_eq!((m.format.as_str(), m.partial), ("opus", true));
        assert!(
            m.duration_ms > 0 && m.duration_ms <= 1000,
            "{}",
            m.duration_ms
        );
        assert!(decode(&store, m).pcm.len() <= flushed);
        assert!(recording_dir_is_empty(&store));
    }
}

/// A call the server cut (shutdown, full disk) is finished as partial:
/// kept however short or silent it is, in the policy's format.
#[test]
fn a_partial_recording_is_never_discarded() {
    let strict = with_silence(opus(), true);
    let speech = speech_16k();
    for audio in [&speech[..4_800], &vec![0i16; 8_000][..]] {
        let (_dir, store) = open_tmp();
        let mut rec = store.start_recording(wide_meta("1001")).unwrap();
        record_frames(&mut rec, audio, WIDE);
        let m = stored(store.finish(rec, &strict, true, &Route::Home).unwrap());
        assert_eq!((m.format.as_str(), m.partial), ("opus", true));
        assert!(
            m.duration_ms > 0 && m.duration_ms <= 500,
            "{}",
            m.duration_ms
        );
        assert!(recording_dir_is_empty(&store));
    }
    // Nothing at all (the server stopped during the greeting): no file was
    // ever made, and an empty WAV is listed.
    let (_dir, store) = open_tmp();
    let rec = store.start_recording(wide_meta("1001")).unwrap();
    assert!(!rec.path().exists());
    let m = stored(store.finish(rec, &strict, true, &Route::Home).unwrap());
    assert_eq!(
        (m.format.as_str(), m.partial, m.duration_ms),
        ("wav", true, 0)
    );
    let (spec, audio) = read_wav(&store.audio_path(&m));
    assert_eq!((spec.sample_rate, audio.len()), (WIDE, 0));
    assert_eq!(
        m.sha256,
        hex::encode(Sha256::digest(fs::read(store.audio_path(&m)).unwrap()))
    );
    assert!(recording_dir_is_empty(&store));
    // Not partial: the same audio is a hang-up, discarded.
    let (_dir, store) = open_tmp();
    assert!(matches!(
        finish(&store, wide_meta("1001"), &speech[..4_800], &strict),
        Finished::Discarded { .. }
    ));
}

/// A recording closed at hang-up whose encode a crash cut short: the
/// recording and sidecar are in `recording/` with half an Ogg file.
#[test]
fn a_half_written_encode_is_removed_and_redone() {
    let (_dir, store) = open_tmp();
    let speech = speech_16k();
    let mut rec = store.start_recording(wide_meta("1001")).unwrap();
    let id = rec.id().to_string();
    record_frames(&mut rec, &speech, WIDE);
    let closed = rec.close().unwrap();
    let tmp = store.encode_tmp_path(&id);
    let rate = closed.sidecar.sample_rate;
    encode::write_ogg_opus(&tmp, &speech, rate, 24_000, &[]).unwrap();
    let half = fs::read(&tmp).unwrap().len() / 2;
    fs::OpenOptions::new()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_len(half as u64)
        .unwrap();

    let recovered = store.recover(&home, &opus()).unwrap();
    assert_eq!(recovered.len(), 1);
    assert!(!tmp.exists());
    let m = &recovered[0];
    assert_eq!((m.format.as_str(), m.partial), ("opus", true));
    let audio = decode(&store, m);
    assert_eq!(audio.pcm.len(), speech.len());
    assert_eq!(tag(&audio.tags, "MESSAGE_ID"), Some(id.as_str()));
    assert!(recording_dir_is_empty(&store));
    assert!(store.recover(&home, &opus()).unwrap().is_empty());
    assert_eq!(store.list(None).unwrap(), recovered);
}

/// Finishes an Opus message, then puts back its sidecar and recording WAV
/// as they were before the commit; `keep_row` chooses whether the crash
/// came after the commit or before it.
fn opus_crash_after_rename(store: &Store, keep_row: bool) -> Message {
    let mut rec = store.start_recording(wide_meta("1001")).unwrap();
    let id = rec.id().to_string();
    record_frames(&mut rec, &speech_16k()[..48_000], WIDE);
    rec.flush().unwrap();
    let sidecar = fs::read(store.sidecar_path(&id)).unwrap();
    let wav = fs::read(store.recording_path(&id)).unwrap();
    let m = stored(store.finish(rec, &opus(), false, &Route::Home).unwrap());
    fs::write(store.sidecar_path(&id), sidecar).unwrap();
    fs::write(store.recording_path(&id), wav).unwrap();
    if !keep_row {
        assert!(index::delete(&store.lock(), &m.id).unwrap());
    }
    m
}

#[test]
fn a_final_opus_file_whose_commit_was_lost_is_indexed_not_encoded_again() {
    let (_dir, store) = open_tmp();
    let m = opus_crash_after_rename(&store, false);
    let recovered = store.recover(&home, &opus()).unwrap();
    assert_eq!(
        recovered,
        vec![m.clone()],
        "same file, same row, not partial"
    );
    assert!(recording_dir_is_empty(&store));
    assert!(store.recover(&home, &opus()).unwrap().is_empty());
    assert_eq!(store.list(None).unwrap(), vec![m]);
}

#[test]
fn leftovers_of_a_committed_opus_message_are_removed() {
    let (_dir, store) = open_tmp();
    let m = opus_crash_after_rename(&store, true);
    assert!(store.recover(&home, &opus()).unwrap().is_empty());
    assert!(recording_dir_is_empty(&store));
    assert_eq!(store.list(None).unwrap(), vec![m]);
}

#[test]
fn export_gives_wav_for_both_formats() {
    let (dir, store) = open_tmp();
    let speech = speech_16k();
    let wav = stored(finish(
        &store,
        wide_meta("1001"),
        &speech,
        &StoragePolicy::wav(MIN),
    ));
    assert_eq!(
        store.export_wav(&wav).unwrap(),
        fs::read(store.audio_path(&wav)).unwrap()
    );

    let opus = stored(finish(&store, wide_meta("1001"), &speech, &opus()));
    let out = dir.path().join("opus-out.wav");
    fs::write(&out, store.export_wav(&opus).unwrap()).unwrap();
    let (spec, pcm) = read_wav(&out);
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (WIDE, 1, 16)
    );
    assert_eq!(pcm.len(), speech.len());
    assert!(best_ncc(&speech, &pcm, 8) > 0.9);

    // A damaged file is reported, not exported.
    fs::write(store.audio_path(&opus), b"OggS").unwrap();
    assert!(matches!(
        store.export_wav(&opus),
        Err(StoreError::Checksum { .. })
    ));
}

#[test]
fn export_of_a_peers_opus_file_follows_the_rows_rate() {
    let (dir, store) = open_tmp();
    let pcm = speech_16k()[..WIDE as usize].to_vec();
    let tmp = dir.path().join("peer.opus");
    encode::write_ogg_opus(&tmp, &pcm, WIDE, 24_000, &[]).unwrap();
    let bytes = fs::read(&tmp).unwrap();
    let meta = IncomingMessage {
        id: Uuid::new_v4().to_string(),
        mailbox: "1001".into(),
        caller: "sip:1@a".into(),
        caller_name: None,
        called: "sip:1001@a".into(),
        reason: None,
        received_at: "2024-05-01T10:00:00.000Z".into(),
        duration_ms: 1000,
        codec: "opus".into(),
        format: "opus".into(),
        sample_rate: 8000,
        size_bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        origin: "site-b".into(),
        partial: false,
        call_id: "c".into(),
    };
    let Received::Stored(m) = store.store_received(&meta, &bytes).unwrap() else {
        panic!("not stored");
    };
    let out = dir.path().join("out.wav");
    fs::write(&out, store.export_wav(&m).unwrap()).unwrap();
    let (spec, samples) = read_wav(&out);
    assert_eq!((spec.sample_rate, samples.len()), (8000, 8000));
}

/// A partial message whose final file was renamed into `messages/` but
/// whose row a crash kept from being committed is listed as partial again:
/// its sidecar says so.
#[test]
fn a_partial_message_cut_before_its_commit_is_recovered_as_partial() {
    let (_dir, store) = open_tmp();
    let mut rec = store.start_recording(wide_meta("1001")).unwrap();
    let id = rec.id().to_string();
    record_frames(&mut rec, &speech_16k()[..32_000], WIDE);
    let sidecar_path = store.sidecar_path(&id);
    let m = stored(store.finish(rec, &opus(), true, &Route::Home).unwrap());
    assert!(m.partial);
    // Back to the moment after the rename, before the commit.
    let mut sidecar = Sidecar::from_new(wide_meta("1001")).unwrap();
    sidecar.id = m.id.parse().unwrap();
    sidecar.partial = true;
    sidecar.write(&sidecar_path).unwrap();
    assert!(index::delete(&store.lock(), &m.id).unwrap());

    let recovered = store.recover(&home, &opus()).unwrap();
    assert_eq!(recovered.len(), 1);
    assert!(recovered[0].partial, "{:?}", recovered[0]);
    assert_eq!(recovered[0].sha256, m.sha256);
}

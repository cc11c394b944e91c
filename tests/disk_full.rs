//! A data directory whose disk fills up, through the real binary, on a
//! small tmpfs the test mounts (and unmounts, also on failure): the call
//! recording at that moment is stored with what fit and listed at once,
//! new INVITEs get 503 with Retry-After before they are answered, every
//! message stored earlier is intact (its sha256), and calls are taken
//! again once space is freed.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::audio::read_wav_data;
use common::dialog::{ack_for_failure, Dialog};
use common::media::{sdp, sdp_audio_addr, RtpSender};
use common::raw_sip::request;
use common::{
    call_timeout, field, number, testdata, Server, ServerConfig, SipUdp, TestNet, SPEECH_SHORT_MS,
    SPEECH_SHORT_ULAW,
};
use sha2::{Digest, Sha256};

/// A tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("vmesh-tmpfs-")
            .tempdir()
            .expect("a mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount (the test needs root)");
        assert!(
            status.success(),
            "mount a tmpfs on {}",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system is full; returns how much.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill {}: {e}", path.display()),
        }
    }
    // The last partial blocks too.
    for size in [4096, 512, 1] {
        while file.write(&block[..size]).is_ok_and(|n| n > 0) {
            written += size as u64;
        }
    }
    written
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(
        std::fs::read(path).expect("read an exported message"),
    ))
}

#[test]
fn a_full_disk_refuses_new_calls_keeps_the_call_in_progress_and_damages_nothing() {
    let (tmpfs, data, server) = server_on_small_disk();
    assert!(
        data.join("reserve").is_file(),
        "the server holds its space reserve"
    );

    // Two messages stored before the disk fills.
    for _ in 0..2 {
        server.leave_short_message("1001");
    }
    let earlier = server.wait_messages(2, Duration::from_secs(10));
    assert_eq!(earlier.len(), 2);
    let before: Vec<(String, String)> = earlier
        .iter()
        .map(|m| {
            let id = field(m, "id").to_string();
            assert_eq!(sha256_of(&server.export(&id)), field(m, "sha256"));
            (id, field(m, "sha256").to_string())
        })
        .collect();

    // A caller talks; the disk fills under the recording.
    let talking = server.sipp_start("uac_wait_bye.xml", &["-s", "1001"], Duration::from_secs(40));
    let recording = server.wait_recording(44 + 2 * 8000 * 2, Duration::from_secs(10));
    let filler = tmpfs.path().join("filler");
    let filled = fill(&filler);
    eprintln!("filled {filled} bytes; recording {}", recording.display());

    // The call ends (vmesh hangs up: it cannot record more) and is listed
    // at once, as partial, with the audio that fit.
    let listed = server.wait_messages(3, Duration::from_secs(10));
    assert_eq!(
        listed.len(),
        3,
        "the call in progress is listed: {listed:?}"
    );
    let new = listed
        .iter()
        .find(|m| !before.iter().any(|(id, _)| id == field(m, "id")))
        .expect("the new message");
    assert_eq!(new["partial"], serde_json::json!(true), "{new}");
    assert!(new["duration_ms"].as_u64().unwrap_or(0) >= 1500, "{new}");
    assert_eq!(
        sha256_of(&server.export(field(new, "id"))),
        field(new, "sha256")
    );
    assert!(
        server
            .log()
            .contains("disk full: storing the call with what fits"),
        "the recording hit the full disk:\n{}",
        server.log_tail()
    );
    let outcome = talking.wait();
    assert!(
        outcome.messages_log.contains("BYE sip:"),
        "vmesh hung up: {}",
        outcome.messages_log
    );

    // New calls are refused before they are answered, with Retry-After.
    assert_new_calls_refused(&server);

    // Nothing stored earlier was damaged.
    for (id, sha) in &before {
        assert_eq!(&sha256_of(&server.export(id)), sha, "message {id}");
    }

    // Space comes back: calls are taken again.
    std::fs::remove_file(&filler).expect("remove the filler");
    server.leave_short_message("1001");
    assert_eq!(server.wait_messages(4, Duration::from_secs(10)).len(), 4);
    assert!(data.join("reserve").is_file(), "the reserve is taken back");
    drop(server);
}

/// A server stopped while its disk is full (its SQLite files are removed
/// by the clean close) is started again before any space returns: it must
/// start, refuse calls with 503 rather than be absent, and take calls again
/// once space is freed.
#[test]
fn a_server_started_on_a_full_disk_serves_and_refuses_calls_until_space_returns() {
    let (tmpfs, data, mut server) = server_on_small_disk();
    server
        .sipp(
            "uac_pilot_diversion.xml",
            &["-s", "1001"],
            call_timeout(SPEECH_SHORT_MS),
        )
        .assert_success();
    let earlier = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(earlier.len(), 1);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{status}");

    let filler = tmpfs.path().join("filler");
    fill(&filler);
    // Waits until it answers OPTIONS; fails if it exits at start-up.
    server.restart();
    assert!(
        server
            .log()
            .contains("the space reserve is given up to open the store"),
        "{}",
        server.log_tail()
    );

    assert_new_calls_refused(&server);

    std::fs::remove_file(&filler).expect("remove the filler");
    server
        .sipp(
            "uac_pilot_diversion.xml",
            &["-s", "1001"],
            call_timeout(SPEECH_SHORT_MS),
        )
        .assert_success();
    let listed = server.wait_messages(2, Duration::from_secs(10));
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        sha256_of(&server.export(field(&earlier[0], "id"))),
        field(&earlier[0], "sha256")
    );
    assert!(data.join("reserve").is_file(), "the reserve is taken back");
    drop(server);
}

/// A crash in the middle of a call, and the disk full when the server
/// comes back: recovery needs room to list the call cut by the crash,
/// and takes it from the space reserve, so the server starts and the call
/// is listed at once.
#[test]
fn a_crash_then_a_full_disk_the_restarted_server_lists_the_cut_call() {
    let (tmpfs, data, mut server) = server_on_small_disk();
    assert!(
        data.join("reserve").is_file(),
        "the server holds its reserve"
    );
    let talking = server.sipp_start("uac_wait_bye.xml", &["-s", "1001"], Duration::from_secs(40));
    // Two seconds of audio reached the disk.
    server.wait_recording(44 + 2 * 8000 * 2, Duration::from_secs(10));
    server.kill9();
    drop(talking);

    let filler = tmpfs.path().join("filler");
    fill(&filler);
    server.restart();
    assert!(
        server
            .log()
            .contains("the space reserve is given up to recover what a crash left"),
        "{}",
        server.log_tail()
    );
    let listed = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(listed.len(), 1, "the call cut by the crash: {listed:?}");
    assert_eq!(
        listed[0]["partial"],
        serde_json::json!(true),
        "{}",
        listed[0]
    );
    assert!(number(&listed[0], "duration_ms") >= 2000, "{}", listed[0]);
    assert_eq!(
        sha256_of(&server.export(field(&listed[0], "id"))),
        field(&listed[0], "sha256")
    );
    std::fs::remove_file(&filler).expect("remove the filler");
    drop(server);
}

/// A new call is refused before it is answered: 503 with Retry-After.
fn assert_new_calls_refused(server: &Server) {
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let rtp = SocketAddr::from((server.net.peer_ip, 40000));
    let invite = invite_1001(server, &udp, &sdp(rtp, &[(0, "PCMU/8000")]));
    let refused = udp
        .transact(&invite, Duration::from_secs(5))
        .expect("an answer");
    udp.send(ack_for_failure(&invite, &refused).as_bytes());
    assert_eq!(refused.status, 503, "{}", refused.raw);
    assert!(refused.header("Retry-After").is_some(), "{}", refused.raw);
}

/// The disk fills between the answer and the ACK, when the recording's
/// files are made: the space reserve is given up for them, so the answered
/// call is recorded and listed, never dropped as if it had no ACK.
#[test]
fn a_disk_that_fills_before_the_ack_still_records_the_answered_call() {
    let (tmpfs, _data, server) = server_on_small_disk();
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let mut rtp = RtpSender::bind(server.net.peer_ip);
    let invite = invite_1001(&server, &udp, &sdp(rtp.local_addr(), &[(0, "PCMU/8000")]));
    let answer = udp
        .transact(&invite, Duration::from_secs(5))
        .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let media = sdp_audio_addr(&answer.body).expect("an audio address in the answer");
    let dialog = Dialog::from_2xx(&answer, udp.local_addr(), "UDP");

    let filler = tmpfs.path().join("filler");
    fill(&filler);
    udp.send(dialog.ack(None).as_bytes());
    rtp.stream(media, 0, &read_wav_data(&testdata(SPEECH_SHORT_ULAW)));
    udp.send(dialog.bye().as_bytes());
    let bye = udp
        .final_response_to("BYE", Duration::from_secs(5))
        .expect("a response to BYE");
    assert_eq!(bye.status, 200, "{}", bye.raw);

    server.wait_log(
        "the space reserve is given up to record an answered call",
        1,
        Duration::from_secs(10),
    );
    let listed = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(listed.len(), 1, "the answered call: {listed:?}");
    assert!(
        listed[0]["duration_ms"].as_u64().unwrap_or(0) > 0,
        "{listed:?}"
    );
}

/// A server whose data directory is on an 8 MiB tmpfs mounted for the
/// test, with `storage.min_free_mb = 1`: the tmpfs, the data directory and
/// the running server.
fn server_on_small_disk() -> (Tmpfs, PathBuf, Server) {
    let tmpfs = Tmpfs::mount("8m");
    let data = tmpfs.path().join("data");
    let config = ServerConfig {
        data_dir: Some(data.clone()),
        extra: "[storage]\nmin_free_mb = 1\n".into(),
        ..ServerConfig::default()
    };
    let server = Server::start_with(TestNet::allocate(), config);
    (tmpfs, data, server)
}

/// An INVITE for mailbox 1001 over `udp` with the SDP offer `offer`.
fn invite_1001(server: &Server, udp: &SipUdp, offer: &str) -> String {
    request(
        "INVITE",
        &format!("sip:1001@{}", server.net.sip_addr()),
        udp.local_addr(),
        "UDP",
        &["Content-Type: application/sdp"],
        offer,
    )
}

/// The disk fills after a message's audio reached it as WAV but before
/// its Ogg Opus file is written (`storage.format = "opus"`): the message
/// is stored as the WAV it already is and listed at once, not left in
/// `recording/` until a restart; once there is room again, messages are
/// encoded to Opus as before.
#[test]
fn a_message_whose_opus_file_does_not_fit_is_stored_as_its_wav() {
    use vmesh::store::{Finished, NewMessage, Route, StoragePolicy, Store, StoreFormat};

    let tmpfs = Tmpfs::mount("4m");
    let data = tmpfs.path().join("data");
    let store = Store::open(&data).expect("open the store");
    store.hold_reserve().expect("the space reserve");
    let opus = StoragePolicy {
        min_duration: Duration::ZERO,
        format: StoreFormat::Opus { bitrate: 24_000 },
        silence: None,
    };
    let meta = || NewMessage {
        id: uuid::Uuid::new_v4(),
        mailbox: "1001".into(),
        caller_uri: "sip:5550100@example.net".into(),
        caller_name: None,
        called_uri: "sip:1001@example.net".into(),
        reason: None,
        received_at: time::OffsetDateTime::now_utc(),
        codec: "PCMU".into(),
        sample_rate: 8000,
        origin: "test".into(),
        call_id: "opus-full@test".into(),
    };
    // Three seconds of a tone, in 20 ms frames: whole seconds, so all of
    // it is in the file before the disk fills.
    let tone: Vec<i16> = (0..24_000)
        .map(|i| (((i % 40) as i16) - 20) * 800)
        .collect();
    let record = |store: &Store| {
        let mut rec = store.start_recording(meta()).expect("start recording");
        for frame in tone.chunks(160) {
            rec.write(frame).expect("write audio");
        }
        rec
    };

    let rec = record(&store);
    let filler = tmpfs.path().join("filler");
    fill(&filler);
    let finished = store
        .finish(rec, &opus, false, &Route::Home)
        .expect("the message is stored");
    let Finished::Stored(message) = finished else {
        panic!("discarded: {finished:?}");
    };
    assert_eq!(message.format, "wav", "{message:?}");
    assert_eq!(message.duration_ms, 3000, "{message:?}");
    let listed = store.list(Some("1001")).expect("list");
    assert_eq!(listed.len(), 1, "listed at once: {listed:?}");
    let path = store.audio_path(&listed[0]);
    assert_eq!(sha256_of(&path), listed[0].sha256);
    let (_, pcm) = read_wav_samples(&path);
    assert_eq!(pcm, tone, "the audio stored is the audio recorded");
    // Spent sidecars (`.spare`) are kept there for the next recordings.
    let left: Vec<_> = std::fs::read_dir(data.join("recording"))
        .expect("the recording directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_none_or(|x| x != "spare"))
        .collect();
    assert!(left.is_empty(), "nothing left in recording/: {left:?}");

    std::fs::remove_file(&filler).expect("remove the filler");
    let Finished::Stored(later) = store
        .finish(record(&store), &opus, false, &Route::Home)
        .expect("stored")
    else {
        panic!("discarded");
    };
    assert_eq!(later.format, "opus", "{later:?}");
}

/// A WAV file's format and samples (16-bit mono).
fn read_wav_samples(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).expect("open the stored WAV");
    let spec = reader.spec();
    let pcm = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("read the stored WAV");
    (spec, pcm)
}

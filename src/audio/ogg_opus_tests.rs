//! Tests of Ogg Opus writing and reading: exact lengths, RFC 7845 header
//! fields and granule positions, external validators, and bad input.

use std::io::Cursor;

use ogg::PacketReader;

use super::*;
use crate::audio::external_tools::{run, run_bytes};
use crate::audio::test_signals::{ncc, sine, speech_16k};

/// Writes `pcm` at `rate` to an in-memory Ogg Opus file.
fn write(pcm: &[i16], rate: u32, tags: &[(String, String)]) -> Vec<u8> {
    let mut writer = OggOpusWriter::with_serial(Vec::new(), rate, 24_000, tags, 7).unwrap();
    // Uneven pieces, as RTP payloads after a jitter buffer may be.
    for piece in pcm.chunks(123) {
        writer.write_pcm(piece).unwrap();
    }
    writer.finish().unwrap()
}

fn tag(key: &str, value: &str) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

/// Ten seconds of speech at 16 kHz.
fn ten_seconds() -> Vec<i16> {
    speech_16k()[..160_000].to_vec()
}

#[test]
fn speech_comes_back_with_its_exact_length_and_aligned() {
    let speech = ten_seconds();
    let file = write(&speech, 16_000, &[]);
    let audio = read_ogg_opus(Cursor::new(&file)).unwrap();
    assert_eq!((audio.input_rate, audio.sample_rate), (16_000, 16_000));
    assert_eq!(audio.pcm.len(), speech.len());
    // Pre-skip removed the encoder delay: no lag left to find.
    let aligned = ncc(&speech, &audio.pcm, 0);
    assert!(aligned > 0.9, "NCC {aligned}");
    let per_minute = file.len() * 6;
    eprintln!("Ogg Opus 16 kHz 24 kbit/s: {per_minute} bytes per minute, NCC {aligned:.3}");
    assert!(
        (150_000..220_000).contains(&per_minute),
        "{per_minute} bytes/min"
    );
}

#[test]
fn any_length_at_any_call_rate_comes_back_exactly() {
    for rate in [8_000, 16_000, 48_000] {
        for len in [0, 1, 319, 320, 321, rate as usize + 7] {
            let tone = sine(440.0, rate, len, 0.3);
            let audio = read_ogg_opus(Cursor::new(write(&tone, rate, &[]))).unwrap();
            assert_eq!(audio.sample_rate, rate);
            assert_eq!(audio.pcm.len(), len, "{len} samples at {rate} Hz");
        }
    }
}

#[test]
fn granule_positions_never_go_back_whatever_the_length() {
    // Lengths around a page boundary, where padding meets a full page.
    for len in (15_600..16_400).step_by(37) {
        let file = write(&sine(440.0, 16_000, len, 0.3), 16_000, &[]);
        let mut packets = PacketReader::new(Cursor::new(&file));
        let mut granules = Vec::new();
        while let Some(packet) = packets.read_packet().unwrap() {
            if packet.last_in_page() {
                granules.push(packet.absgp_page());
            }
        }
        assert!(
            granules.windows(2).all(|w| w[0] <= w[1]),
            "{len}: {granules:?}"
        );
        assert_eq!(granules.last(), Some(&(312 + 3 * len as u64)));
    }
}

#[test]
fn headers_follow_rfc_7845() {
    let tags = [
        tag("MAILBOX", "1001"),
        tag("CALLER", "\"Ann\" <sip:5551234@pbx>"),
    ];
    let file = write(&ten_seconds(), 16_000, &tags);
    let mut packets = PacketReader::new(Cursor::new(&file));

    let head = packets.read_packet().unwrap().unwrap();
    assert!(head.first_in_stream() && head.last_in_page());
    assert_eq!(head.absgp_page(), 0);
    let mut expected = b"OpusHead".to_vec();
    expected.extend_from_slice(&[1, 1]); // version, channels
    expected.extend_from_slice(&312u16.to_le_bytes()); // pre-skip: 104 at 16 kHz
    expected.extend_from_slice(&16_000u32.to_le_bytes());
    expected.extend_from_slice(&[0, 0, 0]); // gain, mapping family
    assert_eq!(head.data, expected);

    let comments = packets.read_packet().unwrap().unwrap();
    assert!(comments.first_in_page() && comments.last_in_page());
    assert_eq!(comments.absgp_page(), 0);
    assert!(comments
        .data
        .starts_with(b"OpusTags\x05\0\0\0vmesh\x02\0\0\0"));

    let audio = read_ogg_opus(Cursor::new(&file)).unwrap();
    assert_eq!(audio.vendor, "vmesh");
    assert_eq!(audio.tags, tags);
}

#[test]
fn granule_positions_count_48k_samples_and_end_the_audio_exactly() {
    let speech = ten_seconds();
    let file = write(&speech, 16_000, &[]);
    let mut packets = PacketReader::new(Cursor::new(&file));
    packets.read_packet().unwrap();
    packets.read_packet().unwrap();
    let mut count = 0u64;
    let mut pages = Vec::new();
    let mut last = None;
    while let Some(packet) = packets.read_packet().unwrap() {
        count += 1;
        if packet.last_in_page() {
            pages.push((count, packet.absgp_page()));
        }
        last = Some(packet);
    }
    let last = last.unwrap();
    assert!(last.last_in_stream(), "end-of-stream flag on the last page");
    // 10 s + 6.5 ms lookahead needs 501 frames; every page but the last
    // holds one second and carries the granule of its last packet.
    assert_eq!(count, 501);
    assert_eq!(pages.len(), 11);
    for &(packets_so_far, granule) in &pages[..10] {
        assert_eq!(packets_so_far % 50, 0);
        // Samples decoded by the end of the page, pre-skip included.
        assert_eq!(granule, packets_so_far * 960);
    }
    assert_eq!(last.absgp_page(), 312 + 160_000 * 3);
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let not_ogg = read_ogg_opus(Cursor::new(b"RIFF....WAVEfmt ".to_vec()));
    assert!(matches!(not_ogg, Err(AudioError::Ogg(_))), "{not_ogg:?}");

    let mut vorbis = Vec::new();
    let mut packets = ogg::writing::PacketWriter::new(&mut vorbis);
    packets
        .write_packet(&b"\x01vorbis"[..], 1, PacketWriteEndInfo::EndStream, 0)
        .unwrap();
    let refused = read_ogg_opus(Cursor::new(vorbis));
    assert!(
        matches!(refused, Err(AudioError::NotOggOpus(_))),
        "{refused:?}"
    );

    let bad_key = OggOpusWriter::new(Vec::new(), 16_000, 24_000, &[tag("A=B", "c")]);
    assert!(matches!(bad_key, Err(AudioError::InvalidTag { key }) if key == "A=B"));
    let bad_rate = OggOpusWriter::new(Vec::new(), 44_100, 24_000, &[]);
    assert!(matches!(bad_rate, Err(AudioError::UnsupportedRate { .. })));
}

#[test]
fn a_file_with_an_odd_input_rate_comes_back_at_that_rate() {
    // Another encoder may record 44.1 kHz input; Opus itself ran at 48 kHz.
    let mut file = write(&sine(440.0, 48_000, 48_000, 0.3), 48_000, &[]);
    let rate_field = 12 + file.windows(8).position(|w| w == b"OpusHead").unwrap();
    file[rate_field..rate_field + 4].copy_from_slice(&44_100u32.to_le_bytes());
    // Patching the header breaks the page CRC, which the reader checks.
    fix_first_page_crc(&mut file);
    let audio = read_ogg_opus(Cursor::new(&file)).unwrap();
    assert_eq!((audio.input_rate, audio.sample_rate), (44_100, 44_100));
    assert_eq!(audio.pcm.len(), 44_100);
}

/// Recomputes the CRC of the first Ogg page (RFC 3533 §6: CRC-32, polynomial
/// 0x04c11db7, no reflection, over the page with the CRC field zeroed).
fn fix_first_page_crc(file: &mut [u8]) {
    let segments = usize::from(file[26]);
    let body: usize = file[27..27 + segments]
        .iter()
        .map(|&s| usize::from(s))
        .sum();
    let len = 27 + segments + body;
    file[22..26].fill(0);
    let mut crc = 0u32;
    for &byte in &file[..len] {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    file[22..26].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn external_tools_accept_the_file() {
    let tags = [tag("MAILBOX", "1001")];
    let path = std::env::temp_dir().join(format!("vmesh-ogg-opus-{}.opus", std::process::id()));
    std::fs::write(&path, write(&ten_seconds(), 16_000, &tags)).unwrap();
    let file = path.to_string_lossy().into_owned();
    let report = run("opusinfo", &[&file]);
    let entries = "stream=codec_name,channels,duration_ts:format=format_name";
    let probe = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            entries,
            "-of",
            "default=nw=1",
            &file,
        ],
    );
    let pcm = run_bytes(
        "ffmpeg",
        &[
            "-v", "error", "-i", &file, "-f", "s16le", "-ar", "16000", "-",
        ],
        &[],
    );
    std::fs::remove_file(&path).unwrap();

    assert!(
        !report.contains("WARNING") && !report.contains("ERROR"),
        "{report}"
    );
    assert!(report.contains("Pre-skip: 312"), "{report}");
    assert!(
        report.contains("Original sample rate: 16000 Hz"),
        "{report}"
    );
    assert!(report.contains("MAILBOX=1001"), "{report}");
    assert!(report.contains("Playback length: 0m:10.000s"), "{report}");
    assert!(probe.contains("codec_name=opus"), "{probe}");
    assert!(probe.contains("channels=1"), "{probe}");
    assert!(probe.contains("format_name=ogg"), "{probe}");
    // ffprobe reports the last granule position, pre-skip included.
    assert!(probe.contains("duration_ts=480312"), "{probe}");
    // FFmpeg applies pre-skip and end trimming: exactly 10 s again.
    assert_eq!(pcm.len(), 160_000 * 2);
}

/// Encoding cost, for sizing: run with `cargo test --release -- --ignored
/// encoding_cost --nocapture`.
#[test]
#[ignore]
fn encoding_cost_of_one_minute() {
    let speech = speech_16k();
    let minute: Vec<i16> = speech.iter().copied().cycle().take(16_000 * 60).collect();
    let started = std::time::Instant::now();
    let file = write(&minute, 16_000, &[]);
    let elapsed = started.elapsed();
    eprintln!(
        "one minute of 16 kHz speech to Ogg Opus 24 kbit/s: {:.0} ms, {} bytes, {:.0} calls per core",
        elapsed.as_secs_f64() * 1000.0,
        file.len(),
        60.0 / elapsed.as_secs_f64()
    );
}

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::super::codec::OpusRate;
use super::*;

fn tone(len: usize) -> Vec<i16> {
    (0..len).map(|i| ((i % 16) as i16 - 8) * 1000).collect()
}

/// A sending stream with the default keep-alive interval (200 ms).
fn outbound(codec: Codec, pt: u8, cn: Option<u8>, start: Instant) -> Outbound {
    outbound_every(codec, pt, cn, crate::config::DEFAULT_KEEPALIVE, start)
}

/// A sending stream with a keep-alive packet every `keepalive`.
fn outbound_every(
    codec: Codec,
    pt: u8,
    cn: Option<u8>,
    keepalive: Duration,
    start: Instant,
) -> Outbound {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut out = Outbound::new(codec, pt, cn, keepalive, start, &mut rng).unwrap();
    out.set_sending(true);
    out
}

fn marker(p: &[u8]) -> bool {
    p[1] >> 7 == 1
}

fn prompt(pcm: Vec<i16>, rate: u32, barge_in: bool) -> Prompt {
    Prompt {
        pcm: pcm.into(),
        rate,
        barge_in,
    }
}

fn seq(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}
fn ts(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[4], p[5], p[6], p[7]])
}

/// Runs the stream on its own deadlines until `until`, with `digit_at`
/// (a packet count) pressing a key; returns (time since start, packet).
fn run(
    out: &mut Outbound,
    start: Instant,
    until: Duration,
    digit_at: Option<usize>,
) -> Vec<(Duration, Vec<u8>)> {
    let mut sent = Vec::new();
    let mut buf = Vec::new();
    let mut now = start;
    while let Some(due) = out.poll_timeout() {
        now = now.max(due);
        if now - start > until {
            break;
        }
        while out.poll(now, false, &mut buf).unwrap() {
            sent.push((now - start, buf.clone()));
            if Some(sent.len()) == digit_at {
                out.barge_in();
            }
        }
    }
    sent
}

#[test]
fn prompts_go_on_the_grid_with_continuous_headers_then_keepalive_follows() {
    let start = Instant::now();
    let mut out = outbound(Codec::Pcmu, 0, None, start);
    let greeting = out.play(prompt(tone(8000), 8000, true));
    let beep = out.play(prompt(tone(2000), 8000, false));
    let sent = run(&mut out, start, Duration::from_millis(3000), None);
    assert_eq!(out.poll_ended(), Some((greeting, PromptEnd::Finished)));
    assert_eq!(out.poll_ended(), Some((beep, PromptEnd::Finished)));
    // 50 + 13 prompt packets, each on its slot.
    for (i, (at, packet)) in sent.iter().enumerate().take(63) {
        assert_eq!(*at, PTIME * i as u32, "prompt packet {i} not on the grid");
        assert_eq!(packet.len(), 12 + 160);
        assert_eq!(marker(packet), i == 0, "marker on packet {i}");
        assert_ne!(&packet[12..], &[0xFF; 160][..]);
    }
    // Then silence in the next slots until the encoder settled (its
    // fourth frame is the third repeat), then one packet every 200 ms:
    // slots 63-66, then 76, 86, ... up to 3 s (slot 150).
    let slots: Vec<u32> = (63..=66).chain((76..=146).step_by(10)).collect();
    assert_eq!(sent.len(), 63 + slots.len(), "{:?}", &sent[63..]);
    for ((at, packet), slot) in sent[63..].iter().zip(&slots) {
        let due = PTIME * *slot;
        assert!(
            *at >= due && *at <= due + KEEPALIVE_LATE,
            "keep-alive for slot {slot} at {at:?}"
        );
        assert_eq!(&packet[12..], &[0xFF; 160][..], "μ-law silence");
        assert_eq!(packet[1] & 0x7F, 0, "PCMU");
        // A packet after a gap starts a talkspurt (RFC 3551 §4.1).
        assert_eq!(marker(packet), *slot >= 76, "marker on slot {slot}");
    }
    let slot_of = |i: usize| if i < 63 { i as u32 } else { slots[i - 63] };
    for (i, pair) in sent.windows(2).enumerate() {
        assert_eq!(seq(&pair[1].1), seq(&pair[0].1).wrapping_add(1));
        let step = (slot_of(i + 1) - slot_of(i)) * 160;
        assert_eq!(ts(&pair[1].1), ts(&pair[0].1).wrapping_add(step));
        assert_eq!(pair[1].1[8..12], pair[0].1[8..12], "one SSRC");
    }
    // A prompt after the sparse silence starts at the slot after the last
    // packet (far behind now: on the current slot, with the marker).
    let now = start + Duration::from_millis(3005);
    out.play(prompt(tone(320), 8000, true));
    let mut buf = Vec::new();
    assert!(out.poll(now, false, &mut buf).unwrap());
    assert!(marker(&buf));
    assert_ne!(&buf[12..], &[0xFF; 160][..]);
    assert_eq!(ts(&buf).wrapping_sub(ts(&sent[0].1)), 150 * 160);
}

/// `media.keepalive_ms = 20`: encoded silence in every frame, one
/// continuous stream without a marker.
#[test]
fn a_keepalive_of_one_frame_sends_silence_in_every_slot() {
    let start = Instant::now();
    let mut out = outbound_every(Codec::Pcmu, 0, None, PTIME, start);
    out.play(prompt(tone(2000), 8000, false));
    let sent = run(&mut out, start, Duration::from_millis(1500), None);
    assert_eq!(sent.len(), 75, "slots 0 to 74");
    for (i, (at, packet)) in sent.iter().enumerate().skip(13) {
        let slot = PTIME * i as u32;
        assert!(
            *at >= slot && *at <= slot + KEEPALIVE_LATE,
            "keep-alive {i} at {at:?}"
        );
        assert_eq!(&packet[12..], &[0xFF; 160][..], "μ-law silence");
        assert_eq!(packet[1], 0, "PCMU, no marker");
    }
    for pair in sent.windows(2) {
        assert_eq!(seq(&pair[1].1), seq(&pair[0].1).wrapping_add(1));
        assert_eq!(ts(&pair[1].1), ts(&pair[0].1).wrapping_add(160));
    }
}

#[test]
fn a_digit_stops_the_greeting_but_not_the_beep() {
    let start = Instant::now();
    let mut out = outbound(Codec::Pcmu, 0, None, start);
    let greeting = out.play(prompt(tone(8000 * 5), 8000, true));
    let beep = out.play(prompt(tone(2000), 8000, false));
    let sent = run(&mut out, start, Duration::from_millis(460), Some(10));
    assert_eq!(out.poll_ended(), Some((greeting, PromptEnd::Interrupted)));
    assert_eq!(out.poll_ended(), Some((beep, PromptEnd::Finished)));
    // 10 greeting packets, the 13 of the beep, then silence.
    assert!(sent[..23].iter().all(|(_, p)| p[12..] != [0xFF; 160][..]));
    assert!(sent[23..].iter().all(|(_, p)| p[12..] == [0xFF; 160][..]));
}

#[test]
fn barge_in_takes_the_queued_clips_up_to_one_without_it() {
    let start = Instant::now();
    let mut out = outbound(Codec::Pcmu, 0, None, start);
    let a = out.play(prompt(tone(800), 8000, true));
    let b = out.play(prompt(tone(800), 8000, true));
    let c = out.play(prompt(tone(800), 8000, false));
    let d = out.play(prompt(tone(800), 8000, true));
    assert!(out.barge_in());
    assert_eq!(out.poll_ended(), Some((a, PromptEnd::Interrupted)));
    assert_eq!(out.poll_ended(), Some((b, PromptEnd::Interrupted)));
    assert_eq!(out.poll_ended(), None);
    let mut buf = Vec::new();
    assert!(out.poll(start, false, &mut buf).unwrap());
    // `c` plays and cannot be stopped; `d` waits behind it.
    assert!(!out.barge_in());
    out.clear();
    assert_eq!(out.poll_ended(), Some((c, PromptEnd::Interrupted)));
    assert_eq!(out.poll_ended(), Some((d, PromptEnd::Interrupted)));
}

#[test]
fn keepalive_rides_on_a_streaming_callers_wakes() {
    let start = Instant::now();
    let mut out = outbound_every(Codec::Pcmu, 0, None, PTIME, start);
    let mut buf = Vec::new();
    assert!(out.poll(start, false, &mut buf).unwrap());
    // The caller's packets arrive 7 ms before each of our slots: each
    // arrival sends that slot's packet, so no timer is needed.
    for n in 1..50u32 {
        let arrival = start + PTIME * n - Duration::from_millis(7);
        assert!(out.poll(arrival, true, &mut buf).unwrap(), "slot {n}");
        assert!(!out.poll(arrival, false, &mut buf).unwrap());
        assert!(out.poll_timeout().unwrap() > arrival + Duration::from_millis(20));
    }
}

#[test]
fn nothing_is_sent_until_sending_is_on() {
    let start = Instant::now();
    let mut rng = SmallRng::seed_from_u64(1);
    let mut out = Outbound::new(Codec::Pcmu, 0, None, PTIME, start, &mut rng).unwrap();
    out.play(prompt(tone(1600), 8000, true));
    let mut buf = Vec::new();
    assert_eq!(out.poll_timeout(), None);
    assert!(!out
        .poll(start + Duration::from_secs(3), false, &mut buf)
        .unwrap());
    out.set_sending(true);
    let later = start + Duration::from_secs(3);
    assert!(out.poll(later, false, &mut buf).unwrap());
    // The stream starts on the current slot with the marker.
    assert_eq!(buf[1] >> 7, 1);
    assert!(out.poll_timeout().unwrap() > later);
}

#[test]
fn comfort_noise_when_offered_then_audio_resumes_with_the_marker() {
    let start = Instant::now();
    let mut out = outbound(Codec::Pcmu, 0, Some(13), start);
    let sent = run(&mut out, start, Duration::from_millis(1100), None);
    // One CN packet per 200 ms: at 0, 200, ... 1000 ms.
    assert_eq!(sent.len(), 6);
    for (i, (at, p)) in sent.iter().enumerate() {
        assert_eq!(p[1] & 0x7F, 13, "CN payload type");
        assert_eq!(&p[12..], &[127], "level byte only (RFC 3389 §3)");
        assert!(*at >= PTIME * (10 * i as u32));
    }
    assert_eq!(ts(&sent[1].1).wrapping_sub(ts(&sent[0].1)), 1600);
    // A prompt starts at the next slot, with the marker.
    let now = start + Duration::from_millis(1005);
    out.play(prompt(tone(320), 8000, true));
    let mut buf = Vec::new();
    let due = out.poll_timeout().unwrap();
    assert!(
        due <= start + Duration::from_millis(1020),
        "{:?}",
        due - start
    );
    assert!(out.poll(due.max(now), false, &mut buf).unwrap());
    assert_eq!(buf[1], 0x80, "PCMU with the marker");
}

#[test]
fn opus_steps_the_48_khz_clock_and_a_prompt_of_another_rate_is_converted() {
    let start = Instant::now();
    let codec = Codec::Opus(OpusRate::Wideband);
    let mut out = outbound(codec, 111, None, start);
    // An 8 kHz clip (a PCMU-recorded message) on an Opus call.
    out.play(prompt(tone(8000), 8000, false));
    let sent = run(&mut out, start, Duration::from_millis(980), None);
    assert_eq!(sent.len(), 50);
    assert_eq!(ts(&sent[1].1).wrapping_sub(ts(&sent[0].1)), 960);
    assert_eq!(sent[0].1[1] & 0x7F, 111);
    for (_, p) in &sent {
        assert_eq!(codec.samples_in(&p[12..]), Some(320));
    }
}

#[test]
fn a_starved_stream_skips_slots_instead_of_bursting() {
    let start = Instant::now();
    let mut out = outbound(Codec::Pcmu, 0, None, start);
    out.play(prompt(tone(8000), 8000, false));
    let mut buf = Vec::new();
    assert!(out.poll(start, false, &mut buf).unwrap());
    let first = ts(&buf);
    let late = start + Duration::from_millis(200);
    let mut burst = 0;
    while out.poll(late, false, &mut buf).unwrap() {
        burst += 1;
    }
    assert_eq!(burst, 1);
    assert_eq!(ts(&buf).wrapping_sub(first), 10 * 160);
    assert_eq!(buf[1] >> 7, 1, "marker after the gap");
}

/// G.722 fed digital silence never repeats a frame (ADPCM idle codes
/// wander), so the keep-alive stops encoding after half a second and
/// repeats its last frame, after a prompt as from the start; what the far
/// end decodes from that stays silence.
#[test]
fn g722_keepalive_settles_on_a_frame_that_decodes_to_silence() {
    let start = Instant::now();
    let mut out = outbound_every(Codec::G722, 9, None, PTIME, start);
    let beep = out.play(prompt(tone(16000 / 4), 16000, false));
    let sent = run(&mut out, start, Duration::from_secs(4), None);
    assert_eq!(out.poll_ended(), Some((beep, PromptEnd::Finished)));
    assert!(sent.len() >= 195, "{}", sent.len());
    let beep_packets = 13;
    let silence: Vec<&[u8]> = sent[beep_packets..].iter().map(|(_, p)| &p[12..]).collect();
    let settled = &silence[SILENCE_MAX_ENCODED as usize - 1];
    assert!(
        silence[SILENCE_MAX_ENCODED as usize..]
            .iter()
            .all(|f| f == settled),
        "the keep-alive repeats one frame once settled"
    );
    assert!(
        silence[..SILENCE_MAX_ENCODED as usize]
            .windows(2)
            .any(|w| w[0] != w[1]),
        "before that the encoder ran (its frames differ)"
    );
    let mut decoder = crate::audio::G722Decoder::default();
    let mut pcm = Vec::new();
    for (_, packet) in &sent {
        decoder.decode(&packet[12..], &mut pcm);
    }
    // After the beep and the encoder's first frames of silence: -50 dBFS.
    let tail = &pcm[(beep_packets + 10) * 320..];
    let peak = tail.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak < 104, "keep-alive decodes to a peak of {peak}");
    for pair in sent.windows(2) {
        assert_eq!(
            ts(&pair[1].1),
            ts(&pair[0].1).wrapping_add(160),
            "G.722 clock"
        );
    }
}

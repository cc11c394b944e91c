//! Tests of `greetings.rs`.

use super::*;

/// Writes a WAV file of `seconds` of a 440 Hz sine in every channel
/// (scaled by `gains`, one per channel) in the given sample format.
fn write_wav(
    path: &Path,
    rate: u32,
    gains: &[f32],
    seconds: f32,
    format: (hound::SampleFormat, u16),
) {
    let spec = hound::WavSpec {
        channels: gains.len() as u16,
        sample_rate: rate,
        bits_per_sample: format.1,
        sample_format: format.0,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let frames = (rate as f32 * seconds) as usize;
    for i in 0..frames {
        let x = 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin();
        for g in gains {
            match format {
                (hound::SampleFormat::Float, _) => w.write_sample(x * g).unwrap(),
                (_, 16) => w.write_sample((x * g * 32767.0) as i16).unwrap(),
                (_, 24) => w.write_sample((x * g * 8_388_607.0) as i32).unwrap(),
                _ => unreachable!(),
            }
        }
    }
    w.finalize().unwrap();
}

const INT16: (hound::SampleFormat, u16) = (hound::SampleFormat::Int, 16);

fn read_back(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    (spec, r.into_samples::<i16>().map(Result::unwrap).collect())
}

fn peak(pcm: &[i16]) -> i32 {
    pcm.iter().map(|&x| i32::from(x).abs()).max().unwrap_or(0)
}

/// Sign changes between non-zero samples: twice the frequency per second.
fn crossings(pcm: &[i16]) -> usize {
    let signs: Vec<bool> = pcm.iter().filter(|&&v| v != 0).map(|&v| v > 0).collect();
    signs.windows(2).filter(|w| w[0] != w[1]).count()
}

#[test]
fn set_from_44k1_stereo_resamples_and_downmixes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, 44_100, &[1.0, 0.0], 2.0, INT16);
    let greetings = Greetings::new(dir.path());
    let info = greetings
        .set("1001", GreetingKind::Unavailable, &input)
        .unwrap();
    assert_eq!(info.path, dir.path().join("greetings/1001/unavailable.wav"));
    assert_eq!((info.duration_ms, info.sample_rate), (2000, 16_000));
    let (spec, pcm) = read_back(&info.path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 16_000, 16)
    );
    assert_eq!(pcm.len(), 32_000);
    assert_eq!(
        info.size_bytes,
        std::fs::metadata(&info.path).unwrap().len()
    );
    // One channel at half scale and one silent average to a quarter.
    assert!((peak(&pcm) - 8192).abs() < 200, "peak {}", peak(&pcm));
    // Still 440 Hz: 1760 sign changes in 2 s.
    assert!(
        (1755..=1762).contains(&crossings(&pcm)),
        "{}",
        crossings(&pcm)
    );
}

#[test]
fn set_from_8k_mono_and_other_formats() {
    let dir = tempfile::tempdir().unwrap();
    let greetings = Greetings::new(dir.path());
    let cases = [
        (8000, INT16, 1.5, 24_000),
        (48_000, (hound::SampleFormat::Float, 32), 1.0, 16_000),
        (22_050, (hound::SampleFormat::Int, 24), 1.0, 16_000),
        (16_000, INT16, 0.5, 8000),
    ];
    for (rate, format, seconds, expected) in cases {
        let input = dir.path().join(format!("in-{rate}.wav"));
        write_wav(&input, rate, &[1.0], seconds, format);
        let info = greetings.set("42", GreetingKind::Busy, &input).unwrap();
        let (_, pcm) = read_back(&info.path);
        assert_eq!(pcm.len(), expected, "{rate} Hz");
        assert!(
            (peak(&pcm) - 16_384).abs() < 300,
            "{rate} Hz peak {}",
            peak(&pcm)
        );
    }
}

#[test]
fn unusable_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let greetings = Greetings::new(dir.path());
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "not audio at all").unwrap();
    let err = greetings
        .set("1001", GreetingKind::Busy, &text)
        .unwrap_err();
    assert!(
        matches!(err, GreetingError::UnsupportedFormat { .. }),
        "{err}"
    );
    let missing = dir.path().join("missing.wav");
    let err = greetings
        .set("1001", GreetingKind::Busy, &missing)
        .unwrap_err();
    assert!(matches!(err, GreetingError::Unreadable { .. }), "{err}");
    let empty = dir.path().join("empty.wav");
    write_wav(&empty, 8000, &[1.0], 0.0, INT16);
    let err = greetings
        .set("1001", GreetingKind::Busy, &empty)
        .unwrap_err();
    assert!(matches!(err, GreetingError::Empty { .. }), "{err}");
    assert!(greetings.list("1001").unwrap().is_empty());
}

#[test]
fn mailboxes_cannot_escape_the_greetings_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, 8000, &[1.0], 0.1, INT16);
    let greetings = Greetings::new(dir.path().join("data"));
    let long = "1".repeat(33);
    for bad in [
        "",
        "..",
        "../1001",
        "1001/..",
        "10 01",
        "abc",
        "\u{ff11}",
        "/etc",
        long.as_str(),
    ] {
        let err = greetings
            .set(bad, GreetingKind::Temporary, &input)
            .unwrap_err();
        assert!(
            matches!(err, GreetingError::InvalidMailbox(_)),
            "{bad:?}: {err}"
        );
        assert!(greetings.clear(bad, GreetingKind::Temporary).is_err());
        assert!(greetings.list(bad).is_err());
        assert_eq!(greetings.choose(bad, None), Greeting::Default);
    }
    assert!(!dir.path().join("data").exists());
    assert!(valid_mailbox(&"9".repeat(32)).is_ok());
}

#[test]
fn clear_removes_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, 8000, &[1.0], 0.2, INT16);
    let greetings = Greetings::new(dir.path());
    assert!(!greetings.clear("1001", GreetingKind::Temporary).unwrap());
    greetings
        .set("1001", GreetingKind::Temporary, &input)
        .unwrap();
    greetings
        .set("1001", GreetingKind::Unavailable, &input)
        .unwrap();
    let kinds: Vec<_> = greetings
        .list("1001")
        .unwrap()
        .iter()
        .map(|g| g.kind)
        .collect();
    assert_eq!(kinds, [GreetingKind::Unavailable, GreetingKind::Temporary]);
    assert!(greetings.clear("1001", GreetingKind::Temporary).unwrap());
    assert!(!greetings.clear("1001", GreetingKind::Temporary).unwrap());
    let kinds: Vec<_> = greetings
        .list("1001")
        .unwrap()
        .iter()
        .map(|g| g.kind)
        .collect();
    assert_eq!(kinds, [GreetingKind::Unavailable]);
    // Only the greeting itself is left: no temporary files.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("greetings/1001"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["unavailable.wav"]);
}

#[test]
fn choose_follows_the_precedence_for_every_combination() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, 8000, &[1.0], 0.1, INT16);
    let greetings = Greetings::new(dir.path());
    for set in 0..8u8 {
        let has = |kind: GreetingKind| set & (1 << kind as u8) != 0;
        for kind in GreetingKind::ALL {
            if has(kind) {
                greetings.set("7", kind, &input).unwrap();
            } else {
                greetings.clear("7", kind).unwrap();
            }
        }
        for reason in [
            None,
            Some("user-busy"),
            Some("USER-BUSY"),
            Some("no-answer"),
        ] {
            let busy = reason.is_some_and(|r| r.eq_ignore_ascii_case("user-busy"));
            let expected = if has(GreetingKind::Temporary) {
                Some(GreetingKind::Temporary)
            } else if busy && has(GreetingKind::Busy) {
                Some(GreetingKind::Busy)
            } else if has(GreetingKind::Unavailable) {
                Some(GreetingKind::Unavailable)
            } else {
                None
            };
            let chosen = match greetings.choose("7", reason) {
                Greeting::Stored { kind, path } => {
                    assert_eq!(path, greetings.path_of("7", kind).unwrap());
                    Some(kind)
                }
                Greeting::Default => None,
            };
            assert_eq!(chosen, expected, "set {set:03b}, reason {reason:?}");
        }
    }
}

#[test]
fn the_default_greeting_loads_at_8_and_16_khz() {
    let wide = load_pcm(&Greeting::Default, 16_000).unwrap();
    let narrow = load_pcm(&Greeting::Default, 8000).unwrap();
    let seconds = wide.len() as f64 / 16_000.0;
    assert!((3.0..4.6).contains(&seconds), "{seconds} s");
    assert_eq!(narrow.len(), wide.len().div_ceil(2));
    // Spoken audio, not silence, and not clipped (peak -3 dBFS).
    let rms = (wide.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / wide.len() as f64).sqrt();
    assert!(rms > 1000.0, "rms {rms}");
    assert!(peak(&wide) < 32_000);
    assert!(DEFAULT_WAV.len() < 150_000);
}

#[test]
fn a_stored_greeting_loads_at_the_call_rate() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, 44_100, &[1.0, 1.0], 1.0, INT16);
    let greetings = Greetings::new(dir.path());
    greetings
        .set("1001", GreetingKind::Unavailable, &input)
        .unwrap();
    let chosen = greetings.choose("1001", Some("no-answer"));
    assert_eq!(load_pcm(&chosen, 8000).unwrap().len(), 8000);
    assert_eq!(load_pcm(&chosen, 16_000).unwrap().len(), 16_000);
    std::fs::remove_file(
        greetings
            .path_of("1001", GreetingKind::Unavailable)
            .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        load_pcm(&chosen, 8000),
        Err(GreetingError::Unreadable { .. })
    ));
}

#[test]
fn kinds_parse_and_print() {
    for kind in GreetingKind::ALL {
        assert_eq!(kind.name().parse::<GreetingKind>().unwrap(), kind);
        assert_eq!(kind.to_string(), kind.name());
    }
    assert_eq!("BUSY".parse::<GreetingKind>().unwrap(), GreetingKind::Busy);
    assert!(matches!(
        "away".parse::<GreetingKind>(),
        Err(GreetingError::UnknownKind(_))
    ));
}

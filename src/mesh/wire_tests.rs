//! Tests of `wire.rs`.

use super::*;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

fn meta(audio: &[u8]) -> TransferMeta {
    TransferMeta {
        id: "0b5f3c9e-3d1a-4c57-9a51-2f8e6a7c1d42".to_string(),
        mailbox: "2001".to_string(),
        caller: "sip:5551234@pbx-a.example.com".to_string(),
        caller_name: Some("Zoë Müller 山田 😀".to_string()),
        called: "sip:2001@pbx-a.example.com".to_string(),
        reason: Some("no-answer".to_string()),
        received_at: "2026-11-26T00:28:49.512Z".to_string(),
        duration_ms: 14500,
        codec: "PCMU".to_string(),
        format: "wav".to_string(),
        sample_rate: 8000,
        size_bytes: audio.len() as u64,
        sha256: sha256_hex(audio),
        origin: "site-a".to_string(),
        partial: false,
        call_id: "a84b4c76e66710@pbx-a.example.com".to_string(),
    }
}

fn meta_json_text() -> String {
    serde_json::to_string(&meta(b"")).unwrap()
}

/// Random audio salted with every byte value and runs that look like delimiters.
fn nasty_audio(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut audio = vec![0u8; len];
    rng.fill_bytes(&mut audio);
    audio.extend((0..=255u8).chain((0..=255u8).rev()));
    let traps: [&[u8]; 5] = [
        b"\r\n--",
        b"\r\n--vmesh-",
        b"\n--vmesh-\r\n",
        b"--\r\n",
        b"\0\r\r\n\n",
    ];
    for trap in traps {
        let at = rng.random_range(0..=audio.len());
        audio.splice(at..at, trap.iter().copied());
    }
    audio
}

/// A body in the RFC 2046 §5.1.1 example's shape (preamble, quoted
/// boundary with a space, epilogue) carrying transfer parts.
fn hand_made(part1: &str, part2_headers: &str, audio: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "This is the preamble.  It is to be ignored.\r\n\
         \r\n\
         --simple boundary\r\n\
         {part1}\r\n\
         --simple boundary\r\n\
         {part2_headers}\r\n\
         \r\n"
    )
    .into_bytes();
    body.extend_from_slice(audio);
    body.extend_from_slice(
        b"\r\n--simple boundary--\r\n\r\nThis is the epilogue.  It is also to be ignored.\r\n",
    );
    body
}

const SIMPLE: &str = "multipart/mixed; boundary=\"simple boundary\"";

fn json_part() -> String {
    format!("Content-Type: application/json\r\n\r\n{}", meta_json_text())
}

#[test]
fn random_audio_round_trips_byte_for_byte() {
    let mut rng = StdRng::seed_from_u64(1);
    for len in [0, 1, 2, 100, 4096, 65_536, 300_000] {
        let audio = nasty_audio(&mut rng, len);
        let m = meta(&audio);
        let (content_type, body) = encode_with_rng(&m, &audio, "audio/wav", "x.wav", &mut rng);
        let decoded = decode(&content_type, &body).unwrap();
        assert_eq!(decoded.meta, m);
        assert_eq!(
            decoded.audio.to_vec(),
            audio,
            "audio of length {len} changed"
        );
        assert_eq!(decoded.audio_content_type, "audio/wav");
        assert_eq!(decoded.filename.as_deref(), Some("x.wav"));
        assert_eq!(sha256_hex(&decoded.audio), m.sha256);
    }
}

#[test]
fn encode_with_thread_rng_round_trips_empty_and_ogg() {
    for audio in [&b""[..], b"\r\n", b"OggS\0\x02\r\n--"] {
        let (content_type, body) = encode(&meta(audio), audio, "audio/ogg", "m.opus");
        let decoded = decode(&content_type, &body).unwrap();
        assert_eq!(decoded.audio.to_vec(), audio);
        assert_eq!(decoded.audio_content_type, "audio/ogg");
    }
}

#[test]
fn body_layout_follows_rfc_2046() {
    let audio = b"RIFF\0\0\0\0WAVE".to_vec();
    let mut rng = StdRng::seed_from_u64(9);
    let (content_type, body) =
        encode_with_rng(&meta(&audio), &audio, "audio/wav", "id.wav", &mut rng);
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap();
    assert!(boundary.starts_with(BOUNDARY_PREFIX));
    assert_eq!(boundary.len(), BOUNDARY_PREFIX.len() + BOUNDARY_RANDOM_LEN);
    assert!(valid_boundary(boundary));

    let expected_tail = format!(
        "\r\n--{boundary}\r\n\
         Content-Type: audio/wav\r\n\
         Content-Disposition: attachment; filename=\"id.wav\"\r\n\
         Content-Transfer-Encoding: binary\r\n\
         \r\n\
         RIFF\0\0\0\0WAVE\r\n\
         --{boundary}--\r\n"
    );
    let head = format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n{{\r\n  \"id\": ");
    assert!(body.starts_with(head.as_bytes()));
    assert!(body.ends_with(expected_tail.as_bytes()));
    // The metadata is 7-bit: non-ASCII is escaped, astral chars as a pair.
    let metadata = &body[..body.len() - expected_tail.len()];
    assert!(metadata.is_ascii());
    let bare_lf = metadata.windows(2).any(|w| w[0] != b'\r' && w[1] == b'\n');
    assert!(!bare_lf, "7-bit text needs CRLF line breaks");
    let metadata = String::from_utf8_lossy(metadata);
    assert!(metadata.contains(r#""caller_name": "Zo\u00eb M\u00fcller \u5c71\u7530 \ud83d\ude00""#));
}

#[test]
fn boundary_found_in_audio_is_drawn_again() {
    let first = draw_boundary(&mut StdRng::seed_from_u64(7));
    let audio = [b"\x01\x02", first.as_bytes(), b"\r\n--", first.as_bytes()].concat();
    let (content_type, body) = encode_with_rng(
        &meta(&audio),
        &audio,
        "audio/wav",
        "a.wav",
        &mut StdRng::seed_from_u64(7),
    );
    assert!(!content_type.contains(&first));
    let boundary = content_type.rsplit('=').next().unwrap();
    let delimiter = format!("--{boundary}");
    assert_eq!(
        body.windows(delimiter.len())
            .filter(|w| *w == delimiter.as_bytes())
            .count(),
        3
    );
    assert_eq!(decode(&content_type, &body).unwrap().audio.to_vec(), audio);
}

#[test]
fn header_breaking_characters_are_replaced() {
    let audio = b"x".to_vec();
    let (content_type, body) = encode(
        &meta(&audio),
        &audio,
        "audio/wav\r\nX: y",
        "a\"b\\c\r\nd\u{e9}.wav",
    );
    let decoded = decode(&content_type, &body).unwrap();
    assert_eq!(decoded.filename.as_deref(), Some("a_b_c__d_.wav"));
    assert_eq!(decoded.audio_content_type, "audio/wav__x: y");
    assert_eq!(decoded.audio.to_vec(), audio);
}

#[test]
fn rfc_2046_example_splits_into_its_two_parts() {
    // RFC 2046 §5.1.1, the example body after the header block, CRLF line breaks.
    let body = "This is the preamble.  It is to be ignored, though it\r\n\
                is a handy place for composition agents to include an\r\n\
                explanatory note to non-MIME conformant readers.\r\n\
                \r\n\
                --simple boundary\r\n\
                \r\n\
                This is implicitly typed plain US-ASCII text.\r\n\
                It does NOT end with a linebreak.\r\n\
                --simple boundary\r\n\
                Content-type: text/plain; charset=us-ascii\r\n\
                \r\n\
                This is explicitly typed plain US-ASCII text.\r\n\
                It DOES end with a linebreak.\r\n\
                \r\n\
                --simple boundary--\r\n\
                \r\n\
                This is the epilogue.  It is also to be ignored.\r\n";
    let parts = split_parts("simple boundary", body.as_bytes()).unwrap();
    assert_eq!(parts.len(), 2);
    let parts: Vec<Part<'_>> = parts.into_iter().map(|p| part_of(p).unwrap()).collect();
    assert_eq!(parts[0].media_type, "text/plain");
    assert_eq!(
        parts[0].content.to_vec(),
        b"This is implicitly typed plain US-ASCII text.\r\nIt does NOT end with a linebreak."
    );
    assert_eq!(parts[1].media_type, "text/plain");
    assert_eq!(
        parts[1].content.to_vec(),
        b"This is explicitly typed plain US-ASCII text.\r\nIt DOES end with a linebreak.\r\n"
    );
    // As a transfer it is refused for its first part's type.
    assert_eq!(
        decode(
            "multipart/mixed; boundary=\"simple boundary\"",
            body.as_bytes()
        )
        .unwrap_err(),
        WireError::MetadataType("text/plain".to_string())
    );
}

#[test]
fn rfc_2046_shaped_body_with_transfer_parts_decodes() {
    let audio = b"\0\r\n--simple boundar\r\n".to_vec();
    let body = hand_made(
        &json_part().replace("application/json", "Application/JSON; charset=utf-8"),
        "Content-Type: audio/WAV\r\nContent-Disposition: attachment; filename=\"m.wav\"",
        &audio,
    );
    let decoded = decode(SIMPLE, &body).unwrap();
    assert_eq!(decoded.audio.to_vec(), audio);
    assert_eq!(decoded.audio_content_type, "audio/wav");
    assert_eq!(decoded.meta, meta(b""));
}

#[test]
fn transport_padding_and_bare_lf_are_accepted() {
    let text = format!(
        "--b \t\n{}\n--b  \nContent-Type: audio/wav\n\nAUDIO\n--b-- \t\nepilogue",
        json_part().replace("\r\n", "\n")
    );
    let decoded = decode("multipart/mixed; boundary=b", text.as_bytes()).unwrap();
    assert_eq!(decoded.audio.to_vec(), b"AUDIO");
    assert_eq!(decoded.filename, None);
}

#[test]
fn python_email_base64_body_decodes() {
    let content_type = include_str!("../../testdata/mesh/python-base64.content-type");
    let body = include_bytes!("../../testdata/mesh/python-base64.body");
    let payload = include_bytes!("../../testdata/mesh/payload.bin");
    let decoded = decode(content_type.trim(), body).unwrap();
    assert_eq!(decoded.audio.to_vec(), payload);
    assert_eq!(decoded.audio_content_type, "audio/wav");
    assert_eq!(
        decoded.filename.as_deref(),
        Some("0b5f3c9e-3d1a-4c57-9a51-2f8e6a7c1d42.wav")
    );
    assert_eq!(decoded.meta, python_meta(payload.len()));
}

#[test]
fn python_email_binary_body_with_preamble_decodes() {
    let content_type = include_str!("../../testdata/mesh/python-binary.content-type");
    let body = include_bytes!("../../testdata/mesh/python-binary.body");
    let payload = include_bytes!("../../testdata/mesh/payload-crlf.bin");
    let decoded = decode(content_type.trim(), body).unwrap();
    assert_eq!(decoded.audio.to_vec(), payload);
    assert_eq!(decoded.meta, python_meta(payload.len()));
}

fn python_meta(size: usize) -> TransferMeta {
    let mut meta: TransferMeta =
        serde_json::from_str(include_str!("../../testdata/mesh/meta.json")).unwrap();
    meta.size_bytes = size as u64;
    assert_eq!(meta.caller_name.as_deref(), Some("Zoë Müller 山田"));
    meta
}

#[test]
fn content_type_is_checked() {
    let (_, body) = encode(&meta(b"a"), b"a", "audio/wav", "a.wav");
    let err = |ct: &str| decode(ct, &body).unwrap_err();
    assert_eq!(
        err("text/plain"),
        WireError::NotMultipart("text/plain".to_string())
    );
    assert_eq!(
        err("multipart/alternative; boundary=x"),
        WireError::NotMultipart("multipart/alternative".to_string())
    );
    assert_eq!(err(""), WireError::NotMultipart(String::new()));
    assert_eq!(err("multipart/mixed"), WireError::MissingBoundary);
    assert_eq!(
        err("multipart/mixed; charset=x"),
        WireError::MissingBoundary
    );
    assert!(matches!(
        err(&format!("multipart/mixed; boundary={}", "a".repeat(71))),
        WireError::Malformed(_)
    ));
    assert!(matches!(
        err("multipart/mixed; boundary=\"a\\\"b\""),
        WireError::Malformed(_)
    ));
    assert!(matches!(
        err("multipart/mixed; boundary=\"\""),
        WireError::Malformed(_)
    ));
    assert!(matches!(
        err("multipart/mixed; boundary=\"ends \""),
        WireError::Malformed(_)
    ));
    // A boundary that is not in the body: no parts at all.
    assert_eq!(
        err("multipart/mixed; boundary=nothere"),
        WireError::PartCount(0)
    );
}

#[test]
fn part_count_must_be_two() {
    let one = format!("--b\r\n{}\r\n--b--\r\n", json_part());
    assert_eq!(
        decode("multipart/mixed; boundary=b", one.as_bytes()).unwrap_err(),
        WireError::PartCount(1)
    );
    let three = format!(
        "--b\r\n{}\r\n\
         --b\r\nContent-Type: audio/wav\r\n\r\nA\r\n\
         --b\r\nContent-Type: audio/wav\r\n\r\nB\r\n\
         --b--\r\n",
        json_part()
    );
    assert_eq!(
        decode("multipart/mixed; boundary=b", three.as_bytes()).unwrap_err(),
        WireError::PartCount(3)
    );
}

#[test]
fn part_types_and_metadata_are_checked() {
    let wav = "Content-Type: audio/wav";
    let decode_parts = |part1: &str, part2: &str| {
        decode(SIMPLE, &hand_made(part1, part2, b"A")).map(VoiceMessageBody::into_owned)
    };
    assert!(decode_parts(&json_part(), wav).is_ok());
    assert_eq!(
        decode_parts(&json_part().replace("application/json", "text/plain"), wav).unwrap_err(),
        WireError::MetadataType("text/plain".to_string())
    );
    assert_eq!(
        decode_parts(&format!("\r\n{}", meta_json_text()), wav).unwrap_err(),
        WireError::MetadataType("text/plain".to_string())
    );
    assert_eq!(
        decode_parts(&json_part(), "Content-Type: application/octet-stream").unwrap_err(),
        WireError::AudioType("application/octet-stream".to_string())
    );
    assert_eq!(
        decode_parts(&json_part(), "Content-Type: audio/").unwrap_err(),
        WireError::AudioType("audio/".to_string())
    );
    assert_eq!(
        decode_parts(&json_part(), "Content-Type: xaudio/wav").unwrap_err(),
        WireError::AudioType("xaudio/wav".to_string())
    );
    for bad_json in ["{", "[]", "{\"id\": \"x\"}", "\u{ff}"] {
        let part = format!("Content-Type: application/json\r\n\r\n{bad_json}");
        assert!(
            matches!(decode_parts(&part, wav), Err(WireError::Metadata(_))),
            "{bad_json:?} accepted"
        );
    }
    // A missing required field is refused, with its name.
    let no_origin = json_part().replace("\"origin\":\"site-a\",", "");
    match decode_parts(&no_origin, wav) {
        Err(WireError::Metadata(reason)) => assert!(reason.contains("origin"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The optional fields may be absent; unknown fields are ignored.
    let lean = json_part()
        .replace("\"caller_name\":\"Zoë Müller 山田 😀\",", "")
        .replace("\"reason\":\"no-answer\",", "\"future\":[1,2],");
    let decoded = decode_parts(&lean, wav).unwrap();
    assert_eq!(
        (decoded.meta.caller_name, decoded.meta.reason),
        (None, None)
    );
}

#[test]
fn truncated_body_and_bad_encodings_are_malformed() {
    let audio = vec![7u8; 1000];
    let (content_type, body) = encode(&meta(&audio), &audio, "audio/wav", "a.wav");
    for cut in [body.len() - 3, body.len() - 20, body.len() - 600] {
        assert!(
            matches!(
                decode(&content_type, &body[..cut]),
                Err(WireError::Malformed(_))
            ),
            "cut at {cut}"
        );
    }
    let encoded = |cte: &str, content: &[u8]| {
        decode(
            SIMPLE,
            &hand_made(
                &json_part(),
                &format!("Content-Type: audio/wav\r\nContent-Transfer-Encoding: {cte}"),
                content,
            ),
        )
        .map(VoiceMessageBody::into_owned)
    };
    assert!(matches!(
        encoded("x-gzip", b"A"),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        encoded("base64", b"!!!not base64!!!"),
        Err(WireError::Malformed(_))
    ));
    assert_eq!(
        encoded("BASE64", b"AAEC/w==").unwrap().audio.to_vec(),
        [0, 1, 2, 255]
    );
    assert_eq!(
        encoded("quoted-printable", b"a=00=FF")
            .unwrap()
            .audio
            .to_vec(),
        b"a\0\xff"
    );
}

#[test]
fn nested_multipart_is_refused_without_overflowing_the_stack() {
    let mut nested = String::from("Content-Type: audio/wav\r\n\r\nA");
    for depth in 0..2000 {
        nested = format!(
            "Content-Type: multipart/mixed; boundary=n{depth}\r\n\r\n\
             --n{depth}\r\n{nested}\r\n--n{depth}--"
        );
    }
    let text = format!("--b\r\n{}\r\n--b\r\n{nested}\r\n--b--\r\n", json_part());
    // Never descended into: a part must be audio.
    assert_eq!(
        decode("multipart/mixed; boundary=b", text.as_bytes()).unwrap_err(),
        WireError::AudioType("multipart/mixed".to_string())
    );
}

#[test]
fn millions_of_empty_parts_are_refused_after_the_first_few() {
    let mut bomb = b"--b\r\n\r\n".repeat(2_400_000);
    bomb.extend_from_slice(b"--b--\r\n");
    assert_eq!(
        decode("multipart/mixed; boundary=b", &bomb).unwrap_err(),
        WireError::TooManyParts(MAX_PARTS)
    );
    // Up to the limit they are counted.
    let mut some = b"--b\r\n\r\n".repeat(MAX_PARTS);
    some.extend_from_slice(b"--b--\r\n");
    assert_eq!(
        decode("multipart/mixed; boundary=b", &some).unwrap_err(),
        WireError::PartCount(MAX_PARTS)
    );
}

#[test]
fn part_headers_are_bounded() {
    let audio = b"A".to_vec();
    let long = format!(
        "Content-Type: audio/wav\r\nX-Pad: {}",
        "p".repeat(MAX_PART_HEADER_BYTES)
    );
    assert!(matches!(
        decode(SIMPLE, &hand_made(&json_part(), &long, &audio)),
        Err(WireError::Malformed(reason)) if reason.contains("headers longer")
    ));
    let fits = format!(
        "Content-Type: audio/wav\r\nX-Pad: {}",
        "p".repeat(MAX_PART_HEADER_BYTES - 100)
    );
    assert!(decode(SIMPLE, &hand_made(&json_part(), &fits, &audio)).is_ok());
}

#[test]
fn binary_audio_is_a_slice_of_the_body_not_a_copy() {
    let audio = vec![0x5au8; 100_000];
    let (content_type, body) = encode(&meta(&audio), &audio, "audio/wav", "a.wav");
    let decoded = decode(&content_type, &body).unwrap();
    let Cow::Borrowed(slice) = &decoded.audio else {
        panic!("the audio was copied");
    };
    let inside = body.as_ptr_range();
    assert!(inside.contains(&slice.as_ptr()));
    assert_eq!(*slice, &audio[..]);
}

#[test]
fn mangled_bodies_never_panic() {
    let mut rng = StdRng::seed_from_u64(42);
    let audio = nasty_audio(&mut rng, 2000);
    let (content_type, body) =
        encode_with_rng(&meta(&audio), &audio, "audio/wav", "a.wav", &mut rng);
    let boundary = content_type.rsplit('=').next().unwrap().to_string();
    let fragments: Vec<Vec<u8>> = vec![
        format!("\r\n--{boundary}").into_bytes(),
        format!("\r\n--{boundary}--").into_bytes(),
        format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={boundary}\r\n\r\n")
            .into_bytes(),
        b"\r\n\r\n".to_vec(),
        b"Content-Transfer-Encoding: base64\r\n".to_vec(),
        b"Content-Disposition: attachment; filename*0*=utf-8''%ff; filename*1=x\r\n".to_vec(),
        b"Content-Type: audio/wav; name*=''%\r\n".to_vec(),
        b"\0\xff\xfe:".to_vec(),
    ];
    let content_types = [
        content_type.clone(),
        format!("{content_type}; boundary*=utf-8''%ZZ"),
        "multipart/mixed; boundary*0=a; boundary*1=b".to_string(),
        "multipart/mixed; boundary=\"\\".to_string(),
        "multipart/mixed;;;=;boundary=;".to_string(),
    ];
    for round in 0..4000 {
        let mut mangled = body.clone();
        for _ in 0..rng.random_range(1..=4) {
            let at = rng.random_range(0..=mangled.len());
            match rng.random_range(0..5) {
                0 => {
                    if let Some(byte) = mangled.get_mut(at) {
                        *byte = rng.random();
                    }
                }
                1 => mangled.truncate(at),
                2 => {
                    let end = rng.random_range(at..=mangled.len().min(at + 300));
                    mangled.drain(at..end);
                }
                3 => {
                    let fragment = &fragments[rng.random_range(0..fragments.len())];
                    mangled.splice(at..at, fragment.iter().copied());
                }
                _ => {
                    let end = rng.random_range(at..=mangled.len().min(at + 300));
                    let copy = mangled[at..end].to_vec();
                    mangled.splice(at..at, copy);
                }
            }
        }
        let ct = &content_types[round % content_types.len()];
        let _ = decode(ct, &mangled);
    }
    assert!(decode(&content_type, &body).is_ok());
}

#[test]
fn sha256_hex_is_lower_case_fips_180_2() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

//! DTMF by SIP INFO (`application/dtmf-relay`, `application/dtmf`): the
//! body of an INFO and its Content-Type through `parse_info_dtmf`.
//!
//! The input is the Content-Type value, a line feed, then the body.
//! Checked beyond "no panic": a digit is a DTMF key (`0`-`9`, `*`, `#`,
//! `A`-`D`); the body is refused as not DTMF exactly when the content type
//! is neither DTMF type, whatever the body; a malformed DTMF body's error
//! quotes at most 80 characters of it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmesh::media::dtmf_info::{is_dtmf_content_type, parse_info_dtmf, InfoDtmfError};

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(content_type);
    let result = parse_info_dtmf(&content_type, body);
    match &result {
        Ok(key) => assert!("0123456789*#ABCD".contains(key.digit), "{:?}", key.digit),
        Err(InfoDtmfError::Malformed(quoted)) => assert!(quoted.chars().count() <= 80),
        Err(InfoDtmfError::NotDtmf(_)) => {}
    }
    assert_eq!(
        is_dtmf_content_type(&content_type),
        !matches!(result, Err(InfoDtmfError::NotDtmf(_))),
        "{content_type:?}"
    );
});

//! Tests of `mailbox.rs`.

use super::*;

fn request<'a>(
    request_uri: &'a str,
    to: Option<&'a str>,
    history_info: &'a [&'a str],
    diversion: &'a [&'a str],
) -> MailboxRequest<'a> {
    MailboxRequest {
        request_uri,
        to,
        history_info,
        diversion,
    }
}

/// The expected target; `party` is compared separately (see `resolve`).
fn target(mailbox: &str, reason: Option<&str>, source: TargetSource) -> MailboxTarget {
    MailboxTarget {
        mailbox: mailbox.to_string(),
        reason: reason.map(str::to_string),
        source,
        party: String::new(),
    }
}

/// [`super::resolve`] with `party` cleared, so the tests of which mailbox
/// and reason compare whole targets; `party` has tests of its own.
fn resolve(req: &MailboxRequest) -> Result<MailboxTarget, MailboxError> {
    super::resolve(req).map(|mut t| {
        t.party.clear();
        t
    })
}

#[test]
fn party_is_the_uri_that_named_the_mailbox() {
    let party = |req: MailboxRequest| super::resolve(&req).map(|t| t.party);
    assert_eq!(
        party(request(
            "sip:voicemail@vm",
            None,
            &[],
            &["<sip:1001@pbx>;reason=user-busy"]
        )),
        Ok("sip:1001@pbx".to_string())
    );
    assert_eq!(
        party(request(
            "sip:voicemail@vm;target=sip:1001%40pbx;cause=486",
            None,
            &[],
            &[]
        )),
        Ok("sip:1001@pbx".to_string())
    );
    assert_eq!(
        party(request(
            "sip:voicemail@vm",
            None,
            &[
                "<sip:2002@pbx>;index=1",
                "<sip:voicemail@vm;cause=408>;index=1.1"
            ],
            &[]
        )),
        Ok("sip:2002@pbx".to_string())
    );
    assert_eq!(
        party(request("sip:1001@vm", None, &[], &[])),
        Ok("sip:1001@vm".to_string())
    );
}

#[test]
fn valid_mailbox_is_one_to_32_digits() {
    assert!(is_valid_mailbox("1"));
    assert!(is_valid_mailbox("1001"));
    assert!(is_valid_mailbox(&"9".repeat(32)));
    assert!(!is_valid_mailbox(""));
    assert!(!is_valid_mailbox(&"9".repeat(33)));
    assert!(!is_valid_mailbox("+1001"));
    assert!(!is_valid_mailbox("10 01"));
    assert!(!is_valid_mailbox("../1001"));
    assert!(!is_valid_mailbox("１００１"));
    assert!(!is_valid_mailbox("voicemail"));
}

#[test]
fn plain_request_uri_user() {
    let r = resolve(&request("sip:1001@vm", None, &[], &[])).unwrap();
    assert_eq!(r, target("1001", None, TargetSource::RequestUri));
}

#[test]
fn to_only_when_request_uri_is_a_pilot() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        Some("\"Alice\" <sip:1002@pbx.example.com>;tag=abc"),
        &[],
        &[],
    ))
    .unwrap();
    assert_eq!(r, target("1002", None, TargetSource::To));
}

#[test]
fn pilot_with_diversion_user_busy() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        Some("<sip:voicemail@vm>"),
        &[],
        &["<sip:1001@pbx>;reason=user-busy;counter=1"],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("user-busy"), TargetSource::Diversion)
    );
}

#[test]
fn diversion_original_is_last_entry_in_one_header() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        None,
        &[],
        &["<sip:2002@pbx>;reason=no-answer;counter=2, <sip:1001@pbx>;reason=user-busy;counter=1"],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("user-busy"), TargetSource::Diversion)
    );
}

#[test]
fn diversion_original_is_last_entry_across_headers() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        None,
        &[],
        &[
            "<sip:3003@pbx>;reason=deflection",
            "<sip:2002@pbx>;reason=no-answer, <sip:1001@pbx>;reason=unconditional",
        ],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("unconditional"), TargetSource::Diversion)
    );
}

#[test]
fn diversion_skips_an_original_that_is_not_a_mailbox() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        None,
        &[],
        &["<sip:2002@pbx>;reason=no-answer, <sip:sales@pbx>;reason=unconditional"],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("2002", Some("no-answer"), TargetSource::Diversion)
    );
}

#[test]
fn diversion_display_name_with_comma_and_quoted_reason() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        None,
        &[],
        &["\"Smith, John\" <sip:1001@pbx;user=phone>;reason=\"no-answer\";counter=1;privacy=off"],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("no-answer"), TargetSource::Diversion)
    );
}

#[test]
fn diversion_busy_alias_is_canonical_user_busy() {
    let r = resolve(&request(
        "sip:vm@vm",
        None,
        &[],
        &["<sip:1001@pbx>;reason=BUSY"],
    ))
    .unwrap();
    assert_eq!(r.reason.as_deref(), Some("user-busy"));
}

#[test]
fn diversion_junk_reason_is_dropped_not_stored() {
    let r = resolve(&request(
        "sip:vm@vm",
        None,
        &[],
        &["<sip:1001@pbx>;reason=\"no answer/../x\""],
    ))
    .unwrap();
    assert_eq!(r, target("1001", None, TargetSource::Diversion));
}

#[test]
fn history_info_index_1_with_cause_in_retargeted_entry() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        None,
        &["<sip:1001@pbx>;index=1, <sip:voicemail@vm;cause=486>;index=1.1"],
        &[],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("user-busy"), TargetSource::HistoryInfo)
    );
}

#[test]
fn history_info_across_two_headers_out_of_order() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        None,
        &[
            "<sip:voicemail@vm;cause=408>;index=1.1",
            "<sip:1001@pbx>;index=1",
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("no-answer"), TargetSource::HistoryInfo)
    );
}

#[test]
fn history_info_escaped_reason_header() {
    let r = resolve(&request(
        "sip:voicemail@vm",
        None,
        &["<sip:1001@pbx?Reason=SIP%3Bcause%3D486%3Btext%3D%22Busy%20Here%22>;index=1,<sip:voicemail@vm>;index=1.1"],
        &[],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("user-busy"), TargetSource::HistoryInfo)
    );
}

#[test]
fn history_info_q850_reason_is_not_a_sip_status() {
    let r = resolve(&request(
        "sip:vm@vm",
        None,
        &["<sip:1001@pbx?Reason=Q.850%3Bcause%3D486>;index=1"],
        &[],
    ))
    .unwrap();
    assert_eq!(r, target("1001", None, TargetSource::HistoryInfo));
}

#[test]
fn history_info_smallest_valid_index_wins() {
    // Index 1 is a pilot alias; 1.1 is the first real mailbox, 1.1.1 later.
    let r = resolve(&request(
        "sip:voicemail@vm",
        None,
        &["<sip:sales@pbx>;index=1, <sip:3003@pbx>;index=1.1.1;mp=1.1, <sip:2002@pbx>;index=1.1;rc=1, <sip:vm@vm;cause=302>;index=1.2"],
        &[],
    ))
    .unwrap();
    assert_eq!(r.mailbox, "2002");
    assert_eq!(r.source, TargetSource::HistoryInfo);
}

#[test]
fn history_info_index_compares_numerically_per_level() {
    let r = resolve(&request(
        "sip:vm@vm",
        None,
        &["<sip:1010@pbx>;index=1.10, <sip:1002@pbx>;index=1.2"],
        &[],
    ))
    .unwrap();
    assert_eq!(r.mailbox, "1002");
}

#[test]
fn history_info_without_indexes_uses_first_entry() {
    let r = resolve(&request(
        "sip:vm@vm",
        None,
        &["<sip:1001@pbx>, <sip:1002@pbx;cause=480>"],
        &[],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("no-answer"), TargetSource::HistoryInfo)
    );
}

#[test]
fn request_uri_target_from_the_issue() {
    let uri = "sip:voicemail@host;target=sip:1001%40host;cause=486";
    let parsed = Uri::try_from(uri).unwrap();
    assert_eq!(parsed.user(), Some("voicemail"));
    assert_eq!(
        other_param(&parsed.params, "target"),
        Some("sip:1001%40host")
    );
    let r = resolve(&request(uri, None, &[], &[])).unwrap();
    assert_eq!(
        r,
        target("1001", Some("user-busy"), TargetSource::RequestUriTarget)
    );
}

#[test]
fn request_uri_target_cause_408_is_no_answer() {
    let r = resolve(&request(
        "sip:voicemail@vm;target=sip:1001%40pbx;cause=408",
        None,
        &[],
        &[],
    ))
    .unwrap();
    assert_eq!(
        r,
        target("1001", Some("no-answer"), TargetSource::RequestUriTarget)
    );
}

#[test]
fn request_uri_cause_table() {
    for (cause, reason) in [
        ("404", Some("unknown")),
        ("486", Some("user-busy")),
        ("408", Some("no-answer")),
        ("480", Some("no-answer")),
        ("302", Some("unconditional")),
        ("487", Some("deflection")),
        ("503", Some("unavailable")),
        ("500", None),
        ("busy", None),
    ] {
        let uri = format!("sip:vm@vm;target=1001;cause={cause}");
        let r = resolve(&request(&uri, None, &[], &[])).unwrap();
        assert_eq!(r.reason.as_deref(), reason, "cause={cause}");
    }
}

#[test]
fn request_uri_target_unescaped_tel_and_plain_forms() {
    for uri in [
        "sip:voicemail@vm;target=sip:1001@pbx;cause=486",
        "sip:voicemail@vm;target=tel:1001;cause=486",
        "sip:voicemail@vm;target=tel%3A%2B1001;cause=486",
        "sip:voicemail@vm;target=1001;cause=486",
        "sip:voicemail@vm;target=sip:%2B1001%40pbx%3Buser%3Dphone;cause=486",
    ] {
        let r = resolve(&request(uri, None, &[], &[])).unwrap();
        assert_eq!(
            r,
            target("1001", Some("user-busy"), TargetSource::RequestUriTarget),
            "{uri}"
        );
    }
}

#[test]
fn request_uri_target_that_is_not_a_mailbox_falls_through() {
    let r = resolve(&request(
        "sip:voicemail@vm;target=sip:sales%40pbx",
        Some("<sip:1002@vm>"),
        &[],
        &[],
    ))
    .unwrap();
    assert_eq!(r, target("1002", None, TargetSource::To));
}

#[test]
fn precedence_target_history_info_diversion_to_request_uri() {
    let hi: &[&str] = &["<sip:2002@pbx>;index=1"];
    let div: &[&str] = &["<sip:3003@pbx>;reason=no-answer"];
    let to = Some("<sip:4004@vm>");
    let with_target = "sip:5005@vm;target=sip:1001%40pbx";
    let without_target = "sip:5005@vm";

    let r = resolve(&request(with_target, to, hi, div)).unwrap();
    assert_eq!(
        (r.mailbox.as_str(), r.source),
        ("1001", TargetSource::RequestUriTarget)
    );
    let r = resolve(&request(without_target, to, hi, div)).unwrap();
    assert_eq!(
        (r.mailbox.as_str(), r.source),
        ("2002", TargetSource::HistoryInfo)
    );
    let r = resolve(&request(without_target, to, &[], div)).unwrap();
    assert_eq!(
        (r.mailbox.as_str(), r.source),
        ("3003", TargetSource::Diversion)
    );
    let r = resolve(&request(without_target, to, &[], &[])).unwrap();
    assert_eq!((r.mailbox.as_str(), r.source), ("4004", TargetSource::To));
    let r = resolve(&request(without_target, None, &[], &[])).unwrap();
    assert_eq!(
        (r.mailbox.as_str(), r.source),
        ("5005", TargetSource::RequestUri)
    );
}

#[test]
fn no_digits_anywhere_is_no_mailbox() {
    let err = resolve(&request(
        "sip:voicemail@vm;target=sip:sales%40pbx",
        Some("<sip:voicemail@vm>"),
        &["<sip:support@pbx>;index=1"],
        &["<sip:reception@pbx>;reason=no-answer"],
    ))
    .unwrap_err();
    assert_eq!(
        err,
        MailboxError::NoMailbox {
            request_uri: "sip:voicemail@vm;target=sip:sales%40pbx".to_string()
        }
    );
    assert!(err.to_string().contains("sip:voicemail@vm"));
}

#[test]
fn error_request_uri_is_truncated() {
    let long = format!("sip:{}@vm", "é".repeat(400));
    let MailboxError::NoMailbox { request_uri } =
        resolve(&request(&long, None, &[], &[])).unwrap_err();
    assert!(request_uri.len() <= MAX_ERROR_URI_LEN);
    assert!(long.starts_with(&request_uri));
}

#[test]
fn path_traversal_is_skipped_everywhere() {
    for bad in [
        "sip:..%2F..%2Fetc@x",
        "sip:1001/..@x",
        "sip:../1001@x",
        "sip:1001%2F..@x",
        "sip:%2E%2E@x",
        "sip:1001%00@x",
        "sip:1001%@x",
    ] {
        let quoted = format!("<{bad}>");
        let target = format!("sip:vm@vm;target={}", bad.replace('@', "%40"));
        let hi = [format!("{quoted};index=1")];
        let hi: Vec<&str> = hi.iter().map(String::as_str).collect();
        let div = [quoted.as_str()];
        assert!(resolve(&request(bad, None, &[], &[])).is_err(), "{bad}");
        assert!(
            resolve(&request(&target, None, &[], &[])).is_err(),
            "{target}"
        );
        assert!(
            resolve(&request("sip:vm@vm", Some(&quoted), &hi, &div)).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn percent_encoded_digits_are_the_same_user() {
    // RFC 3261 §19.1.4: escaped and unescaped user characters are equal.
    let r = resolve(&request("sip:%31%30%30%31@vm", None, &[], &[])).unwrap();
    assert_eq!(r.mailbox, "1001");
}

#[test]
fn tel_uris_and_telephone_number_users() {
    let cases = [
        ("<tel:+1-555-0100;phone-context=example.com>", "15550100"),
        ("<tel:(555)0100>", "5550100"),
        ("<sip:+1.555.0100@pbx>", "15550100"),
        ("<sip:555-0100@pbx;user=phone>", "5550100"),
        ("<sip:5550100;phone-context=+1212@gw;user=phone>", "5550100"),
    ];
    for (div, mailbox) in cases {
        let r = resolve(&request("sip:vm@vm", None, &[], &[div])).unwrap();
        assert_eq!(
            (r.mailbox.as_str(), r.source),
            (mailbox, TargetSource::Diversion),
            "{div}"
        );
    }
}

#[test]
fn separators_are_not_removed_from_plain_sip_users() {
    // Without `+`, `user=phone` or a tel: URI the user is not a
    // telephone number, so `10.0.0.1` must not become mailbox 10001.
    assert!(resolve(&request("sip:10.0.0.1@vm", None, &[], &[])).is_err());
    assert!(resolve(&request("sip:555-0100@vm", None, &[], &[])).is_err());
    assert!(resolve(&request("sip:10.0.0.1;target=sip:x@h", None, &[], &[])).is_err());
}

#[test]
fn other_schemes_never_name_a_mailbox() {
    assert!(resolve(&request("mailto:1001@example.com", None, &[], &[])).is_err());
    assert!(resolve(&request("sip:vm@vm", Some("<http://1001@x>"), &[], &[])).is_err());
}

#[test]
fn split_entries_respects_quotes_and_angles() {
    assert_eq!(
        split_entries(r#""a, \"b\", c" <sip:1@x;p=a,b>;r=1 , <sip:2@x>,,"#),
        vec![r#""a, \"b\", c" <sip:1@x;p=a,b>;r=1"#, "<sip:2@x>"]
    );
    assert!(split_entries("  ").is_empty());
}

#[test]
fn target_source_display() {
    assert_eq!(
        TargetSource::RequestUriTarget.to_string(),
        "request-uri-target"
    );
    assert_eq!(TargetSource::HistoryInfo.to_string(), "history-info");
    assert_eq!(TargetSource::Diversion.to_string(), "diversion");
    assert_eq!(TargetSource::To.to_string(), "to");
    assert_eq!(TargetSource::RequestUri.to_string(), "request-uri");
}

/// xorshift64*: a fixed-seed generator so the fuzz run is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mangle(rng: &mut Rng, seed: &str) -> String {
    const ALPHABET: &[char] = &[
        '<',
        '>',
        '"',
        '\\',
        ',',
        ';',
        '=',
        '@',
        ':',
        '%',
        '?',
        '&',
        '[',
        ']',
        '.',
        '/',
        '+',
        '-',
        '1',
        '0',
        'a',
        ' ',
        '\t',
        '\0',
        'é',
        '€',
        '\u{10FFFF}',
    ];
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..=rng.below(6) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => chars.truncate(at),
            _ => chars.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mangled_header_values_never_panic_and_results_stay_valid() {
    let seeds = [
        "sip:voicemail@host;target=sip:1001%40host;cause=486",
        "\"Smith, John\" <sip:1001@pbx;user=phone>;reason=\"no-answer\";counter=1",
        "<sip:1001@pbx?Reason=SIP%3Bcause%3D486>;index=1, <sip:vm@vm;cause=408>;index=1.1",
        "<tel:+1-555-0100;phone-context=example.com>",
        "sip:5550100;phone-context=+1212@gw;user=phone",
        "sip:[::1]:5060;transport=tcp",
        "<sip:a:b@[2001:db8::1]:5060;lr>;tag=x",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut resolved = 0;
    for _ in 0..2000 {
        let values: Vec<String> = (0..4)
            .map(|_| {
                let seed = seeds[rng.below(seeds.len())];
                mangle(&mut rng, seed)
            })
            .collect();
        let hi = [values[2].as_str()];
        let div = [values[3].as_str()];
        let req = request(&values[0], Some(&values[1]), &hi, &div);
        if let Ok(t) = resolve(&req) {
            resolved += 1;
            assert!(is_valid_mailbox(&t.mailbox), "{req:?} -> {t:?}");
            if let Some(reason) = &t.reason {
                assert!(reason_token(reason).is_some(), "{req:?} -> {t:?}");
            }
        }
    }
    // Most mangles keep some valid mailbox somewhere; if none resolved,
    // the fuzz would be exercising only the error path.
    assert!(resolved > 500, "only {resolved} resolved");
}

//! Deposit or retrieval, and the caller's own mailbox, from header text.

use super::*;
use rsipstack::sip::SipMessage;

fn purpose(request_uri: &str, history_info: &[&str], diversion: &[&str]) -> CallPurpose {
    classify(
        &AccessRequest {
            request_uri,
            history_info,
            diversion,
        },
        &RetrievalConfig::default(),
    )
}

use CallPurpose::{Deposit, Retrieval};
use PilotKind::{AskMailbox, CallerMailbox};

#[test]
fn pilots_without_redirection_are_retrieval() {
    assert_eq!(
        purpose("sip:*97@vm.example", &[], &[]),
        Retrieval(CallerMailbox)
    );
    assert_eq!(
        purpose("sip:*98@vm.example", &[], &[]),
        Retrieval(AskMailbox)
    );
    assert_eq!(
        purpose("sip:voicemail-main@vm.example;transport=tcp", &[], &[]),
        Retrieval(CallerMailbox)
    );
    // An escaped star is the same user part (RFC 3261 §19.1.4).
    assert_eq!(
        purpose("sip:%2A98@vm.example", &[], &[]),
        Retrieval(AskMailbox)
    );
    assert_eq!(
        purpose("sips:*97@vm.example", &[], &[]),
        Retrieval(CallerMailbox)
    );
}

#[test]
fn everything_else_is_a_deposit() {
    assert_eq!(purpose("sip:1001@vm.example", &[], &[]), Deposit);
    assert_eq!(purpose("sip:voicemail@vm.example", &[], &[]), Deposit);
    assert_eq!(purpose("sip:*99@vm.example", &[], &[]), Deposit);
    // Pilots compare exactly.
    assert_eq!(purpose("sip:VOICEMAIL-MAIN@vm.example", &[], &[]), Deposit);
    assert_eq!(purpose("sip:vm.example", &[], &[]), Deposit);
    assert_eq!(purpose("tel:*97", &[], &[]), Deposit);
    assert_eq!(purpose("not a uri", &[], &[]), Deposit);
}

#[test]
fn a_redirected_call_to_a_pilot_is_a_deposit() {
    // RFC 4458 target.
    assert_eq!(
        purpose(
            "sip:*97@vm.example;target=sip:1001%40pbx;cause=486",
            &[],
            &[]
        ),
        Deposit
    );
    // Diversion.
    assert_eq!(
        purpose(
            "sip:*97@vm.example",
            &[],
            &["<sip:1001@pbx.example>;reason=no-answer"]
        ),
        Deposit
    );
    // History-Info naming the original target.
    assert_eq!(
        purpose(
            "sip:*98@vm.example",
            &[
                "<sip:1001@pbx.example>;index=1",
                "<sip:*98@vm.example;cause=480>;index=1.1"
            ],
            &[]
        ),
        Deposit
    );
    // History-Info that only records the pilot itself is no redirection.
    assert_eq!(
        purpose("sip:*98@vm.example", &["<sip:*98@vm.example>;index=1"], &[]),
        Retrieval(AskMailbox)
    );
}

#[test]
fn pilots_come_from_the_profile() {
    let config = crate::config::Profile::parse(
        "[retrieval]\npilots = [\"8500\", \"listen\"]\nask_mailbox_pilots = [\"listen\"]\n",
        crate::config::ProfileOrigin::Embedded,
    )
    .unwrap()
    .retrieval;
    let classify_with = |uri| {
        classify(
            &AccessRequest {
                request_uri: uri,
                ..AccessRequest::default()
            },
            &config,
        )
    };
    assert_eq!(classify_with("sip:8500@vm"), Retrieval(CallerMailbox));
    assert_eq!(classify_with("sip:listen@vm"), Retrieval(AskMailbox));
    assert_eq!(classify_with("sip:*97@vm"), Deposit);
}

#[test]
fn the_callers_mailbox_is_asserted_identity_then_from() {
    assert_eq!(
        caller_mailbox(
            &["\"Alice\" <sip:1001@pbx.example>"],
            Some("<sip:2002@pbx.example>;tag=1")
        )
        .as_deref(),
        Some("1001")
    );
    // An asserted identity that is no mailbox is skipped: the next one, or
    // From.
    assert_eq!(
        caller_mailbox(
            &["<sip:alice@pbx.example>, <tel:+1-212-555-0100>"],
            Some("<sip:2002@pbx.example>;tag=1")
        )
        .as_deref(),
        Some("12125550100")
    );
    assert_eq!(
        caller_mailbox(&[], Some("\"Bob\" <sip:2002@pbx.example>;tag=1")).as_deref(),
        Some("2002")
    );
    assert_eq!(
        caller_mailbox(&[], Some("<sip:bob@pbx.example>;tag=1")),
        None
    );
    assert_eq!(caller_mailbox(&[], None), None);
    assert_eq!(
        caller_mailbox(&[], Some("<sip:anonymous@anonymous.invalid>;tag=1")),
        None
    );
}

fn invite(ruri: &str, extra: &str) -> Request {
    let raw = format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
         From: \"Alice\" <sip:1001@pbx.example>;tag=1\r\n\
         To: <{ruri}>\r\n\
         Call-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    match SipMessage::try_from(raw.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

#[test]
fn bridges_from_a_parsed_invite() {
    let config = RetrievalConfig::default();
    let req = invite(
        "sip:*97@vm.example",
        "P-Asserted-Identity: <sip:3003@pbx.example>\r\n",
    );
    assert_eq!(purpose_of(&req, &config), Retrieval(CallerMailbox));
    assert_eq!(caller_mailbox_of(&req).as_deref(), Some("3003"));
    let req = invite("sip:*97@vm.example", "");
    assert_eq!(caller_mailbox_of(&req).as_deref(), Some("1001"));
    let req = invite(
        "sip:*97@vm.example",
        "Diversion: <sip:1001@pbx.example>;reason=user-busy\r\n",
    );
    assert_eq!(purpose_of(&req, &config), Deposit);
    let req = invite(
        "sip:*98@vm.example",
        "History-Info: <sip:1001@pbx.example>;index=1\r\n",
    );
    assert_eq!(purpose_of(&req, &config), Deposit);
}

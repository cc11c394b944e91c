//! Who may call, through the real binary: `sip.allow` (403 for any other
//! source) and SIP digest authentication of INVITEs (RFC 3261 §22 with
//! RFC 8760 SHA-256 and MD5): the challenge, the accepted retry, a wrong
//! password, a replayed nonce and an expired one (stale=true), and a PBX
//! that authenticates with SIPp's own digest code.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::dialog::{ack_for_failure, Dialog};
use common::digest::Challenge;
use common::raw_sip::request;
use common::{call_timeout, Server, ServerConfig, SipResponse, SipUdp, TestNet, SPEECH_SHORT_MS};

const ANSWER: Duration = Duration::from_secs(3);
const USER: &str = "pbx-a";
const PASSWORD: &str = "s3cret-Pa55";

fn sdp(ip: Ipv4Addr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

fn target(server: &Server) -> String {
    format!("sip:1001@{}", server.net.sip_addr())
}

/// Sends an INVITE (with `extra` headers) and returns it with its final
/// response; a non-2xx is ACKed as RFC 3261 §17.1.1.3 says.
fn invite(server: &Server, udp: &SipUdp, extra: &[&str]) -> (String, SipResponse) {
    let mut headers = vec!["Content-Type: application/sdp"];
    headers.extend_from_slice(extra);
    let text = request(
        "INVITE",
        &target(server),
        udp.local_addr(),
        "UDP",
        &headers,
        &sdp(server.net.peer_ip),
    );
    let response = udp
        .transact(&text, ANSWER)
        .unwrap_or_else(|| panic!("no final response to the INVITE\n{}", server.log_tail()));
    if response.status >= 300 {
        udp.send(ack_for_failure(&text, &response).as_bytes());
    }
    (text, response)
}

/// ACKs a 200 and ends the call with BYE, which must get 200 without any
/// challenge.
fn hang_up(udp: &SipUdp, ok: &SipResponse) {
    let dialog = Dialog::from_2xx(ok, udp.local_addr(), "UDP");
    udp.send(dialog.ack(None).as_bytes());
    let bye = udp
        .transact(&dialog.bye(), ANSWER)
        .expect("an answer to the BYE");
    assert_eq!(bye.status, 200, "BYE in an authorized dialog: {}", bye.raw);
}

/// The challenges of a 401, in order.
fn challenges(response: &SipResponse) -> Vec<Challenge> {
    assert_eq!(response.status, 401, "{}", response.raw);
    response
        .headers_named("WWW-Authenticate")
        .into_iter()
        .map(Challenge::parse)
        .collect()
}

fn challenge_for(response: &SipResponse, algorithm: &str) -> Challenge {
    challenges(response)
        .into_iter()
        .find(|c| c.algorithm.eq_ignore_ascii_case(algorithm))
        .unwrap_or_else(|| panic!("no {algorithm} challenge in {}", response.raw))
}

fn auth_config(nonce_lifetime_s: u64) -> ServerConfig {
    ServerConfig {
        sip_lines: vec![
            "auth_realm = \"vm.test\"".into(),
            format!("nonce_lifetime_s = {nonce_lifetime_s}"),
        ],
        extra: format!("[[sip.auth]]\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\n"),
        ..ServerConfig::default()
    }
}

#[test]
fn an_invite_from_outside_sip_allow_gets_403_and_an_allowed_pbx_records() {
    let net = TestNet::allocate();
    let config = ServerConfig {
        sip_lines: vec![format!("allow = [\"{}/32\"]", net.peer_ip)],
        ..ServerConfig::default()
    };
    let server = Server::start_with(net, config);
    // A host next to the PBX, one address further.
    let octets = net.peer_ip.octets();
    let stranger_ip = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3] + 1);
    let stranger = SipUdp::bind(stranger_ip, server.net.sip_addr());
    let (_, response) = invite(&server, &stranger, &[]);
    assert_eq!(response.status, 403, "{}", response.raw);
    // A Via that claims the PBX's address changes nothing: the source is
    // where the datagram came from.
    let forged = request(
        "INVITE",
        &target(&server),
        stranger.local_addr(),
        "UDP",
        &["Content-Type: application/sdp"],
        &sdp(stranger_ip),
    )
    .replacen(";rport", &format!(";received={};rport", net.peer_ip), 1);
    let response = stranger.transact(&forged, ANSWER).expect("an answer");
    assert_eq!(response.status, 403, "{}", response.raw);
    stranger.send(ack_for_failure(&forged, &response).as_bytes());

    server.leave_short_message("1001");
    let messages = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(
        messages.len(),
        1,
        "only the allowed PBX's call: {messages:?}"
    );
}

#[test]
fn digest_challenge_accept_and_refusals_with_sha_256_and_md5() {
    let server = Server::start_with(TestNet::allocate(), auth_config(30));
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let uri = target(&server);

    // No credentials: 401 offering SHA-256 first, then MD5, qop=auth.
    let (_, response) = invite(&server, &udp, &[]);
    let offered = challenges(&response);
    let algorithms: Vec<&str> = offered.iter().map(|c| c.algorithm.as_str()).collect();
    assert_eq!(algorithms, ["SHA-256", "MD5"], "{}", response.raw);
    assert!(offered
        .iter()
        .all(|c| c.realm == "vm.test" && c.qop.is_some() && !c.stale));

    for algorithm in ["SHA-256", "MD5"] {
        let (_, first) = invite(&server, &udp, &[]);
        let challenge = challenge_for(&first, algorithm);
        let good = challenge.authorization(USER, PASSWORD, "INVITE", &uri, 1);
        let header = format!("Authorization: {good}");
        let (_, accepted) = invite(&server, &udp, &[&header]);
        assert_eq!(accepted.status, 200, "{algorithm}: {}", accepted.raw);
        hang_up(&udp, &accepted);

        // The same credentials again (a captured INVITE replayed): the
        // nonce count was used, so 401 with stale=true.
        let (_, replayed) = invite(&server, &udp, &[&header]);
        let again = challenge_for(&replayed, algorithm);
        assert!(again.stale, "{algorithm} replay: {}", replayed.raw);

        // The next count on the same nonce is a new request: accepted.
        let next = challenge.authorization(USER, PASSWORD, "INVITE", &uri, 2);
        let (_, accepted) = invite(&server, &udp, &[&format!("Authorization: {next}")]);
        assert_eq!(accepted.status, 200, "{algorithm} nc=2: {}", accepted.raw);
        hang_up(&udp, &accepted);

        // A wrong password: challenged again, not stale.
        let (_, fresh) = invite(&server, &udp, &[]);
        let wrong =
            challenge_for(&fresh, algorithm).authorization(USER, "guess", "INVITE", &uri, 1);
        let (_, refused) = invite(&server, &udp, &[&format!("Authorization: {wrong}")]);
        let challenge = challenge_for(&refused, algorithm);
        assert!(
            !challenge.stale,
            "{algorithm} wrong password: {}",
            refused.raw
        );
        assert!(refused.header("Warning").is_some(), "{}", refused.raw);
    }
    // Nothing was recorded by any refused INVITE, and the accepted calls
    // (two per algorithm) hung up at once, under the minimum length: once
    // each of their sessions has said its last word, the list is final.
    assert_eq!(server.calls_answered(), 4, "{}", server.log_tail());
    server.wait_calls_ended(4, ANSWER);
    assert!(server.messages().is_empty());
    assert_eq!(server.log_count("message stored"), 0);
}

#[test]
fn an_expired_nonce_gets_401_with_stale_true_for_both_algorithms() {
    let server = Server::start_with(TestNet::allocate(), auth_config(1));
    let udp = SipUdp::bind(server.net.peer_ip, server.net.sip_addr());
    let uri = target(&server);
    let (_, first) = invite(&server, &udp, &[]);
    let sha = challenge_for(&first, "SHA-256");
    let md5 = challenge_for(&first, "MD5");
    // Waiting past the nonce's 1 s lifetime is the scenario itself.
    std::thread::sleep(Duration::from_millis(2200));
    for challenge in [sha, md5] {
        let late = challenge.authorization(USER, PASSWORD, "INVITE", &uri, 1);
        let (_, response) = invite(&server, &udp, &[&format!("Authorization: {late}")]);
        let renewed = challenge_for(&response, &challenge.algorithm);
        assert!(renewed.stale, "{}: {}", challenge.algorithm, response.raw);
        assert_ne!(renewed.nonce, challenge.nonce);
        // The fresh nonce works at once.
        let fresh = renewed.authorization(USER, PASSWORD, "INVITE", &uri, 1);
        let (_, accepted) = invite(&server, &udp, &[&format!("Authorization: {fresh}")]);
        assert_eq!(accepted.status, 200, "{}", accepted.raw);
        hang_up(&udp, &accepted);
    }
}

#[test]
fn a_pbx_authenticating_with_sipps_md5_digest_records_a_message() {
    let mut config = auth_config(30);
    // SIPp's digest knows MD5 only and answers the first challenge.
    config.sip_lines.push("auth_algorithms = [\"MD5\"]".into());
    let server = Server::start_with(TestNet::allocate(), config);
    server
        .sipp(
            "uac_auth.xml",
            &["-s", "1001", "-au", USER, "-ap", PASSWORD],
            call_timeout(SPEECH_SHORT_MS),
        )
        .assert_success();
    let messages = server.wait_messages(1, Duration::from_secs(10));
    assert_eq!(messages.len(), 1, "{messages:?}");
    // A wrong password never gets past the 401.
    let outcome = server.sipp(
        "uac_auth.xml",
        &["-s", "1001", "-au", USER, "-ap", "wrong"],
        Duration::from_secs(15),
    );
    assert_eq!(outcome.successful, 0, "{}", outcome.messages_log);
    assert_eq!(server.messages().len(), 1);
}

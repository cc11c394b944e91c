//! Tests of the `[[register]]` entries: the documented example, defaults,
//! passwords from files, the Contact, and every refusal.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{ConfigErrors, ListenTransport, Profile, ProfileOrigin, DEFAULT_PROFILE_TOML};

fn parse_in(dir: &Path, text: &str) -> Result<Profile, ConfigErrors> {
    Profile::parse(text, ProfileOrigin::File(dir.join("p.toml")))
}

fn parse(text: &str) -> Result<Profile, ConfigErrors> {
    parse_in(Path::new("/etc/vmesh"), text)
}

/// The errors of `text`, as `key: message` lines.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(p) => panic!("expected errors, got {:?}", p.register),
        Err(e) => {
            e.0.iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect()
        }
    }
}

fn assert_error(text: &str, key: &str, fragment: &str) {
    let errors = errors(text);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{key}: ")) && e.contains(fragment)),
        "no error at {key} containing {fragment:?}: {errors:#?}"
    );
}

#[test]
fn the_example_in_the_default_profile_is_valid_as_documented() {
    // The block after "# [[register]]" in default.toml, uncommented once.
    let start = DEFAULT_PROFILE_TOML
        .find("\n# [[register]]\n")
        .expect("default.toml documents [[register]]");
    let example: String = DEFAULT_PROFILE_TOML[start + 1..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let p = parse(&example).unwrap_or_else(|e| panic!("{e}\n{example}"));
    assert_eq!(p.register.len(), 1);
    let r = &p.register[0];
    assert_eq!(r.registrar.to_string(), "sip:pbx.example.com:5060");
    assert_eq!(r.user, "voicemail");
    assert_eq!(r.auth_user, "voicemail-auth");
    assert_eq!(r.password.as_ref().map(Password::expose), Some("secret"));
    assert_eq!(r.expires, DEFAULT_REGISTER_EXPIRES);
    assert_eq!(
        r.outbound_proxy
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("sip:192.0.2.1:5060")
    );
    assert_eq!(r.local.to_string(), "udp:127.0.0.1:5060");
    assert_eq!(r.address_of_record(), "sip:voicemail@pbx.example.com");
    assert_eq!(r.contact_uri(), "sip:voicemail@127.0.0.1:5060");
    // And the default profile itself registers nowhere.
    assert!(Profile::embedded_default().register.is_empty());
}

#[test]
fn a_minimal_entry_takes_the_defaults() {
    let p = parse("[[register]]\nregistrar = \"sip:10.0.0.1\"\nuser = \"vm\"\n").unwrap();
    let r = &p.register[0];
    assert_eq!(r.auth_user, "vm");
    assert_eq!(r.password, None);
    assert_eq!(r.expires, Duration::from_secs(600));
    assert_eq!(r.next_hop(), &r.registrar);
    assert_eq!(r.registrar.port_or_default(), 5060);
}

#[test]
fn a_tcp_registrar_registers_the_tcp_listener() {
    let p = parse(
        "[sip]\nlisten = [\"udp:127.0.0.5:5060\", \"tcp:127.0.0.5:5062\"]\n\
         [[register]]\nregistrar = \"sip:127.0.0.9;transport=tcp\"\nuser = \"vm\"\n\
         [[register]]\nregistrar = \"sip:127.0.0.9\"\nuser = \"vm\"\n",
    )
    .unwrap();
    assert_eq!(p.register[0].local.transport, ListenTransport::Tcp);
    assert_eq!(
        p.register[0].contact_uri(),
        "sip:vm@127.0.0.5:5062;transport=tcp"
    );
    // The same user at the same host over another transport is another
    // registrar URI, so both are allowed.
    assert_eq!(p.register[1].contact_uri(), "sip:vm@127.0.0.5:5060");
}

#[test]
fn a_wildcard_listener_registers_the_media_address() {
    let p = parse(
        "[sip]\nlisten = [\"udp:0.0.0.0:5060\"]\n[media]\nrtp_ip = \"192.0.2.7\"\n\
         [[register]]\nregistrar = \"sip:pbx\"\nuser = \"vm\"\n",
    )
    .unwrap();
    let r = &p.register[0];
    assert_eq!(r.contact_ip, "192.0.2.7".parse::<IpAddr>().unwrap());
    assert_eq!(r.contact_uri(), "sip:vm@192.0.2.7:5060");
    assert_eq!(r.local.addr, "0.0.0.0:5060".parse().unwrap());
}

#[test]
fn the_password_file_is_read_relative_to_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/vm"), "s3cret pass\n").unwrap();
    let text = "[[register]]\nregistrar = \"sip:pbx\"\nuser = \"vm\"\n\
                password_file = \"secrets/vm\"\n";
    let p = parse_in(dir.path(), text).unwrap();
    let password = p.register[0].password.clone().unwrap();
    assert_eq!(password.expose(), "s3cret pass");
    // The secret never shows in debug output (logs, test failures).
    assert!(!format!("{:?}", p.register).contains("s3cret"));

    std::fs::write(dir.path().join("secrets/vm"), "two\nlines\n").unwrap();
    let e = parse_in(dir.path(), text).unwrap_err().to_string();
    assert!(e.contains("more than one line"), "{e}");
    std::fs::write(dir.path().join("secrets/vm"), "\n").unwrap();
    let e = parse_in(dir.path(), text).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let missing = PathBuf::from(dir.path()).join("secrets/none");
    let text = text.replace("secrets/vm", "secrets/none");
    let e = parse_in(dir.path(), &text).unwrap_err().to_string();
    assert!(
        e.contains(&format!("cannot read {}", missing.display())),
        "{e}"
    );
}

#[test]
fn each_bad_entry_is_reported_at_its_key() {
    let entry =
        |extra: &str| format!("[[register]]\nregistrar = \"sip:pbx\"\nuser = \"vm\"\n{extra}");
    assert_error(
        "[register]\nregistrar = \"sip:pbx\"\n",
        "register",
        "[[register]]",
    );
    assert_error(
        "[[register]]\nuser = \"vm\"\n",
        "register[0].registrar",
        "is missing",
    );
    assert_error(
        "[[register]]\nregistrar = \"sip:pbx\"\n",
        "register[0].user",
        "is missing",
    );
    assert_error(
        "[[register]]\nregistrar = \"sip:vm@pbx\"\nuser = \"vm\"\n",
        "register[0].registrar",
        "user part",
    );
    assert_error(
        &entry("auth_user = \"a\\\"b\"\n"),
        "register[0].auth_user",
        "'\"'",
    );
    assert_error(
        "[[register]]\nregistrar = \"sip:pbx\"\nuser = \"v m\"\n",
        "register[0].user",
        "not a SIP user",
    );
    assert_error(
        &entry("expires = 5\n"),
        "register[0].expires",
        "out of range",
    );
    assert_error(
        &entry("expires = 86401\n"),
        "register[0].expires",
        "out of range",
    );
    assert_error(
        &entry("password = \"a\"\npassword_file = \"f\"\n"),
        "register[0].password_file",
        "not both",
    );
    assert_error(&entry("password = \"\"\n"), "register[0].password", "empty");
    assert_error(
        &entry("realm = \"x\"\n"),
        "register[0].realm",
        "unknown key",
    );
    assert_error(
        &format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n{}",
            entry("outbound_proxy = \"sip:proxy;transport=tcp\"\n")
        ),
        "register[0].outbound_proxy",
        "needs a tcp: entry in sip.listen",
    );
    assert_error(
        "[sip]\nlisten = [\"tcp:127.0.0.1:5060\"]\n\
         [[register]]\nregistrar = \"sip:pbx\"\nuser = \"vm\"\n",
        "register[0].registrar",
        "needs a udp: entry",
    );
    assert_error(
        &format!("{}{}", entry(""), entry("")),
        "register[1]",
        "register[0] already does",
    );
}

#[test]
fn tls_registrars_are_refused_clearly() {
    for registrar in ["sips:pbx.example.com", "sip:pbx.example.com;transport=tls"] {
        assert_error(
            &format!(
                "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"tls:127.0.0.1:5061\"]\n\
                 [[register]]\nregistrar = \"{registrar}\"\nuser = \"vm\"\n"
            ),
            "register[0].registrar",
            "TLS is not supported yet",
        );
    }
}

#[test]
fn the_pbx_sample_profiles_are_valid_and_register() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-profiles");
    for pbx in ["asterisk", "freeswitch", "kamailio"] {
        let path = root.join(pbx).join("vmesh.toml");
        let profile = Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(profile.register.len(), 1, "{}", path.display());
        let r = &profile.register[0];
        assert_eq!(r.user, "voicemail");
        assert!(r.password.is_some());
        assert_eq!(r.contact_uri(), "sip:voicemail@192.0.2.20:5060");
    }
}

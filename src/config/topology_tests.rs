//! Topology files, alone and as named by a profile.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::{ListenTransport, MailboxSet, MeshConfig, Profile, ProfileOrigin};

const CONTRACT_TOPOLOGY: &str = r#"
[[server]]
name = "site-a"
uri = "sip:127.0.0.11:5060;transport=tcp"
insecure = true
mailboxes = ["1000-1999"]
"#;

const CONTRACT_PROFILE: &str = r#"
[server]
name = "site-a"
topology = "topology.toml"   # relative to this file
data_dir = "data-a"          # relative to the working directory, or absolute

[sip]
listen = ["udp:127.0.0.11:5060", "tcp:127.0.0.11:5060"]
"#;

const THREE_SITES: &str = r#"
[tls]
ca = "certs/ca.pem"

[[server]]
name = "site-a"
uri = "sip:127.0.0.11:5060;transport=tcp"
insecure = true
mailboxes = ["1000-1999"]

[[server]]
name = "site-b"
uri = "sip:127.0.0.12;transport=tcp"
insecure = true
mailboxes = ["2000-2999", "42*"]

[[server]]
name = "site-c"
uri = "sip:[::1]:5070;transport=tls"
mailboxes = ["3000"]
"#;

fn parse(text: &str) -> Result<Topology, ConfigErrors> {
    Topology::parse(text, Path::new("topology.toml"))
}

/// The keys of the errors of `text`, which must not parse.
fn error_keys(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(t) => panic!("expected errors, got {t:?}"),
        Err(e) => {
            assert!(e.0.iter().all(|e| e.file == "topology.toml"), "{e}");
            e.0.into_iter().map(|e| e.key).collect()
        }
    }
}

/// One `[[server]]` table.
fn server(name: &str, ip: &str, mailboxes: &[&str]) -> String {
    let list: Vec<String> = mailboxes.iter().map(|m| format!("{m:?}")).collect();
    format!(
        "[[server]]\nname = {name:?}\nuri = \"sip:{ip}:5060;transport=tcp\"\ninsecure = true\nmailboxes = [{}]\n\n",
        list.join(", ")
    )
}

/// A directory holding `topology.toml` and the profile `site.toml`.
fn mesh_dir(topology: &str, profile: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("topology.toml"), topology).unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, profile).unwrap();
    (dir, path)
}

#[test]
fn the_contract_example_is_a_complete_profile() {
    let (_dir, path) = mesh_dir(CONTRACT_TOPOLOGY, CONTRACT_PROFILE);
    let p = Profile::load(&path).unwrap();
    assert_eq!(p.server.name, "site-a");
    assert_eq!(p.server.data_dir, PathBuf::from("data-a"));
    let t = p.topology.as_ref().unwrap();
    assert_eq!(t.path, path.parent().unwrap().join("topology.toml"));
    assert_eq!(t.servers.len(), 1);
    let a = &t.servers[0];
    assert_eq!(a.name, "site-a");
    assert_eq!(a.uri, "sip:127.0.0.11:5060;transport=tcp");
    assert_eq!(a.addr, "127.0.0.11:5060".parse().unwrap());
    assert_eq!(a.transport, ListenTransport::Tcp);
    assert!(a.mailboxes.contains("1500"));
    // Without [mailboxes] accept, the server takes the topology's mailboxes.
    assert!(p.mailboxes.contains("1999"));
    assert!(!p.mailboxes.contains("2000"));
    assert_eq!(p.mesh, MeshConfig::default());
}

#[test]
fn the_shipped_mesh_example_loads_and_validates() {
    // A copy with its certificates made as the demo makes them (private
    // keys are never committed).
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-profiles/mesh");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    for file in ["topology.toml", "site-a.toml", "site-b.toml", "site-c.toml"] {
        std::fs::copy(shipped.join(file), dir.join(file)).unwrap();
    }
    let ca = crate::config::MeshCa::in_dir(&dir.join("certs"));
    ca.init().unwrap();
    for site in ["site-a", "site-b", "site-c"] {
        ca.issue(site, 30).unwrap();
    }
    let topology = Topology::load(&dir.join("topology.toml")).unwrap();
    let names: Vec<&str> = topology.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["site-a", "site-b", "site-c"]);
    for (site, n) in [("a", 1), ("b", 2), ("c", 3)] {
        let p = Profile::load(&dir.join(format!("site-{site}.toml"))).unwrap();
        assert_eq!(p.server.name, format!("site-{site}"));
        assert_eq!(p.server.data_dir, PathBuf::from(format!("data-{site}")));
        assert_eq!(p.topology.as_ref(), Some(&topology));
        let me = topology.server(&p.server.name).unwrap();
        assert_eq!(me.addr, format!("127.0.0.1{n}:5061").parse().unwrap());
        assert_eq!(me.transport, ListenTransport::Tls);
        assert!(
            p.tls_material().unwrap().is_some(),
            "site-{site} has no TLS"
        );
        assert_eq!(
            topology.home_of(&format!("{n}500")).map(|s| &s.name),
            Some(&me.name)
        );
        // Every site takes calls for every site's mailboxes, and no others.
        for mailbox in ["1000", "2999", "3500"] {
            assert!(p.mailboxes.contains(mailbox), "site-{site} {mailbox}");
        }
        assert!(!p.mailboxes.contains("4000"));
        assert!(!p.mailboxes.contains("999"));
    }
}

#[test]
fn lookups_find_home_name_and_peer_ip() {
    let t = parse(THREE_SITES).unwrap();
    let home = |m: &str| t.home_of(m).map(|s| s.name.as_str());
    assert_eq!(home("1000"), Some("site-a"));
    assert_eq!(home("2999"), Some("site-b"));
    assert_eq!(home("42"), Some("site-b"));
    assert_eq!(home("4217"), Some("site-b"));
    assert_eq!(home("3000"), Some("site-c"));
    assert_eq!(home("3001"), None);
    assert_eq!(home("10000"), None);
    assert_eq!(home("../1000"), None);

    assert_eq!(t.server("site-b").unwrap().addr.port(), 5060);
    let c = t.server("site-c").unwrap();
    assert_eq!((c.addr.port(), c.transport), (5070, ListenTransport::Tls));
    assert!(t.server("site-d").is_none());
    assert!(t.server("SITE-A").is_none());

    let by_ip = |ip: &str| {
        t.by_ip(ip.parse::<IpAddr>().unwrap())
            .map(|s| s.name.as_str())
    };
    assert_eq!(by_ip("127.0.0.11"), Some("site-a"));
    assert_eq!(by_ip("::ffff:127.0.0.12"), Some("site-b"));
    assert_eq!(by_ip("::1"), Some("site-c"));
    assert_eq!(by_ip("127.0.0.1"), None);

    let all = t.all_mailboxes();
    assert_eq!(all.to_string(), "1000-1999, 2000-2999, 42*, 3000");
}

#[test]
fn a_single_server_and_a_server_without_mailboxes_are_valid() {
    let t = parse(&server("solo", "10.0.0.1", &["*"])).unwrap();
    assert_eq!(t.home_of("12345").unwrap().name, "solo");
    let t =
        parse(&(server("a", "10.0.0.1", &["1*"]) + &server("backup", "10.0.0.2", &[]))).unwrap();
    assert_eq!(t.server("backup").unwrap().mailboxes.patterns(), []);
    assert_eq!(t.all_mailboxes().to_string(), "1*");
}

#[test]
fn each_error_is_reported_at_its_key() {
    let a = server("site-a", "10.0.0.1", &["1000-1999"]);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (String::new(), vec!["server"]),
        ("server = []\n".into(), vec!["server"]),
        ("server = 5\n".into(), vec!["server"]),
        (format!("{a}colour = 1\n"), vec!["server[0].colour"]),
        (format!("version = 1\n{a}"), vec!["version"]),
        (
            "[[server]]\nname = \"a\"\n".into(),
            vec!["server[0].uri", "server[0].mailboxes"],
        ),
        (
            "[[server]]\nuri = \"sip:10.0.0.1;transport=tcp\"\ninsecure = true\nmailboxes = []\n"
                .into(),
            vec!["server[0].name"],
        ),
        (
            format!("{a}{}", server("site a", "10.0.0.2", &["2*"])),
            vec!["server[1].name"],
        ),
        (
            format!("{a}{}", server("Site-A", "10.0.0.2", &["2*"])),
            vec!["server[1].name"],
        ),
        (
            format!("{a}{}", server("site-b", "10.0.0.1", &["2*"])),
            vec!["server[1].uri"],
        ),
        (
            a.replace("transport=tcp", "transport=udp"),
            vec!["server[0].uri"],
        ),
        (a.replace(";transport=tcp", ""), vec!["server[0].uri"]),
        (
            a.replace("10.0.0.1", "vm.example.com"),
            vec!["server[0].uri"],
        ),
        (
            a.replace("1000-1999", "1999-1000"),
            vec!["server[0].mailboxes[0]"],
        ),
        (
            a.replace("[\"1000-1999\"]", "\"1000-1999\""),
            vec!["server[0].mailboxes"],
        ),
        (
            server("site-a", "10.0.0.1", &["1000-1999", "1500"]),
            vec!["server[0].mailboxes[1]"],
        ),
        (
            format!("{a}{}", server("site-b", "10.0.0.2", &["2*", "19*"])),
            vec!["server[1].mailboxes[1]"],
        ),
    ];
    for (text, keys) in cases {
        assert_eq!(error_keys(&text), keys, "topology:\n{text}");
    }
}

#[test]
fn messages_say_what_is_wrong() {
    let a = server("site-a", "10.0.0.1", &["1000-1999"]);
    let udp = parse(&a.replace("transport=tcp", "transport=udp")).unwrap_err();
    assert!(
        udp.0[0].message.contains("reachable by TCP or TLS"),
        "{udp}"
    );
    let dup = parse(&format!("{a}{a}")).unwrap_err().to_string();
    assert!(
        dup.contains(
            "topology.toml: server[1].name: server name \"site-a\" is already used by server[0]"
        ),
        "{dup}"
    );
    let overlap = parse(&format!("{a}{}", server("site-b", "10.0.0.2", &["15*"])))
        .unwrap_err()
        .to_string();
    assert!(
        overlap.starts_with(
            "topology.toml: server[1].mailboxes[0]: \"15*\" overlaps \"1000-1999\" \
             (server[0].mailboxes[0]) of server \"site-a\"; a mailbox can have only one home"
        ),
        "{overlap}"
    );
}

/// An overlap between servers for each pair of pattern kinds, and none
/// where the patterns only look alike.
#[test]
fn overlaps_are_found_between_every_kind_of_pattern() {
    let cases: &[(&str, &str, bool)] = &[
        ("*", "1000", true),
        ("1000", "*", true),
        ("1000", "1000", true),
        ("1000", "10*", true),
        ("1500", "1000-1999", true),
        ("31*", "3*", true),
        ("1*", "1000-1999", true),
        ("1000-1999", "1999-2999", true),
        ("1000", "10000", false),
        ("1000", "11*", false),
        ("31*", "32*", false),
        ("2*", "1000-1999", false),
        ("1000-1999", "100-199", false),
    ];
    for (a, b, overlap) in cases {
        let text = server("a", "10.0.0.1", &[a]) + &server("b", "10.0.0.2", &[b]);
        match parse(&text) {
            Ok(_) => assert!(!overlap, "{a} vs {b} not reported"),
            Err(e) => {
                assert!(overlap, "{a} vs {b}: {e}");
                assert!(e.has_key("server[1].mailboxes[0]"), "{e}");
            }
        }
    }
}

#[test]
fn every_error_is_reported_at_once_with_its_line() {
    let text = format!(
        "{}{}{}",
        server("site-a", "10.0.0.1", &["1*"]),
        server("site-a", "10.0.0.2", &["x"]),
        "[[server]]\nname = \"c\"\nuri = \"sip:10.0.0.3;transport=udp\"\nmailboxes = [\"12\"]\n"
    );
    let e = parse(&text).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server[1].name",
            "server[1].mailboxes[0]",
            "server[2].uri",
            "server[2].mailboxes[0]"
        ]
    );
    let lines: Vec<usize> =
        e.0.iter()
            .filter_map(|e| e.position.map(|p| p.line))
            .collect();
    assert_eq!(lines, [8, 11, 15, 16]);
}

#[test]
fn unreadable_and_broken_files_are_reported() {
    let e = Topology::load(Path::new("/nonexistent/topology.toml")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].file, "/nonexistent/topology.toml");
    assert!(e.0[0].message.starts_with("cannot read topology"), "{e}");
    let syntax = parse("[[server]\nname = 1\n").unwrap_err();
    assert!(
        syntax.0[0].message.starts_with("TOML syntax error"),
        "{syntax}"
    );
}

#[test]
fn the_profile_server_must_be_in_the_topology() {
    let profile = CONTRACT_PROFILE.replace("name = \"site-a\"", "name = \"site-z\"");
    let (_dir, path) = mesh_dir(CONTRACT_TOPOLOGY, &profile);
    let e = Profile::load(&path).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].key, "server.name");
    assert_eq!(e.0[0].file, path.display().to_string());
    assert_eq!(e.0[0].position.map(|p| p.line), Some(3));
    assert!(
        e.0[0].message.contains("\"site-z\" is not in the topology"),
        "{e}"
    );

    // Left at its default, the name is reported without a position.
    let (_dir, path) = mesh_dir(
        CONTRACT_TOPOLOGY,
        "[server]\ntopology = \"topology.toml\"\n",
    );
    let e = Profile::load(&path).unwrap_err();
    assert_eq!(e.0[0].key, "server.name");
    assert_eq!(e.0[0].position, None);
}

#[test]
fn the_profile_must_listen_where_peers_reach_it() {
    let refused = [
        "[\"udp:127.0.0.11:5060\"]",
        "[\"udp:127.0.0.11:5060\", \"tcp:127.0.0.11:5070\"]",
        "[\"tcp:127.0.0.12:5060\"]",
        "[\"tls:127.0.0.11:5060\"]",
        "[\"udp:127.0.0.11:5060\", \"tcp:[::]:5060\"]",
    ];
    for listen in refused {
        let profile =
            CONTRACT_PROFILE.replace("[\"udp:127.0.0.11:5060\", \"tcp:127.0.0.11:5060\"]", listen);
        let (_dir, path) = mesh_dir(CONTRACT_TOPOLOGY, &profile);
        let e = Profile::load(&path).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["sip.listen"], "{listen}: {e}");
        assert!(e.0[0].message.contains("peers could not reach"), "{e}");
    }
    let wildcard = CONTRACT_PROFILE.replace(
        "[\"udp:127.0.0.11:5060\", \"tcp:127.0.0.11:5060\"]",
        "[\"tcp:0.0.0.0:5060\"]\n[media]\nrtp_ip = \"127.0.0.11\"",
    );
    let (_dir, path) = mesh_dir(CONTRACT_TOPOLOGY, &wildcard);
    Profile::load(&path).unwrap();
    // The default listeners (127.0.0.1) are reported without a position.
    let (_dir, path) = mesh_dir(
        CONTRACT_TOPOLOGY,
        "[server]\nname = \"site-a\"\ntopology = \"topology.toml\"\n",
    );
    let e = Profile::load(&path).unwrap_err();
    assert_eq!(e.0[0].key, "sip.listen");
    assert_eq!(e.0[0].position, None);
}

#[test]
fn an_explicit_accept_list_is_kept_with_a_topology() {
    // All by plain TCP, so that the profile needs no certificate.
    let three_sites = THREE_SITES.replace(
        "uri = \"sip:[::1]:5070;transport=tls\"",
        "uri = \"sip:[::1]:5070;transport=tcp\"\ninsecure = true",
    );
    let profile = format!("{CONTRACT_PROFILE}\n[mailboxes]\naccept = [\"1001\"]\n");
    let (_dir, path) = mesh_dir(&three_sites, &profile);
    let p = Profile::load(&path).unwrap();
    assert_eq!(p.mailboxes, MailboxSet::parse(&["1001".into()]).unwrap());
    assert!(!p.uses_tls());
    // A peer reached by TLS: this server dials it with its own
    // certificate, which it then needs.
    let (_dir, path) = mesh_dir(THREE_SITES, CONTRACT_PROFILE);
    let e = Profile::load(&path).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["tls.cert", "tls.key"], "{e}");
    let (_dir, path) = mesh_dir(&three_sites, CONTRACT_PROFILE);
    let p = Profile::load(&path).unwrap();
    assert!(p.mailboxes.contains("4299"));
    assert!(p.mailboxes.contains("3000"));
    assert!(!p.mailboxes.contains("3001"));
}

#[test]
fn profile_and_topology_errors_are_reported_together() {
    let topology = format!("{CONTRACT_TOPOLOGY}\n[[server]]\nname = \"site-a\"\n");
    let profile = format!("{CONTRACT_PROFILE}\n[mesh]\nmax_in_flight = 0\n");
    let (dir, path) = mesh_dir(&topology, &profile);
    let e = Profile::load(&path).unwrap_err();
    let found: Vec<(String, &str)> =
        e.0.iter()
            .map(|e| (e.file.clone(), e.key.as_str()))
            .collect();
    let (p, t) = (
        path.display().to_string(),
        dir.path().join("topology.toml").display().to_string(),
    );
    // The profile's errors first, then the topology's, each in file order
    // (missing keys are placed at their table, before its first key).
    assert_eq!(
        found,
        [
            (p, "mesh.max_in_flight"),
            (t.clone(), "server[1].uri"),
            (t.clone(), "server[1].mailboxes"),
            (t, "server[1].name"),
        ]
    );
    // A missing topology file is named as such.
    let (_dir, path) = mesh_dir("", &CONTRACT_PROFILE.replace("topology.toml", "nope.toml"));
    let e = Profile::load(&path).unwrap_err();
    assert!(e.0[0].file.ends_with("nope.toml"), "{e}");
    assert!(e.0[0].message.starts_with("cannot read topology"), "{e}");
}

#[test]
fn parse_reads_the_topology_relative_to_the_origin() {
    let (dir, _) = mesh_dir(CONTRACT_TOPOLOGY, "");
    let origin = ProfileOrigin::File(dir.path().join("elsewhere.toml"));
    let p = Profile::parse(CONTRACT_PROFILE, origin).unwrap();
    assert_eq!(p.topology.unwrap().servers[0].name, "site-a");
}

#[test]
fn plain_tcp_needs_insecure_and_tls_needs_the_ca() {
    let tcp = "[[server]]\nname = \"a\"\nuri = \"sip:10.0.0.1;transport=tcp\"\nmailboxes = []\n";
    assert_eq!(error_keys(tcp), ["server[0].uri"]);
    let e = parse(tcp).unwrap_err();
    assert!(e.0[0].message.contains("insecure = true"), "{e}");
    let insecure = parse(&format!("{tcp}insecure = true\n")).unwrap();
    assert!(insecure.servers[0].insecure);
    assert_eq!(insecure.ca, None);

    let tls = "[[server]]\nname = \"a\"\nuri = \"sip:10.0.0.1;transport=tls\"\nmailboxes = []\n";
    assert_eq!(error_keys(tls), ["tls.ca"]);
    assert_eq!(
        error_keys(&format!("[tls]\nca = \"ca.pem\"\n{tls}insecure = true\n")),
        ["server[0].insecure"]
    );
    assert_eq!(
        error_keys(&format!("[tls]\nca = \"ca.pem\"\ncolour = 1\n{tls}")),
        ["tls.colour"]
    );
    let t = Topology::parse(
        &format!("[tls]\nca = \"certs/ca.pem\"\n{tls}"),
        Path::new("/etc/vmesh/topology.toml"),
    )
    .unwrap();
    assert_eq!(t.ca, Some(PathBuf::from("/etc/vmesh/certs/ca.pem")));
    assert!(!t.servers[0].insecure);
}

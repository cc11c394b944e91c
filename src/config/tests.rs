//! Whole-profile tests: defaults, the embedded profile, and error reporting.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Profile, ConfigErrors> {
    Profile::parse(
        text,
        ProfileOrigin::File(PathBuf::from("/etc/vmesh/p.toml")),
    )
}

fn errors(text: &str) -> ConfigErrors {
    match parse(text) {
        Ok(p) => panic!("expected errors, got {p:?}"),
        Err(e) => e,
    }
}

#[test]
fn embedded_default_is_valid_and_documents_the_defaults() {
    let profile = Profile::parse(DEFAULT_PROFILE_TOML, ProfileOrigin::Embedded).unwrap();
    assert_eq!(profile, Profile::embedded_default());
    // The file states the defaults: it reads the same as an empty profile.
    assert_eq!(
        profile,
        Profile::parse("", ProfileOrigin::Embedded).unwrap()
    );

    assert_eq!(profile.origin, ProfileOrigin::Embedded);
    assert_eq!(profile.server.name, "vmesh");
    assert_eq!(profile.server.data_dir, PathBuf::from("vmesh-data"));
    assert_eq!(profile.server.topology, None);
    let listen: Vec<String> = profile.sip.listen.iter().map(ToString::to_string).collect();
    assert_eq!(listen, ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]);
    assert_eq!(
        profile.sip.user_agent,
        format!("vmesh/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(profile.sip.max_message_bytes, 65536);
    assert_eq!(profile.sip.tcp_idle_timeout, Duration::from_secs(60));
    assert_eq!(profile.sip.max_calls, 1000);
    assert_eq!(profile.sip.answer_delay, Duration::ZERO);
    assert_eq!(profile.sip.request_deadline, Duration::from_secs(20));
    assert_eq!(profile.sip.max_connections_per_source, 64);
    assert_eq!(profile.sip.max_connections, 4096);
    assert_eq!(profile.tls, TlsFiles::default());
    assert_eq!(profile.sip.callers, CallerPolicy::default());
    assert_eq!(profile.sip.callers.allow, None);
    assert!(profile.sip.callers.auth.is_empty());
    assert_eq!(profile.sip.callers.auth_algorithms, DEFAULT_AUTH_ALGORITHMS);
    assert_eq!(profile.sip.callers.nonce_lifetime, DEFAULT_NONCE_LIFETIME);
    assert_eq!(profile.mailboxes, MailboxSet::any_digits());
    assert_eq!(profile.media.rtp_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(profile.media.rtp_ports, 20000..=29999);
    assert_eq!(profile.media.codecs, ["OPUS", "G722", "PCMU", "PCMA"]);
    assert_eq!(profile.media.rtp_timeout, Duration::from_secs(30));
    assert_eq!(profile.media.max_message, Duration::from_secs(180));
    assert_eq!(profile.media.min_message, Duration::from_millis(1000));
    assert_eq!(profile.media.jitter, Duration::from_millis(60));
    assert_eq!(profile.media.keepalive, Duration::from_millis(200));
    assert_eq!(profile.media.codec_order, CodecOrder::Offerer);
    assert_eq!(profile.media.opus_rate, 16_000);
    assert_eq!(profile.media.max_silence, Some(Duration::from_secs(10)));
    assert_eq!(profile.media.silence_threshold_dbfs, -50.0);
    assert!(profile.media.discard_silent);
    assert!(profile.media.prompts);
    assert_eq!(profile.media.beep_hz, 1000);
    assert_eq!(profile.media.beep, Duration::from_millis(250));
    assert_eq!(profile.storage, StorageConfig::default());
    assert_eq!(profile.storage.format, StorageFormat::Wav);
    assert_eq!(profile.storage.opus_bitrate, 24_000);
    assert_eq!(profile.storage.encode_workers, 2);
    assert_eq!(
        profile.storage.deleted_retention,
        Duration::from_secs(30 * 86_400)
    );
    assert_eq!(profile.storage.min_free_bytes, 64 * 1024 * 1024);
    assert_eq!(profile.topology, None);
    let mesh = &profile.mesh;
    assert_eq!(mesh.ping_interval, Duration::from_secs(2));
    assert_eq!(mesh.ping_idle_interval, Duration::from_secs(30));
    assert_eq!(mesh.ping_timeout, Duration::from_secs(5));
    assert_eq!(mesh.failures_for_down, 3);
    assert_eq!(mesh.max_transfer_bytes, 16 * 1024 * 1024);
    assert_eq!(mesh.max_in_flight, 8);
    assert_eq!(mesh.retry_initial, Duration::from_secs(1));
    assert_eq!(mesh.retry_max, Duration::from_secs(300));
    assert_eq!(mesh.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(mesh.transfer_timeout, Duration::from_secs(32));
    assert_eq!(*mesh, MeshConfig::default());
    let mwi = &profile.mwi;
    assert!(mwi.notify.is_empty());
    assert_eq!(mwi.mailboxes, None);
    assert_eq!(mwi.credentials, None);
    assert_eq!(mwi.domain, None);
    assert_eq!(mwi.min_expires, Duration::from_secs(60));
    assert_eq!(mwi.max_expires, Duration::from_secs(3600));
    assert_eq!(mwi.retry_attempts, 3);
    assert_eq!(mwi.retry_initial, Duration::from_secs(2));
    assert_eq!(mwi.max_in_flight, 32);
    assert_eq!(mwi.poll_interval, Duration::from_millis(250));
    assert_eq!(*mwi, MwiConfig::default());
}

#[test]
fn mwi_keys_are_read() {
    let p = parse(
        "[mwi]\nnotify = [\"sip:{mailbox}@192.0.2.5\", \"sip:mwi@pbx.example.com;transport=tcp\"]\n\
         mailboxes = [\"1000-1999\"]\nusername = \"vm\"\npassword = \"s3cret\"\n\
         domain = \"vm.example.com\"\nmin_expires_s = 30\nmax_expires_s = 600\n\
         retry_attempts = 1\nretry_initial_s = 5\nmax_in_flight = 4\npoll_ms = 100\n",
    )
    .unwrap();
    let mwi = &p.mwi;
    let uris: Vec<String> = mwi.notify.iter().map(|t| t.expand("1234")).collect();
    assert_eq!(
        uris,
        [
            "sip:1234@192.0.2.5",
            "sip:mwi@pbx.example.com;transport=tcp"
        ]
    );
    let set = mwi.mailboxes.as_ref().unwrap();
    assert!(set.contains("1500") && !set.contains("2500"));
    let creds = mwi.credentials.as_ref().unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.expose()),
        ("vm", "s3cret")
    );
    assert!(
        !format!("{creds:?}").contains("s3cret"),
        "Debug hides the password"
    );
    assert_eq!(mwi.domain.as_deref(), Some("vm.example.com"));
    assert_eq!(
        (mwi.min_expires, mwi.max_expires),
        (Duration::from_secs(30), Duration::from_secs(600))
    );
    assert_eq!(
        (mwi.retry_attempts, mwi.retry_initial),
        (1, Duration::from_secs(5))
    );
    assert_eq!(
        (mwi.max_in_flight, mwi.poll_interval),
        (4, Duration::from_millis(100))
    );
}

#[test]
fn the_mwi_password_may_come_from_a_file_beside_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mwi.secret"), "from-file\r\n").unwrap();
    let parse_in =
        |text: &str| Profile::parse(text, ProfileOrigin::File(dir.path().join("p.toml")));
    let p = parse_in("[mwi]\nusername = \"vm\"\npassword_file = \"mwi.secret\"\n").unwrap();
    let creds = p.mwi.credentials.as_ref().unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.expose()),
        ("vm", "from-file")
    );
    assert!(!format!("{p:?}").contains("from-file"));
    let cases = [
        (
            "[mwi]\nusername = \"vm\"\npassword = \"x\"\npassword_file = \"mwi.secret\"\n",
            "mwi.password_file",
            "not both",
        ),
        (
            "[mwi]\npassword_file = \"mwi.secret\"\n",
            "mwi.password_file",
            "needs a username",
        ),
        (
            "[mwi]\nusername = \"vm\"\npassword_file = \"none\"\n",
            "mwi.password_file",
            "cannot read",
        ),
    ];
    for (text, key, words) in cases {
        let errors = parse_in(text).unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.key == key && e.message.contains(words)),
            "{text:?}: want {key} with {words:?}, got {errors}"
        );
    }
    // A password file that failed is not also "a username without a password".
    let errors = parse_in("[mwi]\nusername = \"vm\"\npassword_file = \"none\"\n").unwrap_err();
    assert!(!errors.has_key("mwi.username"), "{errors}");
}

#[test]
fn mwi_errors_name_their_key() {
    let cases = [
        (
            "[mwi]\nnotify = [\"sip:{box}@pbx\"]\n",
            "mwi.notify[0]",
            "placeholder",
        ),
        (
            "[mwi]\nnotify = [\"http://pbx/{mailbox}\"]\n",
            "mwi.notify[0]",
            "sip:",
        ),
        (
            "[mwi]\nnotify = [\"sip:{mailbox}@pbx;transport=tls\"]\n",
            "mwi.notify[0]",
            "udp or tcp",
        ),
        (
            "[mwi]\nmailboxes = [\"12-3\"]\n",
            "mwi.mailboxes[0]",
            "range",
        ),
        ("[mwi]\nusername = \"vm\"\n", "mwi.username", "password"),
        ("[mwi]\npassword = \"x\"\n", "mwi.password", "username"),
        (
            "[mwi]\nmin_expires_s = 600\nmax_expires_s = 60\n",
            "mwi.max_expires_s",
            "min_expires_s",
        ),
        (
            "[mwi]\nretry_attempts = 0\n",
            "mwi.retry_attempts",
            "out of range",
        ),
        ("[mwi]\ndomain = \"a b\"\n", "mwi.domain", "host"),
        ("[mwi]\nlamp = true\n", "mwi.lamp", "unknown key"),
    ];
    for (text, key, words) in cases {
        let errors = errors(text);
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.key == key && e.message.contains(words)),
            "{text:?}: want {key} with {words:?}, got {errors}"
        );
    }
}

#[test]
fn mesh_keys_are_read() {
    let p = parse(
        "[mesh]\nping_interval_s = 1\nping_idle_interval_s = 60\nping_timeout_s = 3\n\
         failures_for_down = 5\nmax_transfer_bytes = 65536\nmax_in_flight = 1\n\
         retry_initial_s = 2\nretry_max_s = 2\nretention_days = 0\ntransfer_timeout_s = 10\n",
    )
    .unwrap();
    let expected = MeshConfig {
        ping_interval: Duration::from_secs(1),
        ping_idle_interval: Duration::from_secs(60),
        ping_timeout: Duration::from_secs(3),
        failures_for_down: 5,
        max_transfer_bytes: 65536,
        max_in_flight: 1,
        retry_initial: Duration::from_secs(2),
        retry_max: Duration::from_secs(2),
        retention: Duration::ZERO,
        transfer_timeout: Duration::from_secs(10),
    };
    assert_eq!(p.mesh, expected);
}

#[test]
fn codec_silence_prompt_and_storage_keys_are_read() {
    let p = parse(
        "[media]\ncodecs = [\"g722\", \"Opus\"]\ncodec_order = \"offerer\"\nopus_rate = 48000\n\
         max_silence_s = 0\nsilence_threshold_dbfs = -42.5\ndiscard_silent = false\n\
         prompts = false\nbeep_hz = 440\nbeep_ms = 500\nkeepalive_ms = 20\n\
         [storage]\nformat = \"opus\"\nopus_bitrate = 16000\nencode_workers = 8\n\
         deleted_retention_days = 0\nmin_free_mb = 5\n",
    )
    .unwrap();
    let media = &p.media;
    assert_eq!(media.codecs, ["G722", "OPUS"]);
    assert_eq!(media.codec_order, CodecOrder::Offerer);
    assert_eq!(media.opus_rate, 48_000);
    assert_eq!(media.max_silence, None);
    assert_eq!(media.silence_threshold_dbfs, -42.5);
    assert!(!media.discard_silent);
    assert!(!media.prompts);
    assert_eq!(
        (media.beep_hz, media.beep),
        (440, Duration::from_millis(500))
    );
    assert_eq!(media.keepalive, Duration::from_millis(20));
    let expected = StorageConfig {
        format: StorageFormat::Opus,
        opus_bitrate: 16_000,
        encode_workers: 8,
        deleted_retention: Duration::ZERO,
        min_free_bytes: 5 * 1024 * 1024,
    };
    assert_eq!(p.storage, expected);
    // A whole number is a valid threshold too.
    let p = parse("[media]\nsilence_threshold_dbfs = -60\nmax_silence_s = 3\n").unwrap();
    assert_eq!(p.media.silence_threshold_dbfs, -60.0);
    assert_eq!(p.media.max_silence, Some(Duration::from_secs(3)));
}

#[test]
fn a_minimal_file_is_a_complete_profile() {
    let p = parse(
        r#"
[server]
name = "vm-a"

[sip]
listen = ["udp:192.0.2.10:5070"]

[mailboxes]
accept = ["1000-1999", "31*"]

[media]
codecs = ["pcma"]
"#,
    )
    .unwrap();
    assert_eq!(p.server.name, "vm-a");
    assert_eq!(p.sip.listen.len(), 1);
    assert_eq!(p.sip.listen[0].transport, ListenTransport::Udp);
    // rtp_ip follows the first listener when not given.
    assert_eq!(p.media.rtp_ip, "192.0.2.10".parse::<IpAddr>().unwrap());
    assert_eq!(p.media.codecs, ["PCMA"]);
    assert!(p.mailboxes.contains("1500"));
    assert!(p.mailboxes.contains("3105"));
    assert!(!p.mailboxes.contains("2000"));
    // Untouched keys keep their defaults.
    assert_eq!(p.sip.max_calls, 1000);
    assert_eq!(p.media.rtp_ports, 20000..=29999);
}

#[test]
fn absolute_topology_and_data_dir_are_kept() {
    let p = parse("[server]\ndata_dir = \"/var/lib/vmesh\"\n").unwrap();
    assert_eq!(p.server.data_dir, PathBuf::from("/var/lib/vmesh"));
    // The topology is read where the path points: absolute as written,
    // relative to the working directory for the embedded origin.
    let e = parse("[server]\ntopology = \"/nonexistent/topology.toml\"\n").unwrap_err();
    assert_eq!(e.0[0].file, "/nonexistent/topology.toml");
    let embedded = Profile::parse(
        "[server]\ntopology = \"nonexistent-t.toml\"\n",
        ProfileOrigin::Embedded,
    )
    .unwrap_err();
    assert_eq!(embedded.0[0].file, "nonexistent-t.toml");
}

/// Each kind of mistake, and the key it must be reported at.
#[test]
fn each_error_is_reported_at_its_key() {
    let cases: &[(&str, &str)] = &[
        ("[bogus]\nx = 1\n", "bogus"),
        ("sip = 5\n", "sip"),
        ("[server]\ncolour = \"red\"\n", "server.colour"),
        ("[server]\nname = \"\"\n", "server.name"),
        ("[server]\nname = \"a b\"\n", "server.name"),
        ("[server]\nname = 7\n", "server.name"),
        ("[server]\ndata_dir = \"\"\n", "server.data_dir"),
        ("[server]\ntopology = \"\"\n", "server.topology"),
        ("[sip]\nlisten = \"udp:127.0.0.1:5060\"\n", "sip.listen"),
        ("[sip]\nlisten = []\n", "sip.listen"),
        (
            "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"sctp:127.0.0.1:5060\"]\n",
            "sip.listen[1]",
        ),
        (
            "[sip]\nlisten = [\"udp:127.0.0.1:5060\", 5060]\n",
            "sip.listen[1]",
        ),
        ("[sip]\nlisten = [\"udp:127.0.0.1:0\"]\n", "sip.listen[0]"),
        (
            "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"udp:127.0.0.1:5060\"]\n",
            "sip.listen[1]",
        ),
        (
            "[sip]\nlisten = [\"tcp:127.0.0.1:5060\", \"tls:127.0.0.1:5060\"]\n",
            "sip.listen[1]",
        ),
        ("[sip]\nuser_agent = \"a\\r\\nb\"\n", "sip.user_agent"),
        ("[sip]\nmax_message_bytes = 1023\n", "sip.max_message_bytes"),
        (
            "[sip]\nmax_message_bytes = 16777217\n",
            "sip.max_message_bytes",
        ),
        ("[sip]\ntcp_idle_timeout_s = 0\n", "sip.tcp_idle_timeout_s"),
        ("[sip]\nmax_calls = 0\n", "sip.max_calls"),
        ("[sip]\nmax_calls = -5\n", "sip.max_calls"),
        ("[sip]\nmax_calls = \"10\"\n", "sip.max_calls"),
        ("[sip]\nanswer_delay_ms = 1.5\n", "sip.answer_delay_ms"),
        ("[mailboxes]\naccept = []\n", "mailboxes.accept"),
        (
            "[mailboxes]\naccept = [\"1000\", \"\"]\n",
            "mailboxes.accept[1]",
        ),
        (
            "[mailboxes]\naccept = [\"1999-1000\"]\n",
            "mailboxes.accept[0]",
        ),
        ("[mailboxes]\naccept = [\"12a\"]\n", "mailboxes.accept[0]"),
        ("[mailboxes]\nreject = [\"1\"]\n", "mailboxes.reject"),
        ("[media]\nrtp_ip = \"not-an-ip\"\n", "media.rtp_ip"),
        (
            "[sip]\nlisten = [\"udp:0.0.0.0:5060\"]\n[media]\nrtp_ip = \"x\"\n",
            "media.rtp_ip",
        ),
        ("[media]\nrtp_ip = \"0.0.0.0\"\n", "media.rtp_ip"),
        ("[sip]\nlisten = [\"udp:0.0.0.0:5060\"]\n", "media.rtp_ip"),
        ("[media]\nrtp_port_min = 20001\n", "media.rtp_port_min"),
        ("[media]\nrtp_port_min = 0\n", "media.rtp_port_min"),
        ("[media]\nrtp_port_max = 0\n", "media.rtp_port_max"),
        ("[media]\nrtp_port_max = 70000\n", "media.rtp_port_max"),
        (
            "[media]\nrtp_port_min = 30000\nrtp_port_max = 29000\n",
            "media.rtp_port_min",
        ),
        ("[media]\ncodecs = []\n", "media.codecs"),
        (
            "[media]\ncodecs = [\"PCMU\", \"G729\"]\n",
            "media.codecs[1]",
        ),
        (
            "[media]\ncodecs = [\"PCMU\", \"pcmu\"]\n",
            "media.codecs[1]",
        ),
        ("[media]\nrtp_timeout_s = 0\n", "media.rtp_timeout_s"),
        ("[media]\nmax_message_s = 0\n", "media.max_message_s"),
        ("[media]\nmin_message_ms = 0\n", "media.min_message_ms"),
        ("[media]\njitter_ms = 0\n", "media.jitter_ms"),
        ("[media]\nkeepalive_ms = 0\n", "media.keepalive_ms"),
        ("[media]\nkeepalive_ms = 30\n", "media.keepalive_ms"),
        ("[media]\nkeepalive_ms = 1020\n", "media.keepalive_ms"),
        (
            "[media]\nmin_message_ms = 5000\nmax_message_s = 5\n",
            "media.min_message_ms",
        ),
        ("[media]\nmax_message_s = 1\n", "media.min_message_ms"),
        ("[media]\ncodec_order = \"caller\"\n", "media.codec_order"),
        ("[media]\ncodec_order = 1\n", "media.codec_order"),
        ("[media]\nopus_rate = 44100\n", "media.opus_rate"),
        ("[media]\nopus_rate = -8000\n", "media.opus_rate"),
        ("[media]\nmax_silence_s = 3601\n", "media.max_silence_s"),
        (
            "[media]\nsilence_threshold_dbfs = 3.0\n",
            "media.silence_threshold_dbfs",
        ),
        (
            "[media]\nsilence_threshold_dbfs = -91\n",
            "media.silence_threshold_dbfs",
        ),
        (
            "[media]\nsilence_threshold_dbfs = nan\n",
            "media.silence_threshold_dbfs",
        ),
        (
            "[media]\nsilence_threshold_dbfs = \"-50\"\n",
            "media.silence_threshold_dbfs",
        ),
        ("[media]\ndiscard_silent = 1\n", "media.discard_silent"),
        ("[media]\nprompts = \"no\"\n", "media.prompts"),
        ("[media]\nbeep_hz = 8000\n", "media.beep_hz"),
        ("[media]\nbeep_ms = 10\n", "media.beep_ms"),
        ("[storage]\nformat = \"mp3\"\n", "storage.format"),
        ("[storage]\nopus_bitrate = 5000\n", "storage.opus_bitrate"),
        ("[storage]\nencode_workers = 0\n", "storage.encode_workers"),
        ("[storage]\nencode_workers = 65\n", "storage.encode_workers"),
        ("[storage]\ncompress = true\n", "storage.compress"),
        ("storage = 1\n", "storage"),
        ("[mesh]\nping_interval_s = 0\n", "mesh.ping_interval_s"),
        ("[mesh]\nping_interval_s = 3601\n", "mesh.ping_interval_s"),
        (
            "[mesh]\nping_idle_interval_s = 1\n",
            "mesh.ping_idle_interval_s",
        ),
        (
            "[mesh]\nping_interval_s = 60\n",
            "mesh.ping_idle_interval_s",
        ),
        ("[mesh]\nping_timeout_s = 0\n", "mesh.ping_timeout_s"),
        ("[mesh]\nfailures_for_down = 0\n", "mesh.failures_for_down"),
        (
            "[mesh]\nmax_transfer_bytes = 1000\n",
            "mesh.max_transfer_bytes",
        ),
        ("[mesh]\nmax_in_flight = 0\n", "mesh.max_in_flight"),
        ("[mesh]\nretry_initial_s = 0\n", "mesh.retry_initial_s"),
        ("[mesh]\nretry_initial_s = 600\n", "mesh.retry_max_s"),
        (
            "[mesh]\nretry_initial_s = 10\nretry_max_s = 5\n",
            "mesh.retry_max_s",
        ),
        ("[mesh]\nretention_days = -1\n", "mesh.retention_days"),
        (
            "[mesh]\ntransfer_timeout_s = 0\n",
            "mesh.transfer_timeout_s",
        ),
        ("[mesh]\npeers = []\n", "mesh.peers"),
    ];
    for (text, key) in cases {
        let e = errors(text);
        assert_eq!(
            e.0.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            [*key],
            "profile {text:?} gave {e}"
        );
        assert_eq!(e.0[0].file, "/etc/vmesh/p.toml");
    }
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let e = errors(
        r#"
[sip]
listen = ["udp:127.0.0.1:5060", "bad"]
max_calls = 0
typo = 1

[media]
codecs = ["OPUS?"]
jitter_ms = 0
rtp_port_min = 7
"#,
    );
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "sip.listen[1]",
            "sip.max_calls",
            "sip.typo",
            "media.codecs[0]",
            "media.jitter_ms",
            "media.rtp_port_min",
        ]
    );
    let lines: Vec<usize> =
        e.0.iter()
            .filter_map(|e| e.position.map(|p| p.line))
            .collect();
    assert_eq!(lines, [3, 4, 5, 8, 9, 10]);
    let text = e.to_string();
    assert_eq!(text.lines().count(), 6);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("/etc/vmesh/p.toml: sip.listen[1]: "),
        "{text}"
    );
}

#[test]
fn syntax_errors_name_line_and_column() {
    let e = errors("[sip]\nmax_calls = 10\nlisten = [\"udp:1.2.3.4:5060\"\n");
    assert!(!e.0.is_empty());
    let first = &e.0[0];
    assert_eq!(first.key, "");
    assert!(first.message.starts_with("TOML syntax error"), "{first}");
    assert_eq!(first.position.map(|p| p.line), Some(3), "{first}");
    assert!(first
        .to_string()
        .starts_with("/etc/vmesh/p.toml: TOML syntax error"));

    let dup = errors("[sip]\nmax_calls = 1\nmax_calls = 2\n");
    assert_eq!(dup.0[0].position.map(|p| p.line), Some(3), "{dup}");
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("vmesh-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("site.toml");
    std::fs::write(
        dir.join("topology.toml"),
        "[[server]]\nname = \"vmesh\"\nuri = \"sip:127.0.0.1;transport=tcp\"\ninsecure = true\nmailboxes = []\n",
    )
    .unwrap();
    std::fs::write(&path, "[server]\ntopology = \"topology.toml\"\n").unwrap();
    let p = Profile::load(&path).unwrap();
    assert_eq!(p.origin, ProfileOrigin::File(path.clone()));
    assert_eq!(p.server.topology, Some(dir.join("topology.toml")));
    assert_eq!(p.topology.unwrap().path, dir.join("topology.toml"));

    std::fs::write(&path, "[sip]\nmax_calls = 0\n").unwrap();
    let e = Profile::load(&path).unwrap_err();
    assert_eq!(e.0[0].file, path.display().to_string());

    let missing = Profile::load(Path::new("/nonexistent/vmesh.toml")).unwrap_err();
    assert_eq!(missing.0.len(), 1);
    assert_eq!(missing.0[0].file, "/nonexistent/vmesh.toml");
    assert!(missing.0[0].message.starts_with("cannot read profile"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embedded_origin_is_named_in_errors() {
    let e = Profile::parse("[sip]\nmax_calls = 0\n", ProfileOrigin::Embedded).unwrap_err();
    assert_eq!(e.0[0].file, "<embedded default>");
}

#[test]
fn retrieval_keys_are_read_and_checked() {
    let p = parse(
        "[retrieval]\npilots = [\"*86\", \"listen\"]\nask_mailbox_pilots = [\"listen\"]\n\
         language = \"fr-CA\"\nprompts_dir = \"prompts\"\ntimezone = \"Europe/Paris\"\n\
         input_timeout_s = 4\nlockout_failures = 3\nlockout_window_s = 60\nlockout_s = 120\n",
    )
    .unwrap();
    let r = &p.retrieval;
    let pilots: Vec<(&str, PilotKind)> =
        r.pilots.iter().map(|p| (p.user.as_str(), p.kind)).collect();
    assert_eq!(
        pilots,
        [
            ("*86", PilotKind::CallerMailbox),
            ("listen", PilotKind::AskMailbox)
        ]
    );
    assert_eq!(r.language, "fr-CA");
    assert_eq!(r.prompts_dir, Some(PathBuf::from("/etc/vmesh/prompts")));
    assert_eq!(r.timezone_name(), "Europe/Paris");
    assert_eq!(r.input_timeout, Duration::from_secs(4));
    assert_eq!(r.lockout_failures, 3);
    assert_eq!(r.lockout_window, Duration::from_secs(60));
    assert_eq!(r.lockout, Duration::from_secs(120));

    let cases: &[(&str, &str)] = &[
        (
            "[retrieval]\ntimezone = \"Mars/Olympus\"\n",
            "retrieval.timezone",
        ),
        ("[retrieval]\npilots = []\n", "retrieval.pilots"),
        (
            "[retrieval]\npilots = [\"*97\", \"a b\"]\n",
            "retrieval.pilots[1]",
        ),
        (
            "[retrieval]\npilots = [\"*97\", \"*97\"]\n",
            "retrieval.pilots[1]",
        ),
        (
            "[retrieval]\nask_mailbox_pilots = [\"*99\"]\n",
            "retrieval.ask_mailbox_pilots",
        ),
        (
            "[retrieval]\npilots = [\"*97\"]\n",
            "retrieval.ask_mailbox_pilots",
        ),
        ("[retrieval]\nlanguage = \"../en\"\n", "retrieval.language"),
        ("[retrieval]\nprompts_dir = \"\"\n", "retrieval.prompts_dir"),
        (
            "[retrieval]\ninput_timeout_s = 0\n",
            "retrieval.input_timeout_s",
        ),
        (
            "[retrieval]\nlockout_failures = 0\n",
            "retrieval.lockout_failures",
        ),
        ("[retrieval]\nlockout_s = 86401\n", "retrieval.lockout_s"),
        ("[retrieval]\ncolour = 1\n", "retrieval.colour"),
    ];
    for (text, key) in cases {
        let e = errors(text);
        assert!(
            e.0.iter().any(|err| err.key == *key),
            "{text:?}: expected an error at {key}, got {e}"
        );
    }
}

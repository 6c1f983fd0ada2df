use super::*;

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn minimal() -> String {
    format!(
        r#"[cluster]
name = "prod"
members = [
  {{ name = "cp-1", endpoint = "http://127.0.0.1:12379" }},
  {{ name = "cp-2", endpoint = "http://127.0.0.1:22379" }},
  {{ name = "cp-3", endpoint = "http://127.0.0.1:32379" }},
]

[snapshot]
dir = "/var/lib/vigil/snapshots"
keep_last = 5
age_recipients = ["{RECIPIENT}"]

[state]
dir = "/var/lib/vigil/state"

[[alert.channel]]
name = "ops-slack"
kind = "slack"
webhook_url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
"#
    )
}

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::parse(s, Path::new("/etc/vigil/vigil.toml"))
}

#[test]
fn contract_minimal_config_parses() {
    let c = parse(&minimal()).unwrap();
    assert_eq!(c.cluster_name(), "prod");
    assert_eq!(c.members().count(), 3);
    let s = c.snapshot("test").unwrap();
    assert_eq!(s.keep_last, 5);
    assert_eq!(s.zstd_level, 1);
    assert_eq!(s.recipients.len(), 1);
    assert!(!c.summary().contains("XXXXSECRET"));
    assert!(!format!("{c:?}").contains("XXXXSECRET"));
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = minimal().replace("keep_last = 5", "keep_last = 5\nkeep_lats = 3");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("keep_lats"), "{e}");
    assert!(e.starts_with("/etc/vigil/vigil.toml:12:"), "{e}");
}

#[test]
fn missing_endpoint_is_named() {
    let text = minimal().replace(r#", endpoint = "http://127.0.0.1:22379""#, "");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("endpoint") && e.contains(":5:"), "{e}");
}

#[test]
fn bad_recipient_is_named_and_private_key_not_echoed() {
    let text = minimal().replace(RECIPIENT, "age1notakey");
    let e = parse(&text).unwrap_err().to_string();
    assert!(
        e.contains("snapshot.age_recipients[0]") && e.contains(":12:"),
        "{e}"
    );
    let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    let e = parse(&minimal().replace(RECIPIENT, secret))
        .unwrap_err()
        .to_string();
    assert!(e.contains("PRIVATE") && !e.contains(secret), "{e}");
}

#[test]
fn validation_errors() {
    let cases = [
        ("keep_last = 5", "keep_last = 0", "snapshot.keep_last"),
        (
            "http://127.0.0.1:12379",
            "127.0.0.1:12379",
            "cluster.members[0].endpoint",
        ),
        (
            "http://127.0.0.1:22379",
            "http://127.0.0.1:12379",
            "duplicate endpoint",
        ),
        (
            "name = \"cp-2\"",
            "name = \"cp-1\"",
            "duplicate member name",
        ),
        (
            "http://127.0.0.1:32379",
            "https://127.0.0.1:32379",
            "[cluster.tls] is missing",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\nzstd_level = 42",
            "snapshot.zstd_level",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\ntimeout = \"soon\"",
            "invalid duration",
        ),
        ("name = \"prod\"", "name = \"prod/../x\"", "cluster.name"),
        ("kind = \"slack\"", "kind = \"pager\"", "unknown variant"),
        (
            "keep_last = 5",
            "keep_last = 5\nmax_concurrent_members = 0",
            ":12: key `snapshot.max_concurrent_members`: 0 is out of range 1..=3",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\nmax_concurrent_members = 4",
            "snapshot.max_concurrent_members",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\nrate_limit = \"100KiB\"",
            ":12: key `snapshot.rate_limit`: must be at least \"1MiB\"",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\ndefer_retry = \"0s\"",
            "snapshot.defer_retry",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\nprove_restore = { timeout = \"0s\" }",
            ":12: key `snapshot.prove_restore.timeout`: must be more than 0s",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\nprove_restore = { dir = \"shm\" }",
            "key `snapshot.prove_restore.dir`: must be an absolute path",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\nprove_restore = { sample_keys = 20000 }",
            "snapshot.prove_restore.sample_keys",
        ),
        (
            "keep_last = 5",
            "keep_last = 5\nprove_restore = { enable = false }",
            "unknown field `enable`",
        ),
    ];
    for (from, to, want) in cases {
        let text = minimal().replacen(from, to, 1);
        let e = parse(&text).expect_err(to).to_string();
        assert!(e.contains(want), "{to}: {e}");
        assert!(!e.contains("XXXXSECRET"), "{e}");
    }
}

#[test]
fn encryption_none_needs_no_recipients() {
    let text = minimal().replace(
        &format!("age_recipients = [\"{RECIPIENT}\"]"),
        "encryption = \"none\"",
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.snapshot("t").unwrap().encryption, Encryption::None);
    let text = minimal().replace(&format!("age_recipients = [\"{RECIPIENT}\"]"), "");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("at least one recipient"), "{e}");
}

#[test]
fn secret_files_are_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("slack");
    std::fs::write(&f, "https://hooks.slack.com/services/FILESECRET\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = minimal().replace(
        "webhook_url = \"https://hooks.slack.com/services/T000/B000/XXXXSECRET\"",
        &format!("webhook_url_file = \"{}\"", f.display()),
    );
    let e = parse(&text).unwrap_err().to_string();
    assert!(
        e.contains("alert.channel[0].webhook_url_file") && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = parse(&text).unwrap();
    let crate::config::ChannelSettings::Slack(ch) = &c.alert.channel[0].settings else {
        panic!("not a slack channel");
    };
    assert_eq!(
        ch.webhook.expose(),
        "https://hooks.slack.com/services/FILESECRET"
    );
}

#[test]
fn restore_section_and_peer_urls() {
    let c = parse(&minimal()).unwrap();
    let m: Vec<_> = c.members().collect();
    assert_eq!(m[0].peer_url(), "http://127.0.0.1:2380");
    assert_eq!(c.restore().etcd_bin, PathBuf::from("etcd"));
    let text = minimal()
        .replace(
            r#"endpoint = "http://127.0.0.1:12379" }"#,
            r#"endpoint = "http://127.0.0.1:12379", peer_url = "http://127.0.0.1:12380" }"#,
        )
        .replace(
            "[state]",
            "[restore]\ndrill_sample_keys = 3\nssh = [\"ssh\", \"root@{host}\"]\n\n[state]",
        );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.members().next().unwrap().peer_url(),
        "http://127.0.0.1:12380"
    );
    assert_eq!(c.restore().drill_sample_keys, 3);
    for (from, to, want) in [
        (
            "drill_sample_keys = 3",
            "drill_sampel_keys = 3",
            "drill_sampel_keys",
        ),
        (
            "ssh = [\"ssh\", \"root@{host}\"]",
            "ssh = [\"ssh\"]",
            "restore.ssh",
        ),
        (
            "drill_sample_keys = 3",
            "drill_timeout = \"1s\"",
            "restore.drill_timeout",
        ),
        (
            "peer_url = \"http://127.0.0.1:12380\"",
            "peer_url = \"127.0.0.1:12380\"",
            "cluster.members[0].peer_url",
        ),
        (
            "drill_sample_keys = 3",
            "drill_identity_file = \"/nonexistent/drill.txt\"",
            "restore.drill_identity_file",
        ),
    ] {
        let e = parse(&text.replacen(from, to, 1))
            .expect_err(to)
            .to_string();
        assert!(
            e.contains(want) && e.starts_with("/etc/vigil/vigil.toml:"),
            "{to}: {e}"
        );
    }
}

#[test]
fn influxdb_section() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("influx-token");
    std::fs::write(&tok, "T0KENSECRET\n").unwrap();
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with = |s: &str| {
        format!("{}\n[metrics]\nline_protocol_dir = \"/var/lib/vigil/influx\"\n\n[metrics.influxdb]\n{s}\n", minimal())
    };
    let c = parse(&with(&format!(
        "url = \"https://influx.example:8086\"\norg = \"ops\"\nbucket = \"vigil\"\ntoken_file = \"{}\"",
        tok.display()
    )))
    .unwrap();
    let i = c.metrics.influxdb.as_ref().unwrap();
    assert_eq!(i.api(), InfluxApi::V2);
    assert_eq!(i.secret.as_ref().unwrap().expose(), "T0KENSECRET");
    assert_eq!(i.timeout.get(), std::time::Duration::from_secs(5));
    assert!(!format!("{c:?}").contains("T0KENSECRET"));
    let c = parse(&with(
        "url = \"http://127.0.0.1:8086\"\ndatabase = \"vigil\"",
    ))
    .unwrap();
    assert_eq!(c.metrics.influxdb.unwrap().api(), InfluxApi::V1);
    for (bad, key, says) in [
        ("url = \"influx:8086\"\ndatabase = \"v\"", "metrics.influxdb.url", "http://"),
        (
            "url = \"http://u:pw@h:8086\"\ndatabase = \"v\"",
            "metrics.influxdb.url",
            "must not carry credentials",
        ),
        ("url = \"http://h:8086\"", "metrics.influxdb.database", "org, bucket"),
        (
            "url = \"http://h:8086\"\ndatabase = \"v\"\norg = \"o\"",
            "metrics.influxdb.database",
            "not keys of both",
        ),
        (
            "url = \"http://h:8086\"\norg = \"o\"\nbucket = \"b\"",
            "metrics.influxdb.token_file",
            "needs a token",
        ),
        (
            "url = \"http://h:8086\"\ndatabase = \"v\"\nusername = \"u\"",
            "metrics.influxdb.password_file",
            "password_file",
        ),
        (
            "url = \"http://h:8086\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"/nonexistent/tok\"",
            "metrics.influxdb.token_file",
            "/nonexistent/tok",
        ),
        (
            "url = \"http://h:8086\"\ndatabase = \"v\"\ntimeout = \"0s\"",
            "metrics.influxdb.timeout",
            "more than 0s",
        ),
    ] {
        let e = parse(&with(bad)).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(says), "{bad}: {e}");
        assert!(!e.contains(":pw@"), "{e}");
    }
    let e = parse(&format!(
        "{}\n[metrics]\nline_protocol_dir = \"rel\"\n",
        minimal()
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("metrics.line_protocol_dir"), "{e}");
}

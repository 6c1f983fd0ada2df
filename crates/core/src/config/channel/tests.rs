use crate::config::{ChannelKind, ChannelSettings, Config};
use std::path::Path;

const HEAD: &str = r#"[cluster]
name = "prod"
members = [{ name = "cp-1", endpoint = "http://127.0.0.1:12379" }]

[state]
dir = "/var/lib/vigil/state"
"#;

fn parse(channels: &str) -> Result<Config, String> {
    Config::parse(
        &format!("{HEAD}{channels}"),
        Path::new("/etc/vigil/vigil.toml"),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn each_kind_resolves_to_its_settings() {
    let c = parse(
        r#"
[[alert.channel]]
name = "s"
kind = "slack"
webhook_url = "https://hooks.example.org/S"
[[alert.channel]]
name = "t"
kind = "teams"
webhook_url = "https://teams.example.org/T"
teams_format = "messagecard"
[[alert.channel]]
name = "m"
kind = "email"
smtp_host = "127.0.0.1"
from = "vigil@example.org"
to = ["ops@example.org"]
[[alert.channel]]
name = "a"
kind = "alertmanager"
url = "http://127.0.0.1:9093/"
timeout = "3s"
[[alert.channel]]
name = "f"
kind = "file"
path = "/tmp/alerts.jsonl"
"#,
    )
    .unwrap();
    let kinds: Vec<ChannelKind> = c.alert.channel.iter().map(|c| c.kind()).collect();
    assert_eq!(kinds, ChannelKind::ALL);
    assert!(matches!(
        &c.alert.channel[1].settings,
        ChannelSettings::Teams(t) if t.format == super::teams::TeamsFormat::MessageCard
    ));
    match &c.alert.channel[3].settings {
        ChannelSettings::Alertmanager(a) => {
            assert_eq!(a.resend_interval, super::alertmanager::DEFAULT_RESEND);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.alert.channel[3].timeout.as_secs(), 3);
    assert_eq!(c.alert.channel[0].timeout, super::DEFAULT_TIMEOUT);
}

#[test]
fn a_key_of_another_kind_names_the_kinds_it_is_for() {
    let e = parse("[[alert.channel]]\nname = \"f\"\nkind = \"file\"\npath = \"/tmp/x\"\nsmtp_tls = \"none\"\n")
        .unwrap_err();
    assert_eq!(
        e,
        "/etc/vigil/vigil.toml:11: key `alert.channel[0].smtp_tls`: does not apply to kind File: only for kind \"email\""
    );
    let e = parse("[[alert.channel]]\nname = \"m\"\nkind = \"email\"\nwebhook_url = \"https://x.example.org/y\"\n")
        .unwrap_err();
    assert!(
        e.ends_with(
            "key `alert.channel[0].webhook_url`: does not apply to kind Email: only for kind \"slack\" or \"teams\""
        ),
        "{e}"
    );
    // Not echoed: the URL is a secret.
    assert!(!e.contains("x.example.org"), "{e}");
}

#[test]
fn unknown_keys_and_bad_values_name_their_line() {
    let e =
        parse("[[alert.channel]]\nname = \"f\"\nkind = \"file\"\ncolour = \"red\"\n").unwrap_err();
    assert!(
        e.starts_with(
            "/etc/vigil/vigil.toml:10: key `alert.channel[0].colour`: unknown field `colour`"
        ),
        "{e}"
    );
    assert!(e.contains("`webhook_url`") && e.contains("`path`"), "{e}");
    // A kind's own key with a wrong type: read in the second step, same line and key.
    let e = parse("[[alert.channel]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"h\"\nfrom = \"a@b\"\nto = \"ops@example.org\"\n")
        .unwrap_err();
    assert!(
        e.starts_with("/etc/vigil/vigil.toml:12: key `alert.channel[0].to`: invalid type"),
        "{e}"
    );
    let e = parse("[[alert.channel]]\nname = \"a\"\nkind = \"alertmanager\"\nurl = \"http://h:9093\"\nresend_interval = \"5s\"\n")
        .unwrap_err();
    assert!(
        e.starts_with("/etc/vigil/vigil.toml:11: key `alert.channel[0].resend_interval`: only for kind \"alertmanager\", at least 10s"),
        "{e}"
    );
    let e = parse("[[alert.channel]]\nname = \"f\"\nkind = \"file\"\n").unwrap_err();
    assert!(
        e.ends_with("key `alert.channel[0].path`: required for kind File"),
        "{e}"
    );
}

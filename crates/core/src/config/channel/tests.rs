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

#[test]
fn alertmanager_takes_a_list_of_peers_and_auth() {
    use super::alertmanager::AmAuth;
    let am = |body: &str| -> Result<super::AlertmanagerChannel, String> {
        let c = parse(&format!(
            "[[alert.channel]]\nname = \"am\"\nkind = \"alertmanager\"\n{body}"
        ))?;
        match &c.alert.channel[0].settings {
            ChannelSettings::Alertmanager(a) => Ok(a.clone()),
            other => panic!("{other:?}"),
        }
    };
    // `url` keeps working: one peer.
    let a = am("url = \"http://127.0.0.1:9093\"\n").unwrap();
    assert_eq!(a.urls, vec!["http://127.0.0.1:9093"]);
    assert_eq!(a.auth, AmAuth::None);
    assert_eq!(a.generator_url, None);
    let a = am("urls = [\"http://am-1:9093\", \"https://am-2:9093\"]\nusername = \"vigil\"\npassword = \"pw-SECRET\"\ngenerator_url = \"https://grafana.example.org/d/vigil-overview\"\n").unwrap();
    assert_eq!(a.urls.len(), 2);
    match &a.auth {
        AmAuth::Basic { username, password } => {
            assert_eq!(
                (username.as_str(), password.expose()),
                ("vigil", "pw-SECRET")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.generator_url.as_deref(),
        Some("https://grafana.example.org/d/vigil-overview")
    );
    let a = am("url = \"http://h:9093\"\nbearer_token = \"tok-SECRET\"\n").unwrap();
    assert!(matches!(&a.auth, AmAuth::Bearer(t) if t.expose() == "tok-SECRET"));

    let e = am("url = \"http://h:9093\"\nurls = [\"http://h2:9093\"]\n").unwrap_err();
    assert!(
        e.contains("alert.channel[0].urls") && e.contains("not both"),
        "{e}"
    );
    let e = am("resend_interval = \"1m\"\n").unwrap_err();
    assert!(
        e.contains("alert.channel[0].url") && e.contains("urls for an HA cluster"),
        "{e}"
    );
    let e = am("urls = [\"http://h:9093\", \"h2:9093\"]\n").unwrap_err();
    assert!(
        e.contains("alert.channel[0].urls") && e.contains("\"h2:9093\""),
        "{e}"
    );
    let e = am("url = \"http://h:9093\"\nusername = \"u\"\npassword = \"p-SECRET\"\nbearer_token = \"t-SECRET\"\n").unwrap_err();
    assert!(e.contains("not both") && !e.contains("SECRET"), "{e}");
    let e = am("url = \"http://h:9093\"\npassword = \"p-SECRET\"\n").unwrap_err();
    assert!(
        e.contains("alert.channel[0].username") && !e.contains("SECRET"),
        "{e}"
    );
    let e = am("url = \"http://h:9093\"\nusername = \"u\"\n").unwrap_err();
    assert!(e.contains("password"), "{e}");
    let e = am("url = \"http://h:9093\"\ngenerator_url = \"bastion\"\n").unwrap_err();
    assert!(e.contains("alert.channel[0].generator_url"), "{e}");
}

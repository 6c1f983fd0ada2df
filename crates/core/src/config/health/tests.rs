#![allow(clippy::unwrap_used)]

use crate::Config;
use std::path::Path;

const BASE: &str = "[cluster]\nname = \"prod\"\nmembers = [{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }]\n\n[state]\ndir = \"/var/lib/vigil/state\"\n";

fn parse(extra: &str) -> Result<Config, String> {
    Config::parse(
        &format!("{BASE}{extra}"),
        Path::new("/etc/vigil/vigil.toml"),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn defaults_without_the_section() {
    let c = parse("").unwrap();
    assert_eq!(c.health.etcd.db_quota.0, 2 << 30);
    assert_eq!(c.health.certs.warn.get().as_secs(), 30 * 86400);
    assert_eq!(c.health.etcd_timeout().as_secs(), 5);
    assert!(c.health.kubernetes.is_none() && c.health.node.is_none());
}

#[test]
fn full_section_parses() {
    let c = parse(
        r#"
[health]
timeout = "2s"

[health.etcd]
max_raft_lag = 50
db_quota = "8GiB"

[health.kubernetes]
lb = "https://10.0.0.10:6443"
masters = ["https://10.0.0.11:6443"]
probes = ["readyz"]
timeout = "3s"

[health.certs]
warn = "45d"
endpoints = ["ingress.example.com:443"]

[health.node]
targets = [{ name = "cp-1", url = "http://10.0.0.11:9100" }]

[health.freshness]
max_age = "12h"
drill_max_age = "8d"
"#,
    )
    .unwrap();
    assert_eq!(c.health.etcd.db_quota.0, 8 << 30);
    assert_eq!(c.health.kube_timeout().as_secs(), 3);
    assert_eq!(c.health.etcd_timeout().as_secs(), 2);
    assert_eq!(c.health.node.unwrap().targets[0].name, "cp-1");
}

#[test]
fn errors_name_key_and_line() {
    for (extra, want) in [
        ("[health.etcd]\nmax_raft_lgg = 5\n", "max_raft_lgg"),
        (
            "[health.etcd]\ndb_size_warn_percent = 95\n",
            "health.etcd.db_size_warn_percent",
        ),
        (
            "[health.kubernetes]\nprobes = [\"readyz\"]\n",
            "health.kubernetes",
        ),
        (
            "[health.kubernetes]\nlb = \"10.0.0.10:6443\"\n",
            "health.kubernetes.lb",
        ),
        (
            "[health.kubernetes]\nlb = \"https://x:6443\"\ntoken_file = \"/nonexistent/token\"\n",
            "health.kubernetes.token_file",
        ),
        (
            "[health.certs]\ncritical = \"60d\"\n",
            "health.certs.critical",
        ),
        ("[health.node]\nfs_free_warn_percent = 10\n", "health.node"),
        (
            "[health.node]\nport = 9100\nfs_free_critical_percent = 50\n",
            "health.node.fs_free_critical_percent",
        ),
        ("[health]\ntimeout = \"1ms\"\n", "health.timeout"),
        (
            "[health.freshness]\nmax_age = \"10s\"\n",
            "health.freshness.max_age",
        ),
    ] {
        let e = parse(extra).expect_err(extra);
        assert!(e.contains(want), "{extra}: {e}");
        assert!(e.starts_with("/etc/vigil/vigil.toml:"), "{e}");
        assert!(!e.contains(":?:"), "no line in {e}");
    }
}

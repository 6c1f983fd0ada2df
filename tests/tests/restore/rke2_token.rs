//! Issue #15 point 2: the RKE2 token is proven against the snapshot's
//! bootstrap data, at snapshot time and before an RKE2 restore touches a node.
//!
//! The cluster holds a real k3s-format bootstrap entry. Its value is a
//! known-answer vector computed outside vigil (python3's `hashlib.pbkdf2_hmac`
//! and `cryptography`'s AESGCM, following k3s `pkg/cluster/encrypt.go`), so
//! the test does not only check vigil's code against itself.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use vigil_tests::etcd::Cluster;
use vigil_tests::faults::{file_channel, fired};
use vigil_tests::{age_key, stand_in, text, vigil, ConfigBuilder};

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

/// The k3s server password the entry is sealed with, and its key hash
/// (`sha256("vigil-kat-password")[..12 hex]`).
const PASSWORD: &str = "vigil-kat-password";
const HASH: &str = "3d4b4fca8c37";
/// salt "0123456789abcdef", nonce 00..0b, plaintext a bootstrap JSON.
const SEALED: &str = "0123456789abcdef:AAECAwQFBgcICQoL5PRIXU9ORVFWXdVkZLw+Ag/nqj0XAcNMMrK0nkPlvMQ/xIr24RIgDNxajouFKhqzHC4P93Kml8O58TyI9UN97+ZE9KKIjPU71VBDWS80174e+w==";
/// A token that is not the one the entry is sealed with (as after a rotation).
const ROTATED: &str = "rotated-password";
const CA_HASH: &str = "0f3a6c7e1b2d4f5a69788796a5b4c3d2e1f00112233445566778899aabbccdde";

fn full_token(password: &str) -> String {
    format!("K10{CA_HASH}::server:{password}\n")
}

fn sha12(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))[..12].to_string()
}

fn put(cluster: &Cluster, key: &str, value: &str) {
    let rt = Cluster::runtime();
    rt.block_on(async {
        let mut c = cluster.client(0).await;
        c.put(key, value, None).await.unwrap();
    });
}

fn delete(cluster: &Cluster, key: &str) {
    let rt = Cluster::runtime();
    rt.block_on(async {
        let mut c = cluster.client(0).await;
        c.delete(key, None).await.unwrap();
    });
}

fn restore(cfg: &Path, args: &[&str]) -> Output {
    // `output()` gives the child no stdin: never a terminal, so no question.
    vigil("vigil-restore", cfg, args)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

#[test]
fn the_rke2_token_is_proven_against_the_snapshots_bootstrap_entry() {
    assert_eq!(sha12(PASSWORD), HASH);
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    // Enough history for a bbolt tree with branch and overflow pages, an
    // older value of the entry, and a deleted entry (a tombstone): the
    // restore's reader must take each key's newest revision.
    put(
        &cluster,
        &format!("/bootstrap/{HASH}"),
        "0123:an-older-value",
    );
    put(&cluster, "/bootstrap/000000000000", "0123:deleted");
    cluster.put_many("/registry/configmaps/", 3000, 300, false, 7);
    put(&cluster, "/registry/secrets/big", &"x".repeat(40_000));
    delete(&cluster, "/bootstrap/000000000000");
    put(&cluster, &format!("/bootstrap/{HASH}"), SEALED);
    let key = age_key(t.path());
    let alerts = t.path().join("alerts.jsonl");
    let token = t.path().join("server-token");
    std::fs::write(&token, full_token(PASSWORD)).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();

    let bindir = t.path().join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    let log = t.path().join("calls.log");
    let rke2 = stand_in(&bindir, "rke2", &log, false);
    let systemctl = stand_in(&bindir, "systemctl", &log, false);
    let ssh = stand_in(&bindir, "ssh", &log, false);
    let data = t.path().join("rke2");
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = format!("rke2_token_file = \"{}\"\n", token.display());
    cb.extra = format!(
        "\n[restore]\nrke2_bin = \"{}\"\nsystemctl_bin = \"{}\"\nrke2_data_dir = \"{}\"\nssh = [\"{}\", \"root@{{host}}\"]\n{}",
        rke2.display(),
        systemctl.display(),
        data.display(),
        ssh.display(),
        file_channel(&alerts)
    );
    let cfg = cb.write("vigil.toml");

    // The right token, in the full K10 form: the run says it opens the entry.
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["rke2_token"]["ok"], true, "{r}");
    assert_eq!(r["rke2_token"]["bootstrap"]["ok"], true, "{r}");
    assert_eq!(
        r["rke2_token"]["bootstrap"]["key"],
        format!("/bootstrap/{HASH}"),
        "{r}"
    );
    let f = fired(&cfg, &alerts);
    assert!(f.is_empty(), "{f:?}");

    // Rotated on the cluster, not on the bastion: the run fails and a human
    // hears about it today, with both hashes named and no token text.
    std::fs::write(&token, full_token(ROTATED)).unwrap();
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = json(&out);
    // The token is still archived (it is this bastion's only copy).
    assert_eq!(r["rke2_token"]["ok"], true, "{r}");
    assert_eq!(r["rke2_token"]["bootstrap"]["ok"], false, "{r}");
    let msg = r["rke2_token"]["bootstrap"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains(HASH) && msg.contains(&sha12(ROTATED)), "{msg}");
    assert!(!text(&out).contains(ROTATED) && !text(&out).contains(PASSWORD));
    // Nothing verified is lost: the members' archives still count.
    assert!(
        r["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["ok"] == true),
        "{r}"
    );
    let f = fired(&cfg, &alerts);
    assert!(f.contains(&"rke2_token_mismatch".to_string()), "{f:?}");
    assert!(
        !f.contains(&"rke2_token_archive_failed".to_string()),
        "{f:?}"
    );
    let alert_text = std::fs::read_to_string(&alerts).unwrap();
    assert!(alert_text.contains(HASH), "{alert_text}");
    assert!(!alert_text.contains(ROTATED) && !alert_text.contains(PASSWORD));

    // The RKE2 restore with the rotated token on this node refuses after the
    // fetch and before any server is stopped (no stand-in runs).
    let token_file = data.join("server/token");
    std::fs::create_dir_all(token_file.parent().unwrap()).unwrap();
    std::fs::write(&token_file, full_token(ROTATED)).unwrap();
    let args = [
        "rke2",
        "--execute",
        "--yes",
        "--identity",
        key.identity_file.to_str().unwrap(),
    ];
    let out = restore(&cfg, &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !log.exists(),
        "a node was touched: {:?}",
        std::fs::read_to_string(&log)
    );
    let m = text(&out);
    assert!(m.contains(HASH) && m.contains(&sha12(ROTATED)), "{m}");
    assert!(!m.contains("000000000000"), "a deleted entry was read: {m}");
    assert!(m.contains("server/token"), "{m}");
    assert!(!m.contains(ROTATED) && !m.contains(PASSWORD), "{m}");
    // The refused snapshot's plaintext is not left on the node.
    let left: Vec<_> = std::fs::read_dir(data.join("server/db/snapshots"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // New hosts (--restore-token): the archived token is the one proven;
    // the bastion archived the rotated one, so this refuses too, and writes
    // no token onto the node.
    std::fs::remove_file(&token_file).unwrap();
    let mut new_hosts = args.to_vec();
    new_hosts.push("--restore-token");
    let out = restore(&cfg, &new_hosts);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let m = text(&out);
    assert!(
        m.contains("archived server token") && m.contains(HASH),
        "{m}"
    );
    assert!(!log.exists(), "a node was touched");
    assert!(!token_file.exists());

    // The right password, bare (normalised like k3s does): the restore goes
    // on and runs its steps.
    std::fs::write(&token_file, format!("{PASSWORD}\n")).unwrap();
    let out = restore(&cfg, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("--cluster-reset"), "{calls}");

    // The bastion gets the current token: the next run proves it and the
    // alarm is resolved.
    std::fs::write(&token, full_token(PASSWORD)).unwrap();
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    vigil_tests::notify_once(&cfg);
    let resolved = vigil_tests::alert_items(&alerts)
        .iter()
        .any(|i| i["event"] == "resolved" && i["alert"]["key"] == "rke2_token_mismatch");
    assert!(resolved, "rke2_token_mismatch was not resolved");

    // An etcd without /bootstrap (plain etcd, or k3s on an external
    // datastore): a clear note, no alarm, the run succeeds.
    delete(&cluster, &format!("/bootstrap/{HASH}"));
    let before = fired(&cfg, &alerts).len();
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert!(r["rke2_token"]["bootstrap"].is_null(), "{r}");
    let w = r["warnings"].to_string();
    assert!(w.contains("no /bootstrap/"), "{w}");
    let f = fired(&cfg, &alerts);
    assert_eq!(f.len(), before, "a false alarm: {f:?}");
}

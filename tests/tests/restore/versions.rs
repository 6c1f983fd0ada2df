//! Issue #15 point 4: restore and drill report the etcd tools they used, and
//! say so plainly when those are not of the snapshot's etcd major.minor.
//!
//! The cluster is Debian's etcd 3.4.23. Another version is shown with
//! wrappers that report 3.5.9 on `--version` / `version` and run the real
//! 3.4 binaries otherwise.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use vigil_tests::etcd::Cluster;
use vigil_tests::{age_key, text, vigil, ConfigBuilder};

fn restore(cfg: &Path, args: &[&str]) -> Output {
    // `output()` gives the child no stdin: never a terminal, so no question.
    vigil("vigil-restore", cfg, args)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn script(p: &Path, body: &str) -> PathBuf {
    std::fs::write(p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_path_buf()
}

/// `etcd` and `etcdctl` that claim to be 3.5.9 and are the real 3.4 otherwise.
fn wrappers(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let etcd = script(
        &dir.join("etcd"),
        "if [ \"$1\" = --version ]; then printf 'etcd Version: 3.5.9\\nGit SHA: fake\\n'; exit 0; fi\nexec /usr/bin/etcd \"$@\"\n",
    );
    let etcdctl = script(
        &dir.join("etcdctl"),
        "if [ \"$1\" = version ]; then printf 'etcdctl version: 3.5.9\\nAPI version: 3.5\\n'; exit 0; fi\nexec /usr/bin/etcdctl \"$@\"\n",
    );
    format!(
        "etcd_bin = \"{}\"\netcdctl_bin = \"{}\"\netcdutl_bin = \"{}\"\n",
        etcd.display(),
        etcdctl.display(),
        dir.join("no-etcdutl").display()
    )
}

/// `vigil-restore etcd` with etcdctl 3.4, unbumped (`--no-bump`: the bump is
/// tested in restore.rs).
fn etcd_restore(cfg: &Path, id: &str, dir: &Path, json: bool) -> Output {
    let mut a = vec![
        "etcd",
        "-i",
        id,
        "--out",
        dir.to_str().unwrap(),
        "--skip-port-check",
        "--no-bump",
    ];
    if json {
        a.push("--json");
    }
    restore(cfg, &a)
}

#[test]
fn restore_and_drill_report_their_etcd_and_say_when_it_is_not_the_snapshots() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&t.path().join("orig"), &["cp-1"], None);
    cluster.put_many("/registry/configmaps/", 40, 100, false, 3);
    let key = age_key(t.path());
    std::fs::set_permissions(&key.identity_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    let base = format!(
        "\n[restore]\ndrill_identity_file = \"{}\"\nscratch_dir = \"{}\"\netcdutl_bin = \"{}\"\n",
        key.identity_file.display(),
        t.path().join("scratch").display(),
        t.path().join("no-etcdutl").display()
    );
    cb.extra = base.clone();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = key.identity_file.to_str().unwrap();

    // The normal case: Debian's 3.4 tools on a 3.4 snapshot, reported, no note.
    let out = restore(&cfg, &["drill", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    let m = &r["members"][0];
    assert_eq!(m["ok"], true, "{r}");
    assert_eq!(m["snapshot_etcd_version"], "3.4.23", "{r}");
    assert_eq!(m["etcd_version"], "3.4.23", "{r}");
    assert_eq!(m["tool"], "etcdctl 3.4.23", "{r}");
    assert!(m["version_note"].is_null(), "{r}");
    let out = restore(&cfg, &["drill"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        human.contains("etcd 3.4.23") && human.contains("etcdctl 3.4.23"),
        "{human}"
    );
    assert!(!text(&out).contains("proves less"), "{}", text(&out));

    let dir = t.path().join("restored");
    let out = etcd_restore(&cfg, id, &dir, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["tool"]["version"], "3.4.23", "{r}");
    assert_eq!(r["tool"]["kind"], "etcdctl", "{r}");
    assert_eq!(r["snapshot_etcd_version"], "3.4.23", "{r}");
    assert!(
        r["notes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !n.as_str().unwrap().contains("snapshot")),
        "{r}"
    );
    assert!(!text(&out).contains("3.4 snapshot"), "{}", text(&out));

    // Tools of another version: the drill still passes and says it proves less.
    cb.extra = format!("{base}{}", wrappers(&t.path().join("bin"))).replace(
        &format!(
            "etcdutl_bin = \"{}\"\n",
            t.path().join("no-etcdutl").display()
        ),
        "",
    );
    let cfg = cb.write("vigil.toml");
    let out = restore(&cfg, &["drill", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    let m = &r["members"][0];
    assert_eq!(m["ok"], true, "{r}");
    assert_eq!(m["etcd_version"], "3.5.9", "{r}");
    assert_eq!(m["tool"], "etcdctl 3.5.9", "{r}");
    let note = m["version_note"].as_str().unwrap_or_default();
    assert!(
        note.contains("drill ran etcd 3.5 against a 3.4 snapshot: it proves less")
            && note.contains("restore.etcd_bin"),
        "{r}"
    );
    let out = restore(&cfg, &["drill"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        human.contains("drill ran etcd 3.5 against a 3.4 snapshot: it proves less"),
        "{human}"
    );

    // The restore warns, and the report carries the note.
    let dir = t.path().join("restored-3.5");
    let out = etcd_restore(&cfg, id, &dir, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["tool"]["version"], "3.5.9", "{r}");
    assert_eq!(r["etcd_version"], "3.5.9", "{r}");
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("etcdctl 3.5.9") && notes.contains("3.4 snapshot"),
        "{r}"
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("WARN") && err.contains("3.4 snapshot"),
        "{err}"
    );
    let dir = t.path().join("restored-3.5-human");
    let out = etcd_restore(&cfg, id, &dir, false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        human.contains("with etcdctl 3.5.9")
            && human.contains("note: ")
            && human.contains("3.4 snapshot"),
        "{human}"
    );
}

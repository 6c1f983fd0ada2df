//! Issue #15 point 3: `vigil-restore etcd` sizes the revision bump from the
//! newest revision vigil-health and vigil-snapshot saw, passes it to an
//! etcdutl that can bump (3.5.10+), replays it through a scratch etcd with a
//! tool that cannot (etcdctl 3.4, etcdutl 3.5.9), and refuses, before
//! anything is written, when there is no evidence to size a replay, unless
//! --no-bump.
//!
//! Only Debian's etcd 3.4.23 is on this machine: the etcdutl here are
//! stand-in scripts that report a version and record their arguments. The
//! replayed bump on real etcd, with a watch from a pre-restore revision
//! failing as compacted, is in restore.rs.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use vigil_tests::etcd::Cluster;
use vigil_tests::{age_key, text, vigil, ConfigBuilder};

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

/// An `etcdutl` that reports `version` and, on `snapshot restore`, appends
/// its arguments to `log` and creates the --data-dir.
fn fake_etcdutl(dir: &Path, version: &str, log: &Path) -> PathBuf {
    let p = dir.join(format!("etcdutl-{version}"));
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = version ]; then printf 'etcdutl version: {version}\\nAPI version: 3.5\\n'; exit 0; fi\n\
             echo \"$@\" >> '{}'\n\
             while [ $# -gt 0 ]; do if [ \"$1\" = --data-dir ]; then mkdir -p \"$2\"; fi; shift; done\n\
             exit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn config(t: &Path, cluster: &Cluster, recipient: &str, restore: &str) -> PathBuf {
    let mut cb = ConfigBuilder::new(t, cluster.config_members(), recipient);
    cb.extra = format!("\n[restore]\n{restore}");
    cb.write(&format!("vigil-{}.toml", vigil_tests::free_port()))
}

fn seen(t: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(t.join("state/revision-seen.json")).unwrap()).unwrap()
}

#[test]
fn the_bump_is_sized_from_the_revisions_seen_and_replayed_or_refused_for_a_tool_that_cannot_bump() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 50, 100, false, 1);
    let key = age_key(t.path());
    let id = key.identity_file.to_str().unwrap().to_string();
    let log = t.path().join("etcdutl.log");
    let new = fake_etcdutl(t.path(), "3.5.12", &log);
    let old = fake_etcdutl(t.path(), "3.5.9", &log);

    let cfg = config(t.path(), &cluster, &key.recipient, "");
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap_rev = cluster.dump(0).0;
    // The cluster goes on after the snapshot; health sees it.
    for i in 0..4 {
        cluster.put_many(&format!("/registry/pods/ns{i}/"), 40, 50, false, 10 + i);
    }
    vigil("vigil-health", &cfg, &["run", "--json", "--no-alert"]);
    let s = seen(t.path());
    let newest = s["revision"].as_i64().unwrap();
    assert!(newest > snap_rev, "{s}");
    let behind = (newest - snap_rev) as u64;
    let want = behind + 1000;

    let restore = |cfg: &Path, dir: &str, extra: &[&str]| {
        let target = t.path().join(dir);
        let mut args = vec![
            "etcd",
            "-i",
            id.as_str(),
            "--out",
            target.to_str().unwrap(),
            "--skip-port-check",
        ];
        args.extend_from_slice(extra);
        (vigil("vigil-restore", cfg, &args), target)
    };

    // etcdutl 3.5.12, no floor: the evidence sizes the bump.
    let cfg = config(
        t.path(),
        &cluster,
        &key.recipient,
        &format!("etcdutl_bin = \"{}\"\nbump_revision = 0\n", new.display()),
    );
    let (out, target) = restore(&cfg, "r-3.5.12", &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 3, "{calls}");
    for l in calls.lines() {
        assert!(
            l.starts_with("snapshot restore ")
                && l.contains(&format!(" --bump-revision {want} --mark-compacted")),
            "{l}"
        );
    }
    assert_eq!(r["bumped_revision"], want);
    let b = &r["bump"];
    assert_eq!(b["applied"], true);
    assert_eq!(b["size"], want);
    assert_eq!(b["behind"], behind);
    assert_eq!(b["margin"], 1000);
    assert_eq!(b["floor"], 0);
    assert_eq!(b["sized_by"], "evidence");
    assert_eq!(b["snapshot_revision"], snap_rev);
    assert_eq!(b["evidence"]["revision"], newest);
    assert_eq!(b["evidence"]["member"], s["member"]);
    assert_eq!(b["evidence"]["seen_at"], s["seen_at"]);
    assert_eq!(b["evidence"]["by"], "vigil-health");
    assert!(
        b["evidence"]["file"]
            .as_str()
            .unwrap()
            .ends_with("state/revision-seen.json"),
        "{b}"
    );
    assert!(target.join("cp-1").is_dir());
    // The human report says the same, with its origin.
    std::fs::remove_file(&log).unwrap();
    let (out, _) = restore(&cfg, "r-3.5.12-human", &[]);
    let h = text(&out);
    assert_eq!(out.status.code(), Some(0), "{h}");
    assert!(
        h.contains(&format!("--bump-revision {want} --mark-compacted"))
            && h.contains(&format!("newest revision seen {newest} on member"))
            && h.contains("revision-seen.json")
            && h.contains("kube-apiserver"),
        "{h}"
    );

    // The default floor (1000000000) is larger than the evidence: it wins.
    let cfg_floor = config(
        t.path(),
        &cluster,
        &key.recipient,
        &format!("etcdutl_bin = \"{}\"\n", new.display()),
    );
    std::fs::remove_file(&log).unwrap();
    let (out, _) = restore(&cfg_floor, "r-floor", &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&r["bump"]["size"], &r["bump"]["sized_by"]),
        (
            &serde_json::json!(1_000_000_000u64),
            &serde_json::json!("restore.bump_revision")
        )
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains(" --bump-revision 1000000000 --mark-compacted"));

    // Tools that cannot bump offline replay the bump through a scratch etcd,
    // sized by the evidence; without evidence they are refused, nothing run
    // or written, and told what to do.
    let seen_file = t.path().join("state/revision-seen.json");
    let seen_kept = std::fs::read(&seen_file).unwrap();
    let no_etcdutl = t.path().join("no-etcdutl");
    for (tool, restore_section, names) in [
        (
            "etcdutl 3.5.9",
            format!("etcdutl_bin = \"{}\"\nbump_revision = 0\n", old.display()),
            "etcdutl-3.5.9",
        ),
        (
            "etcdctl 3.4.",
            format!(
                "etcdutl_bin = \"{}\"\nbump_revision = 0\n",
                no_etcdutl.display()
            ),
            "etcdctl",
        ),
    ] {
        std::fs::remove_file(&log).ok();
        std::fs::remove_file(&seen_file).unwrap();
        let cfg = config(t.path(), &cluster, &key.recipient, &restore_section);
        let dir = format!("refused-{}", tool.replace(' ', "-"));
        let (out, target) = restore(&cfg, &dir, &[]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        for w in [
            tool,
            names,
            "cannot bump",
            "etcdutl 3.5.10 or newer",
            "no record of the newest revision seen",
            "--bump-revision 1000 ",
            "restore.etcdutl_bin",
            "--no-bump",
            "Nothing was run or written",
        ] {
            assert!(msg.contains(w), "{w:?} missing from: {msg}");
        }
        assert!(!log.exists(), "the tool ran");
        assert!(!target.exists(), "{} was created", target.display());
        std::fs::write(&seen_file, &seen_kept).unwrap();

        // --no-bump: restored as before, and the report says it is unbumped.
        let (out, target) = restore(&cfg, &format!("{dir}-no-bump"), &["--no-bump", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["bump"]["applied"], false);
        assert_eq!(r["bump"]["method"], "none");
        assert_eq!(r["bump"]["size"], want, "the size it should have had");
        assert!(r["bumped_revision"].is_null());
        assert!(target.join("cp-3").is_dir());
        let (out, _) = restore(&cfg, &format!("{dir}-no-bump-human"), &["--no-bump"]);
        let h = text(&out);
        assert!(
            h.contains("WITHOUT a revision bump (--no-bump)") && h.contains(&want.to_string()),
            "{h}"
        );

        // With the evidence: replayed. The stand-in 3.5.9 restores nothing,
        // which the replay sees before it writes, and leaves the target empty.
        let (out, target) = restore(&cfg, &format!("{dir}-replay"), &["--json"]);
        if names == "etcdctl" {
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["bump"]["method"], "replay");
            assert_eq!(r["bumped_revision"], want);
            assert_eq!(r["bump"]["replayed"]["to_revision"], snap_rev + want as i64);
            assert!(target.join("cp-3").is_dir());
        } else {
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(1), "{msg}");
            assert!(
                msg.contains("revision bump by replay")
                    && msg.contains("nothing was bumped")
                    && msg.contains(&format!("its manifest says revision {snap_rev}")),
                "{msg}"
            );
            assert_eq!(vigil_tests::all_files(&target), Vec::<String>::new());
        }
    }
}

#[test]
fn the_rke2_runbook_says_to_restart_the_apiservers_and_kubelets() {
    let t = tempfile::tempdir().unwrap();
    let key = age_key(t.path());
    let members = vec![("cp-1".to_string(), "http://10.0.0.11:2379".to_string())];
    let cfg = ConfigBuilder::new(t.path(), members, &key.recipient).write("vigil.toml");
    let out = vigil("vigil-restore", &cfg, &["rke2"]);
    let h = text(&out);
    assert!(
        h.contains("no revision bump")
            && h.contains("crictl ps -q --name kube-apiserver")
            && h.contains("systemctl restart rke2-agent"),
        "{h}"
    );
}

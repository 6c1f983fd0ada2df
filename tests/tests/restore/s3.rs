//! Disaster recovery from the S3 sink alone: the bastion's local archives
//! are gone too, and the cluster comes back from Ceph radosgw.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::ceph::{Rgw, ACCESS_KEY, SECRET_KEY};
use vigil_tests::etcd::{Cluster, Kv};
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

pub(crate) struct Procs(Vec<std::process::Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn restore_all_members_from_the_s3_sink() {
    let t = tempfile::tempdir().unwrap();
    let rgw = Rgw::start(&t.path().join("ceph"));
    rgw.make_bucket("etcd-backups");
    let mut cluster = Cluster::start(&t.path().join("orig"), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 300, 300, false, 31);
    cluster.put_many("/registry/secrets/default/", 40, 64, true, 32);
    let (rev, kvs) = cluster.dump(0);
    let key = age_key(t.path());
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.peers = cluster.peer_urls();
    cb.extra = format!(
        "\n[[sink]]\nname = \"rgw\"\nkind = \"s3\"\nendpoint = \"{}\"\nallow_http = true\nbucket = \"etcd-backups\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\nretries = 1\nretry_timeout = \"2s\"\n",
        rgw.endpoint()
    );
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The worst day: the cluster and the bastion's own archives are gone.
    lose_everything(&mut cluster, &cb.snapshot_dir);
    std::fs::remove_dir_all(&cb.snapshot_dir).unwrap();

    // With the snapshot dir missing, list says so (exit 1) but still shows the S3 copies.
    let out = vigil("vigil-restore", &cfg, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    // A rebuilt bastion: an empty snapshot dir.
    std::fs::create_dir_all(&cb.snapshot_dir).unwrap();
    let out = vigil("vigil-restore", &cfg, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cat: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let archives = cat["archives"].as_array().unwrap();
    assert_eq!(archives.len(), 3, "{cat}");
    for a in archives {
        assert_eq!(a["copies"][0]["source"], "rgw", "{a}");
        assert_eq!(a["verified"], true);
    }

    // Rebuild all three members from the S3 copies and start them.
    restore_from(&cfg, &cluster, t.path(), &key, "rgw", rev, &kvs);
}

/// The worst day: every member and its data dir, and the bastion's own
/// archives (a rebuilt bastion has an empty snapshot dir).
pub(crate) fn lose_everything(cluster: &mut Cluster, snapshot_dir: &Path) {
    for i in 0..3 {
        cluster.kill(i);
        std::fs::remove_dir_all(&cluster.members[i].data_dir).unwrap();
    }
    std::fs::remove_dir_all(snapshot_dir).unwrap();
    std::fs::create_dir_all(snapshot_dir).unwrap();
}

/// Fetches cp-1 from `store` (the exact snapshot), rebuilds all three
/// members from it alone, starts them and checks they hold `rev` and `kvs`.
pub(crate) fn restore_from(
    cfg: &Path,
    cluster: &Cluster,
    dir: &Path,
    key: &AgeKey,
    store: &str,
    rev: i64,
    kvs: &[Kv],
) {
    let id = key.identity_file.to_str().unwrap();
    fetch_at(cfg, "cp-1", store, id, &dir.join("cp-1.db"), rev);
    let target = dir.join("restored");
    let out = vigil(
        "vigil-restore",
        cfg,
        &[
            "etcd",
            "--identity",
            id,
            "--out",
            target.to_str().unwrap(),
            // No Kubernetes watches this cluster (tests/bump.rs and
            // restore.rs cover the bump).
            "--no-bump",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let procs = start_restored(&report, cluster, dir);
    for i in 0..3 {
        let (r, k) = cluster.dump(i);
        assert_eq!(r, rev, "member {i} revision");
        assert_eq!(&k, kvs, "member {i} keys");
    }
    drop(procs);
}

/// Starts the members `vigil-restore etcd --json` reported (its commands)
/// and waits until each has a leader on the original ports.
pub(crate) fn start_restored(
    report: &serde_json::Value,
    cluster: &Cluster,
    dir: &std::path::Path,
) -> Procs {
    let mut procs = Procs(Vec::new());
    for m in report["members"].as_array().unwrap() {
        let argv: Vec<String> = m["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let log = std::fs::File::create(
            dir.join(format!("restored-{}.log", m["name"].as_str().unwrap())),
        )
        .unwrap();
        procs.0.push(
            Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let rt = Cluster::runtime();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..3 {
        loop {
            let ok = rt.block_on(async {
                let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), etcd_client::Client::connect([cluster.endpoint(i)], None)).await else {
                    return false;
                };
                matches!(tokio::time::timeout(Duration::from_secs(2), c.status()).await, Ok(Ok(s)) if s.leader() != 0)
            });
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "restored member {i} has no leader"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    procs
}

/// `vigil-restore fetch` of `member` from `source` gives a snapshot that
/// etcdctl reads at revision `rev`.
pub(crate) fn fetch_at(
    cfg: &std::path::Path,
    member: &str,
    source: &str,
    id: &str,
    snap: &std::path::Path,
    rev: i64,
) {
    let out = vigil(
        "vigil-restore",
        cfg,
        &[
            "fetch",
            "--member",
            member,
            "--source",
            source,
            "--identity",
            id,
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let st = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(snap)
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["revision"], rev, "{st}");
}

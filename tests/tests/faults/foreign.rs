//! Faults: an endpoint that answers for another etcd cluster (issue 14,
//! point 3). The real cluster's archives are never pruned for it, its data
//! is never stored as verified, and restore never picks it.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use vigil_tests::etcd::Cluster;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

struct Setup {
    t: tempfile::TempDir,
    real: Cluster,
    other: Cluster,
    key: AgeKey,
    alerts: PathBuf,
    sink: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let t = tempfile::tempdir().unwrap();
        let real = Cluster::start(&t.path().join("real"), &NAMES, None);
        real.put_many("/registry/secrets/prod/", 20, 64, true, 1);
        // Another cluster on the same host, as a test cluster behind a reused address.
        let other = Cluster::start(&t.path().join("other"), &["x-1", "x-2", "x-3"], None);
        other.put_many("/registry/secrets/other/", 5, 64, true, 2);
        let key = age_key(t.path());
        let alerts = t.path().join("alerts.jsonl");
        let sink = t.path().join("tape");
        Setup {
            t,
            real,
            other,
            key,
            alerts,
            sink,
        }
    }

    /// A config where `foreign` members point at the other cluster.
    fn config(&self, foreign: &[usize]) -> PathBuf {
        let mut members = self.real.config_members();
        for &i in foreign {
            members[i].1 = self.other.endpoint(i);
        }
        let mut cb = ConfigBuilder::new(self.t.path(), members, &self.key.recipient);
        cb.extra_snapshot = "keep_last = 2\nconnect_timeout = \"2s\"\n".into();
        cb.extra = format!(
            "\n[[sink]]\nname = \"tape\"\nkind = \"dir\"\npath = \"{}\"\nkeep_last = 2\n\n[[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
            self.sink.display(),
            self.alerts.display()
        );
        cb.write("vigil.toml")
    }

    fn snapshots(&self) -> PathBuf {
        self.t.path().join("snapshots")
    }

    fn state(&self) -> PathBuf {
        self.t.path().join("state")
    }

    fn real_cluster_id(&self) -> String {
        manifest(&archives(&self.snapshots().join("cp-1"))[0])["cluster_id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Every manifest under `root`, at any depth.
fn manifests_under(root: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(".age.json") {
                let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                out.push((p, v));
            }
        }
    }
    out
}

fn firing(alerts: &Path, key: &str) -> Vec<serde_json::Value> {
    alert_items(alerts)
        .into_iter()
        .filter(|i| i["event"] == "firing" && i["alert"]["key"] == key)
        .collect()
}

/// Two good runs pin the cluster and leave two verified archives per member.
fn two_good_runs(s: &Setup) -> PathBuf {
    let cfg = s.config(&[]);
    for _ in 0..2 {
        let out = vigil("vigil-snapshot", &cfg, &["run"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let pin: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state().join("cluster-id.json")).unwrap()).unwrap();
    assert_eq!(pin["cluster_id"], s.real_cluster_id().as_str(), "{pin}");
    cfg
}

fn archive_names(dir: &Path) -> Vec<String> {
    archives(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_member_of_another_cluster_is_refused_and_never_prunes_the_real_copies() {
    let mut s = Setup::new();
    two_good_runs(&s);
    let real_id = s.real_cluster_id();
    let cp2 = s.snapshots().join("cp-2");
    let before_local = archive_names(&cp2);
    let before_sink = archive_names(&s.sink.join("prod/cp-2"));
    assert_eq!(before_local.len(), 2);
    assert_eq!(before_sink.len(), 2);

    // All three reachable, cp-2 points at the other cluster.
    let cfg = s.config(&[1]);
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m2 = &r["members"][1];
    assert_eq!(m2["ok"], false);
    let e = m2["error"].as_str().unwrap();
    assert!(
        e.contains("another") || e.contains("answers for etcd cluster ID"),
        "{e}"
    );
    assert!(e.contains(&real_id) && e.contains("repin"), "{e}");

    // Only the other cluster's member reachable: still refused, three times over.
    s.real.kill(0);
    s.real.kill(2);
    for _ in 0..3 {
        let out = vigil("vigil-snapshot", &cfg, &["run"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    }
    // Nothing verified is lost: the real cluster's copies of cp-2 are all there.
    assert_eq!(archive_names(&cp2), before_local);
    assert_eq!(archive_names(&s.sink.join("prod/cp-2")), before_sink);
    // The other cluster's data was never stored, anywhere.
    for root in [s.snapshots(), s.sink.clone()] {
        for (p, m) in manifests_under(&root) {
            assert_eq!(m["cluster_id"], real_id.as_str(), "{}: {m}", p.display());
        }
    }
    // A human hears about it, naming the member.
    notify_once(&cfg);
    let f = firing(&s.alerts, "etcd_member_diverged{member=\"cp-2\"}");
    assert_eq!(f.len(), 1, "{:#?}", alert_items(&s.alerts));
}

#[test]
fn a_diverged_member_is_quarantined_before_any_pin_and_never_restored() {
    let s = Setup::new();
    // The very first run: no pin yet, cp-3 answers for the other cluster.
    let cfg = s.config(&[2]);
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["members"][2]["ok"], false, "{r:#}");
    assert_eq!(r["members"][2]["stage"], "consistency");
    // Its archive is out of the member dir, unverified and marked, and its
    // streamed sink copy is gone; the majority was pinned.
    assert!(archives(&s.snapshots().join("cp-3")).is_empty());
    assert!(archives(&s.sink.join("prod/cp-3")).is_empty());
    let q = archives(&s.snapshots().join("quarantine/cp-3"));
    assert_eq!(q.len(), 1, "{r:#}");
    let qm = manifest(&q[0]);
    assert!(qm["verified_at"].is_null(), "{qm}");
    assert!(qm["quarantined"].as_str().unwrap().contains("cp-3"), "{qm}");
    let real_id = s.real_cluster_id();
    assert_ne!(qm["cluster_id"], real_id.as_str());
    let pin: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state().join("cluster-id.json")).unwrap()).unwrap();
    assert_eq!(pin["cluster_id"], real_id.as_str());
    notify_once(&cfg);
    assert_eq!(
        firing(&s.alerts, "etcd_member_diverged{member=\"cp-3\"}").len(),
        1,
        "{:#?}",
        alert_items(&s.alerts)
    );

    let good = vigil("vigil-snapshot", &s.config(&[]), &["run"]);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));

    // Even if such an archive lands among the real ones with verified_at
    // set (an older vigil, a hand copy), restore never picks it.
    let planted = s.snapshots().join("cp-3").join(q[0].file_name().unwrap());
    std::fs::copy(&q[0], &planted).unwrap();
    let mut lying = qm.clone();
    lying["verified_at"] = serde_json::json!("2030-01-01T00:00:00.000Z");
    lying["created_at"] = serde_json::json!("2030-01-01T00:00:00.000Z");
    lying.as_object_mut().unwrap().remove("quarantined");
    std::fs::write(
        format!("{}.json", planted.display()),
        serde_json::to_vec(&lying).unwrap(),
    )
    .unwrap();
    let cfg = s.config(&[]);
    let out = vigil("vigil-restore", &cfg, &["list", "--json"]);
    let cat: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        cat["archives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != lying["id"]),
        "{cat:#}"
    );
    assert_eq!(cat["untrusted"][0]["id"], lying["id"], "{cat:#}");
    let id = s.key.identity_file.to_string_lossy().into_owned();
    for i in 0..6 {
        let dest = s.t.path().join(format!("fetched-{i}.db"));
        let out = vigil(
            "vigil-restore",
            &cfg,
            &[
                "fetch",
                "--identity",
                &id,
                "--out",
                &dest.to_string_lossy(),
                "--json",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_ne!(f["archive"], lying["id"]);
        let _ = std::fs::remove_file(&dest);
    }
    let dest = s.t.path().join("fetched-x.db");
    let out = vigil(
        "vigil-restore",
        &cfg,
        &[
            "fetch",
            "--identity",
            &id,
            "--out",
            &dest.to_string_lossy(),
            "--archive",
            lying["id"].as_str().unwrap(),
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("not of the pinned"), "{}", text(&out));
    assert!(
        !dest.exists(),
        "no plaintext of the other cluster was written"
    );
}

#[test]
fn repin_accepts_a_rebuilt_cluster_and_keeps_the_old_archives_restorable() {
    let mut s = Setup::new();
    two_good_runs(&s);
    let old_id = s.real_cluster_id();
    // One member of each cluster and one down: no majority, so repin
    // refuses and changes nothing.
    s.real.kill(2);
    let out = vigil("vigil-snapshot", &s.config(&[0]), &["repin"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("majority"), "{}", text(&out));
    let pin = std::fs::read_to_string(s.state().join("cluster-id.json")).unwrap();
    assert!(pin.contains(&old_id) && !pin.contains("history"), "{pin}");
    // Every endpoint now answers for the new cluster (as after a rebuild).
    let cfg = s.config(&[0, 1, 2]);
    let out = vigil("vigil-snapshot", &cfg, &["repin", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["previous"], old_id.as_str());
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The old cluster's archives are still trusted for restores.
    let out = vigil("vigil-restore", &cfg, &["list", "--json"]);
    let cat: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(cat["untrusted"].is_null(), "{cat:#}");
    assert!(cat["archives"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"].as_str().unwrap().contains("cp-1")));
}

//! #15 point 3: vigil-health and vigil-snapshot record the newest etcd
//! revision they saw (for sizing a restore's revision bump), against a real
//! 3-member cluster; the record only ever goes up.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use vigil_tests::etcd::Cluster;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

fn seen(state: &Path) -> serde_json::Value {
    let p = state.join("revision-seen.json");
    let v = serde_json::from_slice(
        &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    v
}

#[test]
fn health_and_snapshot_record_the_newest_revision_and_never_lower_it() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 20, 100, false, 1);
    let key = age_key(t.path());
    let cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    let cfg = cb.write("vigil.toml");
    let state = t.path().join("state");

    // vigil-health, before any snapshot (no pin yet).
    vigil("vigil-health", &cfg, &["run", "--json", "--no-alert"]);
    let (rev1, _) = cluster.dump(0);
    let s = seen(&state);
    assert_eq!(s["revision"], rev1, "{s}");
    assert_eq!(s["by"], "vigil-health");
    assert!(NAMES.contains(&s["member"].as_str().unwrap()), "{s}");
    assert!(s["seen_at"].is_string() && s["endpoint"].is_string(), "{s}");
    let cid = s["cluster_id"].as_str().unwrap().to_string();

    // More writes, then a snapshot run: raised, same cluster ID.
    cluster.put_many("/registry/configmaps/default/", 30, 100, false, 2);
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (rev2, _) = cluster.dump(0);
    assert!(rev2 > rev1);
    let s = seen(&state);
    assert_eq!(
        (s["revision"].as_i64(), s["by"].as_str()),
        (Some(rev2), Some("vigil-snapshot")),
        "{s}"
    );
    assert_eq!(s["cluster_id"], cid.as_str());
    let m: serde_json::Value = manifest(&archives(&cb.snapshot_dir.join("cp-1"))[0]);
    assert_eq!(m["cluster_id"], cid.as_str());

    // More writes, health again: raised.
    cluster.put_many("/registry/secrets/default/", 5, 64, true, 3);
    vigil("vigil-health", &cfg, &["run", "--json", "--no-alert"]);
    let (rev3, _) = cluster.dump(0);
    assert!(rev3 > rev2);
    assert_eq!(seen(&state)["revision"], rev3);

    // A record higher than the cluster now answers (as after the cluster
    // was restored without a bump): neither job lowers it.
    let high = serde_json::json!({
        "cluster_id": cid, "revision": rev3 + 1_000_000, "seen_at": "2026-01-01T00:00:00.000Z",
        "member": "cp-2", "endpoint": cluster.endpoint(1), "by": "vigil-health"
    });
    std::fs::write(state.join("revision-seen.json"), high.to_string()).unwrap();
    vigil("vigil-health", &cfg, &["run", "--json", "--no-alert"]);
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = seen(&state);
    assert_eq!(s["revision"], rev3 + 1_000_000, "{s}");
    assert_eq!(s["seen_at"], "2026-01-01T00:00:00.000Z");
}

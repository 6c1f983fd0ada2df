//! Faults: a run that cannot start at all (issue 14, point 8) still reaches
//! a human, and recovers by itself once the cause is gone.
#![allow(clippy::unwrap_used)]

use vigil_tests::etcd::Cluster;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

#[test]
fn a_snapshot_dir_that_cannot_be_created_is_alerted_for_every_member() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    let key = age_key(t.path());
    let alerts = t.path().join("alerts.jsonl");
    // A regular file where a directory should be: no mkdir below it works,
    // for root too (as a read-only or full mount would refuse it).
    let blocker = t.path().join("mnt");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.snapshot_dir = blocker.join("snapshots");
    cb.extra = format!(
        "\n[[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
        alerts.display()
    );
    let cfg = cb.write("vigil.toml");

    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&blocker.join("snapshots").display().to_string()),
        "the error names the path: {}",
        text(&out)
    );
    for m in NAMES {
        let o = outcome(&t.path().join("state"), m);
        assert_eq!(o["ok"], false, "{o}");
        assert!(
            o["error"].as_str().unwrap().contains("could not start"),
            "{o}"
        );
    }
    notify_once(&cfg);
    let mut firing: Vec<String> = alert_events(&alerts)
        .into_iter()
        .filter(|(e, _)| e == "firing")
        .map(|(_, k)| k)
        .collect();
    firing.sort();
    assert_eq!(
        firing,
        NAMES
            .iter()
            .map(|m| format!("snapshot_failed{{member=\"{m}\"}}"))
            .collect::<Vec<_>>()
    );

    // The administrator fixes the mount; the next run resolves all three.
    std::fs::remove_file(&blocker).unwrap();
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    notify_once(&cfg);
    let resolved = alert_events(&alerts)
        .into_iter()
        .filter(|(e, _)| e == "resolved")
        .count();
    assert_eq!(resolved, 3, "{:?}", alert_events(&alerts));
}

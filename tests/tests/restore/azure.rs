//! The azure sink against Azurite, as S3 is tested against radosgw: a
//! streamed (block) upload, retention in the container, scrub, and a
//! recovery of all three members from the container alone.
#![allow(clippy::unwrap_used)]

use crate::s3::{lose_everything, restore_from};
use vigil_tests::azure::Azurite;
use vigil_tests::etcd::Cluster;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

pub(crate) fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// Copies per member in store `store`, from `vigil-snapshot list --all`.
pub(crate) fn copies_in(cfg: &std::path::Path, store: &str) -> Vec<(String, i64)> {
    let out = vigil("vigil-snapshot", cfg, &["list", "--all", "--json"]);
    let l = json(&out);
    let mut v: Vec<(String, i64)> = l["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["locations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["store"] == store)
        })
        .map(|a| {
            (
                a["member"].as_str().unwrap_or_default().to_string(),
                a["revision"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Retention kept the newest two copies of each member in `store`, and
/// none from the oldest run (`oldest`, its revision).
pub(crate) fn newest_two_each(cfg: &std::path::Path, store: &str, oldest: i64) {
    let copies = copies_in(cfg, store);
    assert_eq!(copies.len(), 6, "{copies:?}");
    for name in NAMES {
        let revs: Vec<i64> = copies
            .iter()
            .filter(|(m, _)| m == name)
            .map(|c| c.1)
            .collect();
        assert_eq!(revs.len(), 2, "{name}: {copies:?}");
        assert!(
            !revs.contains(&oldest),
            "{name}: the oldest copy was kept: {copies:?}"
        );
    }
}

#[test]
fn azure_sink_against_azurite() {
    let t = tempfile::tempdir().unwrap();
    let az = Azurite::start(&t.path().join("azurite"));
    az.make_container("etcd");
    let mut cluster = Cluster::start(&t.path().join("orig"), &NAMES, None);
    // Incompressible, so each archive is more than one 5 MiB block.
    cluster.put_many("/registry/secrets/", 6000, 1024, true, 41);
    let key = age_key(t.path());
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.peers = cluster.peer_urls();
    cb.extra = az.sink(
        "blob",
        "etcd",
        "prefix = \"vigil\"\npart_size = \"5MiB\"\nkeep_last = 2\nretries = 1\nretry_timeout = \"2s\"\n",
    );
    let cfg = cb.write("vigil.toml");

    // Three runs: the container keeps the newest two per member.
    let mut runs = Vec::new();
    for i in 0..3u64 {
        cluster.put_many(
            &format!("/registry/configmaps/run{i}/"),
            20,
            100,
            false,
            50 + i,
        );
        let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let r = json(&out);
        assert_eq!(r["sinks"][0]["ok"], true, "{r}");
        for m in r["members"].as_array().unwrap() {
            assert!(
                m["manifest"]["archive_size"].as_u64().unwrap() > 5 << 20,
                "not more than one block: {m}"
            );
            assert_eq!(m["sinks"][0]["ok"], true, "{m}");
        }
        runs.push(r["members"][0]["manifest"]["revision"].as_i64().unwrap());
    }
    newest_two_each(&cfg, "blob", runs[0]);

    // Scrub reads every copy back against its manifest.
    let out = vigil("vigil-snapshot", &cfg, &["scrub", "--sink", "blob"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The cluster and the bastion's archives are gone: back from Azure alone.
    let (rev, kvs) = cluster.dump(0);
    lose_everything(&mut cluster, &cb.snapshot_dir);
    restore_from(&cfg, &cluster, t.path(), &key, "blob", rev, &kvs);
}

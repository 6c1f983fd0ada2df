//! The gcs sink against fake-gcs-server, over https with a private CA.
//!
//! fake-gcs-server serves the XML API's list, GET, HEAD and DELETE, which
//! object_store uses for GCS, but not its PUT or multipart upload, which no
//! GCS emulator installable here serves. So vigil's upload is tested as a
//! store that refuses it: named, and nothing lost. The copies are then
//! put into the bucket through the JSON API, as the fs sink wrote them, and
//! the rest is vigil's against the real server: list, TLS with a private
//! CA, scrub (with a corrupted copy), retention, and a recovery of all
//! three members from the bucket alone.
#![allow(clippy::unwrap_used)]

use crate::azure::{copies_in, json, newest_two_each};
use crate::s3::{lose_everything, restore_from};
use vigil_tests::etcd::Cluster;
use vigil_tests::gcs::FakeGcs;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

#[test]
fn gcs_sink_against_fake_gcs_server() {
    let t = tempfile::tempdir().unwrap();
    let gcs = FakeGcs::start(&t.path().join("gcs"));
    gcs.make_bucket("etcd");
    let mut cluster = Cluster::start(&t.path().join("orig"), &NAMES, None);
    cluster.put_many("/registry/secrets/", 600, 1024, true, 43);
    let key = age_key(t.path());
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.peers = cluster.peer_urls();
    let stage = t.path().join("stage");
    let gcs_sink = gcs.sink(
        "gcs",
        "etcd",
        "prefix = \"vigil\"\nkeep_last = 2\nretries = 1\nretry_timeout = \"2s\"\n",
    );
    cb.extra = format!(
        "\n[[sink]]\nname = \"stage\"\nkind = \"fs\"\npath = \"{}\"\nprefix = \"vigil\"\n{gcs_sink}",
        stage.display()
    );
    let both = cb.write("both.toml");
    cb.extra = gcs_sink;
    let cfg = cb.write("vigil.toml");

    // The emulator refuses the upload: the run says which sink and why, and
    // the bastion's copy and the other sink's are kept.
    let mut runs = Vec::new();
    for i in 0..3u64 {
        cluster.put_many(
            &format!("/registry/configmaps/run{i}/"),
            20,
            100,
            false,
            60 + i,
        );
        let out = vigil("vigil-snapshot", &both, &["run", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let r = json(&out);
        for m in r["members"].as_array().unwrap() {
            assert_eq!(m["ok"], true, "{m}");
            let s = m["sinks"].as_array().unwrap();
            assert_eq!(s[0]["sink"], "stage", "{m}");
            assert_eq!(s[0]["ok"], true, "{m}");
            assert_eq!(s[1]["sink"], "gcs", "{m}");
            assert_eq!(s[1]["ok"], false, "{m}");
            let e = s[1]["error"].as_str().unwrap();
            assert!(e.contains("gcs") && e.contains("400"), "{e}");
        }
        runs.push(r["members"][0]["manifest"]["revision"].as_i64().unwrap());
    }
    assert!(text(&vigil("vigil-snapshot", &both, &["list"])).contains("cp-1"));
    assert_eq!(archives(&cb.snapshot_dir.join("cp-1")).len(), 3);

    // The copies as the fs sink laid them out, put into the bucket.
    let seeded = gcs.upload_tree("etcd", &stage);
    assert_eq!(seeded, 18, "9 archives and their manifests");
    let in_gcs = copies_in(&cfg, "gcs");
    assert_eq!(in_gcs.len(), 9, "{in_gcs:?}");

    // Without the private CA, the server's certificate is refused, and
    // the error names the sink.
    cb.extra = gcs
        .sink("gcs", "etcd", "prefix = \"vigil\"\nretries = 0\n")
        .replace(&format!("ca_file = \"{}\"\n", gcs.ca.display()), "");
    let no_ca = cb.write("no-ca.toml");
    let out = vigil("vigil-snapshot", &no_ca, &["scrub", "--sink", "gcs"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("sink gcs: listing vigil/prod")
            && text(&out).contains("invalid peer certificate"),
        "{}",
        text(&out)
    );

    // Scrub reads every copy back over TLS; a flipped byte is named.
    let out = vigil("vigil-snapshot", &cfg, &["scrub", "--sink", "gcs"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (name, _) = gcs
        .objects("etcd")
        .into_iter()
        .find(|(n, _)| n.contains("cp-3") && n.ends_with(".age"))
        .unwrap();
    let good = stage.join(&name);
    let bad = t.path().join("bad.age");
    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&bad, &bytes).unwrap();
    gcs.upload("etcd", &name, &bad);
    let out = vigil("vigil-snapshot", &cfg, &["scrub", "--sink", "gcs"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let file = name.rsplit('/').next().unwrap();
    assert!(text(&out).contains(file), "{}", text(&out));
    // Put right, and scrubbed again: a copy found corrupt is kept as
    // evidence until a scrub finds it whole.
    gcs.upload("etcd", &name, &good);
    let out = vigil("vigil-snapshot", &cfg, &["scrub", "--sink", "gcs"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Retention in the bucket: the newest two per member stay.
    let out = vigil("vigil-snapshot", &cfg, &["prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    newest_two_each(&cfg, "gcs", runs[0]);
    assert_eq!(gcs.objects("etcd").len(), 12, "{:?}", gcs.objects("etcd"));

    // The cluster, the bastion's archives and the other sink are gone.
    let (rev, kvs) = cluster.dump(0);
    lose_everything(&mut cluster, &cb.snapshot_dir);
    std::fs::remove_dir_all(&stage).unwrap();
    restore_from(&cfg, &cluster, t.path(), &key, "gcs", rev, &kvs);
}

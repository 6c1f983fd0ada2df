//! Shipping to sinks: a real Ceph radosgw as S3, a directory sink, an fs
//! sink on a full disk, and a stand-in `dsmc` for tape.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vigil_tests::ceph::{Rgw, ACCESS_KEY, SECRET_KEY};
use vigil_tests::etcd::Cluster;
use vigil_tests::proxy::{Fault, Proxy};
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn sink_outcome(state: &Path, sink: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(state.join("outcomes/sink").join(format!("{sink}.json"))).unwrap(),
    )
    .unwrap()
}

fn s3_sink(rgw: &Rgw, keep_last: u32) -> String {
    format!(
        "\n[[sink]]\nname = \"rgw\"\nkind = \"s3\"\nendpoint = \"{}\"\nallow_http = true\nbucket = \"etcd-backups\"\nregion = \"us-east-1\"\nprefix = \"vigil\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\npath_style = true\npart_size = \"5MiB\"\nretries = 1\nretry_timeout = \"2s\"\ntimeout = \"30s\"\nkeep_last = {keep_last}\n",
        rgw.endpoint()
    )
}

/// Archives of one member in the bucket (without manifests).
fn in_bucket(rgw: &Rgw, member: &str) -> Vec<(String, u64)> {
    rgw.ls(&format!("s3://etcd-backups/vigil/prod/{member}/"))
        .into_iter()
        .filter(|(k, _)| k.ends_with(".age"))
        .collect()
}

#[test]
fn s3_sink_against_ceph_radosgw() {
    let t = tempfile::tempdir().unwrap();
    let rgw = Rgw::start(&t.path().join("ceph"));
    rgw.make_bucket("etcd-backups");
    let cluster = Cluster::start(t.path(), &NAMES, None);
    // Incompressible data, so every archive is above the 5 MiB part size.
    cluster.put_many("/registry/secrets/", 6000, 1024, true, 21);
    let key = age_key(t.path());
    let state = t.path().join("state");
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra = s3_sink(&rgw, 3);
    let cfg = cb.write("vigil.toml");

    // 1. Upload (multipart), verify, manifest beside the archive.
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["sinks"][0]["ok"], true);
    assert_eq!(r["sinks"][0]["copies"], 3);
    for (i, name) in NAMES.iter().enumerate() {
        let objs = in_bucket(&rgw, name);
        assert_eq!(objs.len(), 1, "{name}: {objs:?}");
        let m = &r["members"][i]["manifest"];
        assert!(
            m["archive_size"].as_u64().unwrap() > 5 << 20,
            "not multipart: {m}"
        );
        assert_eq!(objs[0].1, m["archive_size"].as_u64().unwrap());
        assert_eq!(r["members"][i]["sinks"][0]["ok"], true);
        let keys = rgw.ls(&format!("s3://etcd-backups/vigil/prod/{name}/"));
        assert!(
            keys.iter().any(|(k, _)| k.ends_with(".age.json")),
            "manifest missing: {keys:?}"
        );
    }
    // An independent client downloads the object; it matches the manifest and opens with age + zstd.
    let (url, _) = in_bucket(&rgw, "cp-1").remove(0);
    let got = t.path().join("got.age");
    let o = rgw.s3cmd(&["get", "--force", &url, got.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let m = &r["members"][0]["manifest"];
    assert_eq!(sha256_hex(&got), m["archive_sha256"].as_str().unwrap());
    open_archive(&got, &key, &t.path().join("got.db"));
    assert_eq!(
        sha256_hex(&t.path().join("got.db")),
        m["snapshot_sha256"].as_str().unwrap()
    );

    // 2. list --all shows where each copy lives.
    let out = vigil("vigil-snapshot", &cfg, &["list", "--all", "--json"]);
    let l = json(&out);
    let listed = l["archives"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for a in listed {
        let stores: Vec<&str> = a["locations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["store"].as_str().unwrap())
            .collect();
        assert_eq!(stores, ["local", "rgw"], "{a}");
    }

    // A run with cp-1 behind a faulty proxy; it must fail without leaving
    // an orphan multipart upload or a second object for cp-1.
    let faulty_run = |fault: Fault, extra_snapshot: &str, name: &str| {
        let proxy = Proxy::start(cluster.members[0].client_port, fault);
        let mut members = cb.members.clone();
        members[0].1 = proxy.endpoint("http");
        let mut c = ConfigBuilder::new(t.path(), members, &key.recipient);
        c.extra_snapshot = extra_snapshot.into();
        c.extra = s3_sink(&rgw, 3);
        let out = vigil("vigil-snapshot", &c.write(name), &["run"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert_eq!(
            in_bucket(&rgw, "cp-1").len(),
            1,
            "a failed stream must not reach the sink"
        );
        let o = rgw.s3cmd(&["multipart", "s3://etcd-backups"]);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("vigil/prod/"),
            "orphan multipart upload: {}",
            text(&o)
        );
        out
    };
    // 3. A corrupted stream.
    faulty_run(Fault::Flip(3_000_000), "", "bad.toml");
    // 3b. A member that runs past snapshot.timeout mid-upload: its upload is
    // aborted before the run exits.
    let out = faulty_run(
        Fault::Throttle(1_000_000),
        "timeout = \"3s\"\n",
        "timeout.toml",
    );
    assert!(text(&out).contains("snapshot.timeout"), "{}", text(&out));

    // 4. radosgw dies in the middle of a run: the local archives are kept,
    // the run exits 1 and the sink's outcome says so.
    let before: Vec<usize> = NAMES
        .iter()
        .map(|n| archives(&cb.snapshot_dir.join(n)).len())
        .collect();
    let slow: Vec<Proxy> = (0..3)
        .map(|i| Proxy::start(cluster.members[i].client_port, Fault::Throttle(2_000_000)))
        .collect();
    let mut slow_members = cb.members.clone();
    for (m, p) in slow_members.iter_mut().zip(&slow) {
        m.1 = p.endpoint("http");
    }
    let mut cb_slow = ConfigBuilder::new(t.path(), slow_members, &key.recipient);
    cb_slow.extra = s3_sink(&rgw, 3);
    let slow_cfg = cb_slow.write("slow.toml");
    let child = spawn_run(&slow_cfg);
    wait_for_partial(&[cb.snapshot_dir.join("cp-1")]);
    std::thread::sleep(Duration::from_millis(700));
    rgw.kill_rgw();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", text(&out));
    assert_eq!(out.status.code(), Some(1));
    let so = sink_outcome(&state, "rgw");
    assert_eq!(so["ok"], false, "{so}");
    assert!(so["error"].as_str().unwrap().contains("rgw"), "{so}");
    for (name, n) in NAMES.iter().zip(before) {
        assert_eq!(
            archives(&cb.snapshot_dir.join(name)).len(),
            n + 1,
            "{name}: local archives must be kept"
        );
    }
    drop(slow);

    // 5. radosgw is back: the next run ships the new archive and catches up the missed one.
    rgw.start_rgw();
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_eq!(
        r["sinks"][0]["shipped"].as_array().unwrap().len(),
        3,
        "{}",
        r["sinks"][0]
    );
    assert_eq!(sink_outcome(&state, "rgw")["ok"], true);
    for name in NAMES {
        assert_eq!(in_bucket(&rgw, name).len(), 3, "{name}");
    }

    // 6. Retention per sink: keep_last 3 in the sink, 5 locally.
    for _ in 0..2 {
        let out = vigil("vigil-snapshot", &cfg, &["run"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    for name in NAMES {
        assert_eq!(in_bucket(&rgw, name).len(), 3, "{name}");
        assert_eq!(archives(&cb.snapshot_dir.join(name)).len(), 5, "{name}");
    }

    // 7. prune --dry-run with a tighter policy shows what would go and deletes nothing.
    cb.extra = s3_sink(&rgw, 1);
    let tight = cb.write("tight.toml");
    let out = vigil("vigil-snapshot", &tight, &["prune", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let p = json(&out);
    assert_eq!(p["sinks"][0]["pruned"].as_array().unwrap().len(), 6, "{p}");
    assert_eq!(p["local"].as_array().unwrap().len(), 0);
    for name in NAMES {
        assert_eq!(in_bucket(&rgw, name).len(), 3);
    }

    // 8. An object corrupted behind vigil's back: scrub reports it.
    let (victim, _) = in_bucket(&rgw, "cp-2").remove(0);
    let junk = t.path().join("junk");
    std::fs::write(&junk, vec![7u8; 1000]).unwrap();
    let o = rgw.s3cmd(&["put", junk.to_str().unwrap(), &victim]);
    assert!(o.status.success(), "{}", text(&o));
    let out = vigil("vigil-snapshot", &cfg, &["scrub", "--sink", "rgw"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let victim_key = victim.trim_start_matches("s3://etcd-backups/");
    assert!(text(&out).contains(victim_key), "{}", text(&out));
    let so: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("outcomes/scrub/rgw.json")).unwrap())
            .unwrap();
    assert_eq!(so["ok"], false);
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["scrub", "--sink", "local", "--sample", "2"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn dsmc_stub(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("dsmc");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n# Stand-in for IBM Spectrum Protect's dsmc: records argv, answers with the code in rc.\necho \"$@\" >> {d}/dsmc.args\nrc=$(cat {d}/rc)\nif [ \"$1\" = retrieve ]; then\n  for last; do :; done\n  for a; do case \"$a\" in /*.age) cp \"$a\" \"$last\";; esac; done\nfi\nif [ \"$rc\" != 0 ]; then echo \"ANS1228E Sending of object failed\" >&2; echo \"11/23/2026 ANS1311E Server out of data storage space\" >> {d}/dsmerror.log; fi\necho \"Total number of objects archived: 2\"\nexit $rc\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn tape_dsmc_return_codes() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/pods/", 30, 200, false, 22);
    let key = age_key(t.path());
    let dsmc = dsmc_stub(t.path());
    let state = t.path().join("state");
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    let sink = |extra: &str| {
        format!(
            "\n[[sink]]\nname = \"tape\"\nkind = \"tape-dsmc\"\ndsmc = \"{}\"\noptfile = \"/etc/dsm.opt\"\nerror_log = \"{}\"\nretrieve_verify = true\n{extra}",
            dsmc.display(),
            t.path().join("dsmerror.log").display()
        )
    };
    for (rc, extra, want_ok) in [
        ("0", "", true),
        ("4", "", false),
        ("4", "rc4 = \"ok\"\n", true),
        ("8", "", false),
        ("8", "rc8 = \"ok\"\n", true),
        ("12", "", false),
    ] {
        std::fs::write(t.path().join("rc"), rc).unwrap();
        let _ = std::fs::remove_file(t.path().join("dsmc.args"));
        cb.extra = sink(extra);
        let cfg = cb.write("vigil.toml");
        let out = vigil("vigil-snapshot", &cfg, &["run"]);
        let so = sink_outcome(&state, "tape");
        assert_eq!(so["ok"], want_ok, "rc {rc} {extra}: {so}");
        assert_eq!(
            out.status.code(),
            Some(if want_ok { 0 } else { 1 }),
            "rc {rc}: {}",
            text(&out)
        );
        let args = std::fs::read_to_string(t.path().join("dsmc.args")).unwrap();
        assert!(
            args.starts_with("archive -optfile=/etc/dsm.opt -description=vigil prod cp-1 revision"),
            "{args}"
        );
        if want_ok {
            assert!(args.contains("\nretrieve "), "retrieve-verify ran: {args}");
        } else {
            let e = so["error"].as_str().unwrap();
            assert!(
                e.contains(&format!("return code {rc}"))
                    && e.contains("ANS1228E")
                    && e.contains("ANS1311E"),
                "{e}"
            );
        }
    }
    // Every successful run left a catalog entry; list --all shows the tape copies.
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["list", "--all", "--json"]);
    let l = json(&out);
    let on_tape = l["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["locations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["store"] == "tape")
        })
        .count();
    assert!(on_tape >= 3, "{l}");
}

#[test]
fn dir_sink_survives_kill_9_mid_write() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/configmaps/", 800, 1024, true, 23);
    let proxy = Proxy::start(cluster.members[0].client_port, Fault::Throttle(200_000));
    let key = age_key(t.path());
    let tape_dir = t.path().join("ltfs");
    let extra = format!(
        "\n[[sink]]\nname = \"ltfs\"\nkind = \"dir\"\npath = \"{}\"\n",
        tape_dir.display()
    );
    let mut slow = ConfigBuilder::new(
        t.path(),
        vec![("cp-1".into(), proxy.endpoint("http"))],
        &key.recipient,
    );
    slow.extra = extra.clone();
    let slow_cfg = slow.write("slow.toml");
    let member_dir = tape_dir.join("prod/cp-1");
    let mut child = spawn_run(&slow_cfg);
    wait_for_partial(std::slice::from_ref(&member_dir));
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        archives(&member_dir).is_empty(),
        "a half archive is visible in the dir sink"
    );

    let mut fast = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    fast.extra = extra;
    let cfg = fast.write("fast.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let files = all_files(&member_dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let a = &archives(&member_dir)[0];
    assert_eq!(
        std::fs::metadata(a).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let local = &archives(&fast.snapshot_dir.join("cp-1"))[0];
    assert_eq!(sha256_hex(a), sha256_hex(local));
}

#[test]
fn fs_sink_on_a_full_disk_fails_alone() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/secrets/", 1500, 1024, true, 24);
    let key = age_key(t.path());
    let full = t.path().join("nfs");
    std::fs::create_dir_all(&full).unwrap();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k"])
        .arg("tmpfs")
        .arg(&full)
        .output()
        .unwrap();
    assert!(m.status.success(), "{}", text(&m));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(full.clone());
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra = format!(
        "\n[[sink]]\nname = \"nfs\"\nkind = \"fs\"\npath = \"{}\"\nverify = \"size\"\n",
        full.display()
    );
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let so = sink_outcome(&t.path().join("state"), "nfs");
    assert_eq!(so["ok"], false);
    assert!(
        so["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("no space left"),
        "{so}"
    );
    assert_eq!(
        archives(&cb.snapshot_dir.join("cp-1")).len(),
        1,
        "the local archive is unaffected"
    );
    let o = Command::new("find")
        .arg(&full)
        .args(["-type", "f"])
        .output()
        .unwrap();
    assert!(
        o.stdout.is_empty(),
        "nothing may be left in the full sink, not even a staging file: {}",
        text(&o)
    );
}

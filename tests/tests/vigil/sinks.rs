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

#[path = "sinks/object_lock.rs"]
mod object_lock;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// The `store` of each entry of a `locations` or `copies` list, in order.
fn stores_in(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|l| l["store"].as_str().unwrap())
        .collect()
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
        let stores = stores_in(&a["locations"]);
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
    // All three mid-stream when radosgw dies (one at a time, the first
    // could finish before and the order is not fixed).
    cb_slow.extra_snapshot = "max_concurrent_members = 3\n".into();
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

    // 8. An object corrupted behind vigil's back, at the same size (only
    //    a readback sees it; `verify = "size"` is for the upload): scrub
    //    reports it.
    let (victim, size) = in_bucket(&rgw, "cp-2").remove(0);
    let junk = t.path().join("junk");
    std::fs::write(&junk, vec![7u8; size as usize]).unwrap();
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

    // 9. delete: the corrupted copy from the bucket alone (archive and
    //    manifest), then another archive from every store.
    let id_of = |url: &str| {
        url.rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".db.zst.age")
            .to_string()
    };
    let bad = id_of(&victim);
    let out = vigil("vigil-snapshot", &cfg, &["delete", &bad, "--sink", "rgw"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("rgw: deleted {bad}")),
        "{}",
        text(&out)
    );
    let keys = rgw.ls("s3://etcd-backups/vigil/prod/cp-2/");
    assert!(!keys.iter().any(|(k, _)| k.contains(&bad)), "{keys:?}");
    assert_eq!(keys.len(), 4, "2 archives + 2 manifests left: {keys:?}");
    let local_has = |member: &str, id: &str| {
        archives(&cb.snapshot_dir.join(member))
            .iter()
            .any(|p| p.to_string_lossy().contains(id))
    };
    assert!(local_has("cp-2", &bad), "the local copy stays");
    let out = vigil("vigil-snapshot", &cfg, &["scrub", "--sink", "rgw"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let other = id_of(&in_bucket(&rgw, "cp-3")[0].0);
    let out = vigil("vigil-snapshot", &cfg, &["delete", &other, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let d = json(&out);
    let stores = stores_in(&d["copies"]);
    assert_eq!(stores, ["rgw", "local"], "sinks first: {d}");
    assert!(!in_bucket(&rgw, "cp-3")
        .iter()
        .any(|(k, _)| k.contains(&other)));
    assert!(!local_has("cp-3", &other));
    // radosgw down: the bastion's copy of an archive stays with the bucket's.
    let next = id_of(&in_bucket(&rgw, "cp-3")[0].0);
    rgw.kill_rgw();
    let out = vigil("vigil-snapshot", &cfg, &["delete", &next]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("rgw could not be listed"),
        "{}",
        text(&out)
    );
    assert!(local_has("cp-3", &next), "{}", text(&out));
    rgw.start_rgw();
}

/// IBM's client is proprietary, so tape tests use this stand-in. It lives in
/// an "install dir" `<dir>/tsm/` beside a dsm.sys, the way dsmc finds its
/// dsm.sys, and it honours what the real client documents:
/// - the error log is `-errorlogname=FILE`, else `$DSM_LOG/dsmerror.log`, else
///   `dsmerror.log` in the working directory; it refuses a symlink and exits
///   12 if the log cannot be written (the real client may only warn: the
///   stand-in is strict);
/// - other logs (here dsminstr.log) go to `$DSM_LOG`, else the working dir;
/// - with `PASSWORDACCESS GENERATE` it writes the node password into the
///   stanza's `PASSWORDDIR` from dsm.sys (exit 12, ANS1331E, if it cannot);
/// - it answers with the return code in `<dir>/rc` (0, 4, 8, 12);
/// - it records argv, `DSM_LOG` and its cwd in `<dir>/dsmc.args` / `.env`.
fn dsmc_stub(dir: &Path, password_dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("tsm");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("dsm.sys"),
        format!(
            "SErvername  TSM1\n   COMMMethod  TCPip\n   TCPServeraddress  127.0.0.1\n   PASSWORDAccess  generate\n   PASSWORDDIR  {}\n",
            password_dir.display()
        ),
    )
    .unwrap();
    let p = bin.join("dsmc");
    std::fs::write(
        &p,
        format!(
            r#"#!/bin/sh
# Stand-in for IBM Storage Protect's dsmc (see dsmc_stub in tests/tests/vigil/sinks.rs).
echo "$@" >> {d}/dsmc.args
echo "DSM_LOG=${{DSM_LOG-unset}} cwd=$(pwd)" >> {d}/dsmc.env
log="${{DSM_LOG:+${{DSM_LOG%/}}/}}dsmerror.log"
for a; do case "$a" in -errorlogname=*) log="${{a#-errorlogname=}}";; esac; done
if [ -L "$log" ] || ! (: >> "$log") 2>/dev/null; then echo "stand-in dsmc: cannot open error log $log" >&2; exit 12; fi
echo "$(date +%m/%d/%Y) stand-in session started" >> "${{DSM_LOG:-.}}/dsminstr.log" || exit 12
pwdir=$(awk 'tolower($1) == "passworddir" {{ print $2 }}' "$(dirname "$0")/dsm.sys")
[ -n "$pwdir" ] || {{ echo "stand-in dsmc: dsm.sys has no PASSWORDDIR (the stand-in never writes /etc/adsm)" >&2; exit 12; }}
if ! echo "node password" >> "$pwdir/TSM.KDB"; then
  echo "$(date +%m/%d/%Y) ANS1331E Only an IBM Storage Protect authorized user can perform this action" >> "$log"; exit 12
fi
rc=$(cat {d}/rc)
if [ "$1" = retrieve ]; then
  for last; do :; done
  for a; do case "$a" in /*.age) cp "$a" "$last";; esac; done
fi
if [ "$rc" != 0 ]; then echo "ANS1228E Sending of object failed" >&2; echo "$(date +%m/%d/%Y) ANS1311E Server out of data storage space" >> "$log"; fi
echo "Total number of objects archived: 2"
exit $rc
"#,
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
    let pw = t.path().join("tsm-password");
    let dsmc = dsmc_stub(t.path(), &pw);
    let state = t.path().join("state");
    let log = t.path().join("tsm-logs/dsmerror.log");
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    let sink = |extra: &str| {
        format!(
            "\n[[sink]]\nname = \"tape\"\nkind = \"tape-dsmc\"\ndsmc = \"{}\"\noptfile = \"/etc/dsm.opt\"\nerror_log = \"{}\"\npassword_dir = \"{}\"\nretrieve_verify = true\n{extra}",
            dsmc.display(),
            log.display(),
            pw.display()
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
            args.starts_with(&format!(
                "archive -optfile=/etc/dsm.opt -errorlogname={} -description=vigil prod cp-1 revision",
                log.display()
            )),
            "{args}"
        );
        if want_ok {
            assert!(args.contains("\nretrieve "), "retrieve-verify ran: {args}");
        } else {
            let e = so["error"].as_str().unwrap();
            assert!(
                e.contains(&format!("return code {rc}"))
                    && e.contains("ANS1228E")
                    && e.contains(&format!("{} (tail):", log.display()))
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

    // delete: tape retention belongs to TSM, so the tape copy is refused
    // and the bastion's copy of that archive stays with it.
    let victim = l["archives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            let stores = stores_in(&a["locations"]);
            stores == ["local", "tape"]
        })
        .map(|a| a["id"].as_str().unwrap().to_string())
        .next_back()
        .unwrap_or_else(|| panic!("no archive both local and on tape: {l}"));
    let local_copies = || archives(&cb.snapshot_dir.join("cp-1")).len();
    let before = local_copies();
    let out = vigil("vigil-snapshot", &cfg, &["delete", &victim, "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = text(&out);
    assert!(
        o.contains("tape: FAILED") && o.contains("dsmc delete archive"),
        "{o}"
    );
    assert!(
        o.contains("local: FAILED") && o.contains("stays until it is"),
        "{o}"
    );
    assert_eq!(local_copies(), before, "{o}");
    // Only the bastion's copy, by choice: it goes, the tape catalog keeps its entry.
    let out = vigil(
        "vigil-snapshot",
        &cfg,
        &["delete", &victim, "--sink", "local", "--force"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(local_copies(), before - 1);
    let l = json(&vigil("vigil-snapshot", &cfg, &["list", "--all", "--json"]));
    let row = l["archives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == victim.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{victim} no longer listed: {l}"));
    assert_eq!(row["locations"][0]["store"], "tape", "{row}");
}

/// Every path dsmc writes is one the config names: by default its error log
/// (and DSM_LOG, and its cwd) is `<state.dir>/tape/<sink>/`, its password dir
/// `<state.dir>/tape/password`, never the read-only install dir; a path the
/// job cannot write, or a password file of another user, is named by its key
/// before dsmc runs.
#[test]
fn tape_dsmc_paths_follow_config() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/pods/", 20, 200, false, 24);
    let key = age_key(t.path());
    let state = t.path().join("state");
    let pw = state.join("tape/password");
    let dsmc = dsmc_stub(t.path(), &pw);
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    let sink = |extra: &str| {
        format!(
            "\n[[sink]]\nname = \"tape\"\nkind = \"tape-dsmc\"\ndsmc = \"{}\"\n{extra}",
            dsmc.display()
        )
    };
    cb.extra = sink("");
    let cfg = cb.write("vigil.toml");

    // 1. The stand-in itself fails with 12 when its error log cannot be written.
    let blocker = t.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    std::fs::write(t.path().join("rc"), "0").unwrap();
    let o = Command::new(&dsmc)
        .arg(format!(
            "-errorlogname={}",
            blocker.join("dsmerror.log").display()
        ))
        .current_dir(t.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", text(&o));

    // 2. Defaults: everything under state.dir; rc 12 quotes this run's log lines only.
    let log_dir = state.join("tape/tape");
    let log = log_dir.join("dsmerror.log");
    std::fs::create_dir_all(&log_dir).unwrap();
    std::fs::write(&log, "01/01/2026 ANS9999E an error of an earlier run\n").unwrap();
    std::fs::write(t.path().join("rc"), "12").unwrap();
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let e = sink_outcome(&state, "tape")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.contains("return code 12")
            && e.contains(&format!("{} (tail):", log.display()))
            && e.contains("ANS1311E")
            && !e.contains("ANS9999E"),
        "{e}"
    );
    assert!(std::fs::read_to_string(&log).unwrap().contains("ANS1311E"));
    let env = std::fs::read_to_string(t.path().join("dsmc.env")).unwrap();
    assert!(
        env.contains(&format!(
            "DSM_LOG={}/ cwd={}",
            log_dir.display(),
            log_dir.display()
        )),
        "{env}"
    );
    assert!(log_dir.join("dsminstr.log").exists());
    assert!(
        pw.join("TSM.KDB").exists(),
        "password written to password_dir"
    );
    assert!(
        !t.path().join("tsm/dsmerror.log").exists() && !t.path().join("dsmerror.log").exists(),
        "nothing written beside the client or in the test's cwd"
    );
    std::fs::write(t.path().join("rc"), "0").unwrap();
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A run whose sink setting is refused before dsmc runs: the sink's error.
    let refused = |cb: &mut ConfigBuilder, extra: String| -> String {
        let _ = std::fs::remove_file(t.path().join("dsmc.args"));
        cb.extra = sink(&extra);
        let cfg = cb.write("vigil.toml");
        let out = vigil("vigil-snapshot", &cfg, &["run"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(!t.path().join("dsmc.args").exists(), "dsmc ran");
        sink_outcome(&state, "tape")["error"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // 3. An error_log the job cannot write is named by its key; dsmc never runs.
    let e = refused(
        &mut cb,
        format!(
            "error_log = \"{}\"\n",
            blocker.join("dsmerror.log").display()
        ),
    );
    assert!(
        e.contains("error_log: cannot create its directory") && e.contains("ReadWritePaths"),
        "{e}"
    );

    // 4. A password file of another user (left by a root `dsmc set password`)
    // is named before dsmc runs. Needs root to chown, as the tests run.
    if is_root() {
        let other = t.path().join("other-pw");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("TSM.sth"), "").unwrap();
        std::os::unix::fs::chown(other.join("TSM.sth"), Some(4242), Some(4242)).unwrap();
        let e = refused(&mut cb, format!("password_dir = \"{}\"\n", other.display()));
        assert!(
            e.contains("password_dir:") && e.contains("TSM.sth belongs to uid 4242"),
            "{e}"
        );
    }

    // 5. Keys are checked: relative paths and -errorlogname in extra_args.
    for (extra, want) in [
        ("error_log = \"dsmerror.log\"\n", "sink[0].error_log"),
        ("password_dir = \"tsm\"\n", "sink[0].password_dir"),
        (
            "extra_args = [\"-errorlogname=/opt/tivoli/x.log\"]\n",
            "sink[0].extra_args",
        ),
    ] {
        cb.extra = sink(extra);
        let cfg = cb.write("vigil.toml");
        let out = vigil("vigil-snapshot", &cfg, &["check-config"]);
        assert_eq!(out.status.code(), Some(2), "{extra}: {}", text(&out));
        assert!(text(&out).contains(want), "{extra}: {}", text(&out));
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
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

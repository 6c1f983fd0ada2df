//! Faults: stores that are down, slow or corrupting; full disks; kill -9 at
//! every stage of ship.
//!
//! Overlaps on purpose with tests/tests/vigil/sinks.rs (radosgw killed mid-run,
//! scrub of an overwritten object, kill -9 of a dir sink, a full fs sink):
//! those check the mechanics, these add the three promises to each case.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_tests::ceph::Rgw;
use vigil_tests::etcd::Cluster;
use vigil_tests::faults::*;
use vigil_tests::proxy::{Fault, Proxy};
use vigil_tests::*;

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn sink_outcome(state: &Path, sink: &str) -> serde_json::Value {
    let p = state.join("outcomes/sink").join(format!("{sink}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// A member behind a throttling proxy, so that a run takes seconds and can
/// be killed in the middle of its upload.
fn slow_members(cluster: &Cluster, bps: u64) -> (Vec<Proxy>, Vec<(String, String)>) {
    let proxies: Vec<Proxy> = cluster
        .members
        .iter()
        .map(|m| Proxy::start(m.client_port, Fault::Throttle(bps)))
        .collect();
    let members = cluster
        .config_members()
        .into_iter()
        .zip(&proxies)
        .map(|((n, _), p)| (n, p.endpoint("http")))
        .collect();
    (proxies, members)
}

fn sigkill(child: &mut std::process::Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// kill -9 in the middle of a streaming S3 upload leaves an incomplete
/// multipart upload (parts and all) in the bucket. The next run aborts the
/// ones under its own prefix and cluster, reports them as cleaned, and
/// leaves everyone else's alone.
#[test]
fn kill_9_mid_s3_upload_leaves_no_multipart_upload_behind() {
    let t = tempfile::tempdir().unwrap();
    let rgw = Rgw::start(&t.path().join("ceph"));
    rgw.make_bucket("etcd-backups");
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    // Incompressible, so the archive spans several 5 MiB parts.
    cluster.put_many("/registry/secrets/", 14000, 1024, true, 41);
    let key = age_key(t.path());
    let alerts = t.path().join("alerts.jsonl");

    // A good copy first: it must survive everything below.
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra = s3_sink(&rgw, "rgw", "vigil", 3) + &file_channel(&alerts);
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let good = keys(&rgw, "etcd-backups", "vigil/prod/");
    assert_eq!(good.len(), 2, "{good:?}");

    // The same cluster shipped to a second prefix, and killed there too:
    // uploads under another prefix are not this sink's to abort.
    let (_proxies, slow) = slow_members(&cluster, 1_500_000);
    let mut cb_slow = ConfigBuilder::new(t.path(), slow, &key.recipient);
    cb_slow.extra = s3_sink(&rgw, "rgw", "vigil", 3) + &s3_sink(&rgw, "other", "vigil-other", 3);
    let slow_cfg = cb_slow.write("slow.toml");
    let mut child = spawn_run(&slow_cfg);
    wait_for_upload(&rgw, "etcd-backups", "vigil/prod/", Duration::from_secs(30));
    wait_for_upload(
        &rgw,
        "etcd-backups",
        "vigil-other/prod/",
        Duration::from_secs(30),
    );
    // Let at least one part reach radosgw.
    std::thread::sleep(Duration::from_secs(5));
    sigkill(&mut child);
    let left = multipart_uploads(&rgw, "etcd-backups");
    let ours: Vec<_> = left
        .iter()
        .filter(|(k, _)| k.starts_with("vigil/prod/"))
        .collect();
    let theirs: Vec<_> = left
        .iter()
        .filter(|(k, _)| k.starts_with("vigil-other/"))
        .cloned()
        .collect();
    assert!(!ours.is_empty() && !theirs.is_empty(), "{left:?}");
    assert_eq!(
        keys(&rgw, "etcd-backups", "vigil/prod/"),
        good,
        "a half object is visible after kill -9"
    );

    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    let cleaned: Vec<String> = r["cleaned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    for (k, id) in &ours {
        assert!(
            cleaned
                .iter()
                .any(|c| c.contains(k.as_str()) && c.contains(id.as_str())),
            "the aborted upload {k} ({id}) is not reported as cleaned: {cleaned:?}"
        );
    }
    let left = multipart_uploads(&rgw, "etcd-backups");
    assert!(
        !left.iter().any(|(k, _)| k.starts_with("vigil/prod/")),
        "stale multipart uploads under the sink's prefix survived the next run: {left:?}"
    );
    let theirs_now: Vec<_> = left
        .into_iter()
        .filter(|(k, _)| k.starts_with("vigil-other/"))
        .collect();
    assert_eq!(
        theirs_now, theirs,
        "an upload outside the prefix was touched"
    );

    // Promise 1: the good copy is still there, beside the new one.
    let now = keys(&rgw, "etcd-backups", "vigil/prod/");
    assert!(good.iter().all(|g| now.contains(g)), "{good:?} vs {now:?}");
    assert_eq!(now.len(), 4, "{now:?}");
    assert_only_complete_pairs(&now, &rgw, "etcd-backups");
    // Promise 2: the killed run's local partial is gone too.
    assert_no_plaintext(&cb.snapshot_dir);
    // Promise 3: the run says what it removed (no alert: nothing is wrong now).
    assert!(
        text(&out).contains("removed leftover of an interrupted run"),
        "{}",
        text(&out)
    );
    assert!(fired(&cfg, &alerts).is_empty());
}

/// Promise 1 locally: `n` archives of `member`, each sealed, verified, and
/// matching its manifest.
fn assert_local_verified(snapshots: &Path, member: &str, n: usize) -> Vec<std::path::PathBuf> {
    let a = archives(&snapshots.join(member));
    assert_eq!(a.len(), n, "{member}: {a:?}");
    for p in &a {
        let m = manifest(p);
        assert!(
            m["verified_at"].is_string(),
            "{}: not verified: {m}",
            p.display()
        );
        assert_eq!(
            m["archive_sha256"],
            sha256_hex(p).as_str(),
            "{}",
            p.display()
        );
    }
    a
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// radosgw dies while a run streams to it: the local archive is still made
/// and verified, the sink is marked failed and `sink_down` fires, nothing on
/// the sink is pruned or left half-written, and once radosgw is back the
/// next run ships the backlog and aborts the upload the outage stranded.
#[test]
fn s3_store_down_mid_run() {
    let t = tempfile::tempdir().unwrap();
    let rgw = Rgw::start(&t.path().join("ceph"));
    rgw.make_bucket("etcd-backups");
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/secrets/", 14000, 1024, true, 42);
    let key = age_key(t.path());
    let alerts = t.path().join("alerts.jsonl");
    let state = t.path().join("state");
    let sinks = s3_sink(&rgw, "rgw", "vigil", 10) + &file_channel(&alerts);
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra = sinks.clone();
    let cfg = cb.write("vigil.toml");
    for _ in 0..2 {
        let out = vigil("vigil-snapshot", &cfg, &["run"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let before = keys(&rgw, "etcd-backups", "vigil/prod/");
    assert_eq!(before.len(), 4, "{before:?}");

    let (_proxies, slow) = slow_members(&cluster, 1_500_000);
    let mut cb_slow = ConfigBuilder::new(t.path(), slow, &key.recipient);
    cb_slow.extra = sinks;
    let slow_cfg = cb_slow.write("slow.toml");
    let t0 = Instant::now();
    let child = spawn_run(&slow_cfg);
    wait_for_upload(&rgw, "etcd-backups", "vigil/prod/", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    rgw.kill_rgw();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", text(&out));
    assert!(
        t0.elapsed() < Duration::from_secs(120),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let so = sink_outcome(&state, "rgw");
    assert_eq!(so["ok"], false, "{so}");
    assert!(so["error"].as_str().unwrap().contains("rgw"), "{so}");

    // 1: the run's own archive is made and verified, the older ones kept.
    let local = assert_local_verified(&cb.snapshot_dir, "cp-1", 3);
    // 2: nothing else on the bastion.
    assert_no_plaintext(&cb.snapshot_dir);
    // 3: an alert names the sink.
    let f = fired(&cfg, &alerts);
    assert!(f.contains(&"sink_down{sink=\"rgw\"}".to_string()), "{f:?}");

    rgw.start_rgw();
    assert_eq!(
        keys(&rgw, "etcd-backups", "vigil/prod/"),
        before,
        "the sink changed while it was down"
    );
    let stranded = multipart_uploads(&rgw, "etcd-backups");
    assert!(
        stranded.iter().any(|(k, _)| k.starts_with("vigil/prod/")),
        "the outage stranded no upload, so this case tests nothing: {stranded:?}"
    );
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    let shipped = r["sinks"][0]["shipped"].as_array().unwrap();
    assert!(
        shipped
            .iter()
            .any(|s| s.as_str().unwrap().ends_with(&file_name(&local[2]))),
        "the archive of the outage was not shipped: {shipped:?}"
    );
    let now = keys(&rgw, "etcd-backups", "vigil/prod/");
    assert_only_complete_pairs(&now, &rgw, "etcd-backups");
    for a in assert_local_verified(&cb.snapshot_dir, "cp-1", 4) {
        let k = format!("vigil/prod/cp-1/{}", file_name(&a));
        assert!(now.iter().any(|(x, _)| *x == k), "{k} missing: {now:?}");
    }
    let left = multipart_uploads(&rgw, "etcd-backups");
    assert!(
        !left.iter().any(|(k, _)| k.starts_with("vigil/prod/")),
        "the upload the outage stranded is still there: {left:?}"
    );
    assert_eq!(sink_outcome(&state, "rgw")["ok"], true);
    notify_once(&cfg);
    assert!(
        alert_items(&alerts)
            .iter()
            .any(|i| i["event"] == "resolved" && i["alert"]["key"] == "sink_down{sink=\"rgw\"}"),
        "sink_down was not resolved"
    );
}

/// A store that accepts connections and then never answers: the run ends
/// within the configured timeouts, with an error naming the sink and its
/// URL, and the local archive is kept.
#[test]
fn stalled_s3_store_fails_in_bounded_time() {
    let t = tempfile::tempdir().unwrap();
    let rgw = Rgw::start(&t.path().join("ceph"));
    rgw.make_bucket("etcd-backups");
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/secrets/", 2000, 1024, true, 43);
    let key = age_key(t.path());
    let alerts = t.path().join("alerts.jsonl");
    let state = t.path().join("state");
    let stall = Proxy::start(rgw.port, Fault::Stall(0));
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra = s3_sink(&rgw, "rgw", "vigil", 10)
        .replace(&rgw.endpoint(), &stall.endpoint("http"))
        .replace("\ntimeout = \"30s\"", "\ntimeout = \"3s\"")
        + &file_channel(&alerts);
    let cfg = cb.write("vigil.toml");
    let t0 = Instant::now();
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Listing (3 s) and the upload (3 s a try, 2 tries, within 2 s of retries), with slack.
    assert!(took < Duration::from_secs(45), "the run took {took:?}");
    let so = sink_outcome(&state, "rgw");
    let err = so["error"].as_str().unwrap();
    assert!(
        err.contains("rgw") && err.contains(&format!("127.0.0.1:{}", stall.port)),
        "the error names neither the sink nor its URL: {err}"
    );
    assert_local_verified(&cb.snapshot_dir, "cp-1", 1);
    assert_no_plaintext(&cb.snapshot_dir);
    let f = fired(&cfg, &alerts);
    assert!(f.contains(&"sink_down{sink=\"rgw\"}".to_string()), "{f:?}");

    // The store answers again: the backlog ships, and the uploads that the
    // stalled requests created (vigil never saw their ids) are aborted.
    drop(stall);
    let stranded = multipart_uploads(&rgw, "etcd-backups");
    assert!(
        stranded.iter().any(|(k, _)| k.starts_with("vigil/prod/")),
        "the stalled store stranded no upload: {stranded:?}"
    );
    cb.extra = s3_sink(&rgw, "rgw", "vigil", 10) + &file_channel(&alerts);
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let now = keys(&rgw, "etcd-backups", "vigil/prod/");
    assert_eq!(now.len(), 4, "{now:?}");
    assert_only_complete_pairs(&now, &rgw, "etcd-backups");
    let left = multipart_uploads(&rgw, "etcd-backups");
    assert!(
        !left.iter().any(|(k, _)| k.starts_with("vigil/prod/")),
        "{left:?}"
    );
}

/// A sink copy with one flipped byte: scrub finds it and `scrub_failed`
/// fires; a restore on a host without local copies refuses it and takes the
/// good copy from the other sink.
#[test]
fn corrupt_sink_copy_is_found_and_never_restored() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/secrets/", 300, 1024, true, 44);
    let key = age_key(t.path());
    let alerts = t.path().join("alerts.jsonl");
    let sinks = format!(
        "\n[[sink]]\nname = \"tape\"\nkind = \"dir\"\npath = \"{}\"\n\n[[sink]]\nname = \"nas\"\nkind = \"dir\"\npath = \"{}\"\n",
        t.path().join("tape").display(),
        t.path().join("nas").display()
    ) + &file_channel(&alerts);
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra = sinks.clone();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let local = assert_local_verified(&cb.snapshot_dir, "cp-1", 1).remove(0);
    let m = manifest(&local);
    let victim = t.path().join("tape/prod/cp-1").join(file_name(&local));
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();

    let out = vigil("vigil-snapshot", &cfg, &["scrub", "--sink", "tape"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&file_name(&local)),
        "scrub does not name the copy: {}",
        text(&out)
    );
    let f = fired(&cfg, &alerts);
    assert!(
        f.iter()
            .any(|k| k.starts_with("scrub_failed") && k.contains("tape")),
        "{f:?}"
    );
    let out = vigil("vigil-snapshot", &cfg, &["scrub", "--sink", "nas"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A restore host: same sinks, no local store.
    let host = t.path().join("restore-host");
    std::fs::create_dir_all(&host).unwrap();
    let mut rb = ConfigBuilder::new(&host, cluster.config_members(), &key.recipient);
    rb.extra = sinks;
    let rcfg = rb.write("vigil.toml");
    let outdir = t.path().join("out");
    std::fs::create_dir_all(&outdir).unwrap();
    let db = outdir.join("restore.db");
    let ident = key.identity_file.to_str().unwrap();
    let out = vigil(
        "vigil-restore",
        &rcfg,
        &[
            "fetch",
            "--member",
            "cp-1",
            "--identity",
            ident,
            "--out",
            db.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["source"], "nas", "{r}");
    assert!(
        text(&out).contains(victim.to_str().unwrap()) || text(&out).contains("tape"),
        "the refused copy is not named: {}",
        text(&out)
    );
    assert_eq!(sha256_hex(&db), m["snapshot_sha256"].as_str().unwrap());
    // No half-decrypted leftover of the refused copy beside the output.
    assert_eq!(all_files(&outdir), ["restore.db"]);
    // Asked for the corrupt copy only, fetch refuses and writes nothing.
    let db2 = outdir.join("bad.db");
    let out = vigil(
        "vigil-restore",
        &rcfg,
        &[
            "fetch",
            "--member",
            "cp-1",
            "--source",
            "tape",
            "--identity",
            ident,
            "--out",
            db2.to_str().unwrap(),
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(all_files(&outdir), ["restore.db"]);
    assert!(local.exists() && bytes.len() as u64 == m["archive_size"].as_u64().unwrap());
}

/// Mounts a tmpfs of `size` on `dir` (root only) and unmounts it on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount: {}", text(&o));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full dir sink, then a full snapshot dir: each failure stops only its
/// own part, leaves no partial file, prunes nothing, names the path, and
/// fires its alert.
#[test]
fn full_disks_fail_only_their_part() {
    if !is_root() {
        eprintln!(
            "skipped: mounting a tmpfs needs root (uid {})",
            current_uid()
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/pods/", 20, 100, false, 45);
    let key = age_key(t.path());
    let alerts = t.path().join("alerts.jsonl");
    let state = t.path().join("state");
    let tape = t.path().join("tape");
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    let _snap = Tmpfs::mount(&cb.snapshot_dir, "6m");
    let _tape = Tmpfs::mount(&tape, "2m");
    cb.extra = format!(
        "\n[[sink]]\nname = \"tape\"\nkind = \"dir\"\npath = \"{}\"\nkeep_last = 1\n",
        tape.display()
    ) + &file_channel(&alerts);
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = assert_local_verified(&cb.snapshot_dir, "cp-1", 1).remove(0);
    let on_tape = tape.join("prod/cp-1").join(file_name(&first));
    let tape_sha = sha256_hex(&on_tape);

    // 1. The sink fills up (a 2.6 MB archive, 2 MB of tmpfs).
    cluster.put_many("/registry/secrets/", 2500, 1024, true, 46);
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let so = sink_outcome(&state, "tape");
    let err = so["error"].as_str().unwrap();
    assert!(
        err.contains("No space left on device") && err.contains(tape.to_str().unwrap()),
        "the error does not name the full path: {err}"
    );
    assert_eq!(
        outcome(&state, "cp-1")["ok"],
        true,
        "the local part failed too"
    );
    assert_local_verified(&cb.snapshot_dir, "cp-1", 2);
    assert_eq!(
        all_files(&tape.join("prod/cp-1")),
        [file_name(&first), format!("{}.json", file_name(&first))],
        "keep_last = 1 pruned the only sink copy for a failed one, or a partial is left"
    );
    assert_eq!(sha256_hex(&on_tape), tape_sha);
    let f = fired(&cfg, &alerts);
    assert!(f.contains(&"sink_down{sink=\"tape\"}".to_string()), "{f:?}");

    // 2. The snapshot dir fills up too (a 6.6 MB archive, 6 MB of tmpfs).
    cluster.put_many("/registry/configmaps/", 4000, 1024, true, 47);
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = outcome(&state, "cp-1");
    assert_eq!(o["ok"], false, "{o}");
    let err = o["error"].as_str().unwrap();
    assert!(
        err.contains("No space left on device") && err.contains(cb.snapshot_dir.to_str().unwrap()),
        "the error does not name the full path: {err}"
    );
    assert_local_verified(&cb.snapshot_dir, "cp-1", 2);
    assert_no_plaintext(&cb.snapshot_dir);
    assert_no_plaintext(&tape);
    assert_eq!(sha256_hex(&on_tape), tape_sha);
    let f = fired(&cfg, &alerts);
    assert!(
        f.contains(&"snapshot_failed{member=\"cp-1\"}".to_string()),
        "{f:?}"
    );
}

fn current_uid() -> String {
    let o = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// kill -9 while a run streams into a dir sink, and while it ships the
/// backlog to S3: no half object is visible under an archive's name, and the
/// next run completes, ships everything and leaves no upload behind.
#[test]
fn kill_9_at_every_stage_of_ship() {
    let t = tempfile::tempdir().unwrap();
    let rgw = Rgw::start(&t.path().join("ceph"));
    rgw.make_bucket("etcd-backups");
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/secrets/", 14000, 1024, true, 48);
    let key = age_key(t.path());
    let tape = t.path().join("tape");
    let dir_sink = format!(
        "\n[[sink]]\nname = \"tape\"\nkind = \"dir\"\npath = \"{}\"\n",
        tape.display()
    );
    let tape_member = tape.join("prod/cp-1");
    let (_proxies, slow) = slow_members(&cluster, 1_500_000);

    // 1. Streaming into the dir sink.
    let mut cb_slow = ConfigBuilder::new(t.path(), slow, &key.recipient);
    cb_slow.extra = dir_sink.clone();
    let mut child = spawn_run(&cb_slow.write("slow.toml"));
    wait_for_partial(std::slice::from_ref(&tape_member));
    std::thread::sleep(Duration::from_millis(500));
    sigkill(&mut child);
    assert!(
        archives(&tape_member).is_empty(),
        "a half archive is visible in the dir sink"
    );

    // Two good archives, in the dir sink only: the S3 sink starts with a backlog.
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra = dir_sink.clone();
    let cfg = cb.write("vigil.toml");
    for _ in 0..2 {
        let out = vigil("vigil-snapshot", &cfg, &["run"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    assert_no_plaintext(&tape);
    let old = assert_local_verified(&cb.snapshot_dir, "cp-1", 2);

    // 2. Shipping the backlog to S3: kill -9 once an old archive is uploading.
    // Through a 4 MB/s link, so that each 14 MB upload takes seconds.
    let link = SlowLink::start(rgw.port, 4_000_000);
    cb.extra = dir_sink.clone()
        + &s3_sink(&rgw, "rgw", "vigil", 10).replace(&rgw.endpoint(), &link.endpoint());
    let mut child = spawn_run(&cb.write("slow-link.toml"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let olds: Vec<String> = old
        .iter()
        .map(|a| format!("vigil/prod/cp-1/{}", file_name(a)))
        .collect();
    while !multipart_uploads(&rgw, "etcd-backups")
        .iter()
        .any(|(k, _)| olds.contains(k))
    {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the backlog never started uploading"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigkill(&mut child);
    drop(link);
    cb.extra = dir_sink + &s3_sink(&rgw, "rgw", "vigil", 10);
    let cfg = cb.write("vigil.toml");
    let objs = keys(&rgw, "etcd-backups", "vigil/prod/");
    assert_only_complete_pairs(&objs, &rgw, "etcd-backups");

    // The next run completes: every local archive in both sinks, whole.
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("removed leftover of an interrupted run")
            && text(&out).contains("(incomplete multipart upload "),
        "the upload of the killed backlog is not reported as cleaned: {}",
        text(&out)
    );
    let objs = keys(&rgw, "etcd-backups", "vigil/prod/");
    assert_only_complete_pairs(&objs, &rgw, "etcd-backups");
    for a in assert_local_verified(&cb.snapshot_dir, "cp-1", 4) {
        let n = file_name(&a);
        assert!(
            objs.iter().any(|(k, _)| k.ends_with(&n)),
            "{n} not in S3: {objs:?}"
        );
        assert_eq!(sha256_hex(&tape_member.join(&n)), sha256_hex(&a), "{n}");
    }
    assert_no_plaintext(&tape);
    assert_no_plaintext(&cb.snapshot_dir);
    let left = multipart_uploads(&rgw, "etcd-backups");
    assert!(
        !left.iter().any(|(k, _)| k.starts_with("vigil/prod/")),
        "{left:?}"
    );
}

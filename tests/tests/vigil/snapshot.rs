//! vigil-snapshot against real etcd members on loopback.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_tests::etcd::Cluster;
use vigil_tests::proxy::{Fault, Proxy};
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

#[path = "snapshot/named.rs"]
mod named;
#[path = "snapshot/proof.rs"]
mod proof;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn mtls_happy_path_gives_the_open_format() {
    let t = tempfile::tempdir().unwrap();
    let certs = tls::make(&t.path().join("pki"));
    let cluster = Cluster::start(t.path(), &NAMES, Some(certs.clone()));
    cluster.put_many("/registry/configmaps/default/", 300, 400, false, 1);
    cluster.put_many("/registry/secrets/default/", 20, 64, true, 2);
    let key = age_key(t.path());
    let token = t.path().join("token");
    std::fs::write(&token, "K10secret-server-token::server:abc\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.tls = Some(certs);
    cb.extra_snapshot = format!("rke2_token_file = \"{}\"\n", token.display());
    let cfg = cb.write("vigil.toml");

    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["consistency"]["ok"], true);

    let (rev, kvs) = cluster.dump(0);
    assert_eq!(mode(&cb.snapshot_dir), 0o700);
    for name in NAMES {
        let dir = cb.snapshot_dir.join(name);
        assert_eq!(mode(&dir), 0o700);
        let a = archives(&dir);
        assert_eq!(a.len(), 1, "{name}: {:?}", all_files(&dir));
        assert_eq!(mode(&a[0]), 0o600);
        let m = manifest(&a[0]);
        for field in [
            "cluster",
            "member",
            "member_id",
            "endpoint",
            "revision",
            "raft_index",
            "raft_term",
            "etcd_version",
            "db_size",
            "snapshot_sha256",
            "archive_sha256",
            "archive_size",
            "age_recipients",
            "created_at",
            "vigil_version",
            "key_count",
            "db_size_in_use",
            "leader",
        ] {
            assert!(!m[field].is_null(), "manifest lacks {field}: {m}");
        }
        assert_eq!(m["member"], name);
        assert_eq!(m["revision"], rev);
        assert_eq!(m["key_count"], kvs.len() as i64);
        assert_eq!(m["age_recipients"][0], key.recipient.as_str());
        assert_eq!(m["archive_sha256"], sha256_hex(&a[0]).as_str());
        assert_eq!(m["archive_size"], std::fs::metadata(&a[0]).unwrap().len());
        assert!(m["verified_at"].is_string());
        // Proven over mTLS too: the live member and its peers answered.
        assert_eq!(m["restore_proof"]["result"], "proven", "{m}");
        assert_eq!(
            m["restore_proof"]["peers_agree"].as_array().unwrap().len(),
            2,
            "{m}"
        );

        // Contract 2: age -d | zstd -d gives exactly what etcd streamed.
        let snap = t.path().join(format!("{name}.db"));
        open_archive(&a[0], &key, &snap);
        assert_eq!(sha256_hex(&snap), m["snapshot_sha256"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&snap).unwrap().len(),
            m["snapshot_size"].as_u64().unwrap()
        );
        let restored = t.path().join(format!("restored-{name}"));
        let o = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "restore"])
            .arg(&snap)
            .arg("--data-dir")
            .arg(&restored)
            .args([
                "--name",
                name,
                "--initial-cluster",
                &format!("{name}=http://127.0.0.1:1"),
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:1",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "etcdctl snapshot restore: {}", text(&o));
        let o = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(&snap)
            .output()
            .unwrap();
        let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(st["revision"], rev);
    }
    // No plaintext snapshot anywhere under the archive dir.
    let o = Command::new("grep")
        .args(["-r", "-l", "abcdefghabcdefgh"])
        .arg(&cb.snapshot_dir)
        .output()
        .unwrap();
    assert!(o.stdout.is_empty(), "plaintext found: {}", text(&o));

    // The RKE2 token is archived encrypted and opens with the real age.
    let tok = cb.snapshot_dir.join("rke2/prod-server-token.age");
    assert_eq!(mode(&tok), 0o600);
    let o = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key.identity_file)
        .arg(&tok)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "K10secret-server-token::server:abc"
    );

    // list shows every member, verified.
    let out = vigil("vigil-snapshot", &cfg, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["verified"] == true));
    let out = vigil("vigil-snapshot", &cfg, &["list"]);
    assert!(text(&out).contains("VERIFIED") && text(&out).contains("cp-3"));
    for name in NAMES {
        assert_eq!(outcome(&t.path().join("state"), name)["ok"], true);
    }
}

#[test]
fn one_member_down_does_not_stop_the_others() {
    let t = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/pods/", 50, 200, false, 3);
    let key = age_key(t.path());
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = "connect_timeout = \"2s\"\n".into();
    let cfg = cb.write("vigil.toml");
    cluster.kill(1);
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = outcome(&t.path().join("state"), "cp-2");
    assert_eq!(o["ok"], false);
    let err = o["error"].as_str().unwrap();
    assert!(
        err.contains("cp-2") && err.contains(&cluster.endpoint(1)),
        "{err}"
    );
    assert!(
        ["connect", "status"].contains(&o["stage"].as_str().unwrap()),
        "{o}"
    );
    for (i, name) in [(0, "cp-1"), (2, "cp-3")] {
        let _ = i;
        assert_eq!(archives(&cb.snapshot_dir.join(name)).len(), 1);
        assert_eq!(outcome(&t.path().join("state"), name)["ok"], true);
    }
    assert!(archives(&cb.snapshot_dir.join("cp-2")).is_empty());
    assert!(text(&out).contains("FAIL"));
}

/// Runs one member behind a faulty proxy and returns (exit code, outcome, member dir files).
fn faulty_member(
    fault: Fault,
    extra: &str,
    keys: usize,
) -> (Option<i32>, serde_json::Value, Vec<String>, String) {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/", keys, 1024, true, 4);
    let proxy = Proxy::start(cluster.members[0].client_port, fault);
    let mut members = cluster.config_members();
    members[0].1 = proxy.endpoint("http");
    let key = age_key(t.path());
    let mut cb = ConfigBuilder::new(t.path(), members, &key.recipient);
    cb.extra_snapshot = extra.into();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    for name in ["cp-2", "cp-3"] {
        assert_eq!(
            archives(&cb.snapshot_dir.join(name)).len(),
            1,
            "{}",
            text(&out)
        );
    }
    (
        out.status.code(),
        outcome(&t.path().join("state"), "cp-1"),
        all_files(&cb.snapshot_dir.join("cp-1")),
        text(&out),
    )
}

#[test]
fn corrupted_stream_is_caught_by_the_hash() {
    let (code, o, files, out) = faulty_member(Fault::Flip(400_000), "", 800);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(o["stage"], "verify", "{o}");
    assert!(
        o["error"].as_str().unwrap().contains("sha256 mismatch"),
        "{o}"
    );
    assert!(files.is_empty(), "nothing may be left: {files:?}");
}

#[test]
fn truncated_stream_leaves_nothing() {
    let (code, o, files, out) = faulty_member(Fault::Cut(400_000), "", 800);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(o["ok"], false);
    assert!(
        ["stream", "verify"].contains(&o["stage"].as_str().unwrap()),
        "{o}"
    );
    assert!(o["error"].as_str().unwrap().contains("cp-1"), "{o}");
    assert!(files.is_empty(), "nothing may be left: {files:?}");
}

#[test]
fn cleanly_ended_short_stream_is_caught() {
    // A well-formed gRPC stream that ends early: only verification can tell.
    // Dropped data is never acknowledged, so the consistency check that would
    // reuse this half-starved connection is off.
    let (code, o, files, out) = faulty_member(
        Fault::EndStreamAfter(20),
        "verify_consistency = false\n",
        800,
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(o["stage"], "verify", "{o}");
    assert!(o["error"].as_str().unwrap().contains("truncated"), "{o}");
    assert!(files.is_empty(), "nothing may be left: {files:?}");
}

#[test]
fn chunk_missing_mid_stream_is_caught_by_the_hash() {
    // One 32 KiB message vanishes: the size rule still holds, the hash does not.
    let (code, o, files, out) = faulty_member(
        Fault::DropMessage(10),
        "verify_consistency = false\nstall_timeout = \"10s\"\n",
        800,
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(o["stage"], "verify", "{o}");
    assert!(
        o["error"].as_str().unwrap().contains("sha256 mismatch"),
        "{o}"
    );
    assert!(files.is_empty(), "nothing may be left: {files:?}");
}

#[test]
fn stalled_member_is_given_up_on() {
    let t0 = Instant::now();
    let (code, o, files, out) =
        faulty_member(Fault::Stall(200_000), "stall_timeout = \"2s\"\n", 800);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(o["stage"], "stream", "{o}");
    assert!(
        o["error"].as_str().unwrap().contains("stall_timeout"),
        "{o}"
    );
    assert!(files.is_empty(), "{files:?}");
    assert!(t0.elapsed() < Duration::from_secs(60));
}

#[test]
fn member_killed_mid_stream() {
    let t = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/", 1500, 1024, true, 5);
    let proxy = Proxy::start(cluster.members[1].client_port, Fault::Throttle(300_000));
    let mut members = cluster.config_members();
    members[1].1 = proxy.endpoint("http");
    let key = age_key(t.path());
    let cb = ConfigBuilder::new(t.path(), members, &key.recipient);
    let cfg = cb.write("vigil.toml");
    let child = spawn_run(&cfg);
    // Wait until the throttled member is mid-write, then kill it.
    let dir = cb.snapshot_dir.join("cp-2");
    wait_for_partial(std::slice::from_ref(&dir));
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill(1);
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", text(&out));
    assert_eq!(out.status.code(), Some(1));
    let o = outcome(&t.path().join("state"), "cp-2");
    assert_eq!(o["stage"], "stream", "{o}");
    assert!(all_files(&dir).is_empty(), "{:?}", all_files(&dir));
    assert_eq!(archives(&cb.snapshot_dir.join("cp-1")).len(), 1);
    assert_eq!(archives(&cb.snapshot_dir.join("cp-3")).len(), 1);
}

#[test]
fn retention_keeps_the_last_five_over_seven_runs() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    let key = age_key(t.path());
    let cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    let cfg = cb.write("vigil.toml");
    let mut run_ids = Vec::new();
    for i in 0..7 {
        cluster.put_many(&format!("/registry/run{i}/"), 10, 100, false, i);
        let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        run_ids.push(r["run_id"].as_str().unwrap().to_string());
        let pruned: usize = r["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["pruned"].as_array().unwrap().len())
            .sum();
        assert_eq!(pruned, if i >= 5 { 3 } else { 0 }, "run {i}");
    }
    for name in NAMES {
        let a = archives(&cb.snapshot_dir.join(name));
        assert_eq!(a.len(), 5, "{name}: {a:?}");
        for (p, id) in a.iter().zip(&run_ids[2..]) {
            assert!(p.to_string_lossy().contains(id.as_str()), "{p:?} vs {id}");
        }
        // Every kept archive still has its manifest and nothing else is left.
        assert_eq!(all_files(&cb.snapshot_dir.join(name)).len(), 10);
    }
}

#[test]
fn a_second_concurrent_run_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/", 600, 1024, true, 6);
    let proxy = Proxy::start(cluster.members[0].client_port, Fault::Throttle(250_000));
    let mut members = cluster.config_members();
    members[0].1 = proxy.endpoint("http");
    let key = age_key(t.path());
    let cb = ConfigBuilder::new(t.path(), members, &key.recipient);
    let cfg = cb.write("vigil.toml");
    let first = spawn_run(&cfg);
    let dir = cb.snapshot_dir.join("cp-1");
    wait_for_partial(std::slice::from_ref(&dir));
    let second = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second).contains("already running"),
        "{}",
        text(&second)
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    for name in NAMES {
        assert_eq!(archives(&cb.snapshot_dir.join(name)).len(), 1);
    }
}

#[test]
fn kill_9_then_rerun_completes() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/", 600, 1024, true, 7);
    let proxies: Vec<Proxy> = (0..3)
        .map(|i| Proxy::start(cluster.members[i].client_port, Fault::Throttle(200_000)))
        .collect();
    let key = age_key(t.path());
    let slow: Vec<(String, String)> = NAMES
        .iter()
        .zip(&proxies)
        .map(|(n, p)| (n.to_string(), p.endpoint("http")))
        .collect();
    let mut cb = ConfigBuilder::new(t.path(), slow, &key.recipient);
    // Killed while all three are mid-write.
    cb.extra_snapshot = "max_concurrent_members = 3\n".into();
    let slow_cfg = cb.write("slow.toml");
    let mut child = spawn_run(&slow_cfg);
    let dirs: Vec<_> = NAMES.iter().map(|n| cb.snapshot_dir.join(n)).collect();
    wait_for_partial(&dirs);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for n in NAMES {
        assert!(
            archives(&cb.snapshot_dir.join(n)).is_empty(),
            "a half archive is visible"
        );
    }
    let out = vigil("vigil-snapshot", &slow_cfg, &["list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    let fast =
        ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient).write("fast.toml");
    let out = vigil("vigil-snapshot", &fast, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("removed leftover of an interrupted run"));
    for n in NAMES {
        let files = all_files(&cb.snapshot_dir.join(n));
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(!files.iter().any(|f| f.ends_with(".partial")));
    }
}

#[test]
fn diverged_member_fails_the_run_and_is_named() {
    let t = tempfile::tempdir().unwrap();
    let a = Cluster::start(&t.path().join("a"), &["cp-1", "cp-2"], None);
    let b = Cluster::start(&t.path().join("b"), &["cp-3"], None);
    a.put_many("/registry/pods/", 40, 100, false, 8);
    b.put_many("/registry/pods/", 40, 100, false, 9);
    let mut members = a.config_members();
    members.extend(b.config_members());
    let key = age_key(t.path());
    let cb = ConfigBuilder::new(t.path(), members, &key.recipient);
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = outcome(&t.path().join("state"), "cp-3");
    assert_eq!(o["stage"], "consistency", "{o}");
    assert!(
        o["error"].as_str().unwrap().contains("cp-3")
            && o["error"].as_str().unwrap().contains("cluster"),
        "{o}"
    );
    assert_eq!(outcome(&t.path().join("state"), "cp-1")["ok"], true);
    assert!(text(&out).contains("consistency: FAIL cp-3"));
}

#[test]
fn full_disk_is_a_clear_error_and_old_archives_survive() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/pods/", 20, 100, false, 10);
    let key = age_key(t.path());
    let cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    std::fs::create_dir_all(&cb.snapshot_dir).unwrap();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1200k,mode=0700", "tmpfs"])
        .arg(&cb.snapshot_dir)
        .output()
        .unwrap();
    assert!(m.status.success(), "{}", text(&m));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(cb.snapshot_dir.clone());
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before: Vec<_> = NAMES
        .iter()
        .map(|n| archives(&cb.snapshot_dir.join(n)))
        .collect();

    cluster.put_many("/registry/secrets/", 1500, 1024, true, 11);
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("No space left on device") && text(&out).contains("disk is full"),
        "{}",
        text(&out)
    );
    for (n, old) in NAMES.iter().zip(before) {
        let files = all_files(&cb.snapshot_dir.join(n));
        assert!(!files.iter().any(|f| f.ends_with(".partial")), "{files:?}");
        for a in &old {
            assert!(a.exists(), "old archive {a:?} was lost");
            assert_eq!(manifest(a)["archive_sha256"], sha256_hex(a).as_str());
        }
    }
}

#[test]
fn unencrypted_runs_only_when_explicit_and_warn() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/pods/", 20, 100, false, 12);
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), "");
    cb.recipient = None;
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no recipients and no explicit opt-out: {}",
        text(&out)
    );
    assert!(text(&out).contains("at least one recipient"));
    cb.extra_snapshot = "encryption = \"none\"\n".into();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("WARNING") && text(&out).contains("plaintext"));
    let f = all_files(&cb.snapshot_dir.join("cp-1"));
    let archive = f.iter().find(|n| n.ends_with(".db.zst")).unwrap();
    let p = cb.snapshot_dir.join("cp-1").join(archive);
    let o = Command::new("zstd").arg("-t").arg(&p).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn failures_become_alerts_and_recoveries_resolve_them() {
    let t = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/pods/", 20, 100, false, 13);
    let key = age_key(t.path());
    let alerts = t.path().join("alerts.jsonl");
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = "connect_timeout = \"2s\"\n".into();
    cb.extra = format!(
        "\n[[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
        alerts.display()
    );
    let cfg = cb.write("vigil.toml");

    cluster.kill(1);
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The job only queues; vigil-notify delivers.
    assert!(
        text(&out).contains("1 alert notification(s) queued for vigil-notify"),
        "{}",
        text(&out)
    );
    assert!(
        alert_events(&alerts).is_empty(),
        "the job delivered by itself"
    );
    notify_once(&cfg);
    let ev = alert_events(&alerts);
    assert_eq!(
        ev,
        [(
            "firing".to_string(),
            "snapshot_failed{member=\"cp-2\"}".to_string()
        )],
        "one message for one dead member"
    );

    cluster.restart(1);
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        alert_events(&alerts).len(),
        1,
        "the job delivered by itself"
    );
    notify_once(&cfg);
    let ev = alert_events(&alerts);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(
        ev[1],
        (
            "resolved".to_string(),
            "snapshot_failed{member=\"cp-2\"}".to_string()
        )
    );
}

/// A loopback webhook receiver: answers every POST with 200 "ok" and keeps
/// the bodies.
fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/services/T0/B0/JOBNEVERREADSME",
        l.local_addr().unwrap()
    );
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut r = BufReader::new(conn);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_ok() {
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (url, bodies)
}

/// Least privilege (issue 13): a job only queues alerts and never opens a
/// channel's secret. With the Slack webhook file missing, vigil-snapshot
/// still runs and queues; vigil-notify, which does need it, refuses to start
/// and names the key; once the file is there, vigil-notify delivers what the
/// job queued.
#[test]
fn jobs_queue_alerts_without_opening_channel_secrets() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &["cp-1"], None);
    cluster.put_many("/registry/pods/", 20, 100, false, 14);
    let key = age_key(t.path());
    let mut members = cluster.config_members();
    members.push((
        "cp-2".to_string(),
        format!("http://127.0.0.1:{}", free_port()),
    ));
    let webhook = t.path().join("credentials/slack-webhook");
    let mut cb = ConfigBuilder::new(t.path(), members, &key.recipient);
    cb.extra_snapshot = "connect_timeout = \"2s\"\n".into();
    cb.extra = format!(
        "\n[[alert.channel]]\nname = \"ops-slack\"\nkind = \"slack\"\nwebhook_url_file = \"{}\"\n",
        webhook.display()
    );
    let cfg = cb.write("vigil.toml");

    // The job runs (exit 1: cp-2 failed and was raised, not 2: config error)
    // without the webhook file, and queues the alert.
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("webhook_url_file"), "{}", text(&out));
    assert!(
        text(&out).contains("1 alert notification(s) queued for vigil-notify"),
        "{}",
        text(&out)
    );
    assert_eq!(outcome(&t.path().join("state"), "cp-1")["ok"], true);
    let out = vigil("vigil-snapshot", &cfg, &["check-config"]);
    assert!(!text(&out).contains("webhook_url_file"), "{}", text(&out));

    // vigil-notify delivers, so it is the one that needs (and names) the secret.
    let out = vigil("vigil-notify", &cfg, &["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("alert.channel[0].webhook_url_file"),
        "{}",
        text(&out)
    );

    // With the secret in place, vigil-notify delivers what the job queued.
    let (url, bodies) = webhook_receiver();
    std::fs::create_dir_all(webhook.parent().unwrap()).unwrap();
    std::fs::write(&webhook, format!("{url}\n")).unwrap();
    std::fs::set_permissions(&webhook, std::fs::Permissions::from_mode(0o600)).unwrap();
    notify_once(&cfg);
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains("snapshot_failed") && got[0].contains("cp-2") && got[0].contains("FIRING"),
        "{}",
        got[0]
    );
}

/// Issue #21 point 2: with `max_concurrent_members = 1` the members stream
/// one after the other, and `rate_limit` paces each stream.
#[test]
fn members_take_turns_and_streams_keep_the_rate_limit() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/secrets/", 120, 10_000, true, 21);
    let key = age_key(t.path());
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = "max_concurrent_members = 1\nrate_limit = \"1MiB\"\n".into();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        logs.matches("waiting for its turn (snapshot.max_concurrent_members = 1)")
            .count(),
        2,
        "{logs}"
    );
    // Three streams of at least `size` bytes each, one at a time, at 1 MiB/s.
    let sizes: Vec<f64> = r["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manifest"]["snapshot_size"].as_f64().unwrap())
        .collect();
    assert_eq!(sizes.len(), 3);
    assert!(sizes.iter().all(|s| *s > 1e6), "{sizes:?}");
    let floor_ms = sizes.iter().sum::<f64>() / (1u64 << 20) as f64 * 1000.0;
    let took = r["duration_ms"].as_f64().unwrap();
    assert!(
        took >= 0.9 * floor_ms,
        "the run took {took} ms, the limits allow no less than {floor_ms} ms"
    );
}

/// Issue #21 point 2: the preflight defers a member with an alarm raised
/// on it, checks again within the run, fails it (and alerts) when it never
/// gets its turn, and defers a member without a leader.
#[test]
fn preflight_defers_a_member_in_trouble_and_alerts_when_it_never_gets_its_turn() {
    use etcd_client::{AlarmAction, AlarmOptions, AlarmType};
    let t = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/pods/", 20, 100, false, 22);
    let key = age_key(t.path());
    let alarm = |action: AlarmAction| {
        let rt = Cluster::runtime();
        rt.block_on(async {
            let mut c = cluster.client(1).await;
            let id = c.status().await.unwrap().header().unwrap().member_id();
            let mut o = AlarmOptions::new();
            o.with_member(id);
            c.alarm(action, AlarmType::Nospace, Some(o)).await.unwrap();
            id
        })
    };
    let members = cluster.config_members();
    let config = |limit: &str| {
        let mut cb = ConfigBuilder::new(t.path(), members.clone(), &key.recipient);
        cb.extra_snapshot =
            format!("connect_timeout = \"2s\"\ndefer_retry = \"1s\"\ndefer_limit = \"{limit}\"\n");
        cb.write(&format!("vigil-{limit}.toml"))
    };
    let id = alarm(AlarmAction::Activate);

    // The alarm stays: cp-2 never gets its turn; the others are not held up.
    let out = vigil("vigil-snapshot", &config("2s"), &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = outcome(&t.path().join("state"), "cp-2");
    assert_eq!(o["ok"], false);
    let err = o["error"].as_str().unwrap();
    assert!(
        err.contains("never got its turn")
            && err.contains(&format!("alarm raised: NOSPACE on member {id:x}"))
            && err.contains("snapshot.defer_limit"),
        "{err}"
    );
    assert!(
        text(&out).contains("alert firing: snapshot_failed{member=\"cp-2\"}"),
        "{}",
        text(&out)
    );
    for name in ["cp-1", "cp-3"] {
        assert_eq!(outcome(&t.path().join("state"), name)["ok"], true);
    }

    // Cleared while cp-2 waits: it is checked again and archived in the same run.
    let cfg = config("60s");
    let log = t.path().join("deferred-run.log");
    let child = std::process::Command::new(bin("vigil-snapshot"))
        .args(["--config", cfg.to_str().unwrap(), "run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Cleared only once the run has deferred cp-2.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("deferred, checked again in 1s")
    {
        assert!(Instant::now() < deadline, "cp-2 was never deferred");
        std::thread::sleep(Duration::from_millis(50));
    }
    alarm(AlarmAction::Deactivate);
    let mut out = child.wait_with_output().unwrap();
    out.stderr = std::fs::read(&log).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cp2 = r["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member"] == "cp-2")
        .unwrap();
    assert_eq!(cp2["ok"], true, "{cp2}");
    let deferred = cp2["deferred"].as_array().unwrap();
    assert!(
        !deferred.is_empty() && deferred[0].as_str().unwrap().contains("NOSPACE"),
        "{cp2}"
    );

    // Quorum lost: the last member has no leader and is deferred too.
    let cfg_lost = config("2s");
    cluster.kill(1);
    cluster.kill(2);
    // Past etcd's election timeout (1 s), the member knows it has no leader.
    std::thread::sleep(Duration::from_secs(3));
    let out = vigil("vigil-snapshot", &cfg_lost, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = outcome(&t.path().join("state"), "cp-1")["error"]
        .as_str()
        .unwrap()
        .to_string();
    // "no leader" once the member noticed; a read that fails before it did.
    assert!(
        err.contains("never got its turn")
            && (err.contains("no leader") || err.contains("a linearizable read failed")),
        "{err}"
    );
}

/// The apiserver compacts every 5 minutes. A snapshot that takes longer
/// than that (a large database, a rate limit, a wait for its turn) still
/// archives: its revision and key count are taken just before the stream,
/// not looked up after it at a revision compacted meanwhile.
#[test]
fn compaction_during_a_long_stream_does_not_fail_the_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/secrets/", 120, 10_000, true, 23);
    let key = age_key(t.path());
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = "max_concurrent_members = 1\nrate_limit = \"1MiB\"\n".into();
    let cfg = cb.write("vigil.toml");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactor = {
        let stop = stop.clone();
        let ep = cluster.endpoint(0);
        std::thread::spawn(move || {
            Cluster::runtime().block_on(async {
                let mut c = etcd_client::Client::connect([ep], None).await.unwrap();
                // Like the apiserver, at a revision some time old (here 1 s,
                // there 5 minutes): the stream outlasts it either way.
                let mut seen = std::collections::VecDeque::new();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = c
                        .put("/registry/events/e", n.to_string(), None)
                        .await
                        .unwrap();
                    seen.push_back(r.header().unwrap().revision());
                    if seen.len() > 5 {
                        c.compact(seen.pop_front().unwrap(), None).await.unwrap();
                        n += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                n
            })
        })
    };
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let compactions = compactor.join().unwrap();
    assert!(compactions > 10, "only {compactions} compactions ran");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for m in r["members"].as_array().unwrap() {
        assert_eq!(m["ok"], true, "{m}");
        assert!(m["manifest"]["key_count"].as_i64().unwrap() >= 121, "{m}");
        // Proven too: at the snapshot's revision, or, once compacted past
        // it, at the one read just before the stream (and said so).
        let p = &m["manifest"]["restore_proof"];
        assert_eq!(p["result"], "proven", "{p}");
        let at = p["hash_revision"].as_i64().unwrap();
        assert!(
            at == p["revision"].as_i64().unwrap()
                || p["notes"][0]
                    .as_str()
                    .unwrap()
                    .contains("compared at revision"),
            "{p}"
        );
    }
    // The members are still compared, at a revision they all have now.
    let c = &r["consistency"];
    assert!(
        c["ok"] == true && c["notes"].as_array().unwrap().is_empty(),
        "{c}"
    );
}

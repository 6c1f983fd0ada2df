//! The restore proof inside the run (issue 19), against real etcd members:
//! no private key anywhere, a doctored stream that the sha256 check alone
//! would store, a diverged member, kill -9 mid-proof, the size limit.

use super::*;

/// A private dir on /dev/shm (a tmpfs) for one test's proofs.
fn shm() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vigil-proof-test-")
        .tempdir_in("/dev/shm")
        .unwrap()
}

fn prove_in(dir: &Path, more: &str) -> String {
    format!("prove_restore = {{ dir = \"{}\"{more} }}\n", dir.display())
}

/// A `[restore]` section whose scratch etcd (`slow-etcd` in `dir`) starts
/// `secs` seconds late, so that a test can act while a proof runs.
fn slow_etcd(dir: &Path, secs: u32) -> String {
    let slow = dir.join("slow-etcd");
    std::fs::write(
        &slow,
        format!("#!/bin/sh\nsleep {secs}\nexec etcd \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("\n[restore]\netcd_bin = \"{}\"\n", slow.display())
}

fn report(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn proof_of<'a>(r: &'a serde_json::Value, member: &str) -> &'a serde_json::Value {
    let m = r["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member"] == member)
        .unwrap_or_else(|| panic!("no {member} in {r}"));
    &m["manifest"]["restore_proof"]
}

#[test]
fn proofs_pass_on_a_healthy_cluster_with_no_private_key_anywhere() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 200, 300, true, 31);
    cluster.put_many("/registry/secrets/default/", 20, 64, true, 32);
    let key = age_key(t.path());
    // Only the public key stays: the bastion holds no private key.
    std::fs::remove_file(&key.identity_file).unwrap();
    let shm = shm();
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = prove_in(shm.path(), "");
    let cfg = cb.write("vigil.toml");
    let secret = |p: &Path| {
        std::fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).contains("AGE-SECRET-KEY-"))
            .unwrap_or(false)
    };
    let keys: Vec<_> = files_under(t.path())
        .into_iter()
        .filter(|p| secret(p))
        .collect();
    assert!(keys.is_empty(), "a private key on disk: {keys:?}");

    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&out);
    let (rev, kvs) = cluster.dump(0);
    for name in NAMES {
        let p = proof_of(&r, name);
        assert_eq!(p["result"], "proven", "{name}: {p}");
        assert!(p["revision"].as_i64().unwrap() >= rev, "{p}");
        assert_eq!(p["key_count"], kvs.len() as i64, "{p}");
        assert_eq!(p["live_key_count"], p["key_count"], "{p}");
        assert_eq!(p["hash_kv"], p["live_hash_kv"], "{p}");
        assert_eq!(p["peers_agree"].as_array().unwrap().len(), 2, "{p}");
        assert_eq!(p["sample_keys"], 10, "{p}");
        // The stored manifest and the outcome record carry it too.
        let a = archives(&cb.snapshot_dir.join(name));
        let m = manifest(&a[0]);
        assert!(m["restore_proven_at"].is_string(), "{m}");
        assert_eq!(&m["restore_proof"], p);
        let o = outcome(&t.path().join("state"), name);
        assert_eq!(o["proof"]["result"], "proven", "{o}");
    }
    assert!(text(&out).contains("restore proven"), "{}", text(&out));
    // Nothing of the proof is left, and no key appeared.
    assert!(
        files_under(shm.path()).is_empty(),
        "{:?}",
        files_under(shm.path())
    );
    assert!(processes_under(shm.path()).is_empty());
    let keys: Vec<_> = files_under(t.path())
        .into_iter()
        .filter(|p| secret(p))
        .collect();
    assert!(keys.is_empty(), "a private key on disk: {keys:?}");
}

#[test]
fn a_doctored_stream_with_a_matching_trailer_passes_the_sha256_check_but_not_the_proof() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 100, 300, true, 41);
    let rt = Cluster::runtime();
    rt.block_on(async {
        let mut c = etcd_client::Client::connect([cluster.endpoint(1)], None)
            .await
            .unwrap();
        c.put(
            "/registry/secrets/kube-system/canary",
            "vigil-canary-AAAAAAAA",
            None,
        )
        .await
        .unwrap();
    });
    // cp-2 is reached through a proxy that rewrites the value inside the
    // snapshot stream and recomputes etcd's sha256 trailer to match.
    let port: u16 = cluster
        .endpoint(1)
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = Proxy::start(
        port,
        Fault::Rewrite {
            from: b"canary-AAAAAAAA",
            to: b"canary-BBBBBBBB",
        },
    );
    let mut members = cluster.config_members();
    members[1].1 = proxy.endpoint("http");
    let key = age_key(t.path());
    let shm = shm();
    let alerts = t.path().join("alerts.jsonl");
    let mut cb = ConfigBuilder::new(t.path(), members, &key.recipient);
    cb.extra = format!(
        "\n[[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
        alerts.display()
    );

    // The sha256 check alone: the doctored archive is stored as verified.
    cb.extra_snapshot = prove_in(shm.path(), ", enabled = false");
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let a = archives(&cb.snapshot_dir.join("cp-2"));
    let m = manifest(&a[0]);
    assert!(m["verified_at"].is_string(), "{m}");
    assert!(m["restore_proof"].is_null(), "{m}");
    let snap = t.path().join("doctored.db");
    open_archive(&a[0], &key, &snap);
    let bytes = std::fs::read(&snap).unwrap();
    let has = |b: &[u8]| bytes.windows(b.len()).any(|w| w == b);
    assert!(has(b"canary-BBBBBBBB") && !has(b"canary-AAAAAAAA"));

    // With the proof: caught, by the hash_kv comparison, and alerted.
    cb.extra_snapshot = prove_in(shm.path(), "");
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&out);
    let p = proof_of(&r, "cp-2");
    assert_eq!(p["result"], "failed", "{p}");
    assert_eq!(p["check"], "hash_kv", "{p}");
    assert_ne!(p["hash_kv"], p["live_hash_kv"], "{p}");
    assert!(p["error"].as_str().unwrap().contains("cp-2"), "{p}");
    for ok in ["cp-1", "cp-3"] {
        assert_eq!(proof_of(&r, ok)["result"], "proven", "{r}");
    }
    let o = outcome(&t.path().join("state"), "cp-2");
    assert_eq!(o["stage"], "proof", "{o}");
    assert!(o["error"].as_str().unwrap().contains("hash_kv"), "{o}");
    // The archive is kept as evidence, marked, and never counts as good.
    let a = archives(&cb.snapshot_dir.join("cp-2"));
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a
        .iter()
        .any(|x| manifest(x)["restore_proof"]["result"] == "failed"));
    notify_once(&cfg);
    let items = alert_items(&alerts);
    let fired = items
        .iter()
        .find(|i| {
            i["event"] == "firing"
                && i["alert"]["key"] == "snapshot_restore_proof_failed{member=\"cp-2\"}"
        })
        .unwrap_or_else(|| panic!("no proof alert for cp-2: {items:?}"));
    assert!(fired.to_string().contains("hash_kv"), "{fired}");
    assert!(
        files_under(shm.path()).is_empty(),
        "{:?}",
        files_under(shm.path())
    );
}

#[test]
fn a_diverged_member_is_caught_by_the_proofs_hash_kv_against_its_peers() {
    let t = tempfile::tempdir().unwrap();
    let a = Cluster::start(&t.path().join("a"), &["cp-1", "cp-2"], None);
    let b = Cluster::start(&t.path().join("b"), &["cp-3"], None);
    // The same number of writes: the same revisions, different data.
    a.put_many("/registry/pods/", 40, 100, true, 20);
    b.put_many("/registry/pods/", 40, 100, true, 42);
    assert_eq!(a.dump(0).0, b.dump(0).0);
    let mut members = a.config_members();
    members.extend(b.config_members());
    let key = age_key(t.path());
    let shm = shm();
    let mut cb = ConfigBuilder::new(t.path(), members, &key.recipient);
    // Only the proof compares the members here.
    cb.extra_snapshot = format!("verify_consistency = false\n{}", prove_in(shm.path(), ""));
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&out);
    let p = proof_of(&r, "cp-3");
    assert_eq!(p["result"], "failed", "{p}");
    assert_eq!(p["check"], "hash_kv", "{p}");
    let e = p["error"].as_str().unwrap();
    assert!(
        e.contains("cp-3 diverged") && e.contains("cp-1") && e.contains("cp-2"),
        "{e}"
    );
    // Its own snapshot was faithful to it; the peers disagree.
    assert_eq!(p["hash_kv"], p["live_hash_kv"], "{p}");
    for ok in ["cp-1", "cp-2"] {
        let q = proof_of(&r, ok);
        assert_eq!(q["result"], "proven", "{ok}: {q}");
    }
    assert_eq!(outcome(&t.path().join("state"), "cp-3")["stage"], "proof");
}

#[test]
fn kill_9_in_the_middle_of_a_proof_leaves_no_process_and_no_plaintext() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 100, 300, true, 51);
    let key = age_key(t.path());
    let shm = shm();
    // An etcd that takes its time to start, so the kill lands mid-proof.
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = prove_in(shm.path(), "");
    cb.extra = slow_etcd(t.path(), 2);
    let cfg = cb.write("vigil.toml");
    let mut child = spawn_run(&cfg);
    let until = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while seen.is_empty() {
        assert!(Instant::now() < until, "no proof started");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        seen = processes_under(shm.path())
            .into_iter()
            .filter(|(_, c)| c.contains("slow-etcd") && c.contains("--data-dir"))
            .collect();
        std::thread::sleep(Duration::from_millis(20));
    }
    let restored: Vec<_> = files_under(shm.path());
    assert!(
        restored
            .iter()
            .any(|p| p.to_string_lossy().contains("/data/")),
        "{restored:?}"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let (procs, files) = (processes_under(shm.path()), files_under(shm.path()));
        if procs.is_empty() && files.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "left after kill -9: processes {procs:?}, files {files:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn above_the_size_limit_the_proof_is_skipped_with_a_message() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES[..1], None);
    cluster.put_many("/registry/configmaps/default/", 400, 300, true, 61);
    let key = age_key(t.path());
    let shm = shm();
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = prove_in(shm.path(), ", max_db_size = \"64KiB\"");
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let p = proof_of(&report(&out), "cp-1").clone();
    assert_eq!(p["result"], "skipped", "{p}");
    let e = p["error"].as_str().unwrap();
    assert!(e.contains("snapshot.prove_restore.max_db_size"), "{e}");
    assert!(
        text(&out).contains("restore proof skipped"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_proof_dir_on_a_disk_is_refused_and_named() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES[..1], None);
    let key = age_key(t.path());
    let disk = t.path().join("on-disk");
    std::fs::create_dir(&disk).unwrap();
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = prove_in(&disk, "");
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let p = proof_of(&report(&out), "cp-1").clone();
    assert_eq!(p["check"], "dir", "{p}");
    let e = p["error"].as_str().unwrap();
    assert!(
        e.contains(&disk.display().to_string()) && e.contains("tmpfs"),
        "{e}"
    );
    // The archive itself is stored: nothing is lost for a proof's sake.
    assert_eq!(archives(&cb.snapshot_dir.join("cp-1")).len(), 1);
    assert!(files_under(&disk).is_empty());
}

#[test]
fn proofs_take_turns_like_the_streams_so_one_database_is_in_memory_at_a_time() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 100, 300, true, 71);
    let key = age_key(t.path());
    let shm = shm();
    // A slow scratch etcd: each proof lasts long enough for the next
    // member's stream to start, were it allowed to.
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = format!("max_concurrent_members = 1\n{}", prove_in(shm.path(), ""));
    cb.extra = slow_etcd(t.path(), 1);
    let cfg = cb.write("vigil.toml");
    let child = spawn_run(&cfg);
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let mut most = 0;
    while Path::new(&format!("/proc/{pid}")).exists() {
        let members = files_under(shm.path())
            .into_iter()
            // <shm>/vigil-proof-<pid>/<member>/
            .filter(|p| p.is_dir() && p.parent().and_then(Path::parent) == Some(shm.path()))
            .count();
        most = most.max(members);
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = waiter.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(most, 1, "member proof dirs at once");
    let log = text(&out);
    assert!(log.contains("waiting for a restore proof to end"), "{log}");
    // A manifest's duration is the snapshot's own, without its proof.
    for name in NAMES {
        let m = manifest(&archives(&cb.snapshot_dir.join(name))[0]);
        assert_eq!(m["restore_proof"]["result"], "proven", "{m}");
        assert!(
            m["restore_proof"]["duration_ms"].as_u64().unwrap() >= 1000,
            "{m}"
        );
        assert!(
            m["duration_ms"].as_u64().unwrap()
                < m["restore_proof"]["duration_ms"].as_u64().unwrap(),
            "{m}"
        );
    }
}

//! vigil-restore against real etcd members, real age keys and stand-in RKE2 tools.
#![allow(clippy::unwrap_used)]

use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::etcd::Cluster;
use vigil_tests::{age_key, bin, stand_in, text, vigil, AgeKey};

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

/// (name, endpoint, peer_url); an empty peer_url leaves the key out.
type Member = (String, String, String);

fn write_config(dir: &Path, members: &[Member], recipients: &[&str], restore: &str) -> PathBuf {
    let mut s = String::from("[cluster]\nname = \"prod\"\nmembers = [\n");
    for (n, e, p) in members {
        if p.is_empty() {
            s.push_str(&format!("  {{ name = \"{n}\", endpoint = \"{e}\" }},\n"));
        } else {
            s.push_str(&format!(
                "  {{ name = \"{n}\", endpoint = \"{e}\", peer_url = \"{p}\" }},\n"
            ));
        }
    }
    s.push_str("]\n\n[snapshot]\n");
    s.push_str(&format!(
        "dir = \"{}\"\nage_recipients = [{}]\n",
        dir.join("snapshots").display(),
        recipients
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s.push_str(&format!(
        "\n[state]\ndir = \"{}\"\n",
        dir.join("state").display()
    ));
    if !restore.is_empty() {
        s.push_str("\n[restore]\n");
        s.push_str(restore);
    }
    let p = dir.join("vigil.toml");
    std::fs::write(&p, s).unwrap();
    p
}

fn cluster_members(c: &Cluster) -> Vec<Member> {
    c.members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                m.name.clone(),
                c.endpoint(i),
                format!("http://127.0.0.1:{}", m.peer_port),
            )
        })
        .collect()
}

/// Runs vigil-restore with extra environment and optional stdin.
fn restore(cfg: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(bin("vigil-restore"));
    cmd.arg("--config")
        .arg(cfg)
        .args(args)
        .env("VIGIL_LOG", "info")
        .env_remove("VIGIL_IDENTITY_PASSPHRASE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(b) = stdin {
        child.stdin.take().unwrap().write_all(b).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "$ vigil-restore {}\n-- exit {:?}\n-- stdout\n{}\n-- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `vigil-restore etcd --identity KEY --out TARGET EXTRA...`.
fn restore_etcd(cfg: &Path, key: &AgeKey, target: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "etcd",
        "--identity",
        s(&key.identity_file),
        "--out",
        s(target),
    ];
    args.extend_from_slice(extra);
    restore(cfg, &args, &[], None)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn files(dir: &Path) -> Vec<String> {
    vigil_tests::all_files(dir)
}

/// etcd processes started by a test, killed when it ends.
struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn connect(ep: &str) -> Option<etcd_client::Client> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(3));
    etcd_client::Client::connect([ep], Some(opts)).await.ok()
}

/// All keys and values of one member, and the revision.
fn dump(ep: &str) -> (i64, Vec<vigil_tests::etcd::Kv>) {
    Cluster::runtime()
        .block_on(async { vigil_tests::etcd::dump_with(&mut connect(ep).await.unwrap()).await })
}

fn wait_leader(ep: &str, log: &Path) {
    let rt = Cluster::runtime();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = rt.block_on(async {
            match connect(ep).await {
                Some(mut c) => matches!(c.status().await, Ok(s) if s.leader() != 0),
                None => false,
            }
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ep} did not become healthy: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A 3-member cluster with data, archived by the real vigil-snapshot.
fn snapshotted(
    t: &Path,
    extra_keys: &[&AgeKey],
    restore_section: &str,
) -> (Cluster, PathBuf, AgeKey) {
    snapshotted_with(t, extra_keys, restore_section, true)
}

/// [`snapshotted`], with or without `peer_url` in the config's members.
fn snapshotted_with(
    t: &Path,
    extra_keys: &[&AgeKey],
    restore_section: &str,
    peer_urls: bool,
) -> (Cluster, PathBuf, AgeKey) {
    let cluster = Cluster::start(&t.join("orig"), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 300, 300, false, 1);
    cluster.put_many("/registry/secrets/default/", 40, 64, true, 2);
    // Overwrites and deletes, so the revision is not just the key count.
    cluster.put_many("/registry/configmaps/default/", 50, 100, false, 3);
    let rt = Cluster::runtime();
    rt.block_on(async {
        let mut c = cluster.client(0).await;
        c.delete("/registry/secrets/default/000001", None)
            .await
            .unwrap();
    });
    std::fs::create_dir_all(t.join("key")).unwrap();
    let key = age_key(&t.join("key"));
    let mut recipients = vec![key.recipient.as_str()];
    recipients.extend(extra_keys.iter().map(|k| k.recipient.as_str()));
    let mut members = cluster_members(&cluster);
    if !peer_urls {
        members.iter_mut().for_each(|m| m.2.clear());
    }
    let cfg = write_config(t, &members, &recipients, restore_section);
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (cluster, cfg, key)
}

#[test]
fn etcd_restore_rebuilds_all_three_members() {
    let t = tempfile::tempdir().unwrap();
    let (mut cluster, cfg, key) = snapshotted(t.path(), &[], "");
    let (rev, kvs) = cluster.dump(0);
    assert!(kvs.len() > 300);

    // `list` shows every archive with its location.
    let out = restore(&cfg, &["list", "--json"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cat: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let archives = cat["archives"].as_array().unwrap();
    assert_eq!(archives.len(), 3, "{cat}");
    for a in archives {
        assert_eq!(a["verified"], true);
        assert_eq!(a["revision"], rev);
        assert_eq!(a["copies"][0]["source"], "local");
    }
    let out = restore(&cfg, &["list"], &[], None);
    assert!(text(&out).contains("prod-cp-2-"), "{}", text(&out));

    // The old members still run: the restore refuses (their ports are busy).
    let target = t.path().join("restored");
    let id = s(&key.identity_file);
    let out = restore(
        &cfg,
        &["etcd", "--identity", id, "--out", s(&target)],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("still listens"), "{}", text(&out));
    assert!(!target.exists() || files(&target).is_empty());

    // The cluster is gone: members killed, data deleted.
    for i in 0..3 {
        cluster.kill(i);
        std::fs::remove_dir_all(&cluster.members[i].data_dir).unwrap();
    }

    // A non-empty target is refused.
    let busy = t.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), "x").unwrap();
    let out = restore(
        &cfg,
        &["etcd", "--identity", id, "--out", s(&busy)],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    assert_eq!(files(&busy), vec!["x"]);

    // No Kubernetes watches this cluster, and the checks below compare with
    // the snapshot's revision: --no-bump (the bump itself is tested in
    // etcd_restore_replays_the_bump_and_old_watches_fail_as_compacted).
    let out = restore(
        &cfg,
        &[
            "etcd",
            "--identity",
            id,
            "--out",
            s(&target),
            "--no-bump",
            "--json",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(files(&target), vec!["cp-1", "cp-2", "cp-3"]);
    let human = restore(&cfg, &["list"], &[], None);
    assert_eq!(human.status.code(), Some(0));

    // Start all three with the printed commands.
    let mut procs = Procs(Vec::new());
    for m in report["members"].as_array().unwrap() {
        let argv: Vec<String> = m["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let name = m["name"].as_str().unwrap();
        assert_eq!(mode(&target.join(name)), 0o700);
        let log = t.path().join(format!("restored-{name}.log"));
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        procs.0.push(child);
    }
    for (i, m) in report["members"].as_array().unwrap().iter().enumerate() {
        let log = t
            .path()
            .join(format!("restored-{}.log", m["name"].as_str().unwrap()));
        wait_leader(&cluster.endpoint(i), &log);
    }
    for i in 0..3 {
        let (r, k) = dump(&cluster.endpoint(i));
        assert_eq!(r, rev, "member {i} revision");
        assert_eq!(k, kvs, "member {i} keys");
    }
    // The restored cluster takes writes and has three members.
    let rt = Cluster::runtime();
    rt.block_on(async {
        let mut c = connect(&cluster.endpoint(1)).await.unwrap();
        c.put("after-restore", "yes", None).await.unwrap();
        assert_eq!(c.member_list().await.unwrap().members().len(), 3);
    });
    drop(procs);
}

#[test]
fn drill_passes_then_fails_on_a_corrupted_archive() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("drillkey")).unwrap();
    let drill_key = age_key(&t.path().join("drillkey"));
    let restore_section = format!(
        "drill_identity_file = \"{}\"\ndrill_sample_keys = 5\nscratch_dir = \"{}\"\n",
        drill_key.identity_file.display(),
        t.path().join("scratch").display()
    );
    std::fs::set_permissions(
        &drill_key.identity_file,
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (cluster, cfg, _key) = snapshotted(t.path(), &[&drill_key], &restore_section);
    let (rev, kvs) = cluster.dump(0);
    drop(cluster); // the drill needs no running cluster
                   // Drill results reach the alert engine: a file channel records them.
    let alerts = t.path().join("alerts.jsonl");
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str(&format!(
        "\n[[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
        alerts.display()
    ));
    std::fs::write(&cfg, text_cfg).unwrap();

    let out = restore(&cfg, &["drill", "--json"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["ok"], true);
    for m in r["members"].as_array().unwrap() {
        assert_eq!(m["ok"], true, "{m}");
        assert_eq!(m["restored_revision"], rev);
        assert_eq!(m["restored_key_count"], kvs.len());
        assert_eq!(m["sample_keys_read"], 5);
        assert!(m["rto_ms"].as_u64().unwrap() > 0);
    }
    let state = t.path().join("state");
    for name in NAMES {
        let o: serde_json::Value = serde_json::from_slice(
            &std::fs::read(state.join(format!("outcomes/drill/{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(o["ok"], true, "{o}");
        assert_eq!(o["job"], "drill");
        assert_eq!(o["stage"], "done");
    }
    // Scratch dirs are gone, no etcd left behind.
    assert!(files(&t.path().join("scratch")).is_empty());

    // Flip one byte in the middle of cp-2's archive (size unchanged).
    let a = vigil_tests::archives(&t.path().join("snapshots/cp-2"));
    let mut bytes = std::fs::read(&a[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&a[0], &bytes).unwrap();
    let out = restore(&cfg, &["drill"], &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAILED"), "{}", text(&out));
    let o: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("outcomes/drill/cp-2.json")).unwrap())
            .unwrap();
    assert_eq!(o["ok"], false, "{o}");
    assert_eq!(o["stage"], "verify", "{o}");
    assert!(
        o["error"].as_str().unwrap().contains("corrupted copy"),
        "{o}"
    );
    let o: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("outcomes/drill/cp-1.json")).unwrap())
            .unwrap();
    assert_eq!(o["ok"], true, "{o}");
    assert!(files(&t.path().join("scratch")).is_empty());
    // The drill only queued the alert; vigil-notify delivers it.
    assert!(!alerts.exists(), "the drill delivered by itself");
    vigil_tests::notify_once(&cfg);
    let fired = std::fs::read_to_string(&alerts).unwrap_or_default();
    assert!(
        fired.contains("restore_drill_failed")
            && fired.contains("cp-2")
            && fired.contains("\"firing\""),
        "the failed drill raised no alert: {fired}"
    );

    // Without a drill key configured the drill cannot run at all (exit 2).
    let no_key = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!(
            "drill_identity_file = \"{}\"\n",
            drill_key.identity_file.display()
        ),
        "",
    );
    std::fs::write(&cfg, no_key).unwrap();
    let out = restore(&cfg, &["drill"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("drill_identity_file"), "{}", text(&out));
}

/// A valid etcd-like stream (database + sha256 trailer), archived like vigil
/// does, with its manifest, in `<dir>/snapshots/<member>/`.
fn fake_archive(dir: &Path, member: &str, time: &str, rev: i64, recipient: &str) -> PathBuf {
    let mut db: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    db[0] = rev as u8;
    let trailer = Sha256::digest(&db);
    let db_sha = hex::encode(trailer);
    db.extend_from_slice(&trailer);
    let z = zstd::encode_all(&db[..], 3).unwrap();
    let r: age::x25519::Recipient = recipient.parse().unwrap();
    let enc = vigil_archive::encrypt_small(&z, &[r]).unwrap();
    let id = format!("prod-{member}-{time}");
    let mdir = dir.join("snapshots").join(member);
    std::fs::create_dir_all(&mdir).unwrap();
    let path = mdir.join(format!("{id}.db.zst.age"));
    std::fs::write(&path, &enc).unwrap();
    let created = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &time[0..4],
        &time[4..6],
        &time[6..8],
        &time[9..11],
        &time[11..13],
        &time[13..15]
    );
    let m = serde_json::json!({
        "format": 1, "id": id, "cluster": "prod", "cluster_id": "1", "member": member,
        "member_id": "2", "endpoint": "http://10.0.0.1:2379", "revision": rev, "raft_index": 1,
        "raft_term": 1, "etcd_version": "3.4.23", "db_size": 8192, "db_size_in_use": 8192,
        "leader": "1", "is_leader": true, "key_count": 1, "snapshot_size": db.len(),
        "snapshot_sha256": hex::encode(Sha256::digest(&db)), "db_sha256": db_sha,
        "archive": format!("{id}.db.zst.age"), "archive_size": enc.len(),
        "archive_sha256": hex::encode(Sha256::digest(&enc)), "compression": "zstd",
        "zstd_level": 3, "encryption": "age", "age_recipients": [recipient],
        "created_at": created, "duration_ms": 1, "verified_at": created, "vigil_version": "0.1.0"
    });
    let mut mp = path.as_os_str().to_owned();
    mp.push(".json");
    std::fs::write(mp, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    path
}

fn fake_members() -> Vec<Member> {
    (1..=3)
        .map(|i| {
            (
                format!("cp-{i}"),
                format!("http://10.0.0.{i}:2379"),
                format!("http://10.0.0.{i}:2380"),
            )
        })
        .collect()
}

#[test]
fn fetch_verifies_and_names_every_failure() {
    let t = tempfile::tempdir().unwrap();
    let key = age_key(t.path());
    std::fs::create_dir_all(t.path().join("other")).unwrap();
    let other = age_key(&t.path().join("other"));
    let cfg = write_config(t.path(), &fake_members(), &[&key.recipient], "");
    let old = fake_archive(t.path(), "cp-1", "20260101T000000", 100, &key.recipient);
    let newest = fake_archive(t.path(), "cp-2", "20260102T000000", 200, &key.recipient);
    let id = s(&key.identity_file);
    let outdir = t.path().join("out");
    std::fs::create_dir_all(&outdir).unwrap();

    // Newest verified by default; the file is the exact stream, 0600.
    let out_file = outdir.join("snap.db");
    let out = restore(
        &cfg,
        &["fetch", "--identity", id, "--out", s(&out_file), "--json"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["archive"], "prod-cp-2-20260102T000000");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", newest.display())).unwrap())
            .unwrap();
    assert_eq!(
        sha256_file(&out_file),
        m["snapshot_sha256"].as_str().unwrap()
    );
    assert_eq!(mode(&out_file), 0o600);
    // Progress is logged as plain lines when stderr is not a terminal.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fetched prod-cp-2"),
        "{}",
        text(&out)
    );

    // An existing --out is never overwritten.
    let out = restore(
        &cfg,
        &["fetch", "--identity", id, "--out", s(&out_file)],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Selection: --before, --revision, --member, --archive.
    for (args, want) in [
        (
            vec!["--before", "2026-01-01T12:00:00Z"],
            "prod-cp-1-20260101T000000",
        ),
        (vec!["--revision", "150"], "prod-cp-1-20260101T000000"),
        (vec!["--member", "cp-1"], "prod-cp-1-20260101T000000"),
        (
            vec!["--archive", "prod-cp-1-20260101T000000"],
            "prod-cp-1-20260101T000000",
        ),
    ] {
        let o = outdir.join(format!("sel-{}.db", args[0].trim_start_matches('-')));
        let mut a = vec!["fetch", "--identity", id, "--out", s(&o), "--json"];
        a.extend(args.iter());
        let out = restore(&cfg, &a, &[], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(f["archive"], want, "{args:?}");
    }
    let out = restore(
        &cfg,
        &[
            "fetch",
            "--identity",
            id,
            "--out",
            s(&outdir.join("n")),
            "--member",
            "cp-3",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no archive matches --member cp-3"),
        "{}",
        text(&out)
    );

    // Identity on stdin.
    let key_bytes = std::fs::read(&key.identity_file).unwrap();
    let o = outdir.join("stdin.db");
    let out = restore(
        &cfg,
        &["fetch", "--identity", "-", "--out", s(&o)],
        &[],
        Some(&key_bytes),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sha256_file(&o), m["snapshot_sha256"].as_str().unwrap());

    // Passphrase-protected identity (age's scrypt format), passphrase from the environment.
    let protected = t.path().join("key.age");
    {
        use age::secrecy::SecretString;
        let mut r = age::scrypt::Recipient::new(SecretString::from("s3cret pass".to_string()));
        r.set_work_factor(12);
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut buf = Vec::new();
        let aw = age::armor::ArmoredWriter::wrap_output(&mut buf, age::armor::Format::AsciiArmor)
            .unwrap();
        let mut w = enc.wrap_output(aw).unwrap();
        w.write_all(&key_bytes).unwrap();
        w.finish().unwrap().finish().unwrap();
        std::fs::write(&protected, buf).unwrap();
    }
    let o = outdir.join("pass.db");
    let out = restore(
        &cfg,
        &["fetch", "--identity", s(&protected), "--out", s(&o)],
        &[("VIGIL_IDENTITY_PASSPHRASE", "s3cret pass")],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sha256_file(&o), m["snapshot_sha256"].as_str().unwrap());
    let o = outdir.join("badpass.db");
    let out = restore(
        &cfg,
        &["fetch", "--identity", s(&protected), "--out", s(&o)],
        &[("VIGIL_IDENTITY_PASSPHRASE", "wrong")],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("wrong passphrase"), "{}", text(&out));
    // No terminal, no variable: a clear message instead of a hang.
    let out = restore(
        &cfg,
        &["fetch", "--identity", s(&protected), "--out", s(&o)],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("VIGIL_IDENTITY_PASSPHRASE"),
        "{}",
        text(&out)
    );

    // A wrong key names the archive and the recipients; nothing is left behind.
    let o = outdir.join("wrong.db");
    let out = restore(
        &cfg,
        &[
            "fetch",
            "--identity",
            s(&other.identity_file),
            "--out",
            s(&o),
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("prod-cp-2-20260102T000000") && msg.contains("none of the identities"),
        "{msg}"
    );
    assert!(
        msg.contains(&key.recipient) && msg.contains(&other.recipient),
        "{msg}"
    );
    assert!(!o.exists());

    // A truncated archive: clear error, nothing under the final name, no partial file.
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() - 100]).unwrap();
    let o = outdir.join("trunc.db");
    let out = restore(
        &cfg,
        &[
            "fetch",
            "--identity",
            id,
            "--out",
            s(&o),
            "--archive",
            "prod-cp-2-20260102T000000",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
    assert!(text(&out).contains(s(&newest)), "{}", text(&out));
    assert!(
        !files(&outdir).iter().any(|f| f.contains("trunc")),
        "{:?}",
        files(&outdir)
    );
    // A truncated copy is no longer "verified" locally: the default moves on.
    let o = outdir.join("default-after-trunc.db");
    let out = restore(
        &cfg,
        &["fetch", "--identity", id, "--out", s(&o), "--json"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["archive"], "prod-cp-1-20260101T000000");

    // A missing archive file: the copy is named as missing.
    std::fs::remove_file(&old).unwrap();
    let o = outdir.join("missing.db");
    let out = restore(
        &cfg,
        &[
            "fetch",
            "--identity",
            id,
            "--out",
            s(&o),
            "--archive",
            "prod-cp-1-20260101T000000",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is missing") && text(&out).contains(s(&old)),
        "{}",
        text(&out)
    );
    // An unknown source.
    let out = restore(
        &cfg,
        &[
            "fetch",
            "--identity",
            id,
            "--out",
            s(&o),
            "--source",
            "s3-nowhere",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("unknown source \"s3-nowhere\""),
        "{}",
        text(&out)
    );
    assert!(!o.exists());
}

#[test]
fn rke2_runbook_and_execute_with_stand_ins() {
    let t = tempfile::tempdir().unwrap();
    let key = age_key(t.path());
    let bindir = t.path().join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    let log = t.path().join("calls.log");
    let rke2 = stand_in(&bindir, "rke2", &log, false);
    let systemctl = stand_in(&bindir, "systemctl", &log, false);
    let ssh = stand_in(&bindir, "ssh", &log, false);
    let data = t.path().join("rke2");
    let restore_section = format!(
        "rke2_bin = \"{}\"\nsystemctl_bin = \"{}\"\nrke2_data_dir = \"{}\"\nssh = [\"{}\", \"-o\", \"BatchMode=yes\", \"root@{{host}}\"]\n",
        rke2.display(),
        systemctl.display(),
        data.display(),
        ssh.display()
    );
    let cfg = write_config(
        t.path(),
        &fake_members(),
        &[&key.recipient],
        &restore_section,
    );
    fake_archive(t.path(), "cp-1", "20260101T000000", 100, &key.recipient);
    let newest = fake_archive(t.path(), "cp-3", "20260102T000000", 200, &key.recipient);
    // The server token, archived like vigil-snapshot does.
    let tokdir = t.path().join("snapshots/rke2");
    std::fs::create_dir_all(&tokdir).unwrap();
    let r: age::x25519::Recipient = key.recipient.parse().unwrap();
    std::fs::write(
        tokdir.join("prod-server-token.age"),
        vigil_archive::encrypt_small(b"K10abc::server:def", &[r]).unwrap(),
    )
    .unwrap();

    // The runbook only.
    let out = restore(&cfg, &["rke2"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let book = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        book.contains("--cluster-reset") && book.contains("root@10.0.0.2"),
        "{book}"
    );
    assert!(!log.exists(), "the runbook ran something");

    // Execute without an identity: usage error, nothing run.
    let out = restore(&cfg, &["rke2", "--execute"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!log.exists());

    let out = restore(
        &cfg,
        &[
            "rke2",
            "--execute",
            "--yes",
            "--identity",
            s(&key.identity_file),
            // This snapshot is no etcd db: tests/rke2_token.rs proves the token.
            "--no-token-check",
            "--restore-token",
            "--json",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap = data.join("server/db/snapshots/prod-cp-3-20260102T000000.db");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", newest.display())).unwrap())
            .unwrap();
    assert_eq!(sha256_file(&snap), m["snapshot_sha256"].as_str().unwrap());
    let token = data.join("server/token");
    assert_eq!(
        std::fs::read_to_string(&token).unwrap(),
        "K10abc::server:def\n"
    );
    assert_eq!(mode(&token), 0o600);
    let calls = std::fs::read_to_string(&log).unwrap();
    let sc = systemctl.display().to_string();
    let want = [
        format!("ssh -o BatchMode=yes root@10.0.0.2 {sc} stop rke2-server"),
        format!("ssh -o BatchMode=yes root@10.0.0.3 {sc} stop rke2-server"),
        "systemctl stop rke2-server".to_string(),
        "rke2 --version".to_string(),
        format!(
            "rke2 server --cluster-reset --cluster-reset-restore-path={} --token-file={}",
            snap.display(),
            token.display()
        ),
        "systemctl start rke2-server".to_string(),
        format!(
            "ssh -o BatchMode=yes root@10.0.0.2 rm -rf {}",
            data.join("server/db").display()
        ),
        format!("ssh -o BatchMode=yes root@10.0.0.2 {sc} start rke2-server"),
        format!(
            "ssh -o BatchMode=yes root@10.0.0.3 rm -rf {}",
            data.join("server/db").display()
        ),
        format!("ssh -o BatchMode=yes root@10.0.0.3 {sc} start rke2-server"),
    ];
    assert_eq!(calls.lines().collect::<Vec<_>>(), want, "{calls}");

    // A failing step stops the run and says where.
    std::fs::remove_file(&log).unwrap();
    std::fs::remove_file(&snap).unwrap();
    stand_in(&bindir, "rke2", &log, true);
    let out = restore(
        &cfg,
        &[
            "rke2",
            "--execute",
            "--yes",
            "--identity",
            s(&key.identity_file),
            "--no-token-check",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cluster-reset"), "{}", text(&out));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(!calls.contains("start"), "{calls}");

    // Without ssh: --others-stopped is required, then only local steps run.
    let no_ssh = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("ssh ="))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, no_ssh).unwrap();
    stand_in(&bindir, "rke2", &log, false);
    std::fs::remove_file(&log).unwrap();
    std::fs::remove_file(&snap).unwrap();
    let out = restore(
        &cfg,
        &[
            "rke2",
            "--execute",
            "--yes",
            "--identity",
            s(&key.identity_file),
            "--no-token-check",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--others-stopped"), "{}", text(&out));
    let out = restore(
        &cfg,
        &[
            "rke2",
            "--execute",
            "--yes",
            "--identity",
            s(&key.identity_file),
            "--no-token-check",
            "--others-stopped",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[BY HAND]"),
        "{}",
        text(&out)
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    // systemctl stop, rke2 --version, the reset, systemctl start.
    assert_eq!(calls.lines().count(), 4, "{calls}");
    assert!(!calls.contains("ssh"), "{calls}");
}

// Membership recorded at snapshot time (DESIGN.md contract 6, issue #15 point 1).

/// An etcdctl that logs every call before making it: a test can tell
/// whether the restore ran it at all.
fn logging_etcdctl(dir: &Path) -> (String, PathBuf) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("etcdctl.log");
    let p = bin.join("etcdctl");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec /usr/bin/etcdctl \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let section = format!(
        "etcdctl_bin = \"{}\"\netcdutl_bin = \"{}\"\n",
        p.display(),
        bin.join("no-etcdutl").display()
    );
    (section, log)
}

/// The manifests of every archive, parsed.
fn manifests(t: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut v = Vec::new();
    for n in NAMES {
        for e in std::fs::read_dir(t.join("snapshots").join(n)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                let m = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                v.push((p, m));
            }
        }
    }
    v
}

fn kill_cluster(cluster: &mut Cluster) {
    for i in 0..3 {
        cluster.kill(i);
        std::fs::remove_dir_all(&cluster.members[i].data_dir).unwrap();
    }
}

/// Starts each member with the command the report printed, then checks the
/// cluster: 3/3 voting members answer a quorum read, with the report's peer
/// URLs, and each holds exactly `kvs` at `rev`.
fn start_and_check(
    t: &Path,
    tag: &str,
    report: &serde_json::Value,
    rev: i64,
    kvs: &[vigil_tests::etcd::Kv],
) -> Procs {
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{report}");
    let mut procs = Procs(Vec::new());
    let mut logs = Vec::new();
    for m in members {
        let argv: Vec<String> = m["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let log = t.join(format!("{tag}-{}.log", m["name"].as_str().unwrap()));
        procs.0.push(
            Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        logs.push(log);
    }
    for (m, log) in members.iter().zip(&logs) {
        wait_leader(m["client_url"].as_str().unwrap(), log);
    }
    let mut want: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["peer_url"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want.sort();
    let rt = Cluster::runtime();
    for m in members {
        let ep = m["client_url"].as_str().unwrap();
        let (r, k) = dump(ep);
        assert_eq!(r, rev, "{ep} revision");
        assert_eq!(k, kvs, "{ep} keys");
        rt.block_on(async {
            let mut c = connect(ep).await.unwrap();
            // Linearizable: what `etcdctl endpoint health` reads.
            c.get("health", None).await.unwrap();
            let l = c.member_list().await.unwrap();
            let mut got: Vec<(String, String)> = l
                .members()
                .iter()
                .map(|x| (x.name().to_string(), x.peer_urls().join(",")))
                .collect();
            got.sort();
            assert_eq!(got, want, "{ep} member list");
            assert!(l.members().iter().all(|x| !x.is_learner()));
        });
    }
    procs
}

#[test]
fn etcd_restore_uses_the_recorded_peer_urls_when_the_config_has_none() {
    let t = tempfile::tempdir().unwrap();
    // Three members on one host, each with its own peer port; the config
    // lists only { name, endpoint }, as a new user writes it.
    let (mut cluster, cfg, key) = snapshotted_with(t.path(), &[], "", false);
    let (rev, kvs) = cluster.dump(0);

    // Every manifest records the membership as etcd reported it.
    let ms = manifests(t.path());
    assert_eq!(ms.len(), 3);
    for (p, m) in &ms {
        let rec = &m["membership"];
        assert_eq!(rec["cluster_id"], m["cluster_id"], "{}", p.display());
        let listed = rec["members"].as_array().unwrap();
        assert_eq!(listed.len(), 3, "{rec}");
        for (i, c) in cluster.members.iter().enumerate() {
            let r = listed
                .iter()
                .find(|r| r["name"] == c.name.as_str())
                .unwrap();
            assert_eq!(
                r["peer_urls"],
                serde_json::json!([format!("http://127.0.0.1:{}", c.peer_port)])
            );
            assert_eq!(r["client_urls"], serde_json::json!([cluster.endpoint(i)]));
            assert_eq!(r["is_learner"], false);
            assert!(u64::from_str_radix(r["id"].as_str().unwrap(), 16).is_ok());
        }
        // The member snapshotted knows its own version at least.
        let own = listed.iter().find(|r| r["id"] == m["member_id"]).unwrap();
        assert_eq!(own["name"], m["member"]);
        assert_eq!(own["etcd_version"], m["etcd_version"]);
    }

    kill_cluster(&mut cluster);
    let target = t.path().join("restored");
    let out = restore_etcd(
        &cfg,
        &key,
        &target,
        &[
            "--no-bump", // no Kubernetes, unbumped revision: see above
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, c) in cluster.members.iter().enumerate() {
        let m = &report["members"][i];
        assert_eq!(m["name"], c.name.as_str());
        assert_eq!(m["peer_url"], format!("http://127.0.0.1:{}", c.peer_port));
        assert_eq!(m["peer_url_from"], "manifest");
    }
    let procs = start_and_check(t.path(), "restored", &report, rev, &kvs);
    drop(procs);
}

#[test]
fn etcd_restore_onto_new_hosts_takes_their_urls_from_the_config_or_flag() {
    let t = tempfile::tempdir().unwrap();
    let (mut cluster, _cfg, key) = snapshotted_with(t.path(), &[], "", false);
    let (rev, kvs) = cluster.dump(0);
    kill_cluster(&mut cluster);

    // "New hosts": every member on other client and peer ports. The runbook's
    // one config change: the new hosts' endpoint and peer_url per member.
    // cp-3's peer_url is left stale on purpose; the --peer-url flag overrides it.
    let new: Vec<(u16, u16)> = (0..3)
        .map(|_| (vigil_tests::free_port(), vigil_tests::free_port()))
        .collect();
    let members: Vec<Member> = NAMES
        .iter()
        .zip(&new)
        .enumerate()
        .map(|(i, (n, (c, p)))| {
            let peer = if i == 2 {
                format!("http://127.0.0.1:{}", cluster.members[2].peer_port)
            } else {
                format!("http://127.0.0.1:{p}")
            };
            (n.to_string(), format!("http://127.0.0.1:{c}"), peer)
        })
        .collect();
    let cfg = write_config(t.path(), &members, &[key.recipient.as_str()], "");
    let flag = format!("cp-3=http://127.0.0.1:{}", new[2].1);
    let target = t.path().join("new-hosts");
    let out = restore_etcd(
        &cfg,
        &key,
        &target,
        &[
            "--peer-url",
            &flag,
            "--no-bump", // no Kubernetes, unbumped revision: see above
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, (c, p)) in new.iter().enumerate() {
        let m = &report["members"][i];
        assert_eq!(m["client_url"], format!("http://127.0.0.1:{c}"));
        assert_eq!(m["peer_url"], format!("http://127.0.0.1:{p}"));
        assert_eq!(m["peer_url_from"], if i == 2 { "flag" } else { "config" });
    }
    let procs = start_and_check(t.path(), "new", &report, rev, &kvs);
    drop(procs);
}

#[test]
fn etcd_restore_checks_the_membership_before_running_anything() {
    let t = tempfile::tempdir().unwrap();
    let (section, etcdctl_log) = logging_etcdctl(t.path());
    let (mut cluster, cfg, key) = snapshotted_with(t.path(), &[], &section, false);
    kill_cluster(&mut cluster);
    // The snapshot run's restore proofs used the same etcdctl; only the
    // restore's own calls count here.
    let _ = std::fs::remove_file(&etcdctl_log);
    let id = s(&key.identity_file).to_string();
    let target = t.path().join("restored");
    let refused = |cfg: &Path, extra: &[&str], wants: &[&str]| {
        let mut args = vec!["etcd", "--identity", &id, "--out", s(&target)];
        args.extend_from_slice(extra);
        let out = restore(cfg, &args, &[], None);
        let msg = text(&out);
        assert!(
            !etcdctl_log.exists(),
            "etcdctl ran before the check: {}\n{msg}",
            std::fs::read_to_string(&etcdctl_log).unwrap_or_default()
        );
        assert_eq!(out.status.code(), Some(2), "{msg}");
        for w in wants {
            assert!(msg.contains(w), "{w:?} missing from: {msg}");
        }
        assert!(!target.exists(), "{:?}", files(&target));
    };

    // An old archive (no membership recorded) and a config without peer_url:
    // the host:2380 guess gives all three members the same URL.
    let ms = manifests(t.path());
    for (p, m) in &ms {
        let mut old = m.clone();
        old.as_object_mut().unwrap().remove("membership");
        std::fs::write(p, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    }
    refused(
        &cfg,
        &[],
        &[
            "duplicate peer URL http://127.0.0.1:2380",
            "cp-1",
            "cp-2",
            "guessed from the endpoint",
            "--peer-url",
        ],
    );
    for (p, m) in &ms {
        std::fs::write(p, serde_json::to_vec_pretty(m).unwrap()).unwrap();
    }

    // Two members given the same URL by the flag and by the record.
    let cp2 = format!("http://127.0.0.1:{}", cluster.members[1].peer_port);
    let flag = format!("cp-1={cp2}");
    refused(
        &cfg,
        &["--peer-url", &flag],
        &[
            &format!("duplicate peer URL {cp2}"),
            "cp-1 (--peer-url)",
            "cp-2 (manifest",
        ],
    );
    // A flag for a member the config does not have.
    refused(
        &cfg,
        &["--peer-url", "cp-9=http://127.0.0.1:1"],
        &["cp-9", "not a member of [cluster].members"],
    );

    // A member of the config that the record does not know.
    let mut members = cluster_members(&cluster);
    members.iter_mut().for_each(|m| m.2.clear());
    let mut extra = members.clone();
    extra.push((
        "cp-4".into(),
        format!("http://127.0.0.1:{}", vigil_tests::free_port()),
        String::new(),
    ));
    let cfg4 = write_config(t.path(), &extra, &[key.recipient.as_str()], &section);
    refused(
        &cfg4,
        &[],
        &["cp-4", "not in the membership recorded", "--peer-url cp-4="],
    );

    // A recorded member missing from the config.
    let cfg2 = write_config(t.path(), &members[..2], &[key.recipient.as_str()], &section);
    refused(
        &cfg2,
        &[],
        &[
            "cp-3",
            &format!("http://127.0.0.1:{}", cluster.members[2].peer_port),
            "not in the config",
            "--drop-member cp-3",
        ],
    );
}

/// Issue #15 point 3 on the etcd at hand (3.4, which cannot bump offline):
/// the bump is replayed through a scratch etcd, sized from the newest
/// revision vigil-health saw, and a watch from that revision (where every
/// kube-apiserver's cache stood) fails as compacted on the restored cluster.
#[test]
fn etcd_restore_replays_the_bump_and_old_watches_fail_as_compacted() {
    let t = tempfile::tempdir().unwrap();
    let (mut cluster, cfg, key) = snapshotted(t.path(), &[], "bump_revision = 0\n");
    let (snap_rev, kvs) = cluster.dump(0);
    // The cluster goes on after the snapshot, and health sees it.
    Cluster::runtime().block_on(async {
        let mut c = cluster.client(0).await;
        for i in 0..300 {
            c.put(format!("/registry/events/default/e{i}"), "x", None)
                .await
                .unwrap();
        }
    });
    vigil("vigil-health", &cfg, &["run", "--json", "--no-alert"]);
    let seen: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("state/revision-seen.json")).unwrap())
            .unwrap();
    let newest = seen["revision"].as_i64().unwrap();
    assert!(newest >= snap_rev + 300, "{seen}");
    let want = (newest - snap_rev) as u64 + 1000;
    kill_cluster(&mut cluster);

    let target = t.path().join("restored");
    let out = restore_etcd(&cfg, &key, &target, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &report["bump"];
    assert_eq!(b["method"], "replay", "{b}");
    assert_eq!(b["applied"], true);
    assert_eq!(b["size"], want);
    assert_eq!(b["evidence"]["revision"], newest);
    assert_eq!(report["bumped_revision"], want);
    let to = snap_rev + want as i64;
    assert_eq!(b["replayed"]["from_revision"], snap_rev);
    assert_eq!(b["replayed"]["to_revision"], to);
    // Only the members' data dirs are left: no snapshot, no scratch etcd.
    assert_eq!(files(&target), vec!["cp-1", "cp-2", "cp-3"]);

    // The same keys and values, at the bumped revision.
    let procs = start_and_check(t.path(), "bumped", &report, to, &kvs);
    let rt = Cluster::runtime();
    rt.block_on(async {
        let ep = report["members"][1]["client_url"].as_str().unwrap();
        let mut c = connect(ep).await.unwrap();
        // Where the clients' caches stood: compacted, so they re-list.
        for from in [snap_rev + 1, newest] {
            let mut stream = c
                .watch(
                    "/registry/",
                    Some(
                        etcd_client::WatchOptions::new()
                            .with_prefix()
                            .with_start_revision(from),
                    ),
                )
                .await
                .unwrap();
            // The first answer may be the plain "created"; the compaction follows.
            let mut r = stream.message().await.unwrap().unwrap();
            if r.created() && !r.canceled() {
                r = tokio::time::timeout(Duration::from_secs(10), stream.message())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
            }
            assert!(
                r.canceled() && r.compact_revision() == to,
                "a watch from revision {from}: canceled {} compact_revision {} (want {to})",
                r.canceled(),
                r.compact_revision()
            );
        }
        // New writes go on after the bumped revision.
        let p = c.put("/registry/after", "1", None).await.unwrap();
        assert_eq!(p.header().unwrap().revision(), to + 1);
    });
    drop(procs);

    // The control: unbumped, the same watch is accepted, and the next write
    // reuses a revision the clients already saw with other contents.
    let plain = t.path().join("restored-plain");
    let out = restore_etcd(&cfg, &key, &plain, &["--no-bump", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report_plain: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let procs = start_and_check(t.path(), "plain", &report_plain, snap_rev, &kvs);
    rt.block_on(async {
        let ep = report_plain["members"][0]["client_url"].as_str().unwrap();
        let mut c = connect(ep).await.unwrap();
        let mut stream = c
            .watch(
                "/registry/",
                Some(
                    etcd_client::WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(snap_rev + 1),
                ),
            )
            .await
            .unwrap();
        let r = stream.message().await.unwrap().unwrap();
        assert!(r.created() && !r.canceled() && r.compact_revision() == 0);
        let p = c.put("/registry/after", "1", None).await.unwrap();
        assert!(p.header().unwrap().revision() <= newest);
    });
    drop(procs);

    // The human report says how the bump was made.
    let human = t.path().join("restored-human");
    let out = restore_etcd(&cfg, &key, &human, &["--skip-port-check"]);
    let h = text(&out);
    assert_eq!(out.status.code(), Some(0), "{h}");
    assert!(
        h.contains(&format!(
            "revision bumped by {want} by replay through a scratch etcd (revision {snap_rev} -> {to}, compacted)"
        )),
        "{h}"
    );
}

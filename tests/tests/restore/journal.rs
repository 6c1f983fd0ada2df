//! vigil-journal against a real 3-member etcd: a steady writer (puts,
//! deletes, multi-key transactions) while the journal runs, is killed -9 and
//! loses the member it follows; then the cluster is lost and restored to
//! three points, each compared with the live cluster's state at that
//! revision (key, value, create and mod revision, version). Gaps after a
//! compaction, a corrupt segment, and shipping to radosgw and a dir sink.
#![allow(clippy::unwrap_used)]

use etcd_client::{GetOptions, Txn, TxnOp};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::etcd::Cluster;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

/// key, value, create revision, mod revision, version.
type Full = (Vec<u8>, Vec<u8>, i64, i64, i64);

struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn connect(ep: &str) -> etcd_client::Client {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    etcd_client::Client::connect([ep], Some(opts))
        .await
        .unwrap()
}

/// Every key at `rev` (0: now) as `ep` serves it.
fn state_at(ep: &str, rev: i64) -> (i64, Vec<Full>) {
    Cluster::runtime().block_on(async {
        let mut c = connect(ep).await;
        let mut o = GetOptions::new().with_all_keys().with_serializable();
        if rev > 0 {
            o = o.with_revision(rev);
        }
        let r = c.get(vec![0u8], Some(o)).await.unwrap();
        (
            r.header().unwrap().revision(),
            r.kvs()
                .iter()
                .map(|kv| {
                    (
                        kv.key().to_vec(),
                        kv.value().to_vec(),
                        kv.create_revision(),
                        kv.mod_revision(),
                        kv.version(),
                    )
                })
                .collect(),
        )
    })
}

fn start_journal(cfg: &Path, log: &Path) -> Child {
    Command::new(bin("vigil-journal"))
        .arg("--config")
        .arg(cfg)
        .args(["--log-format", "text", "run"])
        .env("VIGIL_LOG", "info,vigil_journal=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

fn verify_json(cfg: &Path, source: &str) -> serde_json::Value {
    let out = vigil(
        "vigil-journal",
        cfg,
        &["verify", "--source", source, "--json"],
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)))
}

/// Waits until the journal in `source` ends at `rev` or later.
fn wait_journaled(cfg: &Path, source: &str, rev: i64, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = verify_json(cfg, source);
        if v["last_revision"].as_i64().unwrap_or(0) >= rev {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the journal in {source} did not reach revision {rev}: {v}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn sigterm(c: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "vigil-journal did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `rounds` rounds through `ep`: a put, a multi-key transaction
/// (puts and a delete) and every few rounds a delete. Returns the revision
/// after each round. A round that fails (a leader that just died) is
/// written again: each of its writes sets the same state twice over.
fn write_rounds(ep: &str, start: usize, rounds: usize) -> Vec<i64> {
    Cluster::runtime().block_on(async {
        let mut c = connect(ep).await;
        let mut revs = Vec::new();
        for i in start..start + rounds {
            let mut tries = 0;
            loop {
                match round(&mut c, i).await {
                    Ok(rev) => {
                        revs.push(rev);
                        break;
                    }
                    Err(e) => {
                        tries += 1;
                        assert!(tries < 20, "round {i}: {e}");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
            }
        }
        revs
    })
}

async fn round(c: &mut etcd_client::Client, i: usize) -> Result<i64, etcd_client::Error> {
    c.put(
        format!("/registry/pods/default/p{i:05}"),
        format!("{{\"i\":{i}}}"),
        None,
    )
    .await?;
    let ops = vec![
        TxnOp::put(
            format!("/registry/configmaps/default/c{:03}", i % 50),
            format!("v{i}"),
            None,
        ),
        TxnOp::put(
            format!("/registry/secrets/default/s{:03}", i % 7),
            vec![i as u8, 0, 255],
            None,
        ),
        TxnOp::delete(
            format!("/registry/pods/default/p{:05}", i.saturating_sub(3)),
            None,
        ),
    ];
    let r = c.txn(Txn::new().and_then(ops)).await?;
    let mut rev = r.header().map(|h| h.revision()).unwrap_or_default();
    if i.is_multiple_of(5) {
        rev = c
            .delete(
                format!("/registry/configmaps/default/c{:03}", (i + 25) % 50),
                None,
            )
            .await?
            .header()
            .map(|h| h.revision())
            .unwrap_or_default();
    }
    Ok(rev)
}

fn kill_cluster(cluster: &mut Cluster) {
    for i in 0..3 {
        cluster.kill(i);
        let _ = std::fs::remove_dir_all(&cluster.members[i].data_dir);
    }
}

/// Waits until a restored member at `ep` has a leader.
fn wait_up(ep: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = Cluster::runtime().block_on(async {
            let o = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(1))
                .with_timeout(Duration::from_secs(2));
            match etcd_client::Client::connect([ep], Some(o)).await {
                Ok(mut c) => matches!(c.status().await, Ok(s) if s.leader() != 0),
                Err(_) => false,
            }
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "restored member {ep} did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Restores with `args`, starts the three members with the printed
/// commands, and checks every member against `want` at `rev`; stops them.
fn restore_and_check(
    t: &Path,
    cfg: &Path,
    key: &AgeKey,
    tag: &str,
    args: &[&str],
    rev: i64,
    want: &[Full],
) -> serde_json::Value {
    let target = t.join(tag);
    let mut a = vec![
        "etcd",
        "--identity",
        s(&key.identity_file),
        "--out",
        s(&target),
        "--no-bump",
        "--json",
    ];
    a.extend_from_slice(args);
    let out = vigil("vigil-restore", cfg, &a);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["point"]["target_revision"], rev, "{report}");
    let mut procs = Procs(Vec::new());
    for m in report["members"].as_array().unwrap() {
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
    }
    for m in report["members"].as_array().unwrap() {
        let ep = m["client_url"].as_str().unwrap();
        wait_up(ep);
        let (r, got) = state_at(ep, 0);
        assert_eq!(r, rev, "{tag}: {ep} revision");
        assert_eq!(got.len(), want.len(), "{tag}: {ep} key count");
        assert!(
            got == want,
            "{tag}: {ep}: the restored keys differ from the live cluster's at revision {rev}"
        );
    }
    drop(procs);
    // The ports must be free for the next restore.
    std::thread::sleep(Duration::from_millis(500));
    report
}

#[test]
fn journal_restores_to_a_revision_a_minute_and_the_end_after_faults() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    let mut cluster = Cluster::start(&t.join("orig"), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 100, 200, false, 7);
    let key = age_key(t);
    let mut cb = ConfigBuilder::new(t, cluster.config_members(), &key.recipient);
    cb.peers = cluster.peer_urls();
    cb.extra = "\n[journal]\nflush = \"1s\"\n".into();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = t.join("journal.log");
    let mut j = start_journal(&cfg, &log);
    // The writer goes through cp-3: the journal follows cp-1 first.
    let ep = cluster.endpoint(2);
    let mut revs = write_rounds(&ep, 0, 120);

    // kill -9 in the middle of a segment (flush is 1 s): no gap, no duplicate.
    j.kill().unwrap();
    j.wait().unwrap();
    revs.extend(write_rounds(&ep, 120, 80));
    let mut j = start_journal(&cfg, &log);
    revs.extend(write_rounds(&ep, 200, 60));

    // A quiet second: the point in time falls in it.
    let mid_time_rev = *revs.last().unwrap();
    wait_journaled(&cfg, "local", mid_time_rev, &log);
    std::thread::sleep(Duration::from_millis(600));
    let mid_time = vigil_core::rfc3339(vigil_core::now());
    std::thread::sleep(Duration::from_millis(600));

    // The member it follows fails: it moves on.
    cluster.kill(0);
    revs.extend(write_rounds(&ep, 260, 120));
    let end = *revs.last().unwrap();
    wait_journaled(&cfg, "local", end, &log);
    let l = std::fs::read_to_string(&log).unwrap();
    assert!(l.contains("moving to the next member"), "{l}");
    sigterm(&mut j);

    let v = verify_json(&cfg, "local");
    assert_eq!(v["broken"], serde_json::Value::Null, "{v}");
    assert!(v["gaps"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["segments"].as_u64().unwrap() >= 2, "{v}");

    // The references, read from the live cluster at each revision.
    let mid_rev = revs[150];
    let (_, want_mid) = state_at(&ep, mid_rev);
    let (_, want_time) = state_at(&ep, mid_time_rev);
    let (_, want_end) = state_at(&ep, end);

    // The cluster is lost.
    kill_cluster(&mut cluster);
    let r = restore_and_check(
        t,
        &cfg,
        &key,
        "mid",
        &["--to-revision", &mid_rev.to_string()],
        mid_rev,
        &want_mid,
    );
    assert!(r["point"]["revisions"].as_u64().unwrap() > 100, "{r}");
    restore_and_check(
        t,
        &cfg,
        &key,
        "minute",
        &["--to-time", &mid_time],
        mid_time_rev,
        &want_time,
    );
    let r = restore_and_check(
        t,
        &cfg,
        &key,
        "end",
        &["--to-time", &vigil_core::rfc3339(vigil_core::now())],
        end,
        &want_end,
    );
    assert_eq!(r["point"]["journal_newest_revision"], end, "{r}");

    // fetch gives the point's snapshot as a file etcdctl reads.
    let snap = t.join("point.db");
    let out = vigil(
        "vigil-restore",
        &cfg,
        &[
            "fetch",
            "--identity",
            s(&key.identity_file),
            "--out",
            s(&snap),
            "--to-revision",
            &mid_rev.to_string(),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let st = Command::new("etcdctl")
        .args(["snapshot", "status", s(&snap), "-w", "json"])
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["revision"], mid_rev, "{st}");
    // Past the journal's end: refused, naming where it ends.
    let out = vigil(
        "vigil-restore",
        &cfg,
        &[
            "fetch",
            "--identity",
            s(&key.identity_file),
            "--out",
            s(&t.join("x.db")),
            "--to-revision",
            &(end + 100).to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("ends at revision {end}")),
        "{}",
        text(&out)
    );
}

/// Archive manifests under the snapshot dir.
fn archives(dir: &Path) -> usize {
    NAMES
        .iter()
        .flat_map(|m| {
            std::fs::read_dir(dir.join(m))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|e| e.file_name().to_string_lossy().ends_with(".age.json"))
        .count()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.zst.age"))
        .collect();
    v.sort();
    v
}

#[test]
fn journal_gap_corrupt_segment_and_restore_from_radosgw_alone() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    let rgw = vigil_tests::ceph::Rgw::start(&t.join("ceph"));
    rgw.make_bucket("journal");
    let mut cluster = Cluster::start(&t.join("orig"), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 50, 100, false, 9);
    let key = age_key(t);
    let mut cb = ConfigBuilder::new(t, cluster.config_members(), &key.recipient);
    cb.peers = cluster.peer_urls();
    let dir_sink = t.join("ltfs");
    cb.extra = format!(
        "\n[journal]\nflush = \"1s\"\n\n[[sink]]\nname = \"rgw\"\nkind = \"s3\"\nendpoint = \"{}\"\nallow_http = true\nbucket = \"journal\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nretries = 1\nretry_timeout = \"2s\"\n\n[[sink]]\nname = \"ltfs\"\nkind = \"dir\"\npath = \"{}\"\n",
        rgw.endpoint(),
        vigil_tests::ceph::ACCESS_KEY,
        vigil_tests::ceph::SECRET_KEY,
        dir_sink.display()
    );
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = t.join("journal.log");
    let ep = cluster.endpoint(1);
    let mut j = start_journal(&cfg, &log);
    let mut revs = Vec::new();
    for k in 0..4 {
        revs.extend(write_rounds(&ep, k * 30, 30));
        // Separate segments.
        std::thread::sleep(Duration::from_millis(1300));
    }
    let end = *revs.last().unwrap();
    wait_journaled(&cfg, "rgw", end, &log);
    wait_journaled(&cfg, "ltfs", end, &log);
    sigterm(&mut j);
    let (_, want_end) = state_at(&ep, end);

    // A corrupt segment: verify names it, the restore from the bastion
    // refuses to replay past it, and radosgw's copy is whole.
    let jdir = t.join("journal");
    let segs = segment_files(&jdir);
    assert!(segs.len() >= 3, "{segs:?}");
    let bad = &segs[1];
    let mut bytes = std::fs::read(bad).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 0x5a;
    std::fs::write(bad, &bytes).unwrap();
    let out = vigil("vigil-journal", &cfg, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let name = bad.file_name().unwrap().to_str().unwrap();
    assert!(text(&out).contains(name), "{}", text(&out));
    let out = vigil(
        "vigil-restore",
        &cfg,
        &[
            "fetch",
            "--identity",
            s(&key.identity_file),
            "--out",
            s(&t.join("bad.db")),
            "--source",
            "local",
            "--to-revision",
            &end.to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(name), "{}", text(&out));
    assert!(!t.join("bad.db").exists());

    // The gap: compacted past the journal while it was stopped.
    revs.extend(write_rounds(&ep, 200, 20));
    let compact_at = *revs.last().unwrap();
    Cluster::runtime().block_on(async {
        connect(&ep)
            .await
            .compact(
                compact_at,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .unwrap();
    });
    // The cluster goes on writing after its compaction, as under the apiserver.
    revs.extend(write_rounds(&ep, 220, 5));
    let archives_before = archives(&cb.snapshot_dir);
    let mut j = start_journal(&cfg, &log);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let l = std::fs::read_to_string(&log).unwrap();
        if l.contains("the re-anchoring snapshot finished") {
            assert!(
                l.contains(&format!(
                    "revisions {}..={} were compacted",
                    end + 1,
                    compact_at - 1
                )),
                "{l}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no re-anchoring snapshot: {l}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(archives(&cb.snapshot_dir) > archives_before);
    let out = vigil("vigil-notify", &cfg, &["status", "--json"]);
    assert!(text(&out).contains("journal_gap"), "{}", text(&out));
    sigterm(&mut j);

    // The worst day: the cluster and the bastion are gone; radosgw alone
    // brings the cluster back to the revision before the gap.
    kill_cluster(&mut cluster);
    std::fs::remove_dir_all(&jdir).unwrap();
    std::fs::remove_dir_all(&cb.snapshot_dir).unwrap();
    std::fs::create_dir_all(&cb.snapshot_dir).unwrap();
    let target = t.join("restored");
    let out = vigil(
        "vigil-restore",
        &cfg,
        &[
            "etcd",
            "--identity",
            s(&key.identity_file),
            "--out",
            s(&target),
            "--source",
            "rgw",
            "--no-bump",
            "--to-revision",
            &end.to_string(),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["point"]["journal_source"], "rgw", "{report}");
    assert_eq!(report["source"], "rgw", "{report}");
    let mut procs = Procs(Vec::new());
    for m in report["members"].as_array().unwrap() {
        let argv: Vec<String> = m["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        procs.0.push(
            Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let ep0 = report["members"][0]["client_url"]
        .as_str()
        .unwrap()
        .to_string();
    wait_up(&ep0);
    let (r, got) = state_at(&ep0, 0);
    assert_eq!(r, end);
    assert!(
        got == want_end,
        "restored from radosgw: keys differ at revision {end}"
    );
    drop(procs);
}

/// Rewrites segment `seg` as an administrator with the key could: its last
/// PUT of a key that no later event of the segment touches gets another
/// value, the segment is encrypted again and its manifest made to match.
/// Returns the key.
fn tamper_segment(seg: &Path, key: &AgeKey) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "age -d -i '{}' '{}' | zstd -dc",
            key.identity_file.display(),
            seg.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let i = (0..lines.len())
        .rev()
        .find(|&i| {
            lines[i]["type"] == "PUT" && lines[i + 1..].iter().all(|l| l["key"] != lines[i]["key"])
        })
        .unwrap();
    let name = base64_decode(lines[i]["key"].as_str().unwrap());
    lines[i]["value"] = "dGFtcGVyZWQ=".into(); // "tampered"
    let mut plain = String::new();
    for l in &lines {
        plain.push_str(&serde_json::to_string(l).unwrap());
        plain.push('\n');
    }
    let mut c = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -q -c | age -r '{}' -o '{}.new' && mv '{}.new' '{}'",
            key.recipient,
            seg.display(),
            seg.display(),
            seg.display()
        ))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(plain.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
    let mpath = PathBuf::from(format!("{}.json", seg.display()));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["sha256"] = sha256_hex(seg).into();
    m["size"] = std::fs::metadata(seg).unwrap().len().into();
    m["plaintext_size"] = (plain.len() as u64).into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    name
}

/// Standard base64 (the journal's encoding) to text.
fn base64_decode(s: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s '{s}' | base64 -d"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn drill_proves_the_journal_and_names_a_key_it_does_not_replay() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    let cluster = Cluster::start(&t.join("orig"), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 120, 200, false, 5);
    let key = age_key(t);
    std::fs::set_permissions(
        &key.identity_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let alerts = t.join("alerts.jsonl");
    let mut cb = ConfigBuilder::new(t, cluster.config_members(), &key.recipient);
    cb.extra = format!(
        "\n[journal]\nflush = \"1s\"\n\n[restore]\ndrill_identity_file = \"{}\"\nscratch_dir = \"{}\"\n\n\
         [metrics]\ntextfile_dir = \"{}\"\n\n\
         [[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
        key.identity_file.display(),
        t.join("scratch").display(),
        t.join("metrics").display(),
        alerts.display()
    );
    std::fs::create_dir_all(t.join("metrics")).unwrap();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // No segment yet: the journal is not proven, and that is no failure.
    let out = vigil("vigil-restore", &cfg, &["drill", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["journal"]["skipped"]
            .as_str()
            .unwrap_or_default()
            .contains("no journal segments"),
        "{r}"
    );
    assert!(!t.join("state/outcomes/drill/journal.json").exists());
    let log = t.join("journal.log");
    let ep = cluster.endpoint(0);
    let mut j = start_journal(&cfg, &log);
    let mut revs = Vec::new();
    for k in 0..3 {
        revs.extend(write_rounds(&ep, k * 40, 40));
        std::thread::sleep(Duration::from_millis(1300));
    }
    let end = *revs.last().unwrap();
    wait_journaled(&cfg, "local", end, &log);
    sigterm(&mut j);
    let (_, live) = state_at(&ep, end);

    // The journal replays onto the snapshot to exactly the live state.
    let out = vigil("vigil-restore", &cfg, &["drill", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jr = &r["journal"];
    assert_eq!(jr["ok"], true, "{r}");
    assert_eq!(jr["target_revision"], end, "{jr}");
    assert_eq!(jr["keys_compared"], live.len(), "{jr}");
    assert_eq!(jr["source"], "local", "{jr}");
    assert!(jr["revisions_replayed"].as_u64().unwrap() >= 120, "{jr}");
    // Nothing written since the journal's end: nothing would be lost.
    assert_eq!(jr["rpo_seconds"], 0.0, "{jr}");
    let state = t.join("state");
    let o: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("outcomes/drill/journal.json")).unwrap())
            .unwrap();
    assert_eq!(o["ok"], true, "{o}");
    let prom: String = std::fs::read_dir(t.join("metrics"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(
        prom.contains("vigil_drill_journal_success{cluster=\"prod\"} 1")
            && prom.contains("vigil_drill_journal_rpo_seconds{cluster=\"prod\"}"),
        "{prom}"
    );
    // The cluster moves on: the proven RPO is how far the journal lagged.
    write_rounds(&ep, 500, 3);
    std::thread::sleep(Duration::from_millis(1500));
    let out = vigil("vigil-restore", &cfg, &["drill", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["journal"]["ok"], true, "{r}");
    assert!(r["journal"]["rpo_seconds"].as_f64().unwrap() >= 1.0, "{r}");
    assert!(r["journal"]["live_revision"].as_i64().unwrap() > end, "{r}");

    // A segment rewritten with a valid manifest, and no successor to
    // notice: only the comparison with the live cluster finds it.
    let segs = segment_files(&t.join("journal"));
    assert!(segs.len() >= 3, "{segs:?}");
    let changed = tamper_segment(segs.last().unwrap(), &key);
    let out = vigil("vigil-journal", &cfg, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = vigil("vigil-restore", &cfg, &["drill"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("journal: FAILED at consistency")
            && text(&out).contains(&format!("key {changed:?}"))
            && text(&out).contains("values differ"),
        "{}",
        text(&out)
    );
    vigil_tests::notify_once(&cfg);
    let fired = std::fs::read_to_string(&alerts).unwrap_or_default();
    assert!(
        fired.contains("restore_drill_failed")
            && fired.contains("\"journal\"")
            && fired.contains("\"firing\""),
        "the failed journal proof raised no alert: {fired}"
    );
    assert!(vigil_tests::all_files(&t.join("scratch")).is_empty());

    // A segment in the middle rewritten: the next one's link breaks. The
    // restore stops at the break unless told to replay past it.
    let mid = tamper_segment(&segs[1], &key);
    let out = vigil("vigil-journal", &cfg, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let fetch = |extra: &[&str], out_file: &Path| {
        let end_s = end.to_string();
        let mut a = vec![
            "fetch",
            "--identity",
            s(&key.identity_file),
            "--out",
            s(out_file),
            "--to-revision",
            &end_s,
        ];
        a.extend_from_slice(extra);
        vigil("vigil-restore", &cfg, &a)
    };
    let out = fetch(&[], &t.join("refused.db"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cut short by a break"),
        "{}",
        text(&out)
    );
    let forced = t.join("forced.db");
    let out = fetch(&["--force-journal"], &forced);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let st = Command::new("etcdctl")
        .args(["snapshot", "status", s(&forced), "-w", "json"])
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["revision"], end, "{st}");
    let out = vigil("vigil-restore", &cfg, &["drill"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("chain in local is broken"),
        "{}",
        text(&out)
    );
    assert!(!mid.is_empty());
}

/// Firing alerts, as `vigil-notify status --json` lists them.
fn firing(cfg: &Path) -> String {
    let out = vigil("vigil-notify", cfg, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == "firing")
        .map(|a| format!("{} ", a["key"].as_str().unwrap_or_default()))
        .collect()
}

/// Waits until `pred` holds of the firing alerts (the journal refreshes
/// them every 15 s).
fn wait_alerts(cfg: &Path, log: &Path, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let f = firing(cfg);
        if pred(&f) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: firing alerts: {f}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Journal segment names (without manifests) under `root`, recursively.
fn segments_under(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = files_under(root)
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl.zst.age"))
        .collect();
    v.sort();
    v
}

#[test]
fn journal_full_disk_dead_sink_local_bound_and_sink_retention() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let t = t.path();
    let cluster = Cluster::start(&t.join("orig"), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 50, 100, false, 13);
    let key = age_key(t);
    let jdir = t.join("jdir");
    std::fs::create_dir_all(&jdir).unwrap();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs"])
        .arg(&jdir)
        .output()
        .unwrap();
    assert!(m.status.success(), "{}", text(&m));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(jdir.clone());
    let (ltfs, dead) = (t.join("ltfs"), t.join("dead"));
    let mut cb = ConfigBuilder::new(t, cluster.config_members(), &key.recipient);
    cb.extra = format!(
        "\n[journal]\ndir = \"{}\"\nflush = \"1s\"\nmax_lag = \"2s\"\nsegment_size = \"4KiB\"\nmax_local = \"6KiB\"\n\n\
         [[sink]]\nname = \"ltfs\"\nkind = \"dir\"\npath = \"{}\"\nkeep_last = 1\n\n\
         [[sink]]\nname = \"dead\"\nkind = \"dir\"\npath = \"{}\"\n",
        jdir.display(),
        ltfs.display(),
        dead.display()
    );
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first_snapshot_rev = state_at(&cluster.endpoint(0), 0).0;
    // The second sink dies: its path is now a plain file.
    std::fs::remove_dir_all(&dead).unwrap();
    std::fs::write(&dead, b"not a directory").unwrap();

    let log = t.join("journal.log");
    let ep = cluster.endpoint(1);
    let mut j = start_journal(&cfg, &log);
    let mut revs = Vec::new();
    for k in 0..6 {
        revs.extend(write_rounds(&ep, k * 30, 30));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let end = *revs.last().unwrap();
    wait_journaled(&cfg, "ltfs", end, &log);
    wait_alerts(&cfg, &log, "dead sink and local bound", |f| {
        f.contains("journal_ship_failed{sink=\"dead\"}") && f.contains("journal_local_full")
    });
    // The bastion keeps at most max_local (and the open tail), ltfs all.
    let local = segments_under(&jdir);
    let held = segments_under(&ltfs);
    assert!(local.len() < held.len(), "local {local:?} ltfs {held:?}");
    let local_bytes: u64 = local
        .iter()
        .map(|n| std::fs::metadata(jdir.join(n)).unwrap().len())
        .sum();
    let newest = std::fs::metadata(jdir.join(local.last().unwrap()))
        .unwrap()
        .len();
    assert!(local_bytes <= 6 * 1024 + newest, "{local_bytes} bytes kept");

    // A full disk under the journal: it lags, says why, and catches up
    // with no gap and no duplicate once there is room again.
    let fill = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", jdir.join("filler").display()))
        .output()
        .unwrap();
    assert!(!fill.status.success(), "the tmpfs did not fill up");
    revs.extend(write_rounds(&ep, 300, 40));
    wait_alerts(&cfg, &log, "journal_lagging on a full disk", |f| {
        f.contains("journal_lagging")
    });
    let l = std::fs::read_to_string(&log).unwrap();
    assert!(
        l.contains("cannot write the journal") && l.contains("No space left on device"),
        "{l}"
    );
    std::fs::remove_file(jdir.join("filler")).unwrap();
    let end2 = *revs.last().unwrap();
    wait_journaled(&cfg, "ltfs", end2, &log);
    wait_alerts(&cfg, &log, "journal_lagging resolved", |f| {
        !f.contains("journal_lagging")
    });
    let v = verify_json(&cfg, "ltfs");
    assert_eq!(v["broken"], serde_json::Value::Null, "{v}");
    assert!(v["gaps"].as_array().unwrap().is_empty(), "{v}");
    assert!(
        v["first_revision"].as_i64().unwrap() <= first_snapshot_rev + 1,
        "{v}"
    );
    assert!(
        vigil_tests::all_files(&jdir)
            .iter()
            .all(|f| !f.ends_with(".partial") && !f.contains("open-")),
        "{:?}",
        vigil_tests::all_files(&jdir)
    );

    // A newer snapshot; ltfs keeps one archive per member, so its journal
    // is pruned back to that archive's revision.
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out)); // the dead sink
    let second_snapshot_rev = state_at(&ep, 0).0;
    revs.extend(write_rounds(&ep, 400, 5));
    let end3 = *revs.last().unwrap();
    wait_journaled(&cfg, "ltfs", end3, &log);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let v = verify_json(&cfg, "ltfs");
        let first = v["first_revision"].as_i64().unwrap();
        if first > first_snapshot_rev + 1 {
            assert!(first <= second_snapshot_rev + 1, "{v}");
            assert_eq!(v["broken"], serde_json::Value::Null, "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "ltfs was not pruned: {v}");
        std::thread::sleep(Duration::from_millis(500));
    }
    sigterm(&mut j);
}

//! Faults: clock jumps both ways. The system clock is not touched: a bastion
//! clock that ran ahead leaves manifests dated in the future, so the tests
//! rewrite the manifests (and ids and file names, as that clock would have
//! made them) of archives a real run made, then run the real binaries again.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_tests::etcd::Cluster;
use vigil_tests::*;

pub(crate) const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];
const DAY: u64 = 86400;

/// `2027-05-31T13:44:00.123Z` -> `20270531T134400.123Z` (the id's time).
fn id_time(rfc3339: &str) -> String {
    rfc3339.replace(['-', ':'], "")
}

/// What a bastion clock `secs` ahead of (or, negative, behind) this one
/// would have stamped.
pub(crate) fn stamp(secs: i64) -> String {
    let now = vigil_core::now();
    let t = if secs >= 0 {
        now + Duration::from_secs(secs.unsigned_abs())
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    };
    vigil_core::rfc3339(t)
}

/// Re-dates the archive at `archive` (and its manifest) to `created_at`, with
/// the id and file name that clock would have given it. Returns the new path.
pub(crate) fn redate(archive: &Path, created_at: &str) -> PathBuf {
    let mpath = PathBuf::from(format!("{}.json", archive.display()));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let old_id = m["id"].as_str().unwrap().to_string();
    let (prefix, _) = old_id.rsplit_once('-').unwrap();
    let id = format!("{prefix}-{}", id_time(created_at));
    let name = m["archive"].as_str().unwrap().replacen(&old_id, &id, 1);
    m["id"] = id.clone().into();
    m["archive"] = name.clone().into();
    m["created_at"] = created_at.into();
    m["verified_at"] = created_at.into();
    let new = archive.with_file_name(&name);
    std::fs::rename(archive, &new).unwrap();
    std::fs::write(
        format!("{}.json", new.display()),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(&mpath).unwrap();
    new
}

/// Flips one byte in the middle of a file (size unchanged).
pub(crate) fn flip_byte(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x5a;
    std::fs::write(p, b).unwrap();
}

/// Archives of one member dir with their manifests, newest revision first.
pub(crate) fn stored(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut v: Vec<_> = archives(dir)
        .into_iter()
        .map(|a| {
            let m = manifest(&a);
            (a, m)
        })
        .collect();
    v.sort_by_key(|(_, m)| std::cmp::Reverse(m["revision"].as_i64().unwrap()));
    v
}

/// True if the file matches its manifest's sha256 and age can open it.
pub(crate) fn good(archive: &Path, key: &AgeKey) -> bool {
    let m = manifest(archive);
    if sha256_hex(archive) != m["archive_sha256"].as_str().unwrap() {
        return false;
    }
    let out = archive.with_extension("check.db");
    open_archive(archive, key, &out);
    let ok = sha256_hex(&out) == m["snapshot_sha256"].as_str().unwrap();
    std::fs::remove_file(&out).unwrap();
    ok
}

/// Promise 2: nothing but encrypted archives, their manifests and vigil's
/// own records anywhere under `root`: no plaintext snapshot, no leftover.
pub(crate) fn assert_no_plaintext(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                !n.ends_with(".db") && !n.ends_with(".zst") && !n.ends_with(".partial"),
                "plaintext or leftover {}",
                p.display()
            );
        }
    }
}

/// A cluster with some data, an age key, and a config with a dir sink and
/// a file alert channel.
pub(crate) struct Setup {
    pub t: tempfile::TempDir,
    pub cluster: Cluster,
    pub key: AgeKey,
    pub cfg: PathBuf,
    pub snaps: PathBuf,
    pub sink: PathBuf,
    pub alerts: PathBuf,
    /// keep_last locally and in the sink.
    pub keep: (u32, u32),
}

impl Setup {
    pub fn new(keep_local: u32, keep_sink: u32) -> Setup {
        let t = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(t.path(), &NAMES, None);
        cluster.put_many("/registry/configmaps/default/", 50, 200, false, 7);
        let key = age_key(t.path());
        let sink = t.path().join("vault");
        std::fs::create_dir_all(&sink).unwrap();
        let alerts = t.path().join("alerts.jsonl");
        let mut s = Setup {
            snaps: t.path().join("snapshots"),
            t,
            cluster,
            key,
            cfg: PathBuf::new(),
            sink,
            alerts,
            keep: (keep_local, keep_sink),
        };
        s.cfg = s.write_config();
        s
    }

    /// (Re)writes vigil.toml for the current cluster's members.
    pub fn write_config(&self) -> PathBuf {
        let (keep_local, keep_sink) = self.keep;
        let mut cb = ConfigBuilder::new(
            self.t.path(),
            self.cluster.config_members(),
            &self.key.recipient,
        );
        cb.extra_snapshot = format!("keep_last = {keep_local}\n");
        cb.extra = format!(
            "\n[[sink]]\nname = \"vault\"\nkind = \"dir\"\npath = \"{}\"\nkeep_last = {keep_sink}\n\
             \n[[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
            self.sink.display(),
            self.alerts.display()
        );
        assert_eq!(cb.snapshot_dir, self.snaps);
        cb.write("vigil.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.t.path().join("state")
    }

    pub fn local(&self, member: &str) -> PathBuf {
        self.snaps.join(member)
    }

    /// The dir sink's copies of one member.
    pub fn sunk(&self, member: &str) -> PathBuf {
        self.sink.join("prod").join(member)
    }

    /// One `vigil-snapshot run`, after a write so that the revision moves
    /// (as it always does in a live Kubernetes cluster). Returns the report.
    pub fn run(&self, seed: u64) -> serde_json::Value {
        self.cluster
            .put_many("/registry/events/default/", 5, 100, true, seed);
        let out = vigil("vigil-snapshot", &self.cfg, &["run", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The archive this run made for `member`.
    pub fn made(report: &serde_json::Value, member: &str) -> PathBuf {
        let m = report["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["member"] == member)
            .unwrap();
        PathBuf::from(m["archive"].as_str().unwrap())
    }

    /// Both copies (local and dir sink) of an archive, redated.
    pub fn redate_both(
        &self,
        member: &str,
        archive: &Path,
        created_at: &str,
    ) -> (PathBuf, PathBuf) {
        let name = archive.file_name().unwrap();
        let local = redate(archive, created_at);
        let sunk = redate(&self.sunk(member).join(name), created_at);
        (local, sunk)
    }

    /// `vigil-health run --json`: the freshness findings by subject.
    pub fn freshness(&self) -> Vec<serde_json::Value> {
        let out = vigil("vigil-health", &self.cfg, &["run", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == "freshness.archive")
            .cloned()
            .collect()
    }
}

fn finding<'a>(fs: &'a [serde_json::Value], subject: &str) -> &'a serde_json::Value {
    fs.iter()
        .find(|f| f["subject"] == subject)
        .unwrap_or_else(|| panic!("no freshness finding for {subject}: {fs:?}"))
}

/// Issue 14 point 1: a run under a clock that ran 181 days ahead left
/// future-dated archives (one of them corrupt); the clock is right again.
/// The next run must keep what it made, the member must end with a good
/// archive, and vigil-health must call the future date a finding, not fresh.
#[test]
fn clock_ran_ahead_never_prunes_the_new_archive() {
    let s = Setup::new(1, 1);
    let first = s.run(1);
    let future = stamp(181 * DAY as i64 + 1800);
    // cp-1: future-dated, intact. cp-2: future-dated and a flipped byte in
    // both copies (size unchanged, so only a read-back would notice).
    let (f1, f1s) = s.redate_both("cp-1", &Setup::made(&first, "cp-1"), &future);
    let (f2, f2s) = s.redate_both("cp-2", &Setup::made(&first, "cp-2"), &future);
    flip_byte(&f2);
    flip_byte(&f2s);

    // A human hears about the future date: FAIL and an alert, never PASS
    // with a negative age. (Health alerts fire after 3 failing rounds.)
    s.freshness();
    s.freshness();
    let fr = s.freshness();
    for subject in ["cp-1 @ local", "cp-1 @ vault", "cp-2 @ local"] {
        let f = finding(&fr, subject);
        assert_eq!(f["status"], "FAIL", "{f}");
        assert!(
            f["reason"].as_str().unwrap().contains("181d")
                && f["reason"].as_str().unwrap().contains("in the future"),
            "{f}"
        );
    }
    assert_eq!(finding(&fr, "cp-3 @ local")["status"], "PASS");
    notify_once(&s.cfg);
    let ev = alert_events(&s.alerts);
    assert!(
        ev.contains(&(
            "firing".into(),
            "backup_stale{member=\"cp-1\",store=\"local\"}".into()
        )),
        "{ev:?}"
    );

    // The next run (clock right again) keeps what it made.
    let second = s.run(2);
    for member in NAMES {
        let made = Setup::made(&second, member);
        assert!(
            made.exists(),
            "{member}: the run pruned the archive it just made"
        );
        assert!(good(&made, &s.key), "{member}: {}", made.display());
        let sunk = s.sunk(member).join(made.file_name().unwrap());
        assert!(sunk.exists(), "{member}: the sink lost the new copy");
        assert_eq!(sha256_hex(&sunk), sha256_hex(&made));
        // keep_last = 1 and the new archive is the newest by revision: the
        // future-dated ones are the old ones now.
        let kept = stored(&s.local(member));
        assert_eq!(kept[0].0, made, "{member}: {kept:?}");
    }
    assert!(
        !f1.exists() && !f1s.exists(),
        "old (future-dated) cp-1 archive still there"
    );
    let _ = (f2, f2s);
    // Every member ends with a good archive, in both stores.
    for member in NAMES {
        assert!(
            stored(&s.local(member))
                .iter()
                .any(|(a, _)| good(a, &s.key)),
            "{member}: no good local archive left"
        );
        assert!(
            stored(&s.sunk(member)).iter().any(|(a, _)| good(a, &s.key)),
            "{member}: no good copy left in the sink"
        );
    }
    // And freshness is judged on the newest by revision: PASS again.
    let fr = s.freshness();
    for m in NAMES {
        assert_eq!(
            finding(&fr, &format!("{m} @ local"))["status"],
            "PASS",
            "{fr:?}"
        );
        assert_eq!(
            finding(&fr, &format!("{m} @ vault"))["status"],
            "PASS",
            "{fr:?}"
        );
    }
    assert_no_plaintext(&s.snaps);
    assert_no_plaintext(&s.sink);
}

/// The clock jumped back 10 days: the new run's archive is older by wall
/// clock than every existing one, and must not be pruned as the "oldest".
#[test]
fn clock_jumped_back_keeps_the_new_archive() {
    let s = Setup::new(2, 2);
    let r1 = s.run(1);
    let r2 = s.run(2);
    // Equivalent to the clock going back now: what exists was stamped by a
    // clock 10 days ahead of the one the next run reads.
    for (i, r) in [&r1, &r2].into_iter().enumerate() {
        for m in NAMES {
            s.redate_both(m, &Setup::made(r, m), &stamp(10 * DAY as i64 + i as i64));
        }
    }
    let olds: Vec<Vec<PathBuf>> = NAMES
        .iter()
        .map(|m| stored(&s.local(m)).into_iter().map(|(a, _)| a).collect())
        .collect();
    let r3 = s.run(3);
    for (i, m) in NAMES.iter().enumerate() {
        let made = Setup::made(&r3, m);
        assert!(
            made.exists(),
            "{m}: the run pruned the archive it just made"
        );
        assert!(good(&made, &s.key));
        let local: Vec<PathBuf> = stored(&s.local(m)).into_iter().map(|(a, _)| a).collect();
        // keep_last 2 by revision: the new one and run 2's; run 1's went.
        assert_eq!(local, [made.clone(), olds[i][0].clone()], "{m}");
        let sunk: Vec<String> = stored(&s.sunk(m))
            .into_iter()
            .map(|(a, _)| a.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            sunk,
            [
                made.file_name().unwrap().to_string_lossy().into_owned(),
                olds[i][0]
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            ],
            "{m} in the sink"
        );
    }
    assert_no_plaintext(&s.snaps);
    assert_no_plaintext(&s.sink);
}

/// The jobs that stamp and judge archive dates start after the clock is
/// synchronised (time-sync.target), not with whatever the RTC said at boot.
#[test]
fn dated_jobs_are_ordered_after_time_sync() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    for unit in [
        "vigil-snapshot.service",
        "vigil-snapshot@.service",
        "vigil-health.service",
        "vigil-health@.service",
        "vigild.service",
    ] {
        let text = std::fs::read_to_string(dir.join(unit)).unwrap();
        let section = text.split("\n[Service]").next().unwrap();
        assert!(
            section
                .lines()
                .any(|l| l.trim() == "After=time-sync.target"),
            "{unit}: no After=time-sync.target in [Unit]"
        );
    }
}

/// The revision goes backwards too: a cluster rebuilt (or restored without
/// a revision bump) and accepted with `vigil-snapshot repin` starts again at
/// a low revision. Its archives are newer than every archive of the cluster
/// it replaced, so keep_last keeps them and prunes the old cluster's.
#[test]
fn a_repinned_cluster_is_newer_at_a_lower_revision() {
    let mut s = Setup::new(2, 2);
    s.cluster
        .put_many("/registry/configmaps/old/", 300, 50, false, 9);
    s.run(1);
    s.run(2);
    let old: Vec<String> = names_in(&s.local("cp-1"));
    let old_revision = stored(&s.local("cp-1"))[1].1["revision"].as_i64().unwrap();
    // The rebuilt cluster: fresh members behind new endpoints, a new cluster ID.
    let rebuilt = Cluster::start(&s.t.path().join("rebuilt"), &NAMES, None);
    drop(std::mem::replace(&mut s.cluster, rebuilt));
    s.cfg = s.write_config();
    let out = vigil("vigil-snapshot", &s.cfg, &["repin"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut made = Vec::new();
    for seed in 3..=5 {
        let r = s.run(seed);
        let m = Setup::made(&r, "cp-1");
        assert!(
            manifest(&m)["revision"].as_i64().unwrap() < old_revision,
            "the test needs the rebuilt cluster below the old revisions"
        );
        made.push(m);
    }
    let file = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let want = vec![file(&made[2]), file(&made[1])];
    assert_eq!(
        names_in(&s.local("cp-1")),
        want,
        "local; the old cluster's were {old:?}"
    );
    assert_eq!(names_in(&s.sunk("cp-1")), want, "sink");
    for m in &made[1..] {
        assert!(good(m, &s.key));
    }
    assert_no_plaintext(&s.snaps);
    assert_no_plaintext(&s.sink);
}

/// Archive names of a member dir, newest revision first within a cluster
/// (the order retention sees, apart from the cluster generation).
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<(String, String)> = archives(dir)
        .into_iter()
        .map(|a| {
            let m = manifest(&a);
            (
                m["created_at"].as_str().unwrap().to_string(),
                a.file_name().unwrap().to_string_lossy().into_owned(),
            )
        })
        .collect();
    // Wall clock order is right here: no clock was skewed in this test.
    v.sort();
    v.reverse();
    v.into_iter().map(|(_, n)| n).collect()
}

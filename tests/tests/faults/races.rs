//! Faults: concurrent jobs (issue 14 point 5). Scrubs, drills and restores
//! read archives while runs and `vigil-snapshot prune` delete them. Readers
//! hold `state.dir/archives.lock` shared, deleters take it exclusive, so no
//! reader ever finds an archive pulled from under it: no false alarm, nothing
//! verified lost, and a deferred prune says so.
//!
//! `VIGIL_RACES_BIN_DIR` runs the jobs from another build (a release build,
//! or the binaries from before the fix, to see these tests fail).

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_tests::etcd::Cluster;
use vigil_tests::faults::{assert_no_plaintext, file_channel, fired};
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

fn bin_dir() -> PathBuf {
    std::env::var_os("VIGIL_RACES_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin("vigil-snapshot").parent().unwrap().to_path_buf())
}

fn job_cmd(name: &str, cfg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin_dir().join(name));
    c.arg("--config")
        .arg(cfg)
        .args(args)
        .env("VIGIL_LOG", "info");
    c
}

/// Runs a job to its end, logging what it said (like `vigil_tests::vigil`).
fn job(name: &str, cfg: &Path, args: &[&str]) -> Output {
    let out = job_cmd(name, cfg, args).output().unwrap();
    eprintln!(
        "$ {name} {}\n-- exit {:?}\n-- stdout\n{}\n-- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn spawn_job(name: &str, cfg: &Path, args: &[&str], stderr: &Path) -> Child {
    job_cmd(name, cfg, args)
        .stdout(Stdio::piped())
        .stderr(File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

struct Bed {
    t: tempfile::TempDir,
    _cluster: Cluster,
    cb: ConfigBuilder,
    /// [restore] and [alert], the same in every version of the config.
    base: String,
    /// A [daemon] section, for vigild.
    daemon: String,
    sink: PathBuf,
    alerts: PathBuf,
}

impl Bed {
    /// Three real members with `mib` MiB of random values (so that reading
    /// an archive back takes a while), local and dir-sink retention
    /// `keep_last`, a file alert channel and a drill key.
    fn new(mib: usize, keep_last: u32) -> Bed {
        let t = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(t.path(), &NAMES, None);
        cluster.put_many("/registry/configmaps/", mib * 1024, 1024, true, 5);
        cluster.put_many("/registry/secrets/default/", 20, 64, false, 6);
        let key = age_key(t.path());
        std::fs::set_permissions(
            &key.identity_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let sink = t.path().join("sink");
        let alerts = t.path().join("alerts.jsonl");
        let cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
        let base = format!(
            "\n[restore]\ndrill_identity_file = \"{}\"\ndrill_sample_keys = 3\nscratch_dir = \"{}\"\n\n[alert]\ngroup_wait = \"1s\"\n{}",
            key.identity_file.display(),
            t.path().join("scratch").display(),
            file_channel(&alerts),
        );
        let mut bed = Bed {
            t,
            _cluster: cluster,
            cb,
            base,
            daemon: String::new(),
            sink,
            alerts,
        };
        bed.write(keep_last);
        bed
    }

    /// Rewrites vigil.toml with retention `keep_last`, locally and in the sink.
    fn write(&mut self, keep_last: u32) -> PathBuf {
        self.cb.extra_snapshot = format!("keep_last = {keep_last}\n");
        self.cb.extra = format!(
            "{}\n[[sink]]\nname = \"vault\"\nkind = \"dir\"\npath = \"{}\"\nkeep_last = {keep_last}\n{}",
            self.base,
            self.sink.display(),
            self.daemon
        );
        self.cb.write("vigil.toml")
    }

    fn cfg(&self) -> PathBuf {
        self.t.path().join("vigil.toml")
    }

    fn state(&self) -> PathBuf {
        self.t.path().join("state")
    }

    fn local(&self, m: &str) -> PathBuf {
        self.cb.snapshot_dir.join(m)
    }

    fn remote(&self, m: &str) -> PathBuf {
        self.sink.join("prod").join(m)
    }

    /// One `vigil-snapshot run --json` that must succeed; its report.
    fn run(&self) -> serde_json::Value {
        let out = job("vigil-snapshot", &self.cfg(), &["run", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Promises 1 and 2 after the dust settled: every member keeps a
    /// verified copy that matches its manifest locally and in the sink, the
    /// newest archive `newest` named (member -> file name) is among them, and
    /// nothing but sealed archives and manifests is left anywhere.
    fn assert_kept(&self, newest: &[(String, String)]) {
        for m in NAMES {
            for dir in [self.local(m), self.remote(m)] {
                let a = archives(&dir);
                assert!(!a.is_empty(), "{}: no archive left", dir.display());
                for p in &a {
                    let man = manifest(p);
                    assert!(man["verified_at"].is_string(), "{}", p.display());
                    assert_eq!(man["archive_sha256"], sha256_hex(p).as_str());
                }
                for (member, file) in newest.iter().filter(|(x, _)| x == m) {
                    assert!(
                        dir.join(file).is_file(),
                        "{member}: the newest verified copy {file} is gone from {}",
                        dir.display()
                    );
                }
            }
        }
        assert_no_plaintext(&self.cb.snapshot_dir);
        assert_no_plaintext(&self.sink);
        let scratch = self.t.path().join("scratch");
        if scratch.exists() {
            assert!(
                all_files(&scratch).is_empty(),
                "drill leftovers: {:?}",
                all_files(&scratch)
            );
        }
    }

    /// Promise 3, the other way round: nothing fired.
    fn assert_no_alarm(&self) {
        let f = fired(&self.cfg(), &self.alerts);
        assert!(f.is_empty(), "false alarm(s): {f:?}");
    }
}

/// (member, archive file name) of each member's archive in a run report.
fn made(report: &serde_json::Value) -> Vec<(String, String)> {
    report["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = PathBuf::from(m["archive"].as_str().unwrap());
            (
                m["member"].as_str().unwrap().to_string(),
                p.file_name().unwrap().to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Runs `vigil-snapshot run` back to back on another thread until `n` ran;
/// returns the reports.
fn runs_in_background(
    cfg: PathBuf,
    n: usize,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<serde_json::Value>> {
    std::thread::spawn(move || {
        let mut reports = Vec::new();
        for _ in 0..n {
            let out = job("vigil-snapshot", &cfg, &["run", "--json"]);
            let ok = out.status.code() == Some(0);
            reports.push(
                serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|_| serde_json::json!({ "ok": false, "output": text(&out) })),
            );
            if !ok {
                break;
            }
        }
        done.store(true, Ordering::SeqCst);
        reports
    })
}

/// Before the fix: scrub listed the archives, a run's prune removed the
/// oldest, and the scrub reported them missing ("No such file") and fired
/// `scrub_failed`. Now the prune waits for the scrub's shared lock.
#[test]
fn scrub_racing_prunes_never_reports_a_pruned_archive() {
    let bed = Bed::new(3, 1);
    bed.run();
    let done = Arc::new(AtomicBool::new(false));
    let runs = runs_in_background(bed.cfg(), 8, done.clone());
    let mut scrubs = 0;
    let mut problems = Vec::new();
    while !done.load(Ordering::SeqCst) || scrubs < 3 {
        let out = job("vigil-snapshot", &bed.cfg(), &["scrub", "--json"]);
        scrubs += 1;
        if out.status.code() != Some(0) {
            problems.push(text(&out));
        }
    }
    let reports = runs.join().unwrap();
    assert!(
        reports.iter().all(|r| r["ok"] == true),
        "a run failed: {reports:?}"
    );
    assert!(
        problems.is_empty(),
        "{} of {scrubs} scrubs reported problems on a healthy store:\n{}",
        problems.len(),
        problems.join("\n----\n")
    );
    // Scrubs are short: no run had to defer its pruning for one.
    for r in &reports {
        let w = r["warnings"].to_string();
        assert!(!w.contains("deferred"), "{w}");
    }
    bed.assert_kept(&made(reports.last().unwrap()));
    // keep_last = 1 held in spite of the readers.
    for m in NAMES {
        assert_eq!(archives(&bed.local(m)).len(), 1);
        assert_eq!(archives(&bed.remote(m)).len(), 1);
    }
    bed.assert_no_alarm();
}

/// Before the fix: the drill picked each member's newest archive, a run
/// pruned it (keep_last = 1) before the drill got to that member, and the
/// drill raised `restore_drill_failed` on a healthy store.
#[test]
fn drills_racing_prunes_never_fail_on_a_healthy_store() {
    let bed = Bed::new(1, 1);
    bed.run();
    let done = Arc::new(AtomicBool::new(false));
    let runs = runs_in_background(bed.cfg(), 6, done.clone());
    let mut drills = 0;
    let mut problems = Vec::new();
    while !done.load(Ordering::SeqCst) || drills < 2 {
        let out = job("vigil-restore", &bed.cfg(), &["drill", "--json"]);
        drills += 1;
        if out.status.code() != Some(0) {
            problems.push(text(&out));
        }
    }
    let reports = runs.join().unwrap();
    assert!(
        reports.iter().all(|r| r["ok"] == true),
        "a run failed: {reports:?}"
    );
    assert!(
        problems.is_empty(),
        "{} of {drills} drills failed on a healthy store:\n{}",
        problems.len(),
        problems.join("\n----\n")
    );
    // New drills queue behind a waiting prune, so back-to-back drills never
    // keep it out past its wait.
    for r in &reports {
        let w = r["warnings"].to_string();
        assert!(!w.contains("deferred"), "{w}");
    }
    bed.assert_kept(&made(reports.last().unwrap()));
    bed.assert_no_alarm();
}

/// Holds the archives lock shared, as a drill or scrub does.
fn hold_shared(state: &Path) -> File {
    let f = File::open(state.join("archives.lock")).unwrap();
    f.try_lock_shared().unwrap();
    f
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finish(c: Child, stderr: &Path) -> (Option<i32>, String, String) {
    let out = c.wait_with_output().unwrap();
    let err = std::fs::read_to_string(stderr).unwrap_or_default();
    eprintln!(
        "-- exit {:?}\n-- stdout\n{}\n-- stderr\n{err}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

/// A reader (here the test itself) holds the lock past the run's wait: the
/// run keeps its extra copies and says so, without failing or alerting. Two
/// `vigil-snapshot prune` started meanwhile wait, naming the run and then
/// the reader's pid, without holding the run lock while they wait for the
/// reader; once it lets go, both finish, down to keep_last, and the newest
/// verified copies stay.
#[test]
fn prunes_wait_for_readers_and_a_run_defers_past_its_wait() {
    let mut bed = Bed::new(1, 1);
    // Three runs with room for them, then retention tightens to 1.
    bed.write(5);
    for _ in 0..3 {
        bed.run();
    }
    let cfg = bed.write(1);
    let reader = hold_shared(&bed.state());
    let count = |m: &str| archives(&bed.local(m)).len();

    let t0 = Instant::now();
    let run_err = bed.t.path().join("run.err");
    let run = spawn_job("vigil-snapshot", &cfg, &["run", "--json"], &run_err);
    // The run holds the run lock while it waits; the prunes wait for it.
    wait_for("the run to wait for the reader", 60, || {
        std::fs::read_to_string(&run_err)
            .unwrap_or_default()
            .contains("before pruning")
    });
    let pe: Vec<PathBuf> = (0..2)
        .map(|i| bed.t.path().join(format!("prune{i}.err")))
        .collect();
    let prunes: Vec<Child> = pe
        .iter()
        .map(|e| spawn_job("vigil-snapshot", &cfg, &["prune", "--json"], e))
        .collect();
    let (code, stdout, err) = finish(run, &run_err);
    let took = t0.elapsed();
    assert_eq!(code, Some(0), "{err}");
    assert!(took >= Duration::from_secs(60), "{took:?}");
    let report: serde_json::Value = serde_json::from_slice(stdout.as_bytes()).unwrap();
    assert_eq!(report["ok"], true);
    let w = report["warnings"].to_string();
    assert!(
        w.contains("pruning deferred to the next run")
            && w.contains(&format!("pid {}", std::process::id())),
        "{w}"
    );
    for m in NAMES {
        assert_eq!(count(m), 4, "the run pruned under a reader");
        assert_eq!(archives(&bed.remote(m)).len(), 4);
    }
    let newest = made(&report);

    // Both prunes said whom they wait for (the second one queues behind the
    // first, and names the reader too), and deleted nothing yet.
    let lock = bed.state().join("archives.lock");
    for e in &pe {
        wait_for("the prune to name the reader", 20, || {
            let said = std::fs::read_to_string(e).unwrap_or_default();
            said.lines().any(|l| {
                l.starts_with(&format!(
                    "waiting for the drill/scrub holding {} (",
                    lock.display()
                )) && l.contains(&format!("pid {} ", std::process::id()))
            })
        });
    }
    let told_run = pe.iter().any(|e| {
        std::fs::read_to_string(e)
            .unwrap_or_default()
            .contains("waiting for the vigil-snapshot run holding")
    });
    assert!(told_run, "no prune said it waited for the run");
    // Waiting for a reader, they leave the run lock free for scheduled runs.
    let run_lock = File::open(bed.state().join("snapshot.lock")).unwrap();
    run_lock.try_lock().unwrap();
    drop(run_lock);
    for m in NAMES {
        assert_eq!(count(m), 4, "a prune deleted under a reader");
    }

    drop(reader);
    for (c, e) in prunes.into_iter().zip(&pe) {
        let (code, _, err) = finish(c, e);
        assert_eq!(code, Some(0), "{err}");
    }
    for m in NAMES {
        assert_eq!(count(m), 1);
        assert_eq!(archives(&bed.remote(m)).len(), 1);
    }
    bed.assert_kept(&newest);
    // The next run prunes as usual.
    let report = bed.run();
    assert!(!report["warnings"].to_string().contains("deferred"));
    bed.assert_kept(&made(&report));
    bed.assert_no_alarm();
}

/// vigild's log without colours or quotes: `... finished: ok job=drill ...`.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters, up to the final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            '"' => {}
            c => out.push(c),
        }
    }
    out
}

/// Jobs vigild started and that have not finished, from its log.
fn running_jobs(log: &str) -> Vec<&'static str> {
    let log = plain(log);
    ["snapshot", "scrub", "drill"]
        .into_iter()
        .filter(|j| {
            let tag = format!("job={j} ");
            let lines: Vec<String> = log
                .lines()
                .map(|l| format!("{l} "))
                .filter(|l| l.contains(&tag))
                .collect();
            let started = lines.iter().filter(|l| l.contains(" started ")).count();
            let ended = lines
                .iter()
                .filter(|l| l.contains("finished") || l.contains("could not run"))
                .count();
            started > ended
        })
        .collect()
}

/// Under vigild, with snapshot, scrub and drill schedules every few seconds
/// (the jobs run into each other all the time), nothing fires for a minute.
/// Before the fix, drills and scrubs failed on archives pruned under them.
#[test]
fn vigild_with_overlapping_schedules_raises_no_false_alarm() {
    let mut bed = Bed::new(1, 1);
    bed.run();
    let daemon = |snapshot: &str, scrub: &str, drill: &str| {
        format!(
            "\n[daemon]\nbin_dir = \"{}\"\nsnapshot = \"{snapshot}\"\nscrub = \"{scrub}\"\ndrill = \"{drill}\"\nnotify = true\nshutdown_timeout = \"20s\"\n",
            bin_dir().display()
        )
    };
    bed.daemon = daemon("*/3 * * * * *", "*/2 * * * * *", "*/5 * * * * *");
    let cfg = bed.write(1);
    let err_log = bed.t.path().join("vigild.err");
    let mut d = Command::new(bin_dir().join("vigild"))
        .arg("--config")
        .arg(&cfg)
        .args(["--log-format", "text", "run"])
        .env("VIGIL_LOG", "info")
        .stderr(File::create(&err_log).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&err_log).unwrap_or_default();
    // Long enough for several drills, each overlapping runs that prune.
    std::thread::sleep(Duration::from_secs(60));
    // Stop scheduling, let the running jobs end on their own (a job killed
    // by the shutdown is a different story), then stop vigild.
    bed.daemon = daemon("", "", "");
    bed.write(1);
    Command::new("kill")
        .arg("-HUP")
        .arg(d.id().to_string())
        .status()
        .unwrap();
    wait_for("the reload", 20, || log().contains("config reloaded"));
    wait_for("the running jobs to end", 120, || {
        running_jobs(&log()).is_empty()
    });
    Command::new("kill")
        .arg("-TERM")
        .arg(d.id().to_string())
        .status()
        .unwrap();
    let st = d.wait().unwrap();
    let log = plain(&log());
    eprintln!("{log}");
    assert_eq!(st.code(), Some(0));
    let ok = |job: &str| {
        log.lines()
            .filter(|l| {
                format!("{l} ").contains(&format!("job={job} ")) && l.contains("finished: ok")
            })
            .count()
    };
    for (job, n) in [("snapshot", 5), ("scrub", 5), ("drill", 2)] {
        assert!(
            ok(job) >= n,
            "{job}: only {} successful run(s) under vigild",
            ok(job)
        );
    }
    assert!(
        !log.contains("finished: something failed") && !log.contains("could not run"),
        "a job failed under vigild"
    );
    // What vigild's notify delivered, and a last pass for anything queued.
    let mut f = fired(&cfg, &bed.alerts);
    f.retain(|k| !k.is_empty());
    assert!(f.is_empty(), "false alarm(s) under vigild: {f:?}");
    bed.assert_kept(&[]);
}

/// Another bastion sharing the sink prunes it while this one scrubs: no lock
/// spans two hosts, so scrub lists again before it reports, and an archive
/// gone with its manifest is not a problem. Before the fix the scrub
/// reported those copies missing and fired `scrub_failed{subject="vault"}`.
#[test]
fn scrub_of_a_sink_another_bastion_prunes_reports_nothing_missing() {
    let mut bed = Bed::new(6, 1);
    // This bastion keeps many copies in the sink (and one locally, so that
    // its runs do not ship the pruned ones again); the other one keeps 1.
    let both = std::fs::read_to_string(bed.write(20)).unwrap();
    std::fs::write(
        bed.cfg(),
        both.replacen("keep_last = 20", "keep_last = 1", 1),
    )
    .unwrap();
    let other = {
        let text = std::fs::read_to_string(bed.cfg()).unwrap();
        let state = bed.state().display().to_string();
        let snaps = bed.cb.snapshot_dir.display().to_string();
        let o = bed.t.path().join("other");
        // That host has run before: its state dir exists.
        std::fs::create_dir_all(o.join("state")).unwrap();
        let text = text
            .replace(&state, &o.join("state").display().to_string())
            .replace(&snaps, &o.join("snapshots").display().to_string())
            .replace("keep_last = 20", "keep_last = 1");
        assert!(!text.contains("keep_last = 20"));
        let p = bed.t.path().join("other.toml");
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut problems = Vec::new();
    let mut newest = Vec::new();
    for i in 0..8 {
        for _ in 0..3 {
            newest = made(&bed.run());
        }
        let t0 = Instant::now();
        let err = bed.t.path().join(format!("scrub{i}.err"));
        let scrub = spawn_job(
            "vigil-snapshot",
            &bed.cfg(),
            &["scrub", "--sink", "vault", "--json"],
            &err,
        );
        // Into the scrub's read-back of the copies, then the other host prunes.
        std::thread::sleep(Duration::from_millis(40 * i));
        let out = job("vigil-snapshot", &other, &["prune"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let (code, stdout, err) = finish(scrub, &err);
        eprintln!("scrub {i}: {:?}", t0.elapsed());
        if code != Some(0) {
            problems.push(format!("{stdout}{err}"));
        }
        // The other host kept the newest copy of each member.
        for m in NAMES {
            assert_eq!(archives(&bed.remote(m)).len(), 1);
        }
    }
    assert!(
        problems.is_empty(),
        "{} of 8 scrubs reported copies pruned by the other bastion:\n{}",
        problems.len(),
        problems.join("\n----\n")
    );
    bed.assert_kept(&newest);
    bed.assert_no_alarm();
}

/// A restore at 3 a.m. on a fresh host (the config's state dir does not
/// exist) does not fail for want of a lock: it warns and reads. From a root
/// shell against the units' state dir, the lock files it makes belong to
/// the state dir's owner, 0600, so the units can still open them.
#[test]
fn restores_go_on_without_the_lock_and_leave_no_root_owned_lock() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let bed = Bed::new(1, 1);
    bed.run();
    let key = bed.t.path().join("age-key.txt");
    let fresh = {
        let text = std::fs::read_to_string(bed.cfg()).unwrap();
        let nowhere = bed.t.path().join("nowhere/state");
        let p = bed.t.path().join("fresh.toml");
        std::fs::write(
            &p,
            text.replace(
                &bed.state().display().to_string(),
                &nowhere.display().to_string(),
            ),
        )
        .unwrap();
        p
    };
    let snap = bed.t.path().join("restored.db");
    let out = job(
        "vigil-restore",
        &fresh,
        &[
            "fetch",
            "--out",
            snap.to_str().unwrap(),
            "-i",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("going on without the archives lock"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(&snap).unwrap();

    if !is_root() {
        return;
    }
    let state = bed.state();
    for f in ["archives.lock", "archives.gate"] {
        let _ = std::fs::remove_file(state.join(f));
    }
    let o = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = job(
        "vigil-restore",
        &bed.cfg(),
        &[
            "fetch",
            "--out",
            snap.to_str().unwrap(),
            "-i",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::remove_file(&snap).unwrap();
    for f in ["archives.lock", "archives.gate"] {
        let m = std::fs::metadata(state.join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{f} is root's");
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
    bed.assert_kept(&[]);
}

#![allow(clippy::unwrap_used)]

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A config whose `vigil-notify` is a stand-in: `unit-failed` writes its
/// arguments and `$MONITOR_EXIT_STATUS` into `reported`; `run` logs
/// `notify-start` and, on SIGTERM, `notify-term` into `log`.
fn live(t: &Path) -> Live {
    live_with(t, false, "")
}

/// The log the stand-ins write.
fn log(t: &Path) -> String {
    std::fs::read_to_string(t.join("log")).unwrap_or_default()
}

/// `bin/<name>`: a shell script; `$LOG` is `log`.
fn stand_in(t: &Path, name: &str, body: &str) {
    let bins = t.join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    let p = bins.join(name);
    std::fs::write(
        &p,
        format!("#!/bin/sh\nLOG='{}'\n{body}\n", t.join("log").display()),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// As [`live`], with a `[journal]` section if `journal`, and `daemon` added
/// to `[daemon]`.
fn live_with(t: &Path, journal: bool, daemon: &str) -> Live {
    let bins = t.join("bin");
    if !bins.join("vigil-notify").exists() {
        stand_in(
            t,
            "vigil-notify",
            &format!(
                "if [ \"$3\" = run ]; then\n  echo notify-start >> \"$LOG\"\n  trap 'echo notify-term >> \"$LOG\"; exit 0' TERM\n  while :; do sleep 0.1; done\nfi\necho \"$* $MONITOR_EXIT_STATUS\" > '{}'",
                t.join("reported").display()
            ),
        );
    }
    let text = format!(
        "[cluster]\nname = \"t\"\nmembers = [{{ name = \"a\", endpoint = \"http://127.0.0.1:1\" }}]\n[state]\ndir = \"{}\"\n{}[daemon]\nbin_dir = \"{}\"\n{daemon}",
        t.join("state").display(),
        if journal { "[journal]\n" } else { "" },
        bins.display()
    );
    let path = t.join("vigil.toml");
    Live::new(path.clone(), Config::parse(&text, &path).unwrap())
}

fn snapshot_job() -> Planned {
    Planned {
        task: vigil_core::jobs::Task::Snapshot,
        cron: String::new(),
        six: String::new(),
    }
}

fn sh(script: &str) -> Child {
    tokio::process::Command::new("sh")
        .args(["-c", script])
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_job_ignoring_sigterm_runs_until_the_kill_step_and_is_not_reported() {
    let t = tempfile::tempdir().unwrap();
    let (stop_tx, stop) = watch::channel(Stop::No);
    // SIGTERM ignored, inherited across the exec.
    let child = sh("trap '' TERM; exec sleep 30");
    let task = tokio::spawn(job(child, snapshot_job(), Arc::new(live(t.path())), stop));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send_replace(Stop::Jobs);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!task.is_finished(), "ended on a SIGTERM it ignores");
    stop_tx.send_replace(Stop::Kill);
    let e = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.name, e.code), ("snapshot", -1));
    // Stopped by the shutdown: not a death to alert.
    assert!(!t.path().join("reported").exists());
}

#[tokio::test]
async fn a_job_ends_on_sigterm_at_the_first_step() {
    let t = tempfile::tempdir().unwrap();
    let (stop_tx, stop) = watch::channel(Stop::No);
    let child = sh("exec sleep 30");
    let task = tokio::spawn(job(child, snapshot_job(), Arc::new(live(t.path())), stop));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send_replace(Stop::Jobs);
    let e = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.code, -1);
}

#[tokio::test]
async fn a_job_killed_by_a_signal_of_its_own_is_reported_as_its_unit() {
    let t = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = watch::channel(Stop::No);
    let child = sh("kill -9 $$");
    let e = job(child, snapshot_job(), Arc::new(live(t.path())), stop).await;
    assert_eq!(e.code, -1);
    let said = std::fs::read_to_string(t.path().join("reported")).unwrap();
    assert!(
        said.contains("unit-failed vigil-snapshot.service KILL"),
        "{said}"
    );
}

/// Polls `f` for up to `secs` seconds.
async fn until(what: &str, secs: u64, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A stand-in `vigil-journal` that logs its start and, on SIGTERM, its end.
const JOURNAL_ENDS_ON_TERM: &str = "echo journal-start >> \"$LOG\"\ntrap 'echo journal-term >> \"$LOG\"; exit 0' TERM\nwhile :; do sleep 0.1; done";

#[tokio::test]
async fn the_journal_runs_with_a_journal_section_and_stops_with_the_jobs() {
    let t = tempfile::tempdir().unwrap();
    stand_in(t.path(), "vigil-journal", JOURNAL_ENDS_ON_TERM);
    let (_live_tx, live_rx) = watch::channel(Arc::new(live_with(t.path(), true, "")));
    let (stop_tx, stop) = watch::channel(Stop::No);
    let notify = tokio::spawn(supervise::supervise(
        supervise::NOTIFY,
        live_rx.clone(),
        stop.clone(),
    ));
    let journal = tokio::spawn(supervise::supervise(supervise::JOURNAL, live_rx, stop));
    until("both started", 10, || {
        let l = log(t.path());
        l.contains("journal-start") && l.contains("notify-start")
    })
    .await;
    stop_tx.send_replace(Stop::Jobs);
    tokio::time::timeout(Duration::from_secs(5), journal)
        .await
        .expect("the journal stops at the jobs' step")
        .unwrap();
    assert!(log(t.path()).contains("journal-term"), "{}", log(t.path()));
    // vigil-notify goes on until its own, last step.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send_replace(Stop::Kill);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!notify.is_finished(), "notify stopped before its step");
    assert!(!log(t.path()).contains("notify-term"));
    stop_tx.send_replace(Stop::Notify);
    tokio::time::timeout(Duration::from_secs(5), notify)
        .await
        .unwrap()
        .unwrap();
    assert!(
        log(t.path()).ends_with("notify-term\n"),
        "{}",
        log(t.path())
    );
}

#[tokio::test]
async fn a_journal_ignoring_sigterm_is_killed_at_the_kill_step() {
    let t = tempfile::tempdir().unwrap();
    stand_in(
        t.path(),
        "vigil-journal",
        "echo journal-start >> \"$LOG\"\ntrap '' TERM\nwhile :; do sleep 0.1; done",
    );
    let (_live_tx, live_rx) = watch::channel(Arc::new(live_with(t.path(), true, "")));
    let (stop_tx, stop) = watch::channel(Stop::No);
    let journal = tokio::spawn(supervise::supervise(supervise::JOURNAL, live_rx, stop));
    until("the journal started", 10, || {
        log(t.path()).contains("journal-start")
    })
    .await;
    stop_tx.send_replace(Stop::Jobs);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!journal.is_finished(), "ended on a SIGTERM it ignores");
    stop_tx.send_replace(Stop::Kill);
    tokio::time::timeout(Duration::from_secs(5), journal)
        .await
        .expect("killed at the kill step")
        .unwrap();
    // Stopped by the shutdown: not a death to alert.
    assert!(!t.path().join("reported").exists());
}

#[tokio::test]
async fn the_journal_follows_the_config_on_reload() {
    let t = tempfile::tempdir().unwrap();
    stand_in(t.path(), "vigil-journal", JOURNAL_ENDS_ON_TERM);
    // No [journal] section: not started.
    let (live_tx, live_rx) = watch::channel(Arc::new(live_with(t.path(), false, "")));
    let (stop_tx, stop) = watch::channel(Stop::No);
    let journal = tokio::spawn(supervise::supervise(supervise::JOURNAL, live_rx, stop));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log(t.path()), "");
    // A reload that adds one starts it; the next reload restarts it.
    live_tx.send_replace(Arc::new(live_with(t.path(), true, "")));
    until("started on the reload", 10, || {
        log(t.path()).contains("journal-start")
    })
    .await;
    live_tx.send_replace(Arc::new(live_with(t.path(), true, "")));
    until("restarted on the reload", 10, || {
        log(t.path()) == "journal-start\njournal-term\njournal-start\n"
    })
    .await;
    // `[daemon] journal = false` stops it and keeps it stopped.
    live_tx.send_replace(Arc::new(live_with(t.path(), true, "journal = false\n")));
    until("stopped on the reload", 10, || {
        log(t.path()).matches("journal-term").count() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log(t.path()).matches("journal-start").count(), 2);
    stop_tx.send_replace(Stop::Jobs);
    tokio::time::timeout(Duration::from_secs(5), journal)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_journal_that_dies_is_reported_as_its_unit_and_restarted() {
    let t = tempfile::tempdir().unwrap();
    // The first run dies of SIGKILL, the second one stays.
    stand_in(
        t.path(),
        "vigil-journal",
        &format!(
            "if [ ! -e '{0}' ]; then touch '{0}'; echo journal-died >> \"$LOG\"; kill -9 $$; fi\n{JOURNAL_ENDS_ON_TERM}",
            t.path().join("died").display()
        ),
    );
    let (_live_tx, live_rx) = watch::channel(Arc::new(live_with(t.path(), true, "")));
    let (stop_tx, stop) = watch::channel(Stop::No);
    let journal = tokio::spawn(supervise::supervise(supervise::JOURNAL, live_rx, stop));
    until("restarted after the backoff", 10, || {
        log(t.path()).contains("journal-start")
    })
    .await;
    let said = std::fs::read_to_string(t.path().join("reported")).unwrap();
    assert!(
        said.contains("unit-failed vigil-journal.service KILL"),
        "{said}"
    );
    stop_tx.send_replace(Stop::Jobs);
    tokio::time::timeout(Duration::from_secs(5), journal)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log(t.path()), "journal-died\njournal-start\njournal-term\n");
}

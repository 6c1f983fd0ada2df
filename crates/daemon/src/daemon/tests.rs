#![allow(clippy::unwrap_used)]

use super::*;
use std::os::unix::fs::PermissionsExt;

/// A config whose `vigil-notify` is a stand-in that writes its arguments and
/// `$MONITOR_EXIT_STATUS` into `reported`.
fn live(t: &Path) -> Live {
    let bins = t.join("bin");
    std::fs::create_dir(&bins).unwrap();
    let notify = bins.join("vigil-notify");
    std::fs::write(
        &notify,
        format!(
            "#!/bin/sh\necho \"$* $MONITOR_EXIT_STATUS\" > '{}'\n",
            t.join("reported").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = format!(
        "[cluster]\nname = \"t\"\nmembers = [{{ name = \"a\", endpoint = \"http://127.0.0.1:1\" }}]\n[state]\ndir = \"{}\"\n[daemon]\nbin_dir = \"{}\"\n",
        t.join("state").display(),
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

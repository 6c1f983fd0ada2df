//! Contract 5 ("As installed") outside the box: which secrets each binary
//! opens, where relative names resolve, what check-config reports, and the
//! OnFailure= handler. tests/box/ runs the same under systemd.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use vigil_tests::*;

fn run(name: &str, config: &Path, creds: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let out = Command::new(bin(name))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("VIGIL_CREDENTIALS_DIR", creds)
        .env_remove("CREDENTIALS_DIRECTORY")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    eprintln!(
        "$ {name} {}\n-- exit {:?}\n{}",
        args.join(" "),
        out.status.code(),
        text(&out)
    );
    out
}

fn secret(dir: &Path, name: &str, value: &str) {
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let key = age_key(dir);
    let p = dir.join("vigil.toml");
    std::fs::write(
        &p,
        format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:1\" }}]\n\n\
             [snapshot]\ndir = \"{0}/snap\"\nage_recipients = [\"{1}\"]\nconnect_timeout = \"1s\"\n\n\
             [state]\ndir = \"{0}/state\"\n\n[metrics]\ntextfile_dir = \"{0}/metrics\"\n\n{extra}",
            dir.display(),
            key.recipient
        ),
    )
    .unwrap();
    p
}

#[test]
fn each_binary_opens_only_the_secrets_of_its_own_sections() {
    let t = tempfile::tempdir().unwrap();
    let creds = t.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let cfg = config(
        t.path(),
        "[restore]\ndrill_identity_file = \"drill-key.txt\"\n\n\
         [[alert.channel]]\nname = \"ops-slack\"\nkind = \"slack\"\nwebhook_url_file = \"slack-webhook\"\n",
    );
    // Nothing in the credentials dir yet: only the jobs that use a secret fail.
    for b in ["vigil-snapshot", "vigil-health", "vigil-quota"] {
        let out = run(b, &cfg, &creds, &[], &["check-config"]);
        assert_eq!(out.status.code(), Some(0), "{b}: {}", text(&out));
        assert!(text(&out).contains("secrets opened:"), "{b}");
    }
    let out = run("vigil-notify", &cfg, &creds, &[], &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let want = format!("{}/slack-webhook", creds.display());
    assert!(
        text(&out).contains("alert.channel[0].webhook_url_file") && text(&out).contains(&want),
        "a relative name resolves in the credentials dir: {}",
        text(&out)
    );
    let out = run("vigil-restore", &cfg, &creds, &[], &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("restore.drill_identity_file"),
        "{}",
        text(&out)
    );
    for b in ["vigil-snapshot", "vigild"] {
        let out = run(b, &cfg, &creds, &[], &["check-config", "--all"]);
        assert_eq!(out.status.code(), Some(2), "{b} --all checks every section");
    }
    // A job runs without the channel's secret, and only queues its alert.
    let out = run("vigil-snapshot", &cfg, &creds, &[], &["run"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the member is down: {}",
        text(&out)
    );
    assert!(!text(&out).contains("slack-webhook"), "{}", text(&out));

    secret(&creds, "slack-webhook", "http://127.0.0.1:9/hook");
    std::fs::create_dir(t.path().join("drill")).unwrap();
    let k = age_key(&t.path().join("drill"));
    std::fs::copy(&k.identity_file, creds.join("drill-key.txt")).unwrap();
    std::fs::set_permissions(
        creds.join("drill-key.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for b in ["vigil-notify", "vigil-restore", "vigild"] {
        let out = run(b, &cfg, &creds, &[], &["check-config"]);
        assert_eq!(out.status.code(), Some(0), "{b}: {}", text(&out));
    }
    // Under systemd, the unit's credential (vigil_<name>) wins over the dir.
    let unit_creds = t.path().join("run-credentials");
    std::fs::create_dir(&unit_creds).unwrap();
    std::fs::remove_file(creds.join("slack-webhook")).unwrap();
    secret(
        &unit_creds,
        "vigil_slack-webhook",
        "http://127.0.0.1:9/hook",
    );
    let out = run(
        "vigil-notify",
        &cfg,
        &creds,
        &[
            ("CREDENTIALS_DIRECTORY", unit_creds.to_str().unwrap()),
            ("VIGIL_CREDENTIALS_PREFIX", "vigil_"),
        ],
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn check_config_names_a_path_the_job_cannot_write() {
    let t = tempfile::tempdir().unwrap();
    let not_a_dir = t.path().join("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let cfg = config(
        t.path(),
        &format!(
            "[[sink]]\nname = \"backuppc\"\nkind = \"dir\"\npath = \"{}\"\n",
            not_a_dir.display()
        ),
    );
    let out = run("vigil-snapshot", &cfg, t.path(), &[], &["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("sink[0].path") && text(&out).contains("is not a directory"),
        "{}",
        text(&out)
    );
    // Health does not write the sink, so its check passes.
    let out = run("vigil-health", &cfg, t.path(), &[], &["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("backuppc-"), "{}", text(&out));
}

fn events(path: &Path) -> Vec<(String, String, String)> {
    alert_items(path)
        .iter()
        .map(|i| {
            (
                i["event"].as_str().unwrap().to_string(),
                i["alert"]["key"].as_str().unwrap().to_string(),
                i.to_string(),
            )
        })
        .collect()
}

#[test]
fn a_unit_that_dies_without_an_outcome_raises_an_alert_until_the_job_completes() {
    let t = tempfile::tempdir().unwrap();
    let alerts = t.path().join("alerts.jsonl");
    let cfg = config(
        t.path(),
        &format!(
            "[[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
            alerts.display()
        ),
    );
    let died = |result: &str, code: &str, status: &str| {
        run(
            "vigil-notify",
            &cfg,
            t.path(),
            &[
                ("MONITOR_SERVICE_RESULT", result),
                ("MONITOR_EXIT_CODE", code),
                ("MONITOR_EXIT_STATUS", status),
                ("MONITOR_INVOCATION_ID", "0123abcd"),
            ],
            &["unit-failed", "vigil-health.service"],
        )
    };
    // Exit 1: the job ran to its end and raised its own alerts.
    assert_eq!(died("exit-code", "exited", "1").status.code(), Some(0));
    notify_once(&cfg);
    assert!(events(&alerts).is_empty());
    // SIGKILL: no outcome, so the handler's alert names the unit and the death.
    assert_eq!(died("signal", "killed", "KILL").status.code(), Some(0));
    notify_once(&cfg);
    let ev = events(&alerts);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].0, "firing");
    assert_eq!(ev[0].1, "job_unit_failed{unit=\"vigil-health\"}");
    assert!(
        ev[0].2.contains("killed by signal KILL") && ev[0].2.contains("0123abcd"),
        "{}",
        ev[0].2
    );
    // The next run that completes (members down: exit 1, but it ran) resolves it.
    let out = run("vigil-health", &cfg, t.path(), &[], &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    notify_once(&cfg);
    let ev: Vec<_> = events(&alerts)
        .into_iter()
        .filter(|e| e.1.starts_with("job_unit_failed"))
        .collect();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[1].0, "resolved");
    // Not a vigil unit: a usage error.
    let out = run(
        "vigil-notify",
        &cfg,
        t.path(),
        &[],
        &["unit-failed", "sshd.service"],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_root_shell_leaves_the_alert_database_to_the_state_dirs_owner() {
    if !is_root() {
        eprintln!("skipped: needs root to own files as another user");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cfg = config(t.path(), "");
    let state = t.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // As the package leaves it: the state dir belongs to the unit's user.
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let out = run("vigil-notify", &cfg, t.path(), &[], &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    use std::os::unix::fs::MetadataExt;
    let mut seen = 0;
    for f in ["alerts.db", "alerts.db-wal", "alerts.db-shm"] {
        if let Ok(m) = std::fs::metadata(state.join(f)) {
            assert_eq!(
                (m.uid(), m.gid()),
                (65534, 65534),
                "{f} is not the state dir owner's"
            );
            seen += 1;
        }
    }
    assert!(seen >= 1, "vigil-notify status made no database");
    // A job run by hand as root would leave root-owned archives there: refused, saying how.
    for (b, args) in [
        ("vigil-snapshot", &["run"][..]),
        ("vigil-health", &["run"][..]),
    ] {
        let out = run(b, &cfg, t.path(), &[], args);
        assert_eq!(out.status.code(), Some(2), "{b}: {}", text(&out));
        assert!(
            text(&out).contains("runuser -u nobody"),
            "{b}: {}",
            text(&out)
        );
    }
    assert!(
        !t.path().join("snap").exists(),
        "the refused run wrote archives"
    );
    // Reading is fine.
    let out = run(
        "vigil-snapshot",
        &cfg,
        t.path(),
        &[],
        &["prune", "--dry-run"],
    );
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let lock = std::fs::metadata(state.join("snapshot.lock")).unwrap();
    assert_eq!(
        lock.uid(),
        65534,
        "the lock a root shell made is the state dir owner's"
    );
}

#[test]
fn no_core_dump_can_hold_plaintext() {
    if !is_root() {
        eprintln!("skipped: needs root to run vigil-notify as another user");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = config(t.path(), "");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = t.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(bin("vigil-notify"))
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .uid(65534)
        .gid(65534)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", child.id()));
    let mut limits = String::new();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap_or_default();
        if limits
            .lines()
            .any(|l| l.starts_with("Max core file size") && l.contains(" 0 "))
        {
            break;
        }
    }
    use std::os::unix::fs::MetadataExt;
    // A process that is not dumpable has its /proc files owned by root.
    let owner = std::fs::metadata(proc_dir.join("status")).unwrap().uid();
    let _ = child.kill();
    let _ = child.wait();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_default()
        .split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(core, ["0", "0"], "{limits}");
    assert_eq!(
        owner, 0,
        "vigil-notify running as uid 65534 is still dumpable"
    );
}

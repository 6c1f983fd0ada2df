//! Faults: cli. What an administrator hits at once on the command line: a
//! reader that goes away (`| head -1`) and configs with mistakes in them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use vigil_tests::*;

fn small_config(dir: &Path) -> std::path::PathBuf {
    let key = age_key(dir);
    std::fs::create_dir_all(dir.join("snapshots")).unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    ConfigBuilder::new(
        dir,
        vec![("cp-1".into(), "http://127.0.0.1:1".into())],
        &key.recipient,
    )
    .write("vigil.toml")
}

/// Runs `bin args` with stdout (and with `both`, stderr too) connected to a
/// pipe nobody reads: its read end is closed before the program starts, so
/// the first write fails with EPIPE, as under `| head -1` once head is done.
fn with_closed_reader(bin_name: &str, config: &Path, args: &[&str], both: bool) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let stderr = if both {
        Stdio::from(writer.try_clone().unwrap())
    } else {
        Stdio::piped()
    };
    Command::new(bin(bin_name))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .output()
        .unwrap()
}

/// Issue 14 point 9: `vigil-snapshot list | head -1` and the other printing
/// commands panicked with "failed printing to stdout: Broken pipe" (exit 101
/// and a backtrace). They now stop quietly with 141, what a shell reports for
/// a reader that went away (128 + SIGPIPE), and nothing on stderr.
#[test]
fn printing_commands_stop_quietly_when_the_reader_goes_away() {
    let t = tempfile::tempdir().unwrap();
    let cfg = small_config(t.path());
    let cases: &[(&str, &[&str])] = &[
        ("vigil-snapshot", &["list"]),
        ("vigil-snapshot", &["list", "--json"]),
        ("vigil-snapshot", &["check-config"]),
        ("vigil-restore", &["list"]),
        ("vigil-restore", &["list", "--json"]),
        ("vigil-restore", &["check-config"]),
        ("vigil-health", &["run"]),
        ("vigil-health", &["run", "--json"]),
        ("vigil-health", &["check-config"]),
        ("vigil-quota", &["run"]),
        ("vigil-quota", &["check-config"]),
        ("vigil-notify", &["status"]),
        ("vigil-notify", &["status", "--json"]),
        ("vigil-notify", &["silence", "list"]),
        ("vigil-notify", &["check-config"]),
        ("vigil-snapshot", &["--help"]),
    ];
    let mut bad = Vec::new();
    for (b, args) in cases {
        let out = with_closed_reader(b, &cfg, args, false);
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "$ {b} {} | (gone)\n-- exit {:?}\n{err}",
            args.join(" "),
            out.status
        );
        if out.status.code() == Some(101) || err.contains("panicked") || err.contains("Broken pipe")
        {
            bad.push(format!("{b} {}: {:?} {err}", args.join(" "), out.status));
        }
        // Only the reader went away: a job still does its work and records
        // it, so the exit code is quiet (0 or 141) or the job's own verdict.
        assert_ne!(out.status.code(), None, "{b} {args:?} died by a signal");
    }
    // Both stdout and stderr gone: no panic either (exit code is all we see).
    for (b, args) in [
        ("vigil-snapshot", &["list"][..]),
        ("vigil-notify", &["status"]),
    ] {
        let out = with_closed_reader(b, &cfg, args, true);
        if out.status.code() == Some(101) {
            bad.push(format!(
                "{b} {} with stderr gone too: exit 101",
                args.join(" ")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "panicked on a closed pipe:\n{}",
        bad.join("\n")
    );
}

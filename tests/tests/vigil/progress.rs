//! Progress of long work as an administrator sees it: bars on a terminal
//! (a real pty, from util-linux `script`), log lines in a pipe.

use std::path::Path;
use std::process::{Command, Output};
use vigil_tests::etcd::Cluster;
use vigil_tests::proxy::{Fault, Proxy};
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

/// `bin --config cfg args…` with stdin, stdout and stderr on a
/// pseudo-terminal 140 columns wide.
fn on_a_terminal(name: &str, cfg: &Path, args: &[&str]) -> (Option<i32>, String) {
    on_a_terminal_of(140, name, cfg, args)
}

/// [`on_a_terminal`] on a terminal `cols` wide.
fn on_a_terminal_of(cols: u16, name: &str, cfg: &Path, args: &[&str]) -> (Option<i32>, String) {
    // The pty starts at 0x0 (stdin here is no terminal): give it a size.
    let mut cmd = format!(
        "stty cols {cols} rows 40; {} --config {}",
        bin(name).display(),
        cfg.display()
    );
    for a in args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    let out: Output = Command::new("script")
        .args(["--quiet", "--return", "--command", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("util-linux script(1) runs");
    (
        out.status.code(),
        rows(&strip_ansi(&String::from_utf8_lossy(&out.stdout)), cols),
    )
}

/// `text` as rows of a terminal `cols` wide: indicatif pads each bar to the
/// full width and lets the terminal wrap to the next row.
fn rows(text: &str, cols: u16) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        for row in chars.chunks(usize::from(cols)) {
            out.extend(row);
            out.push('\n');
        }
        if chars.is_empty() {
            out.push('\n');
        }
    }
    out
}

/// The lines of `task`'s bar on `screen`: its name padded to 12 columns, as
/// the bar draws it (log lines say "cp-1: …").
fn bar_lines<'a>(screen: &'a str, task: &str) -> Vec<&'a str> {
    let head = format!("{task:<12} ");
    screen.lines().filter(|l| l.starts_with(&head)).collect()
}

/// The last drawing of `task`'s bar.
fn last_bar<'a>(screen: &'a str, task: &str) -> &'a str {
    bar_lines(screen, task)
        .pop()
        .unwrap_or_else(|| panic!("no bar for {task}: {screen}"))
}

/// The last drawing of `task`'s bar once it has a size (`[===  ]`).
fn last_sized_bar<'a>(screen: &'a str, task: &str) -> &'a str {
    bar_lines(screen, task)
        .into_iter()
        .rfind(|l| l.contains('['))
        .unwrap_or_else(|| panic!("no bar for {task}: {screen}"))
}

/// The text a terminal shows, without its escape sequences; each redraw
/// (`\r`, a cursor move) starts a new line.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                out.push('\n');
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

#[test]
fn bars_on_a_terminal_and_log_lines_off_it() {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(t.path(), &NAMES, None);
    // Incompressible: about 2 MiB per member.
    cluster.put_many("/registry/secrets/", 2000, 1024, true, 7);
    std::fs::create_dir_all(t.path().join("key")).unwrap();
    let key = age_key(&t.path().join("key"));
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.peers = cluster.peer_urls();
    cb.extra = format!(
        "\n[restore]\ndrill_identity_file = \"{}\"\nscratch_dir = \"{}\"\n",
        key.identity_file.display(),
        t.path().join("scratch").display()
    );
    let cfg = cb.write("vigil.toml");

    // 1. run: one bar per member, ending "done" at the whole database size.
    let (code, screen) = on_a_terminal("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(code, Some(0), "{screen}");
    for m in NAMES {
        let last = last_sized_bar(&screen, m);
        let words: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(words[1], "done", "{m}: {last}");
        assert!(last.contains("[============"), "{m}: a full bar: {last}");
        let (_, after) = last.split_once(']').unwrap();
        assert!(
            after.contains("MiB/") && after.contains("/s"),
            "bytes of the size, and a rate: {last}"
        );
    }
    // The report still follows the bars.
    assert!(screen.contains("cp-3"), "{screen}");

    // 2. scrub: a bar for the bastion's store, ending "ok".
    let (code, screen) = on_a_terminal("vigil-snapshot", &cfg, &["scrub", "--sink", "local"]);
    assert_eq!(code, Some(0), "{screen}");
    let last = screen
        .lines()
        .rfind(|l| l.starts_with("local") && l.contains('['))
        .unwrap_or_else(|| panic!("no bar for the local store: {screen}"));
    assert_eq!(last.split_whitespace().nth(1), Some("ok"), "{last}");

    // 3. drill: a line per member, its stage while it runs, "ok" at the end.
    let (code, screen) = on_a_terminal("vigil-restore", &cfg, &["drill"]);
    assert_eq!(code, Some(0), "{screen}");
    for m in NAMES {
        let last = last_bar(&screen, m);
        assert_eq!(last.split_whitespace().nth(1), Some("ok"), "{m}: {last}");
    }
    assert!(
        bar_lines(&screen, "cp-1")
            .iter()
            .any(|l| matches!(l.split_whitespace().nth(1), Some("stream" | "verify"))),
        "cp-1's stage while it ran: {screen}"
    );

    // 4. vigil-restore etcd: where the restore is, then each data dir "ready".
    let out_dir = t.path().join("restored");
    let id = key.identity_file.display().to_string();
    let (code, screen) = on_a_terminal(
        "vigil-restore",
        &cfg,
        &[
            "etcd",
            "-i",
            &id,
            "--out",
            out_dir.to_str().unwrap(),
            "--skip-port-check",
            "--no-bump",
        ],
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        bar_lines(&screen, "restore")
            .iter()
            .any(|l| l.split_whitespace().nth(1) == Some("fetch")),
        "the restore's stage: {screen}"
    );
    for m in NAMES {
        let last = last_bar(&screen, m);
        assert_eq!(last.split_whitespace().nth(1), Some("ready"), "{m}: {last}");
        assert!(out_dir.join(m).join("member").is_dir(), "{m}'s data dir");
    }

    // 5. An 80-column SSH session: the bar shrinks, the rate and ETA stay.
    let (code, screen) = on_a_terminal_of(80, "vigil-snapshot", &cfg, &["run"]);
    assert_eq!(code, Some(0), "{screen}");
    for m in NAMES {
        let last = last_sized_bar(&screen, m);
        // One row holds the whole bar: `[…]`, bytes, rate and ETA.
        let (_, after) = last
            .split_once(']')
            .unwrap_or_else(|| panic!("{m}: {last:?}"));
        assert!(
            after.contains("MiB/") && after.contains("/s ETA "),
            "{m}: size, rate and ETA on the bar's row: {last:?}"
        );
    }

    // 6. Off a terminal (a pipe, the journal): a line per member every 10 s
    //    while it streams, with stage, bytes, share and rate. cp-1 is slowed
    //    to 120 KB/s, so its ~2 MiB stream takes about 17 s.
    let slow = Proxy::start(cluster.members[0].client_port, Fault::Throttle(120_000));
    let mut members = cb.members.clone();
    members[0].1 = slow.endpoint("http");
    let c = ConfigBuilder::new(t.path(), members, &key.recipient);
    let out = vigil("vigil-snapshot", &c.write("slow.toml"), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cp-1: stream "))
        .collect();
    assert!(!lines.is_empty(), "no progress line for cp-1: {err}");
    for l in &lines {
        assert!(
            l.contains(" of ") && l.contains("%") && l.contains("/s"),
            "{l}"
        );
    }
    assert!(
        !err.contains('\x1b') && !err.contains('\r'),
        "no bar drawing in a pipe: {err}"
    );
}

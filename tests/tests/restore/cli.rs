//! Issue #15 point 5: a safer CLI at 3 a.m.: `fetch --out -` streams the
//! verified plaintext with no file and fails loudly, and `rke2 --execute`
//! asks before it touches a node.
#![allow(clippy::unwrap_used)]

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use vigil_tests::etcd::Cluster;
use vigil_tests::{age_key, bin, stand_in, text, vigil, AgeKey, ConfigBuilder};

fn restore(cfg: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(bin("vigil-restore"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("VIGIL_LOG", "info")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(b) = stdin {
        child.stdin.take().unwrap().write_all(b).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "$ vigil-restore {}\n-- exit {:?}\n-- stdout: {} bytes\n-- stderr\n{}",
        args.join(" "),
        out.status.code(),
        out.stdout.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `sh -c CMD` with a pseudo-terminal as stdin/stdout/stderr (util-linux
/// `script`), fed `input`; None when `script` is not there.
fn on_a_terminal(cmd: &str, input: &str) -> Option<Output> {
    if Command::new("script").arg("--version").output().is_err() {
        return None;
    }
    // Sent after a pause, once the prompt is up (script forwards stdin to the pty).
    let feed = format!("sleep 2; printf '{input}'; sleep 5");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "({feed}) | script -qefc {} /dev/null",
            vigil_tests_quote(cmd)
        ))
        .output()
        .unwrap();
    eprintln!(
        "$ (on a terminal) {cmd}\n-- exit {:?}\n-- output\n{}",
        out.status.code(),
        text(&out)
    );
    Some(out)
}

fn vigil_tests_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A one-member cluster with data, archived by the real vigil-snapshot.
fn snapshotted(t: &Path, extra: &str) -> (Cluster, PathBuf, AgeKey) {
    let cluster = Cluster::start(&t.join("orig"), &["cp-1"], None);
    // Random values: the archive spans many age chunks and fetch buffers.
    cluster.put_many("/registry/secrets/", 400, 4096, true, 5);
    let key = age_key(t);
    let mut cb = ConfigBuilder::new(t, cluster.config_members(), &key.recipient);
    cb.extra = extra.to_string();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (cluster, cfg, key)
}

fn archive_and_manifest(t: &Path) -> (PathBuf, serde_json::Value) {
    let a = vigil_tests::archives(&t.join("snapshots/cp-1"));
    let m = vigil_tests::manifest(&a[0]);
    (a[0].clone(), m)
}

/// Every file under `dir`, recursively, but the cluster's data and the state dir.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.ends_with("orig") || p.ends_with("state") {
            continue;
        }
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v.sort();
    v
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn fetch_to_stdout_streams_the_verified_snapshot_and_fails_loudly() {
    let t = tempfile::tempdir().unwrap();
    let (_cluster, cfg, key) = snapshotted(t.path(), "");
    let (archive, m) = archive_and_manifest(t.path());
    let id = key.identity_file.to_str().unwrap();
    let want = m["snapshot_sha256"].as_str().unwrap().to_string();
    // Every file but the running cluster's and the state dir's (locks).
    let before = walk(t.path());

    // The verified plaintext on stdout, the human summary on stderr.
    let out = restore(&cfg, &["fetch", "-i", id, "--out", "-"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        out.stdout.len() as u64,
        m["snapshot_size"].as_u64().unwrap()
    );
    assert_eq!(sha(&out.stdout), want);
    assert!(
        stderr(&out).contains("verified") && stderr(&out).contains("standard output"),
        "{}",
        stderr(&out)
    );
    // --json goes to stderr too: stdout is the snapshot only.
    let out = restore(&cfg, &["fetch", "-i", id, "--out", "-", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sha(&out.stdout), want);
    let err = stderr(&out);
    let j: serde_json::Value =
        serde_json::from_str(&err[err.find("{\n").unwrap()..err.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(j["snapshot_sha256"], want, "{j}");
    // No plaintext file was written anywhere.
    assert_eq!(walk(t.path()), before);

    // Piped through the shell into a file for etcdctl 3.4, which wants a path.
    let db = t.path().join("piped.db");
    let pipe = format!(
        "{} --config {} fetch -i {id} --out - | tee {} | sha256sum",
        bin("vigil-restore").display(),
        cfg.display(),
        db.display()
    );
    let out = Command::new("sh").arg("-c").arg(&pipe).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&want),
        "{}",
        text(&out)
    );
    let st = Command::new("etcdctl")
        .args(["snapshot", "status", "-w", "json"])
        .arg(&db)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", text(&st));
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(
        st["revision"].as_i64().unwrap() >= m["revision"].as_i64().unwrap(),
        "{st}"
    );
    let data = t.path().join("piped-restore");
    let r = Command::new("etcdctl")
        .args(["snapshot", "restore"])
        .arg(&db)
        .arg("--data-dir")
        .arg(&data)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", text(&r));
    assert!(data.join("member/snap/db").exists());

    // A terminal is refused (exit 2), nothing is written to it.
    let cmd = format!(
        "{} --config {} fetch -i {id} --out -",
        bin("vigil-restore").display(),
        cfg.display()
    );
    match on_a_terminal(&cmd, "") {
        Some(o) => {
            assert_eq!(o.status.code(), Some(2), "{}", text(&o));
            assert!(text(&o).contains("is a terminal"), "{}", text(&o));
            assert!(o.stdout.len() < 2000, "{}", text(&o));
        }
        None => eprintln!("skipped the terminal case: util-linux `script` is not installed"),
    }

    // A wrong key: nothing on stdout, non-zero, and said so.
    std::fs::create_dir_all(t.path().join("other")).unwrap();
    let other = age_key(&t.path().join("other"));
    let out = restore(
        &cfg,
        &[
            "fetch",
            "-i",
            other.identity_file.to_str().unwrap(),
            "--out",
            "-",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("none of the identities"),
        "{}",
        stderr(&out)
    );

    let plain = {
        let out = restore(&cfg, &["fetch", "-i", id, "--out", "-"], None);
        out.stdout
    };
    // Corrupt near the end: decryption fails after bytes went out. stdout
    // holds only a prefix of the snapshot; stderr says not to use it.
    let good = std::fs::read(&archive).unwrap();
    let mut bad = good.clone();
    let at = bad.len() - 200;
    bad[at] ^= 0x5a;
    std::fs::write(&archive, &bad).unwrap();
    let out = restore(&cfg, &["fetch", "-i", id, "--out", "-"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        plain.starts_with(&out.stdout),
        "stdout is not a prefix of the snapshot"
    );
    assert!(
        !out.stdout.is_empty(),
        "expected streamed bytes before the failure"
    );
    assert!(
        stderr(&out).contains("MUST NOT be used"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&archive, &good).unwrap();

    // Every byte went out, then the check at the end failed (a manifest that
    // disagrees with the snapshot): non-zero, and stderr says so.
    let mpath = PathBuf::from(format!("{}.json", archive.display()));
    let mut lying = m.clone();
    lying["snapshot_sha256"] = serde_json::Value::String("00".repeat(32));
    std::fs::write(&mpath, serde_json::to_vec_pretty(&lying).unwrap()).unwrap();
    let out = restore(&cfg, &["fetch", "-i", id, "--out", "-"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(sha(&out.stdout), want, "all bytes were streamed");
    let e = stderr(&out);
    assert!(e.contains("MUST NOT be used") && e.contains(&want), "{e}");
    // Nothing decrypted was left in a file by the failed fetches either.
    let new: Vec<PathBuf> = walk(t.path())
        .into_iter()
        .filter(|f| !before.contains(f) && !f.starts_with(&db) && !f.starts_with(&data))
        .filter(|f| !f.starts_with(t.path().join("other")))
        .collect();
    assert!(new.is_empty(), "{new:?}");
}

#[test]
fn rke2_execute_asks_on_a_terminal_and_refuses_without_one() {
    let t = tempfile::tempdir().unwrap();
    let bindir = t.path().join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    let log = t.path().join("calls.log");
    let rke2 = stand_in(&bindir, "rke2", &log, false);
    // It says its version, as `rke2 --version` does.
    let body = std::fs::read_to_string(&rke2).unwrap().replace(
        "exit 0\n",
        "[ \"$1\" = --version ] && echo 'rke2 version v1.31.4+rke2r1 (0123abcd)' && echo 'go version go1.22'\nexit 0\n",
    );
    std::fs::write(&rke2, body).unwrap();
    let systemctl = stand_in(&bindir, "systemctl", &log, false);
    let data = t.path().join("rke2");
    let extra = format!(
        "\n[restore]\nrke2_bin = \"{}\"\nsystemctl_bin = \"{}\"\nrke2_data_dir = \"{}\"\n",
        rke2.display(),
        systemctl.display(),
        data.display()
    );
    let (_cluster, cfg, key) = snapshotted(t.path(), &extra);
    // This node's server token (the snapshot holds no /bootstrap entry).
    std::fs::create_dir_all(data.join("server")).unwrap();
    std::fs::write(data.join("server/token"), "K10abc::server:pw\n").unwrap();
    let id = key.identity_file.to_str().unwrap();
    let snapshots = data.join("server/db/snapshots");
    let args = ["rke2", "--execute", "-i", id];

    // No terminal, no --yes: refused (exit 2) before anything runs or is fetched.
    let out = restore(&cfg, &args, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let e = stderr(&out);
    assert!(e.contains("--yes") && e.contains("terminal"), "{e}");
    assert!(
        !log.exists(),
        "a step ran: {:?}",
        std::fs::read_to_string(&log)
    );
    assert!(!snapshots.exists() || std::fs::read_dir(&snapshots).unwrap().next().is_none());

    let cmd = format!(
        "{} --config {} rke2 --execute -i {id}",
        bin("vigil-restore").display(),
        cfg.display()
    );
    match on_a_terminal(&cmd, "no\\n") {
        Some(o) => {
            // The plan is shown, a wrong answer stops it all.
            assert_eq!(o.status.code(), Some(2), "{}", text(&o));
            let s = text(&o);
            assert!(s.contains("--cluster-reset") && s.contains("prod"), "{s}");
            assert!(s.contains("nothing was done"), "{s}");
            assert!(
                !log.exists(),
                "a step ran: {:?}",
                std::fs::read_to_string(&log)
            );
            // The cluster's name goes on.
            let o = on_a_terminal(&cmd, "prod\\n").unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            let calls = std::fs::read_to_string(&log).unwrap();
            assert!(calls.contains("--cluster-reset"), "{calls}");
            std::fs::remove_file(&log).unwrap();
            for e in std::fs::read_dir(&snapshots).unwrap() {
                std::fs::remove_file(e.unwrap().path()).unwrap();
            }
        }
        None => eprintln!("skipped the terminal case: util-linux `script` is not installed"),
    }

    // --yes for scripts: the steps run without a question.
    let mut a = args.to_vec();
    a.extend(["--yes", "--json"]);
    let out = restore(&cfg, &a, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Which etcd restored it (issue #15 point 4): RKE2's own, by its version.
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["rke2_version"], "v1.31.4+rke2r1", "{r}");
    assert_eq!(r["snapshot_etcd_version"], "3.4.23", "{r}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("systemctl stop rke2-server") && calls.contains("--cluster-reset"),
        "{calls}"
    );
    assert!(!stderr(&out).contains("Type "), "{}", stderr(&out));
}

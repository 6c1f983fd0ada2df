//! Running on a bastion: systemd units, the Debian package's assets, metrics
//! files, vigil-notify's /metrics and READY=1, log formats, and vigild.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::etcd::Cluster;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn units(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("systemd"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Metric names a Prometheus text file or page defines.
fn metric_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn every_service_scores_2_or_less_and_every_unit_verifies() {
    let services = units("service");
    assert!(services.len() >= 12, "{services:?}");
    for s in &services {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(s)
            .output()
            .unwrap();
        let t = text(&out);
        let line = t
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("{}: {t}", s.display()));
        let score: f64 = line
            .split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        eprintln!("{line}");
        assert!(score <= 2.0, "{line}");
        let body = std::fs::read_to_string(s).unwrap();
        for must in [
            "User=vigil\n",
            "UMask=0077\n",
            "ProtectSystem=strict\n",
            "NoNewPrivileges=yes\n",
            "CapabilityBoundingSet=\n",
        ] {
            assert!(body.contains(must), "{}: no {must:?}", s.display());
        }
        // Writable: the state/snapshot tree and the metrics dir, nothing else.
        for rw in body.lines().filter(|l| l.starts_with("ReadWritePaths=")) {
            assert!(
                [
                    "ReadWritePaths=/var/lib/vigil",
                    "ReadWritePaths=/var/lib/vigil/%i",
                    "ReadWritePaths=-/var/lib/prometheus/node-exporter"
                ]
                .contains(&rw),
                "{}: {rw}",
                s.display()
            );
        }
        // Contract 5: every job unit loads the one credentials directory; the
        // failure handler opens no secret, so it loads none.
        let name = s.file_name().unwrap().to_string_lossy().to_string();
        let handler = name.starts_with("vigil-unit-failed@");
        let creds: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("LoadCredential="))
            .collect();
        let want: &[&str] = if handler {
            &[]
        } else {
            &["LoadCredential=vigil:/etc/vigil/credentials"]
        };
        assert_eq!(creds, want, "{name}");
        assert_eq!(
            body.contains("Environment=VIGIL_CREDENTIALS_PREFIX=vigil_\n"),
            !handler,
            "{name}"
        );
        // A death that records no outcome still reaches a human; the handler
        // itself has no OnFailure= (no loop).
        assert_eq!(
            body.contains("OnFailure=vigil-unit-failed@%n.service\n"),
            !handler,
            "{name}"
        );
        if !handler {
            let conf = if name.contains('@') {
                "ConditionPathExists=/etc/vigil/%i.toml\n"
            } else {
                "ConditionPathExists=/etc/vigil/vigil.toml\n"
            };
            assert!(body.contains(conf), "{name}: no {conf:?}");
        }
    }
    // The long-running services: READY=1, restarted on failure, a watchdog.
    for u in ["vigil-notify", "vigil-journal"] {
        let body = std::fs::read_to_string(repo().join(format!("systemd/{u}.service"))).unwrap();
        assert!(
            body.contains("Type=notify\n") && body.contains("Restart=on-failure\n"),
            "{u}"
        );
        assert!(body.contains("WatchdogSec="), "{u}");
    }
    // vigil-journal starts `vigil-snapshot run` after a gap: its restore proof
    // needs the unit's own tmpfs, as in vigil-snapshot.service.
    let journal = std::fs::read_to_string(repo().join("systemd/vigil-journal.service")).unwrap();
    assert!(journal.contains("TemporaryFileSystem=/run/vigil-proof:mode=1777\n"));
    assert!(journal.contains("Environment=VIGIL_PROOF_DIR=/run/vigil-proof\n"));

    // Every timer says why it has its RandomizedDelaySec and Persistent.
    let timers = units("timer");
    assert_eq!(timers.len(), 10, "{timers:?}");
    for t in &timers {
        let body = std::fs::read_to_string(t).unwrap();
        assert!(
            body.contains("ConditionPathExists=/etc/vigil/"),
            "{}",
            t.display()
        );
        let lines: Vec<&str> = body.lines().collect();
        for key in ["RandomizedDelaySec=", "Persistent=", "OnCalendar="] {
            let i = lines
                .iter()
                .position(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("{}: no {key}", t.display()));
            let before = lines[..i].iter().rev().take(3).any(|l| l.starts_with('#'));
            assert!(before, "{}: {key} has no comment saying why", t.display());
        }
    }

    // `systemd-analyze verify` needs the binaries the units name: point them
    // at the ones just built, and verify templates as an instance.
    let d = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for u in services.iter().chain(&timers) {
        let name = u
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("@.", "@prod.");
        let mut body = std::fs::read_to_string(u).unwrap();
        for b in [
            "vigil-snapshot",
            "vigil-restore",
            "vigil-notify",
            "vigil-health",
            "vigil-quota",
            "vigil-journal",
            "vigild",
        ] {
            body = body.replace(
                &format!("ExecStart=/usr/bin/{b} "),
                &format!("ExecStart={} ", bin(b).display()),
            );
        }
        let p = d.path().join(name);
        std::fs::write(&p, body).unwrap();
        files.push(p);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );
}

#[test]
fn prometheus_rules_pass_promtool_and_the_dashboard_parses() {
    assert!(
        have("promtool"),
        "promtool missing: scripts/install-deps.sh installs Debian's prometheus"
    );
    let rules = repo().join("config/prometheus-rules.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The rules' own cases: the dead-man fires for one silent bastion while
    // another reports, checks group by vigil_job.
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(repo().join("tests/promtool/rules.test.yml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "promtool test rules: {}", text(&out));
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));
    let dash: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("config/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dash["uid"], "vigil-overview");
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() > 15);
    // Every metric the dashboard and the rules use is one vigil writes.
    let known = [
        "vigil_snapshot_member_last_success_timestamp_seconds",
        "vigil_snapshot_member_success",
        "vigil_snapshot_consistency_ok",
        "vigil_snapshot_member_duration_seconds",
        "vigil_snapshot_run_duration_seconds",
        "vigil_snapshot_run_timestamp_seconds",
        "vigil_snapshot_run_success",
        "vigil_snapshot_member_snapshot_bytes",
        "vigil_snapshot_member_archive_bytes",
        "vigil_snapshot_member_compression_ratio",
        "vigil_snapshot_member_revision",
        "vigil_snapshot_member_restore_proven",
        "vigil_snapshot_archives",
        "vigil_snapshot_sink_copies",
        "vigil_snapshot_sink_success",
        "vigil_snapshot_sink_last_success_timestamp_seconds",
        "vigil_scrub_checked_archives",
        "vigil_scrub_problems",
        "vigil_drill_rto_seconds",
        "vigil_drill_member_success",
        "vigil_drill_last_success_timestamp_seconds",
        "vigil_check_state",
        "vigil_quota_used_ratio",
        "vigil_quota_forecast_full_seconds",
        "vigil_notify_outbox_pending",
        "vigil_notify_deliveries_total",
        "vigil_notify_delivery_failures_total",
        "vigil_notify_channel_consecutive_failures",
        "vigil_notify_store_ok",
        "vigil_alerts",
        "vigil_daemon_job_last_exit_code",
        "vigil_daemon_job_skipped_total",
    ];
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    for e in exprs.iter().map(String::as_str).chain(
        rules_text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr: ")),
    ) {
        let used: Vec<&str> = e
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            // vigil_job is a label (the vigil job), not a metric.
            .filter(|w| w.starts_with("vigil_") && *w != "vigil_job")
            .collect();
        assert!(!used.is_empty(), "{e}");
        for u in used {
            assert!(known.contains(&u), "unknown metric {u} in {e}");
        }
    }
}

#[test]
fn man_pages_and_completions_come_from_the_binaries() {
    let d = tempfile::tempdir().unwrap();
    for b in [
        "vigil-snapshot",
        "vigil-restore",
        "vigil-notify",
        "vigil-journal",
        "vigild",
        "vigil",
    ] {
        let out = Command::new(bin(b))
            .arg("__generate")
            .arg(d.path().join(b))
            .output()
            .unwrap();
        assert!(out.status.success(), "{b}: {}", text(&out));
        let man = std::fs::read_to_string(d.path().join(b).join(format!("man/{b}.1"))).unwrap();
        assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
        assert!(d
            .path()
            .join(b)
            .join(format!("completions/bash/{b}"))
            .is_file());
        assert!(d
            .path()
            .join(b)
            .join(format!("completions/zsh/_{b}"))
            .is_file());
        assert!(d
            .path()
            .join(b)
            .join(format!("completions/fish/{b}.fish"))
            .is_file());
        let o = Command::new("bash")
            .arg("-n")
            .arg(d.path().join(b).join(format!("completions/bash/{b}")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    assert!(d
        .path()
        .join("vigil-snapshot/man/vigil-snapshot-run.1")
        .is_file());
    // `__generate` is not in --help.
    let help = Command::new(bin("vigil-snapshot"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(!text(&help).contains("__generate"));
}

#[test]
fn jobs_write_textfile_metrics_and_logs_suit_journald() {
    let t = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 200, 300, false, 1);
    let key = age_key(t.path());
    std::fs::set_permissions(&key.identity_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let textdir = t.path().join("textfile");
    std::fs::create_dir(&textdir).unwrap();
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra = format!(
        "\n[metrics]\ntextfile_dir = \"{}\"\nlisten = \"\"\n\n[restore]\ndrill_identity_file = \"{}\"\ndrill_sample_keys = 3\nscratch_dir = \"{}\"\n\n[[sink]]\nname = \"offsite\"\nkind = \"fs\"\npath = \"{}\"\n",
        textdir.display(),
        key.identity_file.display(),
        t.path().join("scratch").display(),
        t.path().join("offsite").display(),
    );
    let cfg = cb.write("vigil.toml");

    // journal format: `<N>` priority, no timestamp; json: one object per line.
    let out = Command::new(bin("vigil-snapshot"))
        .args(["--config"])
        .arg(&cfg)
        .args(["--log-format", "journal", "run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| l.starts_with(p)),
            "not journald style: {l:?}"
        );
        // journald stamps each line itself: none of vigil's own after the prefix.
        assert!(
            !l[3..].starts_with(|c: char| c.is_ascii_digit()),
            "timestamp in {l:?}"
        );
        assert!(!l.contains('\u{1b}'), "ANSI colour in {l:?}");
    }
    let prom = textdir.join("vigil_snapshot_prod.prom");
    assert_eq!(mode(&prom), 0o644);
    let first = std::fs::read_to_string(&prom).unwrap();
    eprintln!("{first}");
    for m in NAMES {
        let l = [("cluster", "prod"), ("member", m)];
        assert_eq!(
            sample(&first, "vigil_snapshot_member_success", &l),
            Some(1.0)
        );
        assert!(sample(&first, "vigil_snapshot_member_archive_bytes", &l).unwrap() > 0.0);
        assert!(sample(&first, "vigil_snapshot_member_snapshot_bytes", &l).unwrap() > 0.0);
        assert!(sample(&first, "vigil_snapshot_member_compression_ratio", &l).unwrap() > 1.0);
        assert!(sample(&first, "vigil_snapshot_member_duration_seconds", &l).is_some());
        assert!(sample(
            &first,
            "vigil_snapshot_member_last_success_timestamp_seconds",
            &l
        )
        .is_some());
        assert_eq!(
            sample(
                &first,
                "vigil_snapshot_archives",
                &[("member", m), ("sink", "local")]
            ),
            Some(1.0)
        );
    }
    assert_eq!(sample(&first, "vigil_snapshot_run_success", &[]), Some(1.0));
    assert_eq!(
        sample(
            &first,
            "vigil_snapshot_sink_success",
            &[("sink", "offsite")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&first, "vigil_snapshot_sink_copies", &[("sink", "offsite")]),
        Some(3.0)
    );
    assert!(sample(
        &first,
        "vigil_snapshot_sink_last_success_timestamp_seconds",
        &[("sink", "offsite")]
    )
    .is_some());
    // No secret and no temporary file next to it.
    assert!(!first.contains("AGE-SECRET-KEY"));
    assert_eq!(
        all_files(&textdir),
        vec!["vigil_snapshot_prod.prom".to_string()]
    );
    let lint = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < '{}'", prom.display()))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics: {}",
        text(&lint)
    );

    // One member down: its success is 0, its last success time stays.
    let last_cp2 = sample(
        &first,
        "vigil_snapshot_member_last_success_timestamp_seconds",
        &[("member", "cp-2")],
    );
    cluster.kill(1);
    let out = Command::new(bin("vigil-snapshot"))
        .args(["--config"])
        .arg(&cfg)
        .args(["--log-format", "json", "run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for l in String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
    {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
    }
    let second = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(
        sample(
            &second,
            "vigil_snapshot_member_success",
            &[("member", "cp-2")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &second,
            "vigil_snapshot_member_success",
            &[("member", "cp-1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &second,
            "vigil_snapshot_member_last_success_timestamp_seconds",
            &[("member", "cp-2")]
        ),
        last_cp2
    );
    assert_eq!(
        sample(&second, "vigil_snapshot_run_success", &[]),
        Some(0.0)
    );
    cluster.restart(1);

    // Scrub and drill write theirs.
    let out = vigil("vigil-snapshot", &cfg, &["scrub"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let scrub = std::fs::read_to_string(textdir.join("vigil_scrub_prod.prom")).unwrap();
    assert_eq!(
        sample(&scrub, "vigil_scrub_problems", &[("sink", "local")]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &scrub,
            "vigil_scrub_checked_archives",
            &[("sink", "offsite")]
        ),
        Some(5.0)
    );
    drop(cluster);
    let out = vigil("vigil-restore", &cfg, &["drill"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let drill = std::fs::read_to_string(textdir.join("vigil_drill_prod.prom")).unwrap();
    eprintln!("{drill}");
    for m in NAMES {
        assert_eq!(
            sample(&drill, "vigil_drill_member_success", &[("member", m)]),
            Some(1.0)
        );
        assert!(sample(&drill, "vigil_drill_rto_seconds", &[("member", m)]).unwrap() > 0.0);
        assert!(sample(
            &drill,
            "vigil_drill_last_success_timestamp_seconds",
            &[("member", m)]
        )
        .is_some());
    }
}

/// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
fn notify_socket(dir: &Path) -> (std::os::unix::net::UnixDatagram, PathBuf) {
    let p = dir.join("notify.sock");
    let s = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (s, p)
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn notify_says_ready_and_serves_metrics() {
    let t = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cb = ConfigBuilder::new(
        t.path(),
        vec![("cp-1".into(), "http://127.0.0.1:1".into())],
        &age_key(t.path()).recipient,
    );
    cb.extra = format!(
        "\n[metrics]\ntextfile = false\nlisten = \"127.0.0.1:{port}\"\n\n[alert]\ngroup_wait = \"1s\"\nretry_min = \"1s\"\nretry_max = \"2s\"\n\n[[alert.channel]]\nname = \"ops-file\"\nkind = \"file\"\npath = \"{}\"\n",
        t.path().join("out/alerts.jsonl").display()
    );
    let cfg = cb.write("vigil.toml");
    let (sock, sock_path) = notify_socket(t.path());
    let mut child = Command::new(bin("vigil-notify"))
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        // As WatchdogSec=10s sets it.
        .env("WATCHDOG_USEC", "10000000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("no READY=1 within 20s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    // The engine tick pings the watchdog once it reached the outbox.
    let n = sock.recv(&mut buf).expect("no WATCHDOG=1 within 20s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "WATCHDOG=1"), "{msg:?}");

    let page = http_get(port, "/metrics");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("Content-Type: text/plain; version=0.0.4"),
        "{page}"
    );
    let body = page.split("\r\n\r\n").nth(1).unwrap().to_string();
    let l = [("cluster", "prod"), ("channel", "ops-file")];
    assert_eq!(sample(&body, "vigil_notify_outbox_pending", &l), Some(0.0));
    assert_eq!(
        sample(&body, "vigil_notify_deliveries_total", &l),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "vigil_notify_delivery_failures_total", &l),
        Some(0.0)
    );
    assert_eq!(sample(&body, "vigil_notify_store_ok", &[]), Some(1.0));
    for m in metric_names(&body) {
        assert!(m.starts_with("vigil_"), "{m}");
    }
    let lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics: {}",
        text(&lint)
    );
    assert!(http_get(port, "/nope").starts_with("HTTP/1.1 404"));

    // A failed snapshot raises an alert; its channel cannot write yet (no
    // directory), so vigil-notify counts failures, then the delivery.
    let st = Command::new(bin("vigil-snapshot"))
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    let metric = |name: &str| sample(&http_get(port, "/metrics"), name, &l).unwrap_or(0.0);
    wait_for("a failed delivery", 30, || {
        metric("vigil_notify_delivery_failures_total") >= 1.0
    });
    assert!(metric("vigil_notify_outbox_pending") >= 1.0);
    std::fs::create_dir(t.path().join("out")).unwrap();
    wait_for("the delivery", 30, || {
        metric("vigil_notify_deliveries_total") >= 1.0
    });
    wait_for("an empty outbox", 10, || {
        metric("vigil_notify_outbox_pending") == 0.0
    });
    let page = http_get(port, "/metrics");
    assert!(
        sample(&page, "vigil_alerts", &[("state", "firing")]).is_some(),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "vigil_notify_channel_last_success_timestamp_seconds",
            &l
        )
        .is_some(),
        "{page}"
    );

    rustix_term(child.id());
    loop {
        let n = sock.recv(&mut buf).expect("no STOPPING=1");
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        if msg.contains("STOPPING=1") {
            break;
        }
        assert_eq!(
            msg.trim(),
            "WATCHDOG=1",
            "only watchdog pings before STOPPING=1"
        );
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

fn rustix_term(pid: u32) {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
}

fn rustix_hup(pid: u32) {
    Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status()
        .unwrap();
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn vigild_skips_overlaps_reloads_on_hup_and_stops_in_order() {
    let t = tempfile::tempdir().unwrap();
    let bins = t.path().join("bin");
    std::fs::create_dir(&bins).unwrap();
    let log = t.path().join("jobs.log");
    // Stand-ins for the job binaries: they log start, SIGTERM and end.
    let script = |name: &str, body: &str| {
        let p = bins.join(name);
        std::fs::write(&p, format!("#!/bin/sh\nLOG='{}'\n{body}\n", log.display())).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // snapshot takes 2.5 s and ends on SIGTERM; scrub ignores SIGTERM.
    script(
        "vigil-snapshot",
        "if [ \"$3\" = scrub ]; then\n  echo \"scrub-start $$\" >> $LOG\n  trap '' TERM\n  while :; do sleep 1; done\nfi\necho \"snapshot-start $$\" >> $LOG\ntrap 'echo \"snapshot-term $$\" >> $LOG; exit 0' TERM\nsleep 2.5 & wait $!\necho \"snapshot-end $$\" >> $LOG",
    );
    script(
        "vigil-notify",
        "echo \"notify-start $$\" >> $LOG\ntrap 'echo \"notify-term $$\" >> $LOG; exit 0' TERM\nwhile :; do sleep 0.2; done",
    );
    let textdir = t.path().join("textfile");
    std::fs::create_dir(&textdir).unwrap();
    let write_cfg = |daemon: &str| {
        let mut cb = ConfigBuilder::new(
            t.path(),
            vec![("cp-1".into(), "http://127.0.0.1:1".into())],
            "age1ep3fl0jvltp043wvawu2mnztkgrglhr27xmcv3ke2k3x7yksaygqpgr0a7",
        );
        cb.extra = format!(
            "\n[metrics]\ntextfile_dir = \"{}\"\n\n[daemon]\nbin_dir = \"{}\"\nshutdown_timeout = \"2s\"\n{daemon}",
            textdir.display(),
            bins.display()
        );
        cb.write("vigil.toml")
    };
    let cfg = write_cfg("snapshot = \"* * * * * *\"\nscrub = \"\"\n");
    let out = vigil("vigild", &cfg, &["schedule"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("* * * * * *"));

    let err_log = t.path().join("vigild.err");
    let mut child = Command::new(bin("vigild"))
        .arg("--config")
        .arg(&cfg)
        .args(["--log-format", "text", "run"])
        .stderr(std::fs::File::create(&err_log).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("notify to start", 10, || read().contains("notify-start"));
    // Every second is due, each run takes 2.5 s: runs never overlap.
    wait_for("two snapshot runs", 15, || {
        read().matches("snapshot-end").count() >= 2
    });
    let l = read();
    let mut running = 0;
    for line in l.lines() {
        if line.starts_with("snapshot-start") {
            running += 1;
            assert_eq!(running, 1, "overlapping runs:\n{l}");
        } else if line.starts_with("snapshot-end") {
            running -= 1;
        }
    }
    let err = std::fs::read_to_string(&err_log).unwrap();
    assert!(err.contains("this run is skipped"), "{err}");
    let prom = std::fs::read_to_string(textdir.join("vigil_daemon_prod.prom")).unwrap();
    assert!(
        sample(
            &prom,
            "vigil_daemon_job_skipped_total",
            &[("vigil_job", "snapshot")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(
            &prom,
            "vigil_daemon_job_last_exit_code",
            &[("vigil_job", "snapshot")]
        ),
        Some(0.0)
    );

    // A broken config on SIGHUP is refused and the old one stays.
    std::fs::write(&cfg, "[cluster\n").unwrap();
    rustix_hup(child.id());
    wait_for("the refused reload", 10, || {
        std::fs::read_to_string(&err_log)
            .unwrap()
            .contains("config not reloaded")
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "vigild died on a bad reload"
    );

    // A good one replaces the schedules: only the scrub now (it ignores SIGTERM).
    write_cfg("snapshot = \"\"\nscrub = \"* * * * * *\"\n");
    rustix_hup(child.id());
    wait_for("the reload", 10, || {
        std::fs::read_to_string(&err_log)
            .unwrap()
            .contains("config reloaded")
    });
    wait_for("notify to restart on the new config", 10, || {
        read().matches("notify-start").count() >= 2
    });
    wait_for("the scrub", 10, || read().contains("scrub-start"));
    let snapshots_before = read().matches("snapshot-start").count();

    // SIGTERM: jobs get SIGTERM and 2 s, the stuck scrub is killed, notify stops last.
    let t0 = Instant::now();
    rustix_term(child.id());
    let status = child.wait().unwrap();
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let err = std::fs::read_to_string(&err_log).unwrap();
    assert!(
        err.contains("still running at the shutdown deadline; killed"),
        "{err}"
    );
    let l = read();
    assert_eq!(
        l.matches("snapshot-start").count(),
        snapshots_before,
        "a snapshot ran after the reload:\n{l}"
    );
    assert!(
        l.lines().last().unwrap().starts_with("notify-term"),
        "notify did not stop last:\n{l}"
    );
    // Nothing is left running.
    let left = Command::new("pgrep")
        .arg("-f")
        .arg(bins.to_str().unwrap())
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "left running: {}", text(&left));
}

#[test]
fn daemon_schedules_are_checked_when_the_config_loads() {
    let t = tempfile::tempdir().unwrap();
    let mut cb = ConfigBuilder::new(
        t.path(),
        vec![("cp-1".into(), "http://127.0.0.1:1".into())],
        "age1ep3fl0jvltp043wvawu2mnztkgrglhr27xmcv3ke2k3x7yksaygqpgr0a7",
    );
    cb.extra = "\n[daemon]\nsnapshot = \"0 */12 * *\"\n".into();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigild", &cfg, &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let msg = text(&out);
    assert!(
        msg.contains("daemon.snapshot") && msg.contains("five"),
        "{msg}"
    );
    // RKE2's own default schedule is taken as it is.
    cb.extra = "\n[daemon]\nsnapshot = \"0 */12 * * *\"\ndrill = \"0 4 * * 7\"\n\n[metrics]\nlisten = \"nope\"\n".into();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigild", &cfg, &["schedule"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("metrics.listen"), "{}", text(&out));
    cb.extra = "\n[daemon]\nsnapshot = \"0 */12 * * *\"\ndrill = \"0 4 * * 7\"\n".into();
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigild", &cfg, &["schedule"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("0 0 */12 * * *") && text(&out).contains("0 0 4 * * 0"),
        "{}",
        text(&out)
    );
}

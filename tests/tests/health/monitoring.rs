//! The monitoring administrators run beside Prometheus: `vigil-health run
//! --format sensu` run the way a Sensu-go agent runs a check (a command with
//! a timeout; its exit code and stdout), and every job's metrics pushed to a
//! real InfluxDB 1.x and read back with InfluxQL; the 2.x write API against
//! a loopback receiver; the InfluxDB Grafana dashboard against the names
//! vigil writes.
#![allow(clippy::unwrap_used)]

use std::io::BufReader;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::etcd::Cluster;
use vigil_tests::health::report::*;
use vigil_tests::influx::Influx;

/// What a Sensu-go agent does with a check: runs the command under a
/// timeout, then takes its exit status and stdout. (sensu-go is not in
/// Debian 12, so its contract is exercised here.)
struct CheckResult {
    status: i32,
    output: String,
    stderr: String,
}

fn sensu_check(cfg: &Path, timeout: Duration) -> CheckResult {
    let (args, _) = readme_check();
    let mut child = Command::new(vigil_tests::bin("vigil-health"))
        .arg("--config")
        .arg(cfg)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > timeout {
            let _ = child.kill();
            panic!("the check did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    CheckResult {
        status: o.status.code().unwrap_or(-1),
        output: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The README's Sensu-go `CheckConfig`: the arguments of its command (after
/// the program) and its timeout. The tests run exactly that command.
fn readme_check() -> (Vec<String>, Duration) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let (_, block) = readme
        .split_once("type: CheckConfig\n")
        .expect("README documents a Sensu CheckConfig");
    let block = block.split("```").next().unwrap();
    let field = |k: &str| {
        block
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{k}: ")))
            .map(|v| v.split('#').next().unwrap().trim().to_string())
            .unwrap_or_else(|| panic!("no {k} in the CheckConfig"))
    };
    assert!(readme.contains("api_version: core/v2\nmetadata:"));
    assert_eq!(field("output_metric_format"), "nagios_perfdata");
    assert_eq!(field("output_metric_handlers"), "[influxdb]");
    let cmd = field("command");
    let (_, args) = cmd
        .split_once("/usr/bin/vigil-health ")
        .unwrap_or_else(|| panic!("{cmd}"));
    let timeout: u64 = field("timeout").parse().unwrap();
    assert!(timeout < field("interval").parse::<u64>().unwrap());
    (
        args.split_whitespace().map(String::from).collect(),
        Duration::from_secs(timeout),
    )
}

/// Checks plugin output against the Nagios plugin guidelines' perfdata
/// grammar, `'label'=value[UOM];[warn];[crit];[min];[max]`, and returns the
/// (label, value) pairs. The perfdata is what follows the one `|`.
fn perfdata(output: &str) -> Vec<(String, f64)> {
    assert_eq!(output.matches('|').count(), 1, "one | only: {output}");
    let first = output.lines().next().unwrap();
    assert!(
        !first.contains('|'),
        "perfdata is on the last line: {output}"
    );
    let (_, perf) = output.split_once('|').unwrap();
    let number = |s: &str| s.is_empty() || s.parse::<f64>().is_ok();
    // A threshold range: [@][start:][end], start may be ~.
    let range = |s: &str| {
        let s = s.strip_prefix('@').unwrap_or(s);
        match s.split_once(':') {
            Some((a, b)) => (a == "~" || number(a)) && number(b),
            None => number(s),
        }
    };
    let mut out = Vec::new();
    for tok in perf.split_whitespace() {
        let (label, rest) = tok
            .rsplit_once('=')
            .unwrap_or_else(|| panic!("no = in {tok:?}"));
        assert!(
            !label.is_empty() && !label.contains('\''),
            "label {label:?}"
        );
        let parts: Vec<&str> = rest.split(';').collect();
        assert!(parts.len() <= 5, "{tok}");
        let v = parts[0];
        let num_end = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(v.len());
        let (num, uom) = v.split_at(num_end);
        let value: f64 = num.parse().unwrap_or_else(|_| panic!("value of {tok}"));
        assert!(
            ["", "s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"].contains(&uom),
            "UOM {uom:?} in {tok}"
        );
        for (i, p) in parts.iter().enumerate().skip(1) {
            let ok = if i <= 2 { range(p) } else { number(p) };
            assert!(ok, "field {i} of {tok}");
        }
        out.push((label.to_string(), value));
    }
    out
}

fn perf_value(output: &str, label: &str) -> f64 {
    perfdata(output)
        .into_iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no perfdata {label} in {output}"))
        .1
}

fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

#[test]
fn sensu_check_and_influxdb_push_against_real_etcd_and_influxdb() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = Cluster::start(&dir.join("etcd"), &["cp-1", "cp-2", "cp-3"], None);
    let influx = Influx::start(&dir.join("influxdb"), true);
    influx.query("CREATE DATABASE vigil", None);
    influx.query("CREATE DATABASE telegraf", None);
    influx.query("CREATE USER vigil WITH PASSWORD 'w r1te,pw'", None);
    influx.query("GRANT WRITE ON vigil TO vigil", None);
    let pw = secret_file(dir, "influx-password", "w r1te,pw");
    let wrong = secret_file(dir, "influx-wrong", "not-the-password");
    let alerts = dir.join("alerts.jsonl");
    let textfile = dir.join("textfile");
    let lines = dir.join("line-protocol");
    std::fs::create_dir_all(&textfile).unwrap();
    std::fs::create_dir_all(&lines).unwrap();
    let extra = |pwfile: &Path| {
        format!(
            r#"{}
[health]
timeout = "5s"

[metrics]
textfile_dir = "{}"
line_protocol_dir = "{}"

[metrics.influxdb]
url = "{}"
database = "vigil"
username = "vigil"
password_file = "{}"
timeout = "3s"
"#,
            base_extra(&alerts),
            textfile.display(),
            lines.display(),
            influx.url(),
            pwfile.display()
        )
    };
    let cfg = config(dir, c.config_members(), &extra(&pw));
    let o = vigil_tests::vigil("vigil-health", &cfg, &["check-config"]);
    assert!(o.status.success(), "{}", vigil_tests::text(&o));
    // A verified archive per member (freshness passes), and the snapshot
    // job's metrics in InfluxDB too: one publish path for every job.
    let o = vigil_tests::vigil("vigil-snapshot", &cfg, &["run"]);
    assert!(o.status.success(), "{}", vigil_tests::text(&o));

    // Healthy: OK, exit 0, the documented first line, perfdata that parses,
    // within the documented check timeout.
    let (args, check_timeout) = readme_check();
    assert_eq!(args, ["run", "--format", "sensu", "--no-alert"]);
    let r = sensu_check(&cfg, check_timeout);
    assert_eq!(r.status, 0, "{}\n{}", r.output, r.stderr);
    let first = r.output.lines().next().unwrap();
    assert!(
        first.starts_with("VIGIL HEALTH OK: all ")
            && first.contains(" checks passed; cluster prod: ")
            && first.ends_with(" ok, 0 failed, 0 unknown"),
        "{first}"
    );
    for m in ["cp-1", "cp-2", "cp-3"] {
        assert_eq!(perf_value(&r.output, &format!("etcd.reachable:{m}")), 0.0);
    }
    assert_eq!(perf_value(&r.output, "critical"), 0.0);
    assert!(!r.stderr.contains("not pushed"), "{}", r.stderr);

    // Read back what was written.
    let rows = influx.series(
        "SELECT last(value) FROM vigil_check_state WHERE \"check\" = 'etcd.reachable' \
         AND state = 'pass' AND cluster = 'prod' GROUP BY subject",
        "vigil",
    );
    let mut subjects: Vec<_> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["last"], 1.0, "{r}");
            r["subject"].as_str().unwrap().to_string()
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["cp-1", "cp-2", "cp-3"]);
    let rows = influx.series(
        "SELECT last(value) FROM vigil_check_state WHERE state = 'fail' AND subject =~ /^cp-/ \
         GROUP BY \"check\", subject",
        "vigil",
    );
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["last"] == 0.0),
        "{rows:?}"
    );
    let rows = influx.series(
        "SELECT last(value) FROM vigil_snapshot_member_success GROUP BY member",
        "vigil",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["last"] == 1.0), "{rows:?}");
    let rows = influx.series(
        "SELECT last(value) FROM vigil_health_round_duration_seconds WHERE cluster = 'prod'",
        "vigil",
    );
    assert!(rows[0]["last"].as_f64().unwrap() > 0.0, "{rows:?}");

    // Every query of the InfluxDB dashboard runs on this InfluxDB, and the
    // ones over health and snapshot data find it.
    for (title, q) in dashboard_queries() {
        let q = q
            .replace("$cluster", "prod")
            .replace("$timeFilter", "time > now() - 1h")
            .replace("$__interval", "1m");
        let v = influx.query(&q, Some("vigil"));
        assert!(v["results"][0]["error"].is_null(), "{title}: {q}: {v}");
        if q.contains("vigil_snapshot_member_") || q.contains("vigil_health_") {
            assert!(
                v["results"][0]["series"].is_array(),
                "{title}: no data: {q}: {v}"
            );
        }
    }

    // The Telegraf file: the same points, and InfluxDB itself accepts it.
    let file = lines.join("vigil_health_prod.influx");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let body = std::fs::read_to_string(&file).unwrap();
    assert!(body.lines().all(|l| l.starts_with("vigil_")), "{body}");
    let o = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "-u",
            "admin:adminpw",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(format!("{}/write?db=telegraf&precision=ns", influx.url()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", vigil_tests::text(&o));
    let n = influx.series(
        "SELECT count(value) FROM vigil_check_state WHERE subject = 'cp-2'",
        "telegraf",
    );
    assert!(n[0]["count"].as_f64().unwrap() >= 4.0, "{n:?}");

    // A wrong password: a warning naming the URL, the check's state unchanged.
    let bad = config(dir, c.config_members(), &extra(&wrong));
    let r = sensu_check(&bad, Duration::from_secs(60));
    assert_eq!(r.status, 0, "{}\n{}", r.output, r.stderr);
    assert!(
        r.stderr.contains("metrics not pushed")
            && r.stderr.contains(&format!("{}/write", influx.url()))
            && r.stderr.contains("401"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not-the-password") && !r.output.contains("not-the-password"));

    // A member down: CRITICAL (exit 2) naming it, its perfdata 2.
    let cfg = config(dir, c.config_members(), &extra(&pw));
    c.kill(2);
    let r = sensu_check(&cfg, check_timeout);
    assert_eq!(r.status, 2, "{}\n{}", r.output, r.stderr);
    assert!(
        r.output.starts_with("VIGIL HEALTH CRITICAL: "),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("\nFAIL critical etcd.reachable cp-3: "),
        "{}",
        r.output
    );
    assert_eq!(perf_value(&r.output, "etcd.reachable:cp-3"), 2.0);
    assert!(perf_value(&r.output, "critical") >= 1.0);
    let rows = influx.series(
        "SELECT last(value) FROM vigil_check_state WHERE \"check\" = 'etcd.reachable' \
         AND subject = 'cp-3' AND state = 'fail'",
        "vigil",
    );
    assert_eq!(rows[0]["last"], 1.0, "{rows:?}");

    // vigil-notify's own counters reach InfluxDB and the Telegraf file too:
    // the member-down alert (it fires on the third failed round), delivered.
    for _ in 0..3 {
        let o = vigil_tests::vigil("vigil-health", &cfg, &["run"]);
        assert_eq!(o.status.code(), Some(1), "{}", vigil_tests::text(&o));
    }
    let o = vigil_tests::notify_once(&cfg);
    assert!(
        !vigil_tests::text(&o).contains("not pushed"),
        "{}",
        vigil_tests::text(&o)
    );
    assert!(
        std::fs::read_to_string(&alerts)
            .unwrap()
            .contains("etcd_member_down"),
        "not delivered"
    );
    for (metric, want) in [
        ("vigil_notify_messages_sent_total", 1.0),
        ("vigil_notify_deliveries_total", 1.0),
    ] {
        let rows = influx.series(
            &format!(
                "SELECT last(value) FROM {metric} WHERE channel = 'file' AND cluster = 'prod'"
            ),
            "vigil",
        );
        assert!(
            rows[0]["last"].as_f64().unwrap() >= want,
            "{metric}: {rows:?}"
        );
    }
    let rows = influx.series(
        "SELECT last(value) FROM vigil_notify_outbox_pending WHERE channel = 'file'",
        "vigil",
    );
    assert_eq!(rows[0]["last"], 0.0, "{rows:?}");
    let file = std::fs::read_to_string(lines.join("vigil_notify_prod.influx")).unwrap();
    assert!(
        file.lines()
            .any(|l| l
                .starts_with("vigil_notify_messages_sent_total,channel=file,cluster=prod value=")),
        "{file}"
    );

    // The dashboard's vigil-notify panels find that data.
    for (title, q) in dashboard_queries()
        .into_iter()
        .filter(|(_, q)| q.contains("vigil_notify_outbox_pending"))
    {
        let q = q
            .replace("$cluster", "prod")
            .replace("$timeFilter", "time > now() - 1h")
            .replace("$__interval", "1m");
        let v = influx.query(&q, Some("vigil"));
        assert!(
            v["results"][0]["series"].is_array(),
            "{title}: no data: {q}: {v}"
        );
    }

    // A config it cannot use: UNKNOWN (3), not CRITICAL.
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&cfg).unwrap() + "\n[bogus]\nx = 1\n",
    )
    .unwrap();
    let r = sensu_check(&broken, Duration::from_secs(30));
    assert_eq!(r.status, 3, "{}\n{}", r.output, r.stderr);
    assert!(
        r.output.starts_with("VIGIL HEALTH UNKNOWN: cannot run: "),
        "{}",
        r.output
    );
    assert_eq!(r.output.lines().count(), 1);
}

/// InfluxDB 2.x is not packaged in Debian 12: its write API is checked
/// against a loopback HTTP receiver (path, query, token header, body).
#[test]
fn influxdb_v2_write_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut rd = BufReader::new(s.try_clone().unwrap());
            while let Some(req) = vigil_tests::http::read_request(&mut rd) {
                let _ = vigil_tests::http::write_response(&mut s, 204, "text/plain", &[], b"");
                let _ = tx.send(req);
            }
        }
    });
    let token = secret_file(dir, "influx-token", "s3cr3t-token==");
    let alerts = dir.join("alerts.jsonl");
    let extra = format!(
        r#"{}
[metrics]
textfile = false

[metrics.influxdb]
url = "http://127.0.0.1:{port}/influx/"
org = "ops team"
bucket = "vigil"
token_file = "{}"
"#,
        base_extra(&alerts),
        token.display()
    );
    let cfg = config(dir, dead_member(), &extra);
    let r = sensu_check(&cfg, Duration::from_secs(60));
    // The member is down; the metrics go out all the same.
    assert_eq!(r.status, 2, "{}\n{}", r.output, r.stderr);
    let req = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.path,
        "/influx/api/v2/write?org=ops+team&bucket=vigil&precision=ns"
    );
    assert_eq!(req.headers["authorization"], "Token s3cr3t-token==");
    let body = String::from_utf8(req.body).unwrap();
    let line = body
        .lines()
        .find(|l| l.contains("check=etcd.reachable") && l.contains("state=fail"))
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        line.starts_with(
            "vigil_check_state,check=etcd.reachable,cluster=prod,state=fail,subject=cp-1,"
        ) && line.contains("=health value=1 "),
        "{line}"
    );
    let ts: i128 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ts > 1_600_000_000_000_000_000, "nanoseconds: {ts}");
    assert!(!r.stderr.contains("s3cr3t") && !r.output.contains("s3cr3t"));
}

/// (panel title, InfluxQL) of every panel of the InfluxDB dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dash: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join("config/grafana-dashboard-influxdb.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap().to_string(),
                t["query"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// Every measurement the InfluxDB dashboard queries is one vigil writes (a
/// metric name in the code), so the two cannot drift apart.
#[test]
fn influxdb_dashboard_names_what_vigil_writes() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dash: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join("config/grafana-dashboard-influxdb.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dash["uid"], "vigil-influxdb");
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(
        |v| v["name"] == "cluster" && v["query"].as_str().unwrap().contains("SHOW TAG VALUES")
    ));
    let mut source = String::new();
    let mut stack = vec![repo.join("crates")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                source.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut measurements = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let q = t["query"].as_str().unwrap();
            assert_eq!(t["rawQuery"], true, "{q}");
            assert!(q.contains("$cluster") && q.contains("$timeFilter"), "{q}");
            let (_, from) = q
                .split_once("FROM \"")
                .unwrap_or_else(|| panic!("no FROM \"measurement\" in {q}"));
            let m = from.split('"').next().unwrap().to_string();
            assert!(
                source.contains(&format!("\"{m}\"")),
                "the dashboard queries {m}, which vigil does not write"
            );
            measurements.push(m);
        }
    }
    for m in [
        "vigil_snapshot_member_last_success_timestamp_seconds",
        "vigil_snapshot_member_archive_bytes",
        "vigil_snapshot_sink_last_success_timestamp_seconds",
        "vigil_drill_rto_seconds",
        "vigil_check_state",
        "vigil_quota_used_ratio",
    ] {
        assert!(measurements.iter().any(|x| x == m), "no panel for {m}");
    }
}

//! vigil-quota against a real CephFS (one cluster for the whole binary):
//! subvolumes with and without quotas, ~85 % and ~95 % full, written until
//! Ceph refuses (EDQUOT), group quotas, a snapshot-retained subvolume, both
//! backends agreeing, alerts firing and resolving through a file channel,
//! and Ceph stopped giving UNKNOWN.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vigil_tests::cephfs::{write_file, CephFs, MIB};

fn config(dir: &Path, fs: &CephFs, backend: &str, alerts: &Path, name: &str) -> PathBuf {
    let mut b = vigil_tests::ConfigBuilder::new(
        dir,
        vec![("cp-1".into(), "http://127.0.0.1:1".into())],
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    );
    let mut rules = String::new();
    for a in [
        "quota_usage_warning",
        "quota_usage_critical",
        "quota_unlimited",
        "quota_check_unknown",
        "quota_forecast",
    ] {
        rules.push_str(&format!(
            "\n[[alert.rule]]\nalert = \"{a}\"\nfailure_threshold = 1\nsuccess_threshold = 1\n"
        ));
    }
    let textfile = dir.join("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    b.extra = format!(
        r#"
[[alert.channel]]
name = "file"
kind = "file"
path = "{alerts}"
{rules}
[metrics]
textfile_dir = "{textfile}"

[quota]
backend = "{backend}"
timeout = "20s"
forecast_window = "6h"

[quota.ceph]
conf = "{conf}"
keyring = "{keyring}"
client_id = "admin"
connect_timeout = "3s"

[quota.xattr]
mounts = {{ vol1 = "{mnt}" }}

[[quota.rule]]
group = "small"
flag_unlimited = false
"#,
        alerts = alerts.display(),
        conf = fs.conf.display(),
        keyring = fs.keyring.display(),
        mnt = fs.mnt.display(),
        textfile = textfile.display(),
    );
    b.write(name)
}

/// `vigil-quota run --json`: exit code and the report.
fn run(cfg: &Path) -> (i32, Value) {
    let o = vigil_tests::vigil("vigil-quota", cfg, &["run", "--json"]);
    let code = o.status.code().unwrap_or(-1);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("no JSON from vigil-quota ({e}): {}", vigil_tests::text(&o)));
    (code, v)
}

fn row<'a>(rep: &'a Value, group: &str, sub: Option<&str>) -> &'a Value {
    rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == group && r["subvolume"].as_str() == sub)
        .unwrap_or_else(|| panic!("no row {group}/{sub:?} in {rep:#}"))
}

fn pct(rep: &Value, group: &str, sub: Option<&str>) -> f64 {
    row(rep, group, sub)["percentage"].as_f64().unwrap_or(-1.0)
}

/// Runs until `done(report)` holds; usage figures lag by ~10 s.
fn poll(cfg: &Path, what: &str, done: impl Fn(&Value) -> bool) -> (i32, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, rep) = run(cfg);
        if done(&rep) {
            return (code, rep);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {rep:#}"
        );
        std::thread::sleep(Duration::from_millis(1500));
    }
}

/// (event, alert name, labels) of every item the file channel received.
fn alert_items(path: &Path) -> Vec<(String, String, Value)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| v["items"].as_array().cloned().unwrap_or_default())
        .map(|i| {
            (
                i["event"].as_str().unwrap_or("").to_string(),
                i["alert"]["name"].as_str().unwrap_or("").to_string(),
                i["alert"]["labels"].clone(),
            )
        })
        .collect()
}

fn has(path: &Path, event: &str, name: &str, group: &str, sub: Option<&str>) -> bool {
    alert_items(path).iter().any(|(e, n, l)| {
        e == event && n == name && l["group"] == group && l["subvolume"].as_str() == sub
    })
}

/// The figures both backends must agree on.
fn figures(rep: &Value) -> Vec<(String, String, Value, Value, Value, String)> {
    let mut v: Vec<_> = rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap().to_string(),
                r["subvolume"].as_str().unwrap_or("").to_string(),
                r["used"].clone(),
                r["quota"].clone(),
                r["percentage"].clone(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

#[test]
fn quota_against_real_cephfs() {
    if !vigil_tests::is_root() {
        eprintln!("skipped: the CephFS harness needs root (ceph-fuse)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fs = CephFs::start(&dir.join("ceph"));
    let started = Instant::now();

    // Groups and subvolumes: with and without quotas, `_nogroup`, and one
    // snapshot-retained.
    fs.create_group("tenants", Some(200 * MIB));
    fs.create_group("small", Some(10 * MIB));
    let a = fs.create_subvolume("a", Some("tenants"), Some(20 * MIB));
    let b = fs.create_subvolume("b", Some("tenants"), Some(20 * MIB));
    let c = fs.create_subvolume("c", Some("tenants"), Some(10 * MIB));
    let free = fs.create_subvolume("free", Some("tenants"), None);
    let plain = fs.create_subvolume("plain", None, Some(50 * MIB));
    let x = fs.create_subvolume("x", Some("small"), None);
    fs.create_subvolume("ret", Some("tenants"), Some(MIB));
    fs.ceph_ok(&[
        "fs",
        "subvolume",
        "snapshot",
        "create",
        "vol1",
        "ret",
        "s1",
        "--group_name",
        "tenants",
    ]);
    fs.ceph_ok(&[
        "fs",
        "subvolume",
        "rm",
        "vol1",
        "ret",
        "--group_name",
        "tenants",
        "--retain-snapshots",
    ]);

    write_file(&a.join("data"), 17 * MIB).unwrap(); // 85 %
    write_file(&b.join("data"), 19 * MIB).unwrap(); // 95 %
    write_file(&free.join("data"), 3 * MIB).unwrap(); // no quota
    write_file(&plain.join("data"), MIB).unwrap(); // 2 %
    write_file(&x.join("data"), 9 * MIB + MIB / 2).unwrap(); // group "small" at 95 %
                                                             // Write until CephFS refuses: the client enforces the quota (EDQUOT).
    let mut refused = None;
    for i in 0..10 {
        if let Err(e) = write_file(&c.join(format!("fill{i}")), 4 * MIB) {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("writing 40 MiB into a 10 MiB subvolume was never refused");
    assert_eq!(
        refused.raw_os_error(),
        Some(122),
        "expected EDQUOT: {refused}"
    );
    eprintln!(
        "writes refused as expected: {refused} (after {:.1}s)",
        started.elapsed().as_secs_f64()
    );

    let alerts = dir.join("alerts.jsonl");
    let cfg = config(dir, &fs, "ceph", &alerts, "ceph.toml");
    let cfg_x = config(dir, &fs, "xattr", &alerts, "xattr.toml");

    let o = vigil_tests::vigil("vigil-quota", &cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(vigil_tests::text(&o).contains("quota: backend ceph"));

    // The ceph backend sees the figures once the rstats have propagated.
    let (code, rep) = poll(&cfg, "usage to settle", |r| {
        r["errors"].as_array().is_some_and(|e| e.is_empty())
            && pct(r, "tenants", Some("a")) >= 84.0
            && pct(r, "tenants", Some("b")) >= 94.0
            && pct(r, "tenants", Some("c")) >= 90.0
            && pct(r, "small", None) >= 90.0
    });
    assert_eq!(code, 1, "thresholds crossed: exit 1");
    let st = |g: &str, s: Option<&str>| row(&rep, g, s)["status"].as_str().unwrap().to_string();
    assert_eq!(st("tenants", Some("a")), "warning");
    assert!(pct(&rep, "tenants", Some("a")) < 90.0);
    assert_eq!(st("tenants", Some("b")), "critical");
    assert!(["critical", "over-quota"].contains(&st("tenants", Some("c")).as_str()));
    assert_eq!(st("tenants", Some("free")), "unlimited");
    assert_eq!(row(&rep, "tenants", Some("free"))["quota"], Value::Null);
    assert_eq!(st("_nogroup", Some("plain")), "ok");
    assert_eq!(st("tenants", None), "ok");
    assert_eq!(st("small", None), "critical");
    assert_eq!(
        st("small", Some("x")),
        "no-quota",
        "flag_unlimited = false by rule"
    );
    let ret = row(&rep, "tenants", Some("ret"));
    assert_eq!(
        (ret["state"].as_str(), &ret["used"]),
        (Some("snapshot-retained"), &Value::Null)
    );
    assert_eq!(row(&rep, "tenants", Some("b"))["quota"], 20 * MIB);

    // The xattr backend gives the same figures (poll: both read lagging rstats).
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (_, c1) = run(&cfg);
        let (cx, x1) = run(&cfg_x);
        assert_eq!(x1["backend"], "xattr");
        if figures(&c1) == figures(&x1) {
            assert_eq!(cx, 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backends disagree:\nceph  {:?}\nxattr {:?}",
            figures(&c1),
            figures(&x1)
        );
        std::thread::sleep(Duration::from_millis(1000));
    }

    // The table for people.
    let o = vigil_tests::vigil("vigil-quota", &cfg, &["run"]);
    let t = vigil_tests::text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        t.contains("VOLUME") && t.contains("unlimited") && t.contains("snapshot-retained"),
        "{t}"
    );
    // Textfile metrics: used bytes and the ratio per subvolume.
    let prom = std::fs::read_to_string(dir.join("textfile/vigil_quota_prod.prom")).unwrap();
    assert!(
        prom.contains("vigil_quota_used_ratio{")
            && prom.contains("vigil_quota_check_ok{cluster=\"prod\"} 1"),
        "{prom}"
    );

    // Alerts fired, through the file channel: the runs queued them,
    // vigil-notify delivers.
    assert!(
        alert_items(&alerts).is_empty(),
        "the job delivered by itself"
    );
    vigil_tests::notify_once(&cfg);
    assert!(has(
        &alerts,
        "firing",
        "quota_usage_warning",
        "tenants",
        Some("a")
    ));
    assert!(!has(
        &alerts,
        "firing",
        "quota_usage_critical",
        "tenants",
        Some("a")
    ));
    assert!(has(
        &alerts,
        "firing",
        "quota_usage_critical",
        "tenants",
        Some("b")
    ));
    assert!(has(
        &alerts,
        "firing",
        "quota_usage_critical",
        "tenants",
        Some("c")
    ));
    assert!(has(
        &alerts,
        "firing",
        "quota_usage_critical",
        "small",
        None
    ));
    assert!(has(
        &alerts,
        "firing",
        "quota_unlimited",
        "tenants",
        Some("free")
    ));
    assert!(!has(
        &alerts,
        "firing",
        "quota_unlimited",
        "small",
        Some("x")
    ));
    assert!(!has(
        &alerts,
        "firing",
        "quota_usage_warning",
        "_nogroup",
        Some("plain")
    ));

    // Several runs so far, but within seconds: less than forecast_min_span
    // (1h), so no forecast yet.
    let (_, rep) = run(&cfg);
    let a = row(&rep, "tenants", Some("a"));
    assert!(a["forecast"].is_null(), "{a}");
    vigil_tests::notify_once(&cfg);
    assert!(!has(
        &alerts,
        "firing",
        "quota_forecast",
        "tenants",
        Some("a")
    ));
    // Three hours of history growing towards the quota (an eighth of the
    // room left per hour): full in about 8 hours, so quota_forecast fires
    // for that subvolume only.
    let (used, quota) = (a["used"].as_u64().unwrap(), a["quota"].as_u64().unwrap());
    let step = (quota - used) / 8;
    let db = rusqlite::Connection::open(dir.join("state/quota.db")).unwrap();
    // Only this history: the first runs may have seen the data before rstats caught up.
    db.execute(
        "DELETE FROM samples WHERE grp = 'tenants' AND subvolume = 'a'",
        [],
    )
    .unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for h in 1..=3u64 {
        db.execute(
            "INSERT INTO samples (volume, grp, subvolume, ts_ms, used, quota) VALUES ('vol1', 'tenants', 'a', ?1, ?2, ?3)",
            rusqlite::params![
                now_ms - (h * 3_600_000) as i64,
                used.saturating_sub(h * step) as i64,
                quota as i64
            ],
        )
        .unwrap();
    }
    drop(db);
    let (_, rep) = run(&cfg);
    let f = &row(&rep, "tenants", Some("a"))["forecast"];
    assert_eq!(f["samples"].as_u64().unwrap(), 4, "{f}"); // 3 seeded + this run
    assert!(f["bytes_per_day"].as_f64().unwrap() > 0.0, "{f}");
    let days = f["days_to_full"].as_f64().unwrap();
    assert!(days > 0.0 && days < 1.0, "{f}");
    vigil_tests::notify_once(&cfg);
    assert!(has(
        &alerts,
        "firing",
        "quota_forecast",
        "tenants",
        Some("a")
    ));
    assert!(!has(
        &alerts,
        "firing",
        "quota_forecast",
        "_nogroup",
        Some("plain")
    ));

    // Free space: the alerts resolve.
    std::fs::remove_file(b.join("data")).unwrap();
    for i in 0..10 {
        let _ = std::fs::remove_file(c.join(format!("fill{i}")));
    }
    let (_, rep) = poll(&cfg, "space to be freed", |r| {
        pct(r, "tenants", Some("b")) < 10.0 && pct(r, "tenants", Some("c")) < 10.0
    });
    assert_eq!(row(&rep, "tenants", Some("b"))["status"], "ok");
    vigil_tests::notify_once(&cfg);
    assert!(has(
        &alerts,
        "resolved",
        "quota_usage_critical",
        "tenants",
        Some("b")
    ));
    assert!(has(
        &alerts,
        "resolved",
        "quota_usage_warning",
        "tenants",
        Some("b")
    ));
    assert!(has(
        &alerts,
        "resolved",
        "quota_usage_critical",
        "tenants",
        Some("c")
    ));
    assert!(!has(
        &alerts,
        "resolved",
        "quota_usage_warning",
        "tenants",
        Some("a")
    ));
    // A deleted subvolume's alerts resolve too.
    fs.ceph_ok(&[
        "fs",
        "subvolume",
        "rm",
        "vol1",
        "free",
        "--group_name",
        "tenants",
    ]);
    poll(&cfg, "the deleted subvolume to go", |r| {
        !r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["subvolume"] == "free")
    });
    vigil_tests::notify_once(&cfg);
    assert!(has(
        &alerts,
        "resolved",
        "quota_unlimited",
        "tenants",
        Some("free")
    ));
    eprintln!(
        "alerts fired and resolved after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Ceph stopped: UNKNOWN, never OK, from both backends.
    fs.kill_daemons();
    for c in [&cfg, &cfg_x] {
        let t0 = Instant::now();
        let (code, rep) = run(c);
        assert_eq!(code, 1, "{rep:#}");
        assert_eq!(rep["ok"], false);
        assert!(rep["rows"].as_array().unwrap().is_empty(), "{rep:#}");
        assert!(!rep["errors"].as_array().unwrap().is_empty());
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "bounded: {:?}",
            t0.elapsed()
        );
    }
    vigil_tests::notify_once(&cfg);
    let unknown: Vec<_> = alert_items(&alerts)
        .into_iter()
        .filter(|(e, n, _)| e == "firing" && n == "quota_check_unknown")
        .collect();
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    // "Could not check" resolved nothing.
    assert!(!has(
        &alerts,
        "resolved",
        "quota_usage_warning",
        "tenants",
        Some("a")
    ));
    let o = vigil_tests::vigil("vigil-quota", &cfg, &["run"]);
    assert!(vigil_tests::text(&o).contains("UNKNOWN"));
    eprintln!("done after {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn config_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = vigil_tests::ConfigBuilder::new(
        tmp.path(),
        vec![("cp-1".into(), "http://127.0.0.1:1".into())],
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    );
    b.extra = "\n[quota]\nwarn_percent = 95\ncritical_percent = 90\n".into();
    let cfg = b.write("bad.toml");
    let o = vigil_tests::vigil("vigil-quota", &cfg, &["run"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(vigil_tests::text(&o).contains("quota.warn_percent"));
    let o = vigil_tests::vigil("vigil-quota", &cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(2));

    b.extra = "\n[quota]\nforecast_window = \"2h\"\nforecast_min_span = \"3h\"\n".into();
    let cfg = b.write("span.toml");
    let o = vigil_tests::vigil("vigil-quota", &cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(2));
    let t = vigil_tests::text(&o);
    assert!(
        t.contains("quota.forecast_min_span") && t.contains("span.toml"),
        "{t}"
    );
}

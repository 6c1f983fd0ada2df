//! #18 point 1: `vigil status` answers "are we safe?" from state alone,
//! against a real 3-member cluster and a `dir` sink: nothing before the
//! first run (critical), all fine after it (OK), a dead member (its row
//! warns, its alert fires), stale archives (critical), and the whole
//! cluster down (the status still answers, the same as before).
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::Path;
use vigil_tests::etcd::Cluster;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

fn status(cfg: &Path) -> (i32, Value, String) {
    let out = vigil("vigil", cfg, &["status", "--json"]);
    let code = out.status.code().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("vigil status --json: {e}: {}", text(&out)));
    let human = vigil("vigil", cfg, &["status"]);
    assert_eq!(human.status.code(), Some(code), "{}", text(&human));
    (code, v, String::from_utf8_lossy(&human.stdout).into_owned())
}

fn row<'a>(v: &'a Value, table: &str, key: &str, name: &str) -> &'a Value {
    v["clusters"][0][table]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == name)
        .unwrap_or_else(|| panic!("no {table} row {name} in {v:#}"))
}

#[test]
fn status_from_state_alone_through_a_dead_member_stale_archives_and_a_dead_cluster() {
    let t = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(t.path(), &NAMES, None);
    cluster.put_many("/registry/configmaps/default/", 20, 100, false, 1);
    let key = age_key(t.path());
    let tape = t.path().join("tape");
    std::fs::create_dir(&tape).unwrap();
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.extra_snapshot = "\n[snapshot.prove_restore]\nenabled = false\n".into();
    cb.extra = format!(
        "\n[[sink]]\nname = \"tape\"\nkind = \"dir\"\npath = \"{}\"\n{}",
        tape.display(),
        vigil_tests::faults::file_channel(&t.path().join("alerts.jsonl"))
    );
    let cfg = cb.write("vigil.toml");

    // Before the first run: no archive anywhere is critical, and says what to do.
    let (code, v, human) = status(&cfg);
    assert_eq!((code, v["level"].as_str()), (2, Some("critical")), "{v:#}");
    let m = row(&v, "members", "member", "cp-1");
    assert!(m["archive"].is_null(), "{m}");
    assert!(
        m["note"].as_str().unwrap().contains("vigil-snapshot run"),
        "{m}"
    );
    assert!(human.contains("CRITICAL"), "{human}");
    assert!(
        !t.path().join("state/alerts.db").exists(),
        "status created state"
    );

    // One good run: every member fresh, the sink holds the newest archive.
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (code, v, human) = status(&cfg);
    assert_eq!(code, 0, "{v:#}\n{human}");
    assert_eq!(v["clusters"][0]["problems"], serde_json::json!([]), "{v:#}");
    for n in NAMES {
        let m = row(&v, "members", "member", n);
        let archive = m["archive"].as_str().unwrap();
        assert!(archive.starts_with(&format!("prod-{n}-")), "{m}");
        assert!(m["age_seconds"].as_i64().unwrap() < 300, "{m}");
        assert!(m["archive_bytes"].as_u64().unwrap() > 0, "{m}");
        assert_eq!(m["last_run"]["ok"], true, "{m}");
        assert!(human.contains(archive), "{human}");
    }
    let s = row(&v, "sinks", "sink", "tape");
    assert_eq!(
        (s["level"].as_str(), s["kind"].as_str()),
        (Some("ok"), Some("dir")),
        "{s}"
    );
    assert_eq!(s["behind_seconds"], 0, "{s}");
    let newest = s["newest_copy"].as_str().unwrap();
    assert!(
        NAMES
            .iter()
            .any(|n| row(&v, "members", "member", n)["archive"] == newest),
        "{s}"
    );
    assert!(human.contains("OK: every member"), "{human}");
    // This host runs no systemd: the timers say so instead of failing.
    if !Path::new("/run/systemd/system").is_dir() {
        assert!(v["clusters"][0]["timers_note"].is_string(), "{v:#}");
        assert!(human.contains("timers: not shown"), "{human}");
    }

    // cp-3 dies: its archive is still fresh (warning), its alert fires.
    cluster.kill(2);
    let out = vigil("vigil-snapshot", &cfg, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (code, v, human) = status(&cfg);
    let m3 = row(&v, "members", "member", "cp-3");
    assert_eq!(m3["level"], "warning", "{m3}");
    assert_eq!(m3["last_run"]["ok"], false, "{m3}");
    assert!(
        m3["note"].as_str().unwrap().contains("last run failed"),
        "{m3}"
    );
    assert_eq!(row(&v, "members", "member", "cp-1")["level"], "ok");
    let firing = v["clusters"][0]["alerts"]["firing"].as_array().unwrap();
    let expected = if firing.is_empty() { 1 } else { 2 };
    if let Some(a) = firing.first() {
        assert!(a["key"].as_str().unwrap().contains("cp-3"), "{v:#}");
        assert!(human.contains("firing"), "{human}");
    }
    assert_eq!(code, expected, "{v:#}");
    assert!(
        v["clusters"][0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("cp-3"),
        "{v:#}"
    );

    // The whole cluster is gone: the status needs none of it.
    cluster.kill(0);
    cluster.kill(1);
    let (code2, v2, _) = status(&cfg);
    let seen = std::time::Instant::now();
    assert_eq!(code2, code, "{v2:#}");
    assert_eq!(
        row(&v2, "members", "member", "cp-1")["archive"],
        row(&v, "members", "member", "cp-1")["archive"]
    );

    // Archives older than [health.freshness] max_age: critical, named.
    cb.extra
        .push_str("\n[health.freshness]\nmax_age = \"1m\"\n");
    let stale = cb.write("stale.toml");
    // 1m is the smallest max_age vigil takes: wait until the newest archive
    // (by the age status gave) is older.
    let newest = v2["clusters"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["age_seconds"].as_u64())
        .min()
        .unwrap();
    std::thread::sleep(
        std::time::Duration::from_secs(62u64.saturating_sub(newest)).saturating_sub(seen.elapsed()),
    );
    let (code, v, _) = status(&stale);
    assert_eq!(code, 2, "{v:#}");
    let m = row(&v, "members", "member", "cp-1");
    assert_eq!(m["level"], "critical", "{m}");
    assert!(m["note"].as_str().unwrap().contains("older than"), "{m}");
    assert_eq!(row(&v, "sinks", "sink", "tape")["level"], "critical");

    // Two configs: one document, the worst level.
    let out = vigil(
        "vigil",
        &cfg,
        &[
            "status",
            "--json",
            cfg.to_str().unwrap(),
            stale.to_str().unwrap(),
        ],
    );
    let both: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(both["clusters"].as_array().unwrap().len(), 2);
    assert_eq!(
        (out.status.code(), both["level"].as_str()),
        (Some(2), Some("critical"))
    );

    // A config that does not parse: exit 2 and the file named.
    let bad = t.path().join("bad.toml");
    std::fs::write(&bad, "[cluster\n").unwrap();
    let out = vigil("vigil", &bad, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("bad.toml"), "{}", text(&out));
}

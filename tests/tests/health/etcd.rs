//! vigil-health against real etcd: a healthy round over three members, the
//! API and three node_exporters; a killed member that FAILs by name, fires
//! after the threshold and resolves after a restart; a real NOSPACE alarm.
#![allow(clippy::unwrap_used)]

use vigil_tests::etcd::Cluster;
use vigil_tests::health::report::*;
use vigil_tests::health::{node_exporter, Mode, Readyz};

#[test]
fn member_down_fires_after_threshold_and_resolves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = Cluster::start(&dir.join("etcd"), &["cp-1", "cp-2", "cp-3"], None);
    let ports: Vec<u16> = (0..3).map(|_| vigil_tests::free_port()).collect();
    let _exporters: Vec<_> = ports.iter().map(|p| node_exporter(*p)).collect();
    let api = Readyz::start(Mode::Ok, None);
    let masters: Vec<Readyz> = (0..3).map(|_| Readyz::start(Mode::Ok, None)).collect();
    let alerts = dir.join("alerts.jsonl");
    let targets: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{{ name = \"cp-{}\", url = \"http://127.0.0.1:{p}\" }}",
                i + 1
            )
        })
        .collect();
    let extra = format!(
        r#"{}
[health]
timeout = "5s"

[health.kubernetes]
lb = "{api}"
masters = ["{}", "{}", "{}"]

[health.node]
targets = [{targets}]
# The test machine's own numbers must not decide this test.
fs_free_warn_percent = 0.0
fs_free_critical_percent = 0.0
mem_available_warn_percent = 0.0
mem_available_critical_percent = 0.0
load_per_core_warn = 1000.0
load_per_core_critical = 1000.0
"#,
        base_extra(&alerts),
        masters[0].url(),
        masters[1].url(),
        masters[2].url(),
        api = api.url(),
        targets = targets.join(", "),
    );
    let cfg = config(dir, c.config_members(), &extra);
    // Textfile metrics go to a private dir for this test.
    let textfile = dir.join("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    let mut cfg_text = std::fs::read_to_string(&cfg).unwrap();
    cfg_text.push_str(&format!(
        "\n[metrics]\ntextfile_dir = \"{}\"\n",
        textfile.display()
    ));
    std::fs::write(&cfg, cfg_text).unwrap();
    let o = vigil_tests::vigil("vigil-health", &cfg, &["check-config"]);
    assert!(o.status.success(), "{}", vigil_tests::text(&o));
    assert!(
        vigil_tests::text(&o).contains("node_exporter: 3"),
        "{}",
        vigil_tests::text(&o)
    );

    // A verified archive per member, so that the freshness check passes too.
    let o = vigil_tests::vigil("vigil-snapshot", &cfg, &["run"]);
    assert!(o.status.success(), "{}", vigil_tests::text(&o));

    // A healthy round: every check passes.
    let mut best = u64::MAX;
    let mut leader = String::new();
    for _ in 0..2 {
        let (code, r) = run_json(&cfg, &[]);
        let bad: Vec<_> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] != "PASS")
            .collect();
        assert!(bad.is_empty(), "not all PASS: {bad:#?}");
        assert_eq!(code, 0);
        for check in [
            "etcd.reachable",
            "etcd.leader",
            "etcd.raft_lag",
            "etcd.db_size",
            "etcd.fragmentation",
            "etcd.alarms",
            "etcd.learner",
        ] {
            assert_eq!(of_check(&r, check).len(), 3, "{check}");
        }
        assert_eq!(of_check(&r, "node.exporter").len(), 3);
        assert_eq!(of_check(&r, "kube.readyz").len(), 4);
        assert_eq!(of_check(&r, "freshness.archive").len(), 3);
        assert!(finding(&r, "etcd.db_size", "cp-1")["reason"]
            .as_str()
            .unwrap()
            .contains("does not report its quota"));
        best = best.min(r["duration_ms"].as_u64().unwrap());
        leader = finding(&r, "etcd.leader", "cp-1")["reason"]
            .as_str()
            .unwrap()
            .trim_start_matches("leader ")
            .to_string();
    }
    // Speed is measured in bench/, not asserted here.
    eprintln!("healthy round: {best} ms");
    let prom = std::fs::read_to_string(textfile.join("vigil_health_prod.prom")).unwrap();
    assert!(
        prom.contains(r#"check="etcd.reachable",subject="cp-2",state="pass"} 1"#),
        "{prom}"
    );

    // Kill a follower (killing the leader also stalls quorum reads on the
    // others for an election): every round FAILs naming it; the alert fires
    // on the third.
    let victim = (0..3).find(|i| c.members[*i].name != leader).unwrap();
    let (v, other) = (
        c.members[victim].name.clone(),
        c.members[(victim + 1) % 3].name.clone(),
    );
    c.kill(victim);
    for round in 1..=3 {
        let (code, r) = run_json(&cfg, &[]);
        assert_eq!(code, 1);
        let f = finding(&r, "etcd.reachable", &v);
        assert_eq!(f["status"], "FAIL");
        assert_eq!(f["alert"], format!("etcd_member_down{{member=\"{v}\"}}"));
        assert_eq!(status(&r, "etcd.reachable", &other), "PASS");
        // Its details are "could not check", explained by the FAIL: no extra alert.
        assert_eq!(
            finding(&r, "etcd.db_size", &v)["covered_by"],
            "etcd.reachable"
        );
        vigil_tests::notify_once(&cfg);
        let fired = count(
            &alerts,
            "firing",
            "etcd_member_down",
            ("member", v.as_str()),
        );
        assert_eq!(fired, usize::from(round == 3), "round {round}");
        if round < 3 {
            assert!(r["alerts"]["pending"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k.as_str().unwrap().contains(&v)));
        }
    }
    let o = run_text(&cfg);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.lines().any(|l| l.starts_with("FAIL")
            && l.contains("etcd.reachable")
            && l.contains(&format!("{v} (http://127.0.0.1:"))
            && l.ends_with("connection refused")),
        "{t}"
    );
    assert_eq!(o.status.code(), Some(1));
    vigil_tests::notify_once(&cfg);
    assert_eq!(
        count(
            &alerts,
            "firing",
            "etcd_member_down",
            ("member", v.as_str())
        ),
        1
    );
    assert_eq!(
        count(
            &alerts,
            "firing",
            "health_check_unknown",
            ("member", v.as_str())
        ),
        0
    );

    // Restart: it resolves after two good rounds, exactly once.
    c.restart(victim);
    for round in 1..=2 {
        let (_, r) = run_json(&cfg, &[]);
        assert_eq!(status(&r, "etcd.reachable", &v), "PASS");
        vigil_tests::notify_once(&cfg);
        let resolved = count(
            &alerts,
            "resolved",
            "etcd_member_down",
            ("member", v.as_str()),
        );
        assert_eq!(resolved, usize::from(round == 2), "round {round}");
    }
    assert_eq!(
        count(
            &alerts,
            "firing",
            "etcd_member_down",
            ("member", v.as_str())
        ),
        1
    );
    assert!(api
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.contains("/livez?verbose")));
}

#[test]
fn nospace_alarm_is_a_critical_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let quota = 2 << 20;
    let c = Cluster::start_with(
        &dir.join("etcd"),
        &["solo"],
        None,
        &["--quota-backend-bytes", &quota.to_string()],
    );
    // Fill it until etcd refuses: "mvcc: database space exceeded".
    let rt = Cluster::runtime();
    let err = rt.block_on(async {
        let mut cl = c.client(0).await;
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for i in 0..500 {
            let v: Vec<u8> = (0..64 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Err(e) = cl.put(format!("/fill/{i}"), v, None).await {
                return e.to_string();
            }
        }
        String::new()
    });
    assert!(
        err.contains("space"),
        "etcd never ran out of space: {err:?}"
    );
    let alerts = dir.join("alerts.jsonl");
    let extra = format!(
        "{}\n[health.etcd]\ndb_quota = \"2MiB\"\n",
        base_extra(&alerts)
    );
    let cfg = config(dir, c.config_members(), &extra);
    let (code, r) = run_json(&cfg, &["--no-alert"]);
    assert_eq!(code, 1);
    let a = finding(&r, "etcd.alarms", "solo");
    assert_eq!(
        (a["status"].as_str(), a["severity"].as_str()),
        (Some("FAIL"), Some("critical"))
    );
    assert!(a["reason"].as_str().unwrap().contains("NOSPACE"), "{a:#}");
    assert_eq!(a["alert"], r#"etcd_alarm{member="solo"}"#);
    let d = finding(&r, "etcd.db_size", "solo");
    assert_eq!(d["status"], "FAIL", "{d:#}");
    // Still reachable: the member answers, it just refuses writes.
    assert_eq!(status(&r, "etcd.reachable", "solo"), "PASS");
    // Nothing queued either: vigil-notify finds nothing to deliver.
    vigil_tests::notify_once(&cfg);
    assert!(!alerts.exists(), "--no-alert must not alert");
}

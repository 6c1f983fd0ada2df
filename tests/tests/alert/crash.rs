#![allow(clippy::unwrap_used)] // tests fail loudly by design
//! `vigil-notify` killed with a full outbox, then restarted: nothing is lost;
//! duplicates (at-least-once after a crash) are counted and reported.

use std::time::Duration;
use vigil_alert::{AlertKey, Fact, Severity, Source};
use vigil_tests::notify::*;

fn results(n: usize, ok: bool) -> Vec<vigil_alert::model::CheckResult> {
    (0..n)
        .map(|i| vigil_alert::model::CheckResult {
            key: AlertKey::new("etcd_member_down").label("member", format!("m{i:03}")),
            source: Source::Snapshot,
            ok,
            severity: Severity::Critical,
            summary: format!("member m{i:03} is down"),
            facts: vec![Fact::new("Member", format!("m{i:03}"))],
            runbook: None,
        })
        .collect()
}

fn config(state: &std::path::Path, url: &str) -> String {
    format!(
        r#"{}
[alert]
group_wait = "0s"
retry_min = "200ms"
retry_max = "500ms"

[[alert.channel]]
name = "ops-slack"
kind = "slack"
webhook_url = "{url}"
"#,
        config_head(state)
    )
}

#[test]
fn kill_9_mid_delivery_then_restart_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    // A slow Slack: each message takes 1s to be answered.
    let slack = Receiver::start(Reply::Slow(Duration::from_millis(1000), 200, "ok".into()));
    let (path, cfg) = write_config(
        d.path(),
        &config(&state, &slack.url("/services/CRASHSECRET")),
    );
    // 120 alerts = three messages of at most 50.
    let rep = vigil_alert::ingest(&cfg, "health", &results(120, false)).unwrap();
    assert_eq!(rep.queued, 120);

    let mut daemon = notify_daemon(&path, &d.path().join("notify-1.log"));
    // Kill it while the second message is on the wire (received, not answered).
    wait_for("second message in flight", 20, || slack.all().len() >= 2);
    daemon.kill9();
    let before_restart = slack.all().len();
    assert!(
        pending(&state, "ops-slack") > 0,
        "the outbox still holds rows"
    );

    let out = notify(&path, &["run", "--once", "--timeout", "30s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pending(&state, "ops-slack"), 0);

    // Slack blocks show 10 items per message; the text fallback names all.
    let mut ids = Vec::new();
    for r in slack.all() {
        let text = r.json()["text"].as_str().unwrap_or_default().to_string();
        for part in text.split("member=\"m").skip(1) {
            ids.push(part[..3].parse::<i64>().unwrap());
        }
    }
    let queued: Vec<i64> = (0..120).collect();
    let (lost, dups) = count(&queued, &ids);
    eprintln!(
        "kill -9 mid-delivery: {} messages before the kill, {} after; lost {lost}, duplicates {dups}",
        before_restart,
        slack.all().len() - before_restart
    );
    assert_eq!(lost, 0, "nothing lost");
    assert!(dups <= 50, "at most the one message in flight is repeated");
    let log = std::fs::read_to_string(d.path().join("notify-1.log")).unwrap() + &text(&out);
    assert_no_secret("logs", &log, &["CRASHSECRET"]);
}

#[test]
fn kill_9_with_a_full_outbox_while_the_channel_is_down() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let slack = Receiver::start(Reply::Status(500, vec![], "down".into()));
    let (path, cfg) = write_config(
        d.path(),
        &config(&state, &slack.url("/services/CRASHSECRET")),
    );
    vigil_alert::ingest(&cfg, "health", &results(30, false)).unwrap();
    let mut daemon = notify_daemon(&path, &d.path().join("notify.log"));
    wait_for("a few failed attempts", 20, || slack.all().len() >= 3);
    daemon.kill9();
    assert_eq!(pending(&state, "ops-slack"), 30);
    slack.set_default(Reply::ok("ok"));
    let out = notify(&path, &["run", "--once", "--timeout", "30s"]);
    assert!(out.status.success(), "{}", text(&out));
    let delivered = slack.delivered();
    let mut ids = Vec::new();
    for r in &delivered {
        let text = r.json()["text"].as_str().unwrap_or_default().to_string();
        for part in text.split("member=\"m").skip(1) {
            ids.push(part[..3].parse::<i64>().unwrap());
        }
    }
    let (lost, dups) = count(&(0..30).collect::<Vec<_>>(), &ids);
    eprintln!("kill -9 with the channel down: lost {lost}, duplicates {dups}");
    assert_eq!((lost, dups), (0, 0));
}

#![allow(clippy::unwrap_used)] // tests fail loudly by design
//! Slack and Teams against loopback receivers: the exact JSON shapes,
//! grouping, resolved style, and faults (500, 429 + Retry-After, timeout,
//! connection refused, an untrusted TLS certificate), with nothing lost.

use serde_json::Value;
use std::time::{Duration, Instant};
use vigil_core::outcome::Stage;
use vigil_tests::notify::*;

const SLACK_SECRET: &str = "T0SECRET/B0SECRET/slacksecrettoken42";
const TEAMS_SECRET: &str = "workflows/teamssecretsig77";

fn assert_slack_shape(v: &Value) {
    assert!(
        v["text"].as_str().is_some_and(|t| !t.is_empty()),
        "text fallback: {v}"
    );
    let blocks = v["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    for b in blocks {
        let t = b["type"].as_str().unwrap();
        assert!(
            matches!(t, "header" | "section" | "context" | "divider"),
            "{t}"
        );
        if t == "section" {
            assert_eq!(b["text"]["type"], "mrkdwn");
            assert!(b["fields"].as_array().map_or(0, |f| f.len()) <= 10);
        }
        if t == "context" {
            assert!(!b["elements"].as_array().unwrap().is_empty());
        }
    }
    assert_eq!(v.as_object().unwrap().len(), 2, "only text and blocks: {v}");
}

fn assert_teams_shape(v: &Value) {
    assert_eq!(v["type"], "message");
    let atts = v["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 1);
    let a = &atts[0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(
        a.get("contentUrl").is_some_and(|u| u.is_null()),
        "contentUrl must be null"
    );
    let c = &a["content"];
    assert_eq!(
        c["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(c["type"], "AdaptiveCard");
    assert_eq!(c["version"], "1.4");
    assert_eq!(c["msteams"], serde_json::json!({"width": "Full"}));
    let body = c["body"].as_array().expect("body");
    let head = &body[0];
    assert_eq!(head["type"], "TextBlock");
    assert_eq!(head["weight"], "Bolder");
    assert_eq!(head["size"], "Medium");
    assert_eq!(head["wrap"], true);
    assert!(matches!(
        head["color"].as_str(),
        Some("Attention" | "Warning" | "Good" | "Accent")
    ));
    let factsets: Vec<&Value> = body.iter().filter(|b| b["type"] == "FactSet").collect();
    assert!(!factsets.is_empty());
    for f in factsets {
        for fact in f["facts"].as_array().unwrap() {
            assert!(
                fact["title"].is_string() && fact["value"].is_string(),
                "{fact}"
            );
            assert_eq!(fact.as_object().unwrap().len(), 2);
        }
    }
}

#[test]
fn slack_and_teams_get_one_grouped_message_per_run_then_the_resolution() {
    let d = tempfile::tempdir().unwrap();
    let slack = Receiver::start(Reply::ok("ok"));
    let teams = Receiver::start(Reply::Status(202, vec![], String::new()));
    let legacy = Receiver::start(Reply::ok("1"));
    let state = d.path().join("state");
    let cfg_text = format!(
        r#"{}
[[alert.channel]]
name = "ops-slack"
kind = "slack"
webhook_url = "{}"
[[alert.channel]]
name = "ops-teams"
kind = "teams"
webhook_url = "{}"
[[alert.channel]]
name = "old-teams"
kind = "teams"
teams_format = "messagecard"
webhook_url = "{}"
min_severity = "critical"
"#,
        config_head(&state),
        slack.url(&format!("/services/{SLACK_SECRET}")),
        teams.url(&format!("/{TEAMS_SECRET}")),
        legacy.url("/webhookb2/legacysecret"),
    );
    let (path, cfg) = write_config(d.path(), &cfg_text);

    // One run: cp-1 failed, cp-2 diverged, cp-3 fine.
    let rep = vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes(
            "run-1",
            &[
                ("cp-1", false, Stage::Connect),
                ("cp-2", false, Stage::Consistency),
                ("cp-3", true, Stage::Done),
            ],
        ),
    )
    .unwrap();
    assert_eq!(rep.fired.len(), 2, "{rep:?}");
    let out = notify(&path, &["run", "--once"]);
    assert!(out.status.success(), "{}", text_of(&out));
    let mut all_output = text_of(&out);

    let s = slack.delivered();
    assert_eq!(s.len(), 1, "grouping: one Slack message for the run");
    let v = s[0].json();
    assert_slack_shape(&v);
    let t = v["text"].as_str().unwrap();
    assert!(
        t.contains(r#"snapshot_failed{member="cp-1"}"#)
            && t.contains(r#"etcd_member_diverged{member="cp-2"}"#),
        "{t}"
    );
    assert!(v["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .starts_with("🔴 *CRITICAL*"));
    assert_eq!(s[0].path, format!("/services/{SLACK_SECRET}"));
    assert_eq!(
        s[0].headers.get("content-type").map(String::as_str),
        Some("application/json")
    );

    let tm = teams.delivered();
    assert_eq!(tm.len(), 1, "one Teams card for the run");
    let v = tm[0].json();
    assert_teams_shape(&v);
    assert_eq!(
        v["attachments"][0]["content"]["body"][0]["color"],
        "Attention"
    );
    assert!(v.to_string().contains("Endpoint") && v.to_string().contains("http://127.0.0.1:12379"));

    let lg = legacy.delivered();
    assert_eq!(lg.len(), 1);
    let v = lg[0].json();
    assert_eq!(v["@type"], "MessageCard");
    assert_eq!(v["themeColor"], "D13438");

    // The next run is all good: one resolved message, in the resolved style.
    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes(
            "run-2",
            &[
                ("cp-1", true, Stage::Done),
                ("cp-2", true, Stage::Done),
                ("cp-3", true, Stage::Done),
            ],
        ),
    )
    .unwrap();
    let out = notify(&path, &["run", "--once"]);
    assert!(out.status.success(), "{}", text_of(&out));
    all_output.push_str(&text_of(&out));
    let s = slack.delivered();
    assert_eq!(s.len(), 2);
    let v = s[1].json();
    assert_slack_shape(&v);
    assert!(
        v["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ RESOLVED: 2 alerts"),
        "{v}"
    );
    let tm = teams.delivered();
    assert_eq!(
        tm[1].json()["attachments"][0]["content"]["body"][0]["color"],
        "Good"
    );

    // Lost and duplicates, per channel, by outbox id.
    for (ch, seen) in [
        (
            "ops-slack",
            s.iter()
                .flat_map(|r| slack_ids(&r.json()))
                .collect::<Vec<_>>(),
        ),
        (
            "ops-teams",
            tm.iter()
                .flat_map(|r| teams_ids(&r.json()))
                .collect::<Vec<_>>(),
        ),
    ] {
        let (lost, dups) = count(&outbox_ids(&state, ch), &seen);
        eprintln!("{ch}: lost {lost}, duplicates {dups}");
        assert_eq!(lost, 0, "{ch} lost messages");
        assert_eq!(dups, 0, "{ch}: no duplicates in normal operation");
    }

    // test --channel prints the HTTP status.
    let out = notify(&path, &["test", "--channel", "ops-teams"]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HTTP 202"),
        "{}",
        text_of(&out)
    );
    all_output.push_str(&text_of(&out));
    let out = notify(&path, &["test", "--channel", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    all_output.push_str(&text_of(&out));
    let out = notify(&path, &["check-config"]);
    assert!(out.status.success());
    all_output.push_str(&text_of(&out));
    let out = notify(&path, &["status", "--all", "--json"]);
    assert!(out.status.success());
    all_output.push_str(&text_of(&out));
    assert_no_secret(
        "vigil-notify output",
        &all_output,
        &[SLACK_SECRET, TEAMS_SECRET, "legacysecret"],
    );
}

fn text_of(o: &std::process::Output) -> String {
    text(o)
}

#[test]
fn faults_500_429_timeout_refused_and_bad_tls_block_no_other_channel() {
    let d = tempfile::tempdir().unwrap();
    let certs = certs(d.path());
    let state = d.path().join("state");
    // Slack: 500, then 429 with Retry-After: 2, then fine.
    let slack = Receiver::start(Reply::ok("ok"));
    slack.push(Reply::Status(500, vec![], "internal_error".into()));
    slack.push(Reply::Status(
        429,
        vec![("Retry-After".into(), "2".into())],
        "rate_limited".into(),
    ));
    // Teams: hangs past the 1s timeout once, then accepts.
    let teams = Receiver::start(Reply::Status(202, vec![], String::new()));
    teams.push(Reply::Hang(Duration::from_secs(3)));
    let refused = free_port();
    let (_tls, tls_port) = bad_tls_server(&certs);
    let file = d.path().join("alerts.jsonl");
    let cfg_text = format!(
        r#"{}
[alert]
group_wait = "200ms"
retry_min = "200ms"
retry_max = "1s"

[[alert.channel]]
name = "ops-slack"
kind = "slack"
webhook_url = "{}"
timeout = "1s"
[[alert.channel]]
name = "ops-teams"
kind = "teams"
webhook_url = "{}"
timeout = "1s"
[[alert.channel]]
name = "down-slack"
kind = "slack"
webhook_url = "http://127.0.0.1:{refused}/services/REFUSEDSECRET"
timeout = "1s"
[[alert.channel]]
name = "rogue-teams"
kind = "teams"
webhook_url = "https://127.0.0.1:{tls_port}/BADTLSSECRET"
timeout = "1s"
ca_file = "{}"
[[alert.channel]]
name = "audit"
kind = "file"
path = "{}"
"#,
        config_head(&state),
        slack.url(&format!("/services/{SLACK_SECRET}")),
        teams.url(&format!("/{TEAMS_SECRET}")),
        certs.ca.display(),
        file.display(),
    );
    let (path, cfg) = write_config(d.path(), &cfg_text);
    let log = d.path().join("notify.log");
    let mut daemon = notify_daemon(&path, &log);
    let t0 = Instant::now();
    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes("run-1", &[("cp-2", false, Stage::Stream)]),
    )
    .unwrap();

    // The file channel is not held up by the others.
    wait_for("file channel", 10, || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.contains("cp-2"))
    });
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "file channel waited for the broken ones"
    );
    wait_for("slack delivery after 500 and 429", 20, || {
        slack.delivered().len() == 1
    });
    wait_for("teams delivery after a timeout", 20, || {
        teams.delivered().len() == 1
    });
    let reqs = slack.all();
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 429, 200]
    );
    let gap = reqs[2].at - reqs[1].at;
    assert!(
        gap >= Duration::from_secs(2),
        "Retry-After: 2 honoured, waited {gap:?}"
    );
    let treqs = teams.all();
    assert_eq!(
        treqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![0, 202]
    );
    let (first, retry) = (teams_ids(&treqs[0].json()), teams_ids(&treqs[1].json()));
    assert!(
        first.iter().all(|id| retry.contains(id)),
        "the retry carries the timed-out items: {first:?} {retry:?}"
    );

    // Refused and untrusted channels keep their rows; after 3 failures the
    // working channels hear that those channels are failing.
    wait_for("channel-failing alert", 20, || {
        slack.delivered().iter().any(|r| {
            r.json()
                .to_string()
                .contains("notify_channel_failing{channel=\\\"down-slack\\\"}")
        }) && slack.delivered().iter().any(|r| {
            r.json()
                .to_string()
                .contains("notify_channel_failing{channel=\\\"rogue-teams\\\"}")
        })
    });
    // Their own rows wait (plus news about the other broken channel).
    assert!(pending(&state, "down-slack") >= 1);
    assert!(pending(&state, "rogue-teams") >= 1);
    let status = notify(&path, &["status", "--json"]);
    let st: Value = serde_json::from_slice(&status.stdout).unwrap();
    let chans = st["channels"].as_array().unwrap();
    let rogue = chans
        .iter()
        .find(|c| c["channel"] == "rogue-teams")
        .unwrap();
    let err = rogue["last_error"].as_str().unwrap();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    let down = chans.iter().find(|c| c["channel"] == "down-slack").unwrap();
    assert!(
        down["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{down}"
    );

    let out = daemon.term(Duration::from_secs(10));
    assert!(
        out.status.success(),
        "clean exit on SIGTERM: {:?}",
        out.status
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("stopping"), "{log_text}");
    let mut all = log_text + &text(&status);
    // `test` against the broken channels reports the error, without the URL.
    for ch in ["down-slack", "rogue-teams"] {
        let out = notify(&path, &["test", "--channel", ch]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        all.push_str(&text(&out));
    }
    let secrets = [SLACK_SECRET, TEAMS_SECRET, "REFUSEDSECRET", "BADTLSSECRET"];
    assert_no_secret("daemon log, status and test output", &all, &secrets);

    // Nothing lost on the working channels.
    let seen: Vec<i64> = slack
        .delivered()
        .iter()
        .flat_map(|r| slack_ids(&r.json()))
        .collect();
    let (lost, dups) = count(&outbox_ids(&state, "ops-slack"), &seen);
    eprintln!("ops-slack: lost {lost}, duplicates {dups}");
    assert_eq!(lost, 0);
    let seen: Vec<i64> = teams
        .delivered()
        .iter()
        .flat_map(|r| teams_ids(&r.json()))
        .collect();
    let (lost, dups) = count(&outbox_ids(&state, "ops-teams"), &seen);
    eprintln!("ops-teams: lost {lost}, duplicates {dups}");
    assert_eq!(lost, 0);
}

#[test]
fn deliver_pending_keeps_to_its_budget_and_leaves_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let slow = Receiver::start(Reply::Hang(Duration::from_secs(10)));
    let fine = Receiver::start(Reply::ok("ok"));
    let cfg_text = format!(
        r#"{}
[[alert.channel]]
name = "slow"
kind = "slack"
webhook_url = "{}"
timeout = "1s"
[[alert.channel]]
name = "fine"
kind = "slack"
webhook_url = "{}"
"#,
        config_head(&state),
        slow.url("/services/SLOWSECRET"),
        fine.url("/services/FINESECRET"),
    );
    let (_path, cfg) = write_config(d.path(), &cfg_text);
    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes("r", &[("cp-1", false, Stage::Connect)]),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    let rep = rt
        .block_on(vigil_alert::deliver_pending(&cfg, Duration::from_secs(3)))
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(rep.sent.get("fine"), Some(&1));
    assert_eq!(rep.pending.get("slow"), Some(&1), "{rep:?}");
    assert!(
        rep.failed
            .get("slow")
            .is_some_and(|e| e.contains("timed out")),
        "{rep:?}"
    );
    assert!(!format!("{rep:?}").contains("SLOWSECRET"));
    // The channel is in backoff now: an immediate second pass skips it quickly.
    let t = Instant::now();
    let rep = rt
        .block_on(vigil_alert::deliver_pending(&cfg, Duration::from_secs(3)))
        .unwrap();
    assert!(t.elapsed() < Duration::from_millis(1500));
    assert_eq!(rep.pending.get("slow"), Some(&1));
    assert_eq!(
        fine.delivered().len(),
        1,
        "no duplicate to the working channel"
    );
}

#[test]
fn heartbeat_is_pinged_after_a_successful_job_only() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let hc = Receiver::start(Reply::ok("OK"));
    let cfg_text = format!(
        "{}[alert]\nheartbeat_url = \"{}\"\n",
        config_head(&state),
        hc.url("/ping/HEARTBEATSECRETUUID")
    );
    let (path, cfg) = write_config(d.path(), &cfg_text);
    let rt = tokio::runtime::Runtime::new().unwrap();
    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes(
            "r1",
            &[("cp-1", false, Stage::Connect), ("cp-2", true, Stage::Done)],
        ),
    )
    .unwrap();
    rt.block_on(vigil_alert::deliver_pending(&cfg, Duration::from_secs(5)))
        .unwrap();
    assert!(hc.all().is_empty(), "no ping after a failed job");
    let r = vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes(
            "r2",
            &[("cp-1", true, Stage::Done), ("cp-2", true, Stage::Done)],
        ),
    )
    .unwrap();
    assert!(r.heartbeat);
    let rep = rt
        .block_on(vigil_alert::deliver_pending(&cfg, Duration::from_secs(5)))
        .unwrap();
    assert_eq!(rep.pending_total(), 0);
    let pings = hc.all();
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0].method, "GET");
    assert_eq!(pings[0].path, "/ping/HEARTBEATSECRETUUID");
    let out = notify(&path, &["check-config"]);
    assert!(out.status.success());
    assert!(
        text(&out).contains("heartbeat: <redacted>"),
        "{}",
        text(&out)
    );
    assert_no_secret("check-config", &text(&out), &["HEARTBEATSECRETUUID"]);
}

/// A failing check with `facts` facts of 200 bytes each, from the snapshot
/// job (fires at once).
fn big_result(n: usize, facts: usize) -> vigil_alert::model::CheckResult {
    vigil_alert::model::CheckResult {
        key: vigil_alert::AlertKey::new("snapshot_failed").label("member", format!("m{n}")),
        source: vigil_alert::Source::Snapshot,
        ok: false,
        severity: vigil_alert::Severity::Critical,
        summary: format!("etcd snapshot of m{n} failed"),
        facts: (0..facts)
            .map(|k| vigil_alert::Fact::new(format!("Detail {k}"), "y".repeat(200)))
            .collect(),
        runbook: Some("Check the member".into()),
    }
}

#[test]
fn teams_cards_are_trimmed_to_the_budget_and_a_413_is_not_retried() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let teams = Receiver::start(Reply::Status(202, vec![], String::new()));
    teams.push(Reply::Status(
        413,
        vec![],
        "Request Entity Too Large".into(),
    ));
    let cfg_text = format!(
        r#"{}
[alert]
retry_min = "5m"
retry_max = "10m"

[[alert.channel]]
name = "ops-teams"
kind = "teams"
webhook_url = "{}"
timeout = "5s"
"#,
        config_head(&state),
        teams.url(&format!("/{TEAMS_SECRET}")),
    );
    let (path, cfg) = write_config(d.path(), &cfg_text);

    // The first message meets a 413: recorded as not delivered, not retried
    // (the backoff of 5 minutes would outlast this test).
    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes("run-1", &[("cp-2", false, Stage::Stream)]),
    )
    .unwrap();
    let dropped_ids = outbox_ids(&state, "ops-teams");
    assert!(!dropped_ids.is_empty());
    let out = notify(&path, &["run", "--once", "--timeout", "20s"]);
    let mut all = text(&out);
    assert!(
        all.contains("ops-teams") && all.contains("not retried") && all.contains("413"),
        "the log names the channel and the 413: {all}"
    );
    assert_eq!(teams.all().len(), 1, "a 413 is sent once");
    assert_eq!(pending(&state, "ops-teams"), 0, "the channel moved on");

    // The next message goes out at once, trimmed under Teams' limit.
    let big: Vec<_> = (0..10).map(|k| big_result(k, 30)).collect();
    vigil_alert::ingest(&cfg, "snapshot", &big).unwrap();
    let out = notify(&path, &["run", "--once", "--timeout", "20s"]);
    all.push_str(&text(&out));
    assert!(out.status.success(), "{}", text(&out));
    let reqs = teams.all();
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![413, 202],
        "no retry of the refused message"
    );
    let card = &reqs[1];
    assert!(
        card.body.len() <= vigil_alert::render::TEAMS_BUDGET,
        "{} bytes",
        card.body.len()
    );
    let v = card.json();
    assert_teams_shape(&v);
    let s = v.to_string();
    assert!(s.contains("more facts trimmed"), "{s}");
    for k in 0..10 {
        assert!(s.contains(&format!("etcd snapshot of m{k} failed")), "m{k}");
    }
    let queued: Vec<i64> = outbox_ids(&state, "ops-teams")
        .into_iter()
        .filter(|id| !dropped_ids.contains(id))
        .collect();
    let (lost, dups) = count(&queued, &teams_ids(&v));
    eprintln!("teams after a 413: lost {lost}, duplicates {dups}");
    assert_eq!((lost, dups), (0, 0));

    // status shows the dropped message the way it shows other failures.
    let st = notify(&path, &["status", "--json"]);
    all.push_str(&text(&st));
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    let ch = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "ops-teams")
        .unwrap()
        .clone();
    assert_eq!(ch["dropped"], dropped_ids.len(), "{ch}");
    assert!(
        ch["last_dropped"].as_str().unwrap().contains("HTTP 413"),
        "{ch}"
    );
    let st = notify(&path, &["status"]);
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("not delivered (not retried)"),
        "{}",
        text(&st)
    );
    all.push_str(&text(&st));
    assert_no_secret("413 log and status", &all, &[TEAMS_SECRET]);
}

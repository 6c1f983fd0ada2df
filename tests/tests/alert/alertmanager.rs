#![allow(clippy::unwrap_used)] // tests fail loudly by design
//! Alertmanager API v2 with Debian's prometheus-alertmanager on loopback:
//! an alert fires, is re-sent, resolves with endsAt; the watchdog fires.

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use vigil_core::outcome::Stage;
use vigil_tests::notify::*;

fn start_alertmanager(dir: &std::path::Path) -> (Proc, u16) {
    let port = free_port();
    let cfg = dir.join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let data = dir.join("am-data");
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(dir.join("am.log")).unwrap();
    let p = Proc::spawn(
        "prometheus-alertmanager",
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log),
    );
    wait_port(port, 30);
    (p, port)
}

/// Active alerts as Alertmanager reports them.
fn active(port: u16) -> Vec<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!(
            "http://127.0.0.1:{port}/api/v2/alerts?active=true&silenced=true&inhibited=true"
        );
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = url.split_once(&format!("{port}")).unwrap().1.to_string();
        stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("[]");
        serde_json::from_str::<Vec<Value>>(body).unwrap_or_default()
    })
}

fn find<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == name)
}

#[test]
fn alert_fires_and_resolves_in_alertmanager_and_the_watchdog_fires() {
    let d = tempfile::tempdir().unwrap();
    let (_am, port) = start_alertmanager(d.path());
    let state = d.path().join("state");
    let text = format!(
        r#"{}
[alert]
watchdog = true
group_wait = "500ms"

[[alert.channel]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:{port}"
resend_interval = "10s"
"#,
        config_head(&state)
    );
    let (path, cfg) = write_config(d.path(), &text);
    let rt = tokio::runtime::Runtime::new().unwrap();

    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes("run-1", &[("cp-2", false, Stage::Stream)]),
    )
    .unwrap();
    let rep = rt
        .block_on(vigil_alert::deliver_pending(&cfg, Duration::from_secs(10)))
        .unwrap();
    assert_eq!(rep.pending_total(), 0, "{rep:?}");
    let mut fired = None;
    wait_for("alert in Alertmanager", 15, || {
        let a = active(port);
        fired = find(&a, "snapshot_failed").cloned();
        fired.is_some() && find(&a, "VigilWatchdog").is_some()
    });
    let f = fired.unwrap();
    assert_eq!(f["labels"]["member"], "cp-2");
    assert_eq!(f["labels"]["severity"], "critical");
    assert_eq!(f["labels"]["cluster"], "prod");
    assert_eq!(f["labels"]["source"], "snapshot");
    assert_eq!(f["status"]["state"], "active");
    assert!(f["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("cp-2"));
    assert!(f["annotations"]["runbook"].is_string());

    // The daemon re-sends firing alerts; endsAt moves forward.
    let ends_before = f["endsAt"].as_str().unwrap().to_string();
    let log = d.path().join("notify.log");
    let mut daemon = notify_daemon(&path, &log);
    let mut refreshed = false;
    wait_for("a re-send with a later endsAt", 25, || {
        let a = active(port);
        refreshed = find(&a, "snapshot_failed")
            .is_some_and(|x| x["endsAt"].as_str().unwrap_or_default() > ends_before.as_str());
        refreshed
    });
    let out = daemon.term(Duration::from_secs(10));
    assert!(out.status.success());

    // Resolve: endsAt is set and Alertmanager drops it from the active list.
    let rep = vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes("run-2", &[("cp-2", true, Stage::Done)]),
    )
    .unwrap();
    assert_eq!(rep.resolved.len(), 1);
    let out = notify(&path, &["run", "--once"]);
    assert!(out.status.success(), "{}", text_of(&out));
    wait_for("resolution in Alertmanager", 15, || {
        find(&active(port), "snapshot_failed").is_none()
    });
    assert!(
        find(&active(port), "VigilWatchdog").is_some(),
        "the watchdog keeps firing"
    );

    // test --channel reports the HTTP status from Alertmanager.
    let out = notify(&path, &["test", "--channel", "am"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HTTP 200"),
        "{}",
        text_of(&out)
    );
    wait_for("test alert", 10, || {
        find(&active(port), "vigil_test").is_some()
    });
    let seen = outbox_ids(&state, "am");
    assert_eq!(pending(&state, "am"), 0, "lost 0 of {} rows", seen.len());
    eprintln!("alertmanager: lost 0, duplicates n/a (Alertmanager deduplicates by labels)");
}

fn text_of(o: &std::process::Output) -> String {
    text(o)
}

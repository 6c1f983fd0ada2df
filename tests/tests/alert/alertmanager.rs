#![allow(clippy::unwrap_used)] // tests fail loudly by design
//! Alertmanager API v2 with Debian's prometheus-alertmanager on loopback:
//! an alert fires, is re-sent, resolves with endsAt; the watchdog fires.

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use vigil_core::outcome::Stage;
use vigil_tests::notify::*;

fn start_alertmanager(dir: &std::path::Path) -> (Proc, u16) {
    start_alertmanager_with(dir, "am", None)
}

/// `web`: Alertmanager's `--web.config.file` contents (basic auth users).
fn start_alertmanager_with(dir: &std::path::Path, name: &str, web: Option<&str>) -> (Proc, u16) {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.as_path();
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
    let mut cmd = Command::new("prometheus-alertmanager");
    if let Some(w) = web {
        let f = dir.join("web.yml");
        std::fs::write(&f, w).unwrap();
        cmd.arg(format!("--web.config.file={}", f.display()));
    }
    let p = Proc::spawn(
        "prometheus-alertmanager",
        cmd.arg(format!("--config.file={}", cfg.display()))
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
    active_as(port, "")
}

/// The same with extra request headers (`Authorization: ...\r\n`).
fn active_as(port: u16, headers: &str) -> Vec<Value> {
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
                    "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{headers}\r\n"
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
    // The names Alertmanager templates and Prometheus rules use.
    assert!(f["annotations"]["runbook_url"].is_string(), "{f}");
    let gen = f["generatorURL"].as_str().unwrap();
    assert!(
        gen.starts_with("http://") && gen.ends_with(":9479/metrics"),
        "{gen}"
    );

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

/// bcrypt of AM_PASSWORD (Alertmanager's web config takes only hashes);
/// made with Python's crypt module, METHOD_BLOWFISH.
const AM_HASH: &str = "$2b$12$asgjzhHFSF4fiOPcDbTO9.YJF4mt1nheZlZcX3L.E91tdXzCx.wdG";
const AM_PASSWORD: &str = "am-secret-pw";
const AM_TOKEN: &str = "am-bearer-SECRET-token-5521";

#[test]
fn an_ha_pair_gets_every_alert_with_basic_auth_and_a_dead_peer_is_named() {
    let d = tempfile::tempdir().unwrap();
    let web = format!("basic_auth_users:\n  vigil: {AM_HASH}\n");
    let (_am1, p1) = start_alertmanager_with(d.path(), "am1", Some(&web));
    let (_am2, p2) = start_alertmanager_with(d.path(), "am2", Some(&web));
    let dead = free_port();
    // A bearer token, checked by a plain receiver (Alertmanager itself
    // takes only basic auth).
    let proxy = Receiver::start(Reply::ok(""));
    let pw_file = d.path().join("am-password");
    std::fs::write(&pw_file, format!("{AM_PASSWORD}\n")).unwrap();
    let tok_file = d.path().join("am-token");
    std::fs::write(&tok_file, AM_TOKEN).unwrap();
    for f in [&pw_file, &tok_file] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let state = d.path().join("state");
    let text = format!(
        r#"{}
[alert]
group_wait = "200ms"

[[alert.channel]]
name = "am-ha"
kind = "alertmanager"
urls = ["http://127.0.0.1:{p1}", "http://127.0.0.1:{p2}/", "http://127.0.0.1:{dead}"]
username = "vigil"
password_file = "{}"
generator_url = "https://grafana.example.org/d/vigil-overview"

[[alert.channel]]
name = "am-wrong"
kind = "alertmanager"
url = "http://127.0.0.1:{p1}"
username = "vigil"
password = "not-the-am-SECRET"

[[alert.channel]]
name = "am-proxy"
kind = "alertmanager"
url = "{}"
bearer_token_file = "{}"
"#,
        config_head(&state),
        pw_file.display(),
        proxy.url("/am"),
        tok_file.display(),
    );
    let (path, cfg) = write_config(d.path(), &text);
    vigil_alert::ingest_outcomes(
        &cfg,
        "snapshot",
        &outcomes("run-1", &[("cp-2", false, Stage::Stream)]),
    )
    .unwrap();
    let out = notify(&path, &["run", "--once", "--timeout", "15s"]);
    let mut all = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "am-wrong cannot deliver: {all}");
    let auth = format!(
        "Authorization: Basic {}\r\n",
        base64_of(&format!("vigil:{AM_PASSWORD}"))
    );
    for port in [p1, p2] {
        let mut a = Vec::new();
        wait_for("the alert in both peers", 15, || {
            a = active_as(port, &auth);
            find(&a, "snapshot_failed").is_some()
        });
        let f = find(&a, "snapshot_failed").unwrap();
        assert_eq!(f["labels"]["member"], "cp-2");
        assert_eq!(
            f["generatorURL"],
            "https://grafana.example.org/d/vigil-overview"
        );
        assert!(f["annotations"]["runbook_url"].is_string(), "{f}");
    }
    // Without the password, Alertmanager refuses: basic auth is what let it in.
    assert!(active(p1).is_empty());
    // Delivered while one peer is down: no failure counted for the channel
    // (a re-send of the firing set may already wait in the outbox).
    let st = notify(&path, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    let ha = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "am-ha")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ha["failures"].as_u64().unwrap_or(0),
        0,
        "delivered while one peer is down: {ha}"
    );

    // The bearer token reached the proxy.
    let reqs = proxy.delivered();
    assert!(!reqs.is_empty());
    let h = reqs[0]
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert_eq!(h, format!("Bearer {AM_TOKEN}"));
    assert!(
        reqs[0].path.ends_with("/am/api/v2/alerts"),
        "{}",
        reqs[0].path
    );

    // The wrong password: 401, kept in the outbox; status names it.
    assert!(pending(&state, "am-wrong") >= 1);
    let st = notify(&path, &["status", "--json"]);
    all.push_str(&text_of(&st));
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    let err = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "am-wrong")
        .and_then(|c| c["last_error"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("401"), "{err}");
    assert!(
        all.contains(&format!("127.0.0.1:{dead}")) && all.contains("cannot connect"),
        "the dead peer is named: {all}"
    );
    all.push_str(&text_of(&notify(&path, &["check-config"])));
    all.push_str(&text_of(&notify(&path, &["test", "--channel", "am-ha"])));
    assert_no_secret(
        "alertmanager outputs",
        &all,
        &[
            AM_PASSWORD,
            AM_TOKEN,
            "not-the-am-SECRET",
            &base64_of(&format!("vigil:{AM_PASSWORD}")),
        ],
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

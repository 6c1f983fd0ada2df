//! Faults: channels. Webhook servers that answer like hostile or broken
//! ones; the real vigil-notify delivers through them. Each case asserts: the
//! alert is delivered once the server recovers (never lost, never twice),
//! no secret reaches the logs, alerts.db, `status` or another channel, and
//! a channel that keeps failing is announced on another one
//! (`notify_channel_failing`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::hostile::{contains, store_bytes, Answer, Hostile, HostileSmtp};
use vigil_tests::*;

/// `vigil-notify run`, killed and reaped when dropped (also on panic).
struct Daemon(Option<Child>);

impl Daemon {
    fn start(config: &Path, log: &Path) -> Daemon {
        let f = std::fs::File::create(log).unwrap();
        let c = Command::new(bin("vigil-notify"))
            .arg("--config")
            .arg(config)
            .args(["-v", "--log-format", "text", "run"])
            .env_remove("VIGIL_LOG")
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        Daemon(Some(c))
    }

    /// SIGTERM, then the exit status within 15 s.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.0.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let t = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "vigil-notify did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn notify(config: &Path, args: &[&str]) -> Output {
    Command::new(bin("vigil-notify"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("VIGIL_LOG")
        .output()
        .unwrap()
}

/// A config with the given `[[alert.channel]]` blocks (and fast retries;
/// no `/metrics` listener, which parallel tests would fight over).
fn config(dir: &Path, channels: &str) -> PathBuf {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let text = format!(
        "[cluster]\nname = \"prod\"\nmembers = [\n  {{ name = \"cp-1\", endpoint = \"http://127.0.0.1:1\" }},\n]\n\n\
         [state]\ndir = \"{}\"\n\n[metrics]\nlisten = \"\"\ntextfile = false\n\n[alert]\ngroup_wait = \"100ms\"\nretry_min = \"200ms\"\nretry_max = \"1s\"\n\n{channels}",
        state.display()
    );
    let p = dir.join("vigil.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Raises one alert the way a job unit's `OnFailure=` does: a job killed by
/// SIGKILL, reported through `vigil-notify unit-failed`.
fn raise_alert(config: &Path) {
    let out = Command::new(bin("vigil-notify"))
        .arg("--config")
        .arg(config)
        .args(["unit-failed", "vigil-snapshot.service"])
        .env("MONITOR_SERVICE_RESULT", "signal")
        .env("MONITOR_EXIT_CODE", "killed")
        .env("MONITOR_EXIT_STATUS", "KILL")
        .output()
        .unwrap();
    assert!(out.status.success(), "unit-failed: {}", text(&out));
}

fn channel_failing_on_file(file: &Path, channel: &str) -> bool {
    alert_events(file).iter().any(|(ev, key)| {
        ev == "firing" && key.contains("notify_channel_failing") && key.contains(channel)
    })
}

/// Outbox ids a Slack message carries (block ids `vigil-EVENT-ID`).
fn slack_ids(v: &serde_json::Value) -> Vec<String> {
    v["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["block_id"].as_str().map(str::to_owned))
        .collect()
}

/// Everything a human or a log shipper can read after the run, for grepping.
fn everything(log: &Path, state: &Path, file: &Path, extra: &[Output]) -> Vec<u8> {
    let mut all = std::fs::read(log).unwrap_or_default();
    all.extend(store_bytes(state));
    all.extend(std::fs::read(file).unwrap_or_default());
    for o in extra {
        all.extend(&o.stdout);
        all.extend(&o.stderr);
    }
    all
}

fn assert_no_secret(what: &str, hay: &[u8], secrets: &[&str]) {
    for s in secrets {
        assert!(
            !contains(hay, s),
            "{what} contains the secret {s:?}:\n{}",
            String::from_utf8_lossy(hay)
                .lines()
                .filter(|l| l.contains(s))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

const SLACK_PATH: &str = "/services/T0HOSTILE1/B0HOSTILE2/hostileslacktoken4242";
const TEAMS_PATH: &str =
    "/workflows/0a1b2c3d4e5f60718293a4b5c6d7e8f9/triggers/manual/paths/invoke?api-version=2016-06-01&sig=teamsquerysig0987654321";
/// Every secret part of the two webhook URLs, and slices of them.
const SECRETS: &[&str] = &[
    "T0HOSTILE1",
    "B0HOSTILE2",
    "hostileslacktoken4242",
    "slacktoken42",
    "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "3d4e5f607182",
    "teamsquerysig0987654321",
    "querysig0987",
];

/// Issue 14 point 7: a webhook server that answers with the token in its
/// error body got it copied into the logs, alerts.db, `vigil-notify status`
/// and the other channels' `notify_channel_failing` messages.
#[test]
fn a_server_that_echoes_the_token_gets_it_nowhere() {
    let t = tempfile::tempdir().unwrap();
    let slack = Hostile::start(Answer::EchoSecret(500));
    let teams = Hostile::start(Answer::EchoSecret(403));
    let file = t.path().join("alerts.jsonl");
    let cfg = config(
        t.path(),
        &format!(
            "[[alert.channel]]\nname = \"ops-slack\"\nkind = \"slack\"\nwebhook_url = \"{}\"\ntimeout = \"2s\"\n\n\
             [[alert.channel]]\nname = \"ops-teams\"\nkind = \"teams\"\nwebhook_url = \"{}\"\ntimeout = \"2s\"\n\n\
             [[alert.channel]]\nname = \"audit\"\nkind = \"file\"\npath = \"{}\"\n",
            slack.url(SLACK_PATH),
            teams.url(TEAMS_PATH),
            file.display()
        ),
    );
    let state = t.path().join("state");
    let log = t.path().join("notify.log");
    raise_alert(&cfg);
    let mut d = Daemon::start(&cfg, &log);
    wait_for(
        "notify_channel_failing for both webhooks on the file channel",
        30,
        || {
            channel_failing_on_file(&file, "ops-slack")
                && channel_failing_on_file(&file, "ops-teams")
        },
    );
    let status = notify(&cfg, &["status"]);
    let status_json = notify(&cfg, &["status", "--json"]);
    let test_out = notify(&cfg, &["test", "--channel", "ops-slack"]);
    assert_eq!(test_out.status.code(), Some(1), "{}", text(&test_out));
    // The error is still useful: the status code and what the server said.
    assert!(text(&status).contains("HTTP 500"), "{}", text(&status));
    assert!(
        text(&test_out).contains("invalid_token"),
        "{}",
        text(&test_out)
    );

    // The server recovers: the alert arrives once on each webhook.
    slack.set_default(Answer::ok());
    teams.set_default(Answer::Status(202, vec![], Vec::new()));
    wait_for("delivery once the webhooks recover", 30, || {
        let s = slack.delivered();
        s.iter()
            .any(|r| r.json().to_string().contains("job_unit_failed"))
            && teams
                .delivered()
                .iter()
                .any(|r| r.json().to_string().contains("job_unit_failed"))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.stop().success());
    let ids: Vec<String> = slack
        .delivered()
        .iter()
        .flat_map(|r| slack_ids(&r.json()))
        .collect();
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(
        ids.len(),
        uniq.len(),
        "an item reached Slack twice: {ids:?}"
    );

    let all = everything(&log, &state, &file, &[status, status_json, test_out]);
    assert_no_secret(
        "logs, alerts.db, status, test and the file channel",
        &all,
        SECRETS,
    );
    // Nothing the server sent can forge a log line or drive the terminal.
    let log_text = std::fs::read_to_string(&log).unwrap();
    // (The log's own colours are tracing's; the server's escape is the one
    // before its " token=".)
    for l in log_text.lines().filter(|l| l.contains("ERROR")) {
        eprintln!("log error: {l}");
    }
    assert!(
        !log_text.contains("\u{1b}[0m token="),
        "the server's terminal escape reached the log"
    );
    assert!(
        !log_text.contains('\u{202e}'),
        "a bidi override reached the log"
    );
    assert!(
        !log_text.lines().any(|l| l.starts_with("INFO delivered ok")),
        "the server forged a log line:\n{log_text}"
    );
}

/// One Slack channel per way a server misbehaves, each misbehaving three
/// times in a row (enough for `notify_channel_failing`) before it works.
/// Promises: the alert reaches every channel exactly once after recovery,
/// no attempt outlives the channel timeout, the failing channels are
/// announced on the file channel, no token leaks, no log line balloons.
#[test]
fn hostile_replies_lose_nothing_duplicate_nothing_and_are_announced() {
    let t = tempfile::tempdir().unwrap();
    let elsewhere = Hostile::start(Answer::ok());
    let bad_utf8 = b"\xff\xfe\xc3(\xa0\xa1 token=".to_vec();
    let cases: Vec<(&str, Answer)> = vec![
        (
            "rate-limited",
            Answer::Status(
                429,
                vec![("Retry-After".into(), "1".into())],
                b"slow down".to_vec(),
            ),
        ),
        ("huge-body", Answer::Huge(500, 20 << 20)),
        ("slow-loris", Answer::SlowLoris(500)),
        ("bad-utf8", Answer::Status(500, vec![], bad_utf8)),
        ("redirect", Answer::Redirect(elsewhere.url("/collect"))),
    ];
    let file = t.path().join("alerts.jsonl");
    let mut channels = String::new();
    let mut receivers = Vec::new();
    let mut secrets = Vec::new();
    for (name, answer) in &cases {
        let r = Hostile::start(Answer::ok());
        for _ in 0..3 {
            r.push(answer.clone());
        }
        let token = format!("{}tok3n{}", name.replace('-', ""), r.port);
        channels.push_str(&format!(
            "[[alert.channel]]\nname = \"{name}\"\nkind = \"slack\"\nwebhook_url = \"{}\"\ntimeout = \"2s\"\n\n",
            r.url(&format!("/services/T0{0}/B0{0}/{token}", r.port))
        ));
        secrets.push(token);
        receivers.push((*name, r));
    }
    // A slow-loris that said 200 has delivered: never send that again.
    let said_ok = Hostile::start(Answer::ok());
    said_ok.push(Answer::SlowLoris(200));
    channels.push_str(&format!(
        "[[alert.channel]]\nname = \"slow-ok\"\nkind = \"slack\"\nwebhook_url = \"{}\"\ntimeout = \"2s\"\n\n",
        said_ok.url("/services/T0SLOWOK/B0SLOWOK/slowoktoken99")
    ));
    secrets.push("slowoktoken99".into());
    channels.push_str(&format!(
        "[[alert.channel]]\nname = \"audit\"\nkind = \"file\"\npath = \"{}\"\n",
        file.display()
    ));
    let cfg = config(t.path(), &channels);
    let log = t.path().join("notify.log");
    raise_alert(&cfg);
    let t0 = Instant::now();
    let mut d = Daemon::start(&cfg, &log);

    let got_alert = |r: &Hostile| {
        r.delivered()
            .iter()
            .any(|q| q.json().to_string().contains("job_unit_failed"))
    };
    wait_for(
        "every channel delivers once its server recovers",
        60,
        || receivers.iter().all(|(_, r)| got_alert(r)) && got_alert(&said_ok),
    );
    for (name, _) in &receivers {
        wait_for(
            &format!("notify_channel_failing for {name} on the file channel"),
            20,
            || channel_failing_on_file(&file, name),
        );
    }
    // Let re-sends (if any) happen before counting.
    std::thread::sleep(Duration::from_secs(3));
    let status = notify(&cfg, &["status"]);
    assert!(d.stop().success());
    eprintln!("all delivered after {:?}", t0.elapsed());

    for (name, r) in receivers
        .iter()
        .map(|(n, r)| (*n, r))
        .chain([("slow-ok", &said_ok)])
    {
        let seen = r.seen();
        eprintln!(
            "{name}: {:?}",
            seen.iter().map(|q| q.status).collect::<Vec<_>>()
        );
        // Never twice: no outbox item in two answered-2xx requests.
        let ids: Vec<String> = r
            .delivered()
            .iter()
            .flat_map(|q| slack_ids(&q.json()))
            .collect();
        let mut uniq = ids.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(
            ids.len(),
            uniq.len(),
            "{name}: an item was delivered twice: {ids:?}"
        );
        // Bounded: no attempt took longer than the 2 s timeout plus the
        // longest backoff (1 s Retry-After or retry_max) and scheduling slack.
        for w in seen.windows(2) {
            let gap = w[1].at - w[0].at;
            assert!(
                gap < Duration::from_millis(4500),
                "{name}: {gap:?} between attempts"
            );
        }
    }
    let rl = receivers[0].1.seen();
    assert!(
        rl[3].at - rl[2].at >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    assert_eq!(
        said_ok
            .seen()
            .iter()
            .filter(|q| q.json().to_string().contains("job_unit_failed"))
            .count(),
        1,
        "the alert a slow 200 accepted was sent again"
    );
    assert!(
        elsewhere.seen().is_empty(),
        "a redirect was followed to another host"
    );

    let all = everything(&log, &t.path().join("state"), &file, &[status]);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secret(
        "logs, alerts.db, status and the file channel",
        &all,
        &secrets,
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    let longest = log_text.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest < 2000,
        "a log line of {longest} bytes: a reply body was not capped"
    );
}

/// Base64 as AUTH PLAIN and AUTH LOGIN send it, for grepping.
fn b64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A relay that answers AUTH with `535 bad credentials <what you sent>`:
/// neither the password nor its base64 (AUTH PLAIN, AUTH LOGIN) reaches the
/// log, alerts.db, status or the other channel; the mail goes out once the
/// relay accepts.
#[test]
fn an_smtp_relay_that_echoes_the_credentials_gets_them_nowhere() {
    let t = tempfile::tempdir().unwrap();
    let smtp = HostileSmtp::start();
    let file = t.path().join("alerts.jsonl");
    let password = "smtp-Pa55word-secret";
    let cfg = config(
        t.path(),
        &format!(
            "[[alert.channel]]\nname = \"ops-mail\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             smtp_tls = \"none\"\nusername = \"vigil\"\npassword = \"{password}\"\nfrom = \"vigil@example.org\"\n\
             to = [\"ops@example.org\"]\ntimeout = \"2s\"\n\n\
             [[alert.channel]]\nname = \"audit\"\nkind = \"file\"\npath = \"{}\"\n",
            smtp.port,
            file.display()
        ),
    );
    let log = t.path().join("notify.log");
    raise_alert(&cfg);
    let mut d = Daemon::start(&cfg, &log);
    wait_for(
        "notify_channel_failing for ops-mail on the file channel",
        30,
        || channel_failing_on_file(&file, "ops-mail"),
    );
    let status = notify(&cfg, &["status"]);
    assert!(text(&status).contains("535"), "{}", text(&status));
    smtp.accept();
    wait_for("the mail once the relay accepts", 30, || {
        smtp.messages()
            .iter()
            .any(|m| m.contains("job_unit_failed") || m.contains("vigil-snapshot"))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.stop().success());
    let items: Vec<String> = smtp
        .messages()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("x-vigil-items:"))
                .map(str::to_owned)
        })
        .collect();
    let mut uniq = items.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(items.len(), uniq.len(), "a mail went out twice: {items:?}");

    let plain = b64(format!("\0vigil\0{password}").as_bytes());
    let login = b64(password.as_bytes());
    let all = everything(&log, &t.path().join("state"), &file, &[status]);
    assert_no_secret(
        "logs, alerts.db, status and the file channel",
        &all,
        &[password, "Pa55word", &plain, &login],
    );
}

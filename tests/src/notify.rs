//! The alerting suite's harness (tests/tests/alert/): loopback HTTP
//! receivers with scripted faults, test certificates, vigil-notify runs and
//! reads of its outbox.

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{read_request, write_response, HttpRequest};
pub use crate::proc::{wait_for, wait_port, Proc};
pub use crate::{free_port, text};

/// What a receiver does with the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers, body.
    Status(u16, Vec<(String, String)>, String),
    /// Read the request, then say nothing for this long (client timeout).
    Hang(Duration),
    /// Read the request, wait, then answer 200: a slow but working server.
    Slow(Duration, u16, String),
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply::Status(200, vec![], body.into())
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with (0 for Hang).
    pub status: u16,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A loopback HTTP/1.1 server that follows a script, then a default reply.
#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("port", &self.port)
            .finish()
    }
}

impl Receiver {
    pub fn start(default: Reply) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let r = Receiver {
            port,
            script: Arc::default(),
            default: Arc::new(Mutex::new(default)),
            requests: Arc::default(),
        };
        let rr = r.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let rr = rr.clone();
                std::thread::spawn(move || rr.serve(s));
            }
        });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn push(&self, r: Reply) {
        self.script.lock().expect("lock").push_back(r);
    }

    pub fn set_default(&self, r: Reply) {
        *self.default.lock().expect("lock") = r;
    }

    pub fn all(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// Requests answered with 2xx.
    pub fn delivered(&self) -> Vec<Request> {
        self.all()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    fn serve(&self, s: TcpStream) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let mut rd = BufReader::new(match s.try_clone() {
            Ok(c) => c,
            Err(_) => return,
        });
        let mut w = s;
        loop {
            let Some(HttpRequest {
                method,
                path,
                headers,
                body,
            }) = read_request(&mut rd)
            else {
                return;
            };
            let reply = self
                .script
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or_else(|| self.default.lock().expect("lock").clone());
            let (status, extra, text) = match reply {
                Reply::Status(s, h, b) => (s, h, b),
                Reply::Hang(d) => {
                    self.record(method, path, headers, body, 0);
                    std::thread::sleep(d);
                    return;
                }
                Reply::Slow(d, s, b) => {
                    // Received (and acted on, like Slack would) before the answer.
                    self.record(
                        method.clone(),
                        path.clone(),
                        headers.clone(),
                        body.clone(),
                        s,
                    );
                    std::thread::sleep(d);
                    let resp = format!("HTTP/1.1 {s} X\r\ncontent-length: {}\r\n\r\n{b}", b.len());
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                    continue;
                }
            };
            self.record(method, path, headers, body, status);
            if write_response(&mut w, status, "text/plain", &extra, text.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn record(
        &self,
        method: String,
        path: String,
        headers: BTreeMap<String, String>,
        body: Vec<u8>,
        status: u16,
    ) {
        self.requests.lock().expect("lock").push(Request {
            at: Instant::now(),
            method,
            path,
            headers,
            body,
            status,
        });
    }
}

/// A test CA and a server certificate for 127.0.0.1 / localhost
/// ([`crate::tls::make`]), and an untrusted self-signed one.
#[derive(Debug)]
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

pub fn certs(dir: &Path) -> Certs {
    let t = crate::tls::make(dir);
    let (rogue_cert, rogue_key) = crate::health::self_signed(dir, "rogue", 2);
    Certs {
        ca: t.ca,
        cert: t.server_cert,
        key: t.server_key,
        rogue_cert,
        rogue_key,
    }
}

/// A TLS server with a certificate nobody trusts (openssl s_server).
pub fn bad_tls_server(c: &Certs) -> (Proc, u16) {
    let port = free_port();
    (
        crate::health::s_server(port, &c.rogue_cert, &c.rogue_key, None),
        port,
    )
}

/// The [cluster] and [state] part of a test config.
pub fn config_head(state: &Path) -> String {
    format!(
        r#"[cluster]
name = "prod"
members = [
  {{ name = "cp-1", endpoint = "http://127.0.0.1:12379" }},
  {{ name = "cp-2", endpoint = "http://127.0.0.1:22379" }},
  {{ name = "cp-3", endpoint = "http://127.0.0.1:32379" }},
]

[state]
dir = "{}"
"#,
        state.display()
    )
}

pub fn write_config(dir: &Path, text: &str) -> (PathBuf, vigil_core::Config) {
    let p = dir.join("vigil.toml");
    std::fs::write(&p, text).expect("write config");
    let cfg = vigil_core::Config::load(&p).unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    (p, cfg)
}

/// Runs vigil-notify to completion.
pub fn notify(config: &Path, args: &[&str]) -> Output {
    Command::new(crate::bin("vigil-notify"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("VIGIL_LOG")
        .output()
        .expect("run vigil-notify")
}

/// Starts `vigil-notify run` (long-running) with debug logs.
pub fn notify_daemon(config: &Path, log: &Path) -> Proc {
    let f = std::fs::File::create(log).expect("log file");
    Proc::spawn(
        "vigil-notify run",
        Command::new(crate::bin("vigil-notify"))
            .arg("--config")
            .arg(config)
            .args(["-v", "run"])
            .stdout(Stdio::null())
            .stderr(f),
    )
}

/// Fails if any secret appears in `output`.
pub fn assert_no_secret(what: &str, output: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !output.contains(s),
            "{what} leaks the secret {s:?}:\n{output}"
        );
    }
}

/// Lost and duplicated outbox ids, given the ids queued and the ids seen.
pub fn count(queued: &[i64], seen: &[i64]) -> (usize, usize) {
    let mut n: BTreeMap<i64, usize> = BTreeMap::new();
    for id in seen {
        *n.entry(*id).or_default() += 1;
    }
    let lost = queued.iter().filter(|id| !n.contains_key(id)).count();
    let dups = n.values().map(|c| c.saturating_sub(1)).sum();
    (lost, dups)
}

/// Outbox ids of undelivered and delivered rows, read with the sqlite library.
pub fn outbox_ids(state: &Path, channel: &str) -> Vec<i64> {
    let c = rusqlite::Connection::open(state.join("alerts.db")).expect("db");
    let mut st = c
        .prepare("SELECT id FROM outbox WHERE channel = ?1 ORDER BY id")
        .expect("prepare");
    st.query_map([channel], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

pub fn pending(state: &Path, channel: &str) -> i64 {
    let c = rusqlite::Connection::open(state.join("alerts.db")).expect("db");
    c.query_row(
        "SELECT COUNT(*) FROM outbox WHERE channel = ?1 AND sent_ms IS NULL",
        [channel],
        |r| r.get(0),
    )
    .expect("count")
}

/// Outbox ids carried by a Slack message (block ids `vigil-EVENT-ID`).
pub fn slack_ids(v: &Value) -> Vec<i64> {
    v["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["block_id"].as_str())
        .filter_map(|id| id.rsplit('-').next()?.parse().ok())
        .collect()
}

/// Outbox ids carried by a Teams card (element ids `vigil-EVENT-ID`).
pub fn teams_ids(v: &Value) -> Vec<i64> {
    v["attachments"][0]["content"]["body"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["id"].as_str())
        .filter_map(|id| id.rsplit('-').next()?.parse().ok())
        .collect()
}

/// Outcome records for a run: `(member, ok, stage)`.
pub fn outcomes(
    run: &str,
    list: &[(&str, bool, vigil_core::outcome::Stage)],
) -> Vec<vigil_core::outcome::Outcome> {
    list.iter()
        .map(|(m, ok, stage)| vigil_core::outcome::Outcome {
            proof: None,
            job: vigil_core::jobs::Source::Snapshot,
            run_id: run.into(),
            cluster: "prod".into(),
            subject: (*m).into(),
            ok: *ok,
            stage: *stage,
            error: (!ok).then(|| format!("{m}: connection refused")),
            archive: None,
            time: vigil_core::rfc3339(vigil_core::now()),
            duration_ms: 12,
        })
        .collect()
}

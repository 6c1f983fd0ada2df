//! A loopback webhook receiver that answers the way a hostile or broken
//! server does: echoing the secret URL in its error body, 429 with
//! Retry-After, a huge body, a body that never ends, invalid UTF-8, a
//! redirect elsewhere. Each request takes the next answer of the script, then
//! the default one.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A plain answer.
    Status(u16, Vec<(String, String)>, Vec<u8>),
    /// This status, with a body that repeats the request's path in every
    /// form a server might (raw, JSON-escaped, percent-decoded, the last path
    /// segment alone, a slice of it), between terminal escape sequences and
    /// newlines that would forge log lines.
    EchoSecret(u16),
    /// This status and `n` bytes of body that repeat the request path.
    Huge(u16, usize),
    /// This status, a Content-Length of 1 MB, then one byte every second
    /// for as long as the client listens.
    SlowLoris(u16),
    /// 307 to this URL.
    Redirect(String),
}

impl Answer {
    pub fn ok() -> Answer {
        Answer::Status(200, vec![], b"ok".to_vec())
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone)]
pub struct Hostile {
    pub port: u16,
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hostile").field("port", &self.port).finish()
    }
}

impl Hostile {
    pub fn start(default: Answer) -> Hostile {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let h = Hostile {
            port: l.local_addr().unwrap().port(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(default)),
            seen: Arc::default(),
        };
        let hh = h.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let hh = hh.clone();
                std::thread::spawn(move || hh.serve(s));
            }
        });
        h
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn push(&self, a: Answer) {
        self.script.lock().unwrap().push_back(a);
    }

    pub fn set_default(&self, a: Answer) {
        *self.default.lock().unwrap() = a;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests answered with 2xx.
    pub fn delivered(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    fn serve(&self, s: TcpStream) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let Ok(c) = s.try_clone() else { return };
        let mut rd = BufReader::new(c);
        let mut w = s;
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut headers = BTreeMap::new();
            loop {
                let mut h = String::new();
                if rd.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if rd.read_exact(&mut body).is_err() {
                return;
            }
            let answer = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| self.default.lock().unwrap().clone());
            let (status, extra, text) = match answer {
                Answer::Status(s, h, b) => (s, h, b),
                Answer::EchoSecret(s) => (s, vec![], echo(&path).into_bytes()),
                Answer::Huge(s, n) => {
                    let unit = format!("{path} {} ", echo(&path));
                    let mut b = unit.repeat(n / unit.len() + 1).into_bytes();
                    b.truncate(n);
                    (s, vec![], b)
                }
                Answer::Redirect(to) => (307, vec![("location".into(), to)], Vec::new()),
                Answer::SlowLoris(s) => {
                    self.record(path.clone(), body, s);
                    let head = format!("HTTP/1.1 {s} X\r\ncontent-length: 1048576\r\n\r\n");
                    if w.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    for b in path.bytes().cycle() {
                        std::thread::sleep(Duration::from_secs(1));
                        if w.write_all(&[b]).and_then(|()| w.flush()).is_err() {
                            return;
                        }
                    }
                    return;
                }
            };
            self.record(path, body, status);
            let mut resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
                text.len()
            );
            for (k, v) in extra {
                resp.push_str(&format!("{k}: {v}\r\n"));
            }
            resp.push_str("\r\n");
            let mut out = resp.into_bytes();
            out.extend_from_slice(&text);
            if w.write_all(&out).is_err() {
                return;
            }
        }
    }

    fn record(&self, path: String, body: Vec<u8>, status: u16) {
        self.seen.lock().unwrap().push(Seen {
            at: Instant::now(),
            path,
            body,
            status,
        });
    }
}

/// The request path in every form a careless server echoes it.
fn echo(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or_default();
    let decoded = percent_decode(path);
    let middle: String = {
        let c: Vec<char> = last.chars().collect();
        c[c.len() / 4..c.len() * 3 / 4].iter().collect()
    };
    format!(
        "{{\"error\":\"invalid_token\",\"token\":\"{last}\",\"path\":\"{}\"}}\n\x1b[31mERROR\x1b[0m \
         token={last}\r\nINFO delivered ok\n decoded={decoded} part={middle} \u{202e}{last}",
        path.replace('/', "\\/")
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Ok(v) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every place a secret could end up on the bastion after vigil-notify ran:
/// the raw bytes of the alert store (and its WAL), for grepping.
pub fn store_bytes(state: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["alerts.db", "alerts.db-wal", "alerts.db-journal"] {
        if let Ok(b) = std::fs::read(state.join(f)) {
            all.extend(b);
        }
    }
    all
}

/// True when `needle` occurs in `hay` (bytes).
pub fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

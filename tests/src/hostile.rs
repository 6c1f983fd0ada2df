//! A loopback webhook receiver that answers the way a hostile or broken
//! server does: echoing the secret URL in its error body, 429 with
//! Retry-After, a huge body, a body that never ends, invalid UTF-8, a
//! redirect elsewhere. Each request takes the next answer of the script, then
//! the default one.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{read_request, write_response, HttpRequest};

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
            let Some(HttpRequest { path, body, .. }) = read_request(&mut rd) else {
                return;
            };
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
            if write_response(&mut w, status, "application/json", &extra, &text).is_err() {
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

/// A loopback SMTP relay without TLS that rejects AUTH with a 535 reply
/// echoing the credentials it got (base64 and decoded), until `accept` is
/// set; then it takes every message. For `smtp_tls = "none"` on loopback.
#[derive(Clone)]
pub struct HostileSmtp {
    pub port: u16,
    accept: Arc<std::sync::atomic::AtomicBool>,
    /// AUTH attempts seen.
    pub auths: Arc<std::sync::atomic::AtomicUsize>,
    /// The DATA of every accepted message.
    messages: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for HostileSmtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileSmtp")
            .field("port", &self.port)
            .finish()
    }
}

impl HostileSmtp {
    pub fn start() -> HostileSmtp {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let h = HostileSmtp {
            port: l.local_addr().unwrap().port(),
            accept: Arc::default(),
            auths: Arc::default(),
            messages: Arc::default(),
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

    pub fn accept(&self) {
        self.accept.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    fn serve(&self, s: TcpStream) {
        use std::sync::atomic::Ordering;
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let Ok(c) = s.try_clone() else { return };
        let mut rd = BufReader::new(c);
        let mut w = s;
        let say = |w: &mut TcpStream, m: &str| w.write_all(m.as_bytes()).is_ok();
        if !say(&mut w, "220 hostile ESMTP\r\n") {
            return;
        }
        // Where an AUTH exchange is: the next line is its credentials.
        enum Auth {
            None,
            Plain,
            LoginUser,
            LoginPass(String),
        }
        let mut auth = Auth::None;
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end().to_string();
            let up = l.to_ascii_uppercase();
            let arg = l.split_whitespace().nth(2).map(str::to_owned);
            let creds = match std::mem::replace(&mut auth, Auth::None) {
                Auth::Plain => Some(l.clone()),
                Auth::LoginUser => {
                    auth = Auth::LoginPass(l.clone());
                    say(&mut w, "334 UGFzc3dvcmQ6\r\n");
                    continue;
                }
                Auth::LoginPass(u) => Some(format!("{u} {l}")),
                Auth::None if up.starts_with("AUTH PLAIN") => match arg {
                    Some(a) => Some(a),
                    None => {
                        auth = Auth::Plain;
                        say(&mut w, "334 \r\n");
                        continue;
                    }
                },
                Auth::None if up.starts_with("AUTH LOGIN") => {
                    match arg {
                        Some(u) => {
                            auth = Auth::LoginPass(u);
                            say(&mut w, "334 UGFzc3dvcmQ6\r\n");
                        }
                        None => {
                            auth = Auth::LoginUser;
                            say(&mut w, "334 VXNlcm5hbWU6\r\n");
                        }
                    }
                    continue;
                }
                Auth::None => None,
            };
            let reply = if let Some(creds) = creds {
                self.auths.fetch_add(1, Ordering::SeqCst);
                if self.accept.load(Ordering::SeqCst) {
                    "235 2.7.0 ok\r\n".to_string()
                } else {
                    let decoded: String = creds
                        .split(' ')
                        .map(|c| String::from_utf8_lossy(&b64_decode(c)).replace('\0', " "))
                        .collect::<Vec<_>>()
                        .join(" ");
                    format!("535 5.7.8 bad credentials {creds} ({decoded}) for you\r\n")
                }
            } else if up.starts_with("EHLO") || up.starts_with("HELO") {
                "250-hostile\r\n250 AUTH PLAIN LOGIN\r\n".to_string()
            } else if up.starts_with("DATA") {
                if !say(&mut w, "354 go on\r\n") {
                    return;
                }
                let mut data = String::new();
                loop {
                    let mut d = String::new();
                    if rd.read_line(&mut d).unwrap_or(0) == 0 {
                        return;
                    }
                    if d == ".\r\n" || d == ".\n" {
                        break;
                    }
                    data.push_str(&d);
                }
                self.messages.lock().unwrap().push(data);
                "250 2.0.0 queued\r\n".to_string()
            } else if up.starts_with("QUIT") {
                let _ = say(&mut w, "221 bye\r\n");
                return;
            } else {
                "250 ok\r\n".to_string()
            };
            if !say(&mut w, &reply) {
                return;
            }
        }
    }
}

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

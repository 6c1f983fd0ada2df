//! Peers for the health checks: a real node_exporter, `openssl s_server` as
//! a TLS endpoint, and scripted HTTP servers that answer like a Kubernetes
//! API server's `/readyz` and `/livez` (ok, 500 with a verbose body, or hang).

pub mod report;

use crate::proc::wait_port;
pub use crate::proc::Proc;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Debian's prometheus-node-exporter on loopback with only the collectors
/// vigil-health reads.
pub fn node_exporter(port: u16) -> Proc {
    let p = Proc::spawn(
        "prometheus-node-exporter",
        Command::new("prometheus-node-exporter")
            .args([
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--collector.disable-defaults",
                "--collector.filesystem",
                "--collector.meminfo",
                "--collector.loadavg",
                "--collector.cpu",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_port(port, 20);
    p
}

/// `openssl s_server -www` on loopback: a real TLS endpoint that answers
/// any GET with 200. With `ca`, it requires a client certificate from it.
pub fn s_server(port: u16, cert: &Path, key: &Path, ca: Option<&Path>) -> Proc {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_server")
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-www")
        .arg("-quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(ca) = ca {
        cmd.arg("-Verify").arg("1").arg("-CAfile").arg(ca);
    }
    let p = Proc::spawn("openssl s_server", &mut cmd);
    wait_port(port, 20);
    p
}

/// A self-signed certificate (and key) valid for `days`, made by openssl.
pub fn self_signed(dir: &Path, name: &str, days: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", &days.to_string(), "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl req: {}", crate::text(&o));
    (cert, key)
}

/// How a [`Readyz`] server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// HTTP 500 with a verbose body naming a failing check.
    Fail,
    /// Accepts and never answers.
    Hang,
}

/// The verbose body a failing `/readyz` sends.
pub const FAILING_BODY: &str = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]poststarthook/start-apiserver-admission-initializer ok\n[+]informer-sync ok\nreadyz check failed\n";

/// A loopback HTTP server answering `/readyz` and `/livez` like an API
/// server. With a token, requests without `Authorization: Bearer <token>` get 401.
#[derive(Debug)]
pub struct Readyz {
    pub port: u16,
    /// Request lines seen, e.g. `GET /readyz?verbose HTTP/1.1`.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Readyz {
    pub fn start(mode: Mode, token: Option<&str>) -> Readyz {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st, rq) = (stop.clone(), requests.clone());
        let token = token.map(String::from);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let (st, rq, token) = (st.clone(), rq.clone(), token.clone());
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let first = head.lines().next().unwrap_or_default().to_string();
                    rq.lock().unwrap().push(first.clone());
                    if mode == Mode::Hang {
                        while !st.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        return;
                    }
                    let authed = token.as_ref().is_none_or(|t| {
                        head.lines().any(|l| {
                            l.to_ascii_lowercase().starts_with("authorization:")
                                && l.trim_end().ends_with(&format!("Bearer {t}"))
                        })
                    });
                    let probe = if first.contains("/livez") {
                        "livez"
                    } else {
                        "readyz"
                    };
                    let (code, body) = if !authed {
                        ("401 Unauthorized", "Unauthorized\n".to_string())
                    } else if mode == Mode::Fail {
                        (
                            "500 Internal Server Error",
                            FAILING_BODY.replace("readyz", probe),
                        )
                    } else {
                        (
                            "200 OK",
                            format!("[+]ping ok\n[+]etcd ok\n{probe} check passed\n"),
                        )
                    };
                    let _ = write!(
                        c,
                        "HTTP/1.1 {code}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Readyz {
            port,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Readyz {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

//! Helpers for the fault-injection suite (tests/tests/faults/): S3 sinks on a
//! real radosgw, the multipart uploads a killed run leaves there, and the
//! checks behind the three promises.

use crate::ceph::{Rgw, ACCESS_KEY, SECRET_KEY};
use std::path::Path;
use std::time::{Duration, Instant};

/// An S3 sink section for `rgw`, bucket `etcd-backups`, with 5 MiB parts and
/// short retries so that an outage fails in seconds.
pub fn s3_sink(rgw: &Rgw, name: &str, prefix: &str, keep_last: u32) -> String {
    format!(
        "\n[[sink]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"{}\"\nallow_http = true\nbucket = \"etcd-backups\"\nregion = \"us-east-1\"\nprefix = \"{prefix}\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\npath_style = true\npart_size = \"5MiB\"\nretries = 1\nretry_timeout = \"2s\"\ntimeout = \"30s\"\nkeep_last = {keep_last}\n",
        rgw.endpoint()
    )
}

/// Incomplete multipart uploads in `bucket` as (key, upload id), from s3cmd.
pub fn multipart_uploads(rgw: &Rgw, bucket: &str) -> Vec<(String, String)> {
    let o = rgw.s3cmd(&["multipart", &format!("s3://{bucket}")]);
    assert!(o.status.success(), "s3cmd multipart: {}", crate::text(&o));
    // "Initiated\tPath\tId" then one tab-separated line per upload.
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let url = f.get(1)?.strip_prefix(&format!("s3://{bucket}/"))?;
            Some((url.to_string(), f.get(2)?.trim().to_string()))
        })
        .collect()
}

/// Waits until an incomplete multipart upload exists under `prefix`.
pub fn wait_for_upload(rgw: &Rgw, bucket: &str, prefix: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !multipart_uploads(rgw, bucket)
        .iter()
        .any(|(k, _)| k.starts_with(prefix))
    {
        assert!(
            Instant::now() < deadline,
            "no multipart upload under {prefix} appeared within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Object keys (with sizes) under `prefix` in `bucket`.
pub fn keys(rgw: &Rgw, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
    rgw.ls(&format!("s3://{bucket}/{prefix}"))
        .into_iter()
        .map(|(k, n)| {
            (
                k.trim_start_matches(&format!("s3://{bucket}/")).to_string(),
                n,
            )
        })
        .collect()
}

/// Promise 1 on a sink: every archive key has its manifest and every manifest
/// its archive, of the size the manifest names (no half object under an
/// archive's key).
pub fn assert_only_complete_pairs(objs: &[(String, u64)], rgw: &Rgw, bucket: &str) {
    for (k, n) in objs {
        if let Some(a) = k.strip_suffix(".json") {
            let size = objs.iter().find(|(x, _)| x == a).map(|(_, n)| *n);
            let got = rgw.s3cmd(&["get", "--quiet", &format!("s3://{bucket}/{k}"), "-"]);
            let m: serde_json::Value = serde_json::from_slice(&got.stdout)
                .unwrap_or_else(|e| panic!("manifest {k}: {e}: {}", crate::text(&got)));
            assert_eq!(
                size,
                m["archive_size"].as_u64(),
                "{a}: the archive beside manifest {k} is missing or of the wrong size"
            );
        } else {
            assert!(k.ends_with(".age"), "unexpected object {k} ({n} bytes)");
            assert!(
                objs.iter().any(|(x, _)| *x == format!("{k}.json")),
                "archive {k} has no manifest: a half copy is visible"
            );
        }
    }
}

/// Promise 2 on a directory tree: nothing but sealed archives and their
/// manifests (no `.partial`, no staging file, no decrypted snapshot).
pub fn assert_no_plaintext(root: &Path) {
    let o = std::process::Command::new("find")
        .arg(root)
        .args(["-type", "f"])
        .output()
        .unwrap();
    for f in String::from_utf8_lossy(&o.stdout).lines() {
        let name = f.rsplit('/').next().unwrap_or(f);
        let sealed =
            (name.ends_with(".age") || name.ends_with(".age.json")) && !name.starts_with('.');
        assert!(sealed, "{f} is left under {}", root.display());
        if name.ends_with(".age") {
            let head = std::fs::read(f).unwrap();
            assert!(
                head.starts_with(b"age-encryption.org/v1"),
                "{f} is not an age file"
            );
        }
    }
}

/// A file alert channel writing to `path` (append to `ConfigBuilder::extra`).
pub fn file_channel(path: &Path) -> String {
    format!(
        "\n[[alert.channel]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
        path.display()
    )
}

/// Promise 3: delivers the outbox once and returns the keys of the alerts
/// that fired (e.g. `sink_failed{sink="rgw"}`), in order.
pub fn fired(config: &Path, alerts: &Path) -> Vec<String> {
    crate::notify_once(config);
    crate::alert_items(alerts)
        .iter()
        .filter(|i| i["event"] == "firing")
        .map(|i| i["alert"]["key"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A loopback TCP proxy that limits both directions to `bps` bytes per
/// second (vigil_tests::proxy only slows answers; an upload is requests).
#[derive(Debug)]
pub struct SlowLink {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SlowLink {
    pub fn start(upstream_port: u16, bps: u64) -> SlowLink {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((down, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                down.set_nonblocking(false).unwrap();
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                for (from, to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    let s = s.clone();
                    std::thread::spawn(move || slow_pipe(from, to, bps, &s));
                }
            }
        });
        SlowLink { port, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn slow_pipe(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    bps: u64,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16384];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        std::thread::sleep(Duration::from_secs_f64(n as f64 / bps as f64));
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

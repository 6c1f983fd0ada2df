//! A real Ceph radosgw (Debian's Ceph 16) on loopback, via tests/ceph/*.sh.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "VIGILTESTKEY";
pub const SECRET_KEY: &str = "VIGILTESTSECRET";

#[derive(Debug)]
pub struct Rgw {
    pub dir: PathBuf,
    pub port: u16,
    scripts: PathBuf,
}

/// Why radosgw did not come up: tests/ceph/start-rgw.sh's output.
#[derive(Debug)]
pub struct StartError {
    pub output: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "start-rgw.sh failed: {}", self.output)
    }
}

impl std::error::Error for StartError {}

impl Rgw {
    pub fn start(dir: &Path) -> Rgw {
        Self::try_start(dir, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Rgw::start`], with `CEPH_ARGS` for every daemon (the bench
    /// sizes the in-memory OSD and turns off the GC's wait), and an error
    /// instead of a panic.
    pub fn try_start(dir: &Path, ceph_args: Option<&str>) -> Result<Rgw, StartError> {
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("ceph");
        let port = crate::free_port();
        // mon v2, v1 and the OSD/MGR range (base+10..base+60), all free.
        let base = crate::free_block(64, 20000, 32000);
        let mut cmd = Command::new("bash");
        cmd.arg(scripts.join("start-rgw.sh"))
            .arg(dir)
            .arg(port.to_string())
            .arg(base.to_string());
        if let Some(a) = ceph_args {
            cmd.env("CEPH_ARGS", a);
        }
        let o = cmd.output().map_err(|e| StartError {
            output: format!("bash: {e}"),
        })?;
        let rgw = Rgw {
            dir: dir.to_path_buf(),
            port,
            scripts,
        };
        if !(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ready")) {
            return Err(StartError {
                output: crate::text(&o),
            });
        }
        Ok(rgw)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("run/client.rgw.test.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills radosgw only (the cluster stays up), as a crash or outage would.
    pub fn kill_rgw(&self) {
        if let Some(p) = self.pid() {
            let _ = Command::new("kill").arg("-9").arg(p.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{p}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn start_rgw(&self) {
        let conf = self.dir.join("ceph.conf");
        let o = Command::new("radosgw")
            .arg("-c")
            .arg(&conf)
            .args(["-n", "client.rgw.test"])
            .output()
            .unwrap();
        assert!(o.status.success(), "radosgw: {}", crate::text(&o));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "radosgw did not come back");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The s3cmd argv for this radosgw (no config file), before the command.
    pub fn s3cmd_argv(&self) -> Vec<String> {
        let host = format!("127.0.0.1:{}", self.port);
        [
            "s3cmd",
            "--no-ssl",
            "--access_key",
            ACCESS_KEY,
            "--secret_key",
            SECRET_KEY,
            "--host",
            &host,
            "--host-bucket",
            &host,
            "--region",
            "us-east-1",
            "-c",
            "/dev/null",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Runs the independent s3cmd client against this radosgw.
    pub fn s3cmd(&self, args: &[&str]) -> Output {
        let argv = self.s3cmd_argv();
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(args)
            .output()
            .unwrap()
    }

    /// Frees deleted objects now: RGW's garbage collector waits two hours
    /// by default.
    pub fn gc(&self) {
        let _ = Command::new("radosgw-admin")
            .arg("-c")
            .arg(self.dir.join("ceph.conf"))
            .args(["gc", "process", "--include-all"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// Another radosgw user (for keys with fewer rights than the owner's).
    pub fn add_user(&self, uid: &str, access_key: &str, secret_key: &str) {
        let o = Command::new("radosgw-admin")
            .arg("-c")
            .arg(self.dir.join("ceph.conf"))
            .args(["user", "create", "--uid", uid, "--display-name", uid])
            .arg(format!("--access-key={access_key}"))
            .arg(format!("--secret-key={secret_key}"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "radosgw-admin user create: {}",
            crate::text(&o)
        );
    }

    /// One S3 request from curl's own SigV4 signer (an independent client,
    /// for what s3cmd cannot do: Object Lock, versions, policies). `target`
    /// is `/bucket[/key][?query]`, with every query key as `k=` and sorted.
    /// Returns the HTTP status, the response headers and body.
    pub fn curl(
        &self,
        key: (&str, &str),
        method: &str,
        target: &str,
        headers: &[&str],
        body: Option<&str>,
    ) -> (u16, String, String) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-D",
            "-",
            "-X",
            method,
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
        ])
        .arg("--user")
        .arg(format!("{}:{}", key.0, key.1))
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
        for h in headers {
            c.args(["-H", h]);
        }
        if let Some(b) = body {
            c.args(["--data-binary", b]);
        }
        let o = c
            .arg(format!("{}{target}", self.endpoint()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "curl {method} {target}: {}",
            crate::text(&o)
        );
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }

    pub fn make_bucket(&self, name: &str) {
        let o = self.s3cmd(&["mb", &format!("s3://{name}")]);
        assert!(o.status.success(), "s3cmd mb: {}", crate::text(&o));
    }

    /// Object keys (with sizes) under a prefix, from s3cmd.
    pub fn ls(&self, url: &str) -> Vec<(String, u64)> {
        let o = self.s3cmd(&["ls", "-r", url]);
        assert!(o.status.success(), "s3cmd ls: {}", crate::text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4).then(|| (f[3].to_string(), f[2].parse().unwrap_or(0)))
            })
            .collect()
    }
}

impl Drop for Rgw {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(self.scripts.join("stop-rgw.sh"))
            .arg(&self.dir)
            .status();
    }
}

//! fake-gcs-server (a Google Cloud Storage emulator) on loopback over https,
//! started by tests/gcs/start-fake-gcs.sh with the test CA's server
//! certificate. Its JSON API seeds and lists the bucket from outside vigil.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fake-gcs-server; killed when dropped.
#[derive(Debug)]
pub struct FakeGcs {
    pub port: u16,
    /// The CA that signs its certificate (a sink's `ca_file`).
    pub ca: PathBuf,
    /// A service account file with `disable_oauth`: the emulator takes no token.
    pub service_account: PathBuf,
    pid: i32,
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FakeGcs {
    pub fn start(dir: &Path) -> FakeGcs {
        let certs = crate::tls::make(&dir.join("certs"));
        let port = crate::free_port();
        let out = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("gcs/start-fake-gcs.sh"))
            .arg(port.to_string())
            .arg(dir)
            .arg(&certs.server_cert)
            .arg(&certs.server_key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start-fake-gcs.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let service_account = dir.join("service-account.json");
        std::fs::write(
            &service_account,
            r#"{"client_email": "vigil@test.invalid", "private_key": "", "private_key_id": "", "disable_oauth": true}"#,
        )
        .unwrap();
        std::fs::set_permissions(&service_account, std::fs::Permissions::from_mode(0o600)).unwrap();
        FakeGcs {
            port,
            ca: certs.ca,
            service_account,
            pid,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn curl(&self, args: &[&str]) -> Output {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--cacert"])
            .arg(&self.ca)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {}: {}",
            args.join(" "),
            crate::text(&out)
        );
        out
    }

    pub fn make_bucket(&self, name: &str) {
        self.curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("{{\"name\":\"{name}\"}}"),
            &format!("{}/storage/v1/b", self.endpoint()),
        ]);
    }

    /// Uploads `file` as object `name`, through the JSON API.
    pub fn upload(&self, bucket: &str, name: &str, file: &Path) {
        self.curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!(
                "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
                self.endpoint(),
                encode(name)
            ),
        ]);
    }

    /// Uploads every file under `root`, named by its path below `root`;
    /// returns how many.
    pub fn upload_tree(&self, bucket: &str, root: &Path) -> usize {
        let files: Vec<PathBuf> = crate::files_under(root)
            .into_iter()
            .filter(|f| f.is_file())
            .collect();
        for f in &files {
            let name = f.strip_prefix(root).unwrap().to_str().unwrap();
            self.upload(bucket, name, f);
        }
        files.len()
    }

    /// Every object in the bucket with its size, as the JSON API lists them.
    pub fn objects(&self, bucket: &str) -> Vec<(String, u64)> {
        let out = self.curl(&[&format!("{}/storage/v1/b/{bucket}/o", self.endpoint())]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut o: Vec<(String, u64)> = v["items"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_string(),
                    i["size"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        o.sort();
        o
    }

    /// The `[[sink]]` table of a gcs sink on this server.
    pub fn sink(&self, name: &str, bucket: &str, extra: &str) -> String {
        format!(
            "\n[[sink]]\nname = \"{name}\"\nkind = \"gcs\"\nbucket = \"{bucket}\"\nservice_account_file = \"{}\"\nendpoint = \"{}\"\nca_file = \"{}\"\n{extra}",
            self.service_account.display(),
            self.endpoint(),
            self.ca.display()
        )
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.pid))
            .status();
    }
}

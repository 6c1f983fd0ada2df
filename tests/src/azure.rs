//! Azurite (Microsoft's Azure Storage emulator, blob service) on loopback,
//! started by tests/azure/start-azurite.sh, with the well-known dev account.

use std::path::Path;
use std::process::Command;

pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite blob service; killed when dropped.
#[derive(Debug)]
pub struct Azurite {
    pub port: u16,
    pid: i32,
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("azure")
        .join(name)
}

impl Azurite {
    pub fn start(dir: &Path) -> Azurite {
        let port = crate::free_port();
        let out = Command::new("bash")
            .arg(script("start-azurite.sh"))
            .arg(port.to_string())
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start-azurite.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        Azurite { port, pid }
    }

    /// The endpoint a sink names (path-style, with the account).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    pub fn make_container(&self, name: &str) {
        let out = Command::new("bash")
            .arg(script("make-container.sh"))
            .arg(self.port.to_string())
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make-container.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `[[sink]]` table of an azure sink on this Azurite.
    pub fn sink(&self, name: &str, container: &str, extra: &str) -> String {
        format!(
            "\n[[sink]]\nname = \"{name}\"\nkind = \"azure\"\naccount = \"{ACCOUNT}\"\ncontainer = \"{container}\"\naccess_key = \"{KEY}\"\nendpoint = \"{}\"\nallow_http = true\n{extra}",
            self.endpoint()
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        // setsid made it a group leader: its node children go with it.
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.pid))
            .status();
    }
}

//! Child processes that die with the test, and waiting for them.

use std::net::TcpStream;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when the guard drops, also on panic.
/// Its stdio is what the caller set on the command.
#[derive(Debug)]
pub struct Proc {
    pub child: Option<Child>,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            child: Some(child),
            name: name.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, like a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait up to `within`; returns the output.
    pub fn term(&mut self, within: Duration) -> Output {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let t = Instant::now();
        loop {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            if t.elapsed() > within {
                let _ = c.kill();
                panic!("{} did not stop within {within:?} after SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        c.wait_with_output().expect("output")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `f` is true or panics after `secs`.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16, secs: u64) {
    wait_for(&format!("port {port}"), secs, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

//! A scratch single-member etcd restored from a plaintext snapshot, for the
//! drill and for the replayed revision bump. It listens on unix sockets in
//! a private (0700) dir only, for clients and peers: no other user on the
//! bastion can connect to the decrypted cluster, and no TCP port is open.

use crate::tool::Tool;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use vigil_core::outcome::Stage;

/// File names of the scratch etcd's sockets in its dir. etcd takes a unix
/// socket's path from the URL's `host:port` part, relative to its working dir.
const CLIENT_SOCKET: &str = "client.sock:0";
const PEER_SOCKET: &str = "peer.sock:0";

/// The longest path a unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What to start, and the limit on waiting for it.
pub(crate) struct Spec<'a> {
    pub tool: &'a Tool,
    pub etcd_bin: &'a Path,
    /// Member name and cluster token suffix.
    pub name: &'a str,
    pub timeout: Duration,
    /// The config key that sets `timeout`, for the error.
    pub timeout_key: &'a str,
    /// More etcd flags (the journal's replay lifts the txn and request limits).
    pub extra_args: &'a [&'a str],
}

/// Kills the scratch etcd when dropped, however the caller ends.
pub(crate) struct Scratch {
    child: Child,
    pub log: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn log_tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// Restores `snap` into `data` and starts a member on it with its sockets in
/// `dir`; returns once it has a leader. `stage` hears Write, then Connect.
pub(crate) fn start(
    spec: &Spec<'_>,
    rt: &tokio::runtime::Runtime,
    snap: &Path,
    dir: &Path,
    data: &Path,
    deadline: Instant,
    stage: &dyn Fn(Stage),
) -> Result<(Scratch, etcd_client::Client), (Stage, String)> {
    stage(Stage::Write);
    let socket = dir.join(CLIENT_SOCKET);
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err((
            Stage::Write,
            format!(
                "the scratch dir {} is too deep for the scratch etcd's unix socket (a socket path holds at most {MAX_SOCKET_PATH} bytes); \
                 use a shorter path (restore.scratch_dir for the drill, --out for a restore)",
                dir.display()
            ),
        ));
    }
    let client = format!("unix://{CLIENT_SOCKET}");
    let peer = format!("unix://{PEER_SOCKET}");
    let name = spec.name;
    let ic = format!("{name}={peer}");
    let token = format!("vigil-{name}");
    // `snap` is always a file fetch verified (the drill's, the replay's input).
    crate::tool::restore_member(&crate::tool::MemberRestore {
        tool: spec.tool,
        snapshot: snap,
        verified: true,
        name,
        data_dir: data,
        initial_cluster: &ic,
        token: &token,
        peer_url: &peer,
        bump_revision: 0,
    })
    .map_err(|e| (Stage::Write, e.to_string()))?;

    stage(Stage::Connect);
    let log = dir.join("etcd.log");
    let logf = std::fs::File::create(&log).map_err(|e| (Stage::Connect, e.to_string()))?;
    // Tied to this process (PR_SET_PDEATHSIG) and in its own process group,
    // so a terminal's ^C reaches only vigil, whose janitor tears down.
    let child = crate::guard::tied(spec.etcd_bin)
        .args(["--name", name, "--data-dir"])
        .arg(data)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &ic,
            "--initial-cluster-token",
            &token,
            "--initial-cluster-state",
            "new",
            "--log-level",
            "warn",
        ])
        .args(spec.extra_args)
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .map_err(|e| {
            (
                Stage::Connect,
                format!("starting {}: {e}", spec.etcd_bin.display()),
            )
        })?;
    let mut scratch = Scratch { child, log };
    let url = format!("unix://{}", socket.display());
    let c = rt.block_on(async {
        loop {
            if let Ok(Some(st)) = scratch.child.try_wait() {
                return Err((
                    Stage::Connect,
                    format!(
                        "the scratch etcd exited ({st}) before it answered: {}",
                        log_tail(&scratch.log)
                    ),
                ));
            }
            if let Some(mut c) = connect_unix(&url).await {
                if matches!(c.status().await, Ok(s) if s.leader() != 0) {
                    return Ok(c);
                }
            }
            if Instant::now() > deadline {
                return Err((
                    Stage::Connect,
                    format!(
                        "the scratch etcd did not answer on {url} within {} ({:?}): {}",
                        spec.timeout_key,
                        spec.timeout,
                        log_tail(&scratch.log)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    Ok((scratch, c))
}

/// An etcd client on a unix socket (`unix:///abs/path`); None until it answers.
async fn connect_unix(url: &str) -> Option<etcd_client::Client> {
    let ep = tonic::transport::Endpoint::from_shared(url.to_string())
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60));
    let ch = ep.connect().await.ok()?;
    etcd_client::Client::from_channel(etcd_client::Channel::Tonic(ch), None)
        .await
        .ok()
}

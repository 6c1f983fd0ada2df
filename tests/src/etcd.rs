//! Real etcd members from Debian's etcd-server, on free loopback ports.

use crate::tls::Certs;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions, Txn, TxnOp};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What etcd logs when a port it was given is taken.
const BIND_COLLISION: &str = "address already in use";

/// Seconds a new cluster's members have to answer with a leader.
const HEALTHY_WITHIN: u64 = 60;

/// Why a cluster did not come up.
#[derive(Debug)]
pub enum StartError {
    /// etcd could not be started (not installed) or its log not opened.
    Spawn(std::io::Error),
    /// A member exited because a port it was given was taken.
    PortTaken {
        member: String,
        log: PathBuf,
        fatal: String,
    },
    /// A member exited (a full disk, a bad flag).
    Exited {
        member: String,
        log: PathBuf,
        fatal: String,
    },
    /// A member did not answer with a leader in time.
    Timeout {
        member: String,
        log: PathBuf,
        fatal: String,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (member, how, log, fatal) = match self {
            StartError::Spawn(e) => {
                return write!(f, "starting etcd (Debian etcd-server): {e}");
            }
            StartError::PortTaken { member, log, fatal } => {
                (member, "exited: a port was taken".to_string(), log, fatal)
            }
            StartError::Exited { member, log, fatal } => (member, "exited".into(), log, fatal),
            StartError::Timeout { member, log, fatal } => (
                member,
                format!("did not come up in {HEALTHY_WITHIN} s"),
                log,
                fatal,
            ),
        };
        write!(
            f,
            "etcd member {member} {how}; from {}:\n{fatal}",
            log.display()
        )
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// What killed etcd, from its log: its fatal lines (a Go stack trace after
/// them hides the cause), else the last `n` lines.
fn fatal_lines(log: &str, n: usize) -> String {
    let fatal = [
        " C | ",
        "panic: ",
        r#""level":"fatal""#,
        r#""level":"panic""#,
    ];
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| fatal.iter().any(|f| l.contains(f)))
        .collect();
    let lines = if lines.is_empty() {
        log.lines().collect()
    } else {
        lines
    };
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A key and its value.
pub type Kv = (Vec<u8>, Vec<u8>);

#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    scheme: &'static str,
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    /// Peers always speak plain HTTP here.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub members: Vec<Member>,
    pub tls: Option<Certs>,
}

impl Cluster {
    /// Starts `names.len()` members as one cluster and waits until it has a leader.
    pub fn start(dir: &Path, names: &[&str], tls: Option<Certs>) -> Cluster {
        Self::start_with(dir, names, tls, &[])
    }

    /// Like [`Cluster::start`], with extra etcd flags for every member, e.g.
    /// `["--quota-backend-bytes", "2097152"]`.
    pub fn start_with(
        dir: &Path,
        names: &[&str],
        tls: Option<Certs>,
        extra_args: &[&str],
    ) -> Cluster {
        Self::try_start(dir, names, tls, extra_args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Cluster::start_with`], but a cluster that does not come up is
    /// an error that names the member and quotes its log (for the bench).
    pub fn try_start(
        dir: &Path,
        names: &[&str],
        tls: Option<Certs>,
        extra_args: &[&str],
    ) -> Result<Cluster, StartError> {
        std::fs::create_dir_all(dir).map_err(StartError::Spawn)?;
        // A port can still be taken by something outside this process between
        // the probe and etcd's bind; start over on fresh ports then.
        for attempt in 1.. {
            let mut c = Self::build(dir, names, tls.clone(), extra_args);
            for i in 0..c.members.len() {
                c.spawn(i)?;
            }
            match c.try_wait_healthy() {
                Ok(()) => return Ok(c),
                Err(e @ StartError::PortTaken { .. }) if attempt < 3 => {
                    eprintln!("etcd test cluster: {e}; retrying on other ports");
                    for i in 0..c.members.len() {
                        c.kill(i);
                        let _ = std::fs::remove_dir_all(&c.members[i].data_dir);
                        let _ = std::fs::remove_file(&c.members[i].log);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!()
    }

    fn build(dir: &Path, names: &[&str], tls: Option<Certs>, extra_args: &[&str]) -> Cluster {
        let token = format!("t-{}", crate::free_port());
        let ports: Vec<(u16, u16)> = names
            .iter()
            .map(|_| (crate::free_port(), crate::free_port()))
            .collect();
        let initial: Vec<String> = names
            .iter()
            .zip(&ports)
            .map(|(n, (_, p))| format!("{n}=http://127.0.0.1:{p}"))
            .collect();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut members = Vec::new();
        for (n, (cp, pp)) in names.iter().zip(&ports) {
            let data_dir = dir.join(format!("etcd-{n}"));
            let mut args: Vec<String> = vec![
                "--name".into(),
                n.to_string(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--listen-client-urls".into(),
                format!("{scheme}://127.0.0.1:{cp}"),
                "--advertise-client-urls".into(),
                format!("{scheme}://127.0.0.1:{cp}"),
                "--listen-peer-urls".into(),
                format!("http://127.0.0.1:{pp}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://127.0.0.1:{pp}"),
                "--initial-cluster".into(),
                initial.join(","),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                token.clone(),
                "--heartbeat-interval".into(),
                "100".into(),
                "--election-timeout".into(),
                "1500".into(),
                "--log-level".into(),
                "warn".into(),
            ];
            if let Some(t) = &tls {
                for (k, v) in [
                    ("--cert-file", &t.server_cert),
                    ("--key-file", &t.server_key),
                    ("--trusted-ca-file", &t.ca),
                ] {
                    args.push(k.into());
                    args.push(v.display().to_string());
                }
                args.push("--client-cert-auth".into());
            }
            args.extend(extra_args.iter().map(|a| a.to_string()));
            members.push(Member {
                name: n.to_string(),
                client_port: *cp,
                peer_port: *pp,
                data_dir,
                scheme,
                child: None,
                args,
                log: dir.join(format!("etcd-{n}.log")),
            });
        }
        Cluster { members, tls }
    }

    fn spawn(&mut self, i: usize) -> Result<(), StartError> {
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(StartError::Spawn)?;
        let child = Command::new("etcd")
            .args(&m.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(StartError::Spawn)?;
        m.child = Some(child);
        Ok(())
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].endpoint()
    }

    /// Each member's peer URL, in order, for [`crate::ConfigBuilder::peers`].
    pub fn peer_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.peer_port))
            .collect()
    }

    /// (name, endpoint) pairs for a vigil config.
    pub fn config_members(&self) -> Vec<(String, String)> {
        (0..self.members.len())
            .map(|i| (self.members[i].name.clone(), self.endpoint(i)))
            .collect()
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        // Rejoin an existing cluster on restart.
        let m = &mut self.members[i];
        if let Some(pos) = m.args.iter().position(|a| a == "new") {
            m.args[pos] = "existing".into();
        }
        self.spawn(i).unwrap_or_else(|e| panic!("{e}"));
        self.wait_healthy();
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].pid()
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    pub async fn client(&self, i: usize) -> Client {
        let mut opts = ConnectOptions::new().with_connect_timeout(Duration::from_secs(2));
        if let Some(t) = &self.tls {
            let ca = std::fs::read(&t.ca).unwrap();
            let cert = std::fs::read(&t.client_cert).unwrap();
            let key = std::fs::read(&t.client_key).unwrap();
            opts = opts.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .identity(Identity::from_pem(cert, key)),
            );
        }
        Client::connect([self.endpoint(i)], Some(opts))
            .await
            .unwrap()
    }

    /// Waits until every running member answers status and knows a leader.
    pub fn wait_healthy(&self) {
        if let Err(e) = self.try_wait_healthy() {
            panic!("{e}");
        }
    }

    fn try_wait_healthy(&self) -> Result<(), StartError> {
        let rt = Self::runtime();
        let deadline = Instant::now() + Duration::from_secs(HEALTHY_WITHIN);
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                continue;
            }
            loop {
                let ok = rt.block_on(async {
                    let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), async {
                        let mut opts = ConnectOptions::new().with_connect_timeout(Duration::from_secs(1));
                        if let Some(t) = &self.tls {
                            opts = opts.with_tls(
                                TlsOptions::new()
                                    .ca_certificate(Certificate::from_pem(std::fs::read(&t.ca).unwrap()))
                                    .identity(Identity::from_pem(
                                        std::fs::read(&t.client_cert).unwrap(),
                                        std::fs::read(&t.client_key).unwrap(),
                                    )),
                            );
                        }
                        Client::connect([self.endpoint(i)], Some(opts)).await
                    })
                    .await
                    else {
                        return false;
                    };
                    matches!(tokio::time::timeout(Duration::from_secs(2), c.status()).await, Ok(Ok(s)) if s.leader() != 0)
                });
                if ok {
                    break;
                }
                // A member that exited (a taken port, a full disk) never
                // comes up: say so at once, with the lines that killed it.
                if let Some(j) = (0..self.members.len()).find(|&j| self.exited(j)) {
                    let m = &self.members[j];
                    let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                    let (member, log_path) = (m.name.clone(), m.log.clone());
                    let fatal = fatal_lines(&log, 15);
                    return Err(if log.contains(BIND_COLLISION) {
                        StartError::PortTaken {
                            member,
                            log: log_path,
                            fatal,
                        }
                    } else {
                        StartError::Exited {
                            member,
                            log: log_path,
                            fatal,
                        }
                    });
                }
                if Instant::now() >= deadline {
                    let m = &self.members[i];
                    let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                    return Err(StartError::Timeout {
                        member: m.name.clone(),
                        log: m.log.clone(),
                        fatal: fatal_lines(&log, 15),
                    });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// Whether member `i` was started and its process has ended (a zombie
    /// not yet reaped, or gone): read from /proc, since `Child::try_wait`
    /// needs the cluster mutably.
    fn exited(&self, i: usize) -> bool {
        let Some(pid) = self.pid(i) else {
            return false;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
            Err(_) => true,
        }
    }

    /// Writes `n` keys `/registry/test/<i>` of `size` bytes, 64 per txn.
    /// `random` values do not compress; the others compress like JSON.
    pub fn put_many(&self, prefix: &str, n: usize, size: usize, random: bool, seed: u64) {
        let rt = Self::runtime();
        rt.block_on(async {
            let mut c = self.client(0).await;
            let mut x = seed | 1;
            let mut i = 0;
            while i < n {
                let mut ops = Vec::new();
                for j in i..(i + 64).min(n) {
                    let value: Vec<u8> = if random {
                        (0..size)
                            .map(|_| {
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                x as u8
                            })
                            .collect()
                    } else {
                        format!(
                            "{{\"kind\":\"ConfigMap\",\"name\":\"cm-{j}\",\"data\":\"{}\"}}",
                            "abcdefgh".repeat(size / 8)
                        )
                        .into_bytes()
                    };
                    ops.push(TxnOp::put(format!("{prefix}{j:06}"), value, None));
                }
                i += ops.len();
                c.txn(Txn::new().and_then(ops)).await.unwrap();
            }
        });
    }

    /// All keys and values, for comparing a restored cluster.
    pub fn dump(&self, i: usize) -> (i64, Vec<Kv>) {
        Self::runtime().block_on(async { dump_with(&mut self.client(i).await).await })
    }
}

/// The revision and every key and value, as `c`'s member serves them, in
/// pages at one revision (a response over gRPC's 4 MiB would be refused).
pub async fn dump_with(c: &mut Client) -> (i64, Vec<Kv>) {
    let (mut rev, mut from, mut out) = (0, vec![0u8], Vec::new());
    loop {
        let mut o = etcd_client::GetOptions::new()
            .with_range(vec![0u8])
            .with_limit(1000)
            .with_serializable();
        if rev > 0 {
            o = o.with_revision(rev);
        }
        let r = c.get(from.clone(), Some(o)).await.unwrap();
        if rev == 0 {
            rev = r.header().unwrap().revision();
        }
        out.extend(
            r.kvs()
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec())),
        );
        match r.kvs().last() {
            Some(last) if r.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return (rev, out),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

//! `vigil-restore etcd`: one ready data directory per configured member in
//! `DIR/<member>/`, restored from the same verified snapshot with the
//! member's own name and peer URL and the same `--initial-cluster` and
//! `--initial-cluster-token` (contract 4), plus the exact start commands.

use crate::proc::{self, argv, render};
use crate::RestoreError;
use serde::Serialize;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use vigil_core::config::{MemberConfig, RestoreConfig};

/// The tool that turns a snapshot into a data directory.
#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    /// `etcdutl` (3.5 and later) or `etcdctl` (3.4).
    pub kind: &'static str,
    pub bin: PathBuf,
    pub version: String,
    /// (major, minor) of the tool.
    pub major_minor: (u32, u32),
}

impl Tool {
    /// `--bump-revision` and `--mark-compacted` exist from etcdutl 3.5 on.
    pub fn can_bump(&self) -> bool {
        self.kind == "etcdutl" && self.major_minor >= (3, 5)
    }

    fn env(&self) -> &'static [(&'static str, &'static str)] {
        if self.kind == "etcdctl" {
            &[("ETCDCTL_API", "3")]
        } else {
            &[]
        }
    }
}

fn parse_version(out: &str, prefix: &str) -> Option<(String, (u32, u32))> {
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix))?
        .trim()
        .to_string();
    let mut it = line.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((line, (major, minor)))
}

/// Uses etcdutl when it is there, else etcdctl (3.4 restores with etcdctl).
pub fn detect_tool(rc: &RestoreConfig) -> Result<Tool, RestoreError> {
    for (kind, bin) in [("etcdutl", &rc.etcdutl_bin), ("etcdctl", &rc.etcdctl_bin)] {
        let env: &[(&str, &str)] = if kind == "etcdctl" {
            &[("ETCDCTL_API", "3")]
        } else {
            &[]
        };
        match proc::run(&argv(bin, ["version"]), env) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let Some((version, mm)) = parse_version(&text, &format!("{kind} version:")) else {
                    tracing::warn!("could not read the version of {}: {text:?}", bin.display());
                    continue;
                };
                // etcdctl 3.5+ still restores, but etcdutl is the tool for it.
                return Ok(Tool {
                    kind,
                    bin: bin.clone(),
                    version,
                    major_minor: mm,
                });
            }
            Err(e) => tracing::debug!("{kind} not usable: {e}"),
        }
    }
    Err(RestoreError::Usage(format!(
        "neither {} nor {} can be run; install etcd's tools (Debian: apt install etcd-client) or set restore.etcdutl_bin / restore.etcdctl_bin",
        rc.etcdutl_bin.display(),
        rc.etcdctl_bin.display()
    )))
}

/// The argv of one member's restore.
#[allow(clippy::too_many_arguments)]
pub fn restore_argv(
    tool: &Tool,
    snapshot: &Path,
    name: &str,
    data_dir: &Path,
    initial_cluster: &str,
    token: &str,
    peer_url: &str,
    bump_revision: u64,
) -> Vec<OsString> {
    let mut a = argv(&tool.bin, ["snapshot", "restore"]);
    a.push(snapshot.into());
    for (k, v) in [
        ("--name", name),
        ("--initial-cluster", initial_cluster),
        ("--initial-cluster-token", token),
        ("--initial-advertise-peer-urls", peer_url),
    ] {
        a.push(k.into());
        a.push(v.into());
    }
    a.push("--data-dir".into());
    a.push(data_dir.into());
    if tool.can_bump() && bump_revision > 0 {
        a.push("--bump-revision".into());
        a.push(bump_revision.to_string().into());
        a.push("--mark-compacted".into());
    }
    a
}

/// Restores into a temporary directory beside `data_dir` and renames it into place.
#[allow(clippy::too_many_arguments)]
pub fn restore_member(
    tool: &Tool,
    snapshot: &Path,
    name: &str,
    data_dir: &Path,
    initial_cluster: &str,
    token: &str,
    peer_url: &str,
    bump_revision: u64,
) -> Result<(), RestoreError> {
    let tmp = vigil_core::fsutil::partial_path(data_dir);
    let _ = std::fs::remove_dir_all(&tmp);
    let a = restore_argv(
        tool,
        snapshot,
        name,
        &tmp,
        initial_cluster,
        token,
        peer_url,
        bump_revision,
    );
    if let Err(e) = proc::run_tied(&a, tool.env()) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.into());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| vigil_core::fsutil::FsError::new("setting mode 0700 on", &tmp, e))?;
    vigil_core::fsutil::commit_rename(&tmp, data_dir)?;
    Ok(())
}

/// `host:port` of a URL like `https://10.0.0.11:2379`.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.trim().split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    let (h, p) = rest.rsplit_once(':')?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    Some((h.to_string(), p.parse().ok()?))
}

/// Refuses to go on while anything listens on a member's client or peer port
/// on this host: an old member still running sends heartbeats that make the
/// restored ones panic (`tocommit(N) is out of range`). Addresses that are
/// not on this host are skipped.
pub fn check_ports_free(members: &[&MemberConfig]) -> Result<(), RestoreError> {
    let mut busy = Vec::new();
    for m in members {
        for (what, url) in [("client", m.endpoint.clone()), ("peer", m.peer_url())] {
            let Some((host, port)) = host_port(&url) else {
                continue;
            };
            let ip: IpAddr = match host.as_str() {
                "localhost" => IpAddr::from([127, 0, 0, 1]),
                h => match h.parse() {
                    Ok(ip) => ip,
                    Err(_) => continue,
                },
            };
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    busy.push(format!("{} {what} port {url}", m.name))
                }
                Err(e) => tracing::debug!("{url}: not checked here ({e})"),
            }
        }
    }
    if busy.is_empty() {
        Ok(())
    } else {
        Err(RestoreError::Usage(format!(
            "something still listens on {}: stop every old etcd member and make sure it has exited before restoring \
             (an old member still running makes the restored ones panic with `tocommit(N) is out of range`); \
             `ss -ltnp` shows who holds the port",
            busy.join(", ")
        )))
    }
}

/// One restored member and how to start it.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredMember {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_url: String,
    pub peer_url: String,
    /// The exact start command, as argv.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdReport {
    pub archive: String,
    pub member_of_archive: String,
    pub revision: i64,
    pub source: String,
    pub tool: Tool,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub bumped_revision: Option<u64>,
    pub tls: bool,
    pub members: Vec<RestoredMember>,
}

/// The `--initial-cluster` value for all members.
pub fn initial_cluster(members: &[&MemberConfig]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The command that starts a member on its restored directory.
pub fn start_command(
    etcd_bin: &Path,
    m: &MemberConfig,
    data_dir: &Path,
    initial_cluster: &str,
    token: &str,
) -> Vec<String> {
    let ep = m.endpoint.trim().trim_end_matches('/').to_string();
    let peer = m.peer_url();
    vec![
        etcd_bin.display().to_string(),
        "--name".into(),
        m.name.clone(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen-client-urls".into(),
        ep.clone(),
        "--advertise-client-urls".into(),
        ep,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer,
        "--initial-cluster".into(),
        initial_cluster.into(),
        "--initial-cluster-token".into(),
        token.into(),
        "--initial-cluster-state".into(),
        "new".into(),
    ]
}

/// Human text: what was done and the exact commands to run next.
pub fn human(r: &EtcdReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "restored archive {} (member {}, revision {}, from {}) with {} {}{}",
        r.archive,
        r.member_of_archive,
        r.revision,
        r.source,
        r.tool.kind,
        r.tool.version,
        match r.bumped_revision {
            Some(b) => format!(", --bump-revision {b} --mark-compacted"),
            None => String::new(),
        }
    );
    let _ = writeln!(s, "initial cluster: {}", r.initial_cluster);
    let _ = writeln!(s, "cluster token:   {}", r.initial_cluster_token);
    let _ = writeln!(
        s,
        "\nMake sure every old member has exited. Then start each member on its own host with its restored directory\n\
         (copy it there first if this is not that host, e.g. `rsync -a DIR/<member>/ <host>:/var/lib/etcd/` and use that path):"
    );
    for m in &r.members {
        let args: Vec<OsString> = m.command.iter().map(OsString::from).collect();
        let _ = writeln!(s, "\n# {} ({})", m.name, m.data_dir.display());
        let _ = writeln!(s, "{}", render(&args));
    }
    if r.tls {
        let _ = writeln!(
            s,
            "\nThe endpoints use https: add the member's usual TLS flags to each command \
             (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth, --peer-cert-file, --peer-key-file, \
             --peer-trusted-ca-file, --peer-client-cert-auth)."
        );
    }
    let eps: Vec<&str> = r.members.iter().map(|m| m.client_url.as_str()).collect();
    let _ = writeln!(
        s,
        "\nThen check: ETCDCTL_API=3 etcdctl --endpoints {} endpoint status -w table",
        eps.join(",")
    );
    s
}

/// What `vigil-restore etcd` was asked to do.
#[derive(Debug)]
pub struct EtcdOptions<'a> {
    pub out: &'a Path,
    pub identities: Option<&'a crate::identity::Identities>,
    pub selector: crate::source::Selector,
    pub source: Option<&'a str>,
    /// `--initial-cluster-token`; default `<cluster>-restored-<time>`.
    pub token: Option<String>,
    pub keep_snapshot: bool,
    pub skip_port_check: bool,
}

/// Fetches and verifies the chosen archive once, then restores it once per member.
pub fn run(cfg: &vigil_core::Config, o: &EtcdOptions<'_>) -> Result<EtcdReport, RestoreError> {
    let members: Vec<&MemberConfig> = cfg.members().collect();
    let rc = cfg.restore();
    // Absolute, so the printed commands work from any directory.
    let out_abs = std::path::absolute(o.out)
        .map_err(|e| vigil_core::fsutil::FsError::new("resolving", o.out, e))?;
    let o = &EtcdOptions {
        out: &out_abs,
        identities: o.identities,
        selector: o.selector.clone(),
        source: o.source,
        token: o.token.clone(),
        keep_snapshot: o.keep_snapshot,
        skip_port_check: o.skip_port_check,
    };
    if o.out.exists() {
        let non_empty = std::fs::read_dir(o.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
        if non_empty {
            return Err(RestoreError::Usage(format!(
                "target {} is not empty; vigil-restore writes only into an empty or new directory, so nothing is overwritten",
                o.out.display()
            )));
        }
    }
    if !o.skip_port_check {
        check_ports_free(&members)?;
    }
    let tool = detect_tool(&rc)?;
    let sources = crate::source::only(crate::source::configured(cfg), o.source)?;
    let cat = crate::source::catalog_of(cfg, &sources);
    let archive = o.selector.select(&cat)?;
    tracing::info!(
        "restoring archive {} (member {}, revision {}, {}) with {} {}",
        archive.id,
        archive.member,
        archive.revision,
        archive.created_at,
        tool.kind,
        tool.version
    );
    vigil_core::fsutil::ensure_private_dir(o.out)?;
    let snapshot = o.out.join(format!("{}.db", archive.id));
    // Killed mid-way (kill -9, SIGTERM), the janitor leaves the target as
    // empty as an error does: no plaintext snapshot, no half data dir.
    let mut janitor = crate::guard::Janitor::spawn(None)
        .map_err(|e| RestoreError::Failed(format!("starting the janitor: {e}")))?;
    let mut guarded = vec![
        snapshot.clone(),
        vigil_core::fsutil::partial_path(&snapshot),
    ];
    for m in &members {
        let d = o.out.join(&m.name);
        guarded.push(vigil_core::fsutil::partial_path(&d));
        guarded.push(d);
    }
    for p in &guarded {
        janitor
            .guard(p)
            .map_err(|e| RestoreError::Failed(format!("briefing the janitor: {e}")))?;
    }
    let fetched = crate::fetch::fetch(archive, &sources, o.identities, &snapshot)?;
    let token = o.token.clone().unwrap_or_else(|| {
        format!(
            "{}-restored-{}",
            cfg.cluster_name(),
            crate::id_time(vigil_core::now())
        )
    });
    let ic = initial_cluster(&members);
    let bump = if tool.can_bump() && rc.bump_revision > 0 {
        Some(rc.bump_revision)
    } else {
        None
    };
    // The members' data dirs are independent: restore them side by side.
    let results: Vec<Result<RestoredMember, RestoreError>> = std::thread::scope(|sc| {
        let handles: Vec<_> = members
            .iter()
            .map(|m| {
                let (tool, snapshot, ic, token, rc) = (&tool, &snapshot, &ic, &token, &rc);
                sc.spawn(move || {
                    let dir = o.out.join(&m.name);
                    restore_member(
                        tool,
                        snapshot,
                        &m.name,
                        &dir,
                        ic,
                        token,
                        &m.peer_url(),
                        rc.bump_revision,
                    )?;
                    tracing::info!("member {}: data dir {} ready", m.name, dir.display());
                    Ok(RestoredMember {
                        name: m.name.clone(),
                        command: start_command(&rc.etcd_bin, m, &dir, ic, token),
                        data_dir: dir,
                        client_url: m.endpoint.trim().trim_end_matches('/').to_string(),
                        peer_url: m.peer_url(),
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(RestoreError::Failed("a member's restore panicked".into()))
                })
            })
            .collect()
    });
    let mut restored = Vec::new();
    let mut result = Ok(());
    for r in results {
        match r {
            Ok(m) => restored.push(m),
            Err(e) if result.is_ok() => result = Err(e),
            Err(e) => tracing::error!("{e}"),
        }
    }
    if !o.keep_snapshot || result.is_err() {
        let _ = std::fs::remove_file(&snapshot);
    }
    if result.is_err() {
        // Leave the target as empty as it was, so a rerun is possible.
        for r in &restored {
            let _ = std::fs::remove_dir_all(&r.data_dir);
        }
    }
    result?;
    janitor.done();
    Ok(EtcdReport {
        archive: archive.id.clone(),
        member_of_archive: archive.member.clone(),
        revision: archive.revision,
        source: fetched.source,
        tool,
        initial_cluster: ic,
        initial_cluster_token: token,
        bumped_revision: bump,
        tls: cfg.tls().is_some(),
        members: restored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_versions_and_ports() {
        assert_eq!(
            host_port("https://10.0.0.1:2379/"),
            Some(("10.0.0.1".into(), 2379))
        );
        assert_eq!(host_port("http://[::1]:2380"), Some(("::1".into(), 2380)));
        assert_eq!(
            parse_version(
                "etcdctl version: 3.4.23\nAPI version: 3.4\n",
                "etcdctl version:"
            ),
            Some(("3.4.23".into(), (3, 4)))
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let m = MemberConfig {
            name: "cp-1".into(),
            endpoint: format!("http://127.0.0.1:{port}"),
            peer_url: Some("http://10.255.255.1:2380".into()),
        };
        let e = check_ports_free(&[&m]).unwrap_err().to_string();
        assert!(
            e.contains("cp-1 client port") && e.contains("tocommit"),
            "{e}"
        );
        drop(l);
        check_ports_free(&[&m]).unwrap();
    }
}

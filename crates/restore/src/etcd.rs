//! `vigil-restore etcd`: one ready data directory per configured member in
//! `DIR/<member>/`, restored from the same verified snapshot with the
//! member's own name and peer URL and the same `--initial-cluster` and
//! `--initial-cluster-token` (contract 4), plus the exact start commands.
//!
//! The peer URLs come from the membership the archive's manifest recorded
//! (contract 6), overridden per member by `--peer-url NAME=URL` or the
//! config's `peer_url`. [`plan_members`] checks them all before anything
//! runs or is written.

use crate::RestoreError;
use serde::Serialize;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use vigil_core::cmd::{argv, render, Cmd};
use vigil_core::config::{MemberConfig, RestoreConfig};
use vigil_core::manifest::Membership;

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
    /// `snapshot restore --bump-revision --mark-compacted`: etcdutl 3.5.10 and later.
    pub fn can_bump(&self) -> bool {
        crate::bump::can_bump(self.kind, &self.version)
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
        match Cmd::new(bin).args(["version"]).envs(env).run_blocking() {
            Ok(out) => {
                let text = &out.stdout;
                let Some((version, mm)) = parse_version(text, &format!("{kind} version:")) else {
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

/// The argv of one member's restore. `verified`: fetch checked this file's
/// sha256 against its manifest (which implies etcd's trailer), so the tool's
/// own hash check would only hash the same bytes again.
#[allow(clippy::too_many_arguments)]
pub fn restore_argv(
    tool: &Tool,
    snapshot: &Path,
    verified: bool,
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
    if verified {
        // The trailer is still cut off; only the second sha256 pass goes.
        a.push("--skip-hash-check".into());
    }
    a
}

/// Restores into a temporary directory beside `data_dir` and renames it into
/// place. `verified` as in [`restore_argv`].
#[allow(clippy::too_many_arguments)]
pub fn restore_member(
    tool: &Tool,
    snapshot: &Path,
    verified: bool,
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
        verified,
        name,
        &tmp,
        initial_cluster,
        token,
        peer_url,
        bump_revision,
    );
    if let Err(e) = crate::guard::tie(Cmd::argv(&a).envs(tool.env())).run_blocking() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.into());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| vigil_core::fsutil::FsError::new("setting mode 0700 on", &tmp, e))?;
    vigil_core::fsutil::commit_rename(&tmp, data_dir)?;
    Ok(())
}

use vigil_core::endpoint::host_port;

/// Refuses to go on while anything listens on a member's client or peer port
/// on this host: an old member still running sends heartbeats that make the
/// restored ones panic (`tocommit(N) is out of range`). Addresses that are
/// not on this host are skipped.
pub fn check_ports_free(members: &[PlannedMember]) -> Result<(), RestoreError> {
    let mut busy = Vec::new();
    for m in members {
        let urls = std::iter::once(("client", m.client_url.clone()))
            .chain(m.peer_urls.iter().map(|u| ("peer", u.clone())));
        for (what, url) in urls {
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
    /// Comma-separated when the member has several.
    pub peer_url: String,
    pub peer_url_from: PeerFrom,
    /// The exact start command, as argv.
    pub command: Vec<String>,
}

/// Where a member's peer URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerFrom {
    /// `--peer-url NAME=URL`.
    Flag,
    /// The member's `peer_url` in `[cluster].members`.
    Config,
    /// The membership recorded in the archive's manifest.
    Manifest,
    /// No record and no override: the endpoint's host with port 2380.
    Guess,
}

/// A member to restore, with its peer URLs and their origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMember {
    pub name: String,
    pub client_url: String,
    pub peer_urls: Vec<String>,
    pub from: PeerFrom,
}

impl PlannedMember {
    pub fn peer_url(&self) -> String {
        self.peer_urls.join(",")
    }
}

/// The members to restore, and what the check noticed without refusing.
#[derive(Debug, Clone)]
pub struct Plan {
    pub members: Vec<PlannedMember>,
    pub notes: Vec<String>,
}

/// A `--peer-url` that is not `NAME=URL`.
#[derive(Debug, thiserror::Error)]
pub enum PeerFlagError {
    #[error("{0:?} is not NAME=URL, e.g. cp-1=https://10.0.0.5:2380")]
    NoEquals(String),
    #[error("{0:?} is not NAME=URL with URL scheme://host:port, e.g. cp-1=https://10.0.0.5:2380")]
    Malformed(String),
}

/// `NAME=URL` of `--peer-url`.
pub fn parse_peer_flag(s: &str) -> Result<(String, String), PeerFlagError> {
    let (n, u) = s
        .split_once('=')
        .ok_or_else(|| PeerFlagError::NoEquals(s.to_string()))?;
    let (n, u) = (n.trim(), normalize(u));
    if n.is_empty() || !valid_url(&u) {
        return Err(PeerFlagError::Malformed(s.to_string()));
    }
    Ok((n.to_string(), u))
}

fn normalize(u: &str) -> String {
    u.trim().trim_end_matches('/').to_string()
}

fn valid_url(u: &str) -> bool {
    vigil_core::endpoint::is_http_host_port(u)
}

const HOW: &str = "override a member's peer URL with --peer-url NAME=URL (repeatable) or peer_url in its [cluster].members entry";

/// Resolves every member's peer URLs (flag, then config `peer_url`, then
/// the recorded membership, then the `host:2380` guess when there is no
/// record) and checks them all at once, before anything runs: unknown or
/// repeated flags, config members the record lacks, recorded voting members
/// the config lacks, and duplicate URLs. Recorded learners that the config
/// does not list are left out (noted): a restored cluster starts with
/// voting members only.
pub fn plan_members(
    members: &[&MemberConfig],
    recorded: Option<&Membership>,
    archive_id: &str,
    flags: &[(String, String)],
    drop: &[String],
) -> Result<Plan, RestoreError> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let in_config = |n: &str| members.iter().any(|m| m.name == n);
    let in_record = |n: &str| recorded.is_some_and(|r| r.member(n).is_some());
    for (i, (n, u)) in flags.iter().enumerate() {
        if !in_config(n) {
            errors.push(format!(
                "--peer-url {n}={u}: {n} is not a member of [cluster].members (members: {})",
                members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else if flags[..i].iter().any(|(p, _)| p == n) {
            errors.push(format!(
                "--peer-url {n}=... is given twice; give each member once"
            ));
        }
    }
    for d in drop {
        if !in_config(d) && !in_record(d) {
            errors.push(format!(
                "--drop-member {d}: {d} is neither in [cluster].members nor in the membership recorded in archive {archive_id}"
            ));
        }
    }
    if recorded.is_none() {
        let w = format!(
            "archive {archive_id} records no membership (made before vigil recorded it, or the member list failed): peer URLs come from --peer-url, the config's peer_url, or the endpoint's host with port 2380"
        );
        tracing::warn!("{w}");
        notes.push(w);
    }
    let mut planned = Vec::new();
    for m in members.iter().filter(|m| !drop.contains(&m.name)) {
        let client_url = normalize(&m.endpoint);
        let rec = recorded
            .and_then(|r| r.member(&m.name))
            .filter(|r| !r.peer_urls.is_empty());
        let (peer_urls, from) = if let Some((_, u)) = flags.iter().find(|(n, _)| n == &m.name) {
            (vec![u.clone()], PeerFrom::Flag)
        } else if m.peer_url.is_some() {
            (vec![m.peer_url()], PeerFrom::Config)
        } else if let Some(r) = rec {
            let moved = !r.client_urls.iter().any(|c| normalize(c) == client_url);
            if moved {
                let w = format!(
                    "member {}: the config's endpoint {client_url} is not among the client URLs recorded in archive {archive_id} ({}); if it moved to a new host, its recorded peer URL {} is the old host's: {HOW}",
                    m.name,
                    r.client_urls.join(", "),
                    r.peer_urls.join(",")
                );
                tracing::warn!("{w}");
                notes.push(w);
            }
            (
                r.peer_urls.iter().map(|u| normalize(u)).collect(),
                PeerFrom::Manifest,
            )
        } else if let Some(r) = recorded {
            errors.push(format!(
                "member {} ({client_url}) of [cluster].members is not in the membership recorded in archive {archive_id} (cluster ID {}, members {}): check its name; to restore it anyway as a new member, give its peer URL: --peer-url {}=URL or peer_url in the config; or choose another archive (--archive)",
                m.name,
                r.cluster_id,
                r.members.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", "),
                m.name
            ));
            continue;
        } else {
            (vec![m.peer_url()], PeerFrom::Guess)
        };
        planned.push(PlannedMember {
            name: m.name.clone(),
            client_url,
            peer_urls,
            from,
        });
    }
    if let Some(r) = recorded {
        for x in r
            .members
            .iter()
            .filter(|x| !in_config(&x.name) && !drop.contains(&x.name))
        {
            let what = if x.name.is_empty() {
                format!("an unstarted member (ID {})", x.id)
            } else {
                format!("member {}", x.name)
            };
            if x.is_learner || x.name.is_empty() {
                let n = format!(
                    "{what} (learner or never started, peer {}) recorded in archive {archive_id} is left out: add it again after the restore (etcdctl member add ... --learner)",
                    x.peer_urls.join(",")
                );
                tracing::warn!("{n}");
                notes.push(n);
                continue;
            }
            errors.push(format!(
                "{what} (peer {}, client {}) recorded in archive {archive_id} is not in the config's [cluster].members: add {{ name = \"{}\", endpoint = \"{}\" }} to restore it, or pass --drop-member {} if it left the cluster after this snapshot",
                x.peer_urls.join(","),
                x.client_urls.join(","),
                x.name,
                x.client_urls.first().map(String::as_str).unwrap_or("scheme://host:port"),
                x.name
            ));
        }
    }
    // Duplicate peer URLs: etcd refuses the --initial-cluster ("has duplicate url").
    let origin = |p: &PlannedMember| match p.from {
        PeerFrom::Flag => "--peer-url".to_string(),
        PeerFrom::Config => "config peer_url".to_string(),
        PeerFrom::Manifest => format!("manifest of archive {archive_id}"),
        PeerFrom::Guess => format!("guessed from the endpoint {} with port 2380", p.client_url),
    };
    // Grouped by URL, in member order: one line per shared URL.
    let mut by_url: Vec<(String, Vec<&PlannedMember>)> = Vec::new();
    for p in &planned {
        for u in &p.peer_urls {
            let key = u.to_ascii_lowercase();
            match by_url.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(p),
                None => by_url.push((key, vec![p])),
            }
        }
    }
    for (u, v) in by_url.iter().filter(|(_, v)| v.len() > 1) {
        let named: Vec<String> = v
            .iter()
            .map(|p| format!("{} ({})", p.name, origin(p)))
            .collect();
        if let Some((last, rest)) = named.split_last() {
            errors.push(format!(
                "duplicate peer URL {u}: {} and {last}; every member needs its own: {HOW}",
                rest.join(", ")
            ));
        }
    }
    if errors.is_empty() {
        Ok(Plan {
            members: planned,
            notes,
        })
    } else {
        Err(RestoreError::Usage(format!(
            "the members to restore do not add up; nothing was run or written:\n  - {}",
            errors.join("\n  - ")
        )))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdReport {
    pub archive: String,
    /// What the membership check noticed without refusing.
    pub notes: Vec<String>,
    pub member_of_archive: String,
    pub revision: i64,
    /// The etcd that made the snapshot (its manifest).
    pub snapshot_etcd_version: String,
    /// `restore.etcd_bin --version` when it runs on this host (the printed
    /// start commands use it).
    pub etcd_version: Option<String>,
    pub source: String,
    pub tool: Tool,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    /// `--bump-revision` passed (with `--mark-compacted`); none with `--no-bump`.
    pub bumped_revision: Option<u64>,
    /// How the bump was sized, from what evidence, and whether it is applied.
    pub bump: crate::bump::BumpPlan,
    pub tls: bool,
    pub members: Vec<RestoredMember>,
}

/// The `--initial-cluster` value for all members.
pub fn initial_cluster(members: &[PlannedMember]) -> String {
    members
        .iter()
        .flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={u}", m.name)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The command that starts a member on its restored directory.
pub fn start_command(
    etcd_bin: &Path,
    m: &PlannedMember,
    data_dir: &Path,
    initial_cluster: &str,
    token: &str,
) -> Vec<String> {
    let ep = m.client_url.clone();
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
        match (&r.bump.replayed, r.bumped_revision) {
            (Some(p), Some(b)) => format!(
                ", revision bumped by {b} by replay through a scratch etcd (revision {} -> {}, compacted)",
                p.from_revision, p.to_revision
            ),
            (None, Some(b)) => format!(", --bump-revision {b} --mark-compacted"),
            _ => String::new(),
        }
    );
    if r.bump.applied {
        let _ = writeln!(s, "revision bump: {}", r.bump.describe());
    } else {
        let _ = writeln!(
            s,
            "WARNING: restored WITHOUT a revision bump (--no-bump): the data starts at the snapshot's revision {}; \
             it should have been bumped by {}",
            r.revision,
            r.bump.describe()
        );
    }
    for n in r.notes.iter().chain(&r.bump.notes) {
        let _ = writeln!(s, "note: {n}");
    }
    let _ = writeln!(s, "initial cluster: {}", r.initial_cluster);
    let _ = writeln!(s, "cluster token:   {}", r.initial_cluster_token);
    let _ = writeln!(
        s,
        "etcd versions: snapshot {}, restore tool {} {}, start commands {}",
        r.snapshot_etcd_version,
        r.tool.kind,
        r.tool.version,
        r.etcd_version
            .as_deref()
            .map(|v| format!("etcd {v}"))
            .unwrap_or_else(|| "etcd (not run on this host)".into())
    );
    let _ = writeln!(
        s,
        "\nMake sure every old member has exited. Then start each member on its own host with its restored directory\n\
         (copy it there first if this is not that host, e.g. `rsync -a DIR/<member>/ <host>:/var/lib/etcd/` and use that path):"
    );
    for m in &r.members {
        let args: Vec<OsString> = m.command.iter().map(OsString::from).collect();
        let from = match m.peer_url_from {
            PeerFrom::Flag => "--peer-url",
            PeerFrom::Config => "config peer_url",
            PeerFrom::Manifest => "the archive's membership",
            PeerFrom::Guess => "endpoint host, port 2380",
        };
        let _ = writeln!(
            s,
            "\n# {} ({}; peer URL {} from {from})",
            m.name,
            m.data_dir.display(),
            m.peer_url
        );
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
    // Kubernetes on top: caches hold the pre-restore state until restarted.
    let _ = writeln!(
        s,
        "\nOnce every member is healthy, restart every kube-apiserver (their watch caches re-list), then every kubelet \
         (it drops pod state newer than the snapshot){}",
        if r.bump.applied {
            "; clients that resume a watch get \"required revision has been compacted\" and re-list."
        } else {
            ". Without the bump this is not optional: until they restart, they serve objects newer than the restored data."
        }
    );
    s
}

/// What `vigil-restore etcd` was asked to do.
#[derive(Debug)]
pub struct EtcdOptions<'a> {
    pub out: &'a Path,
    pub identities: Option<&'a crate::identity::Identities>,
    pub selector: crate::select::Selector,
    pub source: Option<&'a str>,
    /// `--initial-cluster-token`; default `<cluster>-restored-<time>`.
    pub token: Option<String>,
    pub keep_snapshot: bool,
    pub skip_port_check: bool,
    /// `--peer-url NAME=URL`: overrides the record and the config.
    pub peer_urls: Vec<(String, String)>,
    /// `--drop-member NAME`: restore without this recorded member.
    pub drop_members: Vec<String>,
    /// `--no-bump`: restore at the snapshot's revision, accepting stale
    /// Kubernetes watch caches (needed when no etcdutl 3.5.10+ is at hand).
    pub no_bump: bool,
}

/// Fetches and verifies the chosen archive once, then restores it once per member.
pub fn run(cfg: &vigil_core::Config, o: &EtcdOptions<'_>) -> Result<EtcdReport, RestoreError> {
    let configured: Vec<&MemberConfig> = cfg.members().collect();
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
        peer_urls: o.peer_urls.clone(),
        drop_members: o.drop_members.clone(),
        no_bump: o.no_bump,
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
    let stores = crate::stores::Stores::configured(cfg).only(o.source)?;
    let cat = stores.catalog(&cfg.state.dir);
    let archive = o.selector.select(&cat)?;
    // Before anything runs (not even `etcdctl version`) or is written.
    let plan = plan_members(
        &configured,
        archive.manifest.membership.as_ref(),
        &archive.id,
        &o.peer_urls,
        &o.drop_members,
    )?;
    let members = &plan.members;
    if !o.skip_port_check {
        check_ports_free(members)?;
    }
    let tool = detect_tool(&rc)?;
    let etcd_version = crate::versions::etcd_version(&rc.etcd_bin);
    let version_note = crate::versions::restore_note(
        &archive.manifest.etcd_version,
        &tool,
        etcd_version.as_deref(),
    );
    if let Some(n) = &version_note {
        tracing::warn!("{n}");
    }
    // Sized and checked before anything is written: a tool that cannot bump
    // is refused here, not by an unknown flag after the fetch.
    let mut bump = crate::bump::plan(
        &cfg.state.dir,
        archive.manifest.revision,
        &archive.manifest.cluster_id,
        rc.bump_revision,
    );
    if o.no_bump {
        bump.applied = false;
        bump.method = crate::bump::Method::None;
        tracing::warn!(
            "--no-bump: restoring at the snapshot's revision; it should have been bumped by {}",
            bump.describe()
        );
    } else if !tool.can_bump() {
        bump = bump
            .by_replay()
            .ok_or_else(|| RestoreError::Usage(bump.refusal(&tool)))?;
        tracing::info!(
            "{} {} cannot bump offline: replaying the revision bump through a scratch etcd ({}): {}",
            tool.kind,
            tool.version,
            rc.etcd_bin.display(),
            bump.describe()
        );
    } else {
        tracing::info!("revision bump {}", bump.describe());
    }
    tracing::info!(
        "restoring archive {} (member {}, revision {}, {}) with {} {}",
        archive.id,
        archive.member,
        archive.manifest.revision,
        archive.manifest.created_at,
        tool.kind,
        tool.version
    );
    vigil_core::fsutil::ensure_private_dir(o.out)?;
    let snapshot = o.out.join(format!("{}.db", archive.id));
    // Killed mid-way (kill -9, SIGTERM), the janitor leaves the target as
    // empty as an error does: no plaintext snapshot, no half data dir.
    let mut janitor = crate::guard::Janitor::spawn(None)
        .map_err(|e| RestoreError::Failed(format!("starting the janitor: {e}")))?;
    // The replayed bump's scratch etcd and its snapshot; short, for the socket path.
    let bump_dir = o.out.join(".bump");
    let mut guarded = vec![
        snapshot.clone(),
        vigil_core::fsutil::partial_path(&snapshot),
        bump_dir.clone(),
    ];
    for m in members {
        let d = o.out.join(&m.name);
        guarded.push(vigil_core::fsutil::partial_path(&d));
        guarded.push(d);
    }
    for p in &guarded {
        janitor
            .guard(p)
            .map_err(|e| RestoreError::Failed(format!("briefing the janitor: {e}")))?;
    }
    let fetched = crate::fetch::fetch(archive, &stores, o.identities, &snapshot)?;
    let token = o.token.clone().unwrap_or_else(|| {
        format!(
            "{}-restored-{}",
            cfg.cluster_name(),
            vigil_core::id_time(vigil_core::now())
        )
    });
    let ic = initial_cluster(members);
    // Fetch verified `snapshot`; the replay's bumped snapshot is checked by
    // the tool alone (its own sha256 trailer), so it keeps the tool's check.
    let (restore_from, verified, bump_by) = match bump.method {
        crate::bump::Method::Etcdutl => (snapshot.clone(), true, bump.size),
        crate::bump::Method::Replay => {
            let bumped = bump_dir.join("bumped.db");
            let r = vigil_core::fsutil::ensure_private_dir(&bump_dir)
                .map_err(RestoreError::from)
                .and_then(|()| {
                    crate::bump::replay(
                        &tool,
                        &rc.etcd_bin,
                        &snapshot,
                        &bump_dir,
                        bump.size,
                        crate::bump::Expect {
                            revision: archive.manifest.revision,
                            key_count: archive.manifest.key_count,
                        },
                        &bumped,
                    )
                });
            match r {
                Ok(r) => bump.replayed = Some(r),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&bump_dir);
                    let _ = std::fs::remove_file(&snapshot);
                    return Err(e);
                }
            }
            if !o.keep_snapshot {
                let _ = std::fs::remove_file(&snapshot);
            }
            (bumped, false, 0)
        }
        crate::bump::Method::None => (snapshot.clone(), true, 0),
    };
    // The members' data dirs are independent: restore them side by side.
    let results: Vec<Result<RestoredMember, RestoreError>> = std::thread::scope(|sc| {
        let handles: Vec<_> = members
            .iter()
            .map(|m| {
                let (tool, snapshot, ic, token, rc) = (&tool, &restore_from, &ic, &token, &rc);
                sc.spawn(move || {
                    let dir = o.out.join(&m.name);
                    restore_member(
                        tool,
                        snapshot,
                        verified,
                        &m.name,
                        &dir,
                        ic,
                        token,
                        &m.peer_url(),
                        bump_by,
                    )?;
                    tracing::info!("member {}: data dir {} ready", m.name, dir.display());
                    Ok(RestoredMember {
                        name: m.name.clone(),
                        command: start_command(&rc.etcd_bin, m, &dir, ic, token),
                        data_dir: dir,
                        client_url: m.client_url.clone(),
                        peer_url: m.peer_url(),
                        peer_url_from: m.from,
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
    let _ = std::fs::remove_dir_all(&bump_dir);
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
        notes: plan.notes.into_iter().chain(version_note).collect(),
        member_of_archive: archive.member.clone(),
        revision: archive.manifest.revision,
        snapshot_etcd_version: archive.manifest.etcd_version.clone(),
        etcd_version,
        source: fetched.source,
        tool,
        initial_cluster: ic,
        initial_cluster_token: token,
        bumped_revision: bump.applied.then_some(bump.size),
        bump,
        tls: cfg.tls().is_some(),
        members: restored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_ports() {
        assert_eq!(
            parse_version(
                "etcdctl version: 3.4.23\nAPI version: 3.4\n",
                "etcdctl version:"
            ),
            Some(("3.4.23".into(), (3, 4)))
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let m = PlannedMember {
            name: "cp-1".into(),
            client_url: format!("http://127.0.0.1:{port}"),
            peer_urls: vec!["http://10.255.255.1:2380".into()],
            from: PeerFrom::Config,
        };
        let e = check_ports_free(std::slice::from_ref(&m))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cp-1 client port") && e.contains("tocommit"),
            "{e}"
        );
        drop(l);
        // Another test in this binary may take the freed ephemeral port at once, so a
        // free port has to pass on one of a few fresh tries rather than on this one.
        let passes = (0..5).any(|_| {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let m = PlannedMember {
                client_url: format!("http://127.0.0.1:{port}"),
                ..m.clone()
            };
            check_ports_free(&[m]).is_ok()
        });
        assert!(passes, "no free port passed check_ports_free in five tries");
    }

    fn member(name: &str, host: &str, peer_url: Option<&str>) -> MemberConfig {
        MemberConfig {
            name: name.into(),
            endpoint: format!("http://{host}:2379"),
            peer_url: peer_url.map(String::from),
        }
    }

    fn recorded(members: &[(&str, &str, bool)]) -> Membership {
        Membership {
            cluster_id: "c1".into(),
            members: members
                .iter()
                .enumerate()
                .map(
                    |(i, (n, peer, learner))| vigil_core::manifest::RecordedMember {
                        id: format!("{:x}", i + 1),
                        name: n.to_string(),
                        peer_urls: vec![peer.to_string()],
                        client_urls: vec![peer.replace("380", "379")],
                        is_learner: *learner,
                        etcd_version: None,
                    },
                )
                .collect(),
        }
    }

    fn urls(p: &Plan) -> Vec<(String, String, PeerFrom)> {
        p.members
            .iter()
            .map(|m| (m.name.clone(), m.peer_url(), m.from))
            .collect()
    }

    #[test]
    fn peer_urls_come_from_flag_then_config_then_record_then_guess() {
        let cfg = [
            member("a", "10.0.0.1", None),
            member("b", "10.0.0.2", Some("http://10.0.0.2:12380/")),
            member("c", "10.0.0.3", None),
        ];
        let m: Vec<&MemberConfig> = cfg.iter().collect();
        let rec = recorded(&[
            ("a", "http://10.0.0.1:2381", false),
            ("b", "http://10.0.0.2:2381", false),
            ("c", "http://10.0.0.3:2381", false),
            ("d", "http://10.0.0.4:2380", true),
        ]);
        let flags = vec![("c".to_string(), "http://10.9.9.9:2380".to_string())];
        let p = plan_members(&m, Some(&rec), "A", &flags, &[]).unwrap();
        assert_eq!(
            urls(&p),
            [
                (
                    "a".into(),
                    "http://10.0.0.1:2381".into(),
                    PeerFrom::Manifest
                ),
                ("b".into(), "http://10.0.0.2:12380".into(), PeerFrom::Config),
                ("c".into(), "http://10.9.9.9:2380".into(), PeerFrom::Flag),
            ]
        );
        // The learner is left out, and said so.
        assert!(
            p.notes.iter().any(|n| n.contains("member d")),
            "{:?}",
            p.notes
        );
        assert_eq!(
            initial_cluster(&p.members),
            "a=http://10.0.0.1:2381,b=http://10.0.0.2:12380,c=http://10.9.9.9:2380"
        );
        // An old archive: the config, else the host:2380 guess.
        let p = plan_members(&m, None, "A", &[], &[]).unwrap();
        assert_eq!(p.members[0].peer_url(), "http://10.0.0.1:2380");
        assert_eq!(p.members[0].from, PeerFrom::Guess);
        assert_eq!(p.members[1].from, PeerFrom::Config);
    }

    #[test]
    fn every_membership_problem_is_named_at_once() {
        // Three members on one host, an old archive: the guess collides.
        let one_host: Vec<MemberConfig> = ["a", "b", "c"]
            .iter()
            .map(|n| member(n, "127.0.0.1", None))
            .collect();
        let m: Vec<&MemberConfig> = one_host.iter().collect();
        let e = plan_members(&m, None, "A", &[], &[]).unwrap_err();
        assert_eq!(e.exit_code(), vigil_core::exit::USAGE);
        let e = e.to_string();
        assert!(
            e.contains("duplicate peer URL http://127.0.0.1:2380: a (guessed from the endpoint http://127.0.0.1:2379 with port 2380), b (")
                && e.contains(" and c (guessed")
                && e.matches("duplicate").count() == 1
                && e.contains("--peer-url NAME=URL"),
            "{e}"
        );

        let rec = recorded(&[
            ("a", "http://127.0.0.1:12380", false),
            ("b", "http://127.0.0.1:22380", false),
            ("gone", "http://127.0.0.1:32380", false),
        ]);
        let flags = vec![
            ("a".to_string(), "http://127.0.0.1:22380".to_string()),
            ("zz".to_string(), "http://127.0.0.1:1".to_string()),
        ];
        let e = plan_members(&m, Some(&rec), "A", &flags, &[])
            .unwrap_err()
            .to_string();
        for want in [
            "duplicate peer URL http://127.0.0.1:22380: a (--peer-url) and b (manifest of archive A)",
            "--peer-url zz=http://127.0.0.1:1: zz is not a member",
            "member c (http://127.0.0.1:2379) of [cluster].members is not in the membership recorded in archive A",
            "member gone (peer http://127.0.0.1:32380, client http://127.0.0.1:32379) recorded in archive A is not in the config",
            "--drop-member gone",
        ] {
            assert!(e.contains(want), "{want:?} missing from {e}");
        }
        // Dropped on purpose, and c given explicitly: accepted.
        let flags = vec![("c".to_string(), "http://127.0.0.1:42380".to_string())];
        let p = plan_members(&m, Some(&rec), "A", &flags, &["gone".to_string()]).unwrap();
        assert_eq!(p.members.len(), 3);
        assert!(parse_peer_flag("a=http://h:1/").is_ok_and(|(n, u)| n == "a" && u == "http://h:1"));
        assert!(parse_peer_flag("a").is_err());
        assert!(parse_peer_flag("a=h:2380").is_err());
    }
}

//! Which members a restore writes, with which peer URLs, checked all at
//! once before anything runs: the flags, the config and the membership the
//! archive recorded (contract 6); and that no old member still listens.

use crate::RestoreError;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr, TcpListener};
use vigil_core::config::MemberConfig;
use vigil_core::endpoint::host_port;
use vigil_core::manifest::Membership;

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

//! The xattr backend: `ceph.quota.max_bytes` and `ceph.dir.rbytes` read from
//! a mounted CephFS (ceph-fuse or the kernel client). No `ceph` call per
//! subvolume, so it is the fast path for thousands of them.
//!
//! Layout (volumes module, subvolume v2): `<root>/volumes/<group>/` holds the
//! group quota, `<root>/volumes/<group>/<sub>/.meta` names the subvolume's
//! data path (`path = /volumes/<group>/<sub>/<uuid>`), which holds its quota.
//! v1 subvolumes have no `.meta`; their directory is the data path.
//!
//! A reader of a mount whose cluster is gone blocks in the kernel, beyond
//! the reach of signals. So the walk runs on its own thread with a deadline,
//! and by default one `ceph fs dump` first checks that the MDS is active.

use crate::model::{Collected, Entry, NOGROUP};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const RBYTES: &str = "ceph.dir.rbytes";
pub const MAX_BYTES: &str = "ceph.quota.max_bytes";

/// Reads one numeric Ceph virtual xattr. `Ok(None)` when it is not set.
pub fn read_u64(path: &Path, name: &str) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 64];
    match rustix::fs::getxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            let s = String::from_utf8_lossy(&buf[..n]);
            let s = s.trim_end_matches('\0').trim();
            s.parse::<u64>().map(Some).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{name} on {} is {s:?}, not a number", path.display()),
                )
            })
        }
        Err(rustix::io::Errno::NODATA) => Ok(None),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// A subvolume's `.meta` (INI): its data `path` and `state`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    pub path: String,
    pub state: String,
}

pub fn parse_meta(text: &str) -> Meta {
    let mut m = Meta::default();
    let mut global = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            global = l == "[GLOBAL]";
            continue;
        }
        if !global {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            match k.trim() {
                "path" => m.path = v.trim().to_string(),
                "state" => m.state = v.trim().to_string(),
                _ => {}
            }
        }
    }
    m
}

fn dirs(p: &Path) -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(p)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            v.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    v.sort();
    Ok(v)
}

/// Why a part of the walk could not be read. The rest of the walk goes on;
/// each becomes one of the report's errors.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("{} is not a mounted CephFS ({RBYTES}: {source}); please check quota.xattr.mounts and the mount", root.display())]
    NotCephFs {
        root: std::path::PathBuf,
        source: io::Error,
    },
    #[error("the xattr walk panicked")]
    Panicked,
}

fn ctx(p: &Path, what: &'static str, source: io::Error) -> WalkError {
    WalkError::Io {
        what,
        path: p.to_path_buf(),
        source,
    }
}

/// Subvolumes read at once.
const WALKERS: usize = 8;

/// One subvolume's entry from its `.meta` and the xattrs of its data path.
fn subvolume(
    volume: &str,
    root: &Path,
    vroot: &Path,
    g: &str,
    s: &str,
) -> Result<Entry, WalkError> {
    let sdir = vroot.join(g).join(s);
    let meta_path = sdir.join(".meta");
    let (data, state) = match std::fs::read_to_string(&meta_path) {
        Ok(t) => {
            let m = parse_meta(&t);
            let data = (!m.path.is_empty()).then(|| root.join(m.path.trim_start_matches('/')));
            (data, m.state)
        }
        // v1 (legacy) subvolume: the directory itself holds the data.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            (Some(sdir.clone()), "complete".to_string())
        }
        Err(e) => return Err(ctx(&meta_path, "reading", e)),
    };
    let mut entry = Entry {
        volume: volume.to_string(),
        group: g.to_string(),
        subvolume: Some(s.to_string()),
        state: if state.is_empty() {
            "complete".into()
        } else {
            state.clone()
        },
        used: None,
        quota: None,
    };
    // Like `subvolume info`: no figures unless the data path is there
    // (a snapshot-retained subvolume has none).
    if let Some(d) = data.filter(|_| state != "snapshot-retained") {
        match (read_u64(&d, RBYTES), read_u64(&d, MAX_BYTES)) {
            (Ok(used), Ok(quota)) => {
                entry.used = Some(used.unwrap_or(0));
                entry.quota = quota.filter(|q| *q > 0);
            }
            (Err(e), _) | (_, Err(e)) => return Err(ctx(&d, "reading xattrs of", e)),
        }
    }
    Ok(entry)
}

/// Walks one volume mounted at `root`. Synchronous; see [`collect`].
pub fn walk_volume(volume: &str, root: &Path, groups: bool) -> Result<Collected, WalkError> {
    // A CephFS root has ceph.dir.rbytes; anything else is a wrong or missing mount.
    read_u64(root, RBYTES).map_err(|source| WalkError::NotCephFs {
        root: root.to_path_buf(),
        source,
    })?;
    let mut out = Collected::default();
    let mut jobs: Vec<(String, String)> = Vec::new();
    let vroot = root.join("volumes");
    let names = match dirs(&vroot) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ctx(&vroot, "listing", e)),
    };
    for g in names {
        // `_nogroup` holds subvolumes without a group; other `_...` are internal
        // (`_deleting`, `_index`, `_legacy`).
        if g.starts_with('_') && g != NOGROUP {
            continue;
        }
        let gdir = vroot.join(&g);
        if groups && g != NOGROUP {
            match (read_u64(&gdir, RBYTES), read_u64(&gdir, MAX_BYTES)) {
                (Ok(used), Ok(quota)) => out.entries.push(Entry {
                    volume: volume.to_string(),
                    group: g.clone(),
                    subvolume: None,
                    state: "group".into(),
                    used,
                    quota: quota.filter(|q| *q > 0),
                }),
                (Err(e), _) | (_, Err(e)) => {
                    out.errors
                        .push(ctx(&gdir, "reading xattrs of", e).to_string());
                    continue;
                }
            }
        }
        let subs = match dirs(&gdir) {
            Ok(s) => s,
            Err(e) => {
                out.errors.push(ctx(&gdir, "listing", e).to_string());
                continue;
            }
        };
        jobs.extend(
            subs.into_iter()
                .filter(|s| !s.starts_with('.'))
                .map(|s| (g.clone(), s)),
        );
    }
    // Each subvolume costs a few round trips through the mount (read `.meta`,
    // two getxattrs) that wait on the MDS, not on a CPU: walk them in parallel.
    let next = AtomicUsize::new(0);
    let done: Vec<Vec<(usize, Result<Entry, WalkError>)>> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..WALKERS.min(jobs.len()))
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((g, s)) = jobs.get(i) else { break };
                        mine.push((i, subvolume(volume, root, &vroot, g, s)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec![(0, Err(WalkError::Panicked))])
            })
            .collect()
    });
    let mut done: Vec<_> = done.into_iter().flatten().collect();
    done.sort_by_key(|(i, _)| *i);
    for (_, r) in done {
        match r {
            Ok(e) => out.entries.push(e),
            Err(e) => out.errors.push(e.to_string()),
        }
    }
    Ok(out)
}

/// Walks every `(volume, root)` on a helper thread, giving up after `timeout`
/// (a hung mount must not hang the job; the thread is left behind).
pub fn collect(
    mounts: Vec<(String, PathBuf)>,
    groups: bool,
    timeout: Duration,
) -> Result<Collected, crate::QuotaError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let desc: Vec<String> = mounts
        .iter()
        .map(|(_, p)| p.display().to_string())
        .collect();
    std::thread::Builder::new()
        .name("xattr-walk".into())
        .spawn(move || {
            let mut out = Collected::default();
            for (v, root) in mounts {
                match walk_volume(&v, &root, groups) {
                    Ok(c) => {
                        if c.errors.is_empty() {
                            out.complete_volumes.push(v);
                        }
                        out.entries.extend(c.entries);
                        out.errors.extend(c.errors);
                    }
                    Err(e) => out.errors.push(e.to_string()),
                }
            }
            let _ = tx.send(out);
        })
        .map_err(|e| crate::QuotaError::Unreachable(format!("starting the xattr walk: {e}")))?;
    let mut out = rx.recv_timeout(timeout).map_err(|_| {
        crate::QuotaError::Unreachable(format!(
            "reading xattrs under {} did not finish within {}; the CephFS mount may be hung",
            desc.join(", "),
            humantime_secs(timeout)
        ))
    })?;
    crate::ceph::sort(&mut out.entries);
    out.complete_volumes.sort();
    Ok(out)
}

fn humantime_secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn meta_of_complete_and_retained_subvolumes() {
        let m = parse_meta(
            "[GLOBAL]\nversion = 2\ntype = subvolume\npath = /volumes/grp1/s1/7045c192\nstate = complete\n",
        );
        assert_eq!(m.path, "/volumes/grp1/s1/7045c192");
        assert_eq!(m.state, "complete");
        let m = parse_meta("[GLOBAL]\nversion = 2\ntype = subvolume\npath = \nstate = snapshot-retained\n\n[SNAPSHOTS]\nx = y\n");
        assert_eq!(m.path, "");
        assert_eq!(m.state, "snapshot-retained");
    }

    #[test]
    fn a_plain_directory_is_not_cephfs() {
        let d = tempfile::tempdir().unwrap();
        let e = walk_volume("vol1", d.path(), true).unwrap_err().to_string();
        assert!(e.contains("is not a mounted CephFS"), "{e}");
        let e = collect(
            vec![("vol1".into(), d.path().to_path_buf())],
            true,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(e.entries.is_empty() && e.errors.len() == 1, "{e:?}");
    }
}

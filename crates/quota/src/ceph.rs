//! The `ceph` CLI backend: `fs volume ls`, `fs subvolumegroup ls/info`,
//! `fs subvolume ls/info`, all with `--format json`, at most
//! `quota.concurrency` calls at once, each bounded by `quota.timeout`.

use crate::model::{Collected, Entry, Info, Named, NOGROUP};
use crate::QuotaError;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use vigil_core::config::{CephCliConfig, QuotaConfig};

/// Runs `ceph` with the configured binary, conf, keyring and client id.
#[derive(Debug, Clone)]
pub struct Ceph {
    bin: PathBuf,
    base: Vec<String>,
    timeout: Duration,
    limit: Arc<Semaphore>,
}

impl Ceph {
    pub fn new(c: &CephCliConfig, timeout: Duration, concurrency: u32) -> Self {
        let mut base = Vec::new();
        if let Some(p) = &c.conf {
            base.extend(["--conf".into(), p.display().to_string()]);
        }
        if let Some(p) = &c.keyring {
            base.extend(["--keyring".into(), p.display().to_string()]);
        }
        if let Some(id) = &c.client_id {
            base.extend(["--id".into(), id.clone()]);
        }
        base.extend([
            "--connect-timeout".into(),
            c.connect_timeout.get().as_secs().max(1).to_string(),
        ]);
        Self {
            bin: c.bin.clone(),
            base,
            timeout,
            limit: Arc::new(Semaphore::new(concurrency.max(1) as usize)),
        }
    }

    pub fn from_config(q: &QuotaConfig) -> Self {
        Self::new(&q.ceph, q.timeout.get(), q.concurrency)
    }

    /// Runs `ceph <args> --format json` and parses stdout as `T`.
    pub async fn json<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T, QuotaError> {
        let mut argv = self.base.clone();
        argv.extend(args.iter().map(|a| a.to_string()));
        argv.extend(["--format".into(), "json".into()]);
        let _permit = self.limit.acquire().await.map_err(|_| QuotaError::Ceph {
            argv: args.join(" "),
            message: "shutting down".into(),
        })?;
        let rendered = vigil_core::cmd::render_argv(&self.bin, &argv);
        let out = vigil_core::cmd::run(&self.bin, &argv, self.timeout)
            .await
            .map_err(|e| QuotaError::Ceph {
                argv: rendered.clone(),
                message: e.to_string(),
            })?;
        if out.code != Some(0) {
            return Err(QuotaError::Ceph {
                argv: rendered,
                message: format!(
                    "exit {}: {}",
                    out.code.map(|c| c.to_string()).unwrap_or("signal".into()),
                    vigil_core::cmd::tail(&out.stderr, 3)
                ),
            });
        }
        serde_json::from_str(out.stdout.trim()).map_err(|e| QuotaError::Parse {
            argv: rendered,
            message: format!("{e}; output began {:?}", head(&out.stdout)),
        })
    }

    /// `fs volume ls`.
    pub async fn volumes(&self) -> Result<Vec<String>, QuotaError> {
        let v: Vec<Named> = self.json(&["fs", "volume", "ls"]).await?;
        Ok(v.into_iter().map(|n| n.name).collect())
    }

    /// Is every volume's file system served by an active MDS? (`fs dump`, a
    /// monitor command.) The xattr backend asks this before touching a mount.
    pub async fn mds_active(&self, volumes: &[String]) -> Result<(), QuotaError> {
        let dump: serde_json::Value = self.json(&["fs", "dump"]).await?;
        let fss = dump["filesystems"].as_array().cloned().unwrap_or_default();
        for v in volumes {
            let fs = fss
                .iter()
                .find(|f| f["mdsmap"]["fs_name"].as_str() == Some(v.as_str()));
            let Some(fs) = fs else {
                return Err(QuotaError::Unreachable(format!(
                    "`ceph fs dump` has no file system {v:?}"
                )));
            };
            let active = fs["mdsmap"]["info"]
                .as_object()
                .is_some_and(|m| m.values().any(|i| i["state"] == "up:active"));
            if !active {
                return Err(QuotaError::Unreachable(format!(
                    "file system {v:?} has no active MDS (`ceph fs status {v}`)"
                )));
            }
        }
        Ok(())
    }

    /// Everything under the given volumes (all volumes if empty).
    pub async fn collect(&self, wanted: &[String], groups: bool) -> Result<Collected, QuotaError> {
        // The first call decides reachability: if it fails, nothing is known.
        let listed = self.volumes().await?;
        let mut out = Collected::default();
        let volumes: Vec<String> = if wanted.is_empty() {
            listed
        } else {
            for w in wanted.iter().filter(|w| !listed.contains(w)) {
                out.errors.push(format!(
                    "volume {w:?} is not in `ceph fs volume ls` ({})",
                    listed.join(", ")
                ));
            }
            wanted
                .iter()
                .filter(|w| listed.contains(w))
                .cloned()
                .collect()
        };
        let mut set = JoinSet::new();
        for v in volumes {
            let me = self.clone();
            set.spawn(async move { (v.clone(), me.collect_volume(&v, groups).await) });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok((v, c)) => {
                    if c.errors.is_empty() {
                        out.complete_volumes.push(v);
                    }
                    out.entries.extend(c.entries);
                    out.errors.extend(c.errors);
                }
                Err(e) => out
                    .errors
                    .push(format!("internal: a volume task failed: {e}")),
            }
        }
        out.complete_volumes.sort();
        sort(&mut out.entries);
        Ok(out)
    }

    async fn collect_volume(&self, vol: &str, groups: bool) -> Collected {
        let mut out = Collected::default();
        let names: Vec<Named> = match self.json(&["fs", "subvolumegroup", "ls", vol]).await {
            Ok(g) => g,
            Err(e) => {
                out.errors.push(e.to_string());
                return out;
            }
        };
        let mut group_names: Vec<String> = names.into_iter().map(|n| n.name).collect();
        group_names.push(NOGROUP.to_string());
        let mut set: JoinSet<Result<Vec<Entry>, QuotaError>> = JoinSet::new();
        for g in group_names {
            let me = self.clone();
            let vol = vol.to_string();
            set.spawn(async move { me.collect_group(&vol, &g, groups).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(es)) => out.entries.extend(es),
                Ok(Err(e)) => out.errors.push(e.to_string()),
                Err(e) => out
                    .errors
                    .push(format!("internal: a group task failed: {e}")),
            }
        }
        out
    }

    async fn collect_group(
        &self,
        vol: &str,
        group: &str,
        groups: bool,
    ) -> Result<Vec<Entry>, QuotaError> {
        let mut entries = Vec::new();
        // `_nogroup` is internal: `--group_name _nogroup` is refused (EPERM),
        // and its subvolumes are listed without --group_name.
        let gargs: Vec<&str> = if group == NOGROUP {
            vec![]
        } else {
            vec!["--group_name", group]
        };
        let info_task = (groups && group != NOGROUP).then(|| {
            let me = self.clone();
            let (vol, group) = (vol.to_string(), group.to_string());
            tokio::spawn(async move {
                me.json::<Info>(&["fs", "subvolumegroup", "info", &vol, &group])
                    .await
            })
        });
        let mut ls = vec!["fs", "subvolume", "ls", vol];
        ls.extend(&gargs);
        let subs: Vec<Named> = self.json(&ls).await?;
        let mut set = JoinSet::new();
        for s in subs {
            let me = self.clone();
            let (vol, group) = (vol.to_string(), group.to_string());
            set.spawn(async move {
                let mut a = vec!["fs", "subvolume", "info", &vol, &s.name];
                if group != NOGROUP {
                    a.extend(["--group_name", &group]);
                }
                let info = me.json::<Info>(&a).await;
                (s.name.clone(), info)
            });
        }
        let mut first_err = None;
        while let Some(r) = set.join_next().await {
            match r {
                Ok((name, Ok(i))) => entries.push(Entry {
                    volume: vol.to_string(),
                    group: group.to_string(),
                    subvolume: Some(name),
                    state: i.state.clone().unwrap_or_else(|| "unknown".into()),
                    used: i.bytes_used,
                    quota: i.quota(),
                }),
                Ok((_, Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(QuotaError::Unreachable(format!("internal: {e}")));
                }
            }
        }
        if let Some(t) = info_task {
            match t.await {
                Ok(Ok(i)) => entries.push(Entry {
                    volume: vol.to_string(),
                    group: group.to_string(),
                    subvolume: None,
                    state: "group".into(),
                    used: i.bytes_used,
                    quota: i.quota(),
                }),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(QuotaError::Unreachable(format!("internal: {e}")));
                }
            }
        }
        match first_err {
            // Partial results would hide an entry; the caller reports the error
            // and keeps what the other groups gave.
            Some(e) => Err(e),
            None => Ok(entries),
        }
    }
}

/// Groups first, then their subvolumes, by name.
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        (&a.volume, &a.group, &a.subvolume).cmp(&(&b.volume, &b.group, &b.subvolume))
    });
}

fn head(s: &str) -> String {
    s.chars().take(120).collect()
}

//! `vigil-snapshot repin`: accept the cluster ID the members report now,
//! after the cluster was rebuilt on purpose (a restore, an RKE2
//! cluster-reset). The old ID stays trusted, so its archives still restore.

use serde::Serialize;
use vigil_core::config::Config;
use vigil_core::fsutil::{self, RunLock};
use vigil_core::pin::{self, ClusterPin};
use vigil_etcd::TlsMaterial;

#[derive(Debug, Serialize)]
pub struct RepinReport {
    pub cluster_id: String,
    pub previous: Option<String>,
    pub members: Vec<(String, Answer)>,
    pub path: std::path::PathBuf,
}

/// What a member said when asked for its cluster ID; in JSON
/// `{"Ok": ID}` or `{"Err": "why it did not answer"}`.
#[derive(Debug, Serialize)]
pub enum Answer {
    Ok(String),
    Err(String),
}

impl Answer {
    fn id(&self) -> Option<&String> {
        match self {
            Answer::Ok(id) => Some(id),
            Answer::Err(_) => None,
        }
    }
}

/// Why the pin was not replaced.
#[derive(Debug, thiserror::Error)]
pub enum RepinError {
    #[error(transparent)]
    Config(#[from] vigil_core::config::ConfigError),
    #[error(transparent)]
    Fs(#[from] vigil_core::fsutil::FsError),
    #[error("{0}; repin changes what that run trusts, so try again when it has finished")]
    Locked(vigil_core::fsutil::LockError),
    #[error(transparent)]
    Tls(#[from] vigil_etcd::EtcdError),
    #[error("repin needs a majority of the {members} configured members to report the same cluster ID; they said: {}", said.join("; "))]
    NoMajority { members: usize, said: Vec<String> },
    #[error(transparent)]
    Pin(#[from] vigil_core::pin::PinError),
}

pub async fn repin(cfg: &Config) -> Result<RepinReport, RepinError> {
    let sc = cfg.snapshot("vigil-snapshot")?;
    fsutil::ensure_private_dir(&cfg.state.dir)?;
    let _lock =
        RunLock::acquire(&cfg.state.dir.join("snapshot.lock")).map_err(RepinError::Locked)?;
    let tls = cfg.tls().map(TlsMaterial::load).transpose()?;
    let asks = cfg.members().map(|m| {
        let tls = tls.as_ref();
        async move {
            let r = async {
                let c = vigil_etcd::connect(m, tls, sc.connect_timeout.get()).await?;
                vigil_etcd::status(&c).await
            }
            .await;
            let answer = match r {
                Ok(s) => Answer::Ok(format!("{:x}", s.cluster_id)),
                Err(e) => Answer::Err(e.to_string()),
            };
            (m.name.clone(), answer)
        }
    });
    let members: Vec<(String, Answer)> = futures_util::future::join_all(asks).await;
    let n = members.len();
    let ids: Vec<&String> = members.iter().filter_map(|(_, a)| a.id()).collect();
    let answers = |id: &str| ids.iter().filter(|i| i.as_str() == id).count();
    let best = ids.iter().max_by_key(|i| answers(i)).map(|s| s.to_string());
    let Some(id) = best.filter(|id| answers(id) * 2 > n) else {
        let said: Vec<String> = members
            .iter()
            .map(|(m, r)| match r {
                Answer::Ok(id) => format!("{m}: cluster ID {id}"),
                Answer::Err(e) => format!("{m}: {e}"),
            })
            .collect();
        return Err(RepinError::NoMajority { members: n, said });
    };
    let mut p = pin::load(&cfg.state.dir)?
        .unwrap_or_else(|| ClusterPin::new(cfg.cluster_name(), &id, "repin"));
    let previous = (p.cluster_id != id).then(|| p.cluster_id.clone());
    p.replace(&id);
    pin::save(&cfg.state.dir, &p)?;
    Ok(RepinReport {
        cluster_id: id,
        previous,
        members,
        path: pin::path(&cfg.state.dir),
    })
}

pub fn human(r: &RepinReport) -> String {
    let mut s = match &r.previous {
        Some(old) => format!(
            "pinned etcd cluster ID {} in {} (was {}; archives of {old} stay trusted for restores)\n",
            r.cluster_id,
            r.path.display(),
            old
        ),
        None => format!(
            "etcd cluster ID {} is pinned in {} (unchanged)\n",
            r.cluster_id,
            r.path.display()
        ),
    };
    for (m, a) in &r.members {
        match a {
            Answer::Ok(id) if *id == r.cluster_id => s.push_str(&format!("  {m}: {id}\n")),
            Answer::Ok(id) => s.push_str(&format!(
                "  {m}: {id} (another cluster: its snapshots stay refused)\n"
            )),
            Answer::Err(e) => s.push_str(&format!("  {m}: not reachable: {e}\n")),
        }
    }
    s
}

//! What a run learns about the cluster for later runs and restores: the
//! pinned cluster ID and the newest revision seen.

use super::MemberReport;
use vigil_archive::local;
use vigil_core::config::{Config, SnapshotConfig};
use vigil_core::manifest::Manifest;
use vigil_core::pin::{self, ClusterPin};

/// The pin, or one learnt from the verified archives already here (an
/// upgrade from a vigil without pins). A corrupt pin file is reported and
/// left for the administrator; the run goes on unpinned.
pub(super) fn load(
    cfg: &Config,
    sc: &SnapshotConfig,
    warnings: &mut Vec<String>,
) -> Option<ClusterPin> {
    match pin::load(&cfg.state.dir) {
        Ok(Some(p)) => return Some(p),
        Ok(None) => {}
        Err(e) => {
            tracing::error!("{e}");
            warnings.push(e.to_string());
            return None;
        }
    }
    let stored: Vec<local::LocalArchive> = cfg
        .members()
        .flat_map(|m| local::list_member(&local::member_dir(&sc.dir, &m.name)))
        .collect();
    let id = pin::majority(stored.iter().map(|s| &s.manifest))?;
    let p = ClusterPin::new(cfg.cluster_name(), &id, "existing archives");
    save(cfg, &p, warnings);
    Some(p)
}

/// Pins the cluster ID once a majority of the configured members archived
/// it in this run and agreed on it.
pub(super) fn from_run(cfg: &Config, members: &[MemberReport], warnings: &mut Vec<String>) {
    let good: Vec<&Manifest> = members
        .iter()
        .filter(|m| m.ok)
        .filter_map(|m| m.manifest.as_ref())
        .collect();
    let Some(id) = pin::majority(good.iter().copied()) else {
        return;
    };
    let agree = good.iter().filter(|m| m.cluster_id == id).count();
    if agree * 2 > cfg.members().count() {
        save(
            cfg,
            &ClusterPin::new(cfg.cluster_name(), &id, "run"),
            warnings,
        );
    }
}

fn save(cfg: &Config, p: &ClusterPin, warnings: &mut Vec<String>) {
    match pin::save(&cfg.state.dir, p) {
        Ok(()) => tracing::info!(
            "pinned etcd cluster ID {} ({}); a member of another cluster will be refused",
            p.cluster_id,
            p.source
        ),
        Err(e) => warnings.push(format!("could not pin the cluster ID: {e}")),
    }
}

/// The newest revision the members' statuses reported this run, for sizing
/// a restore's revision bump (vigil_core::seen). After the pin is settled,
/// so a first run records its own cluster.
pub(super) fn record_seen(cfg: &Config, members: &[MemberReport], warnings: &mut Vec<String>) {
    let seen: Vec<vigil_core::seen::Observation> = members
        .iter()
        .filter_map(|m| m.manifest.as_ref())
        .map(|m| vigil_core::seen::Observation {
            cluster_id: m.cluster_id.clone(),
            revision: m.revision,
            member: m.member.clone(),
            endpoint: m.endpoint.clone(),
        })
        .collect();
    if seen.is_empty() {
        return;
    }
    let r = tokio::task::block_in_place(|| {
        vigil_core::seen::record(&cfg.state.dir, "vigil-snapshot", &seen)
    });
    match r {
        Ok(r) => tracing::debug!("revision seen: {r:?}"),
        Err(e) => {
            let w = format!("could not record the newest revision seen: {e}");
            tracing::warn!("{w}");
            warnings.push(w);
        }
    }
}

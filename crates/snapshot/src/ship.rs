//! The sinks after the members: ship what is missing (catch-up, tape),
//! apply each sink's own retention, list and scrub copies.

use crate::run::SinkReport;
use std::collections::HashSet;
use std::sync::Arc;
use vigil_archive::local;
use vigil_archive::sink::{Sink, SinkEntry, SinkError};
use vigil_core::config::Config;
use vigil_core::retention::{self, Candidate};

pub fn build_sinks(cfg: &Config) -> Result<Vec<Arc<Sink>>, SinkError> {
    cfg.sinks()
        .map(|s| Sink::build(s, cfg.cluster_name(), &cfg.state.dir).map(Arc::new))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ship every local archive that is missing, then prune.
    ShipAndPrune,
    /// Only prune; with `dry_run`, only say what would go.
    Prune { dry_run: bool },
}

/// Brings one sink in line with the local archives and its retention.
pub async fn sync_sink(cfg: &Config, sink: &Sink, mode: Mode) -> SinkReport {
    let mut rep = SinkReport {
        sink: sink.name().to_string(),
        kind: sink.cfg.kind.to_string(),
        ok: true,
        copies: 0,
        shipped: Vec::new(),
        pruned: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let Some(sc) = cfg.snapshot.as_ref().map(|s| s.get_ref()) else {
        return rep;
    };
    let mut entries = match sink.list().await {
        Ok(e) => e,
        Err(e) => {
            rep.ok = false;
            rep.errors.push(e.to_string());
            return rep;
        }
    };
    for member in cfg.members() {
        if mode == Mode::ShipAndPrune {
            let have: HashSet<String> = entries
                .iter()
                .filter(|e| e.member == member.name && e.is_verified())
                .map(|e| e.manifest.id.clone())
                .collect();
            let dir = local::member_dir(&sc.dir, &member.name);
            // Oldest first, so the sink's history fills in order.
            let mut missing: Vec<_> = local::list_member(&dir)
                .into_iter()
                .filter(|s| s.is_verified() && !have.contains(&s.manifest.id))
                .collect();
            missing.reverse();
            for s in missing {
                tracing::info!(sink = %sink.name(), member = %member.name, "shipping {}", s.manifest.archive);
                match sink
                    .upload_file(&member.name, &s.archive_path, &s.manifest)
                    .await
                {
                    Ok(()) => {
                        rep.shipped
                            .push(sink.location(&member.name, &s.manifest.archive));
                        entries.retain(|e| e.manifest.id != s.manifest.id);
                        entries.push(SinkEntry {
                            member: member.name.clone(),
                            archive_size: Some(s.manifest.archive_size),
                            manifest: s.manifest.clone(),
                        });
                    }
                    Err(e) => {
                        tracing::error!(sink = %sink.name(), member = %member.name, "{e}");
                        rep.errors.push(format!("{}: {e}", member.name));
                    }
                }
            }
        }
        if sink.can_delete() {
            let dry_run = matches!(mode, Mode::Prune { dry_run: true });
            let candidates = entries
                .iter()
                .filter(|e| e.member == member.name)
                .map(|e| Candidate {
                    created: e.manifest.created_at.clone(),
                    verified: e.is_verified(),
                    item: e.manifest.archive.clone(),
                })
                .collect();
            let (_, prune) = retention::apply(candidates, &sink.cfg.policy());
            for p in prune {
                let loc = sink.location(&member.name, &p.item);
                if !dry_run {
                    if let Err(e) = sink.delete(&member.name, &p.item).await {
                        rep.errors.push(format!("{}: pruning: {e}", member.name));
                        continue;
                    }
                    entries.retain(|e| !(e.member == member.name && e.manifest.archive == p.item));
                }
                rep.pruned.push(loc);
            }
        }
    }
    rep.copies = entries.iter().filter(|e| e.is_verified()).count();
    rep.ok = rep.errors.is_empty();
    rep
}

/// Re-reads copies in one sink and checks them against their manifests.
pub async fn scrub_sink(sink: &Sink, sample: Option<usize>) -> (usize, Vec<String>) {
    let mut errors = Vec::new();
    let entries = match sink.list().await {
        Ok(e) => e,
        Err(e) => return (0, vec![e.to_string()]),
    };
    let mut chosen: Vec<&SinkEntry> = entries.iter().collect();
    if let Some(n) = sample {
        fastrand::shuffle(&mut chosen);
        chosen.truncate(n);
    }
    for e in &chosen {
        if e.archive_size.is_none() {
            errors.push(format!(
                "{}: {} has a manifest but the archive is missing",
                sink.name(),
                e.manifest.archive
            ));
            continue;
        }
        if let Err(err) = sink.verify(&e.member, &e.manifest).await {
            errors.push(err.to_string());
        }
    }
    (chosen.len(), errors)
}

/// Scrubs the local copies: size and sha256 against each manifest.
pub fn scrub_local(root: &std::path::Path, sample: Option<usize>) -> (usize, Vec<String>) {
    let mut all = local::list_all(root);
    if let Some(n) = sample {
        fastrand::shuffle(&mut all);
        all.truncate(n);
    }
    let mut errors = Vec::new();
    for s in &all {
        match vigil_archive::sha256_file(&s.archive_path) {
            Ok((n, sha)) if n == s.manifest.archive_size && sha == s.manifest.archive_sha256 => {}
            Ok((n, sha)) => errors.push(format!(
                "local: {}: {n} bytes with sha256 {sha}, but the manifest says {} bytes with sha256 {}",
                s.archive_path.display(),
                s.manifest.archive_size,
                s.manifest.archive_sha256
            )),
            Err(e) => errors.push(format!("local: {e}")),
        }
    }
    (all.len(), errors)
}

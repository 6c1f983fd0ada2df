//! Named and pinned snapshots (`run --name`, `pin`, `unpin`) and `delete`.
//! The pins live in `<state.dir>/protected.json` (see
//! [`vigil_core::protect`]); every store's retention reads them.

use crate::list;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_archive::catalog::{Catalog, CatalogCopy, CatalogEntry, LOCAL};
use vigil_archive::sink::{Sink, SinkError};
use vigil_core::config::Config;
use vigil_core::fsutil;
use vigil_core::manifest::Manifest;
use vigil_core::protect::{self, Protections};

/// How to find an id, for errors about one that is not there.
const FIND_IDS: &str =
    "`vigil-snapshot list --all` prints each archive's id and name (`id` and `name` in --json)";

/// Every archive of the local dir and the sinks, with what the state dir knows.
pub async fn catalog(cfg: &Config, root: &Path, sinks: &[Arc<Sink>]) -> Catalog {
    let mut cat = list::all(cfg, root, sinks).await;
    cat.apply_state(&cfg.state.dir);
    cat
}

/// The archives `target` names: an archive id, or every archive of the
/// snapshot named `target`. `(id, member)`, in the catalog's order.
pub fn resolve(
    cat: &Catalog,
    kept: &Protections,
    target: &str,
) -> Result<Vec<(String, String)>, String> {
    let all = || cat.entries.iter().chain(&cat.untrusted);
    if let Some(a) = all().find(|a| a.id == target) {
        return Ok(vec![(a.id.clone(), a.member.clone())]);
    }
    let named = kept.named(target);
    if !named.is_empty() {
        return Ok(named
            .into_iter()
            .map(|p| (p.id.clone(), p.member.clone()))
            .collect());
    }
    if let Some(p) = kept.get(target) {
        return Ok(vec![(p.id.clone(), p.member.clone())]);
    }
    let unlisted = if cat.errors.is_empty() {
        String::new()
    } else {
        format!(
            " (some stores could not be listed: {})",
            cat.errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    Err(format!(
        "no archive with the id or name {target:?}{unlisted}; {FIND_IDS}"
    ))
}

/// What `pin`/`unpin` changed.
#[derive(Debug, Serialize)]
pub struct PinReport {
    pub pinned: bool,
    pub archives: Vec<protect::Protected>,
}

pub fn human_pin(r: &PinReport) -> String {
    let verb = if r.pinned { "pinned" } else { "unpinned" };
    let mut s = String::new();
    for p in &r.archives {
        s.push_str(&format!(
            "{verb} {} (member {}{})\n",
            p.id,
            p.member,
            p.name
                .as_deref()
                .map(|n| format!(", name {n}"))
                .unwrap_or_default()
        ));
    }
    if r.pinned {
        s.push_str("retention keeps it locally and in every sink until `vigil-snapshot unpin`\n");
    } else {
        s.push_str("the next prune applies the retention rules to it again\n");
    }
    s
}

/// Pins the archives `target` names (run lock held by the caller).
pub async fn pin(
    cfg: &Config,
    root: &Path,
    sinks: &[Arc<Sink>],
    target: &str,
    reason: Option<&str>,
) -> Result<PinReport, String> {
    let mut kept = protect::load(&cfg.state.dir).map_err(|e| e.to_string())?;
    let cat = catalog(cfg, root, sinks).await;
    let ids = resolve(&cat, &kept, target)?;
    for (id, member) in &ids {
        kept.set(id, member, None, true, reason);
    }
    protect::save(&cfg.state.dir, &kept).map_err(|e| e.to_string())?;
    Ok(PinReport {
        pinned: true,
        archives: ids
            .iter()
            .filter_map(|(id, _)| kept.get(id).cloned())
            .collect(),
    })
}

/// Unpins the archives `target` names; they need not have a copy left.
pub fn unpin(cfg: &Config, target: &str) -> Result<PinReport, String> {
    let mut kept = protect::load(&cfg.state.dir).map_err(|e| e.to_string())?;
    let mut ids: Vec<String> = kept
        .named(target)
        .into_iter()
        .map(|p| p.id.clone())
        .collect();
    if ids.is_empty() {
        ids = kept.get(target).map(|p| p.id.clone()).into_iter().collect();
    }
    let before: Vec<protect::Protected> = ids
        .iter()
        .filter_map(|id| kept.get(id).filter(|p| p.keep).cloned())
        .collect();
    if before.is_empty() {
        return Err(format!(
            "{target:?} is not a pinned archive id or snapshot name; `vigil-snapshot list --all` marks pinned archives (`pinned` in --json)"
        ));
    }
    for p in &before {
        kept.unpin(&p.id);
    }
    protect::save(&cfg.state.dir, &kept).map_err(|e| e.to_string())?;
    Ok(PinReport {
        pinned: false,
        archives: before,
    })
}

/// Records the name (and with `keep`, the pin) of the archives a run made.
pub fn record_run(
    cfg: &Config,
    manifests: &[&Manifest],
    name: &str,
    keep: bool,
) -> Result<Vec<protect::Protected>, String> {
    let mut kept = protect::load(&cfg.state.dir).map_err(|e| e.to_string())?;
    for m in manifests {
        kept.set(&m.id, &m.member, Some(name), keep, None);
    }
    protect::save(&cfg.state.dir, &kept).map_err(|e| e.to_string())?;
    Ok(manifests
        .iter()
        .filter_map(|m| kept.get(&m.id).cloned())
        .collect())
}

/// A name `run --name` may take: valid, and not already another run's.
pub fn check_new_name(cfg: &Config, name: &str) -> Result<(), String> {
    protect::check_name(name).map_err(|e| e.to_string())?;
    let kept = protect::load(&cfg.state.dir).map_err(|e| e.to_string())?;
    if let Some(p) = kept.named(name).first() {
        return Err(format!(
            "snapshot name {name:?} already names {} (recorded {} by {}) in {}; choose another name, or `vigil-snapshot delete {name}` first",
            p.id,
            p.at,
            p.by,
            protect::path(&cfg.state.dir).display()
        ));
    }
    Ok(())
}

/// One copy `delete` removed (or would, or could not).
#[derive(Debug, Serialize)]
pub struct Deleted {
    pub id: String,
    pub member: String,
    pub store: String,
    pub location: String,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DeleteReport {
    pub dry_run: bool,
    pub ok: bool,
    pub copies: Vec<Deleted>,
    /// Why nothing was deleted (a pin, the last verified copy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

pub fn human_delete(r: &DeleteReport) -> String {
    let mut s = String::new();
    for e in &r.refused {
        s.push_str(&format!("refused: {e}\n"));
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    for c in &r.copies {
        match &c.error {
            None => s.push_str(&format!("{}: {verb} {} ({})\n", c.store, c.id, c.location)),
            Some(e) => s.push_str(&format!(
                "{}: FAILED {} ({}): {e}\n",
                c.store, c.id, c.location
            )),
        }
    }
    s
}

/// The copies of `a` in the store `only` names (all without it).
fn chosen<'a>(a: &'a CatalogEntry, only: Option<&str>) -> Vec<&'a CatalogCopy> {
    a.copies
        .iter()
        .filter(|c| only.is_none_or(|o| o == c.store))
        .collect()
}

/// Deletes the copies of the archives `target` names, in every store or
/// only in `only`: sinks first, the local copy last. Refuses (deleting
/// nothing) a pinned archive, and without `force` the last verified copy
/// of a member in a store. The caller holds the prune locks.
pub async fn delete(
    cfg: &Config,
    root: &Path,
    sinks: &[Arc<Sink>],
    target: &str,
    only: Option<&str>,
    force: bool,
    dry_run: bool,
) -> Result<DeleteReport, String> {
    if let Some(o) = only {
        if o != LOCAL && !sinks.iter().any(|s| s.name() == o) {
            return Err(format!(
                "no sink named {o:?} in {} (`local` is the bastion's own copies)",
                cfg.path.display()
            ));
        }
    }
    let mut kept = protect::load(&cfg.state.dir).map_err(|e| e.to_string())?;
    let cat = catalog(cfg, root, sinks).await;
    let ids = resolve(&cat, &kept, target)?;
    let all: Vec<&CatalogEntry> = cat.entries.iter().chain(&cat.untrusted).collect();
    let mut rep = DeleteReport {
        dry_run,
        ok: true,
        copies: Vec::new(),
        refused: Vec::new(),
    };
    // A store that could not be listed may hold a copy that would be left behind.
    for e in &cat.errors {
        if let Some(store) = e.store().filter(|s| only.is_none_or(|o| o == *s)) {
            rep.refused.push(format!(
                "{store} could not be listed ({e}), so its copy would be left behind; retry when it answers, or delete elsewhere with --sink"
            ));
        }
    }
    let mut plan: Vec<(&CatalogEntry, Vec<&CatalogCopy>)> = Vec::new();
    for (id, _) in &ids {
        if let Some(p) = kept.get(id).filter(|p| p.keep) {
            rep.refused.push(format!(
                "{id} is pinned ({}); `vigil-snapshot unpin {}` first",
                p.label(),
                p.label()
            ));
            continue;
        }
        let Some(a) = all.iter().copied().find(|a| &a.id == id) else {
            // Named, but no copy is left anywhere: only the name goes.
            continue;
        };
        let copies = chosen(a, only);
        if copies.is_empty() {
            rep.refused.push(format!(
                "{id} has no copy in {}; its copies are in {}",
                only.unwrap_or("any store"),
                a.copies
                    .iter()
                    .map(|c| c.store.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        plan.push((a, copies));
    }
    if !force {
        for (a, copies) in &plan {
            for c in copies.iter().filter(|c| c.verified) {
                let others = all.iter().any(|o| {
                    o.member == a.member
                        && !ids.iter().any(|(id, _)| *id == o.id)
                        && o.copies.iter().any(|x| x.store == c.store && x.verified)
                });
                if !others {
                    rep.refused.push(format!(
                        "{} is the last verified copy of member {} in {}; --force deletes it anyway",
                        a.id, a.member, c.store
                    ));
                }
            }
        }
    }
    if !rep.refused.is_empty() {
        rep.ok = false;
        return Ok(rep);
    }
    for (a, copies) in &plan {
        // Sinks first: a failure there leaves the local copy, never only a sink's.
        let mut ordered = copies.clone();
        ordered.sort_by_key(|c| c.store == LOCAL);
        let mut gone = 0;
        let mut failed_sinks: Vec<&str> = Vec::new();
        for c in ordered {
            let r = if c.store == LOCAL && !failed_sinks.is_empty() {
                Err(format!(
                    "kept: the copy in {} was not deleted, and the bastion's own copy stays until it is",
                    failed_sinks.join(", ")
                ))
            } else if c.store == LOCAL {
                delete_local(c, dry_run)
            } else {
                match sinks.iter().find(|s| s.name() == c.store) {
                    Some(s) => delete_in_sink(s, c, dry_run).await,
                    None => Err(format!("sink {} is no longer in the config", c.store)),
                }
            };
            gone += usize::from(r.is_ok());
            rep.ok &= r.is_ok();
            if r.is_err() && c.store != LOCAL {
                failed_sinks.push(&c.store);
            }
            rep.copies.push(Deleted {
                id: a.id.clone(),
                member: a.member.clone(),
                store: c.store.clone(),
                location: c.location.clone(),
                deleted: r.is_ok() && !dry_run,
                error: r.err(),
            });
        }
        if !dry_run && gone == a.copies.len() {
            kept.remove(&a.id);
        }
    }
    if !dry_run {
        for (id, _) in &ids {
            if !all.iter().any(|a| &a.id == id) {
                kept.remove(id);
            }
        }
        protect::save(&cfg.state.dir, &kept).map_err(|e| e.to_string())?;
    }
    Ok(rep)
}

/// Forgets the names of archives that retention removed from every store
/// (a pin keeps its archive, so only bare names go). Only when every store
/// could be listed: one that could not may still hold a copy. How many went.
pub async fn forget_pruned(
    cfg: &Config,
    root: &Path,
    sinks: &[Arc<Sink>],
) -> Result<usize, String> {
    let mut kept = protect::load(&cfg.state.dir).map_err(|e| e.to_string())?;
    if kept.archives.iter().all(|p| p.keep) {
        return Ok(0);
    }
    let cat = catalog(cfg, root, sinks).await;
    if !cat.errors.is_empty() {
        return Ok(0);
    }
    let before = kept.archives.len();
    kept.archives.retain(|p| {
        p.keep
            || cat
                .entries
                .iter()
                .chain(&cat.untrusted)
                .any(|a| a.id == p.id)
    });
    let gone = before - kept.archives.len();
    if gone > 0 {
        protect::save(&cfg.state.dir, &kept).map_err(|e| e.to_string())?;
    }
    Ok(gone)
}

fn delete_local(c: &CatalogCopy, dry_run: bool) -> Result<(), String> {
    let archive_path = PathBuf::from(&c.location);
    let manifest_path = Manifest::path_for(&archive_path);
    if dry_run {
        return Ok(());
    }
    let a = vigil_archive::local::LocalArchive {
        member_dir_name: c.member.clone(),
        archive_path,
        manifest_path,
        manifest: c.manifest.clone(),
    };
    vigil_archive::local::remove(&a).map_err(|e| e.to_string())?;
    if let Some(dir) = a.archive_path.parent() {
        fsutil::fsync_dir(dir).map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn delete_in_sink(s: &Sink, c: &CatalogCopy, dry_run: bool) -> Result<(), String> {
    if !s.can_delete() {
        return Err(format!(
            "sink {} ({}) cannot delete: its retention belongs to the store (the TSM management class expires it; `dsmc delete archive` removes it by hand)",
            s.name(),
            s.cfg.kind
        ));
    }
    let archive = &c.manifest.archive;
    match s.locked_until(&c.member, archive).await {
        Ok(Some(until)) => {
            return Err(format!(
                "sink {}: {} is under Object Lock until {}; it cannot be deleted before then",
                s.name(),
                c.location,
                vigil_core::rfc3339(until)
            ))
        }
        Ok(None) => {}
        Err(e) => return Err(e.to_string()),
    }
    if dry_run {
        return Ok(());
    }
    s.delete(&c.member, archive).await.map_err(|e| match e {
        e @ SinkError::DeleteDenied { .. } => format!(
            "{e}: this sink's key is append-only; delete it with a key that may, or let the bucket's lifecycle rules expire it"
        ),
        e => e.to_string(),
    })
}

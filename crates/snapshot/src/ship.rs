//! The sinks after the members: ship what is missing (catch-up, tape),
//! apply each sink's own retention, list and scrub copies.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use vigil_archive::local;
use vigil_archive::sink::{Sink, SinkEntry, SinkError};
use vigil_core::config::Config;
use vigil_core::corrupt::{self, BadCopy, Ledger};
use vigil_core::progress::Board;
use vigil_core::retention::{self, Candidate, Rule, Verdict};

/// What retention did (or, dry, would do) with one copy, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyVerdict {
    pub member: String,
    /// The archive id (what `pin`, `unpin` and `delete` take).
    pub id: String,
    pub location: String,
    pub keep: bool,
    /// `last 5: #2`, `pinned: pre-upgrade`, `beyond keep last 5`...
    pub reason: String,
    pub rules: Vec<Rule>,
    /// Why a copy retention let go is still there (an Object Lock, an
    /// append-only key, an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

impl CopyVerdict {
    pub fn new(member: &str, id: &str, location: String, v: Verdict) -> Self {
        let reason = v
            .rules
            .iter()
            .map(Rule::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        CopyVerdict {
            member: member.to_string(),
            id: id.to_string(),
            location,
            keep: v.keep,
            reason,
            rules: v.rules,
            held: None,
        }
    }
}

/// A sink at the end of the run: every local archive should be there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkReport {
    pub sink: String,
    pub kind: String,
    pub ok: bool,
    /// Verified copies of this cluster in the sink after the run.
    pub copies: usize,
    /// Archives shipped late (catch-up, or tape).
    pub shipped: Vec<String>,
    pub pruned: Vec<String>,
    /// Copies retention would prune whose S3 Object Lock still holds:
    /// "<location> (locked until <date>)". They stay, and still count.
    pub locked: Vec<String>,
    /// Copies the store would not let this key delete (an append-only
    /// key): left to the bucket's lifecycle rules, not an error.
    pub left: Vec<String>,
    pub errors: Vec<String>,
    /// Problems that the run repaired (a streamed upload that failed and was caught up).
    pub warnings: Vec<String>,
    /// Retention's verdict on every copy, when it ran here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<CopyVerdict>,
}

pub fn build_sinks(cfg: &Config) -> Result<Vec<Arc<Sink>>, SinkError> {
    cfg.sinks()
        .map(|s| Sink::build(s, cfg.cluster_name(), &cfg.state.dir).map(Arc::new))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ship every local archive that is missing, then prune.
    ShipAndPrune,
    /// Ship what is missing, prune nothing (pruning was deferred).
    Ship,
    /// Only prune; with `dry_run`, only say what would go.
    Prune { dry_run: bool },
}

/// Brings one sink in line with the local archives and its retention.
/// `made` are the archive names the current run wrote: never pruned. Copies
/// scrub found corrupt (the ledger) are neither shipped, counted nor pruned.
pub async fn sync_sink(cfg: &Config, sink: &Sink, mode: Mode, made: &[String]) -> SinkReport {
    let mut rep = SinkReport {
        sink: sink.name().to_string(),
        kind: sink.cfg.kind.to_string(),
        ok: true,
        copies: 0,
        shipped: Vec::new(),
        pruned: Vec::new(),
        locked: Vec::new(),
        left: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        verdicts: Vec::new(),
    };
    let Some(sc) = cfg.snapshot.as_ref() else {
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
    // Unreadable, they stop the prune (fail closed), not the shipping.
    let ledger = match Ledger::load(&cfg.state.dir) {
        Ok(l) => Some(l),
        Err(e) => {
            rep.errors.push(e.to_string());
            None
        }
    };
    let pin = match vigil_core::pin::load(&cfg.state.dir) {
        Ok(p) => Some(p),
        Err(e) => {
            rep.errors.push(e.to_string());
            None
        }
    };
    let kept = match vigil_core::protect::load(&cfg.state.dir) {
        Ok(k) => Some(k),
        Err(e) => {
            rep.errors.push(e.to_string());
            None
        }
    };
    let bad =
        |store: &str, archive: &str| ledger.as_ref().is_some_and(|l| l.is_bad(store, archive));
    for member in cfg.members() {
        if matches!(mode, Mode::ShipAndPrune | Mode::Ship) {
            let have: HashSet<String> = entries
                .iter()
                .filter(|e| e.member == member.name && e.is_verified())
                .map(|e| e.manifest.id.clone())
                .collect();
            let dir = local::member_dir(&sc.dir, &member.name);
            // Oldest first, so the sink's history fills in order.
            let mut missing: Vec<_> = local::list_member(&dir)
                .into_iter()
                .filter(|s| {
                    s.is_verified()
                        && !bad(corrupt::LOCAL, &s.manifest.archive)
                        && !have.contains(&s.manifest.id)
                })
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
        let prunes = sink.can_delete() && mode != Mode::Ship;
        if let (true, Some(_), Some(pin), Some(kept)) = (prunes, &ledger, &pin, &kept) {
            let dry_run = matches!(mode, Mode::Prune { dry_run: true });
            let candidates = entries
                .iter()
                .filter(|e| e.member == member.name)
                .map(|e| {
                    Candidate::of(
                        &e.manifest,
                        pin.as_ref(),
                        e.is_verified() && !bad(sink.name(), &e.manifest.archive),
                        made.contains(&e.manifest.archive),
                        (e.manifest.archive.clone(), e.manifest.id.clone()),
                    )
                    .protected(kept.pinned(&e.manifest.id))
                })
                .collect();
            let verdicts = retention::explain(candidates, &sink.cfg.policy());
            for (p, v) in verdicts {
                let (archive, id) = p.item;
                let loc = sink.location(&member.name, &archive);
                let keep = v.keep;
                rep.verdicts
                    .push(CopyVerdict::new(&member.name, &id, loc.clone(), v));
                if keep {
                    continue;
                }
                let r = if dry_run {
                    match sink.locked_until(&member.name, &archive).await {
                        Ok(Some(until)) => Err(SinkError::Locked {
                            sink: sink.name().to_string(),
                            key: loc.clone(),
                            until: vigil_core::rfc3339(until),
                        }),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    }
                } else {
                    sink.delete(&member.name, &archive).await
                };
                let held = match r {
                    Ok(()) => {
                        if !dry_run {
                            entries.retain(|e| {
                                !(e.member == member.name && e.manifest.archive == archive)
                            });
                        }
                        rep.pruned.push(loc);
                        None
                    }
                    Err(SinkError::Locked { until, .. }) => {
                        rep.locked.push(format!("{loc} (locked until {until})"));
                        Some(format!("Object Lock until {until}"))
                    }
                    Err(SinkError::DeleteDenied { .. }) => {
                        rep.left.push(format!(
                            "{loc}: not allowed; left to the bucket's lifecycle rules"
                        ));
                        Some("this key may not delete (append-only)".to_string())
                    }
                    Err(e) => {
                        rep.errors.push(format!("{}: pruning: {e}", member.name));
                        Some("the delete failed (see errors)".to_string())
                    }
                };
                if let Some(v) = rep.verdicts.last_mut() {
                    v.held = held;
                }
            }
        }
    }
    rep.copies = entries
        .iter()
        .filter(|e| e.is_verified() && !bad(sink.name(), &e.manifest.archive))
        .count();
    rep.ok = rep.errors.is_empty();
    rep
}

/// A problem a scrub found, with the archive it is about (none when a
/// store could not be listed or the ledger not written).
#[derive(Debug, Clone)]
pub struct Problem {
    pub archive: Option<String>,
    pub message: String,
}

impl Problem {
    fn of(archive: &str, message: String) -> Problem {
        Problem {
            archive: Some(archive.to_string()),
            message,
        }
    }

    fn store(message: String) -> Problem {
        Problem {
            archive: None,
            message,
        }
    }
}

/// What scrub adds to the error of a corrupt copy.
const RECORDED: &str = "recorded as corrupt: it no longer counts as a copy and is not pruned; remove it (or put a good copy in its place) and scrub again";

/// Puts what one scrub of `store` found into the ledger; a failure to
/// write it is one more scrub error.
fn record_scrub(
    state_dir: &Path,
    store: &str,
    good: &[String],
    bad: Vec<BadCopy>,
    present: &HashSet<String>,
    errors: &mut Vec<Problem>,
) {
    let r = Ledger::load(state_dir)
        .map_err(|e| e.to_string())
        .and_then(|mut l| {
            if l.scrubbed(store, good.iter().map(String::as_str), bad, Some(present)) {
                l.save(state_dir).map_err(|e| e.to_string())
            } else {
                Ok(())
            }
        });
    if let Err(e) = r {
        errors.push(Problem::store(format!(
            "{store}: recording the scrub result: {e}"
        )));
    }
}

fn bad_copy(store: &str, member: &str, archive: &str, location: String, error: &str) -> BadCopy {
    BadCopy {
        store: store.to_string(),
        member: member.to_string(),
        archive: archive.to_string(),
        location,
        found_at: vigil_core::rfc3339(vigil_core::now()),
        error: error.to_string(),
    }
}

/// Re-reads copies in one sink and checks them against their manifests.
/// Copies that do not match go into the corrupt-copy ledger of `state_dir`.
pub async fn scrub_sink(
    sink: &Sink,
    state_dir: &Path,
    sample: Option<usize>,
    progress: &Board,
) -> (usize, Vec<Problem>) {
    let mut errors = Vec::new();
    let entries = match sink.list().await {
        Ok(e) => e,
        Err(e) => return (0, vec![Problem::store(e.to_string())]),
    };
    let mut chosen: Vec<&SinkEntry> = entries.iter().collect();
    if let Some(n) = sample {
        fastrand::shuffle(&mut chosen);
        chosen.truncate(n);
    }
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let task = progress.task(
        sink.name(),
        Some(chosen.iter().filter_map(|e| e.archive_size).sum()),
    );
    for (i, e) in chosen.iter().enumerate() {
        task.stage(&format!("{}/{}", i + 1, chosen.len()));
        let _done = task.counts_when_done(e.archive_size.unwrap_or(0));
        if e.archive_size.is_none() {
            errors.push(Problem::of(
                &e.manifest.archive,
                format!(
                    "{}: {} has a manifest but the archive is missing",
                    sink.name(),
                    e.manifest.archive
                ),
            ));
            continue;
        }
        match sink.scrub(&e.member, &e.manifest).await {
            Ok(()) => good.push(e.manifest.archive.clone()),
            Err(err @ SinkError::Mismatch { .. }) => {
                let msg = err.to_string();
                bad.push(bad_copy(
                    sink.name(),
                    &e.member,
                    &e.manifest.archive,
                    sink.location(&e.member, &e.manifest.archive),
                    &msg,
                ));
                errors.push(Problem::of(
                    &e.manifest.archive,
                    format!("{msg} ({RECORDED})"),
                ));
            }
            // Reading failed: says nothing about the copy itself.
            Err(err) => errors.push(Problem::of(&e.manifest.archive, err.to_string())),
        }
    }
    task.finish(if errors.is_empty() { "ok" } else { "PROBLEMS" });
    let present = entries.iter().map(|e| e.manifest.archive.clone()).collect();
    record_scrub(state_dir, sink.name(), &good, bad, &present, &mut errors);
    (chosen.len(), errors)
}

/// Scrubs the local copies: size and sha256 against each manifest. Copies
/// that do not match go into the corrupt-copy ledger of `state_dir`.
pub fn scrub_local(
    root: &Path,
    state_dir: &Path,
    sample: Option<usize>,
    progress: &Board,
) -> (usize, Vec<Problem>) {
    let all = local::list_all(root);
    let present = all.iter().map(|s| s.manifest.archive.clone()).collect();
    let mut chosen: Vec<&local::LocalArchive> = all.iter().collect();
    if let Some(n) = sample {
        fastrand::shuffle(&mut chosen);
        chosen.truncate(n);
    }
    let mut errors = Vec::new();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let task = progress.task(
        corrupt::LOCAL,
        Some(chosen.iter().map(|s| s.manifest.archive_size).sum()),
    );
    for (i, s) in chosen.iter().enumerate() {
        task.stage(&format!("{}/{}", i + 1, chosen.len()));
        let _done = task.counts_when_done(s.manifest.archive_size);
        match vigil_archive::sha256_file(&s.archive_path) {
            Ok((n, sha)) if n == s.manifest.archive_size && sha == s.manifest.archive_sha256 => {
                good.push(s.manifest.archive.clone())
            }
            Ok((n, sha)) => {
                let msg = format!(
                    "local: {}: {n} bytes with sha256 {sha}, but the manifest says {} bytes with sha256 {}",
                    s.archive_path.display(),
                    s.manifest.archive_size,
                    s.manifest.archive_sha256
                );
                bad.push(bad_copy(
                    corrupt::LOCAL,
                    &s.member_dir_name,
                    &s.manifest.archive,
                    s.archive_path.display().to_string(),
                    &msg,
                ));
                errors.push(Problem::of(
                    &s.manifest.archive,
                    format!("{msg} ({RECORDED})"),
                ));
            }
            Err(e) => errors.push(Problem::of(&s.manifest.archive, format!("local: {e}"))),
        }
    }
    task.finish(if errors.is_empty() { "ok" } else { "PROBLEMS" });
    record_scrub(state_dir, corrupt::LOCAL, &good, bad, &present, &mut errors);
    (chosen.len(), errors)
}

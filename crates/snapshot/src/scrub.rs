//! `vigil-snapshot scrub`: re-read the chosen stores ([`crate::ship`] checks
//! each copy), forgive what was pruned meanwhile, record the outcomes.

use crate::ship::{self, Problem};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use vigil_archive::sink::Sink;
use vigil_core::config::Config;
use vigil_core::fsutil::FsError;
use vigil_core::outcome::{self, Outcome, Stage};

/// One store scrubbed: `local` or a sink's name.
#[derive(Debug, Clone)]
pub struct Scrubbed {
    pub store: String,
    pub checked: usize,
    pub errors: Vec<String>,
}

/// Scrubs the local copies (when `wanted("local")`) and every wanted sink.
pub async fn stores(
    root: &Path,
    state: &Path,
    sinks: &[Arc<Sink>],
    wanted: impl Fn(&str) -> bool,
    sample: Option<usize>,
    progress: &vigil_core::progress::Board,
) -> Vec<Scrubbed> {
    let mut results = Vec::new();
    if wanted("local") {
        let before = local_names(root);
        let (n, mut errors) = ship::scrub_local(root, state, sample, progress);
        if !errors.is_empty() {
            errors = drop_pruned("local", errors, &before, &local_names(root));
        }
        let errors = errors.into_iter().map(|p| p.message).collect();
        results.push(Scrubbed {
            store: "local".to_string(),
            checked: n,
            errors,
        });
    }
    for s in sinks.iter().filter(|s| wanted(s.name())) {
        let before = sink_names(s).await;
        let (n, mut errors) = ship::scrub_sink(s, state, sample, progress).await;
        if !errors.is_empty() {
            errors = drop_pruned(s.name(), errors, &before, &sink_names(s).await);
        }
        let errors = errors.into_iter().map(|p| p.message).collect();
        results.push(Scrubbed {
            store: s.name().to_string(),
            checked: n,
            errors,
        });
    }
    results
}

/// The outcome record of one store's scrub.
pub fn record(cfg: &Config, run_id: &str, s: &Scrubbed) -> Result<(), FsError> {
    let ok = s.errors.is_empty();
    let rec = Outcome {
        proof: None,
        job: vigil_core::jobs::Source::Scrub,
        run_id: run_id.to_string(),
        cluster: cfg.cluster_name().to_string(),
        subject: s.store.clone(),
        ok,
        stage: if ok { Stage::Done } else { Stage::Scrub },
        error: (!ok).then(|| s.errors.join("; ")),
        archive: None,
        time: run_id.to_string(),
        duration_ms: 0,
    };
    outcome::record(&cfg.state.dir, &rec).map(|_| ())
}

/// Drops the problems of archives that are gone with their manifest: pruned
/// while the scrub ran (by another bastion on a shared sink; this host's own
/// prunes wait for the archives lock). Re-checked by listing again, so a
/// missing archive whose manifest is still there is still reported.
fn drop_pruned(
    store: &str,
    errors: Vec<Problem>,
    before: &HashSet<String>,
    after: &HashSet<String>,
) -> Vec<Problem> {
    errors
        .into_iter()
        .filter(|p| {
            match p
                .archive
                .as_ref()
                .filter(|a| before.contains(*a) && !after.contains(*a))
            {
                Some(a) => {
                    tracing::info!("{store}: {a} was pruned while the scrub ran; not a problem");
                    false
                }
                None => true,
            }
        })
        .collect()
}

/// Archive names with a manifest in a sink (empty when it cannot be listed:
/// then nothing counts as gone and every problem stands).
async fn sink_names(s: &Sink) -> HashSet<String> {
    s.list()
        .await
        .map(|v| v.into_iter().map(|e| e.manifest.archive).collect())
        .unwrap_or_default()
}

fn local_names(root: &Path) -> HashSet<String> {
    vigil_archive::local::list_all(root)
        .into_iter()
        .map(|s| s.manifest.archive)
        .collect()
}

//! What a run reports, and the outcome records alerts read from it.

use crate::consistency::ConsistencyReport;
use crate::ship::SinkReport;
use serde::Serialize;
use std::path::{Path, PathBuf};
use vigil_core::config::MemberConfig;
use vigil_core::fsutil::FsError;
use vigil_core::manifest::Manifest;
use vigil_core::outcome::{self, Outcome, Stage};
use vigil_core::{now, rfc3339};

#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    pub member: String,
    pub endpoint: String,
    pub ok: bool,
    pub stage: Stage,
    pub error: Option<String>,
    pub archive: Option<PathBuf>,
    pub manifest: Option<Manifest>,
    pub pruned: Vec<PathBuf>,
    /// Copies streamed to sinks during this member's snapshot.
    pub sinks: Vec<SinkCopy>,
    pub duration_ms: u64,
    /// Why the preflight deferred this member, once per deferral.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
}

impl MemberReport {
    pub(super) fn failed(m: &MemberConfig, stage: Stage, error: String, ms: u64) -> MemberReport {
        MemberReport {
            member: m.name.clone(),
            endpoint: m.endpoint.clone(),
            ok: false,
            stage,
            error: Some(error),
            archive: None,
            manifest: None,
            pruned: Vec::new(),
            sinks: Vec::new(),
            duration_ms: ms,
            deferred: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SinkCopy {
    pub sink: String,
    pub ok: bool,
    pub location: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenReport {
    pub ok: bool,
    pub path: PathBuf,
    pub error: Option<String>,
    /// Whether the token opens the cluster's RKE2 bootstrap data; `None`
    /// when there is none to open (plain etcd) or the check could not run.
    pub bootstrap: Option<BootstrapCheck>,
}

/// The archived token proven against `/bootstrap/<hash>`, read from the
/// member snapshotted first, at its snapshot's revision (issue #15 point 2):
/// a token rotated on the cluster but not here is caught the same day.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapCheck {
    pub ok: bool,
    /// The entry the token opened.
    pub key: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub cluster: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub ok: bool,
    pub encrypted: bool,
    pub members: Vec<MemberReport>,
    pub consistency: Option<ConsistencyReport>,
    pub rke2_token: Option<TokenReport>,
    pub sinks: Vec<SinkReport>,
    /// Leftovers of crashed runs that were removed first.
    pub cleaned: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

impl RunReport {
    /// Records the outcomes, then judges the run: every member, sink and
    /// token check good, and the records written (without them nothing
    /// alerts on this run).
    pub(super) fn recorded(mut self, state: &Path) -> RunReport {
        let recorded = match record_outcomes(state, &self) {
            Ok(()) => true,
            Err(e) => {
                self.warnings
                    .push(format!("could not write outcome records: {e}"));
                false
            }
        };
        self.ok = recorded
            && self.members.iter().all(|m| m.ok)
            && self.sinks.iter().all(|s| s.ok)
            && self
                .rke2_token
                .as_ref()
                .is_none_or(|t| t.ok && t.bootstrap.as_ref().is_none_or(|b| b.ok));
        self
    }
}

impl RunReport {
    /// Contract 3: 0 when everything in the run is good, 1 when anything failed.
    pub fn exit_code(&self) -> i32 {
        if self.ok {
            vigil_core::exit::OK
        } else {
            vigil_core::exit::FAILED
        }
    }
}

fn record_outcomes(state: &Path, r: &RunReport) -> Result<(), FsError> {
    let base = Outcome {
        proof: None,
        job: vigil_core::jobs::Source::Snapshot,
        run_id: r.run_id.clone(),
        cluster: r.cluster.clone(),
        subject: String::new(),
        ok: true,
        stage: Stage::Done,
        error: None,
        archive: None,
        time: rfc3339(now()),
        duration_ms: 0,
    };
    for m in &r.members {
        outcome::record(
            state,
            &Outcome {
                subject: m.member.clone(),
                ok: m.ok,
                stage: m.stage,
                error: m.error.clone(),
                archive: m.archive.as_ref().map(|p| p.display().to_string()),
                duration_ms: m.duration_ms,
                proof: m.manifest.as_ref().and_then(|x| x.restore_proof.clone()),
                ..base.clone()
            },
        )?;
    }
    for s in &r.sinks {
        outcome::record(
            state,
            &Outcome {
                job: vigil_core::jobs::Source::Sink,
                subject: s.sink.clone(),
                ok: s.ok,
                stage: if s.ok { Stage::Done } else { Stage::Ship },
                error: (!s.ok).then(|| format!("sink {}: {}", s.sink, s.errors.join("; "))),
                ..base.clone()
            },
        )?;
    }
    if let Some(t) = &r.rke2_token {
        outcome::record(
            state,
            &Outcome {
                subject: "rke2-token".into(),
                ok: t.ok,
                stage: if t.ok { Stage::Done } else { Stage::Token },
                error: t.error.clone(),
                archive: Some(t.path.display().to_string()),
                ..base.clone()
            },
        )?;
        if let Some(b) = &t.bootstrap {
            outcome::record(
                state,
                &Outcome {
                    subject: "rke2-bootstrap".into(),
                    ok: b.ok,
                    stage: if b.ok { Stage::Done } else { Stage::Token },
                    error: b.error.clone(),
                    archive: b.key.clone(),
                    ..base
                },
            )?;
        }
    }
    Ok(())
}

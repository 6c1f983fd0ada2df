//! `vigil status`: "are we safe?" in one screen, from the state the jobs
//! leave behind (archives and manifests, outcome records, the journal's
//! manifests, the alert store, systemd's timers). It never contacts the
//! cluster or a sink, so it answers in a second while both are down.

use serde::Serialize;
use std::path::Path;
use time::OffsetDateTime;
use vigil_archive::catalog;
use vigil_core::jobs::Source;
use vigil_core::manifest::ProofResult;
use vigil_core::outcome::{self, Outcome};
use vigil_core::Config;

pub mod render;
pub mod timers;

pub use timers::Timer;

/// Nagios-style: the exit code is the worst level seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub fn exit_code(self) -> i32 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }
}

/// The last record of a job about one subject.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub time: String,
    pub ok: bool,
    pub error: Option<String>,
}

impl From<&Outcome> for LastRun {
    fn from(o: &Outcome) -> Self {
        LastRun {
            time: o.time.clone(),
            ok: o.ok,
            error: o.error.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub member: String,
    pub level: Level,
    /// The newest verified local archive.
    pub archive: Option<String>,
    pub created_at: Option<String>,
    pub age_seconds: Option<i64>,
    pub archive_bytes: Option<u64>,
    pub revision: Option<i64>,
    /// `proven`, `failed`, `skipped` or `none`.
    pub proof: Option<String>,
    pub last_run: Option<LastRun>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SinkStatus {
    pub sink: String,
    pub kind: String,
    pub level: Level,
    pub last_ship: Option<LastRun>,
    /// The last run that shipped to this sink without an error.
    pub last_ok: Option<String>,
    /// The newest local archive the sink held after that run (a run ships
    /// every verified local archive a sink lacks).
    pub newest_copy: Option<String>,
    pub newest_copy_created_at: Option<String>,
    /// How far the sink is behind the bastion's newest archive.
    pub behind_seconds: Option<i64>,
    pub last_scrub: Option<LastRun>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillMember {
    pub subject: String,
    pub time: String,
    pub ok: bool,
    /// The member's RTO: restore and check, in seconds.
    pub rto_seconds: f64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillStatus {
    pub level: Level,
    pub last: Vec<DrillMember>,
    pub last_passed: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalStatus {
    pub level: Level,
    pub dir: String,
    pub segments: usize,
    pub bytes: u64,
    pub first_revision: Option<i64>,
    pub last_revision: Option<i64>,
    /// When the newest segment closed: with a quiet cluster no segment
    /// closes, so its age is the lag only while the cluster writes
    /// (`journal_lagging` knows the difference).
    pub newest_segment_at: Option<String>,
    pub newest_segment_age_seconds: Option<i64>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertLine {
    pub key: String,
    pub severity: String,
    pub since: String,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelLine {
    pub channel: String,
    pub waiting: u64,
    pub failures: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertStatus {
    pub level: Level,
    pub firing: Vec<AlertLine>,
    pub pending: Vec<AlertLine>,
    pub silences: Vec<String>,
    pub outbox_waiting: u64,
    pub channels: Vec<ChannelLine>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub config: String,
    pub level: Level,
    /// One line per thing that is not OK, worst first.
    pub problems: Vec<String>,
    pub members: Vec<MemberStatus>,
    pub sinks: Vec<SinkStatus>,
    pub local_scrub: Option<LastRun>,
    pub drill: DrillStatus,
    pub journal: Option<JournalStatus>,
    pub alerts: AlertStatus,
    pub timers: Vec<Timer>,
    /// Why the timers are not shown (no systemd, systemctl failed).
    pub timers_note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub generated_at: String,
    pub level: Level,
    pub clusters: Vec<ClusterStatus>,
}

impl Status {
    pub fn of(clusters: Vec<ClusterStatus>) -> Status {
        Status {
            generated_at: vigil_core::rfc3339(vigil_core::now()),
            level: clusters.iter().map(|c| c.level).max().unwrap_or(Level::Ok),
            clusters,
        }
    }
}

fn age(rfc3339: &str, now: OffsetDateTime) -> Option<i64> {
    OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (now - t).whole_seconds())
}

/// `3h12m`, `2d4h`, `45s`.
pub fn fmt_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Everything about one cluster; `timers` is what systemd said (or why not).
pub fn cluster(
    cfg: &Config,
    config_path: &Path,
    now: OffsetDateTime,
    timers: Result<Vec<Timer>, String>,
) -> ClusterStatus {
    let state = &cfg.state.dir;
    let max_age = cfg.health.freshness.max_age.get().as_secs() as i64;
    let ledger = vigil_core::corrupt::Ledger::load(state).ok();
    let pin = vigil_core::pin::load(state).ok().flatten();
    let local = cfg
        .snapshot
        .as_ref()
        .map(|sc| catalog::local_copies(&sc.dir).copies)
        .unwrap_or_default();
    let runs = outcome::latest(state, Source::Snapshot);
    let proofs_on = cfg
        .snapshot
        .as_ref()
        .is_some_and(|sc| sc.prove_restore.enabled);

    let members: Vec<MemberStatus> = cfg
        .members()
        .map(|m| {
            let newest = catalog::newest_verified(&local, &m.name, ledger.as_ref(), pin.as_ref())
                .map(|c| &c.manifest);
            let last_run = runs.iter().find(|o| o.subject == m.name).map(LastRun::from);
            member(
                &m.name,
                newest,
                last_run,
                proofs_on,
                max_age,
                now,
                cfg.snapshot.is_some(),
            )
        })
        .collect();

    // The newest verified local archives, newest first: what the sinks are compared with.
    let mut verified: Vec<&vigil_core::manifest::Manifest> = local
        .iter()
        .filter(|c| {
            c.verified
                && !ledger
                    .as_ref()
                    .is_some_and(|l| l.is_bad(&c.store, &c.manifest.archive))
        })
        .map(|c| &c.manifest)
        .collect();
    verified.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    let ships = outcome::latest(state, Source::Sink);
    let scrubs = outcome::latest(state, Source::Scrub);
    let sinks = cfg
        .sinks()
        .map(|s| {
            let last_ship = ships
                .iter()
                .find(|o| o.subject == s.name)
                .map(LastRun::from);
            let last_ok = outcome::last_ok(state, Source::Sink, Some(&s.name));
            let last_scrub = scrubs
                .iter()
                .find(|o| o.subject == s.name)
                .map(LastRun::from);
            sink(
                &s.name,
                s.kind.as_str(),
                last_ship,
                last_ok,
                last_scrub,
                &verified,
                max_age,
                now,
            )
        })
        .collect();
    let local_scrub = scrubs
        .iter()
        .find(|o| o.subject == catalog::LOCAL)
        .map(LastRun::from);

    let drill = drill(cfg, state, now);
    let journal = cfg.journal.as_ref().map(|_| journal(cfg, now));
    let alerts = alerts(state, now);
    let (timers, timers_note) = match timers {
        Ok(t) => (t, None),
        Err(why) => (Vec::new(), Some(why)),
    };

    let mut c = ClusterStatus {
        cluster: cfg.cluster_name().to_string(),
        config: config_path.display().to_string(),
        level: Level::Ok,
        problems: Vec::new(),
        members,
        sinks,
        local_scrub,
        drill,
        journal,
        alerts,
        timers,
        timers_note,
    };
    let parts = c.parts();
    c.level = parts.iter().map(|(l, _)| *l).max().unwrap_or(Level::Ok);
    c.problems = problems(parts);
    c
}

impl ClusterStatus {
    fn parts(&self) -> Vec<(Level, String)> {
        let mut out = Vec::new();
        for m in &self.members {
            out.push((m.level, format!("member {}: {}", m.member, m.note)));
        }
        for s in &self.sinks {
            out.push((s.level, format!("sink {}: {}", s.sink, s.note)));
        }
        if let Some(r) = self.local_scrub.as_ref().filter(|r| !r.ok) {
            out.push((
                Level::Critical,
                format!(
                    "scrub of the local copies found damage at {}: {}",
                    r.time,
                    r.error.as_deref().unwrap_or_default()
                ),
            ));
        }
        out.push((self.drill.level, format!("drill: {}", self.drill.note)));
        if let Some(j) = &self.journal {
            out.push((j.level, format!("journal: {}", j.note)));
        }
        out.push((self.alerts.level, format!("alerts: {}", self.alerts.note)));
        for t in &self.timers {
            out.push((t.level(), format!("{}: {}", t.unit, t.note())));
        }
        out
    }
}

/// The parts that are not OK, worst first.
fn problems(parts: Vec<(Level, String)>) -> Vec<String> {
    let mut p: Vec<(Level, String)> = parts.into_iter().filter(|(l, _)| *l > Level::Ok).collect();
    p.sort_by_key(|x| std::cmp::Reverse(x.0));
    p.into_iter()
        .map(|(l, s)| format!("{}: {s}", l.as_str()))
        .collect()
}

fn member(
    name: &str,
    newest: Option<&vigil_core::manifest::Manifest>,
    last_run: Option<LastRun>,
    proofs_on: bool,
    max_age: i64,
    now: OffsetDateTime,
    has_snapshot: bool,
) -> MemberStatus {
    let age_s = newest.and_then(|m| age(&m.created_at, now));
    let proof = newest.map(|m| match m.restore_proof.as_ref().map(|p| p.result) {
        Some(ProofResult::Proven) => "proven",
        Some(ProofResult::Failed) => "failed",
        Some(ProofResult::Skipped) => "skipped",
        None => "none",
    });
    let failed_run = last_run.as_ref().filter(|r| !r.ok);
    let (level, note) = match (newest, age_s) {
        _ if !has_snapshot => (Level::Warning, "no [snapshot] section in the config".into()),
        (None, _) => (
            Level::Critical,
            match failed_run {
                Some(r) => format!(
                    "no verified archive; the last run failed: {}",
                    r.error.as_deref().unwrap_or_default()
                ),
                None => "no verified archive; run `vigil-snapshot run` and check its timer".into(),
            },
        ),
        (Some(m), Some(a)) if a > max_age => (
            Level::Critical,
            format!(
                "newest verified archive {} is {} old, older than [health.freshness] max_age {}",
                m.id,
                fmt_age(a),
                fmt_age(max_age)
            ),
        ),
        (Some(m), _) if proof == Some("failed") => (
            Level::Critical,
            format!("the restore proof of {} failed", m.id),
        ),
        (Some(_), _) if failed_run.is_some() => (
            Level::Warning,
            format!(
                "the last run failed: {}",
                failed_run
                    .and_then(|r| r.error.as_deref())
                    .unwrap_or_default()
            ),
        ),
        (Some(m), _) if proofs_on && proof != Some("proven") => (
            Level::Warning,
            format!("newest archive {} is not proven restorable", m.id),
        ),
        (Some(_), a) => (
            Level::Ok,
            format!("newest verified archive {} old", fmt_age(a.unwrap_or(0))),
        ),
    };
    MemberStatus {
        member: name.to_string(),
        level,
        archive: newest.map(|m| m.id.clone()),
        created_at: newest.map(|m| m.created_at.clone()),
        age_seconds: age_s,
        archive_bytes: newest.map(|m| m.archive_size),
        revision: newest.map(|m| m.revision),
        proof: proof.map(str::to_string),
        last_run,
        note,
    }
}

#[allow(clippy::too_many_arguments)]
fn sink(
    name: &str,
    kind: &str,
    last_ship: Option<LastRun>,
    last_ok: Option<String>,
    last_scrub: Option<LastRun>,
    verified: &[&vigil_core::manifest::Manifest],
    max_age: i64,
    now: OffsetDateTime,
) -> SinkStatus {
    let newest_local = verified.first();
    let held = last_ok
        .as_deref()
        .and_then(|t| verified.iter().find(|m| m.created_at.as_str() <= t));
    let behind = match (newest_local, held) {
        (Some(n), Some(h)) => age(&h.created_at, now)
            .zip(age(&n.created_at, now))
            .map(|(h, n)| h - n),
        _ => None,
    };
    let held_age = held.and_then(|h| age(&h.created_at, now));
    let scrub_bad = last_scrub.as_ref().filter(|r| !r.ok);
    let failed = last_ship.as_ref().filter(|r| !r.ok);
    let (level, note) = if let Some(r) = scrub_bad {
        (
            Level::Critical,
            format!(
                "the scrub at {} found damage: {}",
                r.time,
                r.error.as_deref().unwrap_or_default()
            ),
        )
    } else if last_ship.is_none() {
        (Level::Warning, "no run has shipped to it yet".to_string())
    } else if held.is_none() {
        (
            Level::Critical,
            format!(
                "holds no archive of this bastion's: {}",
                failed
                    .and_then(|r| r.error.as_deref())
                    .unwrap_or("no run shipped to it without an error")
            ),
        )
    } else if held_age.is_some_and(|a| a > max_age) {
        (
            Level::Critical,
            format!(
                "newest copy is {} old, older than [health.freshness] max_age {}",
                fmt_age(held_age.unwrap_or(0)),
                fmt_age(max_age)
            ),
        )
    } else if let Some(r) = failed {
        (
            Level::Warning,
            format!(
                "the last ship failed ({}): {}",
                r.time,
                r.error.as_deref().unwrap_or_default()
            ),
        )
    } else {
        (
            Level::Ok,
            format!(
                "newest copy {} old, {} behind the bastion",
                fmt_age(held_age.unwrap_or(0)),
                fmt_age(behind.unwrap_or(0))
            ),
        )
    };
    SinkStatus {
        sink: name.to_string(),
        kind: kind.to_string(),
        level,
        last_ship,
        last_ok,
        newest_copy: held.map(|m| m.id.clone()),
        newest_copy_created_at: held.map(|m| m.created_at.clone()),
        behind_seconds: behind,
        last_scrub,
        note,
    }
}

fn drill(cfg: &Config, state: &Path, now: OffsetDateTime) -> DrillStatus {
    let last: Vec<DrillMember> = outcome::latest(state, Source::Drill)
        .iter()
        .map(|o| DrillMember {
            subject: o.subject.clone(),
            time: o.time.clone(),
            ok: o.ok,
            rto_seconds: o.duration_ms as f64 / 1000.0,
            error: o.error.clone(),
        })
        .collect();
    let last_passed = outcome::last_ok(state, Source::Drill, None);
    let configured = cfg
        .restore
        .as_ref()
        .is_some_and(|r| r.drill_identity_file.is_some());
    let max_age = cfg
        .health
        .freshness
        .drill_max_age
        .map(|d| d.get().as_secs() as i64)
        .unwrap_or(8 * 86_400);
    let failed: Vec<&DrillMember> = last.iter().filter(|d| !d.ok).collect();
    let passed_age = last_passed.as_deref().and_then(|t| age(t, now));
    let (level, note) = if let Some(f) = failed.first() {
        (
            Level::Critical,
            format!(
                "the last drill of {} failed ({}): {}",
                f.subject,
                f.time,
                f.error.as_deref().unwrap_or_default()
            ),
        )
    } else if last.is_empty() {
        (
            if configured {
                Level::Warning
            } else {
                Level::Ok
            },
            if configured {
                "no drill has run yet: `systemctl start vigil-restore-drill`".into()
            } else {
                "not configured (restore.drill_identity_file)".into()
            },
        )
    } else if passed_age.is_some_and(|a| a > max_age) {
        (
            Level::Warning,
            format!(
                "the last passing drill is {} old, older than {}",
                fmt_age(passed_age.unwrap_or(0)),
                fmt_age(max_age)
            ),
        )
    } else {
        let rto = last.iter().map(|d| d.rto_seconds).fold(0.0_f64, f64::max);
        (
            Level::Ok,
            format!(
                "passed {} ago, RTO up to {rto:.1} s",
                fmt_age(passed_age.unwrap_or(0))
            ),
        )
    };
    DrillStatus {
        level,
        last,
        last_passed,
        note,
    }
}

fn journal(cfg: &Config, now: OffsetDateTime) -> JournalStatus {
    let dir = cfg.journal_dir();
    let listed = vigil_journal::local::LocalJournal::new(&dir).manifests();
    let base = JournalStatus {
        level: Level::Ok,
        dir: dir.display().to_string(),
        segments: 0,
        bytes: 0,
        first_revision: None,
        last_revision: None,
        newest_segment_at: None,
        newest_segment_age_seconds: None,
        note: String::new(),
    };
    let chain = match listed {
        Err(e) => {
            return JournalStatus {
                level: Level::Warning,
                note: format!("cannot read the journal: {e}"),
                ..base
            }
        }
        Ok(c) => c,
    };
    let Some(newest) = chain.last() else {
        return JournalStatus {
            level: Level::Warning,
            note: format!(
                "no segment in {} yet: is vigil-journal running?",
                dir.display()
            ),
            ..base
        };
    };
    let a = age(&newest.created_at, now);
    JournalStatus {
        level: Level::Ok,
        segments: chain.len(),
        bytes: chain.iter().map(|m| m.size).sum(),
        first_revision: chain.first().map(|m| m.first_revision),
        last_revision: Some(newest.last_revision),
        newest_segment_at: Some(newest.created_at.clone()),
        newest_segment_age_seconds: a,
        note: format!(
            "{} segments up to revision {}, the newest closed {} ago",
            chain.len(),
            newest.last_revision,
            fmt_age(a.unwrap_or(0))
        ),
        ..base
    }
}

fn alerts(state: &Path, now: OffsetDateTime) -> AlertStatus {
    let empty = AlertStatus {
        level: Level::Ok,
        firing: Vec::new(),
        pending: Vec::new(),
        silences: Vec::new(),
        outbox_waiting: 0,
        channels: Vec::new(),
        note: String::new(),
    };
    // Open only a store that exists: a status creates no state.
    if !state.join(vigil_alert::store::DB_FILE).is_file() {
        return AlertStatus {
            note: "no alert store yet (no job has run)".into(),
            ..empty
        };
    }
    let read = || -> Result<AlertStatus, vigil_alert::AlertError> {
        let store = vigil_alert::Store::open(state)?;
        let views = store.alerts(false)?;
        let line = |a: &vigil_alert::model::AlertView| AlertLine {
            key: a.key.clone(),
            severity: a.severity.as_str().to_string(),
            since: a.fired_at.clone().unwrap_or_else(|| a.first_seen.clone()),
            summary: a.summary.clone(),
        };
        use vigil_alert::model::Status as S;
        let firing: Vec<AlertLine> = views
            .iter()
            .filter(|a| a.status == S::Firing)
            .map(line)
            .collect();
        let pending: Vec<AlertLine> = views
            .iter()
            .filter(|a| a.status == S::Pending)
            .map(line)
            .collect();
        let silences: Vec<String> = store
            .silences(false, now)?
            .into_iter()
            .map(|s| {
                format!(
                    "{} until {}: {:?} ({})",
                    s.id, s.ends_at, s.matchers, s.reason
                )
            })
            .collect();
        let waiting = store.pending_counts()?;
        let channels: Vec<ChannelLine> = store
            .channel_states()?
            .into_iter()
            .map(|c| ChannelLine {
                waiting: waiting.get(&c.channel).copied().unwrap_or(0),
                channel: c.channel,
                failures: c.failures,
                last_error: c.last_error,
            })
            .collect();
        let outbox_waiting = waiting.values().sum();
        let stuck: Vec<&ChannelLine> = channels
            .iter()
            .filter(|c| c.failures > 0 && c.waiting > 0)
            .collect();
        let level = if firing.iter().any(|a| a.severity == "critical") {
            Level::Critical
        } else if !firing.is_empty() || !stuck.is_empty() {
            Level::Warning
        } else {
            Level::Ok
        };
        let mut note = format!(
            "{} firing, {} pending, {} silence(s)",
            firing.len(),
            pending.len(),
            silences.len()
        );
        if !firing.is_empty() {
            let keys: Vec<&str> = firing.iter().take(3).map(|a| a.key.as_str()).collect();
            let more = firing.len().saturating_sub(keys.len());
            note.push_str(&format!(
                " ({}{})",
                keys.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        if !stuck.is_empty() {
            note.push_str(&format!(
                "; {} message(s) waiting for {}",
                outbox_waiting,
                stuck
                    .iter()
                    .map(|c| c.channel.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(AlertStatus {
            level,
            firing,
            pending,
            silences,
            outbox_waiting,
            channels,
            note,
        })
    };
    read().unwrap_or_else(|e| AlertStatus {
        level: Level::Warning,
        note: format!("cannot read the alert store: {e}"),
        ..empty
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

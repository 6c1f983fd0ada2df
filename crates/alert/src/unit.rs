//! A job's unit that died without finishing (systemd `OnFailure=`).
//!
//! A job that runs to its end records outcomes and raises its own alerts. A
//! job killed by its timeout, the OOM killer or SIGKILL records nothing, so
//! `vigil-unit-failed@<unit>.service` runs `vigil-notify unit-failed <unit>`,
//! which raises `job_unit_failed{unit}` from what systemd says about the
//! death. The job's next completed run resolves it.

use crate::model::{AlertKey, CheckResult, Fact, Severity, Source};
use crate::{ingest, AlertError, IngestReport};
use vigil_core::Config;

/// The alert name, for `[[alert.rule]]` and silences (label `unit`).
pub const UNIT_FAILED: &str = "job_unit_failed";

/// How a unit ended, from systemd's `$MONITOR_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Death {
    /// `$MONITOR_SERVICE_RESULT`: exit-code, signal, timeout, oom-kill, core-dump, watchdog, ...
    pub result: String,
    /// `$MONITOR_EXIT_CODE`: exited, killed, dumped.
    pub code: String,
    /// `$MONITOR_EXIT_STATUS`: the exit status or the signal name.
    pub status: String,
    /// `$MONITOR_INVOCATION_ID`, for `journalctl _SYSTEMD_INVOCATION_ID=`.
    pub invocation: String,
}

impl Death {
    pub fn from_env() -> Death {
        let v = |k: &str| std::env::var(k).unwrap_or_default();
        Death {
            result: v("MONITOR_SERVICE_RESULT"),
            code: v("MONITOR_EXIT_CODE"),
            status: v("MONITOR_EXIT_STATUS"),
            invocation: v("MONITOR_INVOCATION_ID"),
        }
    }

    /// Exit status 1: the job ran to its end and raised its own alerts.
    pub fn job_reported_itself(&self) -> bool {
        self.result == "exit-code" && self.code == "exited" && self.status == "1"
    }

    /// In words, for the alert.
    pub fn describe(&self) -> String {
        let status = self.status.as_str();
        match self.result.as_str() {
            "timeout" => "was stopped by systemd: it ran past TimeoutStartSec=".into(),
            "oom-kill" => "was killed by the kernel's OOM killer".into(),
            "watchdog" => "missed its watchdog and was killed".into(),
            "signal" | "core-dump" => format!("was killed by signal {}", sig(status)),
            "exit-code" if status == "2" => {
                "could not run (exit 2: a usage or config error, or a missing secret or path)"
                    .into()
            }
            "exit-code" => format!("exited with status {status}"),
            "" => "failed (systemd gave no reason)".into(),
            r => format!("failed: {r} ({} {})", self.code, sig(status)),
        }
    }
}

fn sig(s: &str) -> &str {
    if s.is_empty() {
        "?"
    } else {
        s
    }
}

fn key(unit: &str) -> AlertKey {
    AlertKey::new(UNIT_FAILED).label("unit", unit)
}

/// Raises `job_unit_failed{unit}`: `unit` is the unit's base name
/// (`vigil-snapshot`), so every instance of a template shares a state dir's alert.
pub fn raise(cfg: &Config, unit: &str, d: &Death) -> Result<IngestReport, AlertError> {
    let mut facts = vec![Fact::new("Unit", unit), Fact::new("How", d.describe())];
    if !d.result.is_empty() {
        facts.push(Fact::new("Result", &d.result));
    }
    if !d.invocation.is_empty() {
        facts.push(Fact::new(
            "Log",
            format!("journalctl _SYSTEMD_INVOCATION_ID={}", d.invocation),
        ));
    }
    let r = CheckResult {
        key: key(unit),
        source: Source::Vigil,
        ok: false,
        severity: Severity::Critical,
        summary: format!("{unit} {}; it recorded no outcome", d.describe()),
        facts,
        runbook: Some(format!(
            "See `systemctl status {unit}` and `journalctl -u {unit}`; a timeout or OOM kill on a large database may need a longer TimeoutStartSec= or snapshot.timeout. The next completed run resolves this."
        )),
    };
    ingest(cfg, "unit", std::slice::from_ref(&r))
}

/// The job behind `unit` ran to its end: resolves a `job_unit_failed` alert.
pub fn completed(cfg: &Config, unit: &str) -> Result<IngestReport, AlertError> {
    let r = CheckResult {
        key: key(unit),
        source: Source::Vigil,
        ok: true,
        severity: Severity::Critical,
        summary: format!("{unit} runs to its end again"),
        facts: vec![Fact::new("Unit", unit)],
        runbook: None,
    };
    ingest(cfg, "unit", std::slice::from_ref(&r))
}

/// What a job calls when it ran to its end (exit 0 or 1); problems are logged.
pub fn job_completed(cfg: &Config, unit: &str) {
    if let Err(e) = completed(cfg, unit) {
        tracing::error!("recording that {unit} completed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(result: &str, code: &str, status: &str) -> Death {
        Death {
            result: result.into(),
            code: code.into(),
            status: status.into(),
            invocation: String::new(),
        }
    }

    #[test]
    fn deaths_in_words() {
        assert!(d("exit-code", "exited", "1").job_reported_itself());
        assert!(!d("exit-code", "exited", "2").job_reported_itself());
        assert_eq!(
            d("signal", "killed", "KILL").describe(),
            "was killed by signal KILL"
        );
        assert!(d("timeout", "killed", "TERM")
            .describe()
            .contains("TimeoutStartSec"));
        assert!(d("oom-kill", "killed", "KILL").describe().contains("OOM"));
        assert!(d("exit-code", "exited", "2")
            .describe()
            .contains("could not run"));
    }
}

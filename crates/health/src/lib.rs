//! vigil-health: one round of checks over the etcd members, the Kubernetes
//! API, TLS certificates, the nodes' node_exporter metrics, backup freshness
//! and the bastion's own disk. Every check runs concurrently under its own
//! timeout and ends as PASS, FAIL or UNKNOWN with a reason:
//!
//! - **PASS**: checked, and good.
//! - **FAIL**: checked, and bad (with a severity, warning or critical).
//! - **UNKNOWN**: could not check (a timeout, missing credentials, a
//!   dependency that is down). An UNKNOWN never resolves nor fires the
//!   check's own alert; it raises `health_check_unknown` instead, unless the
//!   reason is already alerted by another FAIL (`covered_by`).
//!
//! [`round`] runs everything; [`alerts::results`] maps the findings to the
//! alert engine's check results; `report` renders the table and JSON.

pub mod alerts;
pub mod bastion;
pub mod certs;
pub mod etcd;
pub mod freshness;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod nagios;
pub mod node;
pub mod report;

use serde::Serialize;
use std::time::{Duration, Instant};
use vigil_alert::{AlertKey, Severity};
use vigil_core::Config;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Unknown,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Unknown => "UNKNOWN",
            Status::Fail => "FAIL",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The check, e.g. `etcd.reachable`, `kube.readyz`, `node.filesystem`.
    pub check: String,
    /// What was checked: a member, an endpoint, a mount, a file.
    pub subject: String,
    pub status: Status,
    /// How bad a FAIL is (also shown for PASS: the severity it would have).
    pub severity: Severity,
    pub reason: String,
    /// More text for the alert, e.g. the `?verbose` body of a failing `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The alert this finding feeds. Several findings may feed one alert
    /// (e.g. every mount of a node); the worst one decides.
    #[serde(serialize_with = "ser_key")]
    pub alert: AlertKey,
    /// For an UNKNOWN: the check whose FAIL already explains it, so no
    /// separate "could not check" alert is raised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covered_by: Option<String>,
    pub duration_ms: u64,
}

fn ser_key<S: serde::Serializer>(k: &AlertKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&k.to_string())
}

impl Finding {
    pub fn new(check: &str, subject: impl Into<String>, alert: AlertKey) -> Self {
        Finding {
            check: check.to_string(),
            subject: subject.into(),
            status: Status::Pass,
            severity: Severity::Critical,
            reason: String::new(),
            detail: None,
            alert,
            covered_by: None,
            duration_ms: 0,
        }
    }
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }
    pub fn pass(mut self, reason: impl Into<String>) -> Self {
        self.status = Status::Pass;
        self.reason = reason.into();
        self
    }
    pub fn fail(mut self, severity: Severity, reason: impl Into<String>) -> Self {
        self.status = Status::Fail;
        self.severity = severity;
        self.reason = reason.into();
        self
    }
    pub fn unknown(mut self, reason: impl Into<String>) -> Self {
        self.status = Status::Unknown;
        self.reason = reason.into();
        self
    }
    /// UNKNOWN because `check` failed; that FAIL is the alert.
    pub fn covered(mut self, check: &str, reason: impl Into<String>) -> Self {
        self.status = Status::Unknown;
        self.reason = reason.into();
        self.covered_by = Some(check.to_string());
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    pub fn took(mut self, since: Instant) -> Self {
        self.duration_ms = since.elapsed().as_millis() as u64;
        self
    }
}

/// Runs blocking filesystem work (statvfs, directory listings: a hung NFS
/// mount blocks them) off the async threads, bounded: `None` after `limit`.
pub async fn blocking<T, F>(limit: Duration, f: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}

/// Formats a duration for reasons: `2s`, `350ms`.
pub fn fmt_dur(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Formats an age for reasons: `3d 4h`, `5h 12m`, `40s`.
pub fn fmt_age(secs: i64) -> String {
    let neg = secs < 0;
    let s = secs.unsigned_abs();
    let out = if s >= 86400 {
        format!("{}d {}h", s / 86400, (s % 86400) / 3600)
    } else if s >= 3600 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    };
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

/// The result of one round.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cluster: String,
    pub time: String,
    pub duration_ms: u64,
    pub pass: usize,
    pub fail: usize,
    pub unknown: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Contract 3: 0 when every check passed; 1 when any check FAILed or
    /// could not be checked (UNKNOWN): both are raised as alerts.
    pub fn exit_code(&self) -> i32 {
        if self.fail == 0 && self.unknown == 0 {
            vigil_core::exit::OK
        } else {
            vigil_core::exit::FAILED
        }
    }
}

/// Runs every configured check once, concurrently.
pub async fn round(cfg: &Config) -> Report {
    let started = Instant::now();
    let time = vigil_core::rfc3339(vigil_core::now());
    let (e, k, c, n, f, b) = tokio::join!(
        etcd::check(cfg),
        kube::check(cfg),
        certs::check(cfg),
        node::check(cfg),
        freshness::check(cfg),
        bastion::check(cfg),
    );
    let findings: Vec<Finding> = [e, k, c, n, f, b].into_iter().flatten().collect();
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    Report {
        cluster: cfg.cluster_name().to_string(),
        time,
        duration_ms: started.elapsed().as_millis() as u64,
        pass: count(Status::Pass),
        fail: count(Status::Fail),
        unknown: count(Status::Unknown),
        findings,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_dur(Duration::from_millis(350)), "350ms");
        assert_eq!(fmt_dur(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_age(3 * 86400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(fmt_age(-90), "-1m 30s");
    }

    #[test]
    fn exit_code_counts_unknown() {
        let mut r = Report {
            cluster: "c".into(),
            time: String::new(),
            duration_ms: 0,
            pass: 3,
            fail: 0,
            unknown: 0,
            findings: vec![],
        };
        assert_eq!(r.exit_code(), 0);
        r.unknown = 1;
        assert_eq!(r.exit_code(), 1);
        r.unknown = 0;
        r.fail = 1;
        assert_eq!(r.exit_code(), 1);
    }
}

//! `[daemon]`: the schedules `vigild` runs the jobs on when there is no
//! systemd. Cron strings have five fields like RKE2's
//! `etcd-snapshot-schedule-cron` (`"0 */12 * * *"`); six fields (with
//! seconds first) are taken as they are. All schedules are in UTC, like every
//! time vigil records.

use super::{ConfigError, Validator};
use crate::jobs::Task;
use crate::units::HumanDuration;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// `vigil-snapshot run`; default every 6 h.
    #[serde(default = "default_snapshot")]
    pub snapshot: Option<String>,
    /// `vigil-snapshot scrub`; default daily at 03:30.
    #[serde(default = "default_scrub")]
    pub scrub: Option<String>,
    /// `vigil-restore drill`; off unless set (it needs `restore.drill_identity_file`).
    pub drill: Option<String>,
    /// `vigil-health run`; off unless set, e.g. `"* * * * *"`.
    pub health: Option<String>,
    /// `vigil-quota run`; off unless set, e.g. `"*/15 * * * *"`.
    pub quota: Option<String>,
    /// Keep `vigil-notify run` running beside the jobs (restarted if it dies).
    #[serde(default = "default_true")]
    pub notify: bool,
    /// Keep `vigil-journal run` running beside the jobs (restarted if it
    /// dies) when the config has a `[journal]` section; `false` leaves the
    /// journal to another host or unit.
    #[serde(default = "default_true")]
    pub journal: bool,
    /// Where the vigil binaries are; default: beside `vigild` itself.
    pub bin_dir: Option<PathBuf>,
    /// On SIGTERM: how long running jobs get to finish before they are killed.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: HumanDuration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            snapshot: default_snapshot(),
            scrub: default_scrub(),
            drill: None,
            health: None,
            quota: None,
            notify: true,
            journal: true,
            bin_dir: None,
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

impl DaemonConfig {
    /// The configured schedule of a job (empty strings turn a job off).
    pub fn schedule(&self, job: Task) -> Option<&str> {
        let s = match job {
            Task::Snapshot => &self.snapshot,
            Task::Scrub => &self.scrub,
            Task::Drill => &self.drill,
            Task::Health => &self.health,
            Task::Quota => &self.quota,
        };
        s.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

fn default_snapshot() -> Option<String> {
    Some("0 */6 * * *".into())
}
fn default_scrub() -> Option<String> {
    Some("30 3 * * *".into())
}
fn default_true() -> bool {
    true
}
fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

const NAMES: &[(&str, &str)] = &[
    ("SUN", "0"),
    ("MON", "1"),
    ("TUE", "2"),
    ("WED", "3"),
    ("THU", "4"),
    ("FRI", "5"),
    ("SAT", "6"),
];

/// Why a cron string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "{0:?}: unknown macro; use @hourly, @daily, @weekly, @monthly, @yearly or five fields"
    )]
    UnknownMacro(String),
    #[error("{expr:?} has {fields} field(s); write five like RKE2's etcd-snapshot-schedule-cron, e.g. \"0 */6 * * *\" (minute hour day-of-month month day-of-week)")]
    FieldCount { expr: String, fields: usize },
    #[error("{expr:?}: field {field:?} is not a cron field")]
    BadField { expr: String, field: String },
    #[error("{0:?} restricts both day-of-month and day-of-week; classic cron runs on either, vigild's scheduler only on both, so write one of them as *")]
    BothDays(String),
}

/// Converts a 5-field cron string (minute hour day-of-month month
/// day-of-week) to the 6-field form with seconds first that
/// tokio-cron-scheduler parses; 6 fields pass through. Macros such as
/// `@daily` are expanded. Day-of-week 7 (Sunday) becomes 0.
///
/// Classic cron runs a job when day-of-month *or* day-of-week matches if
/// both are restricted, while the scheduler requires both; such strings are
/// refused rather than run on different days than the administrator expects.
pub fn to_six_field(expr: &str) -> Result<String, CronError> {
    let e = expr.trim();
    let expanded = match e {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ if e.starts_with('@') => return Err(CronError::UnknownMacro(e.to_string())),
        _ => e,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let mut six: Vec<String> = match fields.len() {
        5 => std::iter::once("0".to_string())
            .chain(fields.iter().map(|f| f.to_string()))
            .collect(),
        6 => fields.iter().map(|f| f.to_string()).collect(),
        n => {
            return Err(CronError::FieldCount {
                expr: e.to_string(),
                fields: n,
            })
        }
    };
    for f in &six {
        if f.is_empty()
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '/' | ',' | '-' | '?'))
        {
            return Err(CronError::BadField {
                expr: e.to_string(),
                field: f.clone(),
            });
        }
    }
    // Day of week: names to numbers, 7 to 0 (croner takes 0-6, Sunday = 0).
    let dow = six[5].to_ascii_uppercase();
    let mut dow = NAMES.iter().fold(dow, |d, (n, v)| d.replace(n, v));
    if dow.split(',').any(|p| p == "7") || dow.ends_with("-7") {
        dow = dow
            .split(',')
            .map(|p| match p {
                "7" => "0".to_string(),
                p if p.ends_with("-7") => {
                    format!("{},0", p.trim_end_matches("-7").to_string() + "-6")
                }
                p => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
    }
    six[5] = dow;
    let restricted = |f: &str| !(f == "*" || f == "?");
    if restricted(&six[3]) && restricted(&six[5]) {
        return Err(CronError::BothDays(e.to_string()));
    }
    Ok(six.join(" "))
}

impl Validator<'_> {
    pub(super) fn daemon(
        &self,
        d: &DaemonConfig,
        span: std::ops::Range<usize>,
    ) -> Result<(), ConfigError> {
        for job in Task::ALL {
            if let Some(s) = d.schedule(job) {
                to_six_field(s).map_err(|m| {
                    self.err(
                        format!("daemon.{job}"),
                        self.field_span(span.clone(), job.name()),
                        m.to_string(),
                    )
                })?;
            }
        }
        if d.shutdown_timeout.get() < std::time::Duration::from_secs(1) {
            return Err(self.err(
                "daemon.shutdown_timeout",
                self.field_span(span.clone(), "shutdown_timeout"),
                "must be at least 1s",
            ));
        }
        if matches!(&d.bin_dir, Some(p) if !p.is_absolute()) {
            return Err(self.err(
                "daemon.bin_dir",
                self.field_span(span, "bin_dir"),
                "must be an absolute path, e.g. \"/usr/bin\"",
            ));
        }
        Ok(())
    }
}

impl super::Config {
    /// The `[daemon]` section, or its defaults when absent.
    pub fn daemon_config(&self) -> std::borrow::Cow<'_, DaemonConfig> {
        match &self.daemon {
            Some(d) => std::borrow::Cow::Borrowed(d.get_ref()),
            None => std::borrow::Cow::Owned(DaemonConfig::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_six_field;

    #[test]
    fn five_fields_gain_seconds() {
        assert_eq!(to_six_field("0 */12 * * *").unwrap(), "0 0 */12 * * *");
        assert_eq!(to_six_field(" */15 * * * * ").unwrap(), "0 */15 * * * *");
        assert_eq!(to_six_field("30 3 * * *").unwrap(), "0 30 3 * * *");
        assert_eq!(to_six_field("@daily").unwrap(), "0 0 0 * * *");
        assert_eq!(to_six_field("*/5 * * * * *").unwrap(), "*/5 * * * * *");
    }

    #[test]
    fn day_of_week_is_normalised() {
        assert_eq!(to_six_field("0 4 * * 7").unwrap(), "0 0 4 * * 0");
        assert_eq!(to_six_field("0 4 * * sun").unwrap(), "0 0 4 * * 0");
        assert_eq!(to_six_field("0 4 * * MON-FRI").unwrap(), "0 0 4 * * 1-5");
        assert_eq!(to_six_field("0 4 * * 5-7").unwrap(), "0 0 4 * * 5-6,0");
    }

    #[test]
    fn bad_strings_are_explained() {
        let e = |s: &str| to_six_field(s).unwrap_err().to_string();
        assert!(e("0 4 * *").contains("five"));
        assert!(e("0 4 1 * 1").contains("day-of-week"));
        assert!(e("@often").contains("macro"));
        assert!(e("0 4 * * ;").contains("not a cron field"));
    }
}

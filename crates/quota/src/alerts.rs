//! A run's rows become check results for the alert engine (source `quota`).
//!
//! Per group and subvolume: `quota_usage_warning` (at `warn_percent`),
//! `quota_usage_critical` (at `critical_percent`, or over the quota),
//! `quota_unlimited` (a subvolume without quota, if flagged) and
//! `quota_forecast` (full within `forecast_days`). When Ceph cannot be read,
//! `quota_check_unknown` fires and the other alerts are left as they are:
//! "could not check" neither fires nor resolves them.

use crate::report::{Report, Row};
use crate::rules::Level;
use vigil_alert::model::{AlertKey, CheckResult, Fact, Severity, Source};
use vigil_core::units::human_bytes;

pub const WARNING: &str = "quota_usage_warning";
pub const CRITICAL: &str = "quota_usage_critical";
pub const UNLIMITED: &str = "quota_unlimited";
pub const FORECAST: &str = "quota_forecast";
pub const UNKNOWN: &str = "quota_check_unknown";
/// Every per-entry alert name.
pub const ENTRY_ALERTS: [&str; 4] = [WARNING, CRITICAL, UNLIMITED, FORECAST];

const RUNBOOK_USAGE: &str = "Free space in the subvolume, or grow it: `ceph fs subvolume resize VOL SUB BYTES --group_name GROUP` (groups: `ceph fs subvolumegroup resize`). Writes fail with EDQUOT (Disk quota exceeded) at the quota.";
const RUNBOOK_UNLIMITED: &str = "Give it a quota: `ceph fs subvolume resize VOL SUB BYTES --group_name GROUP`, or set flag_unlimited = false for it in a [[quota.rule]].";
const RUNBOOK_UNKNOWN: &str = "vigil-quota could not read the quotas: check `ceph -s`, the [quota.ceph] conf, keyring and client id, and the CephFS mount for the xattr backend. Until it can, quota alerts neither fire nor resolve.";

pub fn key(name: &str, volume: &str, group: &str, sub: Option<&str>) -> AlertKey {
    let k = AlertKey::new(name)
        .label("volume", volume)
        .label("group", group);
    match sub {
        Some(s) => k.label("subvolume", s),
        None => k,
    }
}

fn what(r: &Row) -> String {
    match &r.subvolume {
        Some(s) => format!("subvolume {}/{}/{s}", r.volume, r.group),
        None => format!("subvolume group {}/{}", r.volume, r.group),
    }
}

fn facts(r: &Row) -> Vec<Fact> {
    let mut f = vec![
        Fact::new("Used", r.used.map(human_bytes).unwrap_or("?".into())),
        Fact::new("Quota", r.quota.map(human_bytes).unwrap_or("none".into())),
    ];
    if let Some(p) = r.percentage {
        f.push(Fact::new("Use", format!("{p:.1}%")));
    }
    f.push(Fact::new(
        "Thresholds",
        format!(
            "warning {}%, critical {}%",
            r.warn_percent, r.critical_percent
        ),
    ));
    if let Some(d) = r.forecast.and_then(|f| f.days_to_full) {
        f.push(Fact::new("Full in", format!("{d:.1} days")));
    }
    f
}

fn result(
    name: &str,
    r: &Row,
    ok: bool,
    severity: Severity,
    summary: String,
    runbook: &str,
) -> CheckResult {
    CheckResult {
        key: key(name, &r.volume, &r.group, r.subvolume.as_deref()),
        source: Source::Quota,
        ok,
        severity,
        summary,
        facts: facts(r),
        runbook: Some(runbook.to_string()),
    }
}

/// Check results for one report. `vanished` are entries that existed before
/// and are gone now (deleted): their alerts resolve.
pub fn results(rep: &Report, vanished: &[(String, String, Option<String>)]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let unknown = !rep.errors.is_empty();
    out.push(CheckResult {
        key: AlertKey::new(UNKNOWN),
        source: Source::Quota,
        ok: !unknown,
        severity: Severity::Critical,
        summary: if unknown {
            format!(
                "UNKNOWN: vigil-quota could not check CephFS quotas ({} backend): {}",
                rep.backend,
                rep.errors.join("; ")
            )
        } else {
            format!("CephFS quotas are readable again ({} backend)", rep.backend)
        },
        facts: vec![Fact::new("Backend", rep.backend.clone())],
        runbook: Some(RUNBOOK_UNKNOWN.to_string()),
    });
    for r in &rep.rows {
        if r.used.is_none() {
            // No figures (snapshot-retained): nothing to say either way.
            continue;
        }
        let pct = r.percentage.map(|p| format!("{p:.1}%")).unwrap_or_default();
        let used = r.used.map(human_bytes).unwrap_or_default();
        let quota = r.quota.map(human_bytes).unwrap_or_default();
        out.push(result(
            WARNING,
            r,
            r.status < Level::Warning,
            Severity::Warning,
            format!(
                "{} is {pct} full ({used} of {quota}, warning at {}%)",
                what(r),
                r.warn_percent
            ),
            RUNBOOK_USAGE,
        ));
        let over = r.status == Level::OverQuota;
        out.push(result(
            CRITICAL,
            r,
            r.status < Level::Critical,
            Severity::Critical,
            if over {
                format!(
                    "{} is OVER its quota: {used} of {quota} ({pct}); writes are refused",
                    what(r)
                )
            } else {
                format!(
                    "{} is {pct} full ({used} of {quota}, critical at {}%)",
                    what(r),
                    r.critical_percent
                )
            },
            RUNBOOK_USAGE,
        ));
        if r.subvolume.is_some() {
            out.push(result(
                UNLIMITED,
                r,
                r.status != Level::Unlimited,
                Severity::Warning,
                format!("{} has no quota (uses {used})", what(r)),
                RUNBOOK_UNLIMITED,
            ));
        }
        let soon = match (r.forecast.and_then(|f| f.days_to_full), r.forecast_days) {
            (Some(d), n) if n > 0.0 => d < n,
            _ => false,
        };
        let days = r
            .forecast
            .and_then(|f| f.days_to_full)
            .map(|d| format!("{d:.1}"))
            .unwrap_or_default();
        out.push(result(
            FORECAST,
            r,
            !soon,
            Severity::Warning,
            format!(
                "{} will be full in {days} days at the current growth ({}/day; {used} of {quota})",
                what(r),
                r.forecast
                    .map(|f| human_bytes(f.bytes_per_day.max(0.0) as u64))
                    .unwrap_or_default()
            ),
            RUNBOOK_USAGE,
        ));
    }
    for (v, g, s) in vanished {
        for name in ENTRY_ALERTS {
            out.push(CheckResult {
                key: key(name, v, g, s.as_deref()),
                source: Source::Quota,
                ok: true,
                severity: Severity::Warning,
                summary: format!(
                    "{v}/{g}{} no longer exists",
                    s.as_deref().map(|s| format!("/{s}")).unwrap_or_default()
                ),
                facts: Vec::new(),
                runbook: None,
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::history::Forecast;

    fn row(sub: Option<&str>, used: Option<u64>, quota: Option<u64>, status: Level) -> Row {
        Row {
            volume: "vol1".into(),
            group: "g".into(),
            subvolume: sub.map(Into::into),
            kind: if sub.is_some() { "subvolume" } else { "group" },
            state: "complete".into(),
            used,
            quota,
            percentage: match (used, quota) {
                (Some(u), Some(q)) => Some(u as f64 * 100.0 / q as f64),
                _ => None,
            },
            status,
            warn_percent: 80.0,
            critical_percent: 90.0,
            forecast_days: 7.0,
            forecast: None,
        }
    }

    fn rep(rows: Vec<Row>, errors: Vec<String>) -> Report {
        Report {
            backend: "ceph".into(),
            time: String::new(),
            ok: false,
            errors,
            rows,
        }
    }

    fn get<'a>(rs: &'a [CheckResult], k: &str) -> &'a CheckResult {
        rs.iter()
            .find(|r| r.key.to_string() == k)
            .unwrap_or_else(|| panic!("no {k}"))
    }

    #[test]
    fn levels_map_to_alerts() {
        let mut hot = row(Some("hot"), Some(95), Some(100), Level::Critical);
        hot.forecast = Some(Forecast {
            samples: 5,
            bytes_per_day: 1.0,
            days_to_full: Some(2.0),
        });
        let rs = results(
            &rep(
                vec![
                    hot,
                    row(Some("warm"), Some(85), Some(100), Level::Warning),
                    row(Some("over"), Some(105), Some(100), Level::OverQuota),
                    row(Some("free"), Some(5), None, Level::Unlimited),
                    row(None, Some(5), None, Level::NoQuota),
                    row(Some("retained"), None, None, Level::NoData),
                ],
                vec![],
            ),
            &[("vol1".into(), "g".into(), Some("gone".into()))],
        );
        let k = |n: &str, s: &str| format!("{n}{{group=\"g\",subvolume=\"{s}\",volume=\"vol1\"}}");
        assert!(get(&rs, UNKNOWN).ok);
        assert!(!get(&rs, &k(WARNING, "hot")).ok && !get(&rs, &k(CRITICAL, "hot")).ok);
        assert!(!get(&rs, &k(FORECAST, "hot")).ok);
        assert!(!get(&rs, &k(WARNING, "warm")).ok && get(&rs, &k(CRITICAL, "warm")).ok);
        let over = get(&rs, &k(CRITICAL, "over"));
        assert!(
            !over.ok && over.summary.contains("OVER"),
            "{}",
            over.summary
        );
        assert_eq!(over.severity, Severity::Critical);
        assert!(!get(&rs, &k(UNLIMITED, "free")).ok && get(&rs, &k(WARNING, "free")).ok);
        assert!(get(&rs, &k(CRITICAL, "gone")).ok);
        assert!(!rs.iter().any(|r| r.key.to_string().contains("retained")));
        let g = get(&rs, "quota_usage_warning{group=\"g\",volume=\"vol1\"}");
        assert!(g.ok);
        assert!(!rs
            .iter()
            .any(|r| r.key.name == UNLIMITED && !r.key.labels.contains_key("subvolume")));
    }

    #[test]
    fn unreachable_is_unknown_and_nothing_else() {
        let rs = results(
            &rep(vec![], vec!["`ceph fs volume ls`: timed out".into()]),
            &[],
        );
        assert_eq!(rs.len(), 1);
        assert!(!rs[0].ok && rs[0].summary.starts_with("UNKNOWN"));
        assert_eq!(rs[0].severity, Severity::Critical);
    }
}

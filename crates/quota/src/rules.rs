//! Thresholds per entry (defaults, then `[[quota.rule]]` overrides in
//! order) and what an entry's figures mean against them.

use crate::model::Entry;
use serde::Serialize;
use vigil_core::config::QuotaConfig;

/// The limits that apply to one entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub warn_percent: f64,
    pub critical_percent: f64,
    pub flag_unlimited: bool,
    pub forecast_days: f64,
    pub ignore: bool,
}

pub fn limits(q: &QuotaConfig, e: &Entry) -> Limits {
    let mut l = Limits {
        warn_percent: q.warn_percent,
        critical_percent: q.critical_percent,
        flag_unlimited: q.flag_unlimited,
        forecast_days: q.forecast_days,
        ignore: false,
    };
    for r in q.rule.iter().map(|r| r.get_ref()) {
        if !r.matches(&e.volume, &e.group, e.subvolume.as_deref()) {
            continue;
        }
        if let Some(v) = r.warn_percent {
            l.warn_percent = v;
        }
        if let Some(v) = r.critical_percent {
            l.critical_percent = v;
        }
        if let Some(v) = r.flag_unlimited {
            l.flag_unlimited = v;
        }
        if let Some(v) = r.forecast_days {
            l.forecast_days = v;
        }
        l.ignore = r.ignore;
    }
    l
}

/// An entry's state against its limits, worst first in severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Below the warning threshold.
    Ok,
    /// No quota, and not flagged for it (groups, or `flag_unlimited = false`).
    NoQuota,
    /// No figures (a snapshot-retained subvolume).
    NoData,
    /// No quota, flagged.
    Unlimited,
    Warning,
    Critical,
    /// Usage above the quota (possible: CephFS enforces quotas cooperatively).
    OverQuota,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::NoQuota => "no-quota",
            Level::NoData => "no-data",
            Level::Unlimited => "unlimited",
            Level::Warning => "warning",
            Level::Critical => "critical",
            Level::OverQuota => "over-quota",
        }
    }

    /// Whether this level makes the run fail (exit 1) and raises an alert.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Level::Unlimited | Level::Warning | Level::Critical | Level::OverQuota
        )
    }
}

pub fn level(e: &Entry, l: &Limits) -> Level {
    match (e.used, e.quota, e.percent()) {
        (None, _, _) => Level::NoData,
        (Some(_), None, _) => {
            if l.flag_unlimited && !e.is_group() {
                Level::Unlimited
            } else {
                Level::NoQuota
            }
        }
        (Some(u), Some(q), Some(p)) => {
            if u > q {
                Level::OverQuota
            } else if p >= l.critical_percent {
                Level::Critical
            } else if p >= l.warn_percent {
                Level::Warning
            } else {
                Level::Ok
            }
        }
        (Some(_), Some(_), None) => Level::NoQuota,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(rules: &str) -> QuotaConfig {
        let text = format!(
            "[cluster]\nname = \"t\"\nmembers = [{{ name = \"a\", endpoint = \"http://127.0.0.1:1\" }}]\n[state]\ndir = \"/tmp/x\"\n[quota]\n{rules}"
        );
        vigil_core::Config::parse(&text, std::path::Path::new("/t.toml"))
            .unwrap()
            .quota()
            .into_owned()
    }

    fn e(group: &str, sub: Option<&str>, used: Option<u64>, quota: Option<u64>) -> Entry {
        Entry {
            volume: "vol1".into(),
            group: group.into(),
            subvolume: sub.map(Into::into),
            state: "complete".into(),
            used,
            quota,
        }
    }

    #[test]
    fn default_thresholds_and_over_quota() {
        let q = cfg("");
        let lv = |used, quota| {
            let x = e("g", Some("s"), used, quota);
            level(&x, &limits(&q, &x))
        };
        assert_eq!(lv(Some(79), Some(100)), Level::Ok);
        assert_eq!(lv(Some(80), Some(100)), Level::Warning);
        assert_eq!(lv(Some(90), Some(100)), Level::Critical);
        assert_eq!(lv(Some(100), Some(100)), Level::Critical);
        assert_eq!(lv(Some(101), Some(100)), Level::OverQuota);
        assert_eq!(lv(Some(5), None), Level::Unlimited);
        assert_eq!(lv(None, None), Level::NoData);
        let g = e("g", None, Some(5), None);
        assert_eq!(level(&g, &limits(&q, &g)), Level::NoQuota);
    }

    #[test]
    fn rules_override_in_order_by_glob() {
        let q = cfg(r#"warn_percent = 70
[[quota.rule]]
group = "tenants"
warn_percent = 85
critical_percent = 95
[[quota.rule]]
group = "tenants"
subvolume = "pvc-db-*"
critical_percent = 98
flag_unlimited = false
[[quota.rule]]
volume = "vol*"
subvolume = "scratch"
ignore = true
"#);
        let l = limits(&q, &e("other", Some("x"), None, None));
        assert_eq!((l.warn_percent, l.critical_percent), (70.0, 90.0));
        let l = limits(&q, &e("tenants", None, None, None));
        assert_eq!((l.warn_percent, l.critical_percent), (85.0, 95.0));
        let l = limits(&q, &e("tenants", Some("pvc-db-1"), None, None));
        assert_eq!((l.warn_percent, l.critical_percent), (85.0, 98.0));
        assert!(!l.flag_unlimited && !l.ignore);
        assert!(limits(&q, &e("any", Some("scratch"), None, None)).ignore);
        let x = e("tenants", Some("pvc-db-1"), Some(96), Some(100));
        assert_eq!(level(&x, &limits(&q, &x)), Level::Warning);
    }

    #[test]
    fn config_errors_name_the_key() {
        let text = "[cluster]\nname = \"t\"\nmembers = [{ name = \"a\", endpoint = \"http://127.0.0.1:1\" }]\n[state]\ndir = \"/tmp/x\"\n[quota]\n";
        for (extra, want) in [
            ("warn_percent = 95\n", "quota.warn_percent"),
            ("critical_percent = 120\n", "quota.critical_percent"),
            ("backend = \"xattr\"\n", "quota.xattr.mounts"),
            ("backend = \"rados\"\n", "unknown variant"),
            ("bogus = 1\n", "bogus"),
            (
                "[quota.ceph]\nclient_id = \"client.vigil\"\n",
                "quota.ceph.client_id",
            ),
            ("[[quota.rule]]\nwarn_percent = 50\n", "quota.rule[0]"),
            (
                "[[quota.rule]]\ngroup = \"g\"\ncritical_percent = 0\n",
                "quota.rule[0].critical_percent",
            ),
            ("forecast_window = \"10s\"\n", "quota.forecast_window"),
        ] {
            let e = vigil_core::Config::parse(
                &format!("{text}{extra}"),
                std::path::Path::new("/t.toml"),
            )
            .expect_err(extra)
            .to_string();
            assert!(
                e.contains(want) && e.starts_with("/t.toml:"),
                "{extra}: {e}"
            );
        }
    }
}

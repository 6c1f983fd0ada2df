//! vigil-health's reports and alerts as its tests read them
//! (tests/tests/health/).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `vigil-health run --json [extra]`: (exit code, report).
pub fn run_json(cfg: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["run", "--json"];
    args.extend_from_slice(extra);
    let o = crate::vigil("vigil-health", cfg, &args);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}", crate::text(&o)));
    (o.status.code().unwrap_or(-1), v)
}

pub fn run_text(cfg: &Path) -> Output {
    crate::vigil("vigil-health", cfg, &["run"])
}

/// The finding of `check` about `subject`.
pub fn finding<'a>(report: &'a Value, check: &str, subject: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check && f["subject"] == subject)
        .unwrap_or_else(|| panic!("no finding {check} {subject} in {report:#}"))
}

pub fn status<'a>(report: &'a Value, check: &str, subject: &str) -> &'a str {
    finding(report, check, subject)["status"].as_str().unwrap()
}

/// Every finding of one check.
pub fn of_check<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

/// Items the file alert channel received: (event, alert name, labels, whole item).
pub fn alert_items(path: &Path) -> Vec<(String, String, Value, Value)> {
    crate::alert_items(path)
        .into_iter()
        .map(|it| {
            (
                it["event"].as_str().unwrap_or_default().to_string(),
                it["alert"]["name"].as_str().unwrap_or_default().to_string(),
                it["alert"]["labels"].clone(),
                it,
            )
        })
        .collect()
}

pub fn count(path: &Path, event: &str, name: &str, label: (&str, &str)) -> usize {
    alert_items(path)
        .iter()
        .filter(|(e, n, l, _)| e == event && n == name && l[label.0] == label.1)
        .count()
}

/// A file alert channel and a bastion check that never trips on the test machine's disk.
pub fn base_extra(alerts: &Path) -> String {
    format!(
        r#"
[[alert.channel]]
name = "file"
kind = "file"
path = "{}"

[health.bastion]
free_warn_percent = 0.0
free_critical_percent = 0.0
"#,
        alerts.display()
    )
}

/// A config for `members` with `extra` TOML appended.
pub fn config(dir: &Path, members: Vec<(String, String)>, extra: &str) -> PathBuf {
    let key = crate::age_key(dir);
    let mut b = crate::ConfigBuilder::new(dir, members, &key.recipient);
    b.extra = extra.to_string();
    b.write("vigil.toml")
}

/// A member nobody listens on.
pub fn dead_member() -> Vec<(String, String)> {
    vec![(
        "cp-1".to_string(),
        format!("http://127.0.0.1:{}", crate::free_port()),
    )]
}

//! What systemd says of vigil's timers and services: `systemctl show`,
//! with unix timestamps so that nothing depends on the locale.

use crate::Level;
use serde::Serialize;
use std::path::Path;
use vigil_core::jobs::Task;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timer {
    pub unit: String,
    /// `active`, `inactive`, `failed`, …
    pub active: String,
    /// `enabled`, `disabled`, `static`, … (`not-found`: not installed).
    pub enabled: String,
    /// The last time the timer fired, or the service finished (RFC 3339).
    pub last: Option<String>,
    /// When the timer fires next (timers only).
    pub next: Option<String>,
    /// The service's last result (`success`, `exit-code`, `timeout`, …).
    pub result: Option<String>,
}

impl Timer {
    fn is_timer(&self) -> bool {
        self.unit.ends_with(".timer")
    }

    /// A disabled timer is a job that never runs; a failed service is
    /// already an alert, so it is a warning here.
    pub fn level(&self) -> Level {
        if self.enabled == "not-found" {
            return Level::Ok;
        }
        if self.is_timer() && self.active != "active" {
            return Level::Warning;
        }
        if self.active == "failed" || self.result.as_deref().is_some_and(|r| r != "success") {
            return Level::Warning;
        }
        Level::Ok
    }

    pub fn note(&self) -> String {
        if self.enabled == "not-found" {
            return "not installed".into();
        }
        let mut s = format!("{} ({})", self.active, self.enabled);
        if let Some(r) = self.result.as_deref().filter(|r| *r != "success") {
            s.push_str(&format!(", last result {r}"));
        }
        if self.is_timer() && self.active != "active" {
            s.push_str(&format!(
                ": the job does not run; `systemctl enable --now {}`",
                self.unit
            ));
        }
        s
    }
}

/// The units `vigil status` asks about for a config: its jobs' timers and
/// the long-running services (`@<name>` for `/etc/vigil/<name>.toml`).
pub fn units_for(config: &Path, journal: bool) -> Vec<String> {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let at = if stem == "vigil" || stem.is_empty() {
        String::new()
    } else {
        format!("@{stem}")
    };
    let mut units: Vec<String> = Task::ALL
        .iter()
        .map(|t| format!("{}{at}.timer", t.unit()))
        .collect();
    units.push(format!("vigil-notify{at}.service"));
    if journal {
        units.push(format!("vigil-journal{at}.service"));
    }
    units
}

/// Asks systemd; `Err` says why there is nothing to show.
pub fn query(units: &[String]) -> Result<Vec<Timer>, String> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Err("systemd is not running here (vigild or a container?)".into());
    }
    let out = std::process::Command::new("systemctl")
        .args(["show", "--no-pager", "--timestamp=unix"])
        .args([
            "-p",
            "Id,ActiveState,UnitFileState,LoadState,LastTriggerUSec,NextElapseUSecRealtime,Result,ExecMainExitTimestamp",
        ])
        .args(units)
        .output()
        .map_err(|e| format!("running systemctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "systemctl show failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_show(&String::from_utf8_lossy(&out.stdout)))
}

/// `@1733220000` (systemctl's `--timestamp=unix`) as RFC 3339; `n/a`, empty
/// and 0 are none.
fn unix_time(v: &str) -> Option<String> {
    let v = v.trim();
    let secs: i64 = if let Some(s) = v.strip_prefix('@') {
        s.parse().ok()?
    } else if let Ok(us) = v.parse::<i64>() {
        // Some properties come as plain microseconds.
        us / 1_000_000
    } else {
        // The "pretty" form, where --timestamp does not apply: `Thu 2026-12-03 20:00:00 UTC`.
        let mut w = v.split_whitespace();
        let (_day, date, clock, zone) = (w.next()?, w.next()?, w.next()?, w.next()?);
        if zone != "UTC" {
            return None;
        }
        let fmt =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        time::PrimitiveDateTime::parse(&format!("{date} {clock}"), &fmt)
            .ok()?
            .assume_utc()
            .unix_timestamp()
    };
    (secs > 0)
        .then(|| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .flatten()
        .map(vigil_core::rfc3339)
}

/// Blocks of `Key=value` lines, one per unit, separated by blank lines.
pub fn parse_show(text: &str) -> Vec<Timer> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let get = |k: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let Some(id) = get("Id") else { continue };
        let timer = id.ends_with(".timer");
        let enabled = if get("LoadState") == Some("not-found") {
            "not-found"
        } else {
            get("UnitFileState").unwrap_or("unknown")
        };
        out.push(Timer {
            unit: id.to_string(),
            active: get("ActiveState").unwrap_or("unknown").to_string(),
            enabled: enabled.to_string(),
            last: if timer {
                get("LastTriggerUSec").and_then(unix_time)
            } else {
                get("ExecMainExitTimestamp").and_then(unix_time)
            },
            next: get("NextElapseUSecRealtime").and_then(unix_time),
            // A timer's Result is the timer's own; the service's matters.
            result: (!timer)
                .then(|| get("Result").map(str::to_string))
                .flatten(),
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_systemctl_show_blocks() {
        let text = "Id=vigil-snapshot.timer\nActiveState=active\nLoadState=loaded\nUnitFileState=enabled\nResult=success\nLastTriggerUSec=@1733220000\nNextElapseUSecRealtime=@1733241600\n\nId=vigil-quota.timer\nActiveState=inactive\nLoadState=loaded\nUnitFileState=disabled\nResult=success\nLastTriggerUSec=n/a\nNextElapseUSecRealtime=\n\nId=vigil-journal.service\nActiveState=failed\nLoadState=loaded\nUnitFileState=enabled\nResult=exit-code\nExecMainExitTimestamp=@1733220100\n\nId=vigil-nope.timer\nActiveState=inactive\nLoadState=not-found\nUnitFileState=\n";
        let t = parse_show(text);
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].last.as_deref(), Some("2024-12-03T10:00:00.000Z"));
        assert_eq!(t[0].next.as_deref(), Some("2024-12-03T16:00:00.000Z"));
        assert_eq!(t[0].level(), Level::Ok);
        assert_eq!((t[1].last.as_deref(), t[1].next.as_deref()), (None, None));
        assert_eq!(t[1].level(), Level::Warning);
        assert!(t[1]
            .note()
            .contains("systemctl enable --now vigil-quota.timer"));
        assert_eq!(t[2].result.as_deref(), Some("exit-code"));
        assert_eq!(t[2].last.as_deref(), Some("2024-12-03T10:01:40.000Z"));
        assert_eq!(t[2].level(), Level::Warning);
        assert_eq!(t[3].enabled, "not-found");
        assert_eq!(t[3].level(), Level::Ok);
        let pretty = parse_show("Id=vigil-health.timer\nActiveState=active\nUnitFileState=enabled\nLastTriggerUSec=Tue 2024-12-03 10:00:00 UTC\nNextElapseUSecRealtime=1733241600000000\n");
        assert_eq!(pretty[0].last.as_deref(), Some("2024-12-03T10:00:00.000Z"));
        assert_eq!(pretty[0].next.as_deref(), Some("2024-12-03T16:00:00.000Z"));
    }

    #[test]
    fn units_of_the_plain_and_an_instance_config() {
        let plain = units_for(Path::new("/etc/vigil/vigil.toml"), true);
        assert!(plain.contains(&"vigil-snapshot.timer".to_string()));
        assert!(plain.contains(&"vigil-restore-drill.timer".to_string()));
        assert!(plain.contains(&"vigil-journal.service".to_string()));
        let prod = units_for(Path::new("/etc/vigil/prod.toml"), false);
        assert!(prod.contains(&"vigil-snapshot-scrub@prod.timer".to_string()));
        assert!(prod.contains(&"vigil-notify@prod.service".to_string()));
        assert!(!prod.iter().any(|u| u.starts_with("vigil-journal")));
    }
}

//! What `vigil-quota run` prints: a table, or JSON with `--json`.

use crate::history::Forecast;
use crate::rules::Level;
use serde::Serialize;
use vigil_core::units::human_bytes;

/// One group or subvolume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub volume: String,
    pub group: String,
    /// `null` for the group's own quota.
    pub subvolume: Option<String>,
    /// `group` or `subvolume`.
    pub kind: &'static str,
    pub state: String,
    /// Bytes used; `null` when Ceph gives no figure (snapshot-retained).
    pub used: Option<u64>,
    /// Quota in bytes; `null` for none.
    pub quota: Option<u64>,
    /// `used / quota * 100`, two decimals; may exceed 100.
    pub percentage: Option<f64>,
    pub status: Level,
    pub warn_percent: f64,
    pub critical_percent: f64,
    /// Alert when full within this many days (0: off).
    pub forecast_days: f64,
    pub forecast: Option<Forecast>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub backend: String,
    pub time: String,
    /// Every entry below its thresholds and nothing unknown.
    pub ok: bool,
    /// What could not be checked; non-empty means UNKNOWN.
    pub errors: Vec<String>,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn unknown(&self) -> bool {
        !self.errors.is_empty()
    }
}

fn days(d: f64) -> String {
    if d < 1.0 / 24.0 {
        format!("{:.0}m", (d * 1440.0).max(0.0))
    } else if d < 2.0 {
        format!("{:.1}h", d * 24.0)
    } else if d < 3650.0 {
        format!("{d:.1}d")
    } else {
        ">10y".into()
    }
}

/// The table for people.
pub fn human(r: &Report) -> String {
    let mut rows: Vec<[String; 8]> = vec![[
        "VOLUME".into(),
        "GROUP".into(),
        "SUBVOLUME".into(),
        "USED".into(),
        "QUOTA".into(),
        "USE%".into(),
        "FULL IN".into(),
        "STATUS".into(),
    ]];
    for x in &r.rows {
        rows.push([
            x.volume.clone(),
            x.group.clone(),
            x.subvolume.clone().unwrap_or_else(|| "(group)".into()),
            x.used.map(human_bytes).unwrap_or_else(|| "-".into()),
            x.quota.map(human_bytes).unwrap_or_else(|| "none".into()),
            x.percentage
                .map(|p| format!("{p:.1}"))
                .unwrap_or_else(|| "-".into()),
            match x.forecast {
                Some(f) => f.days_to_full.map(days).unwrap_or_else(|| "never".into()),
                None => "-".into(),
            },
            if x.state != "complete" && x.state != "group" {
                format!("{} ({})", x.status.as_str(), x.state)
            } else {
                x.status.as_str().to_string()
            },
        ]);
    }
    let mut w = [0usize; 8];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if (3..=6).contains(&i) {
                    format!("{c:>width$}", width = w[i])
                } else {
                    format!("{c:<width$}", width = w[i])
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    if r.rows.is_empty() && !r.unknown() {
        s.push_str("(no subvolumes)\n");
    }
    for e in &r.errors {
        s.push_str(&format!("UNKNOWN: {e}\n"));
    }
    let problems = r.rows.iter().filter(|x| x.status.is_problem()).count();
    s.push_str(&format!(
        "{} backend: {} entries, {} over a threshold or without quota{}\n",
        r.backend,
        r.rows.len(),
        problems,
        if r.unknown() {
            ", some could NOT be checked (UNKNOWN)"
        } else {
            ""
        }
    ));
    s
}

//! The one screen: a verdict first, then the problems, then the tables.

use crate::{fmt_age, ClusterStatus, Level, Status};
use std::fmt::Write;
use time::OffsetDateTime;

fn age_of(t: Option<&str>, now: OffsetDateTime) -> String {
    t.and_then(|t| crate::age(t, now))
        .map(|a| format!("{} ago", fmt_age(a)))
        .unwrap_or_else(|| "-".into())
}

fn until(t: Option<&str>, now: OffsetDateTime) -> String {
    t.and_then(|t| crate::age(t, now))
        .map(|a| format!("in {}", fmt_age(-a)))
        .unwrap_or_else(|| "-".into())
}

fn mark(l: Level) -> &'static str {
    match l {
        Level::Ok => "ok  ",
        Level::Warning => "WARN",
        Level::Critical => "CRIT",
    }
}

pub fn text(s: &Status, now: OffsetDateTime) -> String {
    let mut o = String::new();
    for c in &s.clusters {
        cluster(&mut o, c, now);
    }
    o
}

fn cluster(o: &mut String, c: &ClusterStatus, now: OffsetDateTime) {
    let _ = writeln!(
        o,
        "cluster {} ({}): {}",
        c.cluster,
        c.config,
        match c.level {
            Level::Ok => "OK: every member has a fresh verified archive, and nothing is failing",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    );
    for p in &c.problems {
        let _ = writeln!(o, "  {p}");
    }
    let _ = writeln!(o, "\narchives (newest verified on the bastion)");
    for m in &c.members {
        let _ = writeln!(
            o,
            "  {} {:<10} {:<44} {:>10} {:>10}  proof {}",
            mark(m.level),
            m.member,
            m.archive.as_deref().unwrap_or("-"),
            age_of(m.created_at.as_deref(), now),
            m.archive_bytes
                .map(vigil_core::units::human_bytes)
                .unwrap_or_else(|| "-".into()),
            m.proof.as_deref().unwrap_or("-"),
        );
    }
    if !c.sinks.is_empty() {
        let _ = writeln!(o, "\nsinks");
        for s in &c.sinks {
            let _ = writeln!(
                o,
                "  {} {:<10} {:<8} newest {:>10}  behind {:>6}  last ship {:>10} {}  scrub {}",
                mark(s.level),
                s.sink,
                s.kind,
                age_of(s.newest_copy_created_at.as_deref(), now),
                s.behind_seconds.map(fmt_age).unwrap_or_else(|| "-".into()),
                age_of(s.last_ship.as_ref().map(|r| r.time.as_str()), now),
                match &s.last_ship {
                    Some(r) if r.ok => "ok",
                    Some(_) => "FAILED",
                    None => "",
                },
                match &s.last_scrub {
                    Some(r) => format!(
                        "{} {}",
                        age_of(Some(&r.time), now),
                        if r.ok { "ok" } else { "DAMAGE" }
                    ),
                    None => "never".into(),
                }
            );
        }
    }
    if let Some(r) = &c.local_scrub {
        let _ = writeln!(
            o,
            "  local scrub {} {}",
            age_of(Some(&r.time), now),
            if r.ok { "ok" } else { "DAMAGE" }
        );
    }
    let _ = writeln!(o, "\ndrill: {} {}", mark(c.drill.level), c.drill.note);
    for d in &c.drill.last {
        let _ = writeln!(
            o,
            "       {:<10} {:>10} {:<6} RTO {:.1} s",
            d.subject,
            age_of(Some(&d.time), now),
            if d.ok { "ok" } else { "FAILED" },
            d.rto_seconds
        );
    }
    if let Some(j) = &c.journal {
        let _ = writeln!(o, "journal: {} {}", mark(j.level), j.note);
    }
    let _ = writeln!(o, "alerts: {} {}", mark(c.alerts.level), c.alerts.note);
    for a in &c.alerts.firing {
        let _ = writeln!(
            o,
            "  firing  {:<8} {} since {}: {}",
            a.severity, a.key, a.since, a.summary
        );
    }
    for a in &c.alerts.pending {
        let _ = writeln!(o, "  pending {:<8} {}: {}", a.severity, a.key, a.summary);
    }
    for s in &c.alerts.silences {
        let _ = writeln!(o, "  silence {s}");
    }
    for ch in &c.alerts.channels {
        if ch.waiting > 0 || ch.failures > 0 {
            let _ = writeln!(
                o,
                "  channel {:<12} waiting {} failures {} {}",
                ch.channel,
                ch.waiting,
                ch.failures,
                ch.last_error.as_deref().unwrap_or_default()
            );
        }
    }
    if let Some(why) = &c.timers_note {
        let _ = writeln!(o, "timers: not shown: {why}");
    } else {
        let _ = writeln!(o, "\ntimers and services");
        for t in &c.timers {
            let _ = writeln!(
                o,
                "  {} {:<32} {:<9} last {:>10}  next {:>10}",
                mark(t.level()),
                t.unit,
                t.active,
                age_of(t.last.as_deref(), now),
                until(t.next.as_deref(), now),
            );
        }
    }
    o.push('\n');
}

//! `vigil-health run --format sensu` (or `nagios`): the Nagios plugin
//! convention that Sensu-go checks follow.
//!
//! - Exit code: 0 OK (every check passed), 1 WARNING (a warning FAIL, no
//!   critical one), 2 CRITICAL (a critical FAIL), 3 UNKNOWN (nothing failed
//!   but something could not be checked, or the config is unusable). A FAIL
//!   decides over an UNKNOWN.
//! - Output: one status line (`VIGIL HEALTH CRITICAL: etcd.reachable cp-3:
//!   ...; 11 ok, 1 failed, 0 unknown`), one long-text line per check that did
//!   not pass, then a last line `| perfdata` in the Nagios format
//!   `label=value[UOM];[warn];[crit];[min];[max]`. The perfdata is last, so
//!   Sensu-go's `nagios_perfdata` (which reads what follows the first `|`)
//!   sees only perfdata; the text never holds a `|`.

use crate::{Report, Status};
use std::fmt::Write;
use vigil_alert::Severity;

/// The Nagios state of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The state of one finding, as its perfdata value: 0 pass, 1 warning FAIL,
/// 2 critical FAIL, 3 UNKNOWN.
fn finding_state(status: Status, severity: Severity) -> State {
    match (status, severity) {
        (Status::Pass, _) => State::Ok,
        (Status::Fail, Severity::Warning) => State::Warning,
        (Status::Fail, Severity::Critical) => State::Critical,
        (Status::Unknown, _) => State::Unknown,
    }
}

/// The round's state: the worst FAIL, else UNKNOWN if anything could not be
/// checked, else OK.
pub fn state(r: &Report) -> State {
    let worst_fail = r
        .findings
        .iter()
        .map(|f| finding_state(f.status, f.severity))
        .filter(|s| matches!(s, State::Warning | State::Critical))
        .max();
    match worst_fail {
        Some(s) => s,
        None if r.unknown > 0 => State::Unknown,
        None => State::Ok,
    }
}

/// The plugin output and its exit code.
pub fn render(r: &Report) -> (String, i32) {
    let st = state(r);
    let mut bad: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.status != Status::Pass)
        .collect();
    // The worst first (critical, warning, unknown): the status line names it.
    bad.sort_by_key(|f| match finding_state(f.status, f.severity) {
        State::Critical => 0,
        State::Warning => 1,
        State::Unknown => 2,
        State::Ok => 3,
    });
    let mut s = String::new();
    let _ = write!(s, "VIGIL HEALTH {}: ", st.as_str());
    match bad.first() {
        Some(f) => {
            let _ = write!(s, "{} {}: {}", f.check, f.subject, text(&f.reason));
            if bad.len() > 1 {
                let _ = write!(s, " (and {} more)", bad.len() - 1);
            }
        }
        None => {
            let _ = write!(s, "all {} checks passed", r.pass);
        }
    }
    let _ = writeln!(
        s,
        "; cluster {}: {} ok, {} failed, {} unknown",
        text(&r.cluster),
        r.pass,
        r.fail,
        r.unknown
    );
    for f in &bad {
        let sev = match f.status {
            Status::Fail => format!(" {}", f.severity),
            _ => String::new(),
        };
        let mut line = format!(
            "{}{sev} {} {}: {}",
            f.status.as_str(),
            f.check,
            f.subject,
            f.reason
        );
        if let Some(by) = &f.covered_by {
            let _ = write!(line, " (see {by})");
        }
        let _ = writeln!(s, "{}", text(&line));
    }
    let warning = count(r, State::Warning);
    let critical = count(r, State::Critical);
    let mut perf = vec![
        format!("checks={};;;0", r.findings.len()),
        format!("ok={};;;0", r.pass),
        format!("warning={warning};;;0"),
        format!("critical={critical};;;0"),
        format!("unknown={};;;0", r.unknown),
        format!("duration={:.3}s;;;0", r.duration_ms as f64 / 1000.0),
    ];
    for f in &r.findings {
        perf.push(format!(
            "{}={};1;2;0;3",
            label(&format!("{}:{}", f.check, f.subject)),
            finding_state(f.status, f.severity).code()
        ));
    }
    let _ = writeln!(s, "| {}", perf.join(" "));
    (s, st.code())
}

fn count(r: &Report, st: State) -> usize {
    r.findings
        .iter()
        .filter(|f| finding_state(f.status, f.severity) == st)
        .count()
}

/// One line of text: no `|` (it starts perfdata), no newline.
fn text(s: &str) -> String {
    s.replace('|', "/").replace(['\n', '\r'], " ")
}

/// A perfdata label without quotes: Sensu-go splits perfdata on spaces and
/// `=`, so only `[A-Za-z0-9_.:/-]` is kept, the rest becomes `_`.
fn label(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:/-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The output for a round that could not run (a config error): UNKNOWN.
pub fn unusable(why: &str) -> (String, i32) {
    (
        format!(
            "VIGIL HEALTH UNKNOWN: {}\n",
            text(why.lines().next().unwrap_or(why))
        ),
        State::Unknown.code(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Finding;
    use vigil_alert::AlertKey;

    fn report(findings: Vec<Finding>) -> Report {
        let n = |s: Status| findings.iter().filter(|f| f.status == s).count();
        Report {
            cluster: "prod".into(),
            time: String::new(),
            duration_ms: 1250,
            pass: n(Status::Pass),
            fail: n(Status::Fail),
            unknown: n(Status::Unknown),
            findings,
        }
    }

    fn f(check: &str, subject: &str) -> Finding {
        Finding::new(check, subject, AlertKey::new("x"))
    }

    #[test]
    fn states_map_to_exit_codes() {
        let ok = f("etcd.reachable", "cp-1").pass("up");
        let warn = f("certs.expiry", "etcd|peer cp-2").fail(Severity::Warning, "expires in 20d");
        let crit = f("etcd.reachable", "cp-3").fail(Severity::Critical, "connection refused");
        let unk = f("kube.readyz", "lb").unknown("timed out\nafter 5s");
        assert_eq!(render(&report(vec![ok.clone()])).1, 0);
        assert_eq!(render(&report(vec![ok.clone(), unk.clone()])).1, 3);
        assert_eq!(render(&report(vec![unk.clone(), warn.clone()])).1, 1);
        let (out, code) = render(&report(vec![ok, warn, unk, crit]));
        assert_eq!(code, 2);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "VIGIL HEALTH CRITICAL: etcd.reachable cp-3: connection refused (and 2 more); \
             cluster prod: 1 ok, 2 failed, 1 unknown"
        );
        assert_eq!(
            lines[1],
            "FAIL critical etcd.reachable cp-3: connection refused"
        );
        // A failed warning decides over an unknown, so it comes first.
        assert_eq!(
            lines[2],
            "FAIL warning certs.expiry etcd/peer cp-2: expires in 20d"
        );
        assert_eq!(lines[3], "UNKNOWN kube.readyz lb: timed out after 5s");
        assert_eq!(out.matches('|').count(), 1, "{out}");
        assert_eq!(
            lines[4],
            "| checks=4;;;0 ok=1;;;0 warning=1;;;0 critical=1;;;0 unknown=1;;;0 \
             duration=1.250s;;;0 etcd.reachable:cp-1=0;1;2;0;3 \
             certs.expiry:etcd_peer_cp-2=1;1;2;0;3 kube.readyz:lb=3;1;2;0;3 \
             etcd.reachable:cp-3=2;1;2;0;3"
        );
        assert_eq!(lines.len(), 5);
        assert_eq!(unusable("bad config\nline 2").1, 3);
    }
}

//! The names vigil's work goes by, each list once: the jobs vigild
//! schedules ([`Task`]) and the sources alerts come from ([`Source`]).
//! Outcome records, alert routing (`sources = [...]`), vigild and the
//! metrics all use these, so a job cannot be known to one and not another.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who raised an alert, and what an outcome record is about. Channels route
/// on it (`sources = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Snapshot,
    Sink,
    /// `vigil-snapshot scrub`: a copy that changed or went missing in a store.
    Scrub,
    Drill,
    Health,
    Quota,
    /// vigil-journal: a lagging journal, a gap, a broken chain.
    Journal,
    /// vigil itself: a channel that keeps failing, the watchdog, tests.
    Vigil,
}

impl Source {
    pub const ALL: [Source; 8] = [
        Source::Snapshot,
        Source::Sink,
        Source::Scrub,
        Source::Drill,
        Source::Health,
        Source::Quota,
        Source::Journal,
        Source::Vigil,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Snapshot => "snapshot",
            Source::Sink => "sink",
            Source::Scrub => "scrub",
            Source::Drill => "drill",
            Source::Health => "health",
            Source::Quota => "quota",
            Source::Journal => "journal",
            Source::Vigil => "vigil",
        }
    }

    /// `snapshot, sink, …`: for error messages that list the choices.
    pub fn names() -> String {
        Source::ALL.map(Source::as_str).join(", ")
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`Source::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source {name:?}; use any of {}", Source::names())]
pub struct UnknownSource {
    pub name: String,
}

impl FromStr for Source {
    type Err = UnknownSource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownSource {
                name: s.to_string(),
            })
    }
}

/// A job vigild schedules (`[daemon]`), as systemd runs it from a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    Snapshot,
    Scrub,
    Drill,
    Health,
    Quota,
}

impl Task {
    /// In the order vigild shuts them down.
    pub const ALL: [Task; 5] = [
        Task::Snapshot,
        Task::Scrub,
        Task::Drill,
        Task::Health,
        Task::Quota,
    ];

    /// Its key in `[daemon]` and its name in logs and metrics.
    pub fn name(self) -> &'static str {
        self.source().as_str()
    }

    /// The source of the alerts and outcome records it makes.
    pub fn source(self) -> Source {
        match self {
            Task::Snapshot => Source::Snapshot,
            Task::Scrub => Source::Scrub,
            Task::Drill => Source::Drill,
            Task::Health => Source::Health,
            Task::Quota => Source::Quota,
        }
    }

    /// The systemd unit that runs it (without `.service`).
    pub fn unit(self) -> &'static str {
        match self {
            Task::Snapshot => "vigil-snapshot",
            Task::Scrub => "vigil-snapshot-scrub",
            Task::Drill => "vigil-restore-drill",
            Task::Health => "vigil-health",
            Task::Quota => "vigil-quota",
        }
    }

    /// The program and arguments the unit runs.
    pub fn command(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Task::Snapshot => ("vigil-snapshot", &["run"]),
            Task::Scrub => ("vigil-snapshot", &["scrub"]),
            Task::Drill => ("vigil-restore", &["drill"]),
            Task::Health => ("vigil-health", &["run"]),
            Task::Quota => ("vigil-quota", &["run"]),
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_parses_back_from_its_name() {
        for s in Source::ALL {
            assert_eq!(s.as_str().parse::<Source>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        // A scrub's failures route as `scrub`, not as vigil's own.
        assert_eq!("scrub".parse::<Source>(), Ok(Source::Scrub));
        let e = "backup".parse::<Source>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown source \"backup\"; use any of snapshot, sink, scrub, drill, health, quota, journal, vigil"
        );
    }

    #[test]
    fn every_task_is_a_source_with_a_unit() {
        for t in Task::ALL {
            assert_eq!(t.name(), t.source().as_str());
            assert!(t.unit().starts_with(t.command().0), "{t}");
        }
        assert_eq!(Task::Scrub.unit(), "vigil-snapshot-scrub");
    }
}

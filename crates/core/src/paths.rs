//! The paths each job writes, as the config names them (contract 5): the
//! systemd generator turns them into `ReadWritePaths=` drop-ins, and
//! `check-config` checks that the job's unit could write them.

use crate::config::Config;
use std::path::{Path, PathBuf};

/// A job as systemd runs it: one or more units over one binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `vigil-snapshot.service` and `vigil-snapshot-scrub.service`.
    Snapshot,
    /// `vigil-restore-drill.service` (and `vigil-restore` by hand).
    Restore,
    Health,
    Quota,
    Notify,
    /// `vigil-journal.service`: the watch journal (and the snapshot it
    /// starts after a gap).
    Journal,
    /// `vigild.service`: every job in one process.
    Daemon,
}

impl Job {
    /// Every job, each with its packaged unit(s) (and an `@` template of
    /// each but vigild's).
    pub const ALL: [Job; 7] = [
        Job::Snapshot,
        Job::Restore,
        Job::Health,
        Job::Quota,
        Job::Notify,
        Job::Journal,
        Job::Daemon,
    ];

    /// The units' names without `.service` (templates add `@<instance>`).
    pub fn units(self) -> &'static [&'static str] {
        match self {
            Job::Snapshot => &["vigil-snapshot", "vigil-snapshot-scrub"],
            Job::Restore => &["vigil-restore-drill"],
            Job::Health => &["vigil-health"],
            Job::Quota => &["vigil-quota"],
            Job::Notify => &["vigil-notify"],
            Job::Journal => &["vigil-journal"],
            Job::Daemon => &["vigild"],
        }
    }

    /// The job a unit runs, from its name (`vigil-snapshot@prod.service`).
    pub fn of_unit(unit: &str) -> Option<(Job, &'static str)> {
        let base = unit_base(unit);
        Job::ALL
            .into_iter()
            .find_map(|j| j.units().iter().find(|u| **u == base).map(|u| (j, *u)))
    }
}

/// Where the other vigil binaries are: beside the running one (the package
/// puts them all in /usr/bin; a build keeps them in target/<profile>).
pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/usr/bin"))
}

/// `vigil-snapshot@prod.service` -> `vigil-snapshot`.
pub fn unit_base(unit: &str) -> &str {
    let u = unit.strip_suffix(".service").unwrap_or(unit);
    u.split_once('@').map(|(b, _)| b).unwrap_or(u)
}

/// `vigil-snapshot@prod.service` -> `Some("prod")`.
pub fn unit_instance(unit: &str) -> Option<&str> {
    let u = unit.strip_suffix(".service").unwrap_or(unit);
    u.split_once('@').map(|(_, i)| i).filter(|i| !i.is_empty())
}

/// One path a job writes, with the config key that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writable {
    pub key: String,
    pub path: PathBuf,
    /// The job still works without it (metrics: skipped with a warning).
    pub optional: bool,
}

fn push(out: &mut Vec<Writable>, key: impl Into<String>, path: &Path, optional: bool) {
    if path.as_os_str().is_empty() || out.iter().any(|w| w.path == path) {
        return;
    }
    out.push(Writable {
        key: key.into(),
        path: path.to_path_buf(),
        optional,
    });
}

/// Every path `job` writes under this config, most important first.
pub fn writable(cfg: &Config, job: Job) -> Vec<Writable> {
    let mut out = Vec::new();
    push(&mut out, "state.dir", &cfg.state.dir, false);
    let snapshot_dir = cfg.snapshot.as_ref().map(|s| s.dir.clone());
    let sinks = |out: &mut Vec<Writable>| {
        for (i, s) in cfg.sinks().enumerate() {
            for (field, p) in s.writable_paths_by_key(&cfg.state.dir) {
                push(out, format!("sink[{i}].{field}"), &p, false);
            }
        }
    };
    match job {
        Job::Snapshot => {
            if let Some(d) = &snapshot_dir {
                push(&mut out, "snapshot.dir", d, false);
            }
            // Only a dir set by hand: the default is the unit's own
            // TemporaryFileSystem= (or /dev/shm, writable under ProtectSystem).
            let proof = cfg
                .snapshot
                .as_ref()
                .map(|s| &s.prove_restore)
                .filter(|p| p.enabled)
                .and_then(|p| p.dir.clone());
            if let Some(d) = proof {
                push(&mut out, "snapshot.prove_restore.dir", &d, false);
            }
            sinks(&mut out);
        }
        Job::Restore => {
            let r = cfg.restore();
            let scratch = r
                .scratch_dir
                .clone()
                .unwrap_or_else(|| cfg.state.dir.join("drill"));
            push(&mut out, "restore.scratch_dir", &scratch, false);
            // A tape retrieve writes dsmc's logs too.
            sinks(&mut out);
        }
        Job::Health | Job::Quota | Job::Notify => {}
        Job::Journal => {
            push(&mut out, "journal.dir", &cfg.journal_dir(), false);
            for w in writable(cfg, Job::Snapshot) {
                push(&mut out, w.key, &w.path, w.optional);
            }
        }
        Job::Daemon => {
            for j in [Job::Snapshot, Job::Restore, Job::Journal] {
                for w in writable(cfg, j) {
                    push(&mut out, w.key, &w.path, w.optional);
                }
            }
        }
    }
    if cfg.metrics.textfile {
        push(
            &mut out,
            "metrics.textfile_dir",
            &cfg.metrics.textfile_dir,
            true,
        );
    }
    out
}

/// The drop-in that makes `paths` writable inside a unit. `-` because a
/// path that does not exist yet must not stop the unit: check-config names it.
pub fn drop_in(config: &Path, paths: &[Writable]) -> String {
    let mut s = format!(
        "# Written by vigil-generator from {} at daemon-reload; do not edit.\n[Service]\n",
        config.display()
    );
    for w in paths {
        s.push_str(&format!(
            "# {}\nReadWritePaths=-{}\n",
            w.key,
            escape(&w.path)
        ));
    }
    s
}

/// systemd path quoting: spaces and backslashes are escaped C-style.
fn escape(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        match c {
            ' ' => out.push_str("\\x20"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

/// Where `config` lives decides its units: `/etc/vigil/vigil.toml` runs the
/// plain units, `/etc/vigil/<name>.toml` the `@<name>` instances, anything
/// else none (a config that no unit reads).
pub fn instance_of_config(config: &Path) -> Option<Option<String>> {
    if config.parent() != Some(Path::new(crate::config::CONFIG_DIR)) {
        return None;
    }
    if config.extension().is_none_or(|e| e != "toml") {
        return None;
    }
    let stem = config.file_stem()?.to_str()?;
    if stem == "vigil" {
        Some(None)
    } else {
        Some(Some(stem.to_string()))
    }
}

/// The unit file names (`vigil-snapshot@prod.service`) that run `job` with `config`.
pub fn unit_names(config: &Path, job: Job) -> Vec<String> {
    match instance_of_config(config) {
        None => Vec::new(),
        Some(i) => units_of_instance(i.as_deref(), job),
    }
}

/// The units of `job` for the plain config (`None`) or an `@<instance>` one.
pub fn units_of_instance(instance: Option<&str>, job: Job) -> Vec<String> {
    match instance {
        None => job.units().iter().map(|u| format!("{u}.service")).collect(),
        // vigild has no template.
        Some(_) if job == Job::Daemon => Vec::new(),
        Some(i) => job
            .units()
            .iter()
            .map(|u| format!("{u}@{i}.service"))
            .collect(),
    }
}

/// The drop-in file name, inside `<unit>.d/`.
pub const DROP_IN: &str = "50-vigil-paths.conf";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_instances() {
        assert_eq!(unit_base("vigil-snapshot@prod.service"), "vigil-snapshot");
        assert_eq!(unit_instance("vigil-snapshot@prod.service"), Some("prod"));
        assert_eq!(
            Job::of_unit("vigil-snapshot-scrub.service"),
            Some((Job::Snapshot, "vigil-snapshot-scrub"))
        );
        assert_eq!(Job::of_unit("sshd.service"), None);
        assert_eq!(
            Job::of_unit("vigil-journal@prod.service"),
            Some((Job::Journal, "vigil-journal"))
        );
        let p = Path::new("/etc/vigil/prod.toml");
        assert_eq!(
            unit_names(p, Job::Snapshot),
            [
                "vigil-snapshot@prod.service",
                "vigil-snapshot-scrub@prod.service"
            ]
        );
        assert!(unit_names(p, Job::Daemon).is_empty());
        assert!(unit_names(Path::new("/tmp/x.toml"), Job::Health).is_empty());
        assert_eq!(
            unit_names(Path::new("/etc/vigil/vigil.toml"), Job::Daemon),
            ["vigild.service"]
        );
    }

    #[test]
    fn drop_in_lists_the_configured_paths() {
        let text = r#"
[cluster]
name = "prod"
members = [{ name = "cp-1", endpoint = "http://127.0.0.1:2379" }]
[snapshot]
dir = "/srv/vigil snaps"
encryption = "none"
[state]
dir = "/var/lib/vigil/state"
[[sink]]
name = "backuppc"
kind = "dir"
path = "/srv/backuppc-staging/vigil"
"#;
        let cfg = Config::parse_with(
            text,
            Path::new("/etc/vigil/vigil.toml"),
            crate::config::Uses::NONE,
        )
        .unwrap();
        let w = writable(&cfg, Job::Snapshot);
        let keys: Vec<_> = w.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "state.dir",
                "snapshot.dir",
                "sink[0].path",
                "metrics.textfile_dir"
            ]
        );
        let d = drop_in(Path::new("/etc/vigil/vigil.toml"), &w);
        assert!(d.contains("ReadWritePaths=-/srv/vigil\\x20snaps\n"), "{d}");
        assert!(d.contains("ReadWritePaths=-/srv/backuppc-staging/vigil\n"));
        // Health writes only state and metrics.
        assert_eq!(writable(&cfg, Job::Health).len(), 2);
        // A proof dir set by hand is writable too; the default needs nothing.
        let text = text.replace(
            "encryption = \"none\"\n",
            "encryption = \"none\"\nprove_restore = { dir = \"/mnt/ram/vigil\" }\n",
        );
        let cfg = Config::parse_with(
            &text,
            Path::new("/etc/vigil/vigil.toml"),
            crate::config::Uses::NONE,
        )
        .unwrap();
        let w = writable(&cfg, Job::Snapshot);
        assert!(
            w.iter()
                .any(|w| w.key == "snapshot.prove_restore.dir"
                    && w.path == Path::new("/mnt/ram/vigil")),
            "{w:?}"
        );
    }
}

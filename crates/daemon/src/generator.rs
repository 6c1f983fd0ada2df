//! `vigil-generator`: a systemd generator (systemd.generator(7)) that makes
//! every path the config names for writing writable inside the job's
//! sandbox. At boot and at every `systemctl daemon-reload` it reads
//! `/etc/vigil/vigil.toml` (the plain units) and `/etc/vigil/<name>.toml`
//! (the `@<name>` units) and writes a `ReadWritePaths=` drop-in per unit into
//! the generator's normal directory. It opens no secret, and a config it
//! cannot read only costs that config's drop-ins (logged), never the boot.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil_core::config::{Uses, CONFIG_DIR};
use vigil_core::paths::{self, Job, Writable};
use vigil_core::Config;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: vigil-generator NORMAL_DIR [EARLY_DIR LATE_DIR] (run by systemd)");
        return ExitCode::from(2);
    };
    let dir = std::env::var_os("VIGIL_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CONFIG_DIR));
    match generate(&dir, &out) {
        Ok(n) => {
            if n > 0 {
                eprintln!(
                    "vigil-generator: wrote {n} drop-in(s) into {}",
                    out.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil-generator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(dir: &Path, out: &Path) -> std::io::Result<usize> {
    let mut configs: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    configs.sort();
    let mut n = 0;
    let mut state_dirs: Vec<Writable> = Vec::new();
    for config in configs {
        let Some(stem) = config.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let instance = (stem != "vigil").then_some(stem);
        let text = match std::fs::read_to_string(&config) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "vigil-generator: cannot read {}: {e}; its units keep the default sandbox",
                    config.display()
                );
                continue;
            }
        };
        // A file in /etc/vigil that is not a vigil config is not our business.
        let cfg = match Config::parse_with(&text, &config, Uses::NONE) {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "vigil-generator: {e}; its units keep the default sandbox (see check-config)"
                );
                continue;
            }
        };
        for job in Job::ALL {
            let w = paths::writable(&cfg, job);
            let body = paths::drop_in(&config, &w);
            for unit in paths::units_of_instance(instance, job) {
                write_drop_in(out, &unit, &body)?;
                n += 1;
            }
        }
        for w in paths::writable(&cfg, Job::Notify) {
            if w.key == "state.dir" && !state_dirs.iter().any(|s| s.path == w.path) {
                state_dirs.push(w);
            }
        }
    }
    if !state_dirs.is_empty() {
        // The OnFailure= handler records its alert in each config's state.
        let body = paths::drop_in(dir, &state_dirs);
        write_drop_in(out, "vigil-unit-failed@.service", &body)?;
        n += 1;
    }
    Ok(n)
}

fn write_drop_in(out: &Path, unit: &str, body: &str) -> std::io::Result<()> {
    let d = out.join(format!("{unit}.d"));
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(paths::DROP_IN), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_drop_ins_for_plain_and_instance_configs_and_skips_bad_ones() {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("etc");
        let out = t.path().join("out");
        std::fs::create_dir_all(&etc).unwrap();
        let base = |state: &str, extra: &str| {
            format!(
                "[cluster]\nname = \"c\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n\
                 [state]\ndir = \"{state}\"\n{extra}"
            )
        };
        std::fs::write(
            etc.join("vigil.toml"),
            base(
                "/var/lib/vigil/state",
                "[snapshot]\ndir = \"/var/lib/vigil/snapshots\"\nencryption = \"none\"\n\
                 [[sink]]\nname = \"backuppc\"\nkind = \"dir\"\npath = \"/srv/backuppc-staging/vigil\"\n",
            ),
        )
        .unwrap();
        std::fs::write(etc.join("prod.toml"), base("/var/lib/vigil/prod/state", "")).unwrap();
        std::fs::write(etc.join("broken.toml"), "[cluster\n").unwrap();
        let n = generate(&etc, &out).unwrap();
        // vigil.toml: 8 units; prod.toml: 7 (no vigild@); the failure handler.
        assert_eq!(n, 8 + 7 + 1);
        let read = |u: &str| {
            std::fs::read_to_string(out.join(format!("{u}.d")).join(paths::DROP_IN)).unwrap()
        };
        let snap = read("vigil-snapshot.service");
        assert!(
            snap.contains("ReadWritePaths=-/srv/backuppc-staging/vigil\n"),
            "{snap}"
        );
        assert!(!read("vigil-health.service").contains("backuppc"));
        // The journal ships to the sinks and writes its own dir.
        let journal = read("vigil-journal.service");
        assert!(
            journal.contains("ReadWritePaths=-/srv/backuppc-staging/vigil\n")
                && journal.contains("ReadWritePaths=-/var/lib/vigil/journal\n"),
            "{journal}"
        );
        assert!(read("vigil-journal@prod.service").contains("/var/lib/vigil/prod/state\n"));
        assert!(read("vigil-snapshot@prod.service")
            .contains("ReadWritePaths=-/var/lib/vigil/prod/state\n"));
        assert!(!out.join("vigil-snapshot@broken.service.d").exists());
        let h = read("vigil-unit-failed@.service");
        assert!(h.contains("/var/lib/vigil/state\n") && h.contains("/var/lib/vigil/prod/state\n"));
        // No config dir: nothing to do, no error.
        assert_eq!(generate(&t.path().join("none"), &out).unwrap(), 0);
    }
}

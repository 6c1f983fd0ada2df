//! `check-config`: what this job's unit would hit (contract 5): the config,
//! the secrets of the sections it uses, and every path it writes.

use crate::{Exit, GlobalArgs};
use clap::Args;
use std::path::{Path, PathBuf};
use vigil_core::config::Uses;
use vigil_core::paths::{self, Job, Writable};
use vigil_core::{exit, Config};

/// Flags of every binary's `check-config`.
#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {
    /// Validate every section, every secret and every job's paths, not only
    /// this program's.
    #[arg(long)]
    pub all: bool,
}

/// The unprivileged user every unit runs as.
pub const UNIT_USER: &str = "vigil";

/// Runs `check-config` for `job`, which opens the files of `uses`; `extra`
/// adds the program's own summary lines.
pub fn check_config(
    g: &GlobalArgs,
    job: Job,
    uses: Uses,
    args: &CheckArgs,
    extra: impl FnOnce(&Config) -> String,
) -> Result<i32, Exit> {
    let uses = if args.all { Uses::ALL } else { uses };
    let cfg = Config::load_for(&g.config, uses).map_err(Exit::usage)?;
    print!("{}", cfg.summary());
    print!("{}", extra(&cfg));
    println!("secrets opened: {uses}");
    let jobs: Vec<Job> = if args.all {
        Job::ALL.to_vec()
    } else {
        vec![job]
    };
    let mut problems = Vec::new();
    for j in jobs {
        let all = paths::writable(&cfg, j);
        for w in &all {
            match check_writable(&cfg, &all, w) {
                Ok(()) => println!("writes {:<24} {} ok", w.key, w.path.display()),
                Err(m) if w.optional => {
                    println!("writes {:<24} {} WARNING: {m}", w.key, w.path.display())
                }
                Err(m) => {
                    println!("writes {:<24} {} PROBLEM: {m}", w.key, w.path.display());
                    problems.push(format!("key {}: {}: {m}", w.key, w.path.display()));
                }
            }
        }
        problems.extend(stale_drop_ins(&cfg, j, &all));
    }
    problems.dedup();
    if problems.is_empty() {
        return Ok(exit::OK);
    }
    Err(Exit::usage(anyhow::anyhow!(
        "{}: {} problem(s) its unit would hit:\n  {}",
        g.config.display(),
        problems.len(),
        problems.join("\n  ")
    )))
}

/// Why the unit (or this user) cannot write a path.
#[derive(Debug, thiserror::Error)]
enum Unwritable {
    #[error("must be an absolute path")]
    NotAbsolute,
    #[error("is not a directory")]
    NotADirectory,
    #[error("{} is not writable by this user: {source}", target.display())]
    NotWritableHere {
        target: PathBuf,
        source: rustix::io::Errno,
    },
    #[error("not writable by this user: {0}")]
    NotWritable(rustix::io::Errno),
    #[error("{0}; choose a directory such as /var/lib/vigil or /srv")]
    Sandboxed(&'static str),
    #[error("does not exist, and the unit cannot create it ({} is read-only inside the sandbox); create it: install -d -o {UNIT_USER} -g {UNIT_USER} -m 0700 {}", ancestor.display(), path.display())]
    CannotCreate { ancestor: PathBuf, path: PathBuf },
    #[error("does not exist yet and {}: {inner}", ancestor.display())]
    Ancestor {
        ancestor: PathBuf,
        inner: Box<Unwritable>,
    },
    #[error("cannot run `test -w` as {UNIT_USER}: {0}")]
    CannotTest(std::io::Error),
    #[error("not writable by user {UNIT_USER}: chown {UNIT_USER}:{UNIT_USER} {} (or grant an ACL: setfacl -m u:{UNIT_USER}:rwx {})", .0.display(), .0.display())]
    NotTheUnitUsers(PathBuf),
}

/// Why the unit of `job` could not write `w`, if it could not. A config that
/// no unit reads (not in /etc/vigil) is checked for the user running this.
/// `all` is every path the job writes.
fn check_writable(cfg: &Config, all: &[Writable], w: &Writable) -> Result<(), Unwritable> {
    let p = &w.path;
    if !p.is_absolute() {
        return Err(Unwritable::NotAbsolute);
    }
    if paths::instance_of_config(&cfg.path).is_none() {
        if p.exists() && !p.is_dir() {
            return Err(Unwritable::NotADirectory);
        }
        let target = p.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
        return rustix::fs::access(target, rustix::fs::Access::WRITE_OK).map_err(|source| {
            Unwritable::NotWritableHere {
                target: target.to_path_buf(),
                source,
            }
        });
    }
    for (prefix, why) in [
        ("/home", "hidden inside the unit (ProtectHome=yes)"),
        ("/root", "hidden inside the unit (ProtectHome=yes)"),
        ("/run/user", "hidden inside the unit (ProtectHome=yes)"),
        (
            "/tmp",
            "private to each run inside the unit (PrivateTmp=yes): nothing written there is kept",
        ),
        (
            "/var/tmp",
            "private to each run inside the unit (PrivateTmp=yes): nothing written there is kept",
        ),
        ("/proc", "not a place for files"),
        ("/sys", "not a place for files"),
        ("/dev", "not a place for files (PrivateDevices=yes)"),
    ] {
        if p.starts_with(prefix) {
            return Err(Unwritable::Sandboxed(why));
        }
    }
    if p.exists() {
        if !p.is_dir() {
            return Err(Unwritable::NotADirectory);
        }
        return writable_by_unit_user(p);
    }
    // A missing directory is created by the job, but only inside a tree the
    // sandbox lets it write: /var/lib/vigil or another configured path.
    let ancestor = p
        .ancestors()
        .skip(1)
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let inside = ancestor.starts_with("/var/lib/vigil")
        || all
            .iter()
            .any(|o| o.path != *p && o.path.exists() && ancestor.starts_with(&o.path));
    if !inside {
        return Err(Unwritable::CannotCreate {
            ancestor: ancestor.to_path_buf(),
            path: p.clone(),
        });
    }
    writable_by_unit_user(ancestor).map_err(|inner| Unwritable::Ancestor {
        ancestor: ancestor.to_path_buf(),
        inner: Box::new(inner),
    })
}

/// As root, asks `test -w` as the unit's user (ACLs count); otherwise asks
/// for this process.
fn writable_by_unit_user(p: &Path) -> Result<(), Unwritable> {
    if rustix::process::geteuid().is_root() {
        if let Some((uid, gid)) = lookup_user(UNIT_USER) {
            use std::os::unix::process::CommandExt;
            let ok = std::process::Command::new("test")
                .arg("-w")
                .arg(p)
                .uid(uid)
                .gid(gid)
                .status()
                .map(|s| s.success())
                .map_err(Unwritable::CannotTest)?;
            return if ok {
                Ok(())
            } else {
                Err(Unwritable::NotTheUnitUsers(p.to_path_buf()))
            };
        }
    }
    rustix::fs::access(p, rustix::fs::Access::WRITE_OK).map_err(Unwritable::NotWritable)
}

/// The /etc/passwd entry (name, uid, gid) that `hit` picks (system users are local).
fn passwd(hit: impl Fn(&str, u32) -> bool) -> Option<(String, u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (uid, gid) = (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        hit(f[0], uid).then(|| (f[0].to_string(), uid, gid))
    })
}

/// uid and gid of `name`.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    passwd(|n, _| n == name).map(|(_, u, g)| (u, g))
}

/// Where systemd puts the generator's output.
const GENERATOR_DIR: &str = "/run/systemd/generator";

/// Units whose sandbox does not match this config yet (no daemon-reload since it changed).
fn stale_drop_ins(cfg: &Config, job: Job, all: &[Writable]) -> Vec<String> {
    if !Path::new("/run/systemd/system").exists() {
        return Vec::new();
    }
    let want = paths::drop_in(&cfg.path, all);
    paths::unit_names(&cfg.path, job)
        .into_iter()
        .filter(|u| {
            let f: PathBuf = [GENERATOR_DIR, &format!("{u}.d"), paths::DROP_IN].iter().collect();
            std::fs::read_to_string(f).ok().as_deref() != Some(want.as_str())
        })
        .map(|u| format!("{u}: its writable paths do not match this config yet; run `systemctl daemon-reload`"))
        .collect()
}

/// A job run by hand from a root shell would leave root-owned archives,
/// locks and records in a state dir that belongs to the unit's user, which
/// the units could then no longer prune or update. Refuse, and say how.
pub fn refuse_foreign_state(cfg: &Config, program: &str, command: &str) -> Result<(), crate::Exit> {
    use std::os::unix::fs::MetadataExt;
    let euid = rustix::process::geteuid().as_raw();
    let Ok(m) = std::fs::metadata(&cfg.state.dir) else {
        return Ok(());
    };
    if m.uid() == euid {
        return Ok(());
    }
    let unit = match (program, command) {
        ("vigil-snapshot", "scrub") => "vigil-snapshot-scrub.service".to_string(),
        ("vigil-restore", _) => "vigil-restore-drill.service".to_string(),
        (p, _) => format!("{p}.service"),
    };
    let owner = lookup_name(m.uid()).unwrap_or_else(|| m.uid().to_string());
    Err(crate::Exit::usage(anyhow::anyhow!(
        "{}: state.dir {} belongs to user {owner}; running `{program} {command}` as uid {euid} would leave files its units cannot write. \
         Run it as the unit does: `systemctl start {unit}`, or `runuser -u {owner} -- {program} --config {} {command}`",
        cfg.path.display(),
        cfg.state.dir.display(),
        cfg.path.display()
    )))
}

fn lookup_name(uid: u32) -> Option<String> {
    passwd(|_, u| u == uid).map(|(n, _, _)| n)
}

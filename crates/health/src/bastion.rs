//! The bastion itself: free space where the snapshots and the state live.

use crate::Finding;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil_alert::{AlertKey, Severity};
use vigil_core::config::BastionHealth;
use vigil_core::units::human_bytes;
use vigil_core::Config;

/// (free bytes for unprivileged users, total bytes) of the filesystem holding `p`.
pub fn space(p: &Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(p).map_err(std::io::Error::from)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

/// The path itself or, before the first run created it, its nearest existing parent.
fn existing(p: &Path) -> Option<PathBuf> {
    p.ancestors().find(|a| a.exists()).map(Path::to_path_buf)
}

/// PASS/FAIL for one directory (pure).
pub fn judge(f: Finding, free: u64, total: u64, b: &BastionHealth) -> Finding {
    let pct = if total == 0 {
        0.0
    } else {
        free as f64 * 100.0 / total as f64
    };
    let text = format!(
        "{pct:.1}% free ({} of {})",
        human_bytes(free),
        human_bytes(total)
    );
    let below_min = b.min_free.is_some_and(|m| free < m.0);
    if pct < b.free_critical_percent || below_min {
        f.fail(
            Severity::Critical,
            format!(
                "{text}, below {}; snapshots will fail with ENOSPC: prune or grow the disk",
                if below_min {
                    b.min_free.map(|m| m.to_string()).unwrap_or_default()
                } else {
                    format!("{}%", b.free_critical_percent)
                }
            ),
        )
    } else if pct < b.free_warn_percent {
        f.fail(
            Severity::Warning,
            format!("{text}, below {}%", b.free_warn_percent),
        )
    } else {
        f.pass(text)
    }
}

pub async fn check(cfg: &Config) -> Vec<Finding> {
    let mut dirs: Vec<(&str, PathBuf)> = Vec::new();
    if let Ok(s) = cfg.snapshot("vigil-health") {
        dirs.push(("snapshot", s.dir.clone()));
    }
    dirs.push(("state", cfg.state.dir.clone()));
    let limit = cfg.health.timeout.get();
    let jobs = dirs.into_iter().map(|(what, dir)| async move {
        let started = Instant::now();
        let f = Finding::new(
            "bastion.disk",
            format!("{what} {}", dir.display()),
            AlertKey::new("bastion_disk_low").label("dir", what),
        );
        let d = dir.clone();
        let probed = crate::blocking(limit, move || existing(&d).map(|p| (space(&p), p))).await;
        let f = match probed {
            Some(Some((Ok((free, total)), _))) => judge(f, free, total, &cfg.health.bastion),
            Some(Some((Err(e), p))) => f.unknown(format!("statvfs {}: {e}", p.display())),
            Some(None) => f.unknown(format!("{} does not exist", dir.display())),
            None => f.unknown(format!(
                "statvfs {} did not return within {} (a hung mount?)",
                dir.display(),
                crate::fmt_dur(limit)
            )),
        };
        f.took(started)
    });
    futures_util::future::join_all(jobs).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn thresholds() {
        let b = BastionHealth::default();
        let f = || Finding::new("bastion.disk", "x", AlertKey::new("bastion_disk_low"));
        assert_eq!(judge(f(), 50, 100, &b).status, Status::Pass);
        assert_eq!(judge(f(), 15, 100, &b).severity, Severity::Warning);
        assert_eq!(judge(f(), 5, 100, &b).severity, Severity::Critical);
        let b = BastionHealth {
            min_free: Some(vigil_core::units::ByteSize(1 << 30)),
            ..b
        };
        assert_eq!(judge(f(), 50, 100, &b).status, Status::Fail);
    }

    #[test]
    fn real_statvfs() {
        let d = tempfile::tempdir().unwrap();
        let (free, total) = space(d.path()).unwrap();
        assert!(total > 0 && free <= total);
        assert_eq!(existing(&d.path().join("not/yet")).unwrap(), d.path());
    }
}

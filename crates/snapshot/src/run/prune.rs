//! Local retention at the end of a run, under the archives lock.

use super::MemberReport;
use vigil_archive::local;
use vigil_core::config::{Config, SnapshotConfig};
use vigil_core::fsutil::{self, ArchivesLock};
use vigil_core::outcome::Stage;

/// The archives lock for pruning, or `None` with a warning why pruning
/// waits for the next run. Scrubs, drills and restores hold it shared while they read;
/// pruning under it never pulls an archive from under them. Readers that
/// take longer than PRUNE_WAIT only defer pruning to the next run: nothing
/// is lost by keeping an extra copy, so it is a warning, no alert.
pub(super) fn lock(cfg: &Config, warnings: &mut Vec<String>) -> Option<ArchivesLock> {
    let lock_path = ArchivesLock::path_in(&cfg.state.dir);
    let prune_lock = tokio::task::block_in_place(|| {
        ArchivesLock::wait(
            &lock_path,
            fsutil::Access::Exclusive,
            Some(fsutil::PRUNE_WAIT),
            |h| {
                tracing::info!(
                    "waiting up to {}s for the drill/scrub holding {} ({}) before pruning",
                    fsutil::PRUNE_WAIT.as_secs(),
                    lock_path.display(),
                    fsutil::describe_holders(h)
                )
            },
        )
    });
    let w = match prune_lock {
        Ok(Some(l)) => return Some(l),
        Ok(None) => format!(
            "pruning deferred to the next run: {} is still held by {} (a drill, scrub or restore reading archives) after {}s; the extra copies are kept",
            lock_path.display(),
            fsutil::describe_holders(&fsutil::lock_holders(&lock_path)),
            fsutil::PRUNE_WAIT.as_secs()
        ),
        Err(e) => format!("pruning deferred to the next run: {e}"),
    };
    tracing::warn!("{w}");
    warnings.push(w);
    None
}

/// Prunes only members whose new archive is stored, verified and consistent.
pub(super) fn members(cfg: &Config, sc: &SnapshotConfig, members: &mut [MemberReport]) {
    for m in members.iter_mut().filter(|m| m.ok) {
        let dir = local::member_dir(&sc.dir, &m.member);
        match local::prune_member(
            &dir,
            &sc.policy(),
            &cfg.state.dir,
            m.archive.as_slice(),
            false,
        ) {
            Ok(p) => m.pruned = p.into_iter().map(|s| s.archive_path).collect(),
            Err(e) => {
                m.ok = false;
                m.stage = Stage::Retention;
                m.error = Some(format!(
                    "member {}: pruning {}: {e}",
                    m.member,
                    dir.display()
                ));
            }
        }
    }
}

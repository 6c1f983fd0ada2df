//! Which etcd a restore or a drill used, against the etcd that made the
//! snapshot (`manifest.etcd_version`).
//!
//! A restore tool or a scratch etcd of another major.minor than the cluster
//! still works most of the time, but it is not what the cluster would run on
//! that data: a drill on 3.4 against a 3.5 snapshot proves less than one on
//! 3.5. `restore.etcd_bin` / `etcdutl_bin` / `etcdctl_bin` point at binaries
//! of the cluster's version (for RKE2, the ones in its etcd image).

use crate::tool::Tool;
use std::path::Path;

/// `major.minor` of a version such as `3.4.23` or `v3.5.9`.
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().trim_start_matches('v').split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.trim_end_matches(|c: char| !c.is_ascii_digit());
    Some((major, minor.parse().ok()?))
}

fn mm(v: &str) -> String {
    major_minor(v)
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_else(|| v.to_string())
}

/// The version `etcd --version` reports (`etcd Version: 3.4.23`), if `bin`
/// runs on this host. A restore only prints start commands for it, so a
/// missing etcd is no error there.
pub fn etcd_version(bin: &Path) -> Option<String> {
    let out = vigil_core::cmd::Cmd::new(bin)
        .args(["--version"])
        .run_blocking()
        .map_err(|e| tracing::debug!("{e}"))
        .ok()?;
    let text = &out.stdout;
    let v = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string());
    if v.is_none() {
        tracing::warn!("could not read the version of {}: {text:?}", bin.display());
    }
    v
}

/// Whether `used` is of another major.minor than `snapshot`. Unknown
/// versions (an old manifest, unreadable output) are no mismatch.
fn differs(snapshot: &str, used: &str) -> bool {
    matches!((major_minor(snapshot), major_minor(used)), (Some(a), Some(b)) if a != b)
}

/// The plain note of a scratch restore (`who`: "drill", "the proof") when
/// its restore tool or scratch etcd is not of the snapshot's major.minor;
/// None when they match.
pub fn scratch_note(who: &str, snapshot: &str, tool: &Tool, etcd: Option<&str>) -> Option<String> {
    let tool_off = differs(snapshot, &tool.version);
    let etcd_off = etcd.is_some_and(|e| differs(snapshot, e));
    if !tool_off && !etcd_off {
        return None;
    }
    // What served the data is what the drill proved; else the tool.
    let ran = match etcd {
        Some(e) if etcd_off => mm(e),
        _ => mm(&tool.version),
    };
    Some(format!(
        "{who} ran etcd {ran} against a {} snapshot: it proves less (restored with {} {}, served by etcd {}; the cluster runs etcd {snapshot}). \
         Set restore.etcd_bin and restore.etcdutl_bin (or restore.etcdctl_bin) to binaries of etcd {}, e.g. the ones in RKE2's etcd image",
        mm(snapshot),
        tool.kind,
        tool.version,
        etcd.unwrap_or("(version unknown)"),
        mm(snapshot),
    ))
}

/// The restore's warning when its tool (or the etcd of the printed start
/// commands, when it runs here) is not of the snapshot's major.minor.
pub fn restore_note(snapshot: &str, tool: &Tool, etcd: Option<&str>) -> Option<String> {
    let mut off = Vec::new();
    if differs(snapshot, &tool.version) {
        off.push(format!(
            "restored with {} {} (restore.{}_bin)",
            tool.kind, tool.version, tool.kind
        ));
    }
    if let Some(e) = etcd.filter(|e| differs(snapshot, e)) {
        off.push(format!(
            "the start commands run etcd {e} (restore.etcd_bin)"
        ));
    }
    if off.is_empty() {
        return None;
    }
    Some(format!(
        "a {} snapshot (etcd {snapshot}) {}: the cluster ran etcd {}. Another etcd version may read or upgrade the data differently; \
         to restore with the cluster's own version, set restore.etcdutl_bin / restore.etcdctl_bin and restore.etcd_bin to binaries of etcd {} (for RKE2: the ones in its etcd image) and rerun",
        mm(snapshot),
        off.join(" and "),
        mm(snapshot),
        mm(snapshot)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(kind: &'static str, v: &str) -> Tool {
        Tool {
            kind,
            bin: kind.into(),
            version: v.into(),
            major_minor: major_minor(v).unwrap(),
        }
    }

    #[test]
    fn notes_only_when_major_minor_differ() {
        assert_eq!(major_minor("3.4.23"), Some((3, 4)));
        assert_eq!(major_minor("v3.5.9"), Some((3, 5)));
        assert_eq!(major_minor("3.6.0-rc.1"), Some((3, 6)));
        assert_eq!(major_minor("garbage"), None);
        let t34 = tool("etcdctl", "3.4.23");
        let t35 = tool("etcdutl", "3.5.9");
        assert_eq!(scratch_note("drill", "3.4.20", &t34, Some("3.4.23")), None);
        assert_eq!(scratch_note("drill", "", &t35, Some("3.5.9")), None);
        let n = scratch_note("drill", "3.5.9", &t34, Some("3.4.23")).unwrap();
        assert!(
            n.starts_with("drill ran etcd 3.4 against a 3.5 snapshot: it proves less"),
            "{n}"
        );
        // A matching tool but another scratch etcd still proves less.
        let n = scratch_note("drill", "3.5.9", &t35, Some("3.4.23")).unwrap();
        assert!(n.starts_with("drill ran etcd 3.4 against a 3.5"), "{n}");
        let n = scratch_note("the proof", "3.5.9", &t34, Some("3.4.23")).unwrap();
        assert!(n.starts_with("the proof ran etcd 3.4 against a 3.5"), "{n}");
        assert_eq!(restore_note("3.5.1", &t35, None), None);
        let n = restore_note("3.4.23", &t35, Some("3.5.9")).unwrap();
        assert!(
            n.contains("etcdutl 3.5.9 (restore.etcdutl_bin) and the start commands run etcd 3.5.9"),
            "{n}"
        );
    }
}

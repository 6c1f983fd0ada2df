#![allow(clippy::unwrap_used)]
use super::*;

fn seen(rev: i64, cid: &str) -> Option<(PathBuf, RevisionSeen)> {
    Some((
        PathBuf::from("/var/lib/vigil/revision-seen.json"),
        RevisionSeen {
            cluster_id: cid.into(),
            revision: rev,
            seen_at: "2026-12-01T03:00:00.000Z".into(),
            member: "cp-2".into(),
            endpoint: "https://10.0.0.2:2379".into(),
            by: "vigil-health".into(),
        },
    ))
}

#[test]
fn the_bump_is_the_evidence_plus_a_margin_or_the_floor() {
    // Small gap: the fixed margin.
    let p = size(100, "c1", 0, seen(600, "c1"), vec![]);
    assert_eq!(
        (p.behind, p.margin, p.size, p.sized_by),
        (500, 1000, 1500, "evidence")
    );
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    // Large gap: a tenth of it, rounded up.
    let p = size(1_000, "c1", 0, seen(2_000_001, "c1"), vec![]);
    assert_eq!(
        (p.behind, p.margin, p.size),
        (1_999_001, 199_901, 2_198_902)
    );
    // The floor wins while larger, and the evidence once it is not.
    let p = size(100, "c1", 1_000_000_000, seen(600, "c1"), vec![]);
    assert_eq!(
        (p.size, p.sized_by),
        (1_000_000_000, "restore.bump_revision")
    );
    let p = size(0, "c1", 1_000_000_000, seen(5_000_000_000, "c1"), vec![]);
    assert_eq!((p.size, p.sized_by), (5_500_000_000, "evidence"));
    // No evidence: the floor, and a warning when it is small.
    let p = size(100, "c1", 0, None, vec![]);
    assert_eq!((p.behind, p.size), (0, 1000));
    assert!(
        p.notes.iter().any(|n| n.contains("may be too small")),
        "{:?}",
        p.notes
    );
    assert!(size(100, "c1", SAFE_FLOOR, None, vec![]).notes.is_empty());
    // A record behind the snapshot, of another cluster: noted, never negative.
    let p = size(900, "c1", 0, seen(500, "c2"), vec![]);
    assert_eq!((p.behind, p.size), (0, 1000));
    assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
    let d = size(100, "c1", 0, seen(600, "c1"), vec![]).describe();
    assert!(
        d.contains("1500 = max(restore.bump_revision 0, behind 500 + margin 1000)")
            && d.contains("member cp-2")
            && d.contains("2026-12-01T03:00:00.000Z")
            && d.contains("/var/lib/vigil/revision-seen.json"),
        "{d}"
    );
}

#[test]
fn a_replay_is_sized_by_the_evidence_alone_and_needs_it() {
    let p = size(100, "c1", SAFE_FLOOR, seen(600, "c1"), vec![]);
    assert_eq!(p.size, SAFE_FLOOR);
    let r = p.by_replay().unwrap();
    assert_eq!(
        (r.size, r.sized_by, r.method),
        (1500, "evidence", Method::Replay)
    );
    assert!(
        r.describe()
            .starts_with("1500 = behind 500 + margin 1000 (replayed"),
        "{}",
        r.describe()
    );
    assert!(size(100, "c1", 0, None, vec![]).by_replay().is_none());
}

#[test]
fn only_etcdutl_3_5_10_and_later_can_bump() {
    assert!(can_bump("etcdutl", "3.5.10"));
    assert!(can_bump("etcdutl", "3.5.12"));
    assert!(can_bump("etcdutl", "v3.6.0-rc.1"));
    assert!(!can_bump("etcdutl", "3.5.9"));
    assert!(!can_bump("etcdutl", "3.4.30"));
    assert!(!can_bump("etcdctl", "3.5.12"));
    assert!(!can_bump("etcdutl", "garbage"));
    assert_eq!(version_triple("3.5.12-rc.0"), Some((3, 5, 12)));
}

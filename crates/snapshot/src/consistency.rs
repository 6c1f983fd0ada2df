//! Do the members hold the same data? Compares cluster ids, then hash_kv at
//! a revision every member has.

use serde::Serialize;

/// What one member answered.
#[derive(Debug, Clone, Serialize)]
pub struct MemberHash {
    pub member: String,
    pub cluster_id: String,
    pub revision: i64,
    pub hash: Option<u32>,
    pub compact_revision: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyReport {
    pub ok: bool,
    /// The common revision hash_kv was taken at.
    pub revision: i64,
    pub members: Vec<MemberHash>,
    /// (member, why) for every member that disagrees with the majority.
    pub diverged: Vec<(String, String)>,
    /// Why some comparison could not be made; not a failure by itself.
    pub notes: Vec<String>,
}

fn majority<'a, T: PartialEq + Clone + 'a>(
    vals: impl Iterator<Item = &'a T>,
) -> Option<(T, usize, usize)> {
    let vals: Vec<&T> = vals.collect();
    let n = vals.len();
    let mut best: Option<(T, usize)> = None;
    for v in &vals {
        let c = vals.iter().filter(|x| **x == *v).count();
        if best.as_ref().is_none_or(|(_, bc)| c > *bc) {
            best = Some(((*v).clone(), c));
        }
    }
    best.map(|(v, c)| (v, c, n))
}

/// Judges the answers: a member outside the majority cluster id or hash
/// diverged. Without a strict majority every dissenting member is named.
pub fn judge(members: &[MemberHash]) -> (Vec<(String, String)>, Vec<String>) {
    let mut diverged = Vec::new();
    let mut notes = Vec::new();
    let Some((cid, count, n)) = majority(members.iter().map(|m| &m.cluster_id)) else {
        return (diverged, notes);
    };
    if count * 2 <= n && n > 1 {
        for m in members {
            diverged.push((
                m.member.clone(),
                format!(
                    "members disagree on the cluster id (this one says {}), no majority",
                    m.cluster_id
                ),
            ));
        }
        return (diverged, notes);
    }
    for m in members.iter().filter(|m| m.cluster_id != cid) {
        diverged.push((
            m.member.clone(),
            format!("belongs to cluster {} while the majority is cluster {cid}: it is not part of this cluster", m.cluster_id),
        ));
    }
    let same: Vec<&MemberHash> = members.iter().filter(|m| m.cluster_id == cid).collect();
    for m in same.iter().filter(|m| m.hash.is_none()) {
        notes.push(format!(
            "{}: hash_kv unavailable: {}",
            m.member,
            m.error.as_deref().unwrap_or("no answer")
        ));
    }
    let hashed: Vec<&&MemberHash> = same.iter().filter(|m| m.hash.is_some()).collect();
    if hashed.len() < 2 {
        return (diverged, notes);
    }
    let compacts: Vec<Option<i64>> = hashed.iter().map(|m| m.compact_revision).collect();
    if compacts.windows(2).any(|w| w[0] != w[1]) {
        notes.push(
            "members report different compact revisions; hashes not comparable this run".into(),
        );
        return (diverged, notes);
    }
    let Some((h, hc, hn)) = majority(hashed.iter().map(|m| &m.hash)) else {
        return (diverged, notes);
    };
    let strict = hc * 2 > hn;
    for m in hashed.iter().filter(|m| !strict || m.hash != h) {
        diverged.push((
            m.member.clone(),
            format!(
                "hash_kv at revision {} is {:08x}{}",
                m.revision,
                m.hash.unwrap_or_default(),
                match (strict, h) {
                    (true, Some(h)) =>
                        format!(" but the majority has {h:08x}: this member's data diverged"),
                    _ => ", and no majority of members agrees".to_string(),
                }
            ),
        ));
    }
    (diverged, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, cid: &str, hash: Option<u32>) -> MemberHash {
        MemberHash {
            member: name.into(),
            cluster_id: cid.into(),
            revision: 10,
            hash,
            compact_revision: Some(1),
            error: None,
        }
    }

    #[test]
    fn agreeing_members_pass() {
        let (d, n) = judge(&[
            m("a", "c1", Some(7)),
            m("b", "c1", Some(7)),
            m("c", "c1", Some(7)),
        ]);
        assert!(d.is_empty() && n.is_empty());
    }

    #[test]
    fn hash_outlier_is_named() {
        let (d, _) = judge(&[
            m("a", "c1", Some(7)),
            m("b", "c1", Some(9)),
            m("c", "c1", Some(7)),
        ]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, "b");
        assert!(d[0].1.contains("diverged"));
    }

    #[test]
    fn foreign_cluster_is_named_and_missing_hash_is_a_note() {
        let (d, n) = judge(&[
            m("a", "c1", Some(7)),
            m("b", "c1", None),
            m("c", "c2", Some(7)),
        ]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, "c");
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn two_members_disagreeing_are_both_named() {
        let (d, _) = judge(&[m("a", "c1", Some(7)), m("b", "c1", Some(8))]);
        assert_eq!(d.len(), 2);
    }
}

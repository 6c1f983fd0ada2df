//! Which archives to keep. Pure logic: the caller deletes.

/// One archive as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<T> {
    /// Sortable creation time (RFC 3339 UTC sorts lexically).
    pub created: String,
    pub verified: bool,
    pub item: T,
}

/// Splits a member's archives into (keep, prune) under `keep_last`.
///
/// Only verified archives count toward `keep_last` and only verified ones are
/// pruned: an unverified archive is never the reason a verified one goes,
/// and the newest verified archive always stays.
pub fn keep_last<T>(
    mut all: Vec<Candidate<T>>,
    keep_last: u32,
) -> (Vec<Candidate<T>>, Vec<Candidate<T>>) {
    let keep_n = keep_last.max(1) as usize;
    all.sort_by(|a, b| b.created.cmp(&a.created));
    let mut keep = Vec::new();
    let mut prune = Vec::new();
    let mut verified_kept = 0usize;
    for c in all {
        if !c.verified {
            keep.push(c);
        } else if verified_kept < keep_n {
            verified_kept += 1;
            keep.push(c);
        } else {
            prune.push(c);
        }
    }
    (keep, prune)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(t: &str, v: bool) -> Candidate<&'static str> {
        Candidate {
            created: t.to_string(),
            verified: v,
            item: "x",
        }
    }

    #[test]
    fn keeps_newest_verified() {
        let all = (1..=7).map(|i| c(&format!("2026-01-0{i}"), true)).collect();
        let (keep, prune) = keep_last(all, 5);
        assert_eq!(keep.len(), 5);
        assert_eq!(keep[0].created, "2026-01-07");
        assert_eq!(
            prune.iter().map(|p| p.created.as_str()).collect::<Vec<_>>(),
            ["2026-01-02", "2026-01-01"]
        );
    }

    #[test]
    fn unverified_never_displaces_verified() {
        let all = vec![c("3", false), c("2", false), c("1", true)];
        let (keep, prune) = keep_last(all, 1);
        assert_eq!(keep.len(), 3);
        assert!(prune.is_empty());
        let (keep, _) = keep_last(vec![c("1", true)], 0);
        assert_eq!(keep.len(), 1, "keep_last 0 still keeps the newest verified");
    }
}

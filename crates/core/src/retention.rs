//! Which archives to keep, restic-style. Pure logic: the caller deletes.

use serde::Deserialize;

/// One archive as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<T> {
    /// RFC 3339 UTC creation time (sorts lexically).
    pub created: String,
    pub verified: bool,
    pub item: T,
}

/// How many archives to keep, per member: the newest `last`, plus the newest
/// archive of each of the last `daily` days, `weekly` ISO weeks and
/// `monthly` months that have one. An archive kept by any rule stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct KeepPolicy {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl KeepPolicy {
    pub fn last(n: u32) -> Self {
        Self {
            last: n,
            ..Self::default()
        }
    }

    pub fn describe(&self) -> String {
        let mut parts = vec![format!("last {}", self.last)];
        for (n, what) in [
            (self.daily, "daily"),
            (self.weekly, "weekly"),
            (self.monthly, "monthly"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        parts.join(", ")
    }
}

/// Calendar buckets of an RFC 3339 time: (day, ISO week, month).
fn buckets(created: &str) -> Option<(String, String, String)> {
    let t = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let t = t.to_offset(time::UtcOffset::UTC);
    let (y, w, _) = t.to_iso_week_date();
    Some((
        format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        format!("{y}-W{w:02}"),
        format!("{}-{:02}", t.year(), u8::from(t.month())),
    ))
}

/// Splits a member's archives into (keep, prune) under `policy`.
///
/// Only verified archives count and only verified ones are pruned: an
/// unverified archive never displaces a verified one, and the newest
/// verified archive always stays, whatever the policy says.
pub fn apply<T>(
    mut all: Vec<Candidate<T>>,
    policy: &KeepPolicy,
) -> (Vec<Candidate<T>>, Vec<Candidate<T>>) {
    all.sort_by(|a, b| b.created.cmp(&a.created));
    let mut keep = Vec::new();
    let mut prune = Vec::new();
    let mut n_last = 0u32;
    let (mut days, mut weeks, mut months) = (Vec::new(), Vec::new(), Vec::new());
    let mut newest_verified_kept = false;
    for c in all {
        if !c.verified {
            keep.push(c);
            continue;
        }
        let mut kept = false;
        if n_last < policy.last.max(1) {
            n_last += 1;
            kept = true;
        }
        if let Some((d, w, m)) = buckets(&c.created) {
            for (bucket, seen, limit) in [
                (d, &mut days, policy.daily),
                (w, &mut weeks, policy.weekly),
                (m, &mut months, policy.monthly),
            ] {
                if !seen.contains(&bucket) && (seen.len() as u32) < limit {
                    seen.push(bucket);
                    kept = true;
                }
            }
        }
        if !newest_verified_kept {
            newest_verified_kept = true;
            kept = true;
        }
        if kept {
            keep.push(c);
        } else {
            prune.push(c);
        }
    }
    (keep, prune)
}

/// `keep_last` alone.
pub fn keep_last<T>(
    all: Vec<Candidate<T>>,
    keep_last: u32,
) -> (Vec<Candidate<T>>, Vec<Candidate<T>>) {
    apply(all, &KeepPolicy::last(keep_last))
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

    fn day(d: u32, h: u32) -> String {
        format!("2026-01-{d:02}T{h:02}:00:00Z")
    }

    #[test]
    fn keeps_newest_verified() {
        let all = (1..=7).map(|i| c(&day(i, 0), true)).collect();
        let (keep, prune) = keep_last(all, 5);
        assert_eq!(keep.len(), 5);
        assert_eq!(keep[0].created, day(7, 0));
        assert_eq!(
            prune.iter().map(|p| p.created.clone()).collect::<Vec<_>>(),
            [day(2, 0), day(1, 0)]
        );
    }

    #[test]
    fn unverified_never_displaces_verified() {
        let all = vec![
            c("2026-01-03T00:00:00Z", false),
            c("2026-01-02T00:00:00Z", false),
            c("2026-01-01T00:00:00Z", true),
        ];
        let (keep, prune) = keep_last(all, 1);
        assert_eq!(keep.len(), 3);
        assert!(prune.is_empty());
        let (keep, _) = keep_last(vec![c("2026-01-01T00:00:00Z", true)], 0);
        assert_eq!(keep.len(), 1, "keep_last 0 still keeps the newest verified");
    }

    #[test]
    fn daily_weekly_monthly() {
        // Four snapshots a day (every 6 h) for 40 days.
        let mut all = Vec::new();
        for d in 0..40u32 {
            for h in [0, 6, 12, 18] {
                let t = time::OffsetDateTime::from_unix_timestamp(
                    1_767_225_600 + i64::from(d) * 86400 + i64::from(h) * 3600,
                )
                .unwrap();
                all.push(c(
                    &t.format(&time::format_description::well_known::Rfc3339)
                        .unwrap(),
                    true,
                ));
            }
        }
        let p = KeepPolicy {
            last: 4,
            daily: 7,
            weekly: 4,
            monthly: 3,
        };
        let (keep, prune) = apply(all, &p);
        assert_eq!(keep.len() + prune.len(), 160);
        // 4 of the last day (one of them also the day's newest), 6 more daily,
        // then the weekly and monthly newest archives that are not already kept.
        let days: std::collections::BTreeSet<&str> =
            keep.iter().map(|k| &k.created[..10]).collect();
        assert!(days.len() >= 7 && keep.len() <= 4 + 7 + 4 + 3, "{keep:?}");
        assert_eq!(keep[0].created, "2026-02-09T18:00:00Z");
        assert!(
            keep.iter().any(|k| k.created.starts_with("2026-01-31")),
            "newest of January kept by monthly"
        );
        assert!(p.describe().contains("7 daily"));
    }
}

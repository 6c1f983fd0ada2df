//! Which archives to keep, restic-style. Pure logic: the caller deletes.
//!
//! Archives are ordered by what cannot go backwards: the cluster's
//! generation (a cluster that replaced another after `vigil-snapshot repin`
//! starts again at a low revision), then etcd's revision, then its raft
//! index. The wall clock (`created_at`) is only a tie-breaker and the key of
//! the calendar rules: a bastion clock that ran ahead or jumped back must
//! never make a fresh archive look old, nor an old one new.

use crate::manifest::Manifest;
use crate::pin::ClusterPin;
use serde::Deserialize;
use std::cmp::Ordering;

/// One archive as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<T> {
    /// RFC 3339 UTC creation time: calendar buckets and last tie-breaker only.
    pub created: String,
    /// Which cluster: see [`generation`].
    pub generation: u32,
    /// etcd revision the archive holds (never goes backwards in one cluster).
    pub revision: i64,
    pub raft_index: u64,
    /// Counted as a copy: verified, and not known to be corrupt.
    pub verified: bool,
    /// Made by the current run: never pruned, whatever the clocks say.
    pub pinned: bool,
    /// Its restore proof failed (issue 19): kept as evidence, never counted.
    pub proof_failed: bool,
    /// Pinned by `vigil-snapshot pin` or `run --keep` (the name, else the
    /// id): kept until unpinned, and not counted by any rule.
    pub protected: Option<String>,
    pub item: T,
}

/// The generation of `cluster_id` under the pinned cluster ID: every
/// earlier ID in the pin's history in order, then the current one. Archives
/// of a newer generation are newer whatever their revision; an ID the pin
/// does not know is the oldest (0). Without a pin, every archive is 1.
pub fn generation(pin: Option<&ClusterPin>, cluster_id: &str) -> u32 {
    let Some(p) = pin else { return 1 };
    if p.cluster_id == cluster_id {
        return p.history.len() as u32 + 1;
    }
    p.history
        .iter()
        .position(|h| h.cluster_id == cluster_id)
        .map_or(0, |i| i as u32 + 1)
}

impl<T> Candidate<T> {
    /// A candidate for the archive `m` describes.
    pub fn of(
        m: &Manifest,
        pin: Option<&ClusterPin>,
        verified: bool,
        pinned: bool,
        item: T,
    ) -> Self {
        Self {
            created: m.created_at.clone(),
            generation: generation(pin, &m.cluster_id),
            revision: m.revision,
            raft_index: m.raft_index,
            verified,
            pinned,
            proof_failed: m.proof_failed(),
            protected: None,
            item,
        }
    }

    /// The same candidate, pinned under `label` (see [`crate::protect`]).
    pub fn protected(mut self, label: Option<String>) -> Self {
        self.protected = label;
        self
    }
}

/// The rule that keeps an archive, or the reason it goes: what
/// `prune --dry-run` prints, made by the same pass that decides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Not verified, quarantined or found corrupt: evidence, never counted.
    Unverified,
    /// Pinned (`vigil-snapshot pin`, `run --keep`).
    Pinned {
        name: String,
    },
    /// Made by the current run.
    CurrentRun,
    /// The `n`th newest verified archive, of the `last` kept.
    Last {
        n: u32,
        last: u32,
    },
    Daily {
        day: String,
    },
    Weekly {
        week: String,
    },
    Monthly {
        month: String,
    },
    /// The newest verified archive always stays.
    NewestVerified,
    /// A failed restore proof, kept until `last` proven archives are newer.
    ProofFailedEvidence,
    /// Delete: no rule of the policy keeps it.
    BeyondPolicy {
        policy: String,
    },
    /// Delete: a failed restore proof with `last` proven archives newer.
    ProofFailedSuperseded {
        last: u32,
    },
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Unverified => f.write_str("not verified or found corrupt: evidence, not counted"),
            Rule::Pinned { name } => write!(f, "pinned: {name}"),
            Rule::CurrentRun => f.write_str("made by this run"),
            Rule::Last { n, last } => write!(f, "last {last}: #{n}"),
            Rule::Daily { day } => write!(f, "daily {day}"),
            Rule::Weekly { week } => write!(f, "weekly {week}"),
            Rule::Monthly { month } => write!(f, "monthly {month}"),
            Rule::NewestVerified => f.write_str("newest verified"),
            Rule::ProofFailedEvidence => {
                f.write_str("restore proof failed: evidence until newer archives are proven")
            }
            Rule::BeyondPolicy { policy } => write!(f, "beyond keep {policy}"),
            Rule::ProofFailedSuperseded { last } => {
                write!(f, "restore proof failed, {last} newer proven archive(s)")
            }
        }
    }
}

/// What retention does with one archive, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub keep: bool,
    /// Every rule that keeps it, or the one reason it goes.
    pub rules: Vec<Rule>,
}

impl std::fmt::Display for Verdict {
    /// `keep (last 5: #2, daily 2026-11-30)`, `delete (beyond keep last 5)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<String> = self.rules.iter().map(Rule::to_string).collect();
        write!(
            f,
            "{} ({})",
            if self.keep { "keep" } else { "delete" },
            rules.join(", ")
        )
    }
}

/// Newest first: newer cluster generation, higher revision, then higher
/// raft index, then (for equal data) the archive of the current run, and
/// only then the wall clock.
fn newest_first<T>(a: &Candidate<T>, b: &Candidate<T>) -> Ordering {
    (b.generation, b.revision, b.raft_index, b.pinned, &b.created).cmp(&(
        a.generation,
        a.revision,
        a.raft_index,
        a.pinned,
        &a.created,
    ))
}

/// The same order for manifests (freshness, restore): `Less` means `a` is
/// newer.
pub fn newest_first_in(pin: Option<&ClusterPin>, a: &Manifest, b: &Manifest) -> Ordering {
    let key = |m: &Manifest| (generation(pin, &m.cluster_id), m.revision, m.raft_index);
    key(b)
        .cmp(&key(a))
        .then_with(|| b.created_at.cmp(&a.created_at))
}

/// [`newest_first_in`] without a pin (one cluster): revision, raft index,
/// then the wall clock.
pub fn newest_first_manifest(a: &Manifest, b: &Manifest) -> Ordering {
    newest_first_in(None, a, b)
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

/// Calendar buckets of an RFC 3339 time: (day, ISO week, month). A time
/// after `now` (a clock that ran ahead) counts as `now`, so a future-dated
/// archive cannot claim a day, week or month that has not happened yet.
fn buckets(created: &str, now: time::OffsetDateTime) -> Option<(String, String, String)> {
    let t = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let t = t.min(now).to_offset(time::UtcOffset::UTC);
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
/// unverified (or known corrupt) archive never displaces a verified one and
/// stays as evidence, the newest verified archive always stays, whatever
/// the policy says, and so does every archive the current run made.
pub fn apply<T>(
    all: Vec<Candidate<T>>,
    policy: &KeepPolicy,
) -> (Vec<Candidate<T>>, Vec<Candidate<T>>) {
    apply_at(all, policy, crate::now())
}

/// [`apply`] with an explicit "now" for the calendar rules.
pub fn apply_at<T>(
    all: Vec<Candidate<T>>,
    policy: &KeepPolicy,
    now: time::OffsetDateTime,
) -> (Vec<Candidate<T>>, Vec<Candidate<T>>) {
    let (keep, prune): (Vec<_>, Vec<_>) = explain_at(all, policy, now)
        .into_iter()
        .partition(|(_, v)| v.keep);
    (
        keep.into_iter().map(|(c, _)| c).collect(),
        prune.into_iter().map(|(c, _)| c).collect(),
    )
}

/// [`apply`], with the verdict on every archive, newest first.
pub fn explain<T>(all: Vec<Candidate<T>>, policy: &KeepPolicy) -> Vec<(Candidate<T>, Verdict)> {
    explain_at(all, policy, crate::now())
}

/// The one pass that decides: [`apply_at`] only splits its verdicts, so
/// what `prune --dry-run` explains is what prune does.
pub fn explain_at<T>(
    mut all: Vec<Candidate<T>>,
    policy: &KeepPolicy,
    now: time::OffsetDateTime,
) -> Vec<(Candidate<T>, Verdict)> {
    all.sort_by(newest_first);
    let last = policy.last.max(1);
    let mut out = Vec::with_capacity(all.len());
    let mut n_last = 0u32;
    let (mut days, mut weeks, mut months) = (Vec::new(), Vec::new(), Vec::new());
    let mut newest_verified_kept = false;
    let keep = |rules| Verdict { keep: true, rules };
    for c in all {
        if let Some(name) = &c.protected {
            // Pinned copies take no slot: the rolling window stays whole.
            let v = keep(vec![Rule::Pinned { name: name.clone() }]);
            out.push((c, v));
            continue;
        }
        if !c.verified {
            out.push((c, keep(vec![Rule::Unverified])));
            continue;
        }
        if c.proof_failed {
            // Evidence, not a copy: it never displaces a proven archive, and
            // goes once `last` good archives are newer (bounded, unlike the
            // unverified, which nothing replaces).
            let v = if c.pinned {
                keep(vec![Rule::CurrentRun])
            } else if n_last >= last {
                Verdict {
                    keep: false,
                    rules: vec![Rule::ProofFailedSuperseded { last }],
                }
            } else {
                keep(vec![Rule::ProofFailedEvidence])
            };
            out.push((c, v));
            continue;
        }
        let mut rules = Vec::new();
        if n_last < last {
            n_last += 1;
            rules.push(Rule::Last { n: n_last, last });
        }
        if let Some((d, w, m)) = buckets(&c.created, now) {
            let [daily, weekly, monthly]: [fn(String) -> Rule; 3] = [
                |day| Rule::Daily { day },
                |week| Rule::Weekly { week },
                |month| Rule::Monthly { month },
            ];
            for (bucket, seen, limit, rule) in [
                (d, &mut days, policy.daily, daily),
                (w, &mut weeks, policy.weekly, weekly),
                (m, &mut months, policy.monthly, monthly),
            ] {
                if !seen.contains(&bucket) && (seen.len() as u32) < limit {
                    seen.push(bucket.clone());
                    rules.push(rule(bucket));
                }
            }
        }
        if !std::mem::replace(&mut newest_verified_kept, true) && rules.is_empty() {
            rules.push(Rule::NewestVerified);
        }
        if c.pinned {
            rules.push(Rule::CurrentRun);
        }
        let v = if rules.is_empty() {
            Verdict {
                keep: false,
                rules: vec![Rule::BeyondPolicy {
                    policy: policy.describe(),
                }],
            }
        } else {
            keep(rules)
        };
        out.push((c, v));
    }
    out
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
            generation: 1,
            revision: 0,
            raft_index: 0,
            verified: v,
            pinned: false,
            proof_failed: false,
            protected: None,
            item: "x",
        }
    }

    #[test]
    fn a_failed_proof_never_displaces_a_proven_archive_and_goes_in_time() {
        let failed = |rev: i64, item: &'static str| Candidate {
            proof_failed: true,
            ..at(rev, "2026-01-01T00:00:00Z", item)
        };
        // Newest first: two failed proofs on top of three proven archives.
        let all = vec![
            failed(50, "f2"),
            failed(40, "f1"),
            at(30, "2026-01-01T00:00:00Z", "p3"),
            at(20, "2026-01-01T00:00:00Z", "p2"),
            at(10, "2026-01-01T00:00:00Z", "p1"),
        ];
        let (keep, prune) = apply(all.clone(), &KeepPolicy::last(2));
        // The failed ones do not count: the two newest proven stay, and the
        // failed ones newer than them stay as evidence.
        assert_eq!(items(&keep), vec!["f2", "f1", "p3", "p2"]);
        assert_eq!(items(&prune), vec!["p1"]);
        // Once two proven archives are newer, a failed one goes.
        let mut later = vec![
            at(70, "2026-01-01T00:00:00Z", "p5"),
            at(60, "2026-01-01T00:00:00Z", "p4"),
        ];
        later.extend(all);
        let (keep, prune) = apply(later, &KeepPolicy::last(2));
        assert_eq!(items(&keep), vec!["p5", "p4"]);
        assert_eq!(items(&prune), vec!["f2", "f1", "p3", "p2", "p1"]);
    }

    /// An archive at etcd revision `rev`, stamped `t` by a possibly wrong clock.
    fn at(rev: i64, t: &str, item: &'static str) -> Candidate<&'static str> {
        Candidate {
            revision: rev,
            raft_index: rev as u64 + 10,
            item,
            ..c(t, true)
        }
    }

    fn items<T: Copy>(v: &[Candidate<T>]) -> Vec<T> {
        v.iter().map(|c| c.item).collect()
    }

    #[test]
    fn clock_ahead_never_displaces_the_newest_revision() {
        // The bastion clock ran 181 days ahead for the run at revision 10.
        let all = vec![
            at(10, "2027-06-01T00:00:00.000Z", "future"),
            at(20, "2026-12-01T00:00:00.000Z", "new"),
        ];
        let (keep, prune) = keep_last(all, 1);
        assert_eq!(items(&keep), ["new"]);
        assert_eq!(items(&prune), ["future"]);
    }

    #[test]
    fn clock_back_does_not_make_the_new_archive_oldest() {
        // The clock went back 10 days before the run at revision 30.
        let all = vec![
            at(10, "2026-11-29T00:00:00.000Z", "a"),
            at(20, "2026-11-30T00:00:00.000Z", "b"),
            at(30, "2026-11-20T00:00:00.000Z", "new"),
        ];
        let (keep, prune) = keep_last(all, 2);
        assert_eq!(items(&keep), ["new", "b"]);
        assert_eq!(items(&prune), ["a"]);
    }

    #[test]
    fn the_current_run_is_never_pruned() {
        // Even if its revision looks older (a member that lags behind).
        let mut new = at(5, "2026-12-01T00:00:00.000Z", "new");
        new.pinned = true;
        let all = vec![
            at(10, "2026-11-29T00:00:00.000Z", "a"),
            at(20, "2026-11-30T00:00:00.000Z", "b"),
            new,
        ];
        let (keep, prune) = keep_last(all, 1);
        assert_eq!(items(&keep), ["b", "new"]);
        assert_eq!(items(&prune), ["a"]);
        // Same data (equal revision): the current run's archive is the newest.
        let mut new = at(20, "2026-12-01T00:00:00.000Z", "new");
        new.pinned = true;
        let (keep, prune) = keep_last(vec![at(20, "2027-06-01T00:00:00.000Z", "future"), new], 1);
        assert_eq!(items(&keep), ["new"]);
        assert_eq!(items(&prune), ["future"]);
    }

    #[test]
    fn a_corrupt_newest_is_not_counted() {
        let mut bad = at(10, "2027-06-01T00:00:00.000Z", "corrupt");
        bad.verified = false;
        let all = vec![
            bad,
            at(5, "2026-11-30T00:00:00.000Z", "old"),
            at(20, "2026-12-01T00:00:00.000Z", "new"),
        ];
        let (keep, prune) = keep_last(all, 2);
        assert_eq!(
            items(&keep),
            ["new", "corrupt", "old"],
            "corrupt kept as evidence, not counted"
        );
        assert!(prune.is_empty());
    }

    #[test]
    fn a_replacing_cluster_is_newer_at_any_revision() {
        // Rebuilt (or restored without a revision bump) and repinned: the
        // new cluster counts from a low revision again.
        let mut pin = ClusterPin::new("prod", "aaa", "run");
        pin.replace("bbb");
        let p = Some(&pin);
        assert_eq!(
            (
                generation(p, "zzz"),
                generation(p, "aaa"),
                generation(p, "bbb")
            ),
            (0, 1, 2)
        );
        assert_eq!(generation(None, "aaa"), 1);
        let mut old = at(90_000, "2026-11-30T00:00:00.000Z", "old cluster");
        old.generation = generation(p, "aaa");
        let mut new = at(40, "2026-12-01T00:00:00.000Z", "new cluster");
        new.generation = generation(p, "bbb");
        let (keep, prune) = keep_last(vec![old, new], 1);
        assert_eq!(items(&keep), ["new cluster"]);
        assert_eq!(items(&prune), ["old cluster"]);
    }

    #[test]
    fn future_dates_claim_no_calendar_bucket() {
        let now = time::macros::datetime!(2026-12-03 12:00 UTC);
        let all = vec![
            at(1, "2026-12-01T00:00:00.000Z", "d1"),
            at(2, "2026-12-02T00:00:00.000Z", "d2"),
            at(3, "2027-06-01T00:00:00.000Z", "future"),
            at(4, "2026-12-03T00:00:00.000Z", "d3"),
        ];
        let p = KeepPolicy {
            last: 1,
            daily: 3,
            ..KeepPolicy::default()
        };
        let (keep, prune) = apply_at(all, &p, now);
        // "future" counts as today, where d3 is already the newest.
        assert_eq!(items(&keep), ["d3", "d2", "d1"]);
        assert_eq!(items(&prune), ["future"]);
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

    #[test]
    fn a_pinned_archive_stays_and_takes_no_slot() {
        let mut old = at(10, "2026-11-01T00:00:00Z", "pre-upgrade");
        old.protected = Some("pre-upgrade".into());
        let all = vec![
            old,
            at(20, "2026-11-02T00:00:00Z", "a"),
            at(30, "2026-11-03T00:00:00Z", "b"),
            at(40, "2026-11-04T00:00:00Z", "c"),
        ];
        let (keep, prune) = keep_last(all.clone(), 2);
        assert_eq!(items(&keep), ["c", "b", "pre-upgrade"]);
        assert_eq!(items(&prune), ["a"]);
        // Unpinned, it is just the oldest.
        let unpinned = all.into_iter().map(|c| c.protected(None)).collect();
        let (_, prune) = keep_last(unpinned, 2);
        assert_eq!(items(&prune), ["a", "pre-upgrade"]);
    }

    #[test]
    fn every_archive_has_a_reason_and_the_deletes_are_what_apply_prunes() {
        let now = time::macros::datetime!(2026-12-03 12:00 UTC);
        let mut all = Vec::new();
        let names: Vec<&'static str> = (0..30)
            .map(|i| &*Box::leak(format!("a{i}").into_boxed_str()))
            .collect();
        for (i, name) in names.iter().enumerate() {
            let t = time::OffsetDateTime::from_unix_timestamp(
                1_794_182_400 + i as i64 * 43_200, // two a day from 2026-11-08
            )
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
            let mut c = at(i as i64 + 1, Box::leak(t.into_boxed_str()), name);
            match i {
                3 => c.protected = Some("pre-upgrade".into()),
                5 => c.verified = false,
                7 => c.proof_failed = true,
                29 => c.proof_failed = true,
                _ => {}
            }
            all.push(c);
        }
        let p = KeepPolicy {
            last: 3,
            daily: 4,
            weekly: 2,
            monthly: 1,
        };
        let verdicts = explain_at(all.clone(), &p, now);
        let (keep, prune) = apply_at(all, &p, now);
        assert_eq!(verdicts.len(), keep.len() + prune.len());
        let deleted: Vec<&str> = verdicts
            .iter()
            .filter(|(_, v)| !v.keep)
            .map(|(c, _)| c.item)
            .collect();
        assert_eq!(deleted, items(&prune));
        let kept: Vec<&str> = verdicts
            .iter()
            .filter(|(_, v)| v.keep)
            .map(|(c, _)| c.item)
            .collect();
        assert_eq!(kept, items(&keep));
        assert!(verdicts.iter().all(|(_, v)| !v.rules.is_empty()));
        let of = |item: &str| {
            verdicts
                .iter()
                .find(|(c, _)| c.item == item)
                .map(|(_, v)| v.to_string())
                .unwrap()
        };
        // Newest first: a29 failed its proof, but no proven archive is newer.
        assert_eq!(
            of("a29"),
            "keep (restore proof failed: evidence until newer archives are proven)"
        );
        assert_eq!(
            of("a28"),
            "keep (last 3: #1, daily 2026-11-23, weekly 2026-W48, monthly 2026-11)"
        );
        assert_eq!(
            of("a27"),
            "keep (last 3: #2, daily 2026-11-22, weekly 2026-W47)"
        );
        assert_eq!(of("a26"), "keep (last 3: #3)");
        assert_eq!(of("a25"), "keep (daily 2026-11-21)");
        assert_eq!(
            of("a24"),
            "delete (beyond keep last 3, 4 daily, 2 weekly, 1 monthly)"
        );
        assert_eq!(of("a3"), "keep (pinned: pre-upgrade)");
        assert_eq!(
            of("a5"),
            "keep (not verified or found corrupt: evidence, not counted)"
        );
        assert_eq!(
            of("a7"),
            "delete (restore proof failed, 3 newer proven archive(s))"
        );
        assert_eq!(verdicts[0].1.rules, [Rule::ProofFailedEvidence]);
    }

    #[test]
    fn keep_last_zero_and_the_current_run_are_explained() {
        // keep_last 0 still keeps one; the current run's archive stays
        // even when no rule of the policy would keep it.
        let v = explain(
            vec![at(1, "2026-01-01T00:00:00Z", "only")],
            &KeepPolicy::last(0),
        );
        assert_eq!(v[0].1.to_string(), "keep (last 1: #1)");
        let mut made = at(1, "2026-01-01T00:00:00Z", "made");
        made.pinned = true;
        let v = explain(
            vec![at(9, "2026-01-02T00:00:00Z", "newer"), made],
            &KeepPolicy::last(1),
        );
        assert_eq!(v[1].1.to_string(), "keep (made by this run)");
    }
}

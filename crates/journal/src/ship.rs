//! Shipping closed segments to the journal's sinks, catch-up after an
//! outage, and retention: in each sink and on the bastion, segments are
//! kept back to the oldest archive kept there (a kept snapshot may still
//! need every segment after its revision); the bastion's copy is also
//! bounded by `journal.max_local`, giving up segments every sink holds first.
//!
//! The [`Shipper`] keeps what it knows as it goes: the bastion's chain
//! (read once at start, then told of each closed segment) and what each
//! sink holds (listed once, then kept up to date by what it puts and
//! deletes). A pass reads one manifest per segment it ships and nothing
//! else in proportion to the journal's length, so the journal's memory
//! does not grow with the number of segments it keeps (BENCHMARKS.md).

use crate::format::{self, SegmentManifest};
use crate::local::LocalJournal;
use crate::JournalError;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use vigil_archive::sink::Sink;
use vigil_core::Config;

/// How long a sink's listing is trusted before it is read again (to see
/// what was removed or added behind the journal's back).
const RELIST: Duration = Duration::from_secs(3600);

/// What one pass found and did, per sink: `None` is fine, else the error.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub sinks: BTreeMap<String, Option<String>>,
    pub shipped: usize,
    pub pruned_local: usize,
    pub pruned_sinks: usize,
    pub local_bytes: u64,
    /// This pass removed segments not every sink holds, to stay within
    /// `max_local`.
    pub over_local_limit: bool,
    /// Segments on the bastion that not every sink holds, after the pass.
    pub unshipped: usize,
}

/// A segment by what its name says: 17 bytes instead of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegKey {
    pub first: i64,
    pub last: i64,
    pub encrypted: bool,
}

impl SegKey {
    pub fn of(m: &SegmentManifest) -> SegKey {
        SegKey {
            first: m.first_revision,
            last: m.last_revision,
            encrypted: m.encrypted,
        }
    }

    /// A segment's file name as vigil writes it; anything else is `None`.
    pub fn parse(name: &str) -> Option<SegKey> {
        let (stem, encrypted) = match name.strip_suffix(format::EXT_AGE) {
            Some(s) => (s, true),
            None => (name.strip_suffix(format::EXT_PLAIN)?, false),
        };
        let (a, b) = stem.split_once('-')?;
        let k = SegKey {
            first: a.parse().ok()?,
            last: b.parse().ok()?,
            encrypted,
        };
        (k.name() == name).then_some(k)
    }

    pub fn name(&self) -> String {
        format::segment_name(self.first, self.last, self.encrypted)
    }
}

/// A segment on the bastion, as the shipper remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    pub key: SegKey,
    pub size: u64,
}

impl Kept {
    pub fn of(m: &SegmentManifest) -> Kept {
        Kept {
            key: SegKey::of(m),
            size: m.size,
        }
    }
}

struct SinkState {
    sink: Sink,
    /// The segments whose manifest the sink holds; `None` until listed.
    held: Option<BTreeSet<SegKey>>,
    listed_at: Instant,
    /// After an error: list again at the next pass (what landed is unknown),
    /// but still count what was put before as held.
    stale: bool,
}

/// The sinks the journal goes to.
pub fn journal_sinks(cfg: &Config) -> Result<Vec<Sink>, JournalError> {
    let want = cfg.journal.as_ref().and_then(|j| j.sinks.clone());
    let mut out = Vec::new();
    for sc in cfg.sinks() {
        if !sc.takes_journal() || want.as_ref().is_some_and(|w| !w.contains(&sc.name)) {
            continue;
        }
        out.push(Sink::build(sc, cfg.cluster_name(), &cfg.state.dir)?);
    }
    Ok(out)
}

/// The oldest revision that a kept, verified archive in `revs` starts from.
fn oldest_kept(revs: impl IntoIterator<Item = i64>) -> Option<i64> {
    revs.into_iter().min()
}

pub struct Shipper {
    local: LocalJournal,
    sinks: Vec<SinkState>,
    /// The bastion's chain, oldest first.
    chain: VecDeque<Kept>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("local", &self.local.dir)
            .field("segments", &self.chain.len())
            .finish()
    }
}

impl Shipper {
    /// `chain` is the bastion's chain at start (what `local.manifests()` read).
    pub fn new(
        local: LocalJournal,
        sinks: Vec<Sink>,
        chain: impl IntoIterator<Item = Kept>,
    ) -> Self {
        let mut chain: Vec<Kept> = chain.into_iter().collect();
        chain.sort_by_key(|k| k.key);
        Shipper {
            local,
            sinks: sinks
                .into_iter()
                .map(|sink| SinkState {
                    sink,
                    held: None,
                    listed_at: Instant::now(),
                    stale: false,
                })
                .collect(),
            chain: chain.into(),
        }
    }

    /// A segment the writer has just closed (its manifest is on disk).
    pub fn add(&mut self, k: Kept) {
        match self.chain.back() {
            Some(b) if b.key >= k.key => {
                // Not newer than the tail: only if it is not known yet.
                if !self.chain.iter().any(|c| c.key == k.key) {
                    let at = self.chain.partition_point(|c| c.key < k.key);
                    self.chain.insert(at, k);
                }
            }
            _ => self.chain.push_back(k),
        }
    }

    /// Segments on the bastion, as the shipper knows them.
    pub fn local_segments(&self) -> usize {
        self.chain.len()
    }

    fn everywhere(&self, k: &SegKey) -> bool {
        self.sinks
            .iter()
            .all(|s| s.held.as_ref().is_some_and(|h| h.contains(k)))
    }

    /// Ships what each sink lacks (oldest first), then prunes.
    pub async fn pass(&mut self, cfg: &Config) -> PassReport {
        let mut rep = PassReport::default();
        for i in 0..self.sinks.len() {
            let name = self.sinks[i].sink.name().to_string();
            match self.ship_one(i).await {
                Ok((shipped, pruned)) => {
                    rep.shipped += shipped;
                    rep.pruned_sinks += pruned;
                    rep.sinks.insert(name, None);
                }
                Err(e) => {
                    tracing::warn!(sink = %name, "journal: {e}");
                    self.sinks[i].stale = true;
                    rep.sinks.insert(name, Some(e.to_string()));
                }
            }
        }
        self.prune_local(cfg, &mut rep);
        rep.unshipped = self
            .chain
            .iter()
            .filter(|k| !self.everywhere(&k.key))
            .count();
        rep
    }

    /// The bastion: what no local archive needs and every sink holds goes;
    /// then the size bound, oldest first, what every sink holds before
    /// what not every sink does. The tail stays (the next segment links to it).
    fn prune_local(&mut self, cfg: &Config, rep: &mut PassReport) {
        let local_oldest = cfg.snapshot.as_ref().and_then(|s| {
            oldest_kept(
                vigil_archive::local::list_all(&s.dir)
                    .into_iter()
                    .filter(|a| a.is_verified() && a.manifest.cluster == cfg.cluster_name())
                    .map(|a| a.manifest.revision),
            )
        });
        let limit = cfg
            .journal
            .as_ref()
            .map(|j| j.max_local.0)
            .unwrap_or(u64::MAX);
        let mut size: u64 = self.chain.iter().map(|k| k.size).sum();
        for round in [Round::Unneeded, Round::Shipped, Round::Any] {
            let mut i = 0;
            while i + 1 < self.chain.len() {
                let k = self.chain[i];
                let everywhere = self.everywhere(&k.key);
                let go = match round {
                    Round::Unneeded => local_oldest.is_some_and(|o| k.key.last <= o) && everywhere,
                    Round::Shipped => size > limit && everywhere,
                    Round::Any => size > limit,
                };
                if round != Round::Unneeded && size <= limit {
                    break;
                }
                if !go {
                    i += 1;
                    continue;
                }
                if round == Round::Any && !everywhere {
                    rep.over_local_limit = true;
                    tracing::error!(
                        "journal: the bastion's journal is over journal.max_local ({}); removing {} that not every sink holds",
                        vigil_core::units::human_bytes(limit),
                        k.key.name()
                    );
                }
                match self.local.delete_segment(&k.key.name()) {
                    Ok(()) => {
                        size = size.saturating_sub(k.size);
                        rep.pruned_local += 1;
                        self.chain.remove(i);
                    }
                    Err(e) => {
                        tracing::warn!("journal: {e}");
                        i += 1;
                    }
                }
            }
        }
        rep.local_bytes = size;
    }

    /// One sink: list it if its listing is unknown or old, upload what is
    /// missing, prune what no kept archive there needs. Returns how many
    /// were shipped and pruned.
    async fn ship_one(&mut self, i: usize) -> Result<(usize, usize), JournalError> {
        let st = &mut self.sinks[i];
        if st.held.is_none() || st.stale || st.listed_at.elapsed() >= RELIST {
            let held: BTreeSet<SegKey> = st
                .sink
                .journal_files()
                .await?
                .into_iter()
                .filter_map(|(n, _)| SegKey::parse(n.strip_suffix(format::MANIFEST_SUFFIX)?))
                .collect();
            st.held = Some(held);
            st.listed_at = Instant::now();
            st.stale = false;
        }
        let mut shipped = 0;
        let mut gone = Vec::new();
        for k in &self.chain {
            let st = &mut self.sinks[i];
            let held = st.held.get_or_insert_with(BTreeSet::new);
            if held.contains(&k.key) {
                continue;
            }
            let name = k.key.name();
            let Some((m, bytes)) = self.local.read_manifest(&name)? else {
                // Removed behind the journal's back (by hand, or another process).
                tracing::warn!(
                    "journal: {} is no longer in {}; not shipping it",
                    name,
                    self.local.dir.display()
                );
                gone.push(k.key);
                continue;
            };
            st.sink
                .journal_put(
                    &m.segment,
                    &self.local.segment_path(&m.segment),
                    m.size,
                    &m.sha256,
                    bytes::Bytes::from(bytes),
                )
                .await?;
            tracing::debug!(sink = st.sink.name(), "journal: shipped {}", m.segment);
            held.insert(k.key);
            shipped += 1;
        }
        self.chain.retain(|k| !gone.contains(&k.key));
        // Retention in the sink, against the archives kept there.
        let st = &mut self.sinks[i];
        let mut pruned = 0;
        if st.sink.can_delete() {
            let archives = st.sink.list().await?;
            let oldest = oldest_kept(
                archives
                    .iter()
                    .filter(|e| e.is_verified())
                    .map(|e| e.manifest.revision),
            );
            let held = st.held.get_or_insert_with(BTreeSet::new);
            if let Some(o) = oldest {
                let newest = held.last().copied();
                let doomed: Vec<SegKey> = held
                    .iter()
                    .filter(|k| k.last <= o && Some(**k) != newest)
                    .copied()
                    .collect();
                for k in doomed {
                    st.sink.journal_delete(&k.name()).await?;
                    held.remove(&k);
                    pruned += 1;
                }
            }
        }
        Ok((shipped, pruned))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// No local archive needs it and every sink holds it.
    Unneeded,
    /// Over `max_local`: what every sink holds.
    Shipped,
    /// Still over `max_local`: anything but the tail.
    Any,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_parse_both_ways() {
        let k = SegKey {
            first: 102,
            last: 35268,
            encrypted: true,
        };
        assert_eq!(SegKey::parse(&k.name()), Some(k));
        let p = SegKey {
            encrypted: false,
            ..k
        };
        assert_eq!(SegKey::parse(&p.name()), Some(p));
        for bad in [
            "102-35268.jsonl.zst.age",
            "00000000000000000102-00000000000000035268.jsonl",
            "x.json",
            "",
        ] {
            assert_eq!(SegKey::parse(bad), None, "{bad}");
        }
    }

    /// A segment of `n` bytes in `dir`, with its manifest.
    fn segment(dir: &std::path::Path, first: i64, last: i64, n: usize) -> Kept {
        use sha2::{Digest, Sha256};
        let key = SegKey {
            first,
            last,
            encrypted: false,
        };
        let bytes = vec![b'x'; n];
        let m = SegmentManifest {
            format: format::FORMAT.into(),
            cluster: "prod".into(),
            cluster_id: "1".into(),
            segment: key.name(),
            first_revision: first,
            last_revision: last,
            events: 1,
            revisions: 1,
            first_received_at: "2026-12-03T00:00:00.000Z".into(),
            last_received_at: "2026-12-03T00:00:00.000Z".into(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: n as u64,
            plaintext_size: n as u64,
            prev_segment: None,
            prev_sha256: None,
            gap: None,
            members: vec!["cp-1".into()],
            encrypted: false,
            age_recipients: vec![],
            created_at: "2026-12-03T00:00:00Z".into(),
            vigil_version: "test".into(),
        };
        std::fs::write(dir.join(key.name()), &bytes).unwrap();
        std::fs::write(dir.join(m.manifest_name()), m.to_json()).unwrap();
        Kept::of(&m)
    }

    /// A lost segment is a break, even though verify looks twice for one
    /// that retention pruned meanwhile; a pruned one (manifest gone too) is not.
    #[test]
    fn verify_names_a_lost_segment_and_skips_a_pruned_one() {
        let d = tempfile::tempdir().unwrap();
        let k = segment(d.path(), 3, 40, 100);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let verify = || {
            let src = crate::read::Source::Local(LocalJournal::new(d.path()));
            rt.block_on(crate::verify(&src, "prod")).unwrap()
        };
        let v = verify();
        assert_eq!((v.segments, v.broken.clone()), (1, None), "{v:?}");
        std::fs::remove_file(d.path().join(k.key.name())).unwrap();
        let v = verify();
        let why = v.broken.unwrap_or_default();
        assert!(why.contains(&k.key.name()), "{why}");
        std::fs::remove_file(
            d.path()
                .join(format!("{}{}", k.key.name(), format::MANIFEST_SUFFIX)),
        )
        .unwrap();
        let v = verify();
        assert_eq!((v.segments, v.broken), (0, None));
    }

    fn config(d: &std::path::Path, max_local: &str) -> Config {
        let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n\
             [state]\ndir = \"{0}/state\"\n[journal]\ndir = \"{0}/journal\"\nmax_local = \"{max_local}\"\nsegment_size = \"4KiB\"\n\
             [[sink]]\nname = \"ltfs\"\nkind = \"dir\"\npath = \"{0}/ltfs\"\n",
            d.display()
        );
        Config::parse(&text, std::path::Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sink_has(d: &std::path::Path, k: &Kept) -> bool {
        walkdir(
            d.join("ltfs"),
            &format!("{}{}", k.key.name(), format::MANIFEST_SUFFIX),
        )
    }

    fn walkdir(dir: std::path::PathBuf, name: &str) -> bool {
        std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                if p.is_dir() {
                    walkdir(p, name)
                } else {
                    e.file_name().to_string_lossy() == name
                }
            })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn ships_what_is_new_and_bounds_the_bastion() {
        let d = tempfile::tempdir().unwrap();
        let cfg = config(d.path(), "25000B");
        let local = LocalJournal::new(&cfg.journal_dir());
        local.ensure().unwrap();
        let dir = local.dir.clone();
        let seed: Vec<Kept> = (0..3)
            .map(|i| segment(&dir, i * 10 + 1, i * 10 + 10, 10000))
            .collect();
        let sinks = journal_sinks(&cfg).unwrap();
        let mut sh = Shipper::new(local.clone(), sinks, seed.clone());

        // Everything reaches the sink; then the bound removes the oldest
        // (shipped) one, and the tail always stays.
        let rep = sh.pass(&cfg).await;
        assert_eq!(rep.sinks.get("ltfs"), Some(&None), "{rep:?}");
        assert_eq!(rep.shipped, 3);
        assert!(seed.iter().all(|k| sink_has(d.path(), k)));
        assert_eq!((rep.pruned_local, rep.local_bytes), (1, 20000));
        assert!(!rep.over_local_limit);
        assert!(!dir.join(seed[0].key.name()).exists());
        assert!(dir.join(seed[2].key.name()).exists());

        // Nothing new: nothing shipped, and no listing needed to know it.
        let rep = sh.pass(&cfg).await;
        assert_eq!((rep.shipped, rep.pruned_local, rep.unshipped), (0, 0, 0));

        // A segment closed since: only that one goes.
        let k = segment(&dir, 31, 40, 4000);
        sh.add(k);
        sh.add(k);
        let rep = sh.pass(&cfg).await;
        assert_eq!(rep.shipped, 1);
        assert!(sink_has(d.path(), &k));
        assert_eq!(sh.local_segments(), 3, "{rep:?}");

        // The sink is down: what it holds goes first, and the bound gives up
        // a segment it lacks only as the last resort.
        std::fs::rename(d.path().join("ltfs"), d.path().join("ltfs.away")).unwrap();
        std::fs::write(d.path().join("ltfs"), b"not a directory").unwrap();
        let lost = segment(&dir, 41, 50, 20000);
        let big = segment(&dir, 51, 55, 10000);
        sh.add(big);
        sh.add(lost);
        let rep = sh.pass(&cfg).await;
        assert!(rep.sinks.get("ltfs").unwrap().is_some(), "{rep:?}");
        assert!(rep.over_local_limit, "{rep:?}");
        assert_eq!(
            (sh.local_segments(), rep.local_bytes, rep.unshipped),
            (1, 10000, 1)
        );
        assert!(dir.join(big.key.name()).exists());

        // Removed behind the journal's back: skipped with a warning, not an error.
        std::fs::remove_file(d.path().join("ltfs")).unwrap();
        std::fs::rename(d.path().join("ltfs.away"), d.path().join("ltfs")).unwrap();
        let gone = segment(&dir, 56, 60, 100);
        sh.add(gone);
        local.delete_segment(&gone.key.name()).unwrap();
        let tail = segment(&dir, 61, 70, 100);
        sh.add(tail);
        let rep = sh.pass(&cfg).await;
        assert_eq!(rep.sinks.get("ltfs"), Some(&None), "{rep:?}");
        assert!(sink_has(d.path(), &big) && sink_has(d.path(), &tail));
        assert!(!sink_has(d.path(), &gone) && !sink_has(d.path(), &lost));
        assert_eq!((rep.shipped, rep.unshipped), (2, 0));
    }
}

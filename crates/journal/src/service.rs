//! `vigil-journal run`: follows a healthy member's watch from the chain's
//! tail (or the newest archive), writes segments, moves to another member
//! when its member fails, records gaps, ships and prunes, raises alerts and
//! writes metrics, until told to stop (SIGTERM closes the open segment).

use crate::format::{Gap, SegmentManifest};
use crate::local::LocalJournal;
use crate::segment::{Meta, OpenSegment};
use crate::ship::{Kept, Shipper};
use crate::watch::{Message, Watch};
use crate::JournalError;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch as signal;
use vigil_alert::model::{AlertKey, CheckResult, Fact, Severity, Source};
use vigil_core::config::JournalConfig;
use vigil_core::Config;
use vigil_etcd::{MemberClient, TlsMaterial};

/// How often the open segment, the members and the alerts are looked at.
const TICK: Duration = Duration::from_millis(250);
/// How often the other members are asked for the cluster's revision.
const POLL: Duration = Duration::from_secs(3);
/// Silence from the followed member, while the cluster moved on, after which
/// it counts as failed.
const DEAD_AFTER: Duration = Duration::from_secs(10);
/// How often alerts and metrics are refreshed, and sinks caught up.
const REFRESH: Duration = Duration::from_secs(15);

/// The journal's state, shared with the poller and the shipper.
#[derive(Debug, Default)]
struct View {
    /// The newest revision any member reported, and when.
    cluster_revision: i64,
    /// Since when the cluster held revisions the journal had not closed.
    behind_since: Option<Instant>,
    following: Option<String>,
    sinks: std::collections::BTreeMap<String, Option<String>>,
    local_bytes: u64,
    over_local_limit: bool,
}

/// What ended one member's watch.
enum Ended {
    Stop,
    Failed(String),
    /// The journal could not be written (a full disk): the member is fine.
    Write(String),
    Compacted(i64),
}

/// How long to wait before trying again after the journal could not be written.
const WRITE_RETRY: Duration = Duration::from_secs(5);

pub struct Journal {
    cfg: Arc<Config>,
    config_path: PathBuf,
    jc: JournalConfig,
    local: LocalJournal,
    meta: Option<Meta>,
    tail: Option<SegmentManifest>,
    next: i64,
    open: Option<OpenSegment>,
    /// A gap not yet written into a segment's manifest.
    pending_gap: Option<Gap>,
    /// The newest gap of the chain (or this run).
    last_gap: Option<Gap>,
    chain_break: Option<String>,
    view: Arc<Mutex<View>>,
    events_total: u64,
    bytes_total: u64,
    segments_total: u64,
    snapshotting: Arc<std::sync::atomic::AtomicBool>,
    /// Each closed segment, to the shipper.
    closed: tokio::sync::mpsc::UnboundedSender<Kept>,
    /// The shipper's end, with the chain found at start (taken by `run`).
    shipper_seed: Option<(tokio::sync::mpsc::UnboundedReceiver<Kept>, Vec<Kept>)>,
    /// Called from every refresh (about every 15 s, following or idle): the
    /// binary pings systemd's watchdog from it.
    alive: Option<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("next", &self.next).finish()
    }
}

fn now_str() -> String {
    vigil_core::rfc3339(vigil_core::now())
}

impl Journal {
    /// Checks the local chain and finds where to start; nothing is contacted.
    pub fn new(cfg: Arc<Config>, config_path: PathBuf) -> Result<Journal, JournalError> {
        let jc = cfg.journal.clone().ok_or_else(|| {
            JournalError::Config(format!(
                "{}: there is no [journal] section; add one (every key is optional) to run vigil-journal",
                cfg.path.display()
            ))
        })?;
        let local = LocalJournal::new(&cfg.journal_dir());
        local.ensure()?;
        for p in local.cleanup() {
            tracing::info!("removed {} (left by a killed journal)", p.display());
        }
        let chain = local.manifests()?;
        let mut chain_break = crate::format::check_links(&chain).map(|b| b.to_string());
        if chain_break.is_none() {
            // Every local segment against its manifest: a short read each.
            for m in &chain {
                match crate::local_sha(&local, m) {
                    Ok(true) => {}
                    Ok(false) => {
                        chain_break = Some(format!(
                            "segment {}: its size or sha256 no longer matches its manifest (damaged or replaced)",
                            m.segment
                        ));
                        break;
                    }
                    Err(e) => {
                        chain_break = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        if let Some(b) = &chain_break {
            tracing::error!(
                "journal: the chain in {} is broken: {b}",
                local.dir.display()
            );
        }
        let last_gap = chain.iter().rev().find_map(|m| m.gap);
        let (closed, closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let seed = chain.iter().map(Kept::of).collect();
        Ok(Journal {
            next: chain.last().map(|m| m.last_revision + 1).unwrap_or(0),
            tail: chain.last().cloned(),
            cfg,
            config_path,
            jc,
            local,
            meta: None,
            open: None,
            pending_gap: None,
            last_gap,
            chain_break,
            view: Arc::default(),
            events_total: 0,
            bytes_total: 0,
            segments_total: 0,
            snapshotting: Arc::default(),
            closed,
            shipper_seed: Some((closed_rx, seed)),
            alive: None,
        })
    }

    /// `f` is called at every refresh of alerts and metrics, which the run
    /// loop does about every 15 s whether it follows a member or waits
    /// for one: a sign of life for a watchdog.
    pub fn with_alive(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.alive = Some(Box::new(f));
        self
    }

    /// The revision after the newest verified local archive of this cluster.
    fn after_newest_archive(&self) -> Option<i64> {
        let dir = &self.cfg.snapshot.as_ref()?.dir;
        vigil_archive::local::list_all(dir)
            .into_iter()
            .filter(|a| a.is_verified() && a.manifest.cluster == self.cfg.cluster_name())
            .map(|a| a.manifest.revision + 1)
            .max()
    }

    fn archive_options(&self) -> vigil_archive::ArchiveOptions {
        let sn = self.cfg.snapshot.as_ref();
        vigil_archive::ArchiveOptions {
            zstd_level: sn.map(|s| s.zstd_level).unwrap_or(3),
            zstd_threads: 0,
            recipients: sn.map(|s| s.recipients.clone()).unwrap_or_default(),
        }
    }

    /// Runs until `stop` turns true. `ready` is called once the journal
    /// knows where it starts.
    pub async fn run(
        mut self,
        mut stop: signal::Receiver<bool>,
        ready: impl FnOnce(),
    ) -> Result<(), JournalError> {
        let cfg = self.cfg.clone();
        let tls = cfg.tls().map(TlsMaterial::load).transpose()?;
        let timeout = cfg
            .snapshot
            .as_ref()
            .map(|s| s.connect_timeout.get())
            .unwrap_or(Duration::from_secs(5));
        let members: Vec<_> = cfg.members().cloned().collect();
        let sinks = crate::ship::journal_sinks(&cfg)?;
        let poller = tokio::spawn(poll(
            members.clone(),
            tls.clone(),
            timeout,
            self.view.clone(),
        ));
        // Told to stop only after the open segment is closed, so its last
        // pass ships that one too.
        let (ship_stop, ship_stopped) = signal::channel(false);
        let (closed_rx, seed) = self.shipper_seed.take().ok_or_else(|| {
            JournalError::Config("the journal service runs once per process".into())
        })?;
        let shipper = tokio::spawn(ship_loop(
            cfg.clone(),
            Shipper::new(self.local.clone(), sinks, seed),
            self.view.clone(),
            closed_rx,
            ship_stopped,
        ));
        let mut ready = Some(ready);
        let mut idx = 0usize;
        let mut failures = 0usize;
        let mut last_refresh = Instant::now() - REFRESH;
        while !*stop.borrow() {
            let m = &members[idx % members.len()];
            let client = match vigil_etcd::connect(m, tls.as_ref(), timeout).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("journal: {e}; trying the next member");
                    idx += 1;
                    failures += 1;
                    self.idle_until(&mut stop, failures, members.len(), &mut last_refresh)
                        .await;
                    continue;
                }
            };
            if let Err(e) = self.anchor(&client).await {
                tracing::warn!("journal: {e}; trying the next member");
                idx += 1;
                failures += 1;
                self.idle_until(&mut stop, failures, members.len(), &mut last_refresh)
                    .await;
                continue;
            }
            if let Some(r) = ready.take() {
                r();
            }
            match self.follow(&client, &mut stop, &mut last_refresh).await {
                Ended::Stop => break,
                Ended::Failed(why) => {
                    tracing::warn!(
                        "journal: member {} ({}) failed: {why}; moving to the next member at revision {}",
                        client.name,
                        client.endpoint,
                        self.next
                    );
                    idx += 1;
                    failures = 1;
                }
                Ended::Write(why) => {
                    tracing::error!(
                        "journal: cannot write the journal in {}: {why}; reading again from revision {} in {WRITE_RETRY:?}",
                        self.local.dir.display(),
                        self.next
                    );
                    let _ = tokio::time::timeout(WRITE_RETRY, stop.changed()).await;
                    self.refresh_due(&mut last_refresh);
                }
                Ended::Compacted(c) => {
                    failures = 0;
                    self.on_compacted(c)?;
                }
            }
        }
        self.close_open()?;
        if let Some(r) = ready.take() {
            r();
        }
        let _ = ship_stop.send(true);
        poller.abort();
        let _ = tokio::time::timeout(Duration::from_secs(30), shipper).await;
        self.refresh();
        Ok(())
    }

    /// After a round of failed members: wait a little (stop-aware), keep
    /// alerts fresh.
    async fn idle_until(
        &mut self,
        stop: &mut signal::Receiver<bool>,
        failures: usize,
        n: usize,
        last_refresh: &mut Instant,
    ) {
        if failures.is_multiple_of(n) {
            let _ = tokio::time::timeout(Duration::from_secs(2), stop.changed()).await;
        }
        self.refresh_due(last_refresh);
    }

    /// Learns the cluster ID (refusing another cluster than the chain's or
    /// the pin's) and, without a chain, where to start.
    async fn anchor(&mut self, c: &MemberClient) -> Result<(), JournalError> {
        let st = vigil_etcd::status(c).await?;
        let id = format!("{:x}", st.cluster_id);
        let expected = self
            .tail
            .as_ref()
            .map(|t| t.cluster_id.clone())
            .or_else(|| {
                vigil_core::pin::load(&self.cfg.state.dir)
                    .ok()
                    .flatten()
                    .map(|p| p.cluster_id)
            });
        if let Some(want) = expected.filter(|w| *w != id) {
            return Err(JournalError::Config(format!(
                "member {} ({}) is of etcd cluster {id}, but the journal (and the cluster pin) is of cluster {want}; \
                 a rebuilt cluster needs `vigil-snapshot repin` and a new journal dir",
                c.name, c.endpoint
            )));
        }
        if self.meta.is_none() {
            self.meta = Some(Meta {
                cluster: self.cfg.cluster_name().to_string(),
                cluster_id: id,
                opts: self.archive_options(),
            });
        }
        if self.next == 0 {
            self.next = match self.after_newest_archive() {
                Some(r) => {
                    tracing::info!("journal: starting at revision {r}, after the newest archive");
                    r
                }
                None => {
                    tracing::warn!(
                        "journal: no chain and no archive yet: starting at the cluster's revision {}; take a snapshot (`vigil-snapshot run`) so that restores have a base",
                        st.revision + 1
                    );
                    st.revision + 1
                }
            };
        }
        Ok(())
    }

    async fn follow(
        &mut self,
        c: &MemberClient,
        stop: &mut signal::Receiver<bool>,
        last_refresh: &mut Instant,
    ) -> Ended {
        let mut w = match Watch::open(c, self.next).await {
            Ok(w) => w,
            Err(e) => return Ended::Failed(e.to_string()),
        };
        tracing::info!(
            "journal: following member {} ({}) from revision {}",
            c.name,
            c.endpoint,
            self.next
        );
        self.view
            .lock()
            .map(|mut v| v.following = Some(c.name.clone()))
            .ok();
        let mut tick = tokio::time::interval(TICK);
        let mut last_msg = Instant::now();
        let mut last_probe = Instant::now();
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    if *stop.borrow() {
                        return Ended::Stop;
                    }
                }
                m = w.next(now_str) => {
                    last_msg = Instant::now();
                    match m {
                        Err(e) => return Ended::Failed(vigil_core::error_chain(&e)),
                        Ok(None) => return Ended::Failed("the watch stream ended".into()),
                        Ok(Some(Message::Compacted(r))) => return Ended::Compacted(r),
                        Ok(Some(Message::Canceled(why))) => return Ended::Failed(format!("the member canceled the watch: {why}")),
                        Ok(Some(Message::Progress(_))) => {}
                        Ok(Some(Message::Revisions(revs))) => {
                            if let Err(e) = self.append(&c.name, revs) {
                                return Ended::Write(e.to_string());
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.maybe_close() {
                        return Ended::Write(e.to_string());
                    }
                    if last_probe.elapsed() >= POLL {
                        last_probe = Instant::now();
                        if w.request_progress().await.is_err() {
                            return Ended::Failed("the watch stream is closed".into());
                        }
                    }
                    let cluster = self.view.lock().map(|v| v.cluster_revision).unwrap_or(0);
                    if last_msg.elapsed() > DEAD_AFTER && cluster >= self.next {
                        return Ended::Failed(format!(
                            "nothing for {:?} while the cluster is at revision {cluster} and the journal at {}",
                            last_msg.elapsed(),
                            self.next - 1
                        ));
                    }
                    self.refresh_due(last_refresh);
                }
            }
        }
    }

    fn append(
        &mut self,
        member: &str,
        revs: Vec<Vec<crate::format::Event>>,
    ) -> Result<(), JournalError> {
        for events in revs {
            let rev = events[0].revision;
            if rev < self.next {
                continue; // Already journaled (a member replaying after a failover).
            }
            if rev > self.next {
                // Never seen: revisions are contiguous. Recorded, not hidden.
                tracing::error!(
                    "journal: member {member} jumped from revision {} to {rev}; recording the gap",
                    self.next - 1
                );
                self.close_open()?;
                self.record_gap(Gap {
                    from: self.next,
                    to: rev - 1,
                });
            }
            if self.open.is_none() {
                let meta = self
                    .meta
                    .as_ref()
                    .ok_or_else(|| JournalError::Config("no cluster ID yet".into()))?;
                let gap = self.pending_gap;
                self.open = Some(tokio::task::block_in_place(|| {
                    OpenSegment::open(&self.local, meta, rev, gap)
                })?);
                self.pending_gap = None;
            }
            let seg = self
                .open
                .as_mut()
                .ok_or_else(|| JournalError::Config("no open segment".into()))?;
            if let Err(e) = tokio::task::block_in_place(|| seg.append(member, &events)) {
                self.discard_open();
                return Err(e);
            }
            self.events_total += events.len() as u64;
            self.next = rev + 1;
            if seg.plaintext >= self.jc.segment_size.0 {
                self.close_open()?;
            }
        }
        Ok(())
    }

    fn maybe_close(&mut self) -> Result<(), JournalError> {
        if self
            .open
            .as_ref()
            .is_some_and(|s| s.opened.elapsed() >= self.jc.flush.get())
        {
            self.close_open()?;
        }
        Ok(())
    }

    fn close_open(&mut self) -> Result<(), JournalError> {
        let Some(seg) = self.open.take() else {
            return Ok(());
        };
        if seg.is_empty() {
            return Ok(());
        }
        let Some(meta) = self.meta.as_ref() else {
            return Ok(());
        };
        let (first, gap) = (seg.first, seg.gap());
        let m = match tokio::task::block_in_place(|| {
            seg.close(&self.local, meta, self.tail.as_ref())
        }) {
            Ok(m) => m,
            Err(e) => {
                self.rewind(first, gap);
                return Err(e);
            }
        };
        tracing::debug!(
            "journal: closed {} ({} events, revisions {}..={})",
            m.segment,
            m.events,
            m.first_revision,
            m.last_revision
        );
        self.bytes_total += m.size;
        self.segments_total += 1;
        let _ = self.closed.send(Kept::of(&m));
        self.tail = Some(m);
        Ok(())
    }

    /// Drops the open segment after a failed write (its temp file goes
    /// with it) and rewinds, so its revisions are read again: nothing is
    /// skipped, nothing written twice.
    fn discard_open(&mut self) {
        if let Some(seg) = self.open.take() {
            let (first, gap) = (seg.first, seg.gap());
            drop(seg);
            self.rewind(first, gap);
        }
    }

    fn rewind(&mut self, first: i64, gap: Option<Gap>) {
        self.next = first;
        if self.pending_gap.is_none() {
            self.pending_gap = gap;
        }
    }

    fn record_gap(&mut self, g: Gap) {
        let g = match self.pending_gap {
            Some(p) => Gap {
                from: p.from.min(g.from),
                to: g.to.max(p.to),
            },
            None => g,
        };
        self.pending_gap = Some(g);
        self.last_gap = Some(g);
    }

    /// The member compacted past the journal: record the gap, alert, and
    /// re-anchor with a full snapshot.
    fn on_compacted(&mut self, compact: i64) -> Result<(), JournalError> {
        if let Err(e) = self.close_open() {
            // Its revisions were compacted too: the gap below covers them.
            tracing::error!("journal: {e}");
        }
        let g = Gap {
            from: self.next,
            to: compact - 1,
        };
        tracing::error!(
            "journal: revisions {}..={} were compacted before the journal read them; resuming at {compact}",
            g.from,
            g.to
        );
        self.record_gap(g);
        self.next = compact;
        self.refresh();
        if self.jc.snapshot_on_gap {
            self.start_snapshot();
        }
        Ok(())
    }

    fn start_snapshot(&self) {
        use std::sync::atomic::Ordering;
        if self.snapshotting.swap(true, Ordering::SeqCst) {
            return;
        }
        let bin = self
            .jc
            .snapshot_bin
            .clone()
            .unwrap_or_else(|| vigil_core::paths::bin_dir().join("vigil-snapshot"));
        let flag = self.snapshotting.clone();
        let config = self.config_path.clone();
        tokio::spawn(async move {
            tracing::info!(
                "journal: starting a full snapshot to re-anchor the journal: {} run",
                bin.display()
            );
            let r = tokio::process::Command::new(&bin)
                .arg("--config")
                .arg(&config)
                .arg("run")
                .stdin(std::process::Stdio::null())
                .status()
                .await;
            match r {
                Ok(s) if s.success() => {
                    tracing::info!("journal: the re-anchoring snapshot finished")
                }
                Ok(s) => tracing::error!(
                    "journal: the re-anchoring snapshot ({}) exited with {s}",
                    bin.display()
                ),
                Err(e) => tracing::error!("journal: starting {}: {e}", bin.display()),
            }
            flag.store(false, Ordering::SeqCst);
        });
    }

    /// [`Journal::refresh`] when the last one is [`REFRESH`] old.
    fn refresh_due(&mut self, last: &mut Instant) {
        if last.elapsed() >= REFRESH {
            *last = Instant::now();
            self.refresh();
        }
    }

    /// Alerts and metrics from the current state.
    fn refresh(&mut self) {
        if let Some(f) = &self.alive {
            f();
        }
        let committed = self
            .tail
            .as_ref()
            .map(|t| t.last_revision)
            .unwrap_or(self.next - 1);
        let (cluster_rev, lag_s, following, sinks, local_bytes, over) = {
            let mut v = match self.view.lock() {
                Ok(v) => v,
                Err(p) => p.into_inner(),
            };
            if v.cluster_revision > committed {
                v.behind_since.get_or_insert_with(Instant::now);
            } else {
                v.behind_since = None;
            }
            (
                v.cluster_revision,
                v.behind_since.map(|b| b.elapsed()).unwrap_or_default(),
                v.following.clone(),
                v.sinks.clone(),
                v.local_bytes,
                v.over_local_limit,
            )
        };
        let newest_archive = self.after_newest_archive().map(|r| r - 1);
        let results = alert_results(&AlertInput {
            cfg: &self.cfg,
            max_lag: self.jc.max_lag.get(),
            lag: lag_s,
            committed,
            cluster_rev,
            gap: self.last_gap,
            newest_archive,
            chain_break: self.chain_break.as_deref(),
            sinks: &sinks,
            over_local_limit: over,
        });
        let _ = vigil_alert::raise(
            &self.cfg,
            "journal",
            &results,
            vigil_alert::OnAlertError::Log,
        );
        let mut m = vigil_core::metrics::Metrics::new();
        let cl = self.cfg.cluster_name().to_string();
        let l = [("cluster", cl.as_str())];
        m.gauge(
            "vigil_journal_last_revision",
            "Newest revision in a closed journal segment.",
            &l,
            committed as f64,
        );
        m.gauge(
            "vigil_journal_cluster_revision",
            "Newest revision a member reported.",
            &l,
            cluster_rev as f64,
        );
        m.gauge(
            "vigil_journal_lag_revisions",
            "Revisions the cluster holds that no closed segment does.",
            &l,
            (cluster_rev - committed).max(0) as f64,
        );
        m.gauge(
            "vigil_journal_lag_seconds",
            "How long the journal has been behind the cluster.",
            &l,
            lag_s.as_secs_f64(),
        );
        m.counter(
            "vigil_journal_events_total",
            "Events journaled by this process.",
            &l,
            self.events_total as f64,
        );
        m.counter(
            "vigil_journal_bytes_total",
            "Segment bytes (ciphertext) written by this process.",
            &l,
            self.bytes_total as f64,
        );
        m.counter(
            "vigil_journal_segments_total",
            "Segments closed by this process.",
            &l,
            self.segments_total as f64,
        );
        m.gauge(
            "vigil_journal_local_bytes",
            "Bytes of segments on the bastion.",
            &l,
            local_bytes as f64,
        );
        m.flag(
            "vigil_journal_chain_ok",
            "1 when the local chain verified at start.",
            &l,
            self.chain_break.is_none(),
        );
        for mc in self.cfg.members() {
            m.flag(
                "vigil_journal_following",
                "1 for the member whose watch the journal follows.",
                &[("cluster", cl.as_str()), ("member", mc.name.as_str())],
                following.as_deref() == Some(mc.name.as_str()),
            );
        }
        for (s, e) in &sinks {
            m.flag(
                "vigil_journal_sink_ok",
                "1 when the last shipping pass to the sink worked.",
                &[("cluster", cl.as_str()), ("sink", s.as_str())],
                e.is_none(),
            );
        }
        vigil_core::metrics::publish(&self.cfg.metrics, "journal", &cl, &m);
    }
}

/// What the alerts are decided from.
#[derive(Debug)]
pub struct AlertInput<'a> {
    pub cfg: &'a Config,
    pub max_lag: Duration,
    pub lag: Duration,
    pub committed: i64,
    pub cluster_rev: i64,
    pub gap: Option<Gap>,
    pub newest_archive: Option<i64>,
    pub chain_break: Option<&'a str>,
    pub sinks: &'a std::collections::BTreeMap<String, Option<String>>,
    pub over_local_limit: bool,
}

/// The journal's alerts: `journal_lagging`, `journal_gap`,
/// `journal_chain_broken`, `journal_local_full` and `journal_ship_failed{sink}`.
pub fn alert_results(i: &AlertInput<'_>) -> Vec<CheckResult> {
    let cl = i.cfg.cluster_name();
    let r =
        |key: AlertKey, ok: bool, severity, summary: String, facts: Vec<Fact>, runbook: &str| {
            CheckResult {
                key,
                source: Source::Journal,
                ok,
                severity,
                summary,
                facts,
                runbook: Some(runbook.to_string()),
            }
        };
    let lagging = i.lag > i.max_lag;
    let mut out = vec![r(
        AlertKey::new("journal_lagging"),
        !lagging,
        Severity::Warning,
        if lagging {
            format!(
                "The journal of {cl} is {:.0} s behind the cluster (journal at revision {}, cluster at {}): a restore now would lose those changes",
                i.lag.as_secs_f64(),
                i.committed,
                i.cluster_rev
            )
        } else {
            format!("The journal of {cl} keeps up with the cluster")
        },
        vec![
            Fact::new("Journal revision", i.committed.to_string()),
            Fact::new("Cluster revision", i.cluster_rev.to_string()),
        ],
        "Check `systemctl status vigil-journal` and `journalctl -u vigil-journal`: no member reachable, a full disk, or a stopped service",
    )];
    let gap_open = i
        .gap
        .is_some_and(|g| i.newest_archive.is_none_or(|a| a < g.to));
    out.push(r(
        AlertKey::new("journal_gap"),
        !gap_open,
        Severity::Critical,
        match i.gap {
            Some(g) if gap_open => format!(
                "The journal of {cl} misses revisions {}..={} (compacted before it read them): no point in that range can be restored until a full snapshot newer than {} re-anchors it",
                g.from, g.to, g.to
            ),
            _ => format!("The journal of {cl} has no gap that a snapshot does not cover"),
        },
        i.gap
            .map(|g| vec![Fact::new("Missing revisions", format!("{}..={}", g.from, g.to))])
            .unwrap_or_default(),
        "vigil-journal starts a full snapshot itself (journal.snapshot_on_gap); otherwise run `vigil-snapshot run`. Keep the journal running: it is down for longer than the cluster's compaction window",
    ));
    out.push(r(
        AlertKey::new("journal_chain_broken"),
        i.chain_break.is_none(),
        Severity::Critical,
        match i.chain_break {
            Some(b) => format!("The journal chain of {cl} on the bastion is broken: {b}; restores stop before that segment"),
            None => format!("The journal chain of {cl} verifies"),
        },
        Vec::new(),
        "Run `vigil-journal verify` to see every break; a sink's copy may be whole (`vigil-journal verify --source SINK`). Restores need --force to replay past a break",
    ));
    out.push(r(
        AlertKey::new("journal_local_full"),
        !i.over_local_limit,
        Severity::Warning,
        if i.over_local_limit {
            format!("The journal of {cl} outgrew journal.max_local before every sink held it: segments not every sink holds were removed from the bastion, and the sinks that lack them will never get them")
        } else {
            format!("The journal of {cl} fits journal.max_local")
        },
        Vec::new(),
        "Fix the journal's sinks (journal_ship_failed) or raise journal.max_local; it resolves once every sink holds all the bastion's segments again",
    ));
    for (s, e) in i.sinks {
        out.push(r(
            AlertKey::new("journal_ship_failed").label("sink", s),
            e.is_none(),
            Severity::Critical,
            match e {
                Some(e) => format!("The journal of {cl} does not reach sink {s}: {e}"),
                None => format!("The journal of {cl} reaches sink {s} again"),
            },
            vec![Fact::new("Sink", s)],
            "Segments stay on the bastion meanwhile (up to journal.max_local); the journal catches up by itself once the sink answers",
        ));
    }
    out
}

/// Asks every member for its revision, for the lag and to tell a stuck member.
async fn poll(
    members: Vec<vigil_core::config::MemberConfig>,
    tls: Option<TlsMaterial>,
    timeout: Duration,
    view: Arc<Mutex<View>>,
) {
    let mut clients: Vec<Option<MemberClient>> = vec![None; members.len()];
    loop {
        let mut best = 0i64;
        for (i, m) in members.iter().enumerate() {
            if clients[i].is_none() {
                clients[i] = vigil_etcd::connect(m, tls.as_ref(), timeout).await.ok();
            }
            if let Some(c) = &clients[i] {
                match vigil_etcd::status(c).await {
                    Ok(s) => best = best.max(s.revision),
                    Err(_) => clients[i] = None,
                }
            }
        }
        if let Ok(mut v) = view.lock() {
            if best > 0 {
                v.cluster_revision = v.cluster_revision.max(best);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn ship_loop(
    cfg: Arc<Config>,
    mut shipper: Shipper,
    view: Arc<Mutex<View>>,
    mut closed: tokio::sync::mpsc::UnboundedReceiver<Kept>,
    mut stop: signal::Receiver<bool>,
) {
    loop {
        let stopping = *stop.borrow();
        while let Ok(k) = closed.try_recv() {
            shipper.add(k);
        }
        let rep = shipper.pass(&cfg).await;
        if rep.shipped > 0 || rep.pruned_local > 0 || rep.pruned_sinks > 0 {
            tracing::debug!(
                "journal: shipped {} segment(s), pruned {} local and {} in sinks",
                rep.shipped,
                rep.pruned_local,
                rep.pruned_sinks
            );
        }
        if let Ok(mut v) = view.lock() {
            v.sinks = rep.sinks;
            v.local_bytes = rep.local_bytes;
            // Raised when unshipped segments had to go; resolved only once
            // every sink holds all the bastion has again.
            if rep.over_local_limit {
                v.over_local_limit = true;
            } else if rep.unshipped == 0 {
                v.over_local_limit = false;
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            Some(k) = closed.recv() => shipper.add(k),
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.changed() => {}
        }
    }
}
